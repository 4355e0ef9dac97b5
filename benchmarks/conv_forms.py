"""Per-shape microbenchmark of the exact conv accumulator formulations (``jaxpulp.kernels._conv_forms``) against
XLA's float32 convolution of the same shape, measured in the same run (interleaved, best of ``--reps``: the
least disturbed run on a shared machine).

    python benchmarks/conv_forms.py                          # DroNet + MobileNetV1-0.25-128 conv shapes, batch 16 128
    python benchmarks/conv_forms.py --batches 16 --nets dronet --json /tmp/forms.json

Each form computes the int32 accumulators from int32 values (u8 inputs, i8 weights: the value path's widest
types, worst-case input-channel groups), conversions included; ``float32`` is ``lax.conv_general_dilated`` on
float32 inputs already in memory (what the float forward of ``benchmarks/network.py`` runs per layer). Every
form's result is checked ``==`` against the ``lax`` form. Times on a shared machine are noisy: compare within a
row. The rule in ``conv._fast_accumulate`` was chosen from this table (see its docstring).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.kernels import _conv_forms, conv
from jaxpulp.kernels.config import ConvConfig
from jaxpulp.qtypes import QType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from network import _NETS  # noqa: E402  (benchmarks/network.py's networks: the zoo's two and the bundled ones)


def _shapes(names):
    seen, out = set(), []
    for n in names:
        net = _NETS[n]()
        for lay in net.layers:
            if lay.kind != "conv":
                continue
            key = (lay.in_shape, lay.out_shape, lay.kernel, lay.stride, lay.pad)
            if key not in seen:
                seen.add(key)
                out.append((f"{n}:{lay.name}", key))
    return out


def _cfg(key):
    (H, W, Ci), (Ho, Wo, Co), (kh, kw), stride, pad = key
    return ConvConfig(QType.parse("u8"), QType.parse("u8"), QType.parse("i8"), semantics="ideal", H=H, W=W, Ci=Ci,
                      Co=Co, Kh=kh, Kw=kw, stride=stride, pad=pad, Ho=Ho, Wo=Wo)


def _time(fns, reps):
    for f in fns.values():
        jax.block_until_ready(f())
    ts = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            ts[k].append(time.perf_counter() - t0)
    return {k: 1e3 * min(v) for k, v in ts.items()}


def bench_shape(name, key, batch, reps, rng, forms=_conv_forms.FORMS):
    cfg = _cfg(key)
    starts = conv.worst_case_groups(cfg)
    x = jnp.asarray(rng.integers(0, 256, (batch, cfg.H, cfg.W, cfg.Ci)), jnp.int32)
    w = jnp.asarray(rng.integers(-128, 128, (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci)), jnp.int32)
    t, b, left, r = cfg.pad
    xf = x.astype(jnp.float32)
    wf = jnp.transpose(w, (1, 2, 3, 0)).astype(jnp.float32)
    f32 = jax.jit(lambda a, k: jax.lax.conv_general_dilated(a, k, cfg.stride, ((t, b), (left, r)),
                                                            dimension_numbers=("NHWC", "HWIO", "NHWC")))
    fns = {"float32": lambda: f32(xf, wf)}
    jitted = {}
    for f in forms:
        jitted[f] = jax.jit(lambda a, k, f=f: _conv_forms.form(f)(a, k, cfg, starts))
        fns[f] = (lambda f=f: jitted[f](x, w))
    want = np.asarray(jax.jit(lambda a, k: _conv_forms.lax_conv(a, k, cfg, starts))(x, w))
    same = {f: bool(np.array_equal(np.asarray(jitted[f](x, w)), want)) for f in forms}
    ms = _time(fns, reps)
    best = min(forms, key=lambda f: ms[f])
    print(f"{name:<28} b{batch:<4} {str(key[0]):<15} k{key[2][0]} s{key[3][0]} Co {cfg.Co:<4} groups {len(starts)}  "
          + "  ".join(f"{k} {v:7.2f}" for k, v in ms.items())
          + f"  ms | best {best} x{ms['float32'] / ms[best]:.2f} of f32"
          + ("" if all(same.values()) else f"  MISMATCH {same}"), flush=True)
    return dict(shape=name, batch=batch, in_shape=key[0], out_shape=key[1], kernel=key[2], stride=key[3],
                pad=key[4], groups=len(starts), ms=ms, best=best, equal=same)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[16, 128])
    p.add_argument("--nets", nargs="+", default=["dronet", "mobilenet"], choices=sorted(_NETS),
                   help="as benchmarks/network.py --nets")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--forms", nargs="*", default=None, help="forms to time (default all)")
    p.add_argument("--only", nargs="*", default=None, help="layer names to keep (e.g. Conv_0 pw1)")
    p.add_argument("--json", default=None, help="default benchmarks/results/conv_forms.json")
    args = p.parse_args(argv)
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs; ms, best of --reps")
    rng = np.random.default_rng(0)
    rows = []
    for b in args.batches:
        for name, key in _shapes(args.nets):
            if args.only and name.split(":")[1] not in args.only:
                continue
            rows.append(bench_shape(name, key, b, args.reps, rng, tuple(args.forms or _conv_forms.FORMS)))
    path = args.json or os.path.join(os.path.dirname(__file__), "results", "conv_forms.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(jax=jax.__version__, backend=jax.default_backend(), device=str(jax.devices()[0]),
                       cpus=os.cpu_count(), rows=rows), f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
