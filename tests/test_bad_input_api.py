"""Bad input to the network-execution, sweep and cost APIs: a ``JaxpulpError`` naming the argument, the value and
what was expected; nothing silently cast, ignored or truncated, no raw numpy / JAX / Python exception."""
from __future__ import annotations

import math

import numpy as np
import pytest

from jaxpulp.errors import JaxpulpError, UnsupportedConfig


@pytest.fixture(scope="module")
def net():
    from jaxpulp.sweep import toy_net

    return toy_net(size=4)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).integers(0, 256, (1, 4, 4, 8))


# ------------------------------------------------------------------------------------------------- run_values


@pytest.mark.parametrize("bad, match", [
    (lambda x: x + 0.7, r"x: dtype float64, expected integers of type u8"),
    (lambda x: x + 999, r"x: values span \[\d+, \d+\], outside u8 \[0, 255\]"),
    (lambda x: x[:, :3], r"x: shape \(1, 3, 4, 8\), expected \(batch, 4, 4, 8\)"),
    (lambda x: {"nope": x}, r"x: keys \['nope'\], expected the network inputs \['input'\]"),
    (lambda x: x[:0], r"x: shape \(0, 4, 4, 8\), expected .*batch >= 1"),
])
def test_run_values_checks_x_as_run_does(net, x, bad, match):
    from jaxpulp.network import run, run_values

    with pytest.raises(JaxpulpError, match=match):
        run_values(net, bad(x))
    with pytest.raises(JaxpulpError, match=match):  # the same message as run's
        run(net, bad(x), path="values")


def test_run_values_valid_inputs_unchanged(net, x):
    import jax
    import jax.numpy as jnp

    from jaxpulp.network import run, run_values

    want = run(net, x, path="values").outputs["fc"]
    for xv in (x, x.astype(np.uint8), jnp.asarray(x, jnp.int32), x[0]):  # numpy, narrow, on the device, one image
        np.testing.assert_array_equal(np.asarray(run_values(net, xv)).reshape(want.shape), want)
    traced = jax.jit(lambda v: run_values(net, v))(jnp.asarray(x, jnp.int32))  # shapes / dtypes only under jit
    np.testing.assert_array_equal(np.asarray(traced).reshape(want.shape), want)
    with pytest.raises(JaxpulpError, match=r"x: dtype float32"):  # a traced float input: refused by its dtype
        jax.jit(lambda v: run_values(net, v))(jnp.asarray(x, jnp.float32))


@pytest.mark.parametrize("act_types, match", [
    ({"nope": (8, 0)}, r"act_types: key 'nope' is not a tensor of network 'toy4'"),
    ({"conv0": (3, 0)}, r"act_types\['conv0'\]=\(3, 0\): .*not a type the value path computes; expected one of"),
    ({"conv0": (16, 0)}, r"act_types\['conv0'\]=\(16, 0\): .*not a type the value path computes"),
    ({"conv0": "u8"}, r"act_types\['conv0'\]='u8': expected a \(bits, signed\) pair"),
    ({"conv0": (8.0, 0)}, r"act_types\['conv0'\] bits=8.0: expected an int scalar"),
    ({"conv0": (True, 0)}, r"act_types\['conv0'\] bits=True: expected an int"),
    ([("conv0", (8, 0))], r"act_types=\[.*\]: expected None or a dict"),
])
def test_run_values_checks_act_types(net, x, act_types, match):
    from jaxpulp.network import run_values

    with pytest.raises(JaxpulpError, match=match):
        run_values(net, x, act_types=act_types)


def test_run_values_act_types_valid_and_traced(net, x):
    import jax
    import jax.numpy as jnp

    from jaxpulp.network import run_values

    a = np.asarray(run_values(net, x, act_types={"conv0": (4, 0)}))
    b = np.asarray(run_values(net, x, act_types={"conv0": (np.int32(4), False)}))
    np.testing.assert_array_equal(a, b)
    f = jax.jit(jax.vmap(lambda bits: run_values(net, x, act_types={"conv0": (bits, 0)})))
    np.testing.assert_array_equal(np.asarray(f(jnp.array([4])))[0], a)  # traced: no value check, same result


@pytest.mark.parametrize("params, match", [
    ({}, r"params\['conv0'\]: keys \[\], expected a dict with the keys of net.params\['conv0'\]"),
    ({"foo": 1}, r"params: keys \['foo'\] are not layers of network 'toy4'"),
    ([1], r"params=\[1\]: expected None or a dict shaped like net.params"),
])
def test_run_values_checks_params(net, x, params, match):
    from jaxpulp.network import run_values

    with pytest.raises(JaxpulpError, match=match):
        run_values(net, x, params=params)


def test_run_values_checks_param_values(net, x):
    from jaxpulp.network import run_values

    def with_(layer, key, value):
        return {k: dict(v, **({key: value} if k == layer else {})) for k, v in net.params.items()}

    w = net.params["conv0"]["w"]
    with pytest.raises(JaxpulpError, match=r"params\['conv0'\]\['w'\]: dtype float64, shape \(16, 3, 3, 8\), "
                       r"expected integers"):
        run_values(net, x, params=with_("conv0", "w", w + 0.5))
    with pytest.raises(JaxpulpError, match=r"params\['conv0'\]\['kappa'\]: dtype int32, shape \(3,\), expected "
                       r"integers of shape \(16,\)"):
        run_values(net, x, params=with_("conv0", "kappa", np.ones(3, np.int32)))
    with pytest.raises(JaxpulpError, match=r"params\['conv0'\]\['w'\]: values span \[.*\], expected \[-128, 127\]"):
        run_values(net, x, params=with_("conv0", "w", w.astype(np.int32) * 300))
    with pytest.raises(JaxpulpError, match=r"params\['conv0'\]\['lam'\]: values span .* \(int32\)"):
        run_values(net, x, params=with_("conv0", "lam", np.full(16, 2**40, np.int64)))
    with pytest.raises(JaxpulpError, match=r"params\['conv0'\]: keys \[.*'extra'.*\], expected"):
        run_values(net, x, params=with_("conv0", "extra", 1))
    # the network's own parameters, passed explicitly, give its own result
    np.testing.assert_array_equal(np.asarray(run_values(net, x, params=net.params)), np.asarray(run_values(net, x)))


# ------------------------------------------------------------------------------------------------------ run


@pytest.mark.parametrize("kw, match", [
    (dict(cluster="gap8"), r"cluster='gap8': expected a jaxpulp.cluster.config.Cluster"),
    (dict(keep="yes"), r"keep='yes': expected True or False"),
    (dict(keep=1), r"keep=1: expected True or False"),
])
def test_run_checks_keep_and_cluster(net, x, kw, match):
    from jaxpulp.network import run, run_values

    with pytest.raises(JaxpulpError, match=match):
        run(net, x, **kw)
    with pytest.raises(JaxpulpError, match=match):
        run_values(net, x, **kw)


@pytest.mark.parametrize("bad", [None, "dronet"])
def test_run_checks_net(x, bad):
    from jaxpulp.network import run, run_values

    with pytest.raises(JaxpulpError, match=rf"net={bad!r}: expected a jaxpulp.network.Network"):
        run(bad, x)
    with pytest.raises(JaxpulpError, match=rf"net={bad!r}: expected a jaxpulp.network.Network"):
        run_values(bad, x)


def test_mapping_checks_cluster(net):
    from jaxpulp.network import mapping

    with pytest.raises(JaxpulpError, match=r"cluster='gap8': expected a jaxpulp.cluster.config.Cluster"):
        mapping.kernel_config(net.layers[0], "library", "gap8")
    with pytest.raises(JaxpulpError, match=r"lay=\{\}: expected a jaxpulp.network.Layer"):
        mapping.kernel_config({})


# ---------------------------------------------------------------------------------------------------- sweep


@pytest.mark.parametrize("kw, match", [
    (dict(act_types=("u8", "u8")), r"act_types=\('u8', 'u8'\): u8 given more than once"),
    (dict(weight_types=["i4", "i8", "i4"]), r"weight_types=\['i4', 'i8', 'i4'\]: i4 given more than once"),
    (dict(act_types="u8"), r"act_types='u8': expected None or a sequence of type names"),
    (dict(samples=True), r"samples=True: expected an int >= 1"),
    (dict(inputs=True), r"inputs=True: expected an int >= 1"),
    (dict(seed=False), r"seed=False: expected an int"),
    (dict(enumerate="yes"), r"enumerate='yes': expected None .*, True or False"),
    (dict(metric="no"), r"metric='no': expected True or False"),
    (dict(free_input=2), r"free_input=2: expected True or False"),
    (dict(data=3), r"data=3: expected None or the path of an .npz file"),
    (dict(net=None), r"net=None: expected a network spec string"),
])
def test_sweep_spec_checks_types(kw, match):
    from jaxpulp.sweep import SweepSpec

    with pytest.raises(JaxpulpError, match=match):
        SweepSpec(**{"net": "toy", **kw})


def test_sweep_spec_numpy_ints_are_ints():
    from jaxpulp.sweep import SweepSpec

    s = SweepSpec("toy", samples=np.int64(5), seed=np.uint32(3))
    assert type(s.samples) is int and type(s.seed) is int and s.to_dict()["samples"] == 5


@pytest.mark.parametrize("shard", [(0.5, 2), ("a", 1), 5, (0, 1, 2), (True, 2), (2, 2)])
def test_run_sweep_checks_shard(tmp_path, shard):
    from jaxpulp.sweep import SweepSpec, run_sweep

    with pytest.raises(JaxpulpError, match=r"shard=.*: expected a pair of ints \(k, n\) with 0 <= k < n"):
        run_sweep(SweepSpec("toy", samples=5), str(tmp_path / "x.jsonl"), shard=shard)
    assert not list(tmp_path.iterdir())


def test_run_sweep_refuses_missing_folder(tmp_path):
    from jaxpulp.sweep import SweepSpec, run_sweep

    out = tmp_path / "missing" / "x.jsonl"
    with pytest.raises(JaxpulpError, match=r"out=.*x.jsonl': folder '.*missing' does not exist"):
        run_sweep(SweepSpec("toy", samples=5), str(out))
    assert not (tmp_path / "missing").exists()
    with pytest.raises(JaxpulpError, match=r"overwrite='yes': expected True or False"):
        run_sweep(SweepSpec("toy", samples=5), str(tmp_path / "x.jsonl"), overwrite="yes")
    with pytest.raises(JaxpulpError, match=r"spec='toy': expected a SweepSpec"):
        run_sweep("toy", str(tmp_path / "x.jsonl"))


def test_pareto_front_drops_nan_rows_as_front_rows_does():
    from jaxpulp.sweep import front_rows, pareto_front, parse_objectives

    pts = [[1, 5], [2, 1], [math.nan, 0], [3, 3]]
    assert pareto_front(pts).tolist() == [0, 1]
    assert pareto_front(np.array(pts)[:, :1]).tolist() == [0]
    assert pareto_front([[math.nan, 1]]).tolist() == []
    three = [[1, 5, 1], [math.nan, 0, 0], [2, 1, 1], [3, 3, 3]]
    assert pareto_front(three).tolist() == [0, 2]
    rows = [{"cycles": a, "memory_bytes": b} for a, b in pts]
    assert front_rows(rows, parse_objectives("cycles,memory_bytes")) == [rows[0], rows[1]]


@pytest.mark.parametrize("points, match", [
    ([["a", "b"]], r"points=\[\['a', 'b'\]\]: expected a numeric \(N, k\) array"),
    (np.zeros((3, 0)), r"points: shape \(3, 0\), expected \(N, k\) with k >= 1"),
    (np.zeros(3), r"points: shape \(3,\), expected \(N, k\)"),
])
def test_pareto_front_checks_points(points, match):
    from jaxpulp.sweep import pareto_front

    with pytest.raises(JaxpulpError, match=match):
        pareto_front(points)


def test_parse_objectives_checks_type():
    from jaxpulp.sweep import parse_objectives

    with pytest.raises(JaxpulpError, match=r"objectives=5: expected None .* or a comma-separated string"):
        parse_objectives(5)
    with pytest.raises(JaxpulpError, match=r"objectives=\['cycles'\]: expected"):
        parse_objectives(["cycles"])


def test_plot_front_refuses_missing_folder(tmp_path):
    from jaxpulp.sweep import plot_front

    with pytest.raises(JaxpulpError, match=r"png=.*: folder .*missing' does not exist"):
        plot_front([], [], str(tmp_path / "missing" / "f.png"))


# ----------------------------------------------------------------------------------------------------- cost


@pytest.mark.parametrize("cfg, rule", [
    (dict(in_type="u8", H=8, W=8, Ci=8, Co=8, Ho=100), "output-geometry"),
    (dict(in_type="u4", H=8, W=8, Ci=3, Co=8, pad=(1, 1, 1, 1)), "input-channel-multiple"),
    (dict(in_type="u8", H=8, W=8, Ci=8, Co=8, Kh=3, Kw=3, pad=(3, 3, 3, 3)), "output-geometry"),
])
def test_kernel_cost_refuses_what_the_kernel_refuses(cfg, rule):
    from jaxpulp.cost import kernel_cost
    from jaxpulp.kernels import conv
    from jaxpulp.kernels.config import ConvConfig

    c = ConvConfig(cfg.pop("in_type"), "u8", "i8", **cfg)
    with pytest.raises(UnsupportedConfig, match=rf"\[{rule}\]"):
        conv.check(c)
    with pytest.raises(UnsupportedConfig, match=rf"\[{rule}\]"):
        kernel_cost(c)


def test_kernel_cost_check_per_target():
    from jaxpulp.cost import kernel_cost
    from jaxpulp.kernels import conv
    from jaxpulp.kernels.config import ConvConfig

    # a library quirk (wrong outputs, the call still runs: the golden per-core counters measure such calls,
    # tests/test_cost_golden.py) is priced, as at semantics="ideal" and on the Cortex-M7
    drift = ConvConfig("u8", "u8", "i8", H=16, W=5, Ci=8, Co=8, pad=(1, 1, 1, 1), bias=True)
    with pytest.raises(UnsupportedConfig, match=r"\[conv-bias-drift\]"):
        conv.check(drift)
    assert kernel_cost(drift).cycles > 0
    assert kernel_cost(drift.replace(semantics="ideal")).cycles > 0
    assert kernel_cost(drift, "cortex-m7").cycles > 0
    # structural rules hold on every target
    with pytest.raises(UnsupportedConfig, match=r"\[output-geometry\]"):
        kernel_cost(ConvConfig("u8", "u8", "i8", H=8, W=8, Ci=8, Co=8, Ho=100), "cortex-m7")
    # a valid configuration keeps its published figure (module docstring: 15.4 MAC/cycle)
    cc = kernel_cost(ConvConfig("u8", "u8", "i8", H=16, W=16, Ci=32, Co=64, pad=(1, 1, 1, 1), relu=0, bn=0))
    assert round(cc.macs_per_cycle, 1) == 15.4


@pytest.mark.parametrize("cfg", [[1, 2], None, "conv"])
def test_kernel_cost_checks_cfg(cfg):
    import re

    from jaxpulp.cost import kernel_cost

    with pytest.raises(JaxpulpError, match=rf"cfg={re.escape(repr(cfg))}: expected a kernel configuration"):
        kernel_cost(cfg)


@pytest.mark.parametrize("layer, match", [
    ("abc", r"layer='abc': expected None \(the PULP-NN benchmark layer\), a dict"),
    (dict(H=0), r"layer=\{'H': 0\}: .*missing .*; expected a dict of ConvConfig fields with at least H, W, Ci"),
    (dict(H=8, W=8, Ci=8, Co=8, foo=1), r"layer=.*: \['foo'\] are not ConvConfig fields"),
])
def test_permutation_table_checks_layer(layer, match):
    from jaxpulp.cost import report

    with pytest.raises(JaxpulpError, match=match):
        report.permutation_table(layer=layer)


def test_cost_report_checks_targets_and_paths(tmp_path):
    from jaxpulp.cost import report

    for bad in ((), [], "gap8"):
        with pytest.raises(JaxpulpError, match=r"targets=.*: expected a non-empty sequence of targets"):
            report.kernels_cost_report(targets=bad)
    missing = str(tmp_path / "nonexistent" / "x.png")
    with pytest.raises(JaxpulpError, match=r"png=.*x.png': folder .*nonexistent' does not exist"):
        report.kernels_cost_report(png=missing)
    pytest.importorskip("matplotlib")
    with pytest.raises(JaxpulpError, match=r"path=.*x.png': folder .*nonexistent' does not exist"):
        report.heatmap_png(report.permutation_table(), missing)
