"""The metric sweep's batched forward (configurations folded into the batch, shared prefix, stacked weight
choices) against its definition: each configuration alone, ``Deriver.derive`` then ``run_values``."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from jaxpulp import costtable
from jaxpulp.errors import JaxpulpError
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
