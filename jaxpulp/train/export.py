"""Export an integer ``Network`` the way DORY / QuantLab read it (the inverse of
``jaxpulp.network.onnx_import``'s DORY dialect), plus DORY activation goldens and jaxpulp's own ``.npz`` store.

ONNX (opset 11, NCHW, batch 1, integer values carried as float tensors as QuantLab exports them):

* conv / depthwise: ``Conv[weight_bits] -> Mul(kappa) -> Add(lambda) -> Div(2^d) -> Floor -> Clip[out_bits]``
  (kappa / lambda shaped (1, C, 1, 1); the Clip's min / max set the output type);
* linear: ``Flatten -> Gemm[weight_bits, transB=1]`` (weight columns in the C, H, W order ONNX flattens, bias as
  Gemm's C) with the same requantisation chain, or none for an i32 output;
* max / average pool: ``MaxPool`` / ``AveragePool`` (no requantisation: floor of the mean);
* residual add: ``Add`` with DORY's ``in{1,2}_{mul,add,shift}``, ``out_{mul,add,shift}``, ``out_n_levels`` and
  ``out_signed`` attributes.

``export_all(net, directory, x)`` writes ``network.onnx``, ``network.npz`` and DORY ``input.txt`` /
``out_layerN.txt`` goldens of one input image (from the packed path; ``jaxpulp check`` reads them back).
"""
from __future__ import annotations

import os

import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.network.graph import Network


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:  # pragma: no cover - optional extra
        raise JaxpulpError("ONNX export needs the onnx package (pip install 'jaxpulp[onnx]')") from e
    return onnx, TensorProto, helper, numpy_helper


def to_onnx(net: Network):
    """The network as a DORY/QuantLab-dialect ``onnx.ModelProto``."""
    onnx, TensorProto, helper, numpy_helper = _onnx()
    if len(net.inputs) != 1:
        raise JaxpulpError(f"net {net.name!r}: {len(net.inputs)} inputs; the exporter writes single-input networks")
    nodes, inits = [], []
    shapes = {net.input.name: net.input.shape}

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def requant(lay, src, p, C, four_d=True):
        shp = (1, C, 1, 1) if four_d else (1, C)
        k = const(f"{lay.name}.kappa", np.asarray(p["kappa"]).reshape(shp))
        lam = const(f"{lay.name}.lambda", np.asarray(p["lam"]).reshape(shp))
        d = const(f"{lay.name}.div", np.float32(2.0 ** int(p["out_shift"])))
        nodes.append(helper.make_node("Mul", [src, k], [f"{lay.name}.mul"], name=f"{lay.name}_mul"))
        nodes.append(helper.make_node("Add", [f"{lay.name}.mul", lam], [f"{lay.name}.add"], name=f"{lay.name}_lambda"))
        nodes.append(helper.make_node("Div", [f"{lay.name}.add", d], [f"{lay.name}.div_out"],
                                      name=f"{lay.name}_div"))
        nodes.append(helper.make_node("Floor", [f"{lay.name}.div_out"], [f"{lay.name}.floor"],
                                      name=f"{lay.name}_floor"))
        t = lay.out_type
        nodes.append(helper.make_node("Clip", [f"{lay.name}.floor"], [lay.output], name=f"{lay.name}_clip",
                                      min=float(t.lo), max=float(t.hi), out_bits=t.bits))

    for lay in net.layers:
        p = net.params.get(lay.name, {})
        src = lay.inputs[0]
        H, W, C = lay.in_shape
        Co = lay.out_shape[2]
        if lay.kind in ("conv", "depthwise"):
            if lay.bias or lay.bn != 1 or lay.relu != 1 or lay.bn_bits != 32:
                raise JaxpulpError(f"layer {lay.name!r}: the exporter writes batch-norm requantised layers without "
                                   "bias (relu = bn = 1, 32-bit); got relu={lay.relu}, bn={lay.bn}, bias={lay.bias}")
            w = np.asarray(p["w"])
            w = np.transpose(w, (0, 3, 1, 2)) if lay.kind == "conv" else w[:, None]  # OIHW
            t, b, left, r = lay.pad
            nodes.append(helper.make_node(
                "Conv", [src, const(f"{lay.name}.weight", w)], [f"{lay.name}.acc"], name=lay.name,
                kernel_shape=list(lay.kernel), strides=list(lay.stride), pads=[t, left, b, r],
                group=C if lay.kind == "depthwise" else 1, weight_bits=lay.w_type.bits))
            requant(lay, f"{lay.name}.acc", p, Co)
        elif lay.kind == "linear":
            w = np.asarray(p["w"])
            sH, sW, sC = shapes[src]
            w = w.reshape(Co, sH, sW, sC).transpose(0, 3, 1, 2).reshape(Co, -1)  # HWC columns -> CHW (ONNX flatten)
            flat = f"{lay.name}.flat"
            nodes.append(helper.make_node("Flatten", [src], [flat], name=f"{lay.name}_flatten", axis=1))
            ins = [flat, const(f"{lay.name}.weight", w)]
            if lay.bias:
                ins.append(const(f"{lay.name}.bias", np.asarray(p["bias"])))
            quant = lay.out_type.bits != 32
            nodes.append(helper.make_node("Gemm", ins, [f"{lay.name}.acc" if quant else lay.output],
                                          name=lay.name, transB=1, weight_bits=lay.w_type.bits))
            if quant:
                if lay.bn != 1 or lay.relu != 1 or lay.bn_bits != 32:
                    raise JaxpulpError(f"layer {lay.name!r}: expected batch-norm requantisation (relu = bn = 1)")
                requant(lay, f"{lay.name}.acc", p, Co, four_d=False)
        elif lay.kind in kinds.POOLS:
            if lay.kind == "avgpool" and lay.requant:
                raise JaxpulpError(f"layer {lay.name!r}: only non-requantising average pools are exported")
            t, b, left, r = lay.pad
            op = "MaxPool" if lay.kind == "maxpool" else "AveragePool"
            nodes.append(helper.make_node(op, [src], [lay.output], name=lay.name,
                                          kernel_shape=list(lay.kernel), strides=list(lay.stride),
                                          pads=[t, left, b, r]))
        elif lay.kind == "add":
            a = {k: int(p[k]) for k in kinds.of(lay).params}
            nodes.append(helper.make_node("Add", list(lay.inputs), [lay.output], name=lay.name, **a,
                                          out_rq=int(lay.requant), out_n_levels=1 << lay.out_type.bits,
                                          out_signed=int(lay.out_type.signed)))
        shapes[lay.output] = lay.out_shape
    outs = []
    for o in net.outputs:
        Hh, Ww, Cc = shapes[o]
        outs.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, Cc, Hh, Ww]))
    Hi, Wi, Ci = net.input.shape
    inp = helper.make_tensor_value_info(net.input.name, TensorProto.FLOAT, [1, Ci, Hi, Wi])
    graph = helper.make_graph(nodes, net.name, [inp], outs, initializer=inits)
    model = helper.make_model(graph, producer_name="jaxpulp.train", opset_imports=[helper.make_opsetid("", 11)])
    return model


def save_onnx(net: Network, path: str) -> str:
    onnx, *_ = _onnx()
    onnx.save(to_onnx(net), path)
    return path


def export_all(net: Network, directory: str, x) -> dict:
    """``network.onnx``, ``network.npz`` and DORY goldens (``input.txt``, ``out_layerN.txt`` of image ``x``,
    (H, W, C) u8) in ``directory``. Returns name -> path."""
    from jaxpulp.network import goldens, store
    from jaxpulp.network.execute import run

    os.makedirs(directory, exist_ok=True)
    out = {"onnx": save_onnx(net, os.path.join(directory, "network.onnx")),
           "npz": store.save(net, os.path.join(directory, "network.npz"))}
    x = np.asarray(x)
    if x.shape != net.input.shape:
        raise JaxpulpError(f"x: shape {x.shape}, expected one image {net.input.shape}")
    res = run(net, x[None], keep=True)
    goldens.write_dory_txt(os.path.join(directory, "input.txt"), net.input.name, x)
    out["input"] = os.path.join(directory, "input.txt")
    for k, lay in enumerate(net.layers):
        path = os.path.join(directory, f"out_layer{k}.txt")
        goldens.write_dory_txt(path, lay.output, res.tensors[lay.output][0])
        out[f"out_layer{k}"] = path
    return out
