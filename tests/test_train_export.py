"""Export of integerised networks: DORY/QuantLab ONNX read back by the importer gives the same layers, the same
integer parameters and the same output bits; DORY goldens written by the exporter pass ``conformance.check``."""
import numpy as np
import pytest

pytest.importorskip("optax")
pytest.importorskip("sklearn")
pytest.importorskip("onnx")

from test_train import CASES, _random_params, _sub  # noqa: E402

from jaxpulp.errors import JaxpulpError  # noqa: E402
from jaxpulp.network import conformance  # noqa: E402
from jaxpulp.network.execute import run  # noqa: E402
from jaxpulp.network.onnx_import import load_onnx  # noqa: E402
from jaxpulp.train import data, export, qat  # noqa: E402

FIELDS = ("name", "kind", "inputs", "output", "in_shape", "out_shape", "in_type", "out_type", "w_type", "in2_type",
          "kernel", "stride", "pad", "relu", "bn", "bias", "requant", "bn_bits")


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[3]], ids=lambda c: c[0])
def test_onnx_round_trip_same_bits(tmp_path, case):
    name, make, bits = case
    model = make()
    net = qat.integerise(model, _random_params(model, 2), _sub(model, *bits))
    back = load_onnx(export.to_onnx(net).SerializeToString())
    assert back.dialect == "dory" and back.outputs == net.outputs
    for a, b in zip(net.layers, back.layers, strict=True):
        assert {f: getattr(a, f) for f in FIELDS} == {f: getattr(b, f) for f in FIELDS}
        pa, pb = net.params.get(a.name, {}), back.params.get(b.name, {})
        assert set(pa) == set(pb)
        for k in pa:
            assert np.array_equal(np.asarray(pa[k]), np.asarray(pb[k])), (a.name, k)
    x = data.digits(0).x_test[:16]
    assert np.array_equal(run(net, x).outputs[net.outputs[0]], run(back, x).outputs[back.outputs[0]])
    paths = export.export_all(net, str(tmp_path / "exp"), x[0])
    checks = conformance.check(back, str(tmp_path / "exp"))
    assert len(checks) == len(net.layers) and all(c.ok for c in checks)
    assert set(paths) >= {"onnx", "npz", "input", "out_layer0"}


def test_export_refuses_other_requantisation():
    model = CASES[0][1]()
    net = qat.integerise(model, _random_params(model, 0), {})
    lay = net.layers[0].replace(bias=True)
    params = dict(net.params)
    params[lay.name] = dict(params[lay.name], bias=np.zeros(lay.out_shape[2], np.int32))
    bad = net.replace(layers=(lay,) + net.layers[1:], params=params)
    with pytest.raises(JaxpulpError, match="without bias"):
        export.to_onnx(bad)
