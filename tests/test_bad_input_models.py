"""Bad arguments to the surrogate, smooth fit, cost tables, cluster split and training raise JaxpulpError naming
the argument (probe report 3: surrogate, smooth_fit, costtable, cluster, train)."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpulp import JaxpulpError, costtable, smooth_fit, surrogate
from jaxpulp.cluster import split
from jaxpulp.sweep import toy_net


@pytest.fixture(scope="module")
def net():
    return toy_net(size=4)


@pytest.fixture(scope="module")
def space(net):
    return costtable.config_space(costtable.build_table(net))


@pytest.fixture(scope="module")
def st(space):
    return surrogate.surrogate_tables(space)


# ------------------------------------------------------------------------------------------ surrogate


@pytest.mark.parametrize("bad", [99, -1])
def test_one_hot_refuses_out_of_range(st, bad):
    V = st.valid.shape[0]
    with pytest.raises(JaxpulpError, match=r"config\[0\]"):
        surrogate.one_hot_probs(st, np.full(V, bad))


def test_one_hot_refuses_float_and_wrong_shape(st):
    V = st.valid.shape[0]
    with pytest.raises(JaxpulpError, match="integer"):
        surrogate.one_hot_probs(st, np.full(V, 0.7))
    with pytest.raises(JaxpulpError, match="config"):
        surrogate.one_hot_probs(st, np.zeros(V - 1, int))


def test_one_hot_valid_still_exact(st, space):
    V = st.valid.shape[0]
    cfg = np.zeros(V, np.int32)
    e = surrogate.expected_cost(st, surrogate.one_hot_probs(st, cfg))
    assert int(round(float(e["cycles"]))) == int(costtable.evaluate(space, cfg[None])["cycles"][0])
    # traced configs still work (no check there)
    f = jax.jit(lambda c: surrogate.expected_cost(st, surrogate.one_hot_probs(st, c))["cycles"])
    assert float(f(jnp.asarray(cfg))) == pytest.approx(float(e["cycles"]))


def test_expected_cost_checks_probs(st):
    V, C = st.valid.shape
    p = surrogate.one_hot_probs(st, np.zeros(V, np.int32))
    for bad, msg in ((p * 2, "sums to"), (-p, "negative"), (jnp.zeros((V, C)), "sums to"),
                     (jnp.full((V, C), jnp.nan), "not finite")):
        with pytest.raises(JaxpulpError, match=msg):
            surrogate.expected_cost(st, bad)
    invalid = np.argwhere(~np.asarray(st.valid))
    if invalid.size:
        k, j = invalid[0]
        q = np.asarray(p).copy()
        q[k] = 0
        q[k, j] = 1
        with pytest.raises(JaxpulpError, match="invalid choice"):
            surrogate.expected_cost(st, q)
    for shape in ((C,), (1, C), (), (V, C + 1), (V + 1, C), (V,)):
        with pytest.raises(JaxpulpError, match="shape"):
            surrogate.expected_cost(st, jnp.full(shape, 1.0 / C))
        with pytest.raises(JaxpulpError, match="shape"):
            surrogate.expected_cost_from_logits(st, jnp.zeros(shape))
    for bad in ("abc", None):
        with pytest.raises(JaxpulpError, match="logits"):
            surrogate.expected_cost_from_logits(st, bad)


def test_expected_cost_traced_and_grad_still_work(st):
    V, C = st.valid.shape
    g = jax.grad(lambda lg: surrogate.expected_cost_from_logits(st, lg)["cycles"])(jnp.zeros((V, C)))
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("t", [np.array(0.0), jnp.array(0.0), jnp.array(-1.0), np.array(np.nan), True, "1", None,
                               np.zeros(2)])
def test_array_temperatures_checked(st, t):
    V, C = st.valid.shape
    with pytest.raises(JaxpulpError, match="temperature"):
        surrogate.expected_cost_from_logits(st, jnp.zeros((V, C)), temperature=t)


def test_array_temperature_valid(st):
    V, C = st.valid.shape
    a = surrogate.expected_cost_from_logits(st, jnp.zeros((V, C)), temperature=np.array(0.5))["cycles"]
    b = surrogate.expected_cost_from_logits(st, jnp.zeros((V, C)), temperature=0.5)["cycles"]
    assert float(a) == float(b)


@pytest.mark.parametrize("t", [0, -1, float("nan"), float("inf"), "x", jnp.array(0.0)])
def test_peak_temperature_checked(st, t):
    V = st.valid.shape[0]
    p = surrogate.one_hot_probs(st, np.zeros(V, np.int32))
    with pytest.raises(JaxpulpError, match="peak_temperature"):
        surrogate.expected_cost(st, p, peak_temperature=t)


@pytest.mark.parametrize("pen", [float("inf"), "2", None, True])
def test_penalty_checked(space, pen):
    with pytest.raises(JaxpulpError, match="penalty"):
        surrogate.surrogate_tables(space, penalty=pen)


def test_surrogate_tables_needs_space(space):
    for bad in (space.table, None):
        with pytest.raises(JaxpulpError, match="space"):
            surrogate.surrogate_tables(bad)


def test_smooth_layer_cost_cores(net):
    g = surrogate.geometry(net.layers[0])
    for n in (0, -8, 2.5, "x", True):
        with pytest.raises(JaxpulpError, match="num_cores"):
            surrogate.smooth_layer_cost("conv", g, n)
    with pytest.raises(JaxpulpError, match="geometry"):
        surrogate.smooth_layer_cost("conv", {"H": 1.0}, 8)
    for bad in (None, "x"):
        with pytest.raises(JaxpulpError):
            surrogate.geometry(bad)


def test_smooth_table_refuses_uncovered_target(net):
    with pytest.raises(JaxpulpError, match=r"cortex-m7.*gap8"):
        surrogate.smooth_table(net, "cortex-m7")
    with pytest.raises(JaxpulpError, match="net"):
        surrogate.smooth_table(None)
    assert surrogate.smooth_table(net, "gap8").model == "smooth"  # covered targets still work
    surrogate.smooth_table(net, "gap8-1core")


# ---------------------------------------------------------------------------------------- smooth_fit


def test_smooth_fit_load_errors(tmp_path):
    with pytest.raises(JaxpulpError, match="cannot read"):
        smooth_fit.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JaxpulpError, match="not a smooth-fit JSON"):
        smooth_fit.load(str(bad))
    bad.write_text("{}")
    with pytest.raises(JaxpulpError, match="coeffs"):
        smooth_fit.load(str(bad))
    with pytest.raises(JaxpulpError, match="path"):
        smooth_fit.load(None)


def test_smooth_fit_dump_errors(tmp_path):
    ok = {"conv": {"u8,i8,u8": {"cycles": [1.0, 2.0], "energy_pj": [0.5]}}}
    with pytest.raises(JaxpulpError, match="does not exist"):
        smooth_fit.dump(ok, str(tmp_path / "nodir" / "x.json"))
    with pytest.raises(JaxpulpError, match="coeffs"):
        smooth_fit.dump({"conv": 5}, str(tmp_path / "x.json"))
    nan = {"conv": {"u8,i8,u8": {"cycles": [math.nan], "energy_pj": [0.5]}}}
    with pytest.raises(JaxpulpError, match="finite"):
        smooth_fit.dump(nan, str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()
    smooth_fit.dump(ok, str(tmp_path / "x.json"))
    assert smooth_fit.load(str(tmp_path / "x.json")) == ok
    json.loads((tmp_path / "x.json").read_text())


# ------------------------------------------------------------------------------------------ costtable


@pytest.mark.parametrize("bad", [99, -1])
def test_evaluate_refuses_out_of_range(space, bad):
    V = len(space.variables)
    with pytest.raises(JaxpulpError, match="choice index"):
        costtable.evaluate(space, np.full((1, V), bad))


def test_evaluate_refuses_float(space):
    V = len(space.variables)
    with pytest.raises(JaxpulpError, match="integer"):
        costtable.evaluate(space, np.full((1, V), 0.7))
    with pytest.raises(JaxpulpError, match="space"):
        costtable.evaluate(None, np.zeros((1, V), int))


def test_evaluate_valid_unchanged(space):
    V = len(space.variables)
    n = np.asarray(space.arrays.n_choices)
    cfg = (n - 1)[None].astype(np.int32)
    r = costtable.evaluate(space, cfg)
    ref = costtable.reference_cost(space, cfg[0])
    assert int(r["cycles"][0]) == ref["cycles"]
    assert costtable.evaluate(space, jnp.zeros((2, V), jnp.int32))["cycles"].shape == (2,)


def test_decode_enumerated_range(space):
    a = space.arrays
    for bad in ([space.size], [-1], [0.5]):
        with pytest.raises(JaxpulpError, match="index"):
            costtable.decode_enumerated(a, np.asarray(bad))
    last = costtable.decode_enumerated(a, np.asarray([space.size - 1]))
    assert (np.asarray(last)[0] == np.asarray(a.n_choices) - 1).all()
    f = jax.jit(lambda i: costtable.decode_enumerated(a, i))  # traced: unchecked, still works
    assert np.asarray(f(jnp.asarray([0])))[0].sum() == 0


def test_axis_lookups():
    with pytest.raises(JaxpulpError, match="slot"):
        costtable.axis_types("conv", 5)
    with pytest.raises(JaxpulpError, match="q9"):
        costtable.axis_index("conv", 0, "q9")
    with pytest.raises(JaxpulpError, match="i32"):
        costtable.axis_index("conv", 1, "i32")
    assert costtable.axis_index("conv", 0, costtable.ACT_AXIS[3]) == 3


def test_reference_cost_and_types_of_range(space, net):
    V = len(space.variables)
    with pytest.raises(JaxpulpError, match="choice index"):
        costtable.reference_cost(space, np.full(V, 99))
    with pytest.raises(JaxpulpError, match="choice index"):
        space.types_of(np.full(V, -1))
    with pytest.raises(JaxpulpError, match="net"):
        costtable.build_table(None)


def test_save_lut_missing_folder(space, tmp_path):
    with pytest.raises(JaxpulpError, match="does not exist"):
        costtable.save_lut(space.table, str(tmp_path / "nodir" / "x.json"))


# -------------------------------------------------------------------------------------------- cluster


def test_cluster_split_args():
    with pytest.raises(JaxpulpError, match="ncores"):
        split.conv_split(0, 4, 4, 0)
    with pytest.raises(JaxpulpError, match="core"):
        split.conv_split(9, 4, 4, 8)
    with pytest.raises(JaxpulpError, match="rows"):
        split.row_split(0, -1, 8)
    with pytest.raises(JaxpulpError, match="out_bits"):
        split.linear_split(0, 10, 8, 3)
    for x in (0, -4):
        with pytest.raises(JaxpulpError, match="x"):
            split.fl1(x)
    assert split.conv_split(1, 4, 4, 8).rows >= 0


# ---------------------------------------------------------------------------------------------- train


def _search():
    pytest.importorskip("optax")
    from jaxpulp.train import data, model, search

    return data, model, search


@pytest.mark.parametrize("kw", [dict(float_epochs=1.7), dict(batch=2.5), dict(lr=-1.0), dict(lr=math.nan),
                                dict(seed=-1), dict(gumbel="no"), dict(float_epochs="x"), dict(float_epochs=math.nan),
                                dict(t_end=math.inf), dict(budget_bytes=math.inf), dict(budget_bytes="x"),
                                dict(hard_budget=1)])
def test_search_config_checked(kw):
    _, _, search = _search()
    with pytest.raises(JaxpulpError, match=next(iter(kw))):
        search.SearchConfig(**kw)


def test_split_num_classes():
    data, _, _ = _search()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 8, 8, 1)), rng.integers(0, 4, 40)
    for bad in (4.5, 0, True):
        with pytest.raises(JaxpulpError, match="num_classes"):
            data.split("d", x, y, num_classes=bad)
    assert data.split("d", x, y, num_classes=6).num_classes == 6
    with pytest.raises(JaxpulpError, match="data"):
        data.load(None)


def test_train_float_checks_data_against_model():
    data, model, search = _search()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 8, 8, 1)), rng.integers(0, 4, 40)
    ds = data.split("d", x, y)
    cfg = search.SearchConfig(float_epochs=1, batch=8)
    with pytest.raises(JaxpulpError, match="label"):
        search.train_float(model.named("tiny", (8, 8, 1), 2), ds, cfg)
    with pytest.raises(JaxpulpError, match="shape"):
        search.train_float(model.named("tiny", (16, 16, 1), 4), ds, cfg)
    neg = data.Dataset("n", ds.x_train, ds.y_train - 5, ds.x_val, ds.y_val, ds.x_test, ds.y_test, 4)
    with pytest.raises(JaxpulpError, match="label -"):
        search.train_float(model.named("tiny", (8, 8, 1), 4), neg, cfg)
    with pytest.raises(JaxpulpError, match="ds"):
        search.train_float(model.named("tiny", (8, 8, 1), 4), None, cfg)
    with pytest.raises(JaxpulpError, match="model"):
        search.make_space(None)


def test_model_and_zoo_refuse_what_they_truncated_or_failed_late():
    from jaxpulp.network import zoo
    from jaxpulp.train import model as M

    with pytest.raises(JaxpulpError, match=r"num_classes=2.5: expected an int >= 2"):
        M.named("tiny", (8, 8, 1), 2.5)
    with pytest.raises(JaxpulpError, match=r"net=None: no such model"):
        M.named(None, (8, 8, 1), 4)
    with pytest.raises(JaxpulpError, match=r"act='i32': expected an 8, 4 or 2-bit activation type"):
        zoo.mobilenet_v1(0.25, 32, act="i32")
