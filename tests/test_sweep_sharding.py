"""Sharding over devices (4 CPU host devices forced through XLA_FLAGS, in a subprocess) and over hosts
(two ``jax.distributed`` processes on this machine)."""
import json
import os
import socket
import subprocess
import sys
import textwrap

from jaxpulp.sweep import SweepSpec, read_rows, run_sweep

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from jaxpulp import costtable
    from jaxpulp.sweep import SweepSpec, prepare, run_sweep, read_rows, make_mesh
    from jaxpulp.sweep._driver import make_cost_fn
    from jaxpulp.sweep import _metric

    out = {"devices": jax.device_count()}
    spec = SweepSpec(net="toy", samples=1000, enumerate=False, seed=4)
    net, table, space, mode, total = prepare(spec)
    mesh = make_mesh()
    fn = make_cost_fn(space, mode, 4, mesh)
    idx = jax.device_put(np.arange(64, dtype=np.int32), NamedSharding(mesh, P("cfg")))
    cfg, res = fn(jax.device_put(space.arrays, NamedSharding(mesh, P())), idx)
    out["result_devices"] = len(res["cycles"].sharding.device_set)
    out["shard_rows"] = sorted(s.data.shape[0] for s in res["cycles"].addressable_shards)
    ref = costtable.evaluate(space, costtable.decode_sampled(space.arrays, jnp.arange(64), 4))
    out["equal"] = all(bool(np.array_equal(np.asarray(res[k]), np.asarray(ref[k]))) for k in ref)
    run_sweep(spec, sys.argv[1], chunk=128, parquet=False)
    mspec = SweepSpec(net="toy", samples=8, enumerate=False, seed=4, metric=True, inputs=2)
    run_sweep(mspec, sys.argv[2], chunk=8, parquet=False)
    rows = sorted(read_rows(sys.argv[2]), key=lambda r: r["index"])
    x = _metric.random_inputs(net, 2, 4)
    y = _metric.reference_outputs(net, x)
    cfgs = np.stack([space.config_of(r["config"]) for r in rows])
    m = _metric.make_metric_fn(net, space)(jnp.asarray(cfgs), jnp.asarray(x), jnp.asarray(y), None)
    out["metric_max_diff"] = float(np.max(np.abs(np.asarray(m["error"]) - np.array([r["error"] for r in rows]))))
    print(json.dumps(out))
""")


def test_sweep_shards_over_four_host_devices(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    a, b = str(tmp_path / "multi.jsonl"), str(tmp_path / "metric.jsonl")
    r = subprocess.run([sys.executable, "-c", SCRIPT, a, b], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4 and out["result_devices"] == 4 and out["shard_rows"] == [16, 16, 16, 16]
    assert out["equal"]
    assert out["metric_max_diff"] <= 1e-6
    single = str(tmp_path / "single.jsonl")  # this process: one device
    run_sweep(SweepSpec(net="toy", samples=1000, enumerate=False, seed=4), single, chunk=1000, parquet=False)
    assert sorted(open(a).read().splitlines()) == sorted(open(single).read().splitlines())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_host_with_jax_distributed(tmp_path):
    out = str(tmp_path / "d.jsonl")
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, "-m", "jaxpulp.cli", "sweep", "--net", "toy", "--out", out,
                               "--samples", "90", "--sample", "--seed", "8", "--distributed", "--coordinator",
                               f"localhost:{port}", "--num-processes", "2", "--process-id", str(i), "--no-parquet"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert os.path.exists(str(tmp_path / "d.shard0of2.jsonl")) and os.path.exists(str(tmp_path / "d.shard1of2.jsonl"))
    rows = read_rows(out)
    assert sorted(r["index"] for r in rows) == list(range(90))
    whole = str(tmp_path / "w.jsonl")
    run_sweep(SweepSpec(net="toy", samples=90, enumerate=False, seed=8), whole, parquet=False)
    key = lambda r: r["index"]  # noqa: E731
    assert sorted(rows, key=key) == sorted(read_rows(whole), key=key)
