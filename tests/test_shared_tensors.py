"""Tensors read by several layers are computed once into their own buffer (``_engine.materialise``): the same
bits, on both paths."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from jaxpulp import QType
from jaxpulp.kernels import _engine
from jaxpulp.network import execute, reference, zoo
from jaxpulp.network.graph import Layer, Network, TensorSpec

_I32 = np.iinfo(np.int32)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 2**31),
       extremes=st.booleans())
def test_materialise_is_the_identity_on_int32(shape, seed, extremes):
    rng = np.random.default_rng(seed)
    v = rng.integers(_I32.min, _I32.max, shape, dtype=np.int64, endpoint=True).astype(np.int32)
    if extremes:
        v.flat[0], v.flat[-1] = _I32.min, _I32.max
    np.testing.assert_array_equal(np.asarray(jax.jit(_engine.materialise)(jnp.asarray(v))), v)


def test_materialise_passes_other_dtypes_through():
    v = jnp.asarray([[-1.5, 2.0]], jnp.float32)
    out = _engine.materialise(v)
    assert out.dtype == jnp.float32 and np.array_equal(np.asarray(out), np.asarray(v))


def test_dronet_shares_its_pooled_stem_and_residual_sums():
    net = zoo.dronet()
    shared = execute._shared_tensors(net.layers)
    by_name = {lay.name: lay for lay in net.layers}
    # the max pool feeds both branches of the first residual block; each residual sum feeds the next block's two
    assert by_name["MaxPool_7"].output in shared
    assert {by_name[a].output for a in ("Add_29", "Add_51")} <= shared
    # a conv read only by the residual add, and the network output, are not
    assert by_name["Conv_22"].output not in shared
    assert net.outputs[0] not in shared


def test_a_layer_reading_one_tensor_twice_does_not_share_it():
    net = zoo.dronet()
    lay = next(lay for lay in net.layers if lay.kind == "add")
    twice = lay.replace(inputs=(lay.inputs[0], lay.inputs[0]))
    assert lay.inputs[0] not in execute._shared_tensors((twice,))


def _signed_residual(seed):
    """i8 in -> conv (i8 out, read by two convs) -> two i8 convs -> add (i8): the shared tensor holds negative
    values, so a materialisation that clipped or shifted them would show."""
    rng = np.random.default_rng(seed)
    H, C = 8, 8

    def conv(name, inp, out):
        lay = Layer(name, "conv", (inp,), out, (H, H, C), (H, H, C), "i8", "i8", "i8", kernel=(3, 3),
                    pad=(1, 1, 1, 1), relu=1, bn=1, bias=False)
        p = dict(w=rng.integers(-128, 128, (C, 3, 3, C)),
                 kappa=rng.integers(-9, 10, C).astype(np.int32), lam=rng.integers(-999, 999, C).astype(np.int32),
                 out_mult=0, out_shift=np.int32(12))
        return lay, p

    layers, params = [], {}
    for name, inp, out in (("c0", "x", "s"), ("c1", "s", "a"), ("c2", "s", "b")):
        lay, p = conv(name, inp, out)
        layers.append(lay)
        params[name] = p
    layers.append(Layer("add", "add", ("a", "b"), "y", (H, H, C), (H, H, C), "i8", "i8", in2_type="i8",
                        relu=0, requant=0))
    params["add"] = dict(in1_mul=3, in1_add=0, in1_shift=2, in2_mul=5, in2_add=1, in2_shift=3, out_mul=1,
                         out_add=0, out_shift=0)
    return Network("residual", (TensorSpec("x", (H, H, C), QType.parse("i8")),), tuple(layers), params, ("y",))


def test_a_signed_shared_tensor_equals_the_interpreter_on_both_paths():
    net = _signed_residual(1)
    assert execute._shared_tensors(net.layers) == {"s"}
    x = np.random.default_rng(2).integers(-128, 128, (3,) + net.input.shape)
    want = reference.forward(net, x, keep=True)
    assert (want["s"] < 0).any() and (want["s"] > 0).any()
    for path in ("packed", "values"):
        got = execute.run(net, x, path=path, keep=True).tensors
        for name in ("s", "a", "b", "y"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} ({path})")
