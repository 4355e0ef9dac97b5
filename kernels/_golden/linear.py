"""Golden adapter of the linear families ``linear_quant`` / ``linear_noquant`` (``kernels/linear.py``); the
contract is in ``_golden/__init__.py``."""
from __future__ import annotations

import numpy as np

from jaxpulp import packing
from jaxpulp.kernels import _golden as g, linear
from jaxpulp.kernels.config import LinearConfig

FAMILIES = ("linear_quant", "linear_noquant")


def config_from_golden(meta: dict) -> LinearConfig:
    """The configuration of a golden case record (the table ``_golden.CONFIG_OF``)."""
    return g.config_of(meta, FAMILIES)


def params_from_golden(meta: dict, arrays: dict) -> linear.Params:
    if meta["family"] == "linear_noquant":
        return linear.Params(bias=g.bias_of(meta, arrays))
    return g.requant_params(meta, arrays, linear.Params)


def _pack(cfg: LinearConfig, arrays: dict) -> tuple:
    return packing.pack(arrays["x"], cfg.in_type), packing.pack(arrays["w"], cfg.w_type)


def from_golden(meta: dict, arrays: dict) -> g.GoldenCall:
    return g.make_call(meta, arrays, config_from_golden, params_from_golden, linear.check, _pack)


def unpack_output(words, cfg: LinearConfig) -> np.ndarray:
    """Output words of ``linear.run`` -> the M output values (int32 words as they are for the no-quant kernels)."""
    words = np.asarray(words, np.uint32)
    if not cfg.quantized:
        return words[:cfg.M].view(np.int32).copy()
    return np.asarray(packing.unpack(words, cfg.out_type, cfg.M))


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls (both linear families) through one compiled function."""
    if not calls:
        return []
    bk = linear.shared_bucket([c.cfg for c in calls], [c.cluster for c in calls])
    items = [(linear.geometry(c.cfg, c.cluster), g.pad_words(c.args[0], bk.x_words),
              g.pad_words(c.args[1], bk.w_words), g.padded_params(c.args[2], bk.M)) for c in calls]
    outs = g.run_chunks(items, lambda *a: linear._packed_cases(*a, bk))
    return [unpack_output(o, c.cfg) for o, c in zip(outs, calls, strict=True)]


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics, precision as data) for many golden calls, one compiled function."""
    if not calls:
        return []
    bk = linear.shared_bucket([c.cfg for c in calls], [c.cluster for c in calls])
    items = []
    for c, a in zip(calls, arrays_list, strict=True):
        cfg = c.cfg
        x = np.zeros(bk.N, np.int32)
        x[:cfg.N] = a["x"]
        w = np.zeros((bk.M, bk.N), np.int32)
        w[:cfg.M, :cfg.N] = a["w"]
        items.append((linear.geometry(cfg.replace(semantics="ideal"), c.cluster), x, w,
                      g.padded_params(c.args[2], bk.M)))
    outs = g.run_chunks(items, lambda *a: linear._values_cases(*a, bk))
    return [o[:c.cfg.M] for o, c in zip(outs, calls, strict=True)]
