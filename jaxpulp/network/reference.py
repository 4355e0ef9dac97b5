"""A plain numpy int64 interpreter of a ``Network`` (the network's reference twin and the benchmark baseline).

Loops over layers with explicit numpy integer arithmetic (no JAX): zero-padded correlation, the batch-norm
requantisation in the layer's library tree (int32 wrap-around for ``bn_bits=32``, 64-bit then the low 32 bits
for ``bn_bits=64``), floor shifts, clips; pooling and add as the intended arithmetic (``semantics="ideal"``).
It equals ``run(net, x, path="values")`` on every network (tested), and the packed path wherever no library
quirk applies.
"""
from __future__ import annotations

import numpy as np

from jaxpulp.network import kinds
from jaxpulp.network.graph import Layer, Network


def _wrap32(v):
    return ((np.asarray(v, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _bn(acc, p, lay: Layer):
    kappa = np.asarray(p["kappa"], np.int64)
    lam = np.asarray(p["lam"], np.int64)
    acc = _wrap32(acc)
    if lay.relu != 0 and lay.bn != 0:
        if lay.bn_bits == 64:
            s = int(p["out_shift"]) & 63
            # kappa*acc + lam fits int64 for int32 operands; >> is floor; keep the low 32 bits
            return _wrap32((kappa * acc + lam) >> s)
        return _wrap32(_wrap32(kappa * acc) + lam) >> (int(p["out_shift"]) & 31)
    if lay.relu == 1:
        m = int(p["out_mult"]) & 0xFFFF
        m = m - 0x10000 if m >= 0x8000 else m
        return _wrap32(m * acc) >> (int(p["out_shift"]) & 31)
    return acc >> (int(p["out_shift"]) & 31)


def _clip(v, t):
    return np.clip(v, t.lo, t.hi)


def _windows(x, lay: Layer, fill=0):
    """(B, Ho, Wo, Kh, Kw, C) windows of x (B, H, W, C), padded with ``fill``."""
    t, b, left, r = lay.pad
    Kh, Kw = lay.kernel
    sy, sx = lay.stride
    Ho, Wo, _ = lay.out_shape
    xp = np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=fill)
    out = np.empty((x.shape[0], Ho, Wo, Kh, Kw, x.shape[3]), np.int64)
    for ky in range(Kh):
        for kx in range(Kw):
            out[:, :, :, ky, kx] = xp[:, ky:ky + sy * Ho:sy, kx:kx + sx * Wo:sx][:, :Ho, :Wo]
    return out


def layer_forward(lay: Layer, p: dict, ins: list) -> np.ndarray:
    """One layer on int64 (B, H, W, C) inputs -> int64 (B, Ho, Wo, Co): its kind's ``reference`` hook; a weighted
    kind's hook gives the accumulators, the bias and requantisation after them are shared."""
    k = kinds.of(lay)
    out = k.hook("reference")(lay, p, ins)
    if not k.weighted:
        return out
    acc = out
    if lay.bias:
        acc = acc + np.asarray(p["bias"], np.int64)
    if lay.out_type.bits == 32:
        return _wrap32(acc)
    return _clip(_bn(acc, p, lay), lay.out_type)


# The ``reference`` hooks of jaxpulp.network.kinds.


def conv_acc(lay: Layer, p: dict, ins: list) -> np.ndarray:
    """int64 accumulators (B, Ho, Wo, Co), no bias."""
    return np.einsum("bhwijc,oijc->bhwo", _windows(ins[0], lay), np.asarray(p["w"], np.int64))


def depthwise_acc(lay: Layer, p: dict, ins: list) -> np.ndarray:
    return np.einsum("bhwijc,cij->bhwc", _windows(ins[0], lay), np.asarray(p["w"], np.int64))


def linear_acc(lay: Layer, p: dict, ins: list) -> np.ndarray:
    x = ins[0]
    acc = x.reshape(x.shape[0], -1) @ np.asarray(p["w"], np.int64).T
    return acc[:, None, None, :]


def maxpool(lay: Layer, p: dict, ins: list) -> np.ndarray:
    return _windows(ins[0], lay, fill=lay.in_type.lo).max(axis=(3, 4))


def avgpool(lay: Layer, p: dict, ins: list) -> np.ndarray:
    s = _windows(ins[0], lay).sum(axis=(3, 4))
    kk = lay.kernel[0] * lay.kernel[1]
    if lay.requant:
        lam = int(p["lam"]) // kk if int(p["lam"]) >= 0 else -((-int(p["lam"])) // kk)
        v = (s * lam + int(p["out_add"])) >> (int(p["out_shift"]) & 31)
    else:
        v = np.where(s >= 0, s // kk, -((-s) // kk))
    return _clip(v, lay.out_type)


def add(lay: Layer, p: dict, ins: list) -> np.ndarray:
    rs = []
    for k, (xi, t) in enumerate(zip(ins, (lay.in_type, lay.in2_type), strict=True), 1):
        r = (xi * int(p[f"in{k}_mul"]) + int(p[f"in{k}_add"])) >> (int(p[f"in{k}_shift"]) & 31)
        assert t is not None  # add layers: checked by Layer
        lo = -128 if t.signed else 0
        rs.append(np.clip(r, lo, lo + 255))
    s = rs[0] + rs[1]
    if lay.requant:
        s = (s * int(p["out_mul"]) + int(p["out_add"])) >> (int(p["out_shift"]) & 31)
    return _clip(s, lay.out_type)


def forward(net: Network, x, keep: bool = False) -> dict:
    """Every output (or, with ``keep``, every tensor) of ``net`` for int inputs ``x`` ((batch, H, W, C) array for
    one input, or a dict by input name)."""
    xs = x if isinstance(x, dict) else {net.input.name: x}
    env = {k: np.asarray(v, np.int64) for k, v in xs.items()}
    env = {k: v if v.ndim == 4 else v[None] for k, v in env.items()}
    for lay in net.layers:
        env[lay.output] = layer_forward(lay, net.params.get(lay.name, {}), [env[i] for i in lay.inputs])
    return env if keep else {k: env[k] for k in net.outputs}
