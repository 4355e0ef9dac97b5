"""Network IR, execution paths, reports, memory checks, save/load, the CLI and the ONNX importers' errors."""
import json
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from jaxpulp import JaxpulpError, QType
from jaxpulp.cli import main
from jaxpulp.network import mapping, reference, report, store, zoo
from jaxpulp.network.execute import run, run_values
from jaxpulp.network.graph import Layer, Network, TensorSpec
from jaxpulp.network.onnx_import import load_onnx

TINY = dict(alpha=0.25, resolution=96)  # smaller inputs give 2x2 depthwise layers the library refuses


@pytest.fixture(scope="module")
def tiny():
    return zoo.mobilenet_v1(**TINY)


def _inputs(net, batch, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch,) + net.input.shape)


def test_packed_values_and_numpy_twin_agree_on_a_quirk_free_network(tiny):
    x = _inputs(tiny, 3)
    packed = run(tiny, x, keep=True).tensors
    values = run(tiny, x, path="values", keep=True).tensors
    twin = reference.forward(tiny, x, keep=True)
    for lay in tiny.layers:
        np.testing.assert_array_equal(packed[lay.output], twin[lay.output], err_msg=lay.name)
        np.testing.assert_array_equal(values[lay.output], twin[lay.output], err_msg=lay.name)
    assert len({mapping.kernel_config(layer).c_name for layer in tiny.layers}) >= 4
    out = twin["fc"]
    assert out.shape == (3, 1, 1, 10) and len(np.unique(out)) > 3  # not a constant output


def test_batch_equals_loop_and_one_compile_per_batch_size(tiny):
    from jaxpulp.network import execute as run_mod

    x = _inputs(tiny, 4, seed=1)
    batched = run(tiny, x).outputs["fc"]
    fn = run_mod.call_runner(tiny, "packed", False, run_mod.GAP8, None, 1)[0]  # the runner of a call of one input
    before = fn._cache_size()
    looped = np.concatenate([run(tiny, x[i:i + 1]).outputs["fc"] for i in range(4)])
    np.testing.assert_array_equal(batched, looped)
    assert fn._cache_size() == before + 1  # batch 1: one new compile for four calls


def _conv0_at_bits(net, b):
    lays = list(net.layers)
    lays[0] = lays[0].with_types(out_type=f"u{b}")
    lays[1] = lays[1].with_types(in_type=f"u{b}")
    return net.replace(layers=tuple(lays))


def test_value_path_precision_as_data_under_vmap(tiny):
    import jax
    import jax.numpy as jnp

    x = _inputs(tiny, 2, seed=2)
    f = jax.jit(jax.vmap(lambda b: run_values(tiny, jnp.asarray(x), act_types={"conv0": (b, 0)})))
    out = np.asarray(f(jnp.array([8, 4, 2])))
    for k, b in enumerate((8, 4, 2)):
        np.testing.assert_array_equal(out[k], reference.forward(_conv0_at_bits(tiny, b), x)["fc"], err_msg=f"u{b}")
    assert not np.array_equal(out[0], out[2])  # the clip bounds really are data


def test_value_path_accumulators_are_exact_at_the_extremes():
    # near-extreme operands (products close to 255 * -128, not multiples of a power of two): every float32 partial
    # sum of the value path's convolutions must stay an exact integer
    from jaxpulp.network import execute

    rng = np.random.default_rng(3)
    x = rng.integers(247, 256, (1, 6, 6, 128))
    conv_l = Layer("c", "conv", ("in",), "c", (6, 6, 128), (6, 6, 8), "u8", "i8", "i8", kernel=(3, 3),
                   pad=(1, 1, 1, 1))
    dw = Layer("d", "depthwise", ("in",), "d", (6, 6, 128), (2, 2, 128), "u8", "i8", "i8", kernel=(23, 23),
               pad=(9, 9, 9, 9))  # 529 taps: past the float32-exact limit of one convolution (514)
    dw3 = dw.replace(kernel=(3, 3), pad=(1, 1, 1, 1), stride=(1, 1), out_shape=(6, 6, 128))
    for lay, w_shape, twin in ((conv_l, (8, 3, 3, 128), "bhwijc,oijc->bhwo"), (dw, (128, 23, 23), "bhwijc,cij->bhwc"),
                               (dw3, (128, 3, 3), "bhwijc,cij->bhwc")):
        p = dict(w=rng.integers(-128, -120, w_shape))
        got = np.asarray(execute._accumulate(lay, jnp.asarray(x), p))
        want = np.einsum(twin, reference._windows(x, lay), p["w"])
        np.testing.assert_array_equal(got, want, err_msg=lay.name)


def test_validate_names_the_layer():
    spec = TensorSpec("in", (4, 4, 8), "u8")
    lay = Layer("c", "conv", ("in",), "c", (4, 4, 8), (4, 4, 8), "u4", "u8", "i8", kernel=(3, 3), pad=(1, 1, 1, 1))
    p = {"c": dict(w=np.zeros((8, 3, 3, 8), np.int8), kappa=np.ones(8, np.int32), lam=np.zeros(8, np.int32),
                   out_mult=0, out_shift=0)}
    with pytest.raises(JaxpulpError, match="layer 'c': input 'in' is u8, the layer reads u4"):
        Network("n", spec, (lay,), p, ("c",))
    with pytest.raises(JaxpulpError, match="w has shape"):
        Network("n", spec, (lay.with_types(in_type="u8"),), {"c": dict(p["c"], w=np.zeros((8, 3, 3, 4), np.int8))},
                ("c",))
    with pytest.raises(JaxpulpError, match="not produced by an earlier layer"):
        Network("n", spec, (lay.replace(inputs=("x",), in_type="u8"),), p, ("c",))
    with pytest.raises(JaxpulpError, match="kind='deconv'"):
        Layer("c", "deconv", ("in",), "c", (4, 4, 8), (4, 4, 8), "u8", "u8", "i8")


def test_run_rejects_bad_inputs(tiny):
    with pytest.raises(JaxpulpError, match=r"x: shape \(2, 16, 16, 3\), expected \(batch, 96, 96, 3\)"):
        run(tiny, np.zeros((2, 16, 16, 3), np.int64))
    with pytest.raises(JaxpulpError, match="outside u8"):
        run(tiny, np.full((1, 96, 96, 3), 300))
    with pytest.raises(JaxpulpError, match="dtype float64"):
        run(tiny, np.zeros((1, 96, 96, 3)))
    with pytest.raises(JaxpulpError, match="path='fast'"):
        run(tiny, _inputs(tiny, 1), path="fast")


def test_a_layer_the_library_cannot_run_is_refused_by_name():
    net = zoo.mobilenet_v1(0.25, 64)  # dw13 is 2x2: its right border reads past the input plane (semantics.md §8.4)
    with pytest.raises(JaxpulpError, match="layer 'dw13' as pulp_nn_depthwise_u8_u8_i8.*depthwise-border-overread"):
        run(net, np.zeros((1, 64, 64, 3), np.int64))
    row = report.layer_rows(net)[-4]
    assert row["name"] == "dw13" and row["kernel"] == "(unsupported)" and "border" in row["note"]
    np.testing.assert_array_equal(run(net, np.ones((1, 64, 64, 3), np.int64), path="values").outputs["fc"],
                                  reference.forward(net, np.ones((1, 64, 64, 3), np.int64))["fc"])


def test_save_load_round_trip(tmp_path, tiny):
    p = store.save(tiny, str(tmp_path / "net.npz"))
    back = store.load(p)
    assert back.layers == tiny.layers and back.outputs == tiny.outputs
    x = _inputs(tiny, 1)
    np.testing.assert_array_equal(run(back, x, path="values").outputs["fc"], run(tiny, x, path="values").outputs["fc"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(JaxpulpError, match="not a jaxpulp network file"):
        store.load(str(tmp_path / "bad.npz"))


def test_report_columns_csv_json_and_memory_flags(tiny, tmp_path):
    rows = report.layer_rows(tiny)
    assert set(rows[0]) == set(report.COLUMNS)
    assert all(r["cycles"] > 0 for r in rows) and rows[0]["kernel"] == "pulp_nn_conv_u8_u8_i8"
    csv_text = report.as_csv(rows)
    assert csv_text.splitlines()[0].split(",") == list(report.COLUMNS)
    js = json.loads(report.as_json(tiny, rows))
    assert js["totals"]["cycles"] == sum(r["cycles"] for r in rows)
    # a layer far too large for L1 even tiled, and for L2: flagged with the reason
    big = Layer("big", "conv", ("in",), "big", (64, 64, 512), (64, 64, 512), "u8", "u8", "i8", kernel=(3, 3),
                pad=(1, 1, 1, 1))
    mem = report.memory(big)
    assert not mem.l1_tiled_fit and not mem.l2_fit and "exceeds L1" in mem.reason and "L2" in mem.reason
    assert report.memory(tiny.layers[-1]).l1_fit


def test_bar_chart_png(tiny, tmp_path):
    pytest.importorskip("matplotlib", reason="plots are an optional extra ('plot')")
    path = report.bar_chart_png(tiny, report.layer_rows(tiny), str(tmp_path / "cycles.png"))
    assert os.path.getsize(path) > 5000


def test_cli_run_report_check(capsys, tmp_path):
    assert main(["run", "mobilenet_v1", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "output 'fc'" in out and "inputs/s" in out and "MAC/cycle" in out
    assert main(["report", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "pulp_nn_conv_u8_u8_i8" in out and "total:" in out
    assert json.load(open(tmp_path / "r.json"))["network"] == "dronet"
    d = os.path.join(os.path.dirname(__file__), "data", "external", "dory_examples", "nemo_residual_test_1")
    assert main(["check", os.path.join(d, "model_int.onnx"), "--golden", d, "--path", "values"]) == 0
    assert "8 passed, 0 failed" in capsys.readouterr().out
    assert main(["run", "no_such_net"]) == 2
    assert "no such built-in network" in capsys.readouterr().err


def test_cli_run_reads_npy_input(tmp_path, capsys):
    net = zoo.mobilenet_v1()  # the CLI's built-in: width 0.25, 128 x 128
    np.save(tmp_path / "x.npy", _inputs(net, 2).astype(np.uint8))
    assert main(["run", "mobilenet_v1", "--input", str(tmp_path / "x.npy"), "--path", "values"]) == 0
    assert "batch 2" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- ONNX importer errors


def _model(nodes, inits, in_shape=(1, 4, 6, 6), out="y"):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def _conv_chain(div=2.0 ** 10, clip=(0.0, 255.0), group=1, w_shape=(8, 4, 3, 3), extra=None):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              group=group),
             helper.make_node("Mul", ["c", "k"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "l"], ["a"], name="add"),
             helper.make_node("Div", ["a", "d"], ["q"], name="div"),
             helper.make_node("Floor", ["q"], ["f"], name="floor"),
             helper.make_node("Clip", ["f"], ["y"], name="clip", min=clip[0], max=clip[1])]
    inits = {"w": np.ones(w_shape), "k": np.ones((w_shape[0], 1, 1)), "l": np.zeros((w_shape[0], 1, 1)),
             "d": np.array(div)}
    if extra:
        nodes += extra
    return _model(nodes, inits)


def test_onnx_minimal_dory_chain_imports_and_runs():
    net = load_onnx(_conv_chain())
    assert [layer.kind for layer in net.layers] == ["conv"] and net.layers[0].out_type == QType(8, False)
    x = np.random.default_rng(0).integers(0, 256, (2, 6, 6, 4))
    np.testing.assert_array_equal(run(net, x).outputs[net.outputs[0]], reference.forward(net, x)[net.outputs[0]])


@pytest.mark.parametrize("model, needle", [
    (lambda: _conv_chain(div=1000.0), "divisor = 1000 is not a power of two"),
    (lambda: _conv_chain(clip=(0.0, 100.0)), "clip range [0, 100] is not a PULP-NN activation type"),
    (lambda: _conv_chain(group=2, w_shape=(8, 2, 3, 3)), "group=2"),
    (lambda: _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])],
                    {"w": np.ones((8, 4, 3, 3))}), "must be followed by its requantisation"),
    (lambda: _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], {}), "operator Relu is not supported"),
    (lambda: _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3],
                                      dilations=[2, 2])], {}), "dilations"),  # dilated convs: test_import_patterns
    (lambda: _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
                     helper.make_node("Mul", ["c", "k"], ["y"], name="mul")],
                    {"w": np.full((8, 4, 1, 1), 0.5), "k": np.ones(1)}), "non-integer values"),
])
def test_onnx_errors_name_the_node_and_the_pattern(model, needle):
    with pytest.raises(JaxpulpError) as e:
        load_onnx(model())
    assert needle in str(e.value)
    assert "node" in str(e.value) or "layer" in str(e.value)


def test_onnx_missing_file_and_bad_options():
    with pytest.raises(JaxpulpError, match="no such file"):
        load_onnx("/nonexistent/model.onnx")
    with pytest.raises(JaxpulpError, match="bn_bits=48"):
        load_onnx(_conv_chain(), bn_bits=48)
    with pytest.raises(JaxpulpError, match="dialect='tflite'"):
        load_onnx(_conv_chain(), dialect="tflite")


def test_onnx_named_dialect_must_match_what_the_graph_shows():
    assert load_onnx(_conv_chain()).dialect == "nemo"  # Mul / Div requantisation, no bit-width attributes
    assert load_onnx(_conv_chain(), dialect="nemo").dialect == "nemo"
    for wrong in ("deeploy", "dory", "integer"):  # the label decides golden layouts: a slip must not pass
        with pytest.raises(JaxpulpError, match=rf"dialect='{wrong}': the model is in the nemo dialect \(it requant"):
            load_onnx(_conv_chain(), dialect=wrong)
    dory = _conv_chain()
    dory.graph.node[0].attribute.append(helper.make_attribute("weight_bits", 8))
    with pytest.raises(JaxpulpError, match="the model is in the dory dialect .node 'conv' .Conv. has the bit-width"):
        load_onnx(dory, dialect="nemo")
    pool = _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])], {})
    assert load_onnx(pool).dialect == "integer"
    assert load_onnx(pool, dialect="deeploy").dialect == "deeploy"  # nothing in it contradicts the name


# ------------------------------------------------------------------------------------------- golden file I/O


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=3, max_size=3), seed=st.integers(0, 2**31 - 1),
       nemo_style=st.booleans())
def test_dory_txt_round_trip(tmp_path_factory, shape, seed, nemo_style):
    from jaxpulp.network import goldens

    v = np.random.default_rng(seed).integers(-300, 300, shape)
    path = str(tmp_path_factory.mktemp("g") / "out_layer0.txt")
    if nemo_style:  # NEMO writes floats with a trailing backslash: "12.000,\"
        with open(path, "w") as f:
            f.write(f"# layer (shape [{', '.join(map(str, shape))}]),\\\n")
            f.writelines(f"{int(x)}.000,\\\n" for x in v.reshape(-1))
    else:
        goldens.write_dory_txt(path, "layer", v)
    name, got_shape, vals = goldens.read_dory_txt(path)
    assert name == "layer" and got_shape == tuple(shape)
    np.testing.assert_array_equal(goldens.hwc_values(path, tuple(shape)), v)


@pytest.mark.parametrize("text, needle", [
    ("1,\n2,\n", "is not a '# name (shape [d0, d1, ...])' header"),
    ("# x (shape [2]),\n1.5,\n2,\n", "value 1.5 is not an integer"),
    ("", "empty file"),
])
def test_dory_txt_errors(tmp_path, text, needle):
    from jaxpulp.network import goldens

    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(JaxpulpError, match=re.escape(needle)):
        goldens.read_dory_txt(str(p))
    with pytest.raises(JaxpulpError, match="expected 1\\*1\\*4"):
        (tmp_path / "ok.txt").write_text("# x (shape [2]),\n1,\n2,\n")
        goldens.hwc_values(str(tmp_path / "ok.txt"), (1, 1, 4))
