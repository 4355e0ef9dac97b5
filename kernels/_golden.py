"""Helpers for turning golden-vector case records (../shared/golden format) into kernel calls.

``CONFIG_OF`` / ``config_of(meta)``: the kernel configuration of a case record, one entry per golden family.
Each family module implements ``from_golden(meta, arrays) -> GoldenCall`` (raises ``UnsupportedConfig``
where ``check`` refuses) and ``run_golden_batch(calls) -> list[np.ndarray]`` (unpacked outputs in the
golden array shape, computed through the packed path with one shared compiled function).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

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


# ---------------------------------------------------------------------------------- record -> configuration
# One table for every golden family: the kernel configuration a case record describes. The family modules'
# ``config_from_golden`` and the cost-model golden test use it (linear / depthwise still carry their own copy).


def conv_config(m: dict, cls=kc.ConvConfig):
    """A conv-shaped record (conv, pointwise, depthwise) as a ``cls`` configuration."""
    return cls(in_type=m["in_type"], out_type=m["out_type"], w_type=m["w_type"], H=m["H"], W=m["W"], Ci=m["Ci"],
               Co=m["Co"], Kh=m["K"][0], Kw=m["K"][1], stride=tuple(m["stride"]), pad=tuple(m["pad"]),
               relu=m["relu"], bn=m["bn"], bias=bool(m["bias"]), Ho=m["Ho"], Wo=m["Wo"])


def _linear(m: dict):
    flags = {} if m["family"] == "linear_noquant" else dict(relu=m["relu"], bn=m["bn"])
    return kc.LinearConfig(in_type=m["in_type"], out_type=m["out_type"], w_type=m["w_type"], N=m["N"], M=m["M"],
                           bias=bool(m["bias"]), **flags)


def _pool(cls, **extra):
    def build(m: dict):
        kw = {k: int(m[k]) for k in extra}
        return cls(in_type=m["in_type"], out_type=m["out_type"], H=m["H"], W=m["W"], C=m["Ci"], Kh=m["K"][0],
                   Kw=m["K"][1], stride=tuple(m["stride"]), pad=tuple(m["pad"]), Ho=m["Ho"], Wo=m["Wo"], **kw)
    return build


CONFIG_OF = {
    "conv": conv_config,
    "pointwise": lambda m: conv_config(m, kc.PointwiseConfig),
    "depthwise": lambda m: conv_config(m, kc.DepthwiseConfig),
    "linear_quant": _linear,
    "linear_noquant": _linear,
    "maxpool": _pool(kc.MaxPoolConfig),
    "avgpool": _pool(kc.AvgPoolConfig, requant=None),
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
