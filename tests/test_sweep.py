"""Sweeps: rows equal the cost tables, resume after a kill with nothing lost or duplicated, shards partition
the configurations, the metric's precision re-derivation, the CLI."""
import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpulp import JaxpulpError, costtable
from jaxpulp.cli import main
from jaxpulp.sweep import SweepSpec, _metric, prepare, read_rows, run_sweep


def _cost_rows_ok(space, mode, seed, rows):
    idx = np.array([r["index"] for r in rows])
    if mode == "enumerate":
        cfgs = costtable.decode_enumerated(space.arrays, jnp.asarray(idx))
    else:
        cfgs = costtable.decode_sampled(space.arrays, jnp.asarray(idx), seed)
    res = costtable.evaluate(space, cfgs)
    cfgs = np.asarray(cfgs)
    for j, r in enumerate(rows):
        assert r["config"] == space.types_of(cfgs[j])
        assert r["cycles"] == int(res["cycles"][j]) and r["memory_bytes"] == int(res["memory_bytes"][j])
        assert r["l1_fit"] == bool(res["l1_fit"][j]) and r["supported"] == bool(res["supported"][j])


def test_sweep_enumerates_small_space(tmp_path):
    spec = SweepSpec(net="toy", samples=10_000)
    out = str(tmp_path / "toy.jsonl")
    s = run_sweep(spec, out, chunk=1000, parquet=False)
    _, _, space, mode, total = prepare(spec)
    assert (s.mode, s.total, s.written, s.resumed) == ("enumerate", 3 ** 8, 3 ** 8, 0) == (mode, total, total, 0)
    rows = read_rows(out)
    assert sorted(r["index"] for r in rows) == list(range(total))
    assert all(r["seed"] == 0 and r["version"] for r in rows)
    _cost_rows_ok(space, mode, 0, rows[::97])
    meta = json.load(open(out + ".meta.json"))
    assert meta["spec"]["net"] == "toy" and meta["total"] == total and meta["mode"] == "enumerate"
    # started again: nothing to do, nothing duplicated
    s2 = run_sweep(spec, out, chunk=1000, parquet=False)
    assert (s2.written, s2.resumed) == (0, total)
    assert len(read_rows(out)) == total


def test_resume_after_partial_last_line(tmp_path):
    spec = SweepSpec(net="toy", samples=500, enumerate=False, seed=3)
    full = str(tmp_path / "full.jsonl")
    run_sweep(spec, full, chunk=64, parquet=False)
    data = open(full, "rb").read()
    cut = str(tmp_path / "cut.jsonl")
    lines = data.splitlines(keepends=True)
    with open(cut, "wb") as f:  # 200 whole rows and half of the next: a kill in the middle of a write
        f.write(b"".join(lines[:200]) + lines[200][:37])
    with open(cut + ".meta.json", "w") as f:
        f.write(open(full + ".meta.json").read())
    s = run_sweep(spec, cut, chunk=64, parquet=False)
    assert (s.resumed, s.written) == (200, 300)
    assert sorted(open(cut, "rb").read().splitlines()) == sorted(data.splitlines())


def test_resume_refuses_another_sweep(tmp_path):
    out = str(tmp_path / "r.jsonl")
    run_sweep(SweepSpec(net="toy", samples=50, enumerate=False), out, parquet=False)
    with pytest.raises(JaxpulpError, match="samples"):
        run_sweep(SweepSpec(net="toy", samples=60, enumerate=False), out, parquet=False)
    s = run_sweep(SweepSpec(net="toy", samples=60, enumerate=False), out, parquet=False, overwrite=True)
    assert s.written == 60 and len(read_rows(out)) == 60


def test_shards_partition_the_configurations(tmp_path):
    spec = SweepSpec(net="toy", samples=300, enumerate=False, seed=1)
    out = str(tmp_path / "s.jsonl")
    for k in range(3):
        s = run_sweep(spec, out, shard=(k, 3), chunk=32, parquet=False)
        assert s.path.endswith(f"s.shard{k}of3.jsonl") and s.local == 100
    rows = read_rows(out)  # x.jsonl stands for its shard files
    assert sorted(r["index"] for r in rows) == list(range(300))
    whole = str(tmp_path / "w.jsonl")
    run_sweep(spec, whole, chunk=300, parquet=False)
    key = lambda r: r["index"]  # noqa: E731
    assert sorted(rows, key=key) == sorted(read_rows(whole), key=key)


def _line_count(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def test_killed_sweep_resumes_with_nothing_lost_or_duplicated(tmp_path):
    """A real kill (SIGKILL) of ``jaxpulp sweep`` while it writes, then the same command again."""
    out = str(tmp_path / "k.jsonl")
    n = 400
    cmd = [sys.executable, "-m", "jaxpulp.cli", "sweep", "--net", "toy", "--out", out, "--samples", str(n),
           "--sample", "--seed", "2", "--chunk", "1", "--no-parquet", "--no-progress"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while _line_count(out) < 20 and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.002)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = _line_count(out)
    assert 20 <= before < n, f"the kill landed after {before} rows"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{before:,} already there" in r.stdout
    rows = read_rows(out)
    assert sorted(x["index"] for x in rows) == list(range(n))
    _, _, space, mode, _ = prepare(SweepSpec(net="toy", samples=n, enumerate=False, seed=2))
    _cost_rows_ok(space, mode, 2, rows)


def test_metric_rule_and_batching():
    spec = SweepSpec(net="toy", samples=10)
    net, _, space, _, _ = prepare(spec)
    import jax

    from jaxpulp.network import execute as netrun

    x = jnp.asarray(_metric.random_inputs(net, 3, 0))
    y8 = jnp.asarray(_metric.reference_outputs(net, x))
    f = _metric.make_metric_fn(net, space)
    cfg = space.config_of({"conv0": "u4", "pw1.w": "i4"})
    cfgs = np.array(costtable.decode_sampled(space.arrays, jnp.arange(4), 9))
    cfgs[0] = space.config_of({})  # every variable at the network's own precision
    cfgs[1] = cfg
    batch = f(jnp.asarray(cfgs), x, y8, None)
    assert float(batch["error"][0]) == 0.0 and float(batch["agreement"][0]) == 1.0
    assert (np.asarray(batch["error"])[1:] > 0).all()
    # a batch of configurations (vmap) equals one call per configuration
    for j in range(4):
        one = f(jnp.asarray(cfgs[j:j + 1]), x, y8, None)
        assert float(one["error"][0]) == pytest.approx(float(batch["error"][j]), rel=1e-6)
    # the rule: a 4-bit output tensor is the 8-bit one >> 4 exactly ((kappa*acc + lam) >> (shift + 4),
    # clipped to u4), and 4-bit weights are round(w / 16) clipped to i4
    der = _metric.Deriver(space, net.outputs[0])
    params, acts, w_types, _, _ = der.derive(net.params, jnp.asarray(cfg))
    keep = jax.jit(lambda p, a: netrun.run_values(net, x, params=p, act_types=a, keep=True))
    p8, a8, _, _, _ = der.derive(net.params, jnp.asarray(cfgs[0]))
    t4, t8 = keep(params, acts), keep(p8, a8)
    np.testing.assert_array_equal(np.asarray(t4["conv0"]), np.asarray(t8["conv0"]) >> 4)
    np.testing.assert_array_equal(np.asarray(params["pw1"]["w"]),
                                  np.clip(np.round(net.params["pw1"]["w"] / 16.0), -8, 7))
    assert int(w_types["pw1"]) == 4 and int(acts["mp"][0]) == 8


def test_metric_with_labels_from_data_file(tmp_path):
    net, _, _, _, _ = prepare(SweepSpec(net="toy", samples=10))
    x = _metric.random_inputs(net, 4, 5)
    y = np.argmax(_metric.reference_outputs(net, x).reshape(4, -1), axis=1)
    data = tmp_path / "d.npz"
    np.savez(data, x=x.astype(np.uint8), y=y)
    out = str(tmp_path / "m.jsonl")
    spec = SweepSpec(net="toy", samples=6, enumerate=False, metric=True, inputs=4, data=str(data))
    run_sweep(spec, out, parquet=False)
    rows = read_rows(out)
    assert len(rows) == 6 and all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert all(r["accuracy"] == r["agreement"] for r in rows)  # the labels are the given network's classes
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, 3, 3, 8), np.uint8))
    with pytest.raises(JaxpulpError, match="data="):
        run_sweep(SweepSpec(net="toy", samples=6, metric=True, data=str(bad)), str(tmp_path / "b.jsonl"))


def test_parquet_copy(tmp_path):
    pytest.importorskip("pyarrow")
    out = str(tmp_path / "p.jsonl")
    run_sweep(SweepSpec(net="toy", samples=80, enumerate=False), out, parquet=True)
    pq_rows = read_rows(str(tmp_path / "p.parquet"))
    js_rows = read_rows(out)
    assert len(pq_rows) == 80
    for a, b in zip(sorted(pq_rows, key=lambda r: r["index"]), sorted(js_rows, key=lambda r: r["index"]), strict=True):
        assert {k: a[k] for k in b} == b


def test_cli_sweep_pareto_and_lut(tmp_path, capsys):
    out = str(tmp_path / "c.jsonl")
    assert main(["sweep", "--net", "toy", "--out", out, "--samples", "200", "--sample", "--no-parquet",
                 "--no-progress"]) == 0
    assert "200 rows written" in capsys.readouterr().out
    assert main(["pareto", out, "--out", str(tmp_path / "f.jsonl"), "--objectives", "cycles,weight_bytes"]) == 0
    text = capsys.readouterr().out
    assert "on the front of (cycles, weight_bytes)" in text
    front = read_rows(str(tmp_path / "f.jsonl"))
    rows = read_rows(out)
    for r in rows:  # nothing in the sweep dominates a front row
        for f in front:
            assert not (r["cycles"] <= f["cycles"] and r["weight_bytes"] <= f["weight_bytes"]
                        and (r["cycles"], r["weight_bytes"]) != (f["cycles"], f["weight_bytes"]))
    lut = str(tmp_path / "lut.json")
    assert main(["cost-lut", "--net", "toy", "--out", lut]) == 0
    assert json.load(open(lut))["layers"][0]["name"] == "conv0"
    assert main(["sweep", "--net", "nope", "--out", out]) == 2
    assert "net='nope'" in capsys.readouterr().err
    assert main(["sweep", "--net", "toy", "--out", out, "--shard", "3/2"]) == 2
