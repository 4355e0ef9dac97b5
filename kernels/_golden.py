"""Helpers for turning golden-vector case records (../shared/golden format) into kernel calls.

Each family module implements ``from_golden(meta, arrays) -> GoldenCall`` (raises ``UnsupportedConfig``
where ``check`` refuses) and ``run_golden_batch(calls) -> list[np.ndarray]`` (unpacked outputs in the
golden array shape, computed through the packed path with one shared compiled function).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpulp.cluster.config import Cluster

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
