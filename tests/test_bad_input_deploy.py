"""Bad inputs to jaxpulp.deploy, network.store / zoo / report: a JaxpulpError naming the argument, never a raw
exception, a silent cast or a silently wrong result."""
import numpy as np
import pytest

from jaxpulp import JaxpulpError, deploy
from jaxpulp.network import mapping, report, store, zoo
from jaxpulp.sweep import toy_net


@pytest.fixture(scope="module")
def net():
    return toy_net(size=4)


@pytest.fixture(scope="module")
def cfgs(net):
    return [mapping.kernel_config(lay) for lay in net.layers]


def test_layers_that_do_not_fit_l1_are_listed(net, cfgs):
    t = deploy.get_target("gap8-board").replace(l1_budget=1)
    r = deploy.network_latency(cfgs, t)
    assert not r.fits and r.not_fitting == tuple(range(len(cfgs)))
    assert not deploy.layer_latency(cfgs[0], t).fits
    ok = deploy.network_latency(cfgs)
    assert ok.fits and ok.not_fitting == ()
    rows = report.add_deployed(net, report.layer_rows(net), target=t)
    tot = report.totals(rows)
    assert tot["layers_not_fitting_deployed_l1"] == [lay.name for lay in net.layers]
    assert all(r["tile_fits"] is False and "does not fit L1" in r["note"] for r in rows)
    assert "DOES NOT FIT L1" in report.as_table(net, rows)
    good = report.totals(report.add_deployed(net, report.layer_rows(net)))
    assert good["layers_not_fitting_deployed_l1"] == []


@pytest.mark.parametrize("field,value", [
    ("count_weight_preload", "no"), ("l3_overlap", "no"), ("l3_prefetch_next", 1), ("l1_bytes", True),
    ("dma_outstanding", True), ("tiler_candidates", 0), ("tiler_candidates", -3), ("tiler_candidates", "x"),
    ("freq_hz", float("inf")), ("dma_bytes_per_cycle", float("inf")), ("dma_latency_cycles", float("nan")),
    ("layer_overhead_cycles", float("nan")), ("dma_cmd_cycles", float("inf")), ("num_cores", 9),
    ("num_cores", True), ("double_buffering", True), ("name", 5), ("kernel_target", "nope")])
def test_target_fields_refused(field, value):
    with pytest.raises(JaxpulpError, match=field):
        deploy.get_target("gap8-board").replace(**{field: value})


@pytest.mark.parametrize("field,value", [("dory_kernels", "no"), ("lto", 1), ("pool_fc", "bogus"), ("name", 5)])
def test_flavour_fields_refused(field, value):
    kw = {"name": "x", "dw_input": "chw-planes", "pool_fc": "dory", field: value}
    with pytest.raises(JaxpulpError, match=field):
        deploy.Flavour(**kw)


def test_prev_l3_and_candidates_refused(cfgs):
    with pytest.raises(JaxpulpError, match="prev_l3"):
        deploy.layer_latency(cfgs[0], prev_l3="no")
    from jaxpulp.deploy.tiler import pareto_tilings
    with pytest.raises(JaxpulpError, match="max_candidates"):
        pareto_tilings(cfgs[0], 100, 1, 8, -3)


def test_network_and_layers_refused_by_name(net, cfgs):
    with pytest.raises(JaxpulpError, match="kernel_config"):
        deploy.network_latency(net)
    for bad in (net.layers, None, "abc"):
        with pytest.raises(JaxpulpError, match="cfgs"):
            deploy.network_latency(bad)
    for bad in (net.layers[0], None, list(net.layers)):
        with pytest.raises(JaxpulpError, match="kernel_config"):
            deploy.layer_latency(bad)
        with pytest.raises(JaxpulpError, match="kernel_config"):
            deploy.tile(bad)


def test_store_save_missing_folder(net, tmp_path):
    with pytest.raises(JaxpulpError, match="does not exist"):
        store.save(net, str(tmp_path / "nodir" / "a.npz"))
    with pytest.raises(JaxpulpError, match="net="):
        store.save("abc", str(tmp_path / "a.npz"))
    with pytest.raises(JaxpulpError, match="path="):
        store.save(net, None)
    with pytest.raises(JaxpulpError, match="path="):
        store.load(None)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_store_load_damaged_or_foreign(net, tmp_path):
    meta = np.frombuffer(b"not json", np.uint8)
    bad = [_npz(tmp_path / "a.npz", __meta__=meta),
           _npz(tmp_path / "b.npz", __meta__=np.frombuffer(b'{"format": "jaxpulp-network-1"}', np.uint8)),
           _npz(tmp_path / "c.npz", __meta__=np.arange(4, dtype=np.float64).view(np.uint8)),
           _npz(tmp_path / "d.npz", __meta__=np.array([1, 2], dtype=object))]
    good = store.save(net, str(tmp_path / "good.npz"))
    raw = bytearray(open(good, "rb").read())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(64)
    (tmp_path / "e.npz").write_bytes(bytes(raw))
    bad.append(str(tmp_path / "e.npz"))
    for p in bad:
        with pytest.raises(JaxpulpError, match="not a jaxpulp network file") as e:
            store.load(p)
        assert p in str(e.value)


def test_zoo_weight_types_and_numpy_scalars():
    for w in ("i32", "u8", "u4"):
        with pytest.raises(JaxpulpError, match=f"weights='{w}'"):
            zoo.mobilenet_v1(0.25, 32, weights=w)
    with pytest.raises(JaxpulpError, match="model="):
        zoo.builtin(["a"])
    a = zoo.mobilenet_v1(np.float32(0.25), np.int64(32), num_classes=np.int64(10), seed=np.int64(0))
    b = zoo.mobilenet_v1(0.25, 32)
    assert a.name == b.name and a.layers == b.layers
    with pytest.raises(JaxpulpError, match="name="):
        zoo.mobilenet_v1(0.25, 32, name=5)


def test_report_rows_checked(net, tmp_path):
    rows = report.layer_rows(net)
    path = report.bar_chart_png(net, rows, str(tmp_path / "c.png"))  # undeployed rows draw
    assert path.endswith("c.png")
    with pytest.raises(JaxpulpError, match="path"):
        report.bar_chart_png(net, rows, str(tmp_path / "nodir" / "c.png"))
    with pytest.raises(JaxpulpError, match="rows"):
        report.add_deployed(net, [dict(r) for r in rows[:2]])
    assert "deployed_cycles" not in rows[0]  # nothing half-updated
    for fn in (report.totals, report.as_csv, lambda r: report.as_json(net, r), lambda r: report.add_deployed(net, r)):
        with pytest.raises(JaxpulpError, match="rows"):
            fn(None)
    with pytest.raises(JaxpulpError, match="rows"):
        report.totals([{"a": 1}])
    with pytest.raises(JaxpulpError, match=f"1 rows .* {len(net.layers)} layers"):
        report.as_table(net, rows[:1])
    mixed = [dict(r) for r in rows]
    report.add_deployed(net, mixed)
    with pytest.raises(JaxpulpError, match="rows"):
        report.totals(mixed[:1] + rows[1:])
