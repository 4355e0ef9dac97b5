"""ONNX constants the importer must read exactly or refuse: a per-tensor divisor, Clip bound or attribute with
several different values, a non-integer divisor or bound, a per-channel constant laid along a spatial axis. Each
was once read by its first element, truncated or taken as per-channel, giving outputs that differ from the graph."""
import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from jaxpulp import JaxpulpError  # noqa: E402
from jaxpulp.network import reference, run  # noqa: E402
from jaxpulp.network.onnx_import import load_onnx  # noqa: E402

CO = 8


def _chain(k=None, l_=None, d=2.0 ** 10, clip=(0.0, 255.0), m=None, bias=None):
    """Conv 4 -> 8 (3x3, pad 1) on a (1, 4, 6, 6) input, then Mul(k) Add(l) [Mul(m)] Div(d) Floor Clip."""
    w = np.arange(CO * 4 * 9).reshape(CO, 4, 3, 3) % 7 - 3
    conv_in = ["x", "w"] + (["b"] if bias is not None else [])
    nodes = [helper.make_node("Conv", conv_in, ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "k"], ["mk"], name="mul"),
             helper.make_node("Add", ["mk", "l"], ["a"], name="add")]
    last = "a"
    if m is not None:
        nodes.append(helper.make_node("Mul", ["a", "mm"], ["am"], name="mul_m"))
        last = "am"
    nodes += [helper.make_node("Div", [last, "d"], ["q"], name="div"),
              helper.make_node("Floor", ["q"], ["f"], name="floor"),
              helper.make_node("Clip", ["f", "lo", "hi"], ["y"], name="clip")]
    inits = {"w": w, "k": np.full((CO, 1, 1), 3) if k is None else k, "l": np.zeros((CO, 1, 1)) if l_ is None else l_,
             "d": np.asarray(d), "lo": np.asarray(clip[0]), "hi": np.asarray(clip[1])}
    if m is not None:
        inits["mm"] = m
    if bias is not None:
        inits["b"] = bias
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4, 6, 6))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)]), w


def _graph_output(w, x_nchw, k, l_, m, d, lo, hi):
    """The graph evaluated in int64: conv (pad 1), then floor((k*acc + l) [* m] / d) clipped."""
    xp = np.pad(x_nchw[0], ((0, 0), (1, 1), (1, 1)))
    acc = np.zeros((CO, 6, 6), np.int64)
    for o in range(CO):
        for i in range(6):
            for j in range(6):
                acc[o, i, j] = np.sum(xp[:, i:i + 3, j:j + 3] * w[o])
    v = k.reshape(CO, 1, 1) * acc + l_.reshape(CO, 1, 1)
    if m is not None:
        v = v * m.reshape(CO, 1, 1)
    return np.clip(np.floor_divide(v, d), lo, hi)


@pytest.mark.parametrize("d, needle", [
    (np.array([1024] * 4 + [64] * 4, np.float32).reshape(1, CO, 1, 1), "divisor holds 8 different values"),
    (np.float32(1024.7), "divisor = 1024.7"),
    (np.float32(1.5), "divisor = 1.5"),
    (np.float32(0.5), "divisor = 0.5"),
])
def test_divisors_must_be_one_whole_power_of_two(d, needle):
    with pytest.raises(JaxpulpError, match=needle):
        load_onnx(_chain(d=d)[0])


def test_a_divisor_repeated_per_channel_is_one_divisor():
    same = load_onnx(_chain(d=np.full((1, CO, 1, 1), 1024.0))[0])
    assert [layer.name for layer in same.layers] == [layer.name for layer in load_onnx(_chain()[0]).layers]


@pytest.mark.parametrize("clip, needle", [
    ((0.4, 255.3), "Clip min = 0.4"),
    ((-0.4, 254.6), "Clip min = -0.4"),
    ((np.array([0.0, 100.0]), 255.0), "Clip min holds 2 different values"),
    ((np.float32("nan"), 255.0), "Clip min = nan"),
])
def test_clip_bounds_must_be_exact(clip, needle):
    with pytest.raises(JaxpulpError, match=needle):
        load_onnx(_chain(clip=clip)[0])


@pytest.mark.parametrize("shape, ok", [((CO, 1, 1), True), ((1, CO, 1, 1), True), ((CO, 1, 1, 1), False),
                                       ((1, 1, 1, CO), False), ((CO,), False), ((1, CO, 1), False)])
def test_per_channel_constants_lie_along_the_channel_axis(shape, ok):
    k = (np.arange(CO) + 1).reshape(shape)
    if ok:
        assert load_onnx(_chain(k=k)[0]).layers[0].kind == "conv"
    else:
        with pytest.raises(JaxpulpError, match=rf"kappa of shape \({shape[0]},.*does not lie along the channel axis"):
            load_onnx(_chain(k=k)[0])


def test_a_per_channel_requant_multiplier_is_applied_per_channel():
    k, l_ = np.arange(1, CO + 1).reshape(CO, 1, 1), (np.arange(CO) * 5 - 20).reshape(CO, 1, 1)
    m = np.array([3] * 4 + [300] * 4).reshape(CO, 1, 1)
    model, w = _chain(k=k, l_=l_, m=m, d=2.0 ** 12)
    net = load_onnx(model)
    x = np.random.default_rng(0).integers(0, 256, (2, 6, 6, 4))
    got = run(net, x).outputs[net.outputs[0]]
    want = np.stack([_graph_output(w, xi.transpose(2, 0, 1)[None], k, l_, m, 1 << 12, 0, 255).transpose(1, 2, 0)
                     for xi in x])
    assert np.array_equal(got.reshape(want.shape), want)  # the first element alone (3) gave 62 of 288 wrong
    assert np.array_equal(got, reference.forward(net, x)[net.outputs[0]])


def test_conv_bias_of_the_wrong_length_is_refused():
    with pytest.raises(JaxpulpError, match="bias has 3 values, expected 8"):
        load_onnx(_chain(bias=np.zeros(3))[0])


@pytest.mark.parametrize("model, needle", [
    (b"garbage", "model=<7 bytes>: not a serialised ONNX model"),
    (None, "model=None: expected a path"),
    (123, "model=123: expected a path"),
])
def test_model_argument_of_the_wrong_kind(model, needle):
    with pytest.raises(JaxpulpError, match=needle):
        load_onnx(model)


def test_input_type_must_be_an_activation_type():
    with pytest.raises(JaxpulpError, match="input_type=i32 for graph input 'x'"):
        load_onnx(_chain()[0], input_type="i32")


def _conv_only(pads, kernel=3, hw=6):
    m, _ = _chain()
    conv = m.graph.node[0]
    del conv.attribute[:]
    conv.attribute.extend([helper.make_attribute("kernel_shape", [kernel, kernel]),
                           helper.make_attribute("pads", pads)])
    if kernel != 3:
        w = next(i for i in m.graph.initializer if i.name == "w")
        w.CopyFrom(numpy_helper.from_array(np.ones((CO, 4, kernel, kernel), np.float32), "w"))
    return m


def test_conv_geometry_is_judged_at_the_conv_node():
    # it imported, and run named the Clip's output tensor or repeated the rule tag
    with pytest.raises(JaxpulpError, match=r"node 'conv' \(Conv\): pads \[5, 5, 5, 5\] .* reach the 3x3 kernel"):
        load_onnx(_conv_only([5, 5, 5, 5]))
    with pytest.raises(JaxpulpError, match=r"node 'conv' \(Conv\): a 9x9 kernel with pads \[0, 0, 0, 0\] .* 6x6 "
                                           "input gives no output"):
        load_onnx(_conv_only([0, 0, 0, 0], kernel=9))
    assert load_onnx(_conv_only([2, 2, 2, 2], kernel=3)).layers[0].out_shape == (8, 8, CO)
