"""``run``'s input handling: inputs move to the device in ``execute.host_dtype`` of their type (uint8 for u8) and
are widened there; whatever integer dtype a caller passes, the outputs are the numpy interpreter's, and values
outside the input type are still refused (also when the dtype is narrow)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp import JaxpulpError
from jaxpulp.network import execute, reference, zoo
from jaxpulp.network.execute import run
from jaxpulp.network.graph import TensorSpec
from jaxpulp.qtypes import QType

TINY = dict(alpha=0.25, resolution=96)  # as tests/test_network.py


@pytest.fixture(scope="module")
def tiny():
    return zoo.mobilenet_v1(**TINY)


@pytest.mark.parametrize("t", ["u8", "u4", "u2", "i8", "i4", "i2", "u32", "i32"])
def test_host_dtype_is_the_narrowest_that_holds_the_type(t):
    qt = QType.parse(t)
    dt = execute.host_dtype(qt)
    info = np.iinfo(dt)
    assert info.min <= qt.lo and qt.hi <= info.max
    narrower = [d for d in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32)
                if np.dtype(d).itemsize < dt.itemsize]
    assert all(np.iinfo(d).min > qt.lo or np.iinfo(d).max < qt.hi for d in narrower)


@settings(max_examples=4, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31), batch=st.integers(1, 3),
       dtype=st.sampled_from(["uint8", "int16", "int32", "int64", "uint32", "jax-int32"]))
def test_any_integer_dtype_gives_the_numpy_interpreters_outputs(tiny, seed, batch, dtype):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (batch,) + tiny.input.shape)
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0, 255  # the type's bounds
    want = reference.forward(tiny, x)["fc"]
    xd = jnp.asarray(x, jnp.int32) if dtype == "jax-int32" else x.astype(dtype)
    for path in ("packed", "values"):
        np.testing.assert_array_equal(run(tiny, xd, path=path).outputs["fc"], want, err_msg=f"{path} {dtype}")


def test_values_outside_the_input_type_are_refused_in_a_narrow_dtype(tiny):
    lays = list(tiny.layers)
    lays[0] = lays[0].with_types(in_type="u4")
    u4 = tiny.replace(inputs=(TensorSpec(tiny.input.name, tiny.input.shape, QType.parse("u4")),), layers=tuple(lays))
    assert execute.host_dtype(u4.input.qtype) == np.uint8
    x = np.zeros((1,) + tiny.input.shape, np.uint8)
    x[0, 1, 2, 0] = 16
    with pytest.raises(JaxpulpError, match=r"x: values span \[0, 16\], outside u4"):
        run(u4, x)
    with pytest.raises(JaxpulpError, match=r"x: values span \[0, 16\], outside u4"):  # checked on the device
        run(u4, jnp.asarray(x))
    with pytest.raises(JaxpulpError, match=r"x: values span \[-1, 0\], outside u8"):
        run(tiny, -jnp.asarray(x, jnp.int32) // 16)
    with pytest.raises(JaxpulpError, match="x: dtype float32"):
        run(tiny, x.astype(np.float32))


@pytest.mark.parametrize("device", [False, True])
def test_an_empty_batch_is_refused_by_name(tiny, device):
    # it ended in ZeroDivisionError in the step arithmetic
    x = np.zeros((0,) + tiny.input.shape, np.uint8)
    with pytest.raises(JaxpulpError, match=r"x: shape \(0, 96, 96, 3\), expected \(batch, 96, 96, 3\) HWC, batch >= 1"):
        run(tiny, jnp.asarray(x) if device else x)


def test_a_device_array_is_not_copied_through_the_host(tiny, monkeypatch):
    # a jax.Array input keeps to its device: its dtype is converted there (np.asarray is never called on it)
    x = np.random.default_rng(3).integers(0, 256, (2,) + tiny.input.shape)
    want = reference.forward(tiny, x)["fc"]
    xd = jnp.asarray(x, jnp.int32)
    real = np.asarray

    def guarded(a, *args, **kw):
        assert a is not xd, "run pulled its device input to the host"
        return real(a, *args, **kw)
    monkeypatch.setattr(execute.np, "asarray", guarded)
    checked = execute._check_inputs(tiny, xd)[tiny.input.name]
    assert isinstance(checked, jax.Array) and checked.dtype == np.uint8
    monkeypatch.undo()
    np.testing.assert_array_equal(run(tiny, xd, path="values").outputs["fc"], want)


@pytest.mark.parametrize("path", ["packed", "values"])
def test_weights_as_constants_or_as_arguments_give_the_same_bits(monkeypatch, path):
    # a small network's prepared weights are compiled into run's forward (no arguments); above CONST_BYTES they
    # are passed as arguments: both are the numpy interpreter's outputs, for every tensor
    net = zoo.mobilenet_v1(alpha=0.25, resolution=96, seed=7)  # a network object of its own (fresh caches)
    x = np.random.default_rng(4).integers(0, 256, (2,) + net.input.shape)
    want = reference.forward(net, x, keep=True)
    fn, args, _ = execute._runner(net, path, True, execute.GAP8, 1)
    assert args == ()
    got = run(net, x, path=path, keep=True, step=1).tensors
    monkeypatch.setattr(execute, "CONST_BYTES", 0)
    fn, args, _ = execute._runner(net, path, True, execute.GAP8, 2)  # another step: a runner built anew
    assert len(args) >= 1 and len(jax.tree_util.tree_leaves(args)) > 10
    got_args = run(net, x, path=path, keep=True, step=2).tensors
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} (constants)")
        np.testing.assert_array_equal(got_args[name], want[name], err_msg=f"{name} (arguments)")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(t=st.sampled_from(["u8", "u4", "u2", "i8", "i4", "i2", "u32", "i32"]),
       dtype=st.sampled_from(["uint8", "int8", "uint16", "int16", "int32", "int64", "float32"]),
       lead=st.sampled_from([(), (1,), (3,), (0,), (1, 1)]), seed=st.integers(0, 2**31))
def test_the_common_calls_shortcut_checks_as_the_general_rule(t, dtype, lead, seed):
    # _check_inputs decides a single numpy input in a few comparisons; whatever it returns or raises must be what
    # the general per-input check (_check_one) returns or raises
    from jaxpulp.network.graph import Network
    spec = TensorSpec("x0", (2, 3, 1), QType.parse(t))
    net = object.__new__(Network)
    object.__setattr__(net, "inputs", (spec,))
    x = np.random.default_rng(seed).integers(-20, 20, lead + spec.shape).astype(dtype)

    def outcome(f):
        try:
            return f()
        except JaxpulpError as e:
            return str(e)
    got = outcome(lambda: execute._check_inputs(net, x))
    want = outcome(lambda: {"x0": execute._check_one(spec, x, "x")})
    if isinstance(want, str):
        assert got == want
    else:
        assert isinstance(got, dict) and got["x0"].dtype == want["x0"].dtype
        np.testing.assert_array_equal(got["x0"], want["x0"])
