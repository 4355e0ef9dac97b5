"""Kernel throughput: the packed (bit-exact) path against same-run baselines.

For every benchmarked kernel configuration this measures, in one run on this machine:
  * packed path: emulated MACs (or elements) per second for a batch of inputs (jit compiled beforehand);
  * baseline: a float32 GEMM of the same (M, K, N) (this machine's practical limit for the arithmetic), or
    for MAC-free kernels a float32 elementwise op of the same size;
  * numpy reference twin: MACs per second of the plain-loop model (one input).
and prints ratio = packed rate / baseline rate. Results go to JSON.

    python benchmarks/kernels.py                      # every family (conv: 27 unsigned permutations, 2 layers)
    python benchmarks/kernels.py --families conv --quick --json out.json
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import __version__, packing

UNSIGNED_PERMS = list(itertools.product(("u8", "u4", "u2"), ("u8", "u4", "u2"), ("i8", "i4", "i2")))


def best_time(fn, reps: int) -> float:
    """Minimum wall time (s) of ``fn()`` over ``reps`` calls, after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_rate(m: int, k: int, n: int, reps: int) -> float:
    """MACs/s of a jitted float32 (m, k) @ (k, n) on this machine, now."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((m, k)), jnp.float32)
    b = jnp.asarray(np.random.default_rng(1).standard_normal((k, n)), jnp.float32)
    mm = jax.jit(jnp.matmul)
    return m * k * n / best_time(lambda: mm(a, b), reps)


def elementwise_rate(n: int, reps: int) -> float:
    """Elements/s of a jitted float32 a * b + c over n elements (baseline for MAC-free kernels)."""
    a = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda a: a * 1.5 + 2.0)
    return n / best_time(lambda: f(a), reps)


def _rand(rng, qt, shape):
    return rng.integers(qt.lo, qt.hi + 1, shape)


def bench_conv(batch: int, reps: int, quick: bool):
    from jaxpulp.kernels import conv

    layers = {"pulpnn_16x16x32_to_64_3x3": dict(H=16, W=16, Ci=32, Co=64, pad=(1, 1, 1, 1)),
              "large_32x32x64_to_128_3x3": dict(H=32, W=32, Ci=64, Co=128, pad=(1, 1, 1, 1))}
    perms = UNSIGNED_PERMS[:3] if quick else UNSIGNED_PERMS
    rows = []
    for (lname, layer), (it, ot, wt) in itertools.product(layers.items(), perms):
        cfg = conv.Config(it, ot, wt, **layer)
        rng = np.random.default_rng(0)
        x = _rand(rng, cfg.in_type, (batch, cfg.H, cfg.W, cfg.Ci))
        w = _rand(rng, cfg.w_type, (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci))
        params = conv.Params(kappa=rng.integers(1, 32, cfg.Co).astype(np.int32),
                             lam=rng.integers(-4096, 4096, cfg.Co).astype(np.int32), out_shift=12)
        xw = jnp.asarray(np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x]))
        ww = jnp.asarray(packing.pack(w, cfg.w_type))
        t = best_time(functools.partial(conv.run, xw, ww, params, cfg=cfg), reps)
        macs = cfg.macs * batch
        base = gemm_rate(batch * cfg.Ho * cfg.Wo, cfg.K, cfg.Co, reps)
        t0 = time.perf_counter()
        conv.reference(x[0], w, params, cfg)
        twin = cfg.macs / (time.perf_counter() - t0)
        rows.append(dict(family="conv", kernel=cfg.c_name, layer=lname, batch=batch, macs_per_s=macs / t,
                         baseline="f32 GEMM (M=batch*Ho*Wo, K=Ci*Kh*Kw, N=Co)", baseline_per_s=base,
                         ratio=macs / t / base, twin_macs_per_s=twin, speedup_vs_twin=macs / t / twin))
        _print_row(rows[-1])
    return rows


def _params_conv(rng, co, shift=12):
    from jaxpulp.kernels import conv

    return conv.Params(kappa=rng.integers(1, 32, co).astype(np.int32),
                       lam=rng.integers(-4096, 4096, co).astype(np.int32), out_shift=shift)


def _twin_rate(fn, work: int) -> float:
    t0 = time.perf_counter()
    fn()
    return work / (time.perf_counter() - t0)


def _row(family, kernel, layer, batch, work, t, base, base_name, twin, unit="macs"):
    key = "macs_per_s" if unit == "macs" else "elems_per_s"
    r = dict(family=family, kernel=kernel, layer=layer, batch=batch, baseline=base_name, baseline_per_s=base)
    r[key] = work / t
    r.update(ratio=work / t / base, **{f"twin_{key}": twin}, speedup_vs_twin=work / t / twin)
    _print_row(r)
    return r


SUBBYTE_DIAG = [("u8", "u8", "i8"), ("u4", "u4", "i4"), ("u2", "u2", "i2"), ("u8", "u4", "i2")]


def bench_pointwise(batch: int, reps: int, quick: bool):
    from jaxpulp.kernels import pointwise

    layer = dict(H=16, W=16, Ci=64, Co=64)  # Ho = 16 divides by 8: whole rows, even widths, no leftover pixel
    rows = []
    for it, ot, wt in SUBBYTE_DIAG[:2] if quick else SUBBYTE_DIAG:
        cfg = pointwise.Config(it, ot, wt, **layer)
        rng = np.random.default_rng(0)
        x = _rand(rng, cfg.in_type, (batch, cfg.H, cfg.W, cfg.Ci))
        w = _rand(rng, cfg.w_type, (cfg.Co, 1, 1, cfg.Ci))
        params = _params_conv(rng, cfg.Co)
        xw = jnp.asarray(packing.pack_hwc(x, cfg.in_type))
        ww = jnp.asarray(packing.pack(w, cfg.w_type))
        t = best_time(functools.partial(pointwise.run, xw, ww, params, cfg=cfg), reps)
        base = gemm_rate(batch * cfg.H * cfg.W, cfg.Ci, cfg.Co, reps)
        twin = _twin_rate(lambda x=x, w=w, params=params, cfg=cfg: pointwise.reference(x[0], w, params, cfg), cfg.macs)
        rows.append(_row("pointwise", cfg.c_name, "16x16x64_to_64", batch, cfg.macs * batch, t, base,
                         "f32 GEMM (M=batch*H*W, K=Ci, N=Co)", twin))
    return rows


def depthwise_f32_rate(batch, H, W, C, k, reps):
    x = jnp.ones((batch, H, W, C), jnp.float32)
    w = jnp.ones((k, k, 1, C), jnp.float32)
    f = jax.jit(lambda x: jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), feature_group_count=C,
                                                       dimension_numbers=("NHWC", "HWIO", "NHWC")))
    return batch * H * W * C * k * k / best_time(lambda: f(x), reps)


def bench_depthwise(batch: int, reps: int, quick: bool):
    from jaxpulp.kernels import depthwise

    layer = dict(H=32, W=32, Ci=64, Co=64, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    rows = []
    for it, ot, wt in SUBBYTE_DIAG[:2] if quick else SUBBYTE_DIAG:
        cfg = depthwise.Config(it, ot, wt, **layer)
        rng = np.random.default_rng(0)
        x = _rand(rng, cfg.in_type, (batch, cfg.H, cfg.W, cfg.Ci))
        w = _rand(rng, cfg.w_type, (cfg.Co, cfg.Kh, cfg.Kw))
        params = depthwise.Params(kappa=rng.integers(1, 32, cfg.Co).astype(np.int32),
                                  lam=rng.integers(-4096, 4096, cfg.Co).astype(np.int32), out_shift=8)
        xw, ww = (jnp.asarray(a) for a in depthwise.pack_inputs(x, w, cfg))
        t = best_time(functools.partial(depthwise.run, xw, ww, params, cfg=cfg), reps)
        base = depthwise_f32_rate(batch, cfg.H, cfg.W, cfg.Co, 3, reps)
        twin = _twin_rate(lambda x=x, w=w, params=params, cfg=cfg: depthwise.reference(x[0], w, params, cfg), cfg.macs)
        rows.append(_row("depthwise", cfg.c_name, "32x32x64_3x3", batch, cfg.macs * batch, t, base,
                         "f32 depthwise conv (lax, feature_group_count=C)", twin))
    return rows


def bench_linear(batch: int, reps: int, quick: bool):
    from jaxpulp.kernels import linear

    rows = []
    for it, ot, wt in (SUBBYTE_DIAG[:2] if quick else SUBBYTE_DIAG) + [("u8", "i32", "i8")]:
        cfg = linear.Config(it, ot, wt, N=1024, M=256)
        rng = np.random.default_rng(0)
        x = _rand(rng, cfg.in_type, (batch, cfg.N))
        w = _rand(rng, cfg.w_type, (cfg.M, cfg.N))
        if cfg.quantized:
            params = linear.Params(kappa=rng.integers(1, 32, cfg.M).astype(np.int32),
                                   lam=rng.integers(-4096, 4096, cfg.M).astype(np.int32), out_shift=14)
        else:
            params = linear.Params()
        xw = jnp.asarray(np.stack([packing.pack(xi, cfg.in_type) for xi in x]))
        ww = jnp.asarray(packing.pack(w, cfg.w_type))
        t = best_time(functools.partial(linear.run, xw, ww, params, cfg=cfg), reps)
        base = gemm_rate(batch, cfg.N, cfg.M, reps)
        twin = _twin_rate(lambda x=x, w=w, params=params, cfg=cfg: linear.reference(x[0], w, params, cfg), cfg.macs)
        rows.append(_row("linear", cfg.c_name, "1024_to_256", batch, cfg.macs * batch, t, base,
                         "f32 GEMM (M=batch, K=N, N=M)", twin))
    return rows


def pool_f32_rate(batch, H, W, C, k, reps, op):
    x = jnp.ones((batch, H, W, C), jnp.float32)
    init, fn = (-jnp.inf, jax.lax.max) if op == "max" else (0.0, jax.lax.add)
    f = jax.jit(lambda x: jax.lax.reduce_window(x, init, fn, (1, k, k, 1), (1, k, k, 1), "VALID"))
    return batch * H * W * C / best_time(lambda: f(x), reps)


def bench_pool(batch: int, reps: int, quick: bool):
    from jaxpulp.kernels import pool
    from jaxpulp.kernels.config import AvgPoolConfig, MaxPoolConfig

    rows = []
    for kind, t_in, t_out in [("max", "u8", "u8"), ("max", "u4", "u4"), ("avg", "u8", "u8"), ("avg", "u4", "u2")]:
        if quick and t_in != "u8":
            continue
        cls = MaxPoolConfig if kind == "max" else AvgPoolConfig
        cfg = cls(t_in, t_out, H=32, W=32, C=64, Kh=2, Kw=2, stride=(2, 2))
        rng = np.random.default_rng(0)
        x = _rand(rng, cfg.in_type, (batch, cfg.H, cfg.W, cfg.C))
        params = None if kind == "max" else pool.AvgPoolParams()
        xw = jnp.asarray(packing.pack_hwc(x, cfg.in_type))
        t = best_time(functools.partial(pool.run, xw, params, cfg=cfg), reps)
        n = cfg.H * cfg.W * cfg.C
        base = pool_f32_rate(batch, cfg.H, cfg.W, cfg.C, 2, reps, kind)
        twin = _twin_rate(lambda x=x, params=params, cfg=cfg: pool.reference(x[0], params, cfg), n)
        rows.append(_row(f"{kind}pool", cfg.c_name, "32x32x64_2x2s2", batch, n * batch, t, base,
                         f"f32 reduce_window {kind} (same input)", twin, unit="elems"))
    return rows


def bench_add(batch: int, reps: int, quick: bool):
    from jaxpulp.kernels import add

    rows = []
    for t1, t2, to in [("u8", "u8", "u8"), ("u4", "u2", "u4")] + ([] if quick else [("i8", "u4", "i2")]):
        cfg = add.Config(t1, t2, to, H=32, W=32, C=64)
        rng = np.random.default_rng(0)
        x1 = _rand(rng, cfg.in1_type, (batch, cfg.H, cfg.W, cfg.C))
        x2 = _rand(rng, cfg.in2_type, (batch, cfg.H, cfg.W, cfg.C))
        params = add.Params(in1_mul=3, in1_shift=2, in2_mul=5, in2_shift=3, out_mul=1, out_shift=1)
        w1 = jnp.asarray(packing.pack_hwc(x1, cfg.in1_type))
        w2 = jnp.asarray(packing.pack_hwc(x2, cfg.in2_type))
        t = best_time(functools.partial(add.run, w1, w2, params, cfg=cfg), reps)
        n = cfg.H * cfg.W * cfg.C
        base = elementwise_rate(batch * n, reps)
        twin = _twin_rate(lambda x1=x1, x2=x2, params=params, cfg=cfg: add.reference(x1[0], x2[0], params, cfg), n)
        rows.append(_row("add", cfg.c_name, "32x32x64", batch, n * batch, t, base, "f32 a*1.5+2 (same size)", twin,
                         unit="elems"))
    return rows


FAMILIES = {"conv": bench_conv, "pointwise": bench_pointwise, "depthwise": bench_depthwise, "linear": bench_linear,
            "pool": bench_pool, "add": bench_add}


def _print_row(r):
    unit = "MAC/s" if "macs_per_s" in r else "elem/s"
    rate = r.get("macs_per_s", r.get("elems_per_s"))
    print(f"{r['kernel']:<28} {r['layer']:<28} {rate / 1e9:8.2f} G{unit:<6} baseline {r['baseline_per_s'] / 1e9:8.2f} G"
          f"  ratio {r['ratio']:5.2f}   twin x{r['speedup_vs_twin']:9.0f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=sorted(FAMILIES))
    p.add_argument("--batch", type=int, default=32, help="inputs per call (default 32)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions; the minimum is reported")
    p.add_argument("--quick", action="store_true", help="3 permutations only (smoke test)")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "kernels.json"))
    args = p.parse_args(argv)
    print(f"jaxpulp {__version__}, jax {jax.__version__}, backend {jax.default_backend()}, "
          f"devices {jax.devices()}")
    rows = []
    for fam in args.families:
        rows.extend(FAMILIES[fam](args.batch, args.reps, args.quick))
    ratios = [r["ratio"] for r in rows]
    print(f"ratio to baseline: median {np.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(jaxpulp=__version__, jax=jax.__version__, backend=jax.default_backend(),
                       device=str(jax.devices()[0]), machine=platform.machine(), cpus=os.cpu_count(),
                       batch=args.batch, rows=rows), f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
