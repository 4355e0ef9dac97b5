"""Regression tests of issue 10 (nothing lost, nothing vacuous, nothing quietly wrong): sweep --overwrite, the
output lock, stale .meta.json, strict resume, pareto's sweep checks, vacuous golden checks, Deeploy activation
matching, chunked runs, kernel-API argument checks, progress lines, plots and docs that do what they say."""
from __future__ import annotations

import importlib.util
import io
import json
import os

import numpy as np
import pytest

from jaxpulp import cli
from jaxpulp.errors import JaxpulpError
from jaxpulp.sweep import _results

NET = "toy:size=4"


def _sweep(out, *extra):
    return cli.main(["sweep", "--net", NET, "--samples", "24", "--sample", "--out", str(out), "--no-parquet",
                     "--no-progress", *extra])


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    out = d / "s.jsonl"
    assert _sweep(out) == 0
    return out


def _snapshot(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))}


# ------------------------------------------------------------------------------------- data loss


def test_overwrite_with_a_typo_keeps_the_finished_sweep(done_sweep, tmp_path, capsys):
    import shutil

    d = tmp_path / "keep"
    shutil.copytree(done_sweep.parent, d)
    before = _snapshot(d)
    rc = cli.main(["sweep", "--net", "toyy", "--out", str(d / "s.jsonl"), "--overwrite"])
    assert rc == 2 and "toyy" in capsys.readouterr().err
    assert _snapshot(d) == before


def test_overwrite_replaces_the_results_once_rows_are_written(done_sweep, tmp_path):
    import shutil

    d = tmp_path / "ow"
    shutil.copytree(done_sweep.parent, d)
    assert _sweep(d / "s.jsonl", "--seed", "7", "--overwrite") == 0
    rows = _results.read_rows(str(d / "s.jsonl"))
    assert len(rows) == 24 and {r["seed"] for r in rows} == {7}
    assert json.load(open(d / "s.jsonl.meta.json"))["spec"]["seed"] == 7
    assert sorted(os.listdir(d)) == ["s.jsonl", "s.jsonl.meta.json"]  # no temporary file left


def test_second_writer_on_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    with _results.locked(str(out)):  # another process holding the file (flock conflicts across open files)
        assert _sweep(out) == 2
    assert "another process is writing" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "s.jsonl.meta.json").exists()


def test_sweep_failing_before_its_first_row_leaves_nothing_that_blocks(tmp_path, monkeypatch, capsys):
    from jaxpulp.sweep import _driver

    out = tmp_path / "s.jsonl"

    def broken(*a, **k):
        raise RuntimeError("device went away")

    monkeypatch.setattr(_driver, "make_cost_fn", broken)
    assert _sweep(out) == 2
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    # a stale .meta.json of another sweep without rows (as older versions left) does not block either
    (tmp_path / "s.jsonl.meta.json").write_text(json.dumps({"format": "jaxpulp-sweep", "spec": {"net": "x"}}))
    assert _sweep(out, "--seed", "3") == 0
    assert json.load(open(tmp_path / "s.jsonl.meta.json"))["spec"]["seed"] == 3


def test_resume_parses_each_line_fully(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"index": 0, "config": {}}\n{"index": 1, garbage that merely starts like a row\n')
    with pytest.raises(JaxpulpError, match="x.jsonl:2: not a results row"):
        _results.scan_done(str(p), lambda i: i, 4)


def test_ctrl_c_keeps_rows_and_resume_completes(tmp_path, monkeypatch, capsys):
    from jaxpulp.sweep import _results as R

    out = tmp_path / "s.jsonl"
    real = R.append_lines
    calls = []

    def interrupt_after_first(f, lines):
        real(f, lines)
        calls.append(len(lines))
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "append_lines", interrupt_after_first)
    assert _sweep(out, "--chunk", "8") == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert len(_results.read_rows(str(out))) == 8
    assert _sweep(out, "--chunk", "8") == 0
    assert sorted(r["index"] for r in _results.read_rows(str(out))) == list(range(24))


# ------------------------------------------------------------------------------------------ pareto


def _fake(d, name, rows, meta):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    if meta is not None:
        with open(p + ".meta.json", "w") as f:
            json.dump(meta, f)
    return p


def _row(i, c=10, m=5):
    return {"index": i, "supported": True, "cycles": c + i, "memory_bytes": m - i, "config": {"a": "u4"}}


META = {"format": "jaxpulp-sweep", "version": "0", "mode": "sample", "total": 4, "table_digest": "t",
        "data_digest": None, "variables": [], "spec": {"net": "toy"}}


def test_pareto_refuses_rows_of_different_sweeps(tmp_path):
    a = _fake(tmp_path, "a.jsonl", [_row(0)], dict(META, shard=[0, 1]))
    b = _fake(tmp_path, "b.jsonl", [_row(1)], dict(META, shard=[0, 1], spec={"net": "mobilenet_v1"}))
    with pytest.raises(JaxpulpError, match="different sweeps .*spec"):
        _results.read_sweep([a, b])


def test_pareto_reports_missing_shards_and_completeness(tmp_path, capsys):
    _fake(tmp_path, "s.shard0of2.jsonl", [_row(0), _row(2)], dict(META, shard=[0, 2]))
    sw = _results.read_sweep(str(tmp_path / "s.jsonl"))
    assert sw.total == 4 and sw.missing_shards == [str(tmp_path / "s.shard1of2.jsonl")]
    assert cli.main(["pareto", str(tmp_path / "s.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "2 of the sweep's 4 configurations (50.0%)" in out and "missing shards: " in out


def test_pareto_refuses_shards_of_two_different_n(tmp_path):
    _fake(tmp_path, "s.shard0of2.jsonl", [_row(0), _row(2)], dict(META, shard=[0, 2]))
    _fake(tmp_path, "s.shard0of3.jsonl", [_row(0), _row(3)], dict(META, shard=[0, 3]))
    with pytest.raises(JaxpulpError, match="different shard counts"):
        _results.read_sweep(str(tmp_path / "s.jsonl"))


def test_pareto_refuses_the_same_rows_twice(tmp_path):
    a = _fake(tmp_path, "s.jsonl", [_row(0), _row(1)], dict(META, shard=[0, 1]))
    with pytest.raises(JaxpulpError, match="given twice"):
        _results.read_sweep([a, a])


def test_pareto_of_a_real_sweep_is_complete(done_sweep, tmp_path, capsys):
    png = tmp_path / "f.png"
    assert cli.main(["pareto", str(done_sweep), "--png", str(png)]) == 0
    assert "24 of the sweep's 24 configurations (100.0%)" in capsys.readouterr().out
    assert png.stat().st_size > 1000


def test_pareto_plot_marks_the_all_8bit_network_and_defines_error(tmp_path):
    pytest.importorskip("matplotlib")
    from jaxpulp.sweep import _pareto

    rows = [dict(_row(i), error=0.1 * i, config={"a": "u4", "w": "i8"}) for i in range(3)]
    rows.append(dict(_row(3), error=0.0, config={"a": "u8", "w": "i8"}))
    assert _pareto.reference_row(rows) is rows[3]
    assert "||y - y_8bit||_2 / ||y_8bit||_2" in _pareto.METRIC_LABELS["error"]
    front = _pareto.front_rows(rows, _pareto.parse_objectives("cycles,memory_bytes"))
    assert os.path.getsize(_pareto.plot_front(rows, front, str(tmp_path / "p.png"), color="error")) > 1000


def test_pareto_of_a_sample_without_the_all_8bit_row_takes_it_from_the_cost_table(tmp_path):
    from jaxpulp.sweep import _pareto

    out = tmp_path / "e.jsonl"  # the whole (small) space enumerated: its all-8-bit row is a measured row
    assert cli.main(["sweep", "--net", NET, "--enumerate", "--out", str(out), "--no-parquet", "--no-progress"]) == 0
    sw = _results.read_sweep([str(out)])
    row = _pareto.reference_row(sw.rows)
    assert row is not None and sw.spec is not None
    ref = _pareto.reference_from_spec(sw.spec)
    assert (ref["cycles"], ref["memory_bytes"], ref["config"]) == (row["cycles"], row["memory_bytes"], row["config"])
    others = [r for r in sw.rows if r is not row]  # a sample that missed it: pareto still draws the star
    assert _pareto.reference_row(others) is None
    if importlib.util.find_spec("matplotlib"):
        png = str(tmp_path / "p.png")
        assert os.path.getsize(_pareto.plot_front(others, others[:3], png, color="error", reference=ref)) > 1000


# ----------------------------------------------------------------------------- golden comparisons


def test_a_layer_without_its_golden_is_reported_by_name():
    from jaxpulp.network import conformance
    from jaxpulp.sweep._nets import toy_net

    net = toy_net(size=4)
    files = {0: "d/out_layer0.txt", 1: "d/out_layer1.txt", 3: "d/out_layer3.txt"}  # as goldens.dory_layout
    miss = conformance.missing_goldens(net, files)
    assert [(m.what, m.tensor, m.ok) for m in miss] == [("out_layer2.txt", "pw1", False)]
    assert "pw1" in miss[0].first
    # the multi-input layout (out_K_layerN.txt) names the file of that input
    miss = conformance.missing_goldens(net, {0: "d/out_1_layer0.txt", 2: "d/out_1_layer2.txt"}, "out_1_layer")
    assert [m.what for m in miss] == ["out_1_layer1.txt"]


def test_deeploy_activations_match_by_name_or_once_by_position():
    from jaxpulp.network.conformance import match_activations

    z = np.zeros((1, 2, 2, 4), np.int64)
    cands = {"conv": z, "relu": z, "fc": np.arange(16).reshape(1, 2, 2, 4)}
    got = match_activations({"g0": z, "g1": z, "g2": z, "fc": z}, cands)
    assert [(c.tensor, c.ok) for c in got] == [("conv", True), ("relu", True), ("", False), ("fc", False)]
    assert "position" in got[0].note and "first in execution order of 2" in got[0].note
    assert "only tensor" in got[1].note and got[3].note == "matched by name"


# ----------------------------------------------------------------------------- quietly wrong


def test_mobilenet_arguments_are_validated():
    from jaxpulp.network import zoo

    for kw in (dict(alpha=-1), dict(alpha="abc"), dict(resolution=8), dict(num_classes=0)):
        with pytest.raises(JaxpulpError, match=next(iter(kw))):
            zoo.mobilenet_v1(**kw)


def test_net_suggestions_name_networks_not_helpers(capsys):
    assert cli.main(["cost-lut", "--net", "nope", "--out", "x.json"]) == 2
    err = capsys.readouterr().err
    assert "mobilenet_v1" in err and "dronet_input" not in err and "builtin" not in err


def test_value_paths_refuse_nan_fractions_and_out_of_range():
    from jaxpulp.kernels import conv, pool

    cfg = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    p = conv.Params(kappa=np.ones(4, np.int32), lam=np.zeros(4, np.int32), out_shift=4)
    w = np.zeros((4, 3, 3, 4), np.int64)
    for x, msg in ((np.full((4, 4, 4), np.nan), "dtype float64"), (np.full((4, 4, 4), 0.5), "dtype float64"),
                   (np.full((4, 4, 4), 1000), "value 1000 out of range for u8")):
        with pytest.raises(JaxpulpError, match=msg):
            conv.run_values(x, w, p, cfg=cfg)
    mp = pool.MaxPoolConfig("u8", "u8", H=4, W=4, C=4, Kh=2, Kw=2, stride=(2, 2))
    with pytest.raises(JaxpulpError, match="value 1000 out of range for u8"):
        pool.run_values(np.full((4, 4, 4), 1000), cfg=mp)


def test_conv_api_refuses_empty_batch_missing_params_and_wrong_shapes():
    from jaxpulp import packing
    from jaxpulp.kernels import conv

    cfg = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    p = conv.Params(kappa=np.ones(4, np.int32), lam=np.zeros(4, np.int32), out_shift=4)
    ww = packing.pack(np.zeros((4, 3, 3, 4), np.int64), cfg.w_type)
    with pytest.raises(JaxpulpError, match="x_words: shape \\(0, 16\\)"):
        conv.run(np.zeros((0, 16), np.uint32), ww, p, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params=None"):
        conv.run(np.zeros(16, np.uint32), ww, None, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params=None"):
        conv.reference(np.zeros((4, 4, 4), np.int64), np.zeros((4, 3, 3, 4), np.int64), None, cfg)
    with pytest.raises(JaxpulpError, match="shapes \\(3, 3, 3\\)"):
        conv.reference(np.zeros((3, 3, 3), np.int64), np.zeros((4, 3, 3, 4), np.int64), p, cfg)


# ------------------------------------------------------------------------------- long work, docs


def test_progress_logs_one_line_per_step_when_not_a_terminal():
    from jaxpulp.sweep._progress import Progress

    lines = []
    bar = Progress(10, "sweep t", stream=io.StringIO(), log=lines.append, log_interval=0.0)
    bar.update(5)
    bar.update(5)
    bar.close()
    assert len(lines) == 3 and "100%" in lines[-1] and "\r" not in "".join(lines)
    quiet = []
    Progress(10, stream=io.StringIO(), enabled=False, log=quiet.append, log_interval=0.0).update(10)
    assert quiet == []  # --no-progress means no lines at all


def test_run_says_compiling_and_runs_large_batches_in_chunks(tmp_path, capsys):
    from jaxpulp.network import cli as ncli, execute, store
    from jaxpulp.sweep._nets import toy_net

    net = toy_net(size=4)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 4, 4, 8))
    want = execute.run(net, x).outputs
    got = ncli.run_chunked(net, {"input": x}, 2)  # 2 calls of 2, the last padded
    assert all(np.array_equal(got.outputs[k], want[k]) for k in want)
    assert ncli.run_chunk(net, 10**6, budget=16 * 1000) < 10**6
    with pytest.raises(JaxpulpError, match="GiB of memory"):
        ncli.run_chunk(net, 10**12, keep=True)
    path = store.save(net, str(tmp_path / "toy.npz"))
    assert cli.main(["run", path, "--batch", "2"]) == 0
    assert "compiling toy4 for batch 2" in capsys.readouterr().err


def test_kernels_cost_png_writes_the_path_given(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "heat.png"
    assert cli.main(["kernels", "--cost", "--png", str(png)]) == 0
    assert png.stat().st_size > 1000


def test_cost_table_build_logs_each_layer():
    from jaxpulp import costtable
    from jaxpulp.sweep._nets import toy_net

    lines = []
    costtable.build_table(toy_net(size=4), "gap8", log=lines.append)
    assert len(lines) == 7 and lines[-1] == "cost table toy4 (gap8): layer 7/7 fc (linear)"
