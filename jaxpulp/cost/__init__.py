"""The cost model: instruction counts per core of every PULP-NN kernel call, and targets that turn them into
cycles and energy.

>>> from jaxpulp.cost import kernel_cost
>>> from jaxpulp.kernels.config import ConvConfig
>>> cc = kernel_cost(ConvConfig("u8", "u8", "i8", H=16, W=16, Ci=32, Co=64, pad=(1, 1, 1, 1), relu=0, bn=0))
>>> round(cc.macs_per_cycle, 1)  # 8-core GAP-8, PULP-NN benchmark layer (published: 15.5)
15.4

Public API: ``Cost`` (per-core counts, ``+`` and integer scaling), ``Target`` / ``TARGETS`` / ``get_target``
("gap8", "gap8-1core", "gap8-1v0", "cortex-m7"), ``kernel_cost(cfg, cluster_or_target)`` -> ``ClusterCost``
(per-core costs; cycles, MACs/cycle, bottleneck core, energy, ``explain()``), ``with_cost(output, cfg, ...)``
-> ``Costed(output, cost)`` for kernel results, and ``jaxpulp.cost.report`` for the 27-permutation table, the
Cortex-M7 comparison and the heat map.
"""
from jaxpulp.cost.model import ClusterCost, Costed, kernel_cost, resolve_target, with_cost
from jaxpulp.cost.targets import TARGETS, Target, get_target
from jaxpulp.cost.types import FIELDS, INSTRUCTION_CLASSES, Cost

__all__ = ["Cost", "ClusterCost", "Costed", "Target", "TARGETS", "get_target", "kernel_cost", "resolve_target",
           "with_cost", "INSTRUCTION_CLASSES", "FIELDS"]
