"""Golden adapter of the pooling families ``maxpool`` / ``avgpool`` (``kernels/pool.py``); the contract is in
``_golden/__init__.py``. ``run_golden_batch_full`` also returns max pooling's final input buffer."""
from __future__ import annotations

import numpy as np

from jaxpulp import packing
from jaxpulp.kernels import _avgpool, _golden as g, _maxpool, _pool_common as pc, pool
from jaxpulp.kernels.config import PoolConfig

FAMILIES = ("maxpool", "avgpool")


def config_from_golden(meta: dict) -> PoolConfig:
    """The configuration of a golden case record (the table ``_golden.CONFIG_OF``)."""
    return g.config_of(meta, FAMILIES)


def params_from_golden(meta: dict, arrays: dict):
    if meta["family"] == "maxpool":
        return None
    return pool.AvgPoolParams(g.i32(meta["lambda"]), g.i32(meta["out_shift"]), g.i32(meta["out_add"]))


def _pack(cfg: PoolConfig, arrays: dict) -> tuple:
    return (packing.pack_hwc(arrays["x"], cfg.in_type),)


def from_golden(meta: dict, arrays: dict) -> g.GoldenCall:
    return g.make_call(meta, arrays, config_from_golden, params_from_golden, pool.check, _pack)


def _group(c):
    """Family, and for max pooling whether pass 1 needs the in-place scan (so each compiled function takes one
    code path, and the golden cases exercise both)."""
    return pc._family(c.cfg), pc._needs_scan(c.cfg)


def run_golden_batch_full(calls) -> list:
    """Packed path for many golden calls, one compiled function per group: a list of unpacked results
    (max pooling: ``MaxPoolResult(out, x_after)``; average pooling: out)."""
    def group(idx, key):
        part, bk = g.part_and_bucket(calls, idx, pc.shared_bucket)
        pad = [g.pad_words(c.args[0], bk.x_words) for c in part]
        if key[0] == "maxpool":
            outs = []
            for n, (gm, xw) in g.stack_chunks([(pc.geometry(c.cfg, c.cluster), xw)
                                               for c, xw in zip(part, pad, strict=True)]):
                o, xa = _maxpool._max_packed_cases(gm, xw, bk)
                outs.extend(zip(np.asarray(o)[:n], np.asarray(xa)[:n], strict=True))
            return [pool.MaxPoolResult(g.unpack_image(o, c.cfg.out_type, (c.cfg.Ho, c.cfg.Wo, c.cfg.C)),
                                       g.unpack_image(xa, c.cfg.in_type, (c.cfg.H, c.cfg.W, c.cfg.C)))
                    for c, (o, xa) in zip(part, outs, strict=True)]
        items = [(pc.geometry(c.cfg, c.cluster), xw, g.scalars(c.args[1])) for c, xw in zip(part, pad, strict=True)]
        outs = g.run_chunks(items, lambda *a: _avgpool._avg_packed_cases(*a, bk))
        return [g.unpack_image(o, c.cfg.out_type, (c.cfg.Ho, c.cfg.Wo, c.cfg.C))
                for c, o in zip(part, outs, strict=True)]

    return g.by_group(calls, _group, group)


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls (both pooling families): unpacked outputs (Ho, Wo, C)."""
    return [r.out if isinstance(r, pool.MaxPoolResult) else r for r in run_golden_batch_full(calls)]


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics, precision as data) for many golden calls, one compiled function per group."""
    def group(idx, key):
        part, bk = g.part_and_bucket(calls, idx, pc.shared_bucket)
        items = []
        for i, c in zip(idx, part, strict=True):
            cfg = c.cfg
            x = np.zeros((bk.H, bk.W, bk.C), np.int32)
            x[:cfg.H, :cfg.W, :cfg.C] = arrays_list[i]["x"]
            gm = pc.geometry(cfg.replace(semantics="ideal"), c.cluster)
            items.append((gm, x) if key[0] == "maxpool" else (gm, x, g.scalars(c.args[1])))
        fn = _maxpool._max_values_cases if key[0] == "maxpool" else _avgpool._avg_values_cases
        outs = g.run_chunks(items, lambda *a: fn(*a, bk))
        return [o[:c.cfg.Ho, :c.cfg.Wo, :c.cfg.C] for c, o in zip(part, outs, strict=True)]

    return g.by_group(calls, _group, group)
