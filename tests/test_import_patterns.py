"""Graph patterns of real PULP networks (Deeploy and DORY test corpora) as small synthetic ONNX graphs: each
imports, runs on the packed and the value path, and equals an independent numpy model of the graph with ==."""
import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from jaxpulp import JaxpulpError, UnsupportedConfig  # noqa: E402
from jaxpulp.network import conformance, mapping  # noqa: E402
from jaxpulp.network.cli import read_input  # noqa: E402
from jaxpulp.network.execute import run  # noqa: E402
from jaxpulp.network.onnx_import import load_onnx  # noqa: E402

EXT = os.path.join(os.path.dirname(__file__), "data", "external")
DORY = os.path.join(EXT, "dory_examples")
DEEPLOY = os.path.join(EXT, "deeploy", "DeeployTest", "Tests")


def _model(nodes, inits, inputs, out="y"):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in inputs],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def _rqs(name, x, y, levels_attr="n_levels_out", div=2 ** 10, signed=0):
    """A Deeploy RequantShift node (attributes as tensors, as Deeploy exports them)."""
    t = lambda k, v: numpy_helper.from_array(np.asarray([v], np.float32), f"{name}.{k}")  # noqa: E731
    return helper.make_node("RequantShift", [x, f"{name}.mul", f"{name}.add"], [y], name=name,
                            div=t("div", div), **{levels_attr: t(levels_attr, 256)}, signed=t("signed", signed))


def _conv_nchw(x, w, pads, stride=(1, 1), dil=(1, 1)):
    """Plain int64 NCHW cross-correlation, batch 1: x (C, H, W), w (Co, C, Kh, Kw); pads (t, b, l, r)."""
    x = np.pad(x.astype(np.int64), ((0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    Co, C, Kh, Kw = w.shape
    Ho = (x.shape[1] - dil[0] * (Kh - 1) - 1) // stride[0] + 1
    Wo = (x.shape[2] - dil[1] * (Kw - 1) - 1) // stride[1] + 1
    out = np.zeros((Co, Ho, Wo), np.int64)
    for i in range(Kh):
        for j in range(Kw):
            patch = x[:, i * dil[0]:i * dil[0] + stride[0] * (Ho - 1) + 1:stride[0],
                      j * dil[1]:j * dil[1] + stride[1] * (Wo - 1) + 1:stride[1]]
            out += np.einsum("chw,oc->ohw", patch, w[:, :, i, j].astype(np.int64))
    return out


def _rq(acc, mul, add, div=2 ** 10, lo=0, hi=255):
    """Deeploy RequantShift: floor((acc*mul + add + div/2) / div), clipped."""
    mul = np.asarray(mul).reshape(-1, *([1] * (acc.ndim - 1)))
    add = np.asarray(add).reshape(-1, *([1] * (acc.ndim - 1)))
    return np.clip(np.floor_divide(acc * mul + add + div // 2, div), lo, hi)


def _both_paths(net, x):
    return [run(net, x, path=p).outputs[net.outputs[0]][0] for p in ("packed", "values")]


# ------------------------------------------------------------------------------------- Deeploy spellings


@pytest.mark.parametrize("attr", ["n_levels_out", "n_levels"])
def test_requantshift_accepts_n_levels_and_n_levels_out(attr):
    rng = np.random.default_rng(0)
    w = rng.integers(-8, 8, (8, 4, 3, 3))
    mul, add = rng.integers(1, 40, 8), rng.integers(-2000, 2000, 8)
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                _rqs("rq", "c", "y", attr)], {"w": w, "rq.mul": mul.reshape(1, 8, 1, 1),
                                              "rq.add": add.reshape(1, 8, 1, 1)}, [("x", (1, 4, 6, 6))])
    net = load_onnx(m)
    x = rng.integers(0, 256, (4, 6, 6))
    want = _rq(_conv_nchw(x, w, (1, 1, 1, 1)), mul, add).transpose(1, 2, 0)
    for got in _both_paths(net, x.transpose(1, 2, 0)):
        assert (got == want).all()


def test_requantshift_without_levels_names_the_node():
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
                helper.make_node("RequantShift", ["c", "m", "a"], ["y"], name="rq", div=1024.0, signed=0.0)],
               {"w": np.ones((4, 4, 1, 1)), "m": np.ones(4), "a": np.zeros(4)}, [("x", (1, 4, 4, 4))])
    with pytest.raises(JaxpulpError, match="'rq'.*n_levels_out"):
        load_onnx(m)


def _conv_rq(conv_inputs=("x", "w"), order=(0, 1), extra=(), out="y", **conv_attrs):
    """Conv 3x3 (4 -> 8) + RequantShift, malformed as asked (inputs, node order, extra nodes, graph output)."""
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], **conv_attrs}
    nodes = [helper.make_node("Conv", list(conv_inputs), ["c"], name="conv", **attrs), _rqs("rq", "c", "y")]
    return _model([nodes[i] for i in order] + list(extra), {"w": np.ones((8, 4, 3, 3)), "rq.mul": np.ones(8),
                                                            "rq.add": np.zeros(8)}, [("x", (1, 4, 6, 6))], out)


@pytest.mark.parametrize("kw,match", [
    ({}, None),  # the well-formed graph imports
    (dict(conv_inputs=("nope", "w")), "'conv' \\(Conv\\): input 'nope' is produced by no node"),
    (dict(order=(1, 0)), "'rq' \\(RequantShift\\): input 'c' is produced only by node 'conv' \\(Conv\\), which "
                         "is not before it"),
    (dict(extra=(helper.make_node("Identity", ["x"], ["c"], name="dup"),)), "output 'c' is also produced by"),
    (dict(extra=(helper.make_node("Identity", ["x"], [], name="mute"),)), "node 'mute' \\(Identity\\): no output"),
    (dict(out="z"), "graph outputs \\['z'\\]: produced by no node"),
    (dict(strides=[0, 0]), "'conv' \\(Conv\\): strides=\\[0, 0\\], expected values >= 1"),
    (dict(dilations=[1, 0]), "dilations=\\[1, 0\\], expected values >= 1"),
    (dict(kernel_shape=[5, 5]), "kernel_shape=\\[5, 5\\], but the weight 'w' has shape \\(3, 3\\)"),
    (dict(input_dim=(0, "batch")), None),  # a symbolic batch axis is fine
    (dict(input_dim=(2, "H")), "graph input 'x': axis 2 is 'H'; expected fixed sizes"),
    (dict(input_dim=(1, 0)), "graph input 'x': axis 1 is 0; expected fixed sizes"),
], ids=["well-formed", "dangling-input", "out-of-order", "two-producers", "no-output", "missing-output", "stride-0",
        "dilation-0", "kernel-shape-mismatch", "symbolic-batch", "symbolic-height", "zero-channels"])
def test_malformed_graphs_are_refused_naming_node_and_tensor(kw, match):
    """A dangling or backward edge once surfaced as a requantisation-pattern error about another node, a zero
    stride as ZeroDivisionError, and a kernel_shape contradicting the weight was silently ignored."""
    m = _conv_rq(**{k: v for k, v in kw.items() if k != "input_dim"})
    if "input_dim" in kw:  # (axis, symbolic name or size) of the graph input
        axis, v = kw["input_dim"]
        d = m.graph.input[0].type.tensor_type.shape.dim[axis]
        d.ClearField("dim_value")
        if isinstance(v, str):
            d.dim_param = v
        else:
            d.dim_value = v
    if match is None:
        assert load_onnx(m).layers[0].kernel == (3, 3)
        return
    with pytest.raises(JaxpulpError, match=match):
        load_onnx(m)


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(3)))
def test_any_node_order_imports_the_same_network_or_is_refused_as_out_of_order(order):
    """Conv -> RequantShift -> MaxPool in any node order: the one topological order imports; every other is
    refused naming a node whose input a later node produces (ONNX requires topological order)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             _rqs("rq", "c", "r"),
             helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    m = _model([nodes[i] for i in order], {"w": np.ones((8, 4, 3, 3)), "rq.mul": np.ones(8), "rq.add": np.zeros(8)},
               [("x", (1, 4, 6, 6))])
    if list(order) == [0, 1, 2]:
        net = load_onnx(m)
        assert [lay.kind for lay in net.layers] == ["conv", "maxpool"] and net.layers[-1].out_shape == (3, 3, 8)
        return
    placed: list[int] = []  # the first node, in file order, whose producer (the chain's previous node) comes later
    for bad in order:
        if bad > 0 and bad - 1 not in placed:
            break
        placed.append(bad)
    name = ["conv", "rq", "pool"][bad]
    with pytest.raises(JaxpulpError, match=f"node '{name}' .*which is not before it"):
        load_onnx(m)


# ----------------------------------------------------------------------------------------- 1-D networks


def _tcn(dilation=1, levels="n_levels"):
    """Deeploy-style 1-D block (Regular_1D_RQ, TCN): Pad(L) -> Conv1d(dilation) -> RequantShift -> MaxPool1d."""
    rng = np.random.default_rng(dilation)
    w = rng.integers(-128, 128, (8, 4, 3))
    mul, add = rng.integers(1, 20, 8), rng.integers(-5000, 5000, 8)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["xp"], name="pad", mode="constant"),
             helper.make_node("Conv", ["xp", "w"], ["c"], name="conv", kernel_shape=[3], pads=[1, 0],
                              dilations=[dilation], strides=[1]),
             _rqs("rq", "c", "r", levels),
             helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2], strides=[2], pads=[0, 0])]
    pads = np.asarray([0, 0, dilation, 0, 0, 0], np.int64)
    m = _model(nodes, {"w": w, "rq.mul": mul.reshape(1, 8, 1), "rq.add": add.reshape(1, 8, 1)},
               [("x", (1, 4, 20))])
    m.graph.initializer.append(numpy_helper.from_array(pads, "pads"))
    x = rng.integers(0, 256, (4, 20))
    acc = _conv_nchw(x[:, None], w[:, :, None], (0, 0, 1 + dilation, 0), dil=(1, dilation))[:, 0]
    r = _rq(acc, mul, add)
    L = r.shape[1] // 2
    want = np.maximum(r[:, 0:2 * L:2], r[:, 1:2 * L:2])  # (C, L/2)
    return m, x, want


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_conv1d_maxpool1d_network_runs_as_1xL_images_exactly(dilation):
    m, x, want = _tcn(dilation)
    net = load_onnx(m)
    assert net.input.shape == (1, 20, 4)
    conv = net.layers[0]
    assert conv.kernel == (1, 2 * dilation + 1) and conv.pad == (0, 0, 1 + dilation, 0)
    for got in _both_paths(net, x.T[None]):
        assert got.shape == (1, want.shape[1], 8) and (got[0] == want.T).all()
    if dilation > 1:
        assert any("dilations" in n and "MACs" in n for n in net.notes)


def test_dilated_2d_depthwise_is_an_undilated_kernel_with_zero_taps():
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (8, 1, 3, 3))
    mul, add = rng.integers(1, 20, 8), rng.integers(-3000, 3000, 8)
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="dw", kernel_shape=[3, 3], pads=[2, 2, 2, 2],
                                 dilations=[2, 2], group=8),
                _rqs("rq", "c", "y")], {"w": w, "rq.mul": mul.reshape(1, 8, 1, 1),
                                        "rq.add": add.reshape(1, 8, 1, 1)}, [("x", (1, 8, 9, 9))])
    net = load_onnx(m)
    assert net.layers[0].kind == "depthwise" and net.layers[0].kernel == (5, 5)
    x = rng.integers(0, 256, (8, 9, 9))
    acc = np.stack([_conv_nchw(x[c:c + 1], w[c:c + 1], (2, 2, 2, 2), dil=(2, 2))[0] for c in range(8)])
    want = _rq(acc, mul, add).transpose(1, 2, 0)
    for got in _both_paths(net, x.transpose(1, 2, 0)):
        assert (got == want).all()


@pytest.mark.parametrize("k, dilation", [(3, 1), (2, 1), (1, 1), (3, 2)])
def test_depthwise_1d_small_kernels_run_exactly(k, dilation):
    # KWS / TCN depthwise Conv1d with K < 4: PULP-NN's depthwise needs Kh*Kw >= 4 (its 4-tap do-while), so the
    # kernel gets zero rows over extra zero-padding rows below, which keeps it exact
    rng = np.random.default_rng(k)
    w = rng.integers(-128, 128, (8, 1, k))
    mul, add = rng.integers(1, 20, 8), rng.integers(-3000, 3000, 8)
    p = dilation * (k - 1) // 2
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="dw", kernel_shape=[k], pads=[p, p], group=8,
                                 dilations=[dilation]),
                _rqs("rq", "c", "y")], {"w": w, "rq.mul": mul.reshape(1, 8, 1), "rq.add": add.reshape(1, 8, 1)},
               [("x", (1, 8, 16))])
    net = load_onnx(m)
    assert net.layers[0].kind == "depthwise" and net.layers[0].kernel[0] * net.layers[0].kernel[1] >= 4
    mapping.kernel_config(net.layers[0])  # the library semantics defines it
    x = rng.integers(0, 256, (8, 16))
    acc = np.stack([_conv_nchw(x[c:c + 1, None], w[c:c + 1, :, None], (0, 0, p, p), dil=(1, dilation))[0, 0]
                    for c in range(8)])
    want = _rq(acc, mul, add).T[None]
    for got in _both_paths(net, x.T[None]):
        assert (got == want).all()


def test_dilated_pooling_is_refused_naming_dilation():
    m = _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2], dilations=[2])], {},
               [("x", (1, 4, 16))])
    with pytest.raises(JaxpulpError, match="'pool'.*dilations"):
        load_onnx(m)


def test_deeploy_1d_npz_goldens_and_run_input(tmp_path):
    # a Deeploy test folder of a 1-D network: inputs.npz / outputs.npz hold (N, C, L) arrays, plus extra arrays
    m, x, want = _tcn(1)
    net = load_onnx(m, input_type="u8")
    np.savez(tmp_path / "inputs.npz", x=x[None].astype(np.float32), labels=np.arange(3))
    np.savez(tmp_path / "outputs.npz", y=want[None])
    checks = conformance.check(net, str(tmp_path))
    assert len(checks) == 1 and checks[0].ok
    xs = read_input(str(tmp_path / "inputs.npz"), net)
    assert (xs["x"] == x.T[None, None]).all()


def test_deeploy_outputs_npz_with_more_arrays_than_outputs_fails(tmp_path):
    # one network output, two golden arrays: the second cannot be compared, so the check must not pass
    m, x, want = _tcn(1)
    net = load_onnx(m, input_type="u8")
    np.savez(tmp_path / "inputs.npz", x=x[None].astype(np.float32))
    np.savez(tmp_path / "outputs.npz", y=want[None], z=want[None])
    checks = conformance.check(net, str(tmp_path))
    assert checks[0].ok and checks[0].what == "outputs.npz:y"  # the paired output still compares equal
    bad = [c for c in checks if not c.ok]
    assert len(bad) == 1 and bad[0].what == "outputs.npz" and bad[0].n_diff == 1
    assert "2 arrays ['y', 'z']" in bad[0].first and "1 " in bad[0].first and net.outputs[0] in bad[0].first


# --------------------------------------------------------------------------------- NEMO residual adds


def _nemo_residual(c1, c2, D):
    """NEMO: y = requant(conv(x)); out = floor((c1*y + c2*x) / D) (Mul, Mul, Add, Div, Floor)."""
    rng = np.random.default_rng(c1 + c2)
    w = rng.integers(-4, 4, (4, 4, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "k"], ["m"], name="k"),
             helper.make_node("Add", ["m", "l"], ["a"], name="l"),
             helper.make_node("Div", ["a", "d"], ["q"], name="d"),
             helper.make_node("Floor", ["q"], ["f"], name="f"),
             helper.make_node("Clip", ["f"], ["yc"], name="clip", min=0.0, max=255.0),
             helper.make_node("Mul", ["yc", "c1"], ["ya"], name="m1"),
             helper.make_node("Mul", ["x", "c2"], ["xb"], name="m2"),
             helper.make_node("Add", ["ya", "xb"], ["s"], name="res"),
             helper.make_node("Div", ["s", "D"], ["sd"], name="resdiv"),
             helper.make_node("Floor", ["sd"], ["y"], name="resfloor")]
    inits = {"w": w, "k": np.full((1, 4, 1, 1), 3), "l": np.full((1, 4, 1, 1), 100), "d": np.asarray(64.0),
             "c1": np.asarray(float(c1)), "c2": np.asarray(float(c2)), "D": np.asarray(float(D))}
    m = _model(nodes, inits, [("x", (1, 4, 5, 5))])
    x = rng.integers(0, 256, (4, 5, 5))
    yc = np.clip(np.floor_divide(_conv_nchw(x, w, (1, 1, 1, 1)) * 3 + 100, 64), 0, 255)
    want = np.clip(np.floor_divide(c1 * yc + c2 * x, D), 0, 255)  # PULP-NN's add clips the sum to u8 (noted)
    return m, x, want.transpose(1, 2, 0)


@pytest.mark.parametrize("c1, c2, D", [(256, 77, 256), (45, 256, 256), (256, 256, 256)])
def test_nemo_residual_add_with_one_scale_a_multiple_of_the_divisor_is_exact(c1, c2, D):
    m, x, want = _nemo_residual(c1, c2, D)
    net = load_onnx(m)
    for got in _both_paths(net, x.transpose(1, 2, 0)):
        assert (got == want).all()


def test_nemo_residual_add_with_neither_scale_a_multiple_is_refused():
    m, _, _ = _nemo_residual(45, 77, 256)
    with pytest.raises(JaxpulpError, match="neither a multiple of the divisor 256"):
        load_onnx(m)


# ------------------------------------------------------------------------------------------- DORY goldens


EEG = os.path.join(DORY, "nemo_eegnet_1d_1xW")  # 7 layers, the fastest bundled DORY network


def _dory_copy(tmp_path, n_inputs):
    """The bundled EEGNet DORY goldens laid out as DORY writes them for n_inputs test inputs (input_K.txt,
    out_K_layerN.txt); every test input is the bundled one, whose goldens are real."""
    for k in range(n_inputs):
        shutil.copy(os.path.join(EEG, "input.txt"), tmp_path / f"input_{k}.txt")
        for n in range(7):
            shutil.copy(os.path.join(EEG, f"out_layer{n}.txt"), tmp_path / f"out_{k}_layer{n}.txt")
    with open(tmp_path / "dory_config.json", "w") as f:
        json.dump({"BNRelu_bits": 32, "n_inputs": n_inputs, "input_bits": 8, "input_signed": False}, f)
    return load_onnx(os.path.join(EEG, "eegnet_id_8b.onnx"))


def test_dory_multi_input_golden_layout(tmp_path):
    net = _dory_copy(tmp_path, 2)
    checks = conformance.check(net, str(tmp_path))
    assert len(checks) == 14 and all(c.ok for c in checks)
    assert {c.what for c in checks} >= {"out_0_layer6.txt", "out_1_layer3.txt"}
    lines = (tmp_path / "out_1_layer3.txt").read_text().splitlines()  # one wrong value is found, by file
    lines[5] = str(int(float(lines[5].strip(",\\\" "))) + 1) + ","
    (tmp_path / "out_1_layer3.txt").write_text("\n".join(lines) + "\n")
    bad = [c.what for c in conformance.check(net, str(tmp_path)) if not c.ok]
    assert bad == ["out_1_layer3.txt"]
    with open(tmp_path / "dory_config.json", "w") as f:
        json.dump({"n_inputs": 3}, f)
    with pytest.raises(JaxpulpError, match="n_inputs=3, found 2"):
        conformance.check(net, str(tmp_path))


def test_dory_config_input_type_is_honoured_and_range_errors_suggest_input_type(tmp_path, capsys):
    from jaxpulp.cli import main

    for f in ("eegnet_id_8b.onnx", "input.txt") + tuple(f"out_layer{n}.txt" for n in range(7)):
        shutil.copy(os.path.join(EEG, f), tmp_path / f)
    model = str(tmp_path / "eegnet_id_8b.onnx")
    with open(tmp_path / "dory_config.json", "w") as f:
        json.dump({"BNRelu_bits": 32, "input_bits": 4, "input_signed": False}, f)
    # the golden input (0..255) does not fit the configured u4: the error names the range and the type that holds it
    rc = main(["check", model, "--golden", str(tmp_path)])
    cap = capsys.readouterr()
    assert "input type u4 from the DORY config" in cap.out
    assert rc == 2 and "values span [0, 255], outside the network input type u4" in cap.err
    assert "--input-type u8" in cap.err
    assert main(["check", model, "--golden", str(tmp_path), "--input-type", "u8"]) == 0


# ------------------------------------------------------------------------------------------- CLI inputs


def test_run_input_accepts_deeploy_nchw_npz_with_extra_arrays(tmp_path, capsys):
    from jaxpulp.cli import main

    d = os.path.join(DEEPLOY, "Models", "miniMobileNet")
    net = load_onnx(os.path.join(d, "network.onnx"))
    want = conformance.load_inputs(net, d)
    got = read_input(os.path.join(d, "inputs.npz"), net)
    assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in got)
    with np.load(os.path.join(d, "inputs.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "inputs.npz", **arrays, extra_labels=np.arange(10))
    got2 = read_input(str(tmp_path / "inputs.npz"), net)
    assert all((got2[k] == want[k]).all() for k in got)
    for f in ("outputs.npz", "activations.npz"):
        if os.path.exists(os.path.join(d, f)):
            shutil.copy(os.path.join(d, f), tmp_path / f)
    checks = conformance.check(net, str(tmp_path))  # the golden folder with the extra array: accepted
    assert checks and all(c.ok for c in checks)
    assert main(["run", os.path.join(d, "network.onnx"), "--input", str(tmp_path / "inputs.npz")]) == 0
    out = capsys.readouterr().out
    assert "['extra_labels'] are not network inputs; ignored" in out


def test_check_defaults_to_order_auto(capsys):
    from jaxpulp.cli import main

    d = os.path.join(DORY, "nemo_dscnn_test")  # layers 0-8 stored CHW, 9-10 HWC
    assert main(["check", os.path.join(d, "model_int.onnx"), "--golden", d]) == 0
    out = capsys.readouterr().out
    assert "11 passed, 0 failed" in out and out.count("stored CHW") == 9


# ----------------------------------------------------------------------------------- actionable hints


def test_depthwise_refusal_hint_is_actionable_at_network_level(tmp_path, capsys):
    from jaxpulp.cli import main

    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (8, 1, 3, 3))  # stride 2, TF "SAME" on an even width: the border over-read
    mul, add = rng.integers(1, 20, 8), rng.integers(-3000, 3000, 8)
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="dw", kernel_shape=[3, 3], pads=[0, 0, 1, 1],
                                 strides=[2, 2], group=8),
                _rqs("rq", "c", "y")], {"w": w, "rq.mul": mul.reshape(1, 8, 1, 1),
                                        "rq.add": add.reshape(1, 8, 1, 1)}, [("x", (1, 8, 6, 6))])
    net = load_onnx(m)
    with pytest.raises(UnsupportedConfig, match="depthwise-border-overread.*path='values'") as e:
        mapping.kernel_config(net.layers[0])
    assert "--path values" in str(e.value)
    x = rng.integers(0, 256, (8, 6, 6))
    acc = np.stack([_conv_nchw(x[c:c + 1], w[c:c + 1], (0, 1, 0, 1), stride=(2, 2))[0] for c in range(8)])
    got = run(net, x.transpose(1, 2, 0), path="values").outputs[net.outputs[0]][0]  # what the hint offers
    assert (got == _rq(acc, mul, add).transpose(1, 2, 0)).all()
    onnx.save(m, str(tmp_path / "dw.onnx"))
    assert main(["run", str(tmp_path / "dw.onnx"), "--path", "values"]) == 0


# ------------------------------------------------------------------------------- NEMO lambda beyond int32


def _nemo_wide_lambda(lam0=-(1 << 20) - 5, m=1 << 13, D=1 << 24):
    """NEMO: Conv -> Mul(kappa0) -> Add(lambda0) -> Cast -> Mul(m) -> Div(D) -> Cast -> Clip; kappa = kappa0*m and
    lambda = lambda0*m (here -2^33 - ..., beyond int32)."""
    rng = np.random.default_rng(9)
    w = rng.integers(0, 128, (4, 4, 3, 3))
    kappa0 = np.asarray([3, 2, 4, 5])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "k"], ["m1"], name="kappa"),
             helper.make_node("Add", ["m1", "l"], ["a"], name="lambda"),
             helper.make_node("Cast", ["a"], ["ac"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["ac", "mm"], ["am"], name="mult"),
             helper.make_node("Div", ["am", "D"], ["q"], name="div"),
             helper.make_node("Cast", ["q"], ["qc"], name="cast2", to=TensorProto.FLOAT),
             helper.make_node("Clip", ["qc"], ["y"], name="clip", min=0.0, max=255.0)]
    inits = {"w": w, "k": kappa0.reshape(1, 4, 1, 1), "l": np.full((1, 4, 1, 1), lam0), "mm": np.asarray(float(m)),
             "D": np.asarray(float(D))}
    mdl = _model(nodes, inits, [("x", (1, 4, 8, 8))])  # 8 rows: one per core, no conv bias drift (§5.5)
    x = rng.integers(0, 256, (4, 8, 8))
    acc = _conv_nchw(x, w, (1, 1, 1, 1))
    want = np.clip(np.floor_divide((kappa0[:, None, None] * acc + lam0) * m, D), 0, 255).transpose(1, 2, 0)
    return mdl, x, want


@pytest.mark.parametrize("bn_bits", ["auto", 64])
def test_nemo_lambda_beyond_int32_runs_exactly_in_the_64_bit_tree(bn_bits):
    m, x, want = _nemo_wide_lambda()
    net = load_onnx(m, bn_bits=bn_bits)
    assert all(layer.bn_bits == 64 for layer in net.layers) and any("beyond int32" in n for n in net.notes)
    assert 0 < want.mean() < 255  # the data exercises the clip range, not just its ends
    for got in _both_paths(net, x.transpose(1, 2, 0)):
        assert (got == want).all()
    with pytest.raises(JaxpulpError, match="outside int32.*bn_bits=64"):
        load_onnx(m, bn_bits=32)
