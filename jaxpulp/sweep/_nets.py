"""Networks a sweep can name on the command line: ``toy`` (a 7-layer net with every layer kind, small enough
to enumerate), the built-in zoo (``mobilenet_v1:alpha=0.25,resolution=128``, ``dronet``) and ONNX files."""
from __future__ import annotations

import math
import os

import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network.graph import Layer, Network, TensorSpec
from jaxpulp.qtypes import QType


def _requant(K: int, Co: int, in_t: QType, w_t: QType, out_t: QType):
    """kappa = 1, lambda, shift that map an accumulator of K products to a spread over the output range."""
    acc_std = math.sqrt(K) * max(1.0, (in_t.hi - in_t.lo) / 6) * max(1.0, (w_t.hi - w_t.lo) / 6)
    shift = max(0, int(round(math.log2(acc_std / max(1.0, (out_t.hi - out_t.lo) / 6)))))
    lam = int((out_t.hi - out_t.lo) / 4 * (1 << shift)) if not out_t.signed else 0
    return dict(kappa=np.ones(Co, np.int32), lam=np.full(Co, lam, np.int32), out_mult=np.int32(0),
                out_shift=np.int32(shift))


def toy_net(seed: int = 0, size: int = 16) -> Network:
    """input u8 [size, size, 8] -> conv 3x3 (16) -> depthwise 3x3 -> pointwise 1x1 -> add (residual with the
    conv output) -> max-pool 2x2 -> global average pool -> linear (10, int32 output). Synthetic weights."""
    for k, v, lo in (("seed", seed, 0), ("size", size, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise JaxpulpError(f"{k}={v!r}: expected an int >= {lo}")
    rng = np.random.default_rng(seed)
    u8, i8 = QType(8, False), QType(8, True)
    S, C = size, 16

    def w(shape):
        return np.clip(np.round(rng.normal(0, 42, shape)), -128, 127).astype(np.int8)

    layers = [
        Layer("conv0", "conv", ("input",), "conv0", (S, S, 8), (S, S, C), u8, u8, i8, kernel=(3, 3), pad=(1, 1, 1, 1)),
        Layer("dw1", "depthwise", ("conv0",), "dw1", (S, S, C), (S, S, C), u8, u8, i8, kernel=(3, 3),
              pad=(1, 1, 1, 1)),
        Layer("pw1", "conv", ("dw1",), "pw1", (S, S, C), (S, S, C), u8, u8, i8),
        Layer("add1", "add", ("pw1", "conv0"), "add1", (S, S, C), (S, S, C), u8, u8, in2_type=u8),
        Layer("mp", "maxpool", ("add1",), "mp", (S, S, C), (S // 2, S // 2, C), u8, u8, kernel=(2, 2),
              stride=(2, 2)),
        Layer("gap", "avgpool", ("mp",), "gap", (S // 2, S // 2, C), (1, 1, C), u8, u8, kernel=(S // 2, S // 2),
              stride=(S // 2, S // 2), requant=0),
        Layer("fc", "linear", ("gap",), "fc", (1, 1, C), (1, 1, 10), u8, QType(32, True), i8, relu=0, bn=0),
    ]
    params = {
        "conv0": dict(w=w((C, 3, 3, 8)), **_requant(72, C, u8, i8, u8)),
        "dw1": dict(w=w((C, 3, 3)), **_requant(9, C, u8, i8, u8)),
        "pw1": dict(w=w((C, 1, 1, C)), **_requant(C, C, u8, i8, u8)),
        "add1": dict(in1_mul=np.int32(1), in1_add=np.int32(0), in1_shift=np.int32(0), in2_mul=np.int32(1),
                     in2_add=np.int32(0), in2_shift=np.int32(0), out_mul=np.int32(1), out_add=np.int32(0),
                     out_shift=np.int32(1)),
        "fc": dict(w=w((10, C)), kappa=np.ones(10, np.int32), lam=np.zeros(10, np.int32), out_mult=np.int32(0),
                   out_shift=np.int32(0)),
    }
    return Network(f"toy{size}", (TensorSpec("input", (S, S, 8), u8),), tuple(layers), params, ("fc",),
                   notes=(f"synthetic weights (seed {seed})",))


def _value(s: str):
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def parse_net_spec(spec: str) -> tuple:
    """``"name:k=v,k=v"`` -> (name, {k: v}) with ints / floats converted."""
    name, colon, rest = spec.partition(":")
    kw: dict = {}
    if colon and not rest.strip():
        raise JaxpulpError(f"net={spec!r}: nothing after ':'; expected NAME or NAME:key=value,key=value")
    for item in filter(None, rest.split(",")):
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise JaxpulpError(f"net={spec!r}: expected NAME or NAME:key=value,key=value")
        if k.strip() in kw:
            raise JaxpulpError(f"net={spec!r}: {k.strip()!r} given twice")
        kw[k.strip()] = _value(v.strip())
    return name.strip(), kw


def load_network(spec: str) -> Network:
    """A network from a sweep's ``--net``: ``toy[:size=16,seed=0]``, a ``jaxpulp.network.zoo`` function with
    keyword arguments (``mobilenet_v1:alpha=0.25,resolution=128``) or the path of a quantised ONNX file
    (``jaxpulp.network.onnx_import.load_onnx``)."""
    if spec.endswith(".onnx") or os.path.sep in spec:
        if not os.path.exists(spec):
            raise JaxpulpError(f"net={spec!r}: no such file")
        from jaxpulp.network import onnx_import

        try:
            return onnx_import.load_onnx(spec)
        except JaxpulpError as e:  # named as the sweep's option (net=), not the importer's argument (model=)
            raise JaxpulpError(f"net={spec!r}: {str(e).removeprefix(f'model={spec!r}: ')}") from None
    name, kw = parse_net_spec(spec)
    try:
        if name == "toy":
            return toy_net(**kw)
        from jaxpulp.network import zoo

        if name in _zoo_names():
            return zoo.BUILTIN[name](**kw)
    except (TypeError, ValueError) as e:  # a keyword the function lacks, a value it refuses (JaxpulpError too)
        raise JaxpulpError(f"net={spec!r}: {e}") from None
    raise JaxpulpError(f"net={spec!r}: expected one of {('toy',) + _zoo_names()} (with optional :key=value,...) "
                       "or an .onnx path")


def _zoo_names() -> tuple:
    """The built-in networks (``zoo.BUILTIN``), not the zoo module's helper functions."""
    from jaxpulp.network import zoo

    return tuple(sorted(zoo.BUILTIN))
