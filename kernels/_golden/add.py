"""Golden adapter of the add families ``add`` / ``add_legacy`` (``kernels/add.py``); the contract is in
``_golden/__init__.py``."""
from __future__ import annotations

import numpy as np

from jaxpulp import packing
from jaxpulp.kernels import _golden as g, add

FAMILIES = ("add", "add_legacy")


def config_from_golden(meta: dict):
    """The configuration of a golden case record (the table ``_golden.CONFIG_OF``)."""
    return g.config_of(meta, FAMILIES)


def params_from_golden(meta: dict, arrays: dict | None = None):
    cls = add.Params if meta["family"] == "add" else add.LegacyParams
    return cls(*(g.i32(meta[k]) for k in cls._fields))


def _pack(cfg, arrays: dict) -> tuple:
    return packing.pack_hwc(arrays["x1"], cfg.in1_type), packing.pack_hwc(arrays["x2"], cfg.in2_type)


def from_golden(meta: dict, arrays: dict) -> g.GoldenCall:
    return g.make_call(meta, arrays, config_from_golden, params_from_golden, add.check, _pack)


def _family(c) -> str:
    return add._family(c.cfg)


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls, one compiled function per family: unpacked outputs (H, W, C)."""
    def group(idx, _fam):
        part, bk = g.part_and_bucket(calls, idx, add.shared_bucket)
        items = [(add.geometry(c.cfg, c.cluster), g.pad_words(c.args[0], bk.words), g.pad_words(c.args[1], bk.words),
                  g.scalars(c.args[2])) for c in part]
        outs = g.run_chunks(items, lambda *a: add._packed_cases(*a, bk))
        return [g.unpack_image(o, c.cfg.out_type, (c.cfg.H, c.cfg.W, c.cfg.C))
                for c, o in zip(part, outs, strict=True)]

    return g.by_group(calls, _family, group)


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics, precision as data) for many golden calls, one compiled function per family."""
    def group(idx, _fam):
        part, bk = g.part_and_bucket(calls, idx, add.shared_bucket)
        items = []
        for i, c in zip(idx, part, strict=True):
            a = np.zeros((2, bk.N), np.int32)
            a[0, :add._n(c.cfg)] = np.asarray(arrays_list[i]["x1"]).reshape(-1)
            a[1, :add._n(c.cfg)] = np.asarray(arrays_list[i]["x2"]).reshape(-1)
            items.append((add.geometry(c.cfg.replace(semantics="ideal"), c.cluster), a[0], a[1],
                          g.scalars(c.args[2])))
        outs = g.run_chunks(items, lambda *a: add._values_cases(*a, bk))
        return [o[:add._n(c.cfg)].reshape(c.cfg.H, c.cfg.W, c.cfg.C) for c, o in zip(part, outs, strict=True)]

    return g.by_group(calls, _family, group)
