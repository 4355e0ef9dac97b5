"""Deployed latency as a cost-table objective: ``deployed_table(net, target)`` is ``costtable.build_table`` of the
target's kernel cost model with ``cycles`` replaced by the deployed cycles of each (layer, type triple), so every
sweep, Pareto front and surrogate built on a ``CostTable`` optimises the deployed latency. A precision choice that
shrinks a layer's weights below the L2 budget stops its L3 streaming, and the table shows it.

``costtable.build_table(net, "deployed:gap8-board")`` (and so ``jaxpulp sweep --target deployed:gap8-board``) routes
here. Energy stays the kernels' energy (DMA energy is not modelled). Each layer is costed alone (the previous
layer's L3 use, which decides the board's weight prefetch, depends on the configuration; taken as "not L3").
The tiler keeps its 4 largest candidate tiles (``tiler_candidates``) to keep table builds short.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxpulp.deploy.flavour import get_flavour
from jaxpulp.deploy.latency import _layer, with_bn_bits
from jaxpulp.deploy.target import get_target

PREFIX = "deployed:"


def deployed_table(net, target="gap8-board", flavour="dory-gap8", *, tiler_candidates: int = 4):
    """The ``CostTable`` of ``net`` whose ``cycles`` are deployed cycles on ``target`` (a ``DeployTarget`` or
    its name); ``table.target`` = ``"deployed:<name>"``, ``table.model`` = ``"deployed"``."""
    from jaxpulp import costtable
    from jaxpulp.errors import JaxpulpError, UnsupportedConfig

    t = get_target(target).replace(tiler_candidates=tiler_candidates)
    fl = get_flavour(flavour)
    base = costtable.build_table(net, t.kernel_target)
    tgt, cluster = costtable.target_and_cluster(t.kernel_target)
    cyc = base.cycles.copy()
    for li, lay in enumerate(base.layers):
        for ia, ib, ic in np.argwhere(base.supported[li]):
            a, c = costtable.ACT_AXIS[ia], costtable.ACT_AXIS[ic]
            b = costtable.axis_types(lay.kind, 1)[ib]
            try:
                cfg = costtable.check_layer(costtable.layer_at(lay, a, b, c), cluster)
            except (UnsupportedConfig, JaxpulpError):  # pragma: no cover - supported entries passed this already
                continue
            cyc[li, ia, ib, ic] = _layer(with_bn_bits(cfg, fl), t, fl, False).total
    return dataclasses.replace(base, target=PREFIX + t.name, cycles=cyc, model="deployed")
