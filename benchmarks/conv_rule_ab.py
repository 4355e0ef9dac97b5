"""Paired A/B of the conv formulation rule on a whole network's value path: the same jitted forward built with
``conv.int8_form`` as shipped ("after") and with every conv on the float32 forms ("before"), timed against the
float32 forward of the same topology (``benchmarks/network.py``'s baseline) in one process, the candidates in an
order shuffled afresh each repetition (``network.shuffled``); reports the median and quartiles of the
per-repetition ratios, which survive a shared machine's drifting load far better than separate medians.

    python benchmarks/conv_rule_ab.py --net dronet --batch 16 --reps 60
    python benchmarks/conv_rule_ab.py --net mobilenet --batch 16 --reps 30
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import network as nb  # noqa: E402  (the float baseline and inputs of benchmarks/network.py)

from jaxpulp.kernels import conv  # noqa: E402
from jaxpulp.network import execute, zoo  # noqa: E402


def _forward(net, acts):
    return jax.jit(lambda xi: execute._values_forward(
        xi, execute._prepared_values(net), acts, layers=net.layers, cfgs=execute._configs(net.layers, "ideal",
                                                                                           execute.GAP8),
        want=net.outputs, cluster=execute.GAP8, groups=execute._prepared_groups(net)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", choices=["dronet", "mobilenet"], default="dronet")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=40)
    args = p.parse_args(argv)
    net = zoo.dronet() if args.net == "dronet" else zoo.mobilenet_v1(0.25, 128)
    x = nb._inputs(net, args.batch, np.random.default_rng(0))
    ff, fp = nb.float_forward(net)
    xf = jnp.asarray(x, jnp.float32)
    xi = {k: jnp.asarray(v, jnp.int32) for k, v in execute._check_inputs(net, x).items()}
    acts = execute._types_of(net, None)
    rule = conv.int8_form
    fns, outs = {"float32": lambda: jax.block_until_ready(ff(fp, xf))}, {}
    try:
        for name, r in (("before", lambda cfg, batch=None: None), ("after", rule)):
            conv.int8_form = r  # read while tracing: each jitted forward keeps the rule it was traced with
            own = zoo.dronet() if args.net == "dronet" else zoo.mobilenet_v1(0.25, 128)  # weights prepared for r
            f = _forward(own, acts)
            t0 = time.perf_counter()
            outs[name] = np.asarray(jax.block_until_ready(f(xi))[net.outputs[0]])
            print(f"{name}: first call {time.perf_counter() - t0:.2f} s")
            fns[name] = (lambda f=f: jax.block_until_ready(f(xi)))
    finally:
        conv.int8_form = rule
    print(f"outputs equal: {np.array_equal(outs['before'], outs['after'])}")
    names = list(fns)
    ts = nb.interleaved(fns, args.reps)

    def q(v):
        a, m, b = statistics.quantiles(v, n=4)
        return f"{m:.2f} (IQR {a:.2f}-{b:.2f})"

    for k in names:
        print(f"{net.name} batch {args.batch} {k:8s}: median {1e3 * statistics.median(ts[k]):8.2f} ms, "
              f"float32 / this {q([a / b for a, b in zip(ts['float32'], ts[k], strict=True)])}")
    print(f"after vs before: {q([a / b for a, b in zip(ts['before'], ts['after'], strict=True)])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
