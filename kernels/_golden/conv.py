"""Golden adapter of the conv family (``kernels/conv.py``); the contract is in ``_golden/__init__.py``.
Also the pieces the other conv-shaped adapters (pointwise, depthwise) share."""
from __future__ import annotations

import numpy as np

from jaxpulp import packing
from jaxpulp.kernels import _golden as g, conv
from jaxpulp.kernels.config import ConvConfig

FAMILIES = ("conv",)


def config_from_golden(meta: dict) -> ConvConfig:
    """The configuration of a golden case record (the table ``_golden.CONFIG_OF``)."""
    return g.config_of(meta, FAMILIES)


def params_from_golden(meta: dict, arrays: dict) -> conv.Params:
    return g.requant_params(meta, arrays, conv.Params)


def pack_hwc_image_and_weights(cfg, arrays: dict) -> tuple:
    """(x_words, w_words): the HWC input image and the weight stream (conv, pointwise)."""
    return packing.pack_hwc(arrays["x"], cfg.in_type), packing.pack(arrays["w"], cfg.w_type)


def from_golden(meta: dict, arrays: dict) -> g.GoldenCall:
    return g.make_call(meta, arrays, config_from_golden, params_from_golden, conv.check, pack_hwc_image_and_weights)


def run_packed(calls, kernel, channels: str = "Co") -> list:
    """Packed path of conv-shaped calls (``kernel``: the conv, pointwise or depthwise module): one compiled
    ``kernel._packed_cases`` per library tree (``bn_bits``, static) over the shared bucket (its channel extent
    named ``channels``); unpacked (Ho, Wo, Co) outputs."""
    if not calls:
        return []
    bk = kernel.shared_bucket([c.cfg for c in calls])
    n = getattr(bk, channels)

    def group(idx, bits):
        items = [(kernel.geometry(c.cfg, c.cluster), g.pad_words(c.args[0], bk.x_words),
                  g.pad_words(c.args[1], bk.w_words), g.padded_params(c.args[2], n)) for c in (calls[i] for i in idx)]
        return g.run_chunks(items, lambda *a: kernel._packed_cases(*a, bk, bits))

    outs = g.by_group(calls, lambda c: c.cfg.bn_bits, group)
    return [g.unpack_image(o, c.cfg.out_type, (c.cfg.Ho, c.cfg.Wo, c.cfg.Co))
            for o, c in zip(outs, calls, strict=True)]


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls through one compiled function (shared bucket, vmap over cases)."""
    return run_packed(calls, conv)


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics, precision as data) for many golden calls, one compiled function."""
    if not calls:
        return []
    bk = conv.shared_bucket([c.cfg for c in calls])
    items = []
    for c, a in zip(calls, arrays_list, strict=True):
        cfg = c.cfg
        x = np.zeros((bk.H, bk.W, bk.Ci), np.int32)
        x[:cfg.H, :cfg.W, :cfg.Ci] = a["x"]
        w = np.zeros((bk.Co, bk.Kh, bk.Kw, bk.Ci), np.int32)
        w[:cfg.Co, :cfg.Kh, :cfg.Kw, :cfg.Ci] = a["w"]
        items.append((conv.geometry(cfg.replace(semantics="ideal"), c.cluster), x, w,
                      g.padded_params(c.args[2], bk.Co)))
    outs = g.run_chunks(items, lambda *a: conv._values_cases(*a, bk))
    return [o[:c.cfg.Ho, :c.cfg.Wo, :c.cfg.Co] for o, c in zip(outs, calls, strict=True)]
