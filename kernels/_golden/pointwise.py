"""Golden adapter of the pointwise family (``kernels/pointwise.py``); the contract is in ``_golden/__init__.py``."""
from __future__ import annotations

import numpy as np

from jaxpulp.kernels import _golden as g, pointwise
from jaxpulp.kernels._golden import conv as gconv
from jaxpulp.kernels.config import PointwiseConfig

FAMILIES = ("pointwise",)


def config_from_golden(meta: dict) -> PointwiseConfig:
    """The configuration of a golden case record (the table ``_golden.CONFIG_OF``)."""
    return g.config_of(meta, FAMILIES)


params_from_golden = gconv.params_from_golden


def from_golden(meta: dict, arrays: dict) -> g.GoldenCall:
    """A golden case as a packed call; raises ``UnsupportedConfig`` where ``check_inputs`` refuses its inputs."""
    call = g.make_call(meta, arrays, config_from_golden, params_from_golden, pointwise._check_config,
                       gconv.pack_hwc_image_and_weights)
    x_words, w_words, params = call.args
    pointwise.check_inputs(call.cfg, x_words, w_words, params, call.cluster)
    return call


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls through one compiled function per library tree (``bn_bits``)."""
    return gconv.run_packed(calls, pointwise)


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics = conv 1x1, precision as data) for many golden calls, one compiled function
    (``_golden.conv.run_values_golden_batch``; calls with ``bn_bits=64``, which that batch does not take, one
    by one)."""
    out: list = [None] * len(calls)
    idx = [i for i, c in enumerate(calls) if c.cfg.bn_bits == 32]
    batch = gconv.run_values_golden_batch([calls[i] for i in idx], [arrays_list[i] for i in idx])
    for i, o in zip(idx, batch, strict=True):
        out[i] = o
    for i, c in enumerate(calls):
        if out[i] is None:
            out[i] = np.asarray(pointwise.run_values(arrays_list[i]["x"], arrays_list[i]["w"], c.args[2], cfg=c.cfg,
                                                     cluster=c.cluster))
    return out
