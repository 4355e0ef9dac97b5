"""External conformance: every integer network in tests/data/external (copied unchanged from
../shared/external_testcases, see its MANIFEST.json) reproduces its golden activations bit-exactly, layer by
layer where per-layer goldens exist, on the packed path (every layer a PULP-NN kernel on packed memory) and on
the value path."""
import hashlib
import json
import os

import numpy as np
import pytest

from jaxpulp import JaxpulpError
from jaxpulp.network import conformance, mapping
from jaxpulp.network.onnx_import import load_onnx

EXT = os.path.join(os.path.dirname(__file__), "data", "external")
DORY = os.path.join(EXT, "dory_examples")
DEEPLOY = os.path.join(EXT, "deeploy", "DeeployTest", "Tests")

# (folder, onnx file, kwargs, golden order, expected number of golden comparisons)
DORY_NETS = [
    ("quantlab_dronet_8bit", "DRONETV3_ql_integerized.onnx", {}, "hwc", 15),
    ("nemo_residual_test_1", "model_int.onnx", {}, "hwc", 8),
    ("nemo_nas_frontnet", "Frontnet.onnx", {}, "hwc", 9),
    ("nemo_eegnet_1d_1xW", "eegnet_id_8b.onnx", {}, "hwc", 7),
    ("nemo_dscnn_test", "model_int.onnx", {}, "chw", 11),  # README: layers 0-8 stored CHW
]
DEEPLOY_NETS = [
    ("Models/miniMobileNet", "u8"),
    ("Models/miniMobileNetv2", "u8"),
    ("Models/MLPerf/ImageClassification", "u8"),
    ("Models/MLPerf/KeywordSpotting", "u8"),
    ("Kernels/Integer/Conv/DW_2D_RQ", "u8"),
    ("Kernels/Integer/Conv/PW_2D_RQ/Unsigned_RQ", "i8"),
    ("Kernels/Integer/Conv/StriddedPadded_2D_RQ", "i8"),
    ("Kernels/Integer/MaxPool/Regular_2D", "i8"),
    ("Kernels/Integer/Add/Regular_RQ", "i8"),
]


def test_external_files_are_unchanged_copies():
    with open(os.path.join(EXT, "MANIFEST.json")) as f:
        manifest = json.load(f)
    checked = 0
    for entry in manifest["files"]:
        p = os.path.join(EXT, entry["path"])
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"], entry["path"]
        checked += 1
    assert checked >= 100


def _report(checks):
    bad = [c for c in checks if not c.ok]
    return "\n".join(f"{c.what} ({c.tensor}): {c.n_diff} differ; {c.first}" for c in bad)


@pytest.mark.parametrize("folder, onnx_file, kw, order, n", DORY_NETS, ids=[d[0] for d in DORY_NETS])
@pytest.mark.parametrize("path", ["packed", "values"])
def test_dory_and_nemo_networks_match_every_layer(folder, onnx_file, kw, order, n, path):
    d = os.path.join(DORY, folder)
    net = load_onnx(os.path.join(d, onnx_file), **kw)
    checks = conformance.check(net, d, path=path, order=order)
    assert len(checks) == n
    assert all(c.ok for c in checks), _report(checks)


@pytest.mark.parametrize("folder, input_type", DEEPLOY_NETS, ids=[d[0] for d in DEEPLOY_NETS])
@pytest.mark.parametrize("path", ["packed", "values"])
def test_deeploy_networks_match_outputs_and_activations(folder, input_type, path):
    d = os.path.join(DEEPLOY, folder)
    net = load_onnx(os.path.join(d, "network.onnx"), input_type=input_type)
    checks = conformance.check(net, d, path=path)
    assert checks and all(c.ok for c in checks), _report(checks)
    assert net.dialect == ("deeploy" if "MaxPool" not in folder else "integer")  # a bare MaxPool: no requant


def test_check_names_the_golden_arrays_it_skips(capsys):
    from jaxpulp.cli import main

    d = os.path.join(DEEPLOY, "Models/miniMobileNet")
    with np.load(os.path.join(d, "activations.npz")) as z:
        raw = sorted(k for k in z.files if "_pact_" in k)
    assert raw and sorted(conformance.skipped_goldens(d)) == [f"activations.npz:{k}" for k in raw]
    assert main(["check", os.path.join(d, "network.onnx"), "--golden", d]) == 0
    out = capsys.readouterr().out
    assert f", {len(raw)} skipped (packed path)" in out and all(k in out for k in raw), out
    assert conformance.skipped_goldens(os.path.join(DORY, "nemo_residual_test_1")) == []


def test_deeploy_rounding_is_folded_and_said():
    net = load_onnx(os.path.join(DEEPLOY, "Models/miniMobileNet/network.onnx"))
    assert all(layer.rounding for layer in net.layers if layer.kind in ("conv", "depthwise", "linear"))
    assert any("rounds" in n for n in net.notes)


def test_dory_dronet_maps_to_named_kernels():
    net = load_onnx(os.path.join(DORY, "quantlab_dronet_8bit", "DRONETV3_ql_integerized.onnx"))
    names = [mapping.kernel_config(layer).c_name for layer in net.layers]
    assert names[0] == "pulp_nn_conv_u8_u8_i8" and names[1] == "pulp_nn_maxpool_u8"
    assert names.count("pulp_nn_add_u8_u8_u8") == 3 and names[-1] == "pulp_nn_linear_u8_i32_i8"
    assert any("Sigmoid" in n for n in net.notes)  # the host-side tail is listed, not silently dropped


def test_qonnx_fake_quant_model_is_refused_with_the_node_named():
    with pytest.raises(JaxpulpError) as e:
        load_onnx(os.path.join(EXT, "qonnx_model_zoo", "TFC_2W2A.onnx"))
    msg = str(e.value)
    assert "is not supported" in msg and "node" in msg


def test_nemo_divisor_strict_refuses_non_power_of_two():
    with pytest.raises(JaxpulpError, match="not a power of two"):
        load_onnx(os.path.join(DORY, "nemo_nas_frontnet", "Frontnet.onnx"), nemo_divisor="strict")
