"""The differentiable surrogate: exact at one-hot distributions, the true expectation over the (coupled)
configuration space, gradients against finite differences, jit / vmap, and the smooth closed-form model."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpulp import JaxpulpError, costtable, surrogate
from jaxpulp.sweep import toy_net


@functools.cache
def _toy():
    net = toy_net()
    table = costtable.build_table(net)
    space = costtable.config_space(table)
    return net, table, space, surrogate.surrogate_tables(space)


def test_one_hot_equals_exact_cost_under_jit_and_vmap():
    _, _, space, st = _toy()
    cfgs = costtable.decode_sampled(space.arrays, jnp.arange(64), 11)
    exact = costtable.evaluate(space, cfgs)
    f = jax.jit(jax.vmap(lambda c: surrogate.expected_cost(st, surrogate.one_hot_probs(st, c))))
    got = f(cfgs)
    for k in surrogate.ADDITIVE:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(exact[k]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(got["unsupported"]), 0.0)
    # the per-layer activation bytes are exact too, so the smooth peak is within t*log(L) above the true peak
    peak = np.asarray(exact["peak_act_bytes"], float)
    assert (np.asarray(got["peak_act_bytes"]) >= peak - 1e-3).all()
    assert (np.asarray(got["peak_act_bytes"]) <= peak + 1024 * np.log(7) + 1).all()


def test_expectation_over_the_whole_coupled_space():
    """Sum over all 6,561 configurations of P(config) * cost(config), with each tensor's variable shared by
    its producer and its consumers, equals the surrogate."""
    _, _, space, st = _toy()
    probs = surrogate.softmax_probs(st, jax.random.normal(jax.random.PRNGKey(3), st.valid.shape))
    cfgs = costtable.decode_enumerated(space.arrays, jnp.arange(space.size))
    exact = costtable.evaluate(space, cfgs)
    p_cfg = jnp.prod(probs[jnp.arange(cfgs.shape[1]), cfgs], axis=1)
    assert float(jnp.sum(p_cfg)) == pytest.approx(1.0, rel=1e-5)
    got = surrogate.expected_cost(st, probs)
    for k in surrogate.ADDITIVE:
        want = float(jnp.sum(p_cfg * exact[k].astype(jnp.float32)))
        assert float(got[k]) == pytest.approx(want, rel=2e-5), k


def test_gradients_match_finite_differences():
    _, _, _, st = _toy()
    with jax.enable_x64(True):
        st64 = jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, st)
        logits = jax.random.normal(jax.random.PRNGKey(0), st.valid.shape, jnp.float64)

        def f(lg):
            c = surrogate.expected_cost_from_logits(st64, lg, temperature=0.7)
            return c["cycles"] + 1e3 * c["weight_bytes"] + 1e-3 * c["energy_pj"] + c["peak_act_bytes"]

        g = np.asarray(jax.jit(jax.grad(f))(logits))
        eps = 1e-5
        num = np.zeros_like(g)
        for i, j in np.ndindex(*g.shape):
            d = jnp.zeros_like(logits).at[i, j].set(eps)
            num[i, j] = (f(logits + d) - f(logits - d)) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6 * np.abs(num).max())
    assert np.abs(g).max() > 0


def test_softmax_masks_invalid_choices_and_low_temperature_is_argmax():
    _, _, space, st = _toy()
    target = np.asarray(costtable.decode_sampled(space.arrays, jnp.arange(1), 5))[0]
    logits = 3.0 * jax.nn.one_hot(target, st.valid.shape[1]) + 0.5 * jax.random.normal(jax.random.PRNGKey(1),
                                                                                        st.valid.shape)
    p = np.asarray(surrogate.softmax_probs(st, logits))
    assert (p[~np.asarray(st.valid)] == 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    arg = np.argmax(np.where(np.asarray(st.valid), np.asarray(logits), -np.inf), axis=1)
    np.testing.assert_array_equal(arg, target)
    cold = surrogate.expected_cost_from_logits(st, logits, temperature=1e-2)
    exact = costtable.evaluate(space, arg[None])
    assert float(cold["cycles"]) == pytest.approx(int(exact["cycles"][0]), rel=1e-5)
    for t in (0, -1.0, float("inf"), float("nan")):  # temperature 0 returned NaN probabilities without a word
        with pytest.raises(JaxpulpError, match=f"temperature={t!r}"):
            surrogate.softmax_probs(st, logits, temperature=t)


def test_unsupported_entries_are_penalised():
    from jaxpulp.network import zoo

    net = zoo.mobilenet_v1(alpha=0.25, resolution=128)
    lay = net.layers[0]
    one = net.replace(layers=(lay,), outputs=(lay.output,), params={lay.name: net.params[lay.name]})
    table = costtable.build_table(one)
    space = costtable.config_space(table, prune=False)
    st = surrogate.surrogate_tables(space, penalty=3.0)
    ok, bad = np.array([0, 0, 0]), np.array([0, 0, 1])  # 8-bit weights run; 4-bit weights do not (K = 27)
    e_ok = surrogate.expected_cost(st, surrogate.one_hot_probs(st, ok))
    e_bad = surrogate.expected_cost(st, surrogate.one_hot_probs(st, bad))
    assert float(e_ok["unsupported"]) == 0 and float(e_bad["unsupported"]) == 1
    worst = table.cycles[0][table.supported[0]].max()
    assert float(e_bad["cycles"]) == pytest.approx(3.0 * worst, rel=1e-6)
    with pytest.raises(Exception, match="penalty"):
        surrogate.surrogate_tables(space, penalty=-1)


def test_smooth_model_tracks_the_exact_model_on_untabulated_shapes():
    net, table, space, _ = _toy()
    sm = surrogate.smooth_table(net)
    np.testing.assert_array_equal(sm.supported, table.supported)
    np.testing.assert_array_equal(sm.weight_bytes, table.weight_bytes)
    np.testing.assert_array_equal(sm.act_bytes, table.act_bytes)
    ok = table.supported & (table.cycles > 0)
    rel = np.abs(sm.cycles[ok] - table.cycles[ok]) / table.cycles[ok]
    assert np.median(rel) < 0.15, np.median(rel)
    cfgs = costtable.decode_enumerated(space.arrays, jnp.arange(0, space.size, 7))
    a = np.asarray(costtable.evaluate(space, cfgs)["cycles"], float)
    b = np.asarray(costtable.evaluate(costtable.config_space(sm), cfgs)["cycles"], float)
    assert np.median(np.abs(a - b) / a) < 0.15
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(a), rank(b))[0, 1] > 0.8


def test_smooth_model_is_differentiable_in_the_shape():
    g = dict(H=16.0, W=16.0, Ci=32.0, Ho=16.0, Wo=16.0, Co=64.0, Kh=3.0, Kw=3.0)
    u8, i8 = costtable.ACT_AXIS.index(costtable.ACT_AXIS[0]), 0

    def cyc(co):
        return surrogate.smooth_layer_cost("conv", dict(g, Co=co))[0, u8, i8, u8]

    d = jax.jit(jax.grad(cyc))(64.0)
    assert np.isfinite(float(d)) and float(d) > 0
    assert float(d) == pytest.approx((float(cyc(64.5)) - float(cyc(63.5))), rel=1e-3)


def test_fit_reproduces_the_cost_model_on_its_grid(monkeypatch):
    from jaxpulp.cost import kernel_cost
    from jaxpulp.network.graph import Layer

    grid = [Layer("l", "add", ("x", "z"), "y", (H, H, C), (H, H, C), "u8", "u8", in2_type="u8")
            for H, C in ((8, 16), (16, 16), (16, 64), (32, 64))]
    monkeypatch.setattr(surrogate, "_fit_grid", lambda fam: grid)
    coeffs = surrogate.fit_smooth_model(families=("add",))["add"]
    assert len(coeffs) == 6 ** 3
    theta = np.array(coeffs["u4,u8,u2"]["cycles"])
    for lay in grid:
        cc = kernel_cost(costtable.check_layer(lay.with_types(in_type="u4", in2_type="u8", out_type="u2"),
                                               costtable.Cluster()))
        pred = float(np.asarray(surrogate.features("add", surrogate.geometry(lay), 8)) @ theta)
        assert pred == pytest.approx(cc.cycles, rel=0.1)
