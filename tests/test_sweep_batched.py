"""The metric sweep's batched forward (configurations folded into the batch, shared prefix, stacked weight
choices) against its definition: each configuration alone, ``Deriver.derive`` then ``run_values``."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from jaxpulp import costtable, quant
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import _engine
from jaxpulp.sweep import _batched, _metric
from jaxpulp.sweep._nets import toy_net

# spaces that exercise every branch of the batched forward on the toy net (conv 3x3 -> depthwise -> 1x1 ->
# add -> pools -> linear): the 3x3 conv on the shared input (default), on per-configuration inputs (free
# input), a shared prefix through the depthwise layer (pinned), so the 1x1 conv runs on a shared input
SPACES = {
    "default": {},
    "free_input": {"free_input": True},
    "pinned_conv": {"fixed": {"conv0": "u8", "conv0.w": "i8"}},
    "pinned_dw": {"fixed": {"conv0": "u4", "conv0.w": "i4", "dw1": "u4", "dw1.w": "i2"}},
    "untied_pools": {"tie_pools": False, "act_types": ("u8", "u4", "u2", "i8", "i4")},
}


@functools.cache
def _setup(name: str, seed: int):
    net = toy_net(seed=seed, size=8)
    space = costtable.config_space(costtable.build_table(net), **SPACES[name])
    der = _metric.Deriver(space, net.outputs[0])
    one = jax.jit(lambda c, x: _metric.config_outputs(net, der, c, x))
    return net, space, der, _batched.Plan(net, der), one


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(sorted(SPACES)), net_seed=st.integers(0, 1), cfg_seed=st.integers(0, 2**16),
       n_cfg=st.integers(1, 5), n_in=st.integers(1, 3), rows=st.sampled_from([1, 4, 16, 64]))
@example(name="default", net_seed=0, cfg_seed=1, n_cfg=2, n_in=2, rows=1)  # inputs in chunks (shared cut too)
@example(name="free_input", net_seed=1, cfg_seed=2, n_cfg=3, n_in=3, rows=7)  # 2 configurations a chunk, padded
def test_batched_forward_equals_each_configuration_alone(name, net_seed, cfg_seed, n_cfg, n_in, rows):
    net, space, der, plan, one = _setup(name, net_seed)
    x = jnp.asarray(_metric.random_inputs(net, n_in, cfg_seed))
    configs = np.array(costtable.decode_sampled(space.arrays, jnp.arange(n_cfg), cfg_seed))
    configs[0] = space.config_of({})  # the network's own precision among them
    y, s = _batched.forward(plan, jnp.asarray(configs), x, rows=rows)
    assert y.shape[:2] == (n_cfg, n_in)
    for j in range(n_cfg):
        y1, s1 = one(jnp.asarray(configs[j]), x)
        np.testing.assert_array_equal(np.asarray(y[j]), np.asarray(y1))
        assert int(s[j]) == int(s1)


def test_plan_shares_the_prefix_before_the_first_choice():
    _, _, _, plan, _ = _setup("default", 0)
    assert plan.shared == {"input"}
    assert _setup("pinned_dw", 0)[3].shared == {"input", "conv0", "dw1"}
    assert _setup("free_input", 0)[3].shared == set()
    # one weight tensor per choice of the layer's weight variable, the choice's rule applied on the host
    net, space, der, plan, _ = _setup("default", 0)
    wv = plan.weights["pw1"]
    assert wv.w.shape == (len(space.variables[wv.var].choices),) + net.params["pw1"]["w"].shape
    i4 = [c for c, t in enumerate(space.variables[wv.var].choices) if str(t) == "i4"][0]
    np.testing.assert_array_equal(wv.w[i4], np.clip(np.round(net.params["pw1"]["w"] / 16.0), -8, 7))


def test_metric_methods_agree_and_reject_bad_arguments():
    net, space, _, _, _ = _setup("free_input", 1)
    x = jnp.asarray(_metric.random_inputs(net, 3, 1))
    y = jnp.asarray(_metric.reference_outputs(net, x))
    cfgs = costtable.decode_sampled(space.arrays, jnp.arange(6), 3)
    a = _metric.make_metric_fn(net, space)(cfgs, x, y, None)
    b = _metric.make_metric_fn(net, space, method="loop")(cfgs, x, y, None)
    np.testing.assert_array_equal(np.asarray(a["agreement"]), np.asarray(b["agreement"]))
    np.testing.assert_allclose(np.asarray(a["error"]), np.asarray(b["error"]), rtol=1e-6)
    with pytest.raises(JaxpulpError, match="method='fast'"):
        _metric.make_metric_fn(net, space, method="fast")
    with pytest.raises(JaxpulpError, match="rows=0"):
        _metric.make_metric_fn(net, space, rows=0)


# ------------------------------------------------------------------ exact forms of the batched forward

# every activation type a configuration may give a tensor: (bits, signed) -> its value range
TYPES = [(8, 0), (4, 0), (2, 0), (8, 1), (4, 1), (2, 1)]


def _bounds(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _extreme(rng, shape, lo, hi):
    """Values at the bounds of [lo, hi] mostly, some anywhere in it."""
    v = rng.choice(np.array([lo, hi, lo + 1, hi - 1, 0 if lo <= 0 <= hi else lo]), size=shape)
    return np.where(rng.random(shape) < 0.25, rng.integers(lo, hi + 1, shape), v).astype(np.int64)


def _np_pointwise(x, w):
    """int64 1x1 correlation (batch, H, W, Ci) x (Co, 1, 1, Ci) wrapped to int32."""
    acc = np.einsum("bhwc,oc->bhwo", x.astype(np.int64), w.reshape(w.shape[0], -1).astype(np.int64))
    return ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), x_t=st.sampled_from(TYPES), w_bits=st.sampled_from([8, 4, 2]),
       ci=st.integers(1, 40), co=st.integers(1, 40), rows=st.integers(1, 70), align=st.booleans())
def test_int8_matmul_is_the_exact_product_at_the_type_bounds(seed, x_t, w_bits, ci, co, rows, align):
    rng = np.random.default_rng(seed)
    x = _extreme(rng, (rows, ci), *_bounds(*x_t))
    w = _extreme(rng, (co, ci), *_bounds(w_bits, 1))
    if align:  # the largest |sum| a row can reach: every x at the bound matching its weight's sign
        lo, hi = _bounds(*x_t)
        x[0] = np.where(w[0] >= 0, hi, lo)
        w[-1] = -128 if w_bits == 8 else w[-1]
    want = _np_pointwise(x[:, None, None], w)[:, 0, 0]
    off = jnp.int32(128 if x_t == (8, 0) else 0)  # traced offset, as in the forward
    got = jax.jit(_batched.int8_matmul)(jnp.asarray(x, jnp.int32), jnp.asarray(w, jnp.int32), off)
    np.testing.assert_array_equal(np.asarray(got), want)
    assert int(jax.jit(lambda t: _engine.int8_offset(t))((jnp.int32(x_t[0]), jnp.int32(x_t[1])))) == int(off)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), ci=st.integers(1, 24), co=st.integers(1, 24), n_cfg=st.integers(1, 4),
       stride=st.sampled_from([1, 2]), pad=st.sampled_from([0, 1]))
def test_pointwise_forms_under_vmap_equal_the_float_path(seed, ci, co, n_cfg, stride, pad):
    """``_small_pointwise`` and ``_int8_pointwise`` with per-configuration weights and types (vmapped, traced
    offsets) == the int64 correlation, on inputs at their types' bounds and weights at -128 / 127 and the
    sub-byte ranges."""
    from jaxpulp.kernels.config import ConvConfig
    from jaxpulp.qtypes import QType

    rng = np.random.default_rng(seed)
    H = W = 5
    Ho = (H + 2 * pad - 1) // stride + 1
    cfg = ConvConfig(QType(8, False), QType(8, False), QType(8, True), H=H, W=W, Ci=ci, Co=co, Kh=1, Kw=1,
                     stride=(stride, stride), pad=(pad, pad, pad, pad), Ho=Ho, Wo=Ho)
    types = [TYPES[int(i)] for i in rng.integers(0, len(TYPES), n_cfg)]
    xs = np.stack([_extreme(rng, (2, H, W, ci), *_bounds(*t)) for t in types])
    ws = np.stack([_extreme(rng, (co, 1, 1, ci), *_bounds(int(rng.choice([8, 4, 2])), 1)) for _ in types])
    tb = jnp.asarray([t[0] for t in types], jnp.int32), jnp.asarray([t[1] for t in types], jnp.int32)
    xp = np.pad(xs, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)))[:, :, ::stride, ::stride][:, :, :Ho, :Ho]
    want = np.stack([_np_pointwise(xp[j], ws[j]) for j in range(n_cfg)])
    i8 = jax.jit(jax.vmap(lambda x, w, b, s: _batched._int8_pointwise(x, w, cfg, _engine.int8_offset((b, s)))))
    np.testing.assert_array_equal(np.asarray(i8(jnp.asarray(xs, jnp.int32), jnp.asarray(ws, jnp.int32), *tb)), want)
    if ci <= 16:  # the float32 broadcast sum is exact up to 16 channels (16 * 255 * 128 < 2**24)
        small = jax.jit(jax.vmap(lambda x, w: _batched._small_pointwise(x, w, cfg)))
        np.testing.assert_array_equal(np.asarray(small(jnp.asarray(xs, jnp.int32), jnp.asarray(ws, jnp.int32))),
                                      want)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 4), shape=st.sampled_from([(), (3,), (2, 5)]))
def test_materialise_is_the_identity(seed, n, shape):
    rng = np.random.default_rng(seed)
    v = rng.integers(-2**31, 2**31, (n,) + shape, dtype=np.int64).astype(np.int32)
    v.flat[0] = np.iinfo(np.int32).min
    np.testing.assert_array_equal(np.asarray(jax.jit(_batched._materialise)(jnp.asarray(v))), v)


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from(sorted(SPACES)), net_seed=st.integers(0, 1), cfg_seed=st.integers(0, 2**16))
def test_pick_weights_gives_each_layer_its_chosen_variant(name, net_seed, cfg_seed):
    """One pick for all layers (``_pick_weights``): every layer's slot is the host variant of its own weight
    variable's choice (int8 GEMM layers: as int8 ``(Co, Ci)`` with its per-channel sums), for every
    configuration of a vmapped batch; stacked (KxK) layers take none."""
    net, space, _, plan, _ = _setup(name, net_seed)
    configs = np.array(costtable.decode_sampled(space.arrays, jnp.arange(4), cfg_seed))
    configs[0] = 0  # every variable at its first choice
    configs[1] = [len(v.choices) - 1 for v in space.variables]  # every variable at its last choice
    got = jax.jit(jax.vmap(lambda c: _batched._pick_weights(plan, c)))(jnp.asarray(configs))
    want_keys = set()
    for lay_name, wv in plan.weights.items():
        if lay_name in plan.stacked:
            continue
        want_keys.add(lay_name)
        for j, cfg in enumerate(configs):
            w = wv.w[cfg[wv.var]]
            if got[lay_name].dtype == jnp.int8:
                want_keys.add(lay_name + "/sum")
                np.testing.assert_array_equal(np.asarray(got[lay_name][j]), w.reshape(w.shape[0], -1))
                np.testing.assert_array_equal(np.asarray(got[lay_name + "/sum"][j]), w.reshape(w.shape[0], -1).sum(1))
            else:
                np.testing.assert_array_equal(np.asarray(got[lay_name][j]), w)
    assert set(got) == want_keys
    assert any(got[k].dtype == jnp.int8 for k in got)  # the toy net's 1x1 conv (Ci = 16) is an int8 GEMM


def test_host_type_bounds_equal_quant_type_bounds():
    for bits in range(1, 33):
        for signed in (0, 1):
            lo, hi = quant.type_bounds(bits, signed)
            assert _batched._bounds_np(bits, signed) == (int(lo), int(hi)), (bits, signed)


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from(sorted(SPACES)), net_seed=st.integers(0, 1), cfg_seed=st.integers(0, 2**16))
def test_derive_without_weights_or_for_some_layers_is_the_same_derivation(name, net_seed, cfg_seed):
    """``Deriver.derive(weights=False, layers=...)`` and ``Deriver.out_scale`` (what the batched forward traces)
    give the full derivation's values."""
    net, space, der, _, _ = _setup(name, net_seed)
    cfg = jnp.asarray(costtable.decode_sampled(space.arrays, jnp.arange(1), cfg_seed)[0])
    full = der.derive(net.params, cfg)
    some = {lay.name for lay in net.layers[::2]}
    for kw in (dict(weights=False), dict(weights=False, layers=some), dict(layers=some)):
        part = der.derive(net.params, cfg, **kw)
        assert set(part[0]) == (some if "layers" in kw else set(full[0]))
        for lay_name, p in part[0].items():
            want = {k: v for k, v in full[0][lay_name].items() if kw.get("weights", True) or k != "w"}
            assert set(p) == set(want), lay_name
            for k in p:
                np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(want[k]))
        assert int(part[3]) == int(full[3]) and int(part[4]) == int(full[4])
    assert int(der.out_scale(cfg)) == int(full[4])
