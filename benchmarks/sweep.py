"""Precision-sweep throughput against same-run baselines, on the 28-layer MobileNetV1 (alpha 0.25, 128 px).

Measured in one run on this machine:
  * cost-only evaluation: configurations/s of the jitted gather-and-sum over exact cost tables (decoded
    configurations; the sample stream decoded on the fly; sharded over all local devices), against the
    baseline: a plain Python loop over configurations calling the cost model for every layer
    (``costtable.reference_cost``; ``kernel_cost`` is cached, so this is its fastest form);
  * end-to-end ``run_sweep`` to JSONL (configurations/s including formatting and fsync'd writes);
  * metric sweep: configuration x input pairs per second of the value path with precision as data, the sweep's
    batched method (configurations folded into the batch) against the former ``lax.map`` loop over
    configurations and a Python loop calling one jitted configuration, at 8 x 8 and 32 configs x 64 inputs;
  * surrogate: value+grad time of the expected network cost after jit, against the value alone and against
    a central finite-difference gradient (2 x logits evaluations of the same jitted value).
The batched metric's first call is also measured in a fresh process (``--first-call``; JSON
``batched_first_call_fresh``: trace / lower / XLA compile / rest from JAX's compile events).
Prints ratios and writes JSON (default benchmarks/results/sweep.json).

    python benchmarks/sweep.py                 # full
    python benchmarks/sweep.py --quick         # smaller batches (a smoke run)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import __version__, costtable, surrogate
from jaxpulp.network import zoo


def best_time(fn, reps: int) -> float:
    """Minimum wall time (s) of ``fn()`` over ``reps`` calls after one warm-up call."""
    jax.block_until_ready(fn())
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return min(ts)


def bench_cost(space, B: int, reps: int) -> dict:
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxpulp.sweep import make_mesh
    from jaxpulp.sweep._driver import make_cost_fn

    a = space.arrays
    l1, l2 = space.cluster.l1_bytes, space.cluster.l2_bytes
    idx = jnp.arange(B, dtype=jnp.int32)
    cfgs = jax.jit(lambda a, i: costtable.decode_sampled(a, i, 0))(a, idx).block_until_ready()
    ev = jax.jit(lambda a, c: costtable.evaluate_blocked(a, c, l1, l2))
    t_eval = best_time(lambda: ev(a, cfgs), reps)
    gen = jax.jit(lambda a, i: costtable.evaluate_blocked(a, costtable.decode_sampled(a, i, 0), l1, l2))
    t_gen = best_time(lambda: gen(a, idx), reps)
    mesh = make_mesh()
    fn = make_cost_fn(space, "sample", 0, mesh)
    ad = jax.device_put(a, NamedSharding(mesh, P()))
    B2 = B // mesh.devices.size * mesh.devices.size
    ids = jax.device_put(np.arange(B2, dtype=np.int32), NamedSharding(mesh, P("cfg")))
    t_shard = best_time(lambda: fn(ad, ids), reps)
    # baseline: Python loop over configurations calling the cost model layer by layer
    some = np.asarray(cfgs[:200])
    costtable.reference_cost(space, some[0])  # warm the kernel_cost cache
    t0 = time.perf_counter()
    for c in some:
        costtable.reference_cost(space, c)
    t_loop = (time.perf_counter() - t0) / len(some)
    # the two agree
    got = ev(a, cfgs[:5])
    for j in range(5):
        assert int(got["cycles"][j]) == costtable.reference_cost(space, np.asarray(cfgs[j]))["cycles"]
    return dict(batch=B, eval_configs_per_s=B / t_eval, sample_and_eval_configs_per_s=B / t_gen,
                sharded_configs_per_s=B2 / t_shard, devices=int(mesh.devices.size),
                python_loop_configs_per_s=1 / t_loop, ratio_eval_vs_loop=t_loop * B / t_eval)


def bench_sweep_file(n: int) -> dict:
    from jaxpulp.sweep import SweepSpec, run_sweep

    spec = SweepSpec(net="mobilenet_v1", samples=n, enumerate=False)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "s.jsonl")
        run_sweep(spec, out, parquet=False, overwrite=True)  # tables, compile
        t0 = time.perf_counter()
        s = run_sweep(spec, out, parquet=False, overwrite=True)
        dt = time.perf_counter() - t0
        size = os.path.getsize(out)
    return dict(configs=n, seconds=dt, configs_per_s=s.written / dt, bytes_per_row=size / n)


def bench_metric(net, space, shapes, reps: int) -> list:
    """Metric sweep throughput (configuration x input pairs/s) at each (configurations, inputs) shape, three
    ways in one run, each timed ``reps`` times interleaved (min; wall and process CPU time): ``batched`` (the
    sweep's method: configurations folded into the batch), ``loop`` (the former method: ``lax.map`` over
    configurations, each the definition ``config_outputs``), ``python_loop`` (a Python loop over
    configurations calling one jitted configuration); for context ``plain_values``: inputs/s of the plain value
    path (``run_values``, the network's own precision) at batch N. The batched metrics are checked against the
    loop's."""
    from jaxpulp.network import execute as netrun
    from jaxpulp.sweep import _metric

    der = _metric.Deriver(space, net.outputs[0])
    out = []
    for n_cfg, n_in in shapes:
        x = jnp.asarray(_metric.random_inputs(net, n_in, 0))
        y = jnp.asarray(_metric.reference_outputs(net, x))
        cfgs = costtable.decode_sampled(space.arrays, jnp.arange(n_cfg), 0)
        fb = _metric.make_metric_fn(net, space)
        fl = _metric.make_metric_fn(net, space, method="loop")
        one = jax.jit(lambda c, x=x: _metric.config_outputs(net, der, c, x)[0])
        plain = jax.jit(lambda xs: netrun.run_values(net, xs))
        fns = {"batched": lambda fb=fb, x=x, y=y, c=cfgs: fb(c, x, y, None),
               "loop": lambda fl=fl, x=x, y=y, c=cfgs: fl(c, x, y, None),
               "python_loop": lambda one=one, c=cfgs, n=n_cfg: [one(c[j]) for j in range(n)],
               # context, not a sweep: the network's own precision, one forward of the N inputs (scaled below)
               "plain_values": lambda plain=plain, x=x: plain(x)}
        row: dict = dict(configs=n_cfg, inputs=n_in)
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            row[f"{k}_first_call_s"] = time.perf_counter() - t0
        wall = {k: float("inf") for k in fns}
        cpu = dict(wall)
        for _ in range(reps):
            for k, f in fns.items():
                t0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(f())
                wall[k] = min(wall[k], time.perf_counter() - t0)
                cpu[k] = min(cpu[k], time.process_time() - c0)
        for k in fns:
            n = n_in if k == "plain_values" else n_cfg * n_in
            row[f"{k}_pairs_per_s"] = n / wall[k]
            row[f"{k}_pairs_per_cpu_s"] = n / cpu[k]
        row["ratio_batched_vs_loop"] = wall["loop"] / wall["batched"]
        row["ratio_batched_vs_loop_cpu"] = cpu["loop"] / cpu["batched"]
        a, b = fns["batched"](), fns["loop"]()
        assert np.array_equal(np.asarray(a["agreement"]), np.asarray(b["agreement"]))
        out.append(row)
    return out


_COMPILE_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
                   "/jax/core/compile/backend_compile_duration": "compile_s"}


def metric_first_call(n_cfg: int, n_in: int) -> dict:
    """The batched metric's first call as a user sees it, in this (fresh) process: ``make_metric_fn`` and the
    first call, split with JAX's compile events into ``trace_s`` (the outermost trace), ``lower_s``,
    ``compile_s`` (XLA) and ``other_s`` (the plan, transfers and the first execution); ``second_s`` is one
    steady call. The network, its space, inputs and reference outputs are prepared before the clock starts."""
    import jax.monitoring

    from jaxpulp.sweep import _metric

    net = zoo.mobilenet_v1(alpha=0.25, resolution=128)
    space = costtable.config_space(costtable.build_table(net))
    x = jnp.asarray(_metric.random_inputs(net, n_in, 0))
    y = jnp.asarray(_metric.reference_outputs(net, x))
    cfgs = costtable.decode_sampled(space.arrays, jnp.arange(n_cfg), 0).block_until_ready()
    ev: dict = {v: [] for v in _COMPILE_EVENTS.values()}
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: ev[_COMPILE_EVENTS[event]].append(secs) if event in _COMPILE_EVENTS else None)
    t0 = time.perf_counter()
    f = _metric.make_metric_fn(net, space)
    jax.block_until_ready(f(cfgs, x, y, None))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(f(cfgs, x, y, None))
    out = dict(configs=n_cfg, inputs=n_in, first_call_s=first, second_s=time.perf_counter() - t0,
               trace_s=max(ev["trace_s"], default=0.0), lower_s=sum(ev["lower_s"]), compile_s=sum(ev["compile_s"]))
    out["other_s"] = first - out["trace_s"] - out["lower_s"] - out["compile_s"]
    return out


def fresh_metric_first_call(n_cfg: int, n_in: int) -> dict | None:
    """``metric_first_call`` in a new Python process (no warm jit / XLA caches of this one); None if it fails."""
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--first-call", str(n_cfg), str(n_in)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"first-call subprocess failed: {r.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_surrogate(space, reps: int) -> dict:
    st = surrogate.surrogate_tables(space)
    logits = jax.random.normal(jax.random.PRNGKey(0), st.valid.shape)
    val = jax.jit(lambda logits: surrogate.expected_cost_from_logits(st, logits)["cycles"])
    vg = jax.jit(jax.value_and_grad(lambda logits: surrogate.expected_cost_from_logits(st, logits)["cycles"]))
    t_val = best_time(lambda: val(logits), reps)
    t_vg = best_time(lambda: vg(logits), reps)
    n = int(np.asarray(st.valid).sum())
    eye = jnp.eye(logits.size).reshape((-1,) + logits.shape)
    fd = jax.jit(jax.vmap(lambda d: val(logits + 1e-2 * d) - val(logits - 1e-2 * d)))
    t_fd = best_time(lambda: fd(eye), reps)
    return dict(variables=int(st.valid.shape[0]), logits=n, layers=int(st.slot_vars.shape[0]),
                value_us=t_val * 1e6, value_and_grad_us=t_vg * 1e6, finite_difference_grad_us=t_fd * 1e6,
                ratio_fd_vs_grad=t_fd / t_vg)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small batches (smoke run)")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "sweep.json"))
    p.add_argument("--first-call", nargs=2, type=int, metavar=("CONFIGS", "INPUTS"),
                   help="only the batched metric's first call in this process, as one JSON line (used in a fresh "
                        "process by the full run)")
    args = p.parse_args(argv)
    if args.first_call:
        print(json.dumps(metric_first_call(*args.first_call)))
        return 0
    q = args.quick
    print(f"jaxpulp {__version__}, jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs, "
          f"devices {jax.devices()}", flush=True)
    net = zoo.mobilenet_v1(alpha=0.25, resolution=128)
    t0 = time.perf_counter()
    table = costtable.build_table(net)
    t_table = time.perf_counter() - t0
    space = costtable.config_space(table)
    weighted = sum(lay.kind in costtable.WEIGHTED for lay in net.layers)
    print(f"{net.name}: {weighted} weighted layers + {len(net.layers) - weighted} other, {len(space.variables)} "
          f"variables, {space.size:.3g} configurations; tables built in {t_table:.1f} s "
          f"({int(table.supported.sum()):,} supported entries)", flush=True)
    res = dict(network=net.name, weighted_layers=weighted, layers=len(net.layers), variables=len(space.variables),
               table_build_s=t_table)
    res["cost"] = c = bench_cost(space, 1 << (16 if q else 20), 3 if q else 5)
    print(f"cost-only: {c['eval_configs_per_s']:,.0f} configs/s (decoded), {c['sample_and_eval_configs_per_s']:,.0f} "
          f"(sample stream + eval), {c['sharded_configs_per_s']:,.0f} (sharded over {c['devices']} device(s)); "
          f"Python loop over the cost model {c['python_loop_configs_per_s']:,.0f} configs/s -> ratio "
          f"{c['ratio_eval_vs_loop']:,.0f}x", flush=True)
    res["sweep_file"] = s = bench_sweep_file(20_000 if q else 200_000)
    print(f"run_sweep to JSONL: {s['configs_per_s']:,.0f} configs/s end to end ({s['bytes_per_row']:.0f} bytes/row)",
          flush=True)
    shapes = [(4, 4)] if q else [(8, 8), (32, 64)]
    res["metric"] = ms = bench_metric(net, space, shapes, 2 if q else 3)
    for m in ms:
        m["batched_first_call_fresh"] = fr = fresh_metric_first_call(m["configs"], m["inputs"])
        split = ("" if fr is None else f"; fresh process {fr['first_call_s']:.1f} s = trace {fr['trace_s']:.2f} "
                 f"+ lower {fr['lower_s']:.2f} + XLA {fr['compile_s']:.2f} + rest {fr['other_s']:.2f}")
        print(f"metric {m['configs']} configs x {m['inputs']} inputs: batched {m['batched_pairs_per_s']:,.1f} pairs/s "
              f"({m['batched_pairs_per_cpu_s']:,.1f} per CPU-s; first call {m['batched_first_call_s']:.1f} s{split}), "
              f"lax.map loop {m['loop_pairs_per_s']:,.1f} ({m['loop_pairs_per_cpu_s']:,.1f}), Python loop "
              f"{m['python_loop_pairs_per_s']:,.1f}; plain value path {m['plain_values_pairs_per_s']:,.1f} inputs/s at "
              f"batch {m['inputs']} -> batched/loop {m['ratio_batched_vs_loop']:.2f}x wall, "
              f"{m['ratio_batched_vs_loop_cpu']:.2f}x CPU", flush=True)
    res["surrogate"] = g = bench_surrogate(space, 20 if q else 100)
    print(f"surrogate ({g['variables']} variables, {g['layers']} layers): value {g['value_us']:.0f} us, value+grad "
          f"{g['value_and_grad_us']:.0f} us after jit; finite differences {g['finite_difference_grad_us']:.0f} us -> "
          f"ratio {g['ratio_fd_vs_grad']:.1f}x", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(jaxpulp=__version__, jax=jax.__version__, backend=jax.default_backend(),
                       device=str(jax.devices()[0]), device_kind=jax.devices()[0].device_kind,
                       machine=platform.machine(), cpus=os.cpu_count(), quick=q, results=res), f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
