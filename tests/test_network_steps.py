"""``execute.run`` runs a large batch as a sequence of compiled steps (``step`` inputs each, the last padded): the
bits must not depend on the step, on either path, for every tensor, whatever the batch / step remainder."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp import JaxpulpError
from jaxpulp.network import execute, zoo


@settings(max_examples=4, deadline=None, derandomize=True)
@given(path=st.sampled_from(["packed", "values"]), act=st.sampled_from(["u8", "i8", "u4"]),
       batch=st.integers(2, 7), step=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_steps_give_the_bits_of_one_step_for_every_tensor(path, act, batch, step, seed):
    net = zoo.mobilenet_v1(alpha=0.25, resolution=96, seed=seed % 1000, act=act)
    qt = net.input.qtype
    x = np.random.default_rng(seed).integers(qt.lo, qt.hi + 1, (batch,) + net.input.shape)
    whole = execute.run(net, x, path=path, keep=True, step=batch).tensors
    stepped = execute.run(net, x, path=path, keep=True, step=step).tensors
    assert set(stepped) == set(whole)
    for name, v in whole.items():
        assert stepped[name].shape == v.shape, name
        np.testing.assert_array_equal(stepped[name], v, err_msg=f"{name} ({path}, batch {batch}, step {step})")
    # the inputs differ, so a step that mixed up or dropped inputs would show in the outputs
    assert len({whole[net.outputs[0]][i].tobytes() for i in range(batch)}) == batch


def test_dronet_in_steps_with_a_remainder_equals_one_step():
    net = zoo.dronet()
    x = np.clip(zoo.dronet_input()[None] + np.random.default_rng(5).integers(-30, 31, (6,) + net.input.shape), 0, 255)
    for path in ("packed", "values"):
        one = execute.run(net, x, path=path, step=6).outputs
        four = execute.run(net, x, path=path, step=4).outputs  # one full step and one padded with two zero inputs
        for k in one:
            np.testing.assert_array_equal(four[k], one[k], err_msg=path)


def _widest_layer_bytes(net):
    shapes = {k: v[0] for k, v in net.tensor_types().items()}
    return max(4 * sum(int(np.prod(shapes[t])) for t in (*lay.inputs, lay.output)) for lay in net.layers)


@pytest.mark.parametrize("name", ["dronet", "mobilenet_v1"])
def test_auto_step_is_the_largest_power_of_two_that_fits_the_working_set(name):
    net = zoo.builtin(name)
    s, per = execute.auto_step(net, backend="cpu"), _widest_layer_bytes(net)
    assert s >= 1 and s & (s - 1) == 0
    assert s * per <= execute.STEP_BYTES < 2 * s * per


def test_accelerators_take_large_steps():
    net = zoo.dronet()
    s = execute.auto_step(net, backend="gpu")
    assert s * _widest_layer_bytes(net) <= execute.STEP_BYTES_ACCELERATOR < 2 * s * _widest_layer_bytes(net)
    assert s >= 32 * execute.auto_step(net, backend="cpu")


def test_auto_step_is_one_when_a_single_input_exceeds_the_working_set(monkeypatch):
    net = zoo.dronet()
    monkeypatch.setattr(execute, "STEP_BYTES", _widest_layer_bytes(net) - 1)
    assert execute.auto_step(net, backend="cpu") == 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_a_bad_step_is_refused_by_name(bad):
    net = zoo.dronet()
    with pytest.raises(JaxpulpError, match=r"step=.*expected None or an int >= 1"):
        execute.run(net, zoo.dronet_input()[None], step=bad)
