"""The value path (and the packed path, on the conv kernel) runs a ``bn_bits=64`` layer with the 32-bit BN tree
only where its own parameters prove both trees equal (``execute._bn_fits_int32``), elsewhere with int32 pieces
where ``quant.bn64_split`` proves them (the packed path over any accumulator): checked against the numpy
interpreter (int64, 64-bit tree) at the inputs that reach the ends of every channel's accumulator range (the
packed path against its own 16-bit-limb tree), and the proof shown to be needed (where it fails, the 32-bit tree
really differs at those inputs)."""
import dataclasses
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxpulp import QType, quant
from jaxpulp.network import execute, reference
from jaxpulp.network.graph import Layer, Network, TensorSpec

PROPERTY = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _net(kind, it, rng, scale, shift, bias=True):
    """One bn_bits=64 layer; kappa up to ``scale`` times what takes kappa * acc to 2**31 at the largest
    accumulator magnitude (so scales near 1 put the channels on both sides of the proof's bound)."""
    H, W, C, Co, k = 4, 4, 8, 4, 3
    w_shape = {"conv": (Co, k, k, C), "depthwise": (C, k, k), "linear": (Co, H * W * C)}[kind]
    co = C if kind == "depthwise" else Co
    w = rng.integers(-128, 128, w_shape)
    kappa_hi = max(1, int(scale * 2**31 / (255 * np.abs(w.reshape(co, -1)).sum(axis=1).max())))
    p = dict(w=w, bias=rng.integers(-5000, 5000, co).astype(np.int32),
             kappa=rng.integers(-kappa_hi, kappa_hi + 1, co).astype(np.int32),
             lam=rng.integers(-2**20, 2**20, co).astype(np.int32), out_mult=0, out_shift=shift)
    geo = {} if kind == "linear" else dict(kernel=(k, k), stride=(1, 1), pad=(1, 1, 1, 1))
    out = (1, 1, co) if kind == "linear" else (H, W, co)
    lay = Layer("l", kind, ("in",), "out", (H, W, C), out, it, "u8", "i8", relu=1, bn=1, bias=bias, bn_bits=64,
                **geo)
    return Network("one", (TensorSpec("in", lay.in_shape, lay.in_type),), (lay,), {lay.name: p}, ("out",))


def _extreme_inputs(net):
    """Per output channel (up to 4), two inputs whose window of the interior output pixel (2, 2) holds the type's
    ends in the sign pattern of that channel's weights and its opposite (the whole input for linear): the
    channel's accumulator there is exactly an end of the interval the proof bounds. Plus two random inputs."""
    lay, qt = net.layers[0], net.input.qtype
    w = np.asarray(net.params["l"]["w"])
    rng = np.random.default_rng(0)
    xs = [rng.integers(qt.lo, qt.hi + 1, lay.in_shape) for _ in range(2)]
    for c in range(min(len(w), 4)):
        for sign in (1, -1):
            x = rng.integers(qt.lo, qt.hi + 1, lay.in_shape)
            if lay.kind == "linear":
                x = np.where(sign * w[c].reshape(lay.in_shape) > 0, qt.hi, qt.lo)
            elif lay.kind == "depthwise":
                x[1:4, 1:4, c] = np.where(sign * w[c] > 0, qt.hi, qt.lo)
            else:
                x[1:4, 1:4, :] = np.where(sign * w[c] > 0, qt.hi, qt.lo)
            xs.append(x)
    return np.stack(xs)


@PROPERTY
@given(kind=st.sampled_from(["conv", "depthwise", "linear"]), it=st.sampled_from(["u8", "i8", "u4"]),
       scale=st.sampled_from([0.001, 0.7, 1.0, 1.5, 3.0, 100.0]), shift=st.sampled_from([8, 19, 31, 40]),
       bias=st.booleans(), seed=st.integers(0, 2**31))
def test_the_narrowed_value_path_equals_the_64_bit_interpreter(kind, it, scale, shift, bias, seed):
    net = _net(kind, QType.parse(it), np.random.default_rng(seed), scale, shift, bias)
    x = _extreme_inputs(net)
    want = reference.forward(net, x)["out"]
    np.testing.assert_array_equal(execute.run(net, x, path="values").outputs["out"], want)
    prepared = execute._prepared_value_layers(net)[0]
    narrowed = prepared.bn_bits == 32
    assert narrowed == execute._bn_fits_int32(net.layers[0], net.params["l"], net.input.qtype)
    # not narrowed: the 64-bit tree in int32 pieces where quant.bn64_split proves them, else in 16-bit limbs
    split = execute._bn_split(net.layers[0], net.params["l"], net.input.qtype)
    assert getattr(prepared, "bn_split", None) == (None if narrowed else split)
    if shift & 63 >= 32:
        assert not narrowed
    if kind == "depthwise" and bias:  # the depthwise kernel reads one signed byte of bias per channel
        return
    cfg = execute._prepared_packed_configs(net, execute.GAP8)[0]
    packed = execute.run(net, x).outputs["out"]
    if kind == "conv":  # the packed path narrows the conv kernel alike (no accumulation quirk reaches it), but
        assert (cfg.family, cfg.bn_bits == 32) == ("conv", narrowed and not bias)  # not where it reads a bias
        np.testing.assert_array_equal(packed, want)
    if cfg.bn_bits == 64:  # elsewhere the int32 pieces proved for any int32 accumulator (whatever the kernel's
        p = net.params["l"]  # quirks make of it), else 16-bit limbs: the same bits as the limbs
        assert cfg.bn_split == quant.bn64_split(p["kappa"], p["lam"], p["out_shift"])
        limbs = _net(kind, QType.parse(it), np.random.default_rng(seed), scale, shift, bias)  # fresh caches
        with mock.patch.object(quant, "bn64_split", lambda *a, **k: None):
            assert execute._prepared_packed_configs(limbs, execute.GAP8)[0].bn_split is None
            np.testing.assert_array_equal(packed, execute.run(limbs, x).outputs["out"])


def _trees_differ(net, x):
    """Whether the 32-bit tree gives other bits than the 64-bit one on these inputs (numpy interpreter)."""
    lay = net.layers[0]
    n32 = net.replace(layers=(dataclasses.replace(lay, bn_bits=32),))
    return not np.array_equal(reference.forward(net, x)["out"], reference.forward(n32, x)["out"])


def test_the_proof_is_needed_where_it_fails_and_holds_where_it_passes():
    failed = passed = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        kind = ("conv", "depthwise", "linear")[seed % 3]
        net = _net(kind, QType.parse("u8"), rng, float(rng.uniform(0.5, 3.0)), 19)
        x = _extreme_inputs(net)
        if execute._bn_fits_int32(net.layers[0], net.params["l"], net.input.qtype):
            passed += 1
            assert not _trees_differ(net, x)
        elif _trees_differ(net, x):
            failed += 1
    assert passed >= 5 and failed >= 5  # both sides of the proof were exercised, and failures really differ


def test_a_kernel_config_takes_a_split_only_with_the_64_bit_tree():
    from jaxpulp import JaxpulpError
    from jaxpulp.kernels.config import ConvConfig, LinearConfig

    geo = dict(H=4, W=4, Ci=8, Co=8)
    assert ConvConfig("u8", "u8", "i8", bn_bits=64, bn_split=(12, 2), **geo).bn_split == (12, 2)
    for bad in (dict(bn_bits=32, bn_split=(12, 2)), dict(bn_bits=64, bn_split=(0, 1)),
                dict(bn_bits=64, bn_split=12), dict(bn_bits=64, bn_split=(12, True))):
        with pytest.raises(JaxpulpError, match="bn_split="):
            ConvConfig("u8", "u8", "i8", **geo, **bad)
    with pytest.raises(JaxpulpError, match="bn_split="):
        LinearConfig("u8", "u8", "i8", N=8, M=4, bn_split=(16, 1))


def test_only_bn_mode_64_bit_layers_are_narrowed():
    rng = np.random.default_rng(1)
    net = _net("conv", QType.parse("u8"), rng, 0.001, 8)
    lay = net.layers[0]
    assert execute._bn_fits_int32(lay, net.params["l"], net.input.qtype)
    for other in (dataclasses.replace(lay, bn_bits=32), dataclasses.replace(lay, bn=0),
                  dataclasses.replace(lay, relu=0)):
        assert quant.mode(other.relu, other.bn) != quant.MODE_BN or other.bn_bits == 32
        assert not execute._bn_fits_int32(other, net.params["l"], net.input.qtype)
    for missing in ("kappa", "lam", "w"):  # nothing to prove from: keep the 64-bit tree
        p = {k: v for k, v in net.params["l"].items() if k != missing}
        assert not execute._bn_fits_int32(lay, p, net.input.qtype)
