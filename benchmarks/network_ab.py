"""Paired A/B of one module constant on whole networks: is a rule change faster, in the network, on this machine?

Two copies of the same network are built; copy "A" is compiled with ``module.NAME`` patched to the given value,
copy "B" with the shipped one (``execute.run`` caches each copy's compiled program, so the patch is only in
place while A compiles: a patch around every call would charge its own ~10 us to A). Each repetition then runs
A, B and the float32 forward of ``benchmarks/network.py`` once each (below batch 16 as a block of calls in a row
after an untimed one, as ``network.bench``: ``--block``), in an order shuffled afresh (``network.shuffled``: a
rotated order keeps neighbours, and the call right after the float32 forward runs slower). ``--cpus N`` pins the
process as ``network.py --cpus`` does. Both copies' outputs are compared ``==`` before any timing. Prints, per
path, the median and quartiles of the per-repetition ratios B / A (> 1: the shipped value is faster) and to the
float forward; writes JSON.

    python benchmarks/network_ab.py --set jaxpulp.kernels.conv.BAND_SMALL_MAX_PIXELS=0 --nets nemo_eegnet --batch 1
    python benchmarks/network_ab.py --set jaxpulp.kernels.conv.WIDE_MAX_PIXELS=0 --nets deeploy_mlperf_ic --batch 16

A null run (``--set`` a constant to its own value) measures the harness itself: its ratios should straddle 1.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import statistics
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import network as nb  # noqa: E402  (the networks, inputs, float baseline and order of benchmarks/network.py)

from jaxpulp.network import execute  # noqa: E402


def _setting(text: str) -> tuple[object, str, object]:
    """``module.NAME=value`` -> (module, NAME, value); the value is a Python literal."""
    target, sep, value = text.partition("=")
    mod_name, _, attr = target.rpartition(".")
    if not sep or not mod_name:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected module.NAME=value")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise argparse.ArgumentTypeError(f"--set {text!r}: cannot import {mod_name!r} ({e})") from None
    if not hasattr(module, attr):
        raise argparse.ArgumentTypeError(f"--set {text!r}: {mod_name} has no {attr!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"--set {text!r}: value {value!r} is not a Python literal") from None
    return module, attr, parsed


def ab(name: str, batch: int, reps: int, setting, paths=("values", "packed"), block: int = 1) -> dict:
    """Paired timings of one network and batch: per path, B / A and both against the float32 forward; each
    candidate timed over ``block`` calls in a row after an untimed one when ``block`` > 1 (as
    ``network.bench``)."""
    module, attr, value = setting
    x = nb._inputs(nb._NETS[name](), batch, np.random.default_rng(0))
    ff, fp = nb.float_forward(nb._NETS[name]())
    xf = jnp.asarray(x, jnp.float32)
    fns = {"float32": lambda: jax.block_until_ready(ff(fp, xf))}
    for path in paths:
        a, b = nb._NETS[name](), nb._NETS[name]()
        with mock.patch.object(module, attr, value):  # A compiles under the patch; run's cache keeps its program
            out_a = execute.run(a, x, path=path).outputs
        out_b = execute.run(b, x, path=path).outputs
        if not all(np.array_equal(out_a[k], out_b[k]) for k in out_b):
            raise SystemExit(f"{name} {path}: the outputs of A and B differ: the patch changed the bits")
        fns[f"{path} A"] = lambda a=a, path=path: execute.run(a, x, path=path)
        fns[f"{path} B"] = lambda b=b, path=path: execute.run(b, x, path=path)
    for fn in fns.values():
        for _ in range(3):
            fn()
    times = nb.interleaved(fns, reps, block)

    def quartiles(num: str, den: str) -> list[float]:
        return statistics.quantiles([n / d for n, d in zip(times[num], times[den], strict=True)], n=4)

    out = {"network": name, "batch": batch, "reps": reps, "calls_per_block": block,
           "set": f"{module.__name__}.{attr}={value!r}",
           "float32_ms": 1e3 * statistics.median(times["float32"])}
    for path in paths:
        out[path] = {"b_over_a": quartiles(f"{path} A", f"{path} B"),
                     "a_to_float32": quartiles("float32", f"{path} A"),
                     "b_to_float32": quartiles("float32", f"{path} B"),
                     "a_ms": 1e3 * statistics.median(times[f"{path} A"]),
                     "b_ms": 1e3 * statistics.median(times[f"{path} B"])}
        r = out[path]
        print(f"{name:<24} batch {batch:>4} {path:<6}: shipped / patched x{r['b_over_a'][1]:.3f} "
              f"(IQR {r['b_over_a'][0]:.3f}-{r['b_over_a'][2]:.3f}); to the float forward: patched "
              f"x{r['a_to_float32'][1]:.2f}, shipped x{r['b_to_float32'][1]:.2f}  "
              f"({r['a_ms']:.3f} / {r['b_ms']:.3f} ms)", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", dest="setting", type=_setting, required=True, help="module.NAME=value (A's value)")
    p.add_argument("--nets", nargs="+", default=["dronet"], choices=sorted(nb._NETS), help="as network.py --nets")
    p.add_argument("--batch", type=nb._positive, nargs="+", default=[1])
    p.add_argument("--reps", type=nb._positive, default=None, help="repetitions (default: about 300 calls at "
                   "batch 1, fewer for larger batches)")
    p.add_argument("--block", type=nb._positive, default=None, help="timed calls in a row per candidate and "
                   "repetition (default: as benchmarks/network.py, 16 // batch below 16; 1 = every call cold)")
    p.add_argument("--cpus", type=nb._positive, default=None, help="pin the process to its first N CPUs before JAX "
                   "starts (as benchmarks/network.py --cpus)")
    p.add_argument("--json", default=None, help="default benchmarks/results/network_ab.json")
    args = p.parse_args(argv)
    if args.cpus is not None:  # before anything touches a backend
        try:
            nb.pin_cpus(args.cpus)
        except ValueError as e:
            p.error(str(e))
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs, "
          f"{nb._usable_cpus()} usable")
    rows = []
    for n in args.nets:
        for b in args.batch:
            block = args.block or nb.block_size(b)
            rows.append(ab(n, b, args.reps or max(15, 300 // (b * block)), args.setting, block=block))
    path = args.json or os.path.join(os.path.dirname(__file__), "results", "network_ab.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(jax=jax.__version__, backend=jax.default_backend(), cpus=os.cpu_count(),
                       cpus_usable=nb._usable_cpus(), rows=rows), f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
