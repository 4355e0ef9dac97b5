"""Built-in networks: ``mobilenet_v1`` (synthetic integer weights, any width / resolution) and ``dronet``
(the DORY/QuantLab DroNet v3 8-bit network shipped with the package, Apache-2.0, see ``jaxpulp/data``).

Synthetic networks are deterministic functions of their arguments: weights are drawn from a seeded
generator and every layer's batch-norm requantisation (kappa = 1, lambda, shift) is set from the layer's
reduction length so that activations keep a spread over their range (not all zeros or all saturated).
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.network.graph import Layer, Network, TensorSpec
from jaxpulp.qtypes import QType

# (stride, output channels at width 1.0) of MobileNetV1's 13 depthwise-separable blocks.
_MOBILENET_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
                     (1, 512), (1, 512), (2, 1024), (1, 1024))


def _requant(K: int, out_t: QType, w_t: QType, in_t: QType, Co: int):
    """kappa, lambda, shift for synthetic weights: the accumulator std ~ sqrt(K)*sx*sw maps to ~1/6 of the
    output range, centred at 1/4 (unsigned) or 0 (signed)."""
    sx = max(1.0, (in_t.hi - in_t.lo) / 6)
    sw = max(1.0, (w_t.hi - w_t.lo) / 6)
    acc_std = math.sqrt(K) * sx * sw
    target = max(1.0, (out_t.hi - out_t.lo) / 6)
    shift = max(0, int(round(math.log2(acc_std / target))))
    centre = (out_t.hi - out_t.lo) / 4 if not out_t.signed else 0
    lam = int(centre * (1 << shift))
    return np.ones(Co, np.int32), np.full(Co, lam, np.int32), shift


# weight types mobilenet_v1 can draw: signed, up to 8 bits (stored as int8)
SYNTHETIC_WEIGHTS = ("i2", "i4", "i8")


def _weights(rng, shape, w_t: QType):
    return np.clip(np.round(rng.normal(0, (w_t.hi - w_t.lo) / 6, shape)), w_t.lo, w_t.hi).astype(np.int8)


def mobilenet_v1(alpha: float = 0.25, resolution: int = 128, num_classes: int = 10, seed: int = 0,
                 act: str = "u8", weights: str = "i8", name: str | None = None) -> Network:
    """MobileNetV1 (Howard et al. 2017) as PULP-NN layers: 3x3/2 conv, 13 depthwise + pointwise blocks, global
    average pooling, a fully connected classifier (28 weighted layers + 1 pool). Synthetic integer weights;
    ``alpha`` = width multiplier, ``resolution`` = input H = W, all activations ``act`` and weights ``weights``."""
    def _num(name, v, ok, expected, integer=True):
        kinds_ = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, kinds_) or not ok(v):
            raise JaxpulpError(f"{name}={v!r}: expected {expected}")
        return int(v) if integer else float(v)

    alpha = _num("alpha", alpha, lambda v: 0 < v <= 4, "a width multiplier in (0, 4], e.g. 0.25", integer=False)
    resolution = _num("resolution", resolution, lambda v: 32 <= v <= 1024,
                      "an int input size in [32, 1024] (five stride-2 layers)")
    num_classes = _num("num_classes", num_classes, lambda v: v >= 1, "an int >= 1")
    seed = _num("seed", seed, lambda v: v >= 0, "an int >= 0")
    if name is not None and (not isinstance(name, str) or not name):
        raise JaxpulpError(f"name={name!r}: expected a non-empty str or None")
    if (weights.name if isinstance(weights, QType) else weights) not in SYNTHETIC_WEIGHTS:
        raise JaxpulpError(f"weights={weights!r}: expected one of {SYNTHETIC_WEIGHTS} (signed weight types up to "
                           "8 bits: the synthetic weights are drawn as int8)")
    rng = np.random.default_rng(seed)
    a_t, w_t = QType.parse(act), QType.parse(weights)
    if a_t.bits not in (8, 4, 2):  # i32 was taken and failed in the first kernel
        raise JaxpulpError(f"act={act!r}: expected an 8, 4 or 2-bit activation type (u8, i8, u4, i4, u2, i2)")
    ch = lambda c: max(8, int(c * alpha) // 8 * 8)  # noqa: E731 - channel counts stay multiples of 8
    layers: list = []
    params: dict = {}
    H = W = resolution
    C = 3
    x_t = QType(8, False)
    src = "input"

    def add_conv(kind, lname, C_in, C_out, k, s, H, W, in_t):
        pad = (k // 2,) * 4
        Ho, Wo = (H + 2 * (k // 2) - k) // s + 1, (W + 2 * (k // 2) - k) // s + 1
        lay = Layer(lname, kind, (layers[-1].output if layers else src,), lname, (H, W, C_in), (Ho, Wo, C_out),
                    in_t, a_t, w_t, kernel=(k, k), stride=(s, s), pad=pad)
        K = kinds.weight_numel(lay) // C_out  # weights per output channel
        kappa, lam, shift = _requant(K, a_t, w_t, in_t, C_out)
        params[lname] = dict(w=_weights(rng, kinds.weight_shape(lay), w_t), kappa=kappa, lam=lam,
                             out_mult=np.int32(0), out_shift=np.int32(shift))
        return lay, Ho, Wo

    lay, H, W = add_conv("conv", "conv0", 3, ch(32), 3, 2, H, W, x_t)
    layers.append(lay)
    C = ch(32)
    for i, (s, c) in enumerate(_MOBILENET_BLOCKS, 1):
        lay, H, W = add_conv("depthwise", f"dw{i}", C, C, 3, s, H, W, a_t)
        layers.append(lay)
        lay, H, W = add_conv("conv", f"pw{i}", C, ch(c), 1, 1, H, W, a_t)
        layers.append(lay)
        lay = layers[-1].replace(pad=(0, 0, 0, 0))
        layers[-1] = lay
        C = ch(c)
    layers.append(Layer("pool", "avgpool", (layers[-1].output,), "pool", (H, W, C), (1, 1, C), a_t, a_t,
                        kernel=(H, W), stride=(H, W), requant=0))
    kappa, lam, shift = _requant(C, a_t, w_t, a_t, num_classes)
    params["fc"] = dict(w=_weights(rng, (num_classes, C), w_t), kappa=kappa, lam=np.zeros(num_classes, np.int32),
                        out_mult=np.int32(0), out_shift=np.int32(0))
    layers.append(Layer("fc", "linear", ("pool",), "fc", (1, 1, C), (1, 1, num_classes), a_t, QType(32, True), w_t,
                        relu=0, bn=0))
    return Network(name or f"mobilenet_v1_{alpha:g}_{resolution}", (TensorSpec(src, (resolution, resolution, 3), x_t),),
                   tuple(layers), params, ("fc",), dialect="builtin",
                   notes=(f"synthetic weights (seed {seed:d}); requantisation set from each layer's reduction length",))


_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def dronet() -> Network:
    """DroNet v3 8-bit (DORY/QuantLab export, imported and stored in ``jaxpulp/data/dronet.npz``)."""
    from jaxpulp.network import store

    return store.load(os.path.join(_DATA, "dronet.npz"))


def dronet_input() -> np.ndarray:
    """The DroNet example input image (200 x 200 x 1, u8) from dory_examples."""
    with np.load(os.path.join(_DATA, "dronet_input.npz")) as z:
        return z[z.files[0]].astype(np.int64)


BUILTIN = {"dronet": dronet, "mobilenet_v1": mobilenet_v1}


def builtin(name: str) -> Network:
    """A built-in network by name (``dronet``, ``mobilenet_v1``)."""
    if not isinstance(name, str) or name not in BUILTIN:
        raise JaxpulpError(f"model={name!r}: no such built-in network; expected one of {sorted(BUILTIN)} or a path "
                           "to an .onnx / .npz file")
    return BUILTIN[name]()


def _rebuild_dronet(folder: str) -> None:
    from jaxpulp.network import goldens, store
    from jaxpulp.network.onnx_import import load_onnx

    net = load_onnx(os.path.join(folder, "DRONETV3_ql_integerized.onnx"), name="dronet")
    store.save(net, os.path.join(_DATA, "dronet.npz"))
    x = goldens.hwc_values(os.path.join(folder, "input.txt"), net.input.shape)
    arrays: dict[str, Any] = {net.input.name: x.astype(np.uint8)}
    np.savez_compressed(os.path.join(_DATA, "dronet_input.npz"), **arrays)


if __name__ == "__main__":  # python -m jaxpulp.network.zoo --rebuild-dronet DIR
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--rebuild-dronet":
        raise SystemExit("usage: python -m jaxpulp.network.zoo --rebuild-dronet DORY_DRONET_FOLDER")
    _rebuild_dronet(sys.argv[2])
