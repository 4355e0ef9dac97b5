"""Golden-vector adapters: case records of ../shared/golden (README there) as kernel calls, one table.

The kernel modules hold the kernels; everything that reads a golden case record lives here:

* ``CONFIG_OF`` / ``config_of(meta)``: golden family -> the kernel configuration a case record describes
  (used by the adapters, ``benchmarks/fidelity.py`` and the cost-model golden test);
* ``ADAPTERS`` / ``adapter(family)``: golden family -> its adapter module (``_golden.conv``, ``.pointwise``,
  ``.depthwise``, ``.linear``, ``.pool``, ``.add``). Each adapter implements
  ``config_from_golden(meta)``, ``params_from_golden(meta, arrays)``,
  ``from_golden(meta, arrays) -> GoldenCall`` (raises ``UnsupportedConfig`` where the kernel's ``check``
  refuses), ``run_golden_batch(calls) -> list[np.ndarray]`` (unpacked outputs in the golden array shape,
  through the packed path, one compiled function per bucket) and
  ``run_values_golden_batch(calls, arrays_list)`` (the value path, ideal semantics, precision as data);
* the helpers they share (``GoldenCall``, ``cluster_of``, ``stack_chunks``, ``run_chunks``, ``by_group``,
  ``padded_params``, ``unpack_image``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpulp import packing
from jaxpulp.cluster.config import Cluster
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import config as kc

# Cases per compiled call. The last chunk is padded with copies of its first case, so every call has the
# same shapes and the function compiles once per family bucket.
CHUNK = 64


class GoldenCall(NamedTuple):
    """One golden case as a kernel call: config, cluster, and the packed arguments (family specific)."""

    meta: dict
    cfg: Any
    cluster: Cluster
    args: Any


def cluster_of(meta: dict) -> Cluster:
    return Cluster(num_cores=int(meta["ncores"]))


def stack_chunks(items: list, chunk: int = CHUNK):
    """Yield (n_real, stacked pytree) for consecutive chunks of ``items`` (pytrees of equal structure and
    shapes), padding the last chunk to ``chunk`` by repeating its first item."""
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        n = len(part)
        part = part + [part[0]] * (chunk - n) if len(items) > chunk else part
        yield n, jax.tree_util.tree_map(lambda *xs: np.stack(xs), *part)


def make_call(meta: dict, arrays: dict, config: Callable, params: Callable, check: Callable,
              pack: Callable) -> GoldenCall:
    """A case record as a packed call: ``cfg = config(meta)``, ``check(cfg, cluster)`` (raises
    ``UnsupportedConfig``), args = ``(*pack(cfg, arrays), params(meta, arrays))``."""
    cfg = config(meta)
    cluster = cluster_of(meta)
    check(cfg, cluster)
    return GoldenCall(meta, cfg, cluster, (*pack(cfg, arrays), params(meta, arrays)))


def run_chunks(items: list, fn: Callable) -> list:
    """``fn(*stacked)`` over the chunks of ``items`` (``stack_chunks``): the real cases' results, as numpy."""
    outs: list = []
    for n, stacked in stack_chunks(items):
        outs.extend(np.asarray(fn(*stacked))[:n])
    return outs


def by_group(calls: list, key: Callable, run_group: Callable) -> list:
    """Run ``run_group(indices, key)`` for the calls of each ``key(call)`` (a static argument of the compiled
    function: one compile per group); results in the order of ``calls``."""
    groups: dict = {}
    for i, c in enumerate(calls):
        groups.setdefault(key(c), []).append(i)
    out: list = [None] * len(calls)
    for k, idx in groups.items():
        for i, o in zip(idx, run_group(idx, k), strict=True):
            out[i] = o
    return out


def part_and_bucket(calls: list, idx: list, shared_bucket: Callable) -> tuple[list, Any]:
    """The calls at ``idx`` and their shared bucket, ``shared_bucket(cfgs, clusters)``."""
    part = [calls[i] for i in idx]
    return part, shared_bucket([c.cfg for c in part], [c.cluster for c in part])


def pad_words(words, n: int) -> np.ndarray:
    """A packed word stream zero-padded to ``n`` words (a shared bucket's extent)."""
    return np.pad(words, (0, n - len(words)))


def padded_params(p, n: int):
    """The requant parameters ``p`` (kappa, lam, out_mult, out_shift, bias: conv / pointwise / depthwise /
    linear ``Params``) with every per-channel vector zero-padded to ``n`` (absent ones as zeros)."""
    def vec(v):
        return np.zeros(n, np.int32) if v is None else np.pad(np.asarray(v, np.int32), (0, n - len(v)))

    return type(p)(vec(p.kappa), vec(p.lam), np.int32(p.out_mult), np.int32(p.out_shift), vec(p.bias))


def i32(v) -> Any:
    """A record's integer (scalar or array) as int32 numpy (the kernels' Params take it like a jax array)."""
    return np.asarray(v, np.int32) if np.ndim(v) else np.int32(v)


def bias_of(meta: dict, arrays: dict) -> Any:
    """The record's bias array (int32), None where the case has no bias."""
    return i32(arrays["bias"]) if meta["bias"] else None


def requant_params(meta: dict, arrays: dict, cls):
    """A conv-shaped record's requant parameters (kappa / lambda arrays, out_mult / out_shift, bias if any)."""
    return cls(i32(arrays["kappa"]), i32(arrays["lambda"]), i32(meta["out_mult"]), i32(meta["out_shift"]),
               bias_of(meta, arrays))


def scalars(p):
    """A NamedTuple of scalar parameters as int32 scalars (a stackable pytree)."""
    return type(p)(*(np.int32(v) for v in p))


def unpack_image(words, qtype, shape: tuple) -> np.ndarray:
    """Packed output words -> int values of ``shape`` (e.g. (Ho, Wo, Co))."""
    return packing.unpack(words, qtype, int(np.prod(shape))).reshape(shape)


# ---------------------------------------------------------------------------------- record -> configuration
# One table for every golden family: the kernel configuration a case record describes.


def conv_config(m: dict, cls=kc.ConvConfig):
    """A conv-shaped record (conv, pointwise, depthwise) as a ``cls`` configuration."""
    return cls(in_type=m["in_type"], out_type=m["out_type"], w_type=m["w_type"], H=m["H"], W=m["W"], Ci=m["Ci"],
               Co=m["Co"], Kh=m["K"][0], Kw=m["K"][1], stride=tuple(m["stride"]), pad=tuple(m["pad"]),
               relu=m["relu"], bn=m["bn"], bias=bool(m["bias"]), Ho=m["Ho"], Wo=m["Wo"])


def _linear_config(m: dict):
    flags = {} if m["family"] == "linear_noquant" else dict(relu=m["relu"], bn=m["bn"])
    return kc.LinearConfig(in_type=m["in_type"], out_type=m["out_type"], w_type=m["w_type"], N=m["N"], M=m["M"],
                           bias=bool(m["bias"]), **flags)


def _pool_config(cls, **extra):
    def build(m: dict):
        kw = {k: int(m[k]) for k in extra}
        return cls(in_type=m["in_type"], out_type=m["out_type"], H=m["H"], W=m["W"], C=m["Ci"], Kh=m["K"][0],
                   Kw=m["K"][1], stride=tuple(m["stride"]), pad=tuple(m["pad"]), Ho=m["Ho"], Wo=m["Wo"], **kw)
    return build


CONFIG_OF = {
    "conv": conv_config,
    "pointwise": lambda m: conv_config(m, kc.PointwiseConfig),
    "depthwise": lambda m: conv_config(m, kc.DepthwiseConfig),
    "linear_quant": _linear_config,
    "linear_noquant": _linear_config,
    "maxpool": _pool_config(kc.MaxPoolConfig),
    "avgpool": _pool_config(kc.AvgPoolConfig, requant=None),
    "add": lambda m: kc.AddConfig(m["in1_type"], m["in2_type"], m["out_type"], H=m["H"], W=m["W"], C=m["Ci"],
                                  requant=int(m["requant"])),
    "add_legacy": lambda m: kc.AddLegacyConfig(m["in1_type"], m["in2_type"], H=m["H"], W=m["W"], C=m["Ci"]),
}
"""Golden family -> ``meta -> kernel configuration``."""


def config_of(meta: dict, families=None):
    """The kernel configuration of a golden case record (``meta['family']`` one of ``families``, default all)."""
    fam = meta.get("family")
    allowed = tuple(CONFIG_OF) if families is None else tuple(families)
    if fam not in allowed:
        raise JaxpulpError(f"meta['family']={fam!r}: expected one of {allowed}")
    return CONFIG_OF[fam](meta)


# ---------------------------------------------------------------------------------- family -> adapter
# Imported last: the adapters use the helpers above.
from jaxpulp.kernels._golden import (  # noqa: E402
    add as add,
    conv as conv,
    depthwise as depthwise,
    linear as linear,
    pointwise as pointwise,
    pool as pool,
)

ADAPTERS = {fam: mod for mod in (conv, pointwise, depthwise, linear, pool, add) for fam in mod.FAMILIES}
"""Golden family -> its adapter module (the one place that bridges golden families and kernel modules)."""


def adapter(family: str):
    """The adapter module of golden family ``family`` (e.g. ``"linear_noquant"`` -> ``_golden.linear``)."""
    if family not in ADAPTERS:
        raise JaxpulpError(f"family={family!r}: expected one of {sorted(ADAPTERS)}")
    return ADAPTERS[family]
