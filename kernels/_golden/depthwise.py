"""Golden adapter of the depthwise family (``kernels/depthwise.py``); the contract is in ``_golden/__init__.py``."""
from __future__ import annotations

import numpy as np

from jaxpulp.kernels import _golden as g, depthwise
from jaxpulp.kernels._golden import conv as gconv
from jaxpulp.kernels.config import DepthwiseConfig

FAMILIES = ("depthwise",)


def config_from_golden(meta: dict) -> DepthwiseConfig:
    """The configuration of a golden case record (the table ``_golden.CONFIG_OF``)."""
    return g.config_of(meta, FAMILIES)


def params_from_golden(meta: dict, arrays: dict) -> depthwise.Params:
    return g.requant_params(meta, arrays, depthwise.Params)


def _pack(cfg, arrays: dict) -> tuple:
    return depthwise.pack_inputs(arrays["x"], arrays["w"], cfg)


def from_golden(meta: dict, arrays: dict) -> g.GoldenCall:
    return g.make_call(meta, arrays, config_from_golden, params_from_golden, depthwise.check, _pack)


def _bn_bits(c) -> int:
    return c.cfg.bn_bits


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls through one compiled function per library tree (``bn_bits``)."""
    return gconv.run_packed(calls, depthwise, channels="C")


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics, precision as data) for many golden calls, one compiled function per tree."""
    if not calls:
        return []
    bk = depthwise.shared_bucket([c.cfg for c in calls])

    def group(idx, bits):
        items = []
        for i in idx:
            cfg, a = calls[i].cfg, arrays_list[i]
            x = np.zeros((bk.H, bk.W, bk.C), np.int32)
            x[:cfg.H, :cfg.W, :cfg.Co] = a["x"]
            w = np.zeros((bk.C, bk.Kh, bk.Kw), np.int32)
            w[:cfg.Co, :cfg.Kh, :cfg.Kw] = a["w"]
            items.append((depthwise.geometry(cfg.replace(semantics="ideal"), calls[i].cluster), x, w,
                          g.padded_params(calls[i].args[2], bk.C)))
        return g.run_chunks(items, lambda *a: depthwise._values_cases(*a, bk, bits))

    outs = g.by_group(calls, _bn_bits, group)
    return [o[:c.cfg.Ho, :c.cfg.Wo, :c.cfg.Co] for o, c in zip(outs, calls, strict=True)]
