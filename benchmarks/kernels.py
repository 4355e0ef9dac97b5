"""Kernel throughput: the packed (bit-exact) path against same-run baselines.

For every benchmarked kernel configuration this measures, in one run on this machine:
  * packed path: emulated MACs (or elements) per second for a batch of inputs (jit compiled beforehand);
  * baseline: a float32 GEMM of the same (M, K, N) (this machine's practical limit for the arithmetic), or
    for MAC-free kernels a float32 elementwise op of the same size;
  * numpy reference twin: MACs per second of the plain-loop model (one input).
and prints ratio = packed rate / baseline rate. Results go to JSON.

    python benchmarks/kernels.py                      # conv, 27 unsigned permutations, 2 layers
    python benchmarks/kernels.py --families conv pointwise depthwise linear pool add --json out.json
"""
from __future__ import annotations

import argparse
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
        t = best_time(lambda: conv.run(xw, ww, params, cfg=cfg), reps)
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


FAMILIES = {"conv": bench_conv}


def _print_row(r):
    unit = "MAC/s" if "macs_per_s" in r else "elem/s"
    rate = r.get("macs_per_s", r.get("elems_per_s"))
    print(f"{r['kernel']:<28} {r['layer']:<28} {rate / 1e9:8.2f} G{unit:<6} baseline {r['baseline_per_s'] / 1e9:8.2f} G"
          f"  ratio {r['ratio']:5.2f}   twin x{r['speedup_vs_twin']:9.0f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["conv"], choices=sorted(FAMILIES))
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
