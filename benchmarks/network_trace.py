"""Per-layer time *inside* the whole compiled network, from the JAX profiler's trace of XLA's operations.

``benchmarks/network.py --profile`` compiles every layer alone; this one runs the whole network as ``execute.run``
compiles it (float32 forward of the same topology, packed path, value path; a large batch in the same steps),
records ``jax.profiler.trace`` over ``--reps`` calls, and attributes every XLA operation (a fusion, a library
convolution / GEMM, a copy) to the layer named by its op metadata (``execute.scope_name``: each layer's operations
run under its ``jax.named_scope``). A fusion is named after its root operation, so the requantisation or pooling
of one layer that XLA fuses into the next layer's input preparation counts for the next layer (and twice where
XLA duplicates it into two readers); operations without a layer (input conversion, output copies) are "(other)",
loops of steps are not counted (their operations are). The two CPU threads run independent operations
concurrently, so a column's sum can exceed the wall time of one call, printed below it. XLA:CPU launches some
operations asynchronously (its float32 convolutions outside YNNPACK run on Eigen's threads: their trace event
covers the launch only, 0.04 ms of a 1 ms convolution); those are timed from the launch to their completion
event, less what ran inside (``op_times``), and listed under "asynchronous".

    python benchmarks/network_trace.py --nets dronet --batch 16
    python benchmarks/network_trace.py --nets dronet mobilenet --batch 128 --top 8

Writes JSON (default benchmarks/results/network_trace.json): per network, path and layer the ms per call, and
the ``--top`` most expensive operations of each path with their layer.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import network as nb  # noqa: E402  (float baseline, inputs)

from jaxpulp import __version__  # noqa: E402
from jaxpulp.network import execute  # noqa: E402

_OP = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]*)"', re.M)
_PATHS = ("float32", "packed", "values")
_CONTAINER = re.compile(r"^(while|conditional|call)(\.\d+)?$")  # their operations are traced themselves


def compiled_paths(net, x, step):
    """path -> (jitted call with its arguments bound, compiled HLO text). The same functions ``execute.run``
    calls (``network.run_function``), and the float32 forward in the same steps."""
    ff, fp = nb.float_forward(net)
    xf = jnp.asarray(x, jnp.float32)
    fstep = nb.float_stepped(ff, step)
    out = {"float32": (lambda: fstep(fp, xf), fstep.lower(fp, xf).compile().as_text())}
    for path in ("packed", "values"):
        fn, args, kw = nb.run_function(net, x, path, step)
        out[path] = (lambda fn=fn, args=args, kw=kw: fn(*args, **kw), fn.lower(*args, **kw).compile().as_text())
    return out


def op_layers(hlo: str, scopes: dict) -> dict:
    """XLA instruction name -> layer name, from the op metadata (the first path component that is a layer's
    scope)."""
    out = {}
    for name, op in _OP.findall(hlo):
        for part in op.split("/"):
            if part in scopes:
                out[name] = scopes[part]
                break
    return out


def op_times(events: list, known: set | None = None) -> tuple[dict, dict]:
    """(operation name -> total ms, name -> ms of those runs that were asynchronous) from profiler trace events.
    An operation's time is its event's duration, except where XLA:CPU launched it asynchronously (its
    convolutions on Eigen's thread pool: the event covers the launch only, e.g. 0.04 of a 1 ms float32
    convolution, and the wait shows up as ``ThunkExecutor::Execute (wait for completion)``): there, the span from
    the launch to its ``end: NAME`` completion event, less the operations (of ``known``, default all) that
    started and finished inside that span (the completion event can come after the operations that waited for
    it ran; an independent operation on the other thread is subtracted too, so this errs low)."""
    ops = sorted((e for e in events if e.get("ph") == "X" and "dur" in e), key=lambda e: e["ts"])
    starts: dict = collections.defaultdict(list)
    ends: dict = collections.defaultdict(list)
    for e in ops:
        if e["name"].startswith("end: "):
            ends[e["name"][5:]].append(e["ts"])
        elif known is None or e["name"] in known:
            starts[e["name"]].append(e)
    tot: collections.Counter = collections.Counter()
    late: collections.Counter = collections.Counter()
    for name, evs in starts.items():
        done = ends.get(name, [])
        for k, e in enumerate(evs):
            t = e["dur"]
            if k < len(done) and len(done) == len(evs) and done[k] - e["ts"] > 1.5 * e["dur"] + 20:
                lo, hi = e["ts"], done[k]
                inner = sum(o["dur"] for o in ops if not o["name"].startswith("end: ") and o is not e
                            and (known is None or o["name"] in known) and lo < o["ts"] and o["ts"] + o["dur"] <= hi)
                t = max(e["dur"], hi - lo - inner)
                late[name] += t / 1e3
            tot[name] += t / 1e3
    return dict(tot), dict(late)


def traced_ops(fn, reps: int, known: set | None = None) -> tuple[dict, float, dict]:
    """(XLA operation name -> total ms per call, median wall ms per call, name -> ms per call of its asynchronous
    runs) over ``reps`` traced calls (``op_times``)."""
    for _ in range(2):
        jax.block_until_ready(fn())
    walls = []
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for _ in range(reps):
                t0 = time.perf_counter()
                jax.block_until_ready(fn())
                walls.append(time.perf_counter() - t0)
        files = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)
        if not files:
            raise SystemExit("the profiler wrote no trace (is this backend traced by jax.profiler?)")
        with gzip.open(files[0]) as f:
            events = json.load(f)["traceEvents"]
    tot, late = op_times(events, known)
    return ({k: v / reps for k, v in tot.items()}, 1e3 * statistics.median(walls),
            {k: v / reps for k, v in late.items()})


def trace(net, x, reps: int, top: int):
    step = execute.auto_step(net)
    scopes = {execute.scope_name(lay): lay.name for lay in net.layers}
    res, tops, walls, asyncs = {}, {}, {}, {}
    for path, (fn, hlo) in compiled_paths(net, x, step).items():
        names = op_layers(hlo, scopes)
        known = {n for n in re.findall(r'^\s*(?:ROOT )?%?([\w.\-]+) = ', hlo, re.M) if not _CONTAINER.match(n)}
        ops, walls[path], late = traced_ops(fn, reps, known)
        asyncs[path] = sorted(late.items(), key=lambda t: -t[1])
        per = collections.Counter()
        for op, ms in ops.items():
            if op in known:
                per[names.get(op, "(other)")] += ms
        res[path] = dict(per)
        tops[path] = [dict(op=op, layer=names.get(op, "(other)"), ms=ms) for op, ms in
                      sorted(((o, m) for o, m in ops.items() if o in known), key=lambda t: -t[1])[:top]]
    rows = []
    for lay in net.layers:
        rows.append(dict(network=net.name, layer=lay.name, kind=lay.kind, macs=lay.macs, batch=len(x), step=step,
                         **{f"{p}_ms": res[p].get(lay.name, 0.0) for p in _PATHS}))
        r = rows[-1]
        print(f"{net.name:<22} {lay.name:<14} {lay.kind:<9} {lay.macs / 1e6:6.2f} MMAC  "
              + "  ".join(f"{p} {r[p + '_ms']:7.2f}" for p in _PATHS), flush=True)
    other = {p: res[p].get("(other)", 0.0) for p in _PATHS}
    print(f"{net.name:<22} {'(other)':<24} {'':>11}  " + "  ".join(f"{p} {other[p]:7.2f}" for p in _PATHS))
    sums = {p: sum(res[p].values()) for p in _PATHS}
    print(f"{net.name:<22} {'sum of operations (ms)':<24} {'':>11}  "
          + "  ".join(f"{p} {sums[p]:7.2f}" for p in _PATHS))
    print(f"{net.name:<22} {'wall per call (ms)':<24} {'':>11}  "
          + "  ".join(f"{p} {walls[p]:7.2f}" for p in _PATHS))
    for p in _PATHS:
        print(f"  top {p}: " + ", ".join(f"{t['op']} [{t['layer']}] {t['ms']:.2f}" for t in tops[p]))
        if asyncs[p]:
            print(f"  asynchronous in {p} (launch to completion, less what ran inside; included above): "
                  + ", ".join(f"{op} {ms:.2f}" for op, ms in asyncs[p][:top]))
    return dict(rows=rows, other=other, sums=sums, walls=walls, top=tops, batch=len(x), step=step,
                asynchronous={p: dict(v) for p, v in asyncs.items()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--top", type=int, default=6, help="most expensive XLA operations listed per path")
    p.add_argument("--nets", nargs="+", default=["dronet", "mobilenet"], choices=sorted(nb._NETS),
                   help="as benchmarks/network.py --nets")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "network_trace.json"))
    args = p.parse_args(argv)
    if args.batch < 1 or args.reps < 1:
        p.error(f"--batch {args.batch} / --reps {args.reps}: expected >= 1")
    print(f"jaxpulp {__version__}, jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs")
    nets = nb._NETS
    out = {}
    for name in args.nets:
        net = nets[name]()
        out[net.name] = trace(net, nb._inputs(net, args.batch, np.random.default_rng(0)), args.reps, args.top)
    with open(args.json, "w") as f:
        json.dump(dict(jaxpulp=__version__, jax=jax.__version__, backend=jax.default_backend(), cpus=os.cpu_count(),
                       networks=out), f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
