"""Whole-network throughput: inputs per second for a batch, against a plain numpy int64 interpreter of the same
graph (``jaxpulp.network.reference``) timed in the same run, on whatever JAX backend is present (CPU, or GPU
with the ``cuda`` extra).

    python benchmarks/network.py                       # DroNet and MobileNetV1-0.25-128, batch 32
    python benchmarks/network.py --batch 256 --json benchmarks/results/network_gpu.json

Rows: network, path (packed = bit-exact PULP-NN kernels on memory images, values = intended arithmetic),
batch, inputs/s, numpy baseline inputs/s, ratio, compile seconds, and the outputs' equality with the baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from jaxpulp import __version__
from jaxpulp.network import reference, zoo
from jaxpulp.network.execute import run


def _time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(net, x, paths, reps: int, ref_batch: int):
    rows = []
    want = reference.forward(net, x[:ref_batch])
    ref_t = _time(lambda: reference.forward(net, x[:ref_batch]), max(1, reps // 2))
    ref_rate = ref_batch / ref_t
    for path in paths:
        t0 = time.perf_counter()
        out = run(net, x, path=path).outputs
        compile_s = time.perf_counter() - t0
        t = _time(lambda: run(net, x, path=path), reps)
        same = all(np.array_equal(out[k][:ref_batch], want[k]) for k in net.outputs)
        rate = len(x) / t
        rows.append(dict(network=net.name, path=path, batch=len(x), macs_per_input=net.macs, inputs_per_s=rate,
                         emulated_macs_per_s=rate * net.macs, baseline="numpy int64 interpreter (same graph)",
                         baseline_inputs_per_s=ref_rate, baseline_batch=ref_batch, ratio=rate / ref_rate,
                         first_call_s=compile_s, equal_to_baseline=same))
        r = rows[-1]
        print(f"{net.name:<24} {path:<7} batch {len(x):>4}: {rate:9.1f} inputs/s ({r['emulated_macs_per_s'] / 1e9:6.2f}"
              f" GMAC/s)  numpy {ref_rate:8.1f} inputs/s  ratio {r['ratio']:6.1f}  first call {compile_s:5.1f} s"
              f"  {'==' if same else 'MISMATCH'}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ref-batch", type=int, default=8, help="inputs the numpy baseline runs (its rate is per input)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--paths", nargs="+", default=["packed", "values"])
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "network.json"))
    args = p.parse_args(argv)
    print(f"jaxpulp {__version__}, jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    rng = np.random.default_rng(0)
    rows = []
    dn = zoo.dronet()
    x = np.clip(zoo.dronet_input()[None] + rng.integers(-8, 9, (args.batch,) + dn.input.shape), 0, 255)
    rows += bench(dn, x, args.paths, args.reps, min(args.ref_batch, args.batch))
    mb = zoo.mobilenet_v1(0.25, 128)
    x = rng.integers(0, 256, (args.batch,) + mb.input.shape)
    rows += bench(mb, x, args.paths, args.reps, min(args.ref_batch, args.batch))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(jaxpulp=__version__, jax=jax.__version__, backend=jax.default_backend(),
                       device=str(jax.devices()[0]), machine=platform.machine(), cpus=os.cpu_count(), rows=rows),
                  f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
