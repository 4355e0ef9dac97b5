"""``kernel_cost(cfg, target)``: the per-core cost of one kernel call and what it means on a target.

``ClusterCost`` holds one ``Cost`` per core (the same work split as the data, so load imbalance is visible)
and evaluates them on its ``Target``: cycles (slowest core + TCDM contention + fork and barriers), MACs per
cycle, the bottleneck core, time, energy, and a short explanation of which instruction classes dominate.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

from jaxpulp.cluster.config import Cluster
from jaxpulp.cost import cmsis, pulpnn
from jaxpulp.cost.targets import GAP8_1CORE_TARGET, GAP8_TARGET, Target, get_target
from jaxpulp.cost.types import INSTRUCTION_CLASSES, Cost, total
from jaxpulp.errors import JaxpulpError, UnsupportedConfig

_FAMILY_FN = {
    "conv": pulpnn.conv_core,
    "pointwise": pulpnn.pointwise_core,
    "depthwise": pulpnn.depthwise_core,
    "linear": pulpnn.linear_core,
    "maxpool": pulpnn.maxpool_core,
    "avgpool": pulpnn.avgpool_core,
    "add": pulpnn.add_core,
    "add_legacy": pulpnn.add_legacy_core,
}

# Human names of the instruction classes, grouped the way the explanation reports them.
_GROUPS = {
    "dot products (pv.sdotp)": ("sdotp",),
    "sub-byte unpacking (p.extract + pv.pack)": ("extract", "pack"),
    "output packing (p.insert)": ("insert",),
    "loads/stores": ("load", "store"),
    "requantisation (mul, clip)": ("mul", "clip", "clipu"),
    "calls and branches": ("jump", "branch_taken", "branch_not_taken"),
    "other ALU": ("alu", "div", "simd", "minmax", "bitcount", "hwloop", "csr"),
}


@dataclasses.dataclass(frozen=True)
class ClusterCost:
    """Per-core costs of one kernel call on ``target``.

    per_core: one ``Cost`` per core id (length ``target.num_cores``); kernel: the C function name;
    target: the ``Target`` the numbers below are evaluated on.
    """

    per_core: tuple
    target: Target
    kernel: str = ""

    # --- counts ---------------------------------------------------------------------------------------------
    @property
    def total(self) -> Cost:
        """Sum over cores."""
        return total(self.per_core)

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates of the call (all cores)."""
        return sum(c.macs for c in self.per_core)

    # --- timing ---------------------------------------------------------------------------------------------
    @functools.cached_property
    def contention_cycles(self) -> tuple:
        """TCDM bank-conflict stall cycles per core."""
        return self.target.contention(self.per_core)

    @functools.cached_property
    def core_cycles(self) -> tuple:
        """Busy cycles of each core: instructions, stalls and TCDM contention (no synchronisation)."""
        return tuple(self.target.core_cycles(c) + s for c, s in zip(self.per_core, self.contention_cycles, strict=True))

    @property
    def sync_cycles(self) -> int:
        """Fork and barrier cycles of the call."""
        return self.target.sync_cycles(self.per_core)

    @property
    def cycles(self) -> int:
        """Cycles of the call: slowest core + fork and barrier overhead."""
        return max(self.core_cycles) + self.sync_cycles

    @property
    def macs_per_cycle(self) -> float:
        """MACs per cycle of the whole cluster (the papers' figure of merit)."""
        return self.macs / self.cycles if self.cycles else 0.0

    @property
    def bottleneck_core(self) -> int:
        """Core id with the most busy cycles (the lowest such id)."""
        cc = self.core_cycles
        return cc.index(max(cc))

    @property
    def balance(self) -> float:
        """Mean busy cycles / max busy cycles (1.0 = perfectly balanced)."""
        cc = self.core_cycles
        return (sum(cc) / len(cc)) / max(cc) if max(cc) else 1.0

    @property
    def seconds(self) -> float:
        """Wall-clock time of the call at the target clock (s)."""
        return self.cycles / self.target.freq_hz

    @property
    def energy_pj(self) -> float:
        """Energy of the call (pJ), see ``jaxpulp.cost.targets``."""
        return self.target.energy_pj(self.cycles, self.core_cycles)

    @property
    def pj_per_mac(self) -> float:
        return self.energy_pj / self.macs if self.macs else float("nan")

    # --- explanation ----------------------------------------------------------------------------------------
    def breakdown(self, core: int | None = None) -> dict:
        """Cycles of ``core`` (default: the bottleneck core) per group of instruction classes, plus stalls."""
        core = self.bottleneck_core if core is None else core
        c = self.per_core[core]
        cc = dict(self.target.class_cycles)
        cpi = self.target.cpi
        out = {}
        for name, classes in _GROUPS.items():
            v = cpi * sum(getattr(c, k) * cc.get(k, 1) for k in classes)
            if v:
                out[name] = v
        stalls = c.stalls + self.contention_cycles[core]
        if stalls:
            out["stalls (load-use, TCDM, division, hazards)"] = float(stalls)
        return out

    def explain(self, top: int = 3) -> str:
        """One paragraph: MACs/cycle, the bottleneck core and the instruction classes that dominate it."""
        b = self.bottleneck_core
        parts = self.breakdown(b)
        tot = sum(parts.values()) or 1.0
        ranked = sorted(parts.items(), key=lambda kv: -kv[1])[:top]
        shares = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in ranked)
        n = len(self.per_core)
        lines = [
            f"{self.kernel or 'kernel'} on {self.target.name}: {self.macs:,} MACs in {self.cycles:,} cycles "
            f"= {self.macs_per_cycle:.2f} MAC/cycle, {self.pj_per_mac:.1f} pJ/MAC."
        ]
        if n > 1:
            lines.append(f"Bottleneck: core {b} ({self.core_cycles[b]:,} busy cycles; balance "
                         f"{100 * self.balance:.0f}%, sync {self.sync_cycles} cycles, "
                         f"TCDM contention {self.contention_cycles[b]:,} cycles).")
        lines.append(f"Its cycles go to: {shares}.")
        return " ".join(lines)

    def table(self) -> str:
        """Per-core table: busy cycles, MACs, instructions and the main classes."""
        head = f"{'core':>4} {'cycles':>10} {'macs':>10} {'instr':>10} {'sdotp':>9} {'extract':>9} {'ld/st':>9}"
        rows = [head]
        for i, (c, cyc) in enumerate(zip(self.per_core, self.core_cycles, strict=True)):
            rows.append(f"{i:>4} {cyc:>10,} {c.macs:>10,} {c.instructions:>10,} {c.sdotp:>9,} {c.extract:>9,} "
                        f"{c.load + c.store:>9,}")
        return "\n".join(rows)


def resolve_target(cluster_or_target=None) -> Target:
    """A ``Target`` from a Target, a registered name, a ``Cluster`` (GAP-8 with its core count and clock) or None
    (``gap8``)."""
    if cluster_or_target is None:
        return GAP8_TARGET
    if isinstance(cluster_or_target, Target):
        return cluster_or_target
    if isinstance(cluster_or_target, str):
        return get_target(cluster_or_target)
    if isinstance(cluster_or_target, Cluster):
        base = GAP8_1CORE_TARGET if cluster_or_target.num_cores == 1 else GAP8_TARGET
        t = base
        if cluster_or_target.num_cores != base.num_cores:
            t = base.with_cores(cluster_or_target.num_cores)
        if cluster_or_target.freq_hz != t.freq_hz:
            t = dataclasses.replace(t, freq_hz=cluster_or_target.freq_hz)
        return t
    raise JaxpulpError(f"cluster_or_target={cluster_or_target!r}: expected a Cluster, a Target or a target name")


def _c_name(cfg) -> str:
    return getattr(cfg, "c_name", type(cfg).__name__)


@functools.cache
def _check_cluster(num_cores: int) -> Cluster:
    return Cluster(num_cores=num_cores)


def _check_kernel(cfg, target: Target) -> None:
    """Raise ``UnsupportedConfig`` (the family ``check``'s rule) where no semantics of the kernel defines the call:
    its ``check`` refuses ``cfg`` both as given and at ``semantics="ideal"`` (structural rules: output geometry,
    whole-byte channel multiples, uint16 extents, depthwise Ci == Co, ...). A call refused only by a library-quirk
    rule (``conv-bias-drift``, ``pointwise-leftover-overread``, ``linear-short-last-chunk``, ...) runs on the
    target, its outputs are what is wrong, and its instruction counts are well defined (the golden vectors'
    per-core counters measure such calls: tests/test_cost_golden.py): it is priced. On a PULP target the checks
    run on a cluster of the target's cores; on the Cortex-M7 (CMSIS-NN / CMix-NN, none of PULP-NN's quirks) the
    structural rules only, on one core. Run once per configuration and target (``_cached`` caches the cost)."""
    from jaxpulp.kernels import catalog

    try:
        mod = catalog.family_module(cfg.family)
    except JaxpulpError as e:  # family module not written yet: its cost model still counts the kernel
        if "not implemented yet" not in str(e):
            raise
        return
    ideal = cfg if cfg.semantics == "ideal" else cfg.replace(semantics="ideal")
    if target.isa == "armv7e-m":
        mod.check(ideal, _check_cluster(1))
        return
    cluster = _check_cluster(target.num_cores)
    try:
        mod.check(cfg, cluster)
    except UnsupportedConfig as e:
        if ideal is cfg:
            raise
        try:
            mod.check(ideal, cluster)
        except UnsupportedConfig:
            raise e from None  # the library's own rule, as the kernel's check names it
        # a library quirk only: the call runs and is priced


@functools.lru_cache(maxsize=4096)
def _cached(cfg, target: Target, hwloops: bool, outer: str) -> ClusterCost:
    fam = getattr(cfg, "family", None)
    _check_kernel(cfg, target)
    if target.isa == "armv7e-m":
        per_core = (cmsis.kernel_cost(cfg),)
        return ClusterCost(per_core, target, kernel=cmsis.c_name(cfg))
    fn = _FAMILY_FN.get(fam) if isinstance(fam, str) else None
    if fn is None:
        raise JaxpulpError(f"cfg={cfg!r}: no cost model for family {fam!r}; expected one of {sorted(_FAMILY_FN)}")
    cg = pulpnn.Codegen(hwloops=hwloops, outer=outer)
    n = target.num_cores
    per_core_n = tuple(fn(cfg, core, n, cg) for core in range(n))
    return ClusterCost(per_core_n, target, kernel=_c_name(cfg))


def kernel_cost(cfg, cluster_or_target=None, *, hwloops: bool = True, outer: str = "measured") -> ClusterCost:
    """Per-core cost of one call of the kernel ``cfg`` (a ``jaxpulp.kernels.config`` config) on a target.

    cluster_or_target: a ``Cluster`` (GAP-8 with that many cores), a ``Target``, a target name ("gap8",
    "gap8-1core", "gap8-1v0", "cortex-m7") or None ("gap8"). hwloops=False models a compiler without hardware
    loops; outer="gcc" replaces the RTL-measured MatMul block overhead by a first-principles GCC count
    (``jaxpulp.cost.pulpnn.Codegen``; XpulpV2 targets only). Pure function of static information; cached.
    Raises ``UnsupportedConfig`` (naming the rule) for a call no semantics of the kernel family defines (its
    ``check`` refuses it also at ``semantics="ideal"``: geometry, channel multiples, extents; ``_check_kernel``);
    a call refused only for a library quirk (wrong outputs, e.g. ``conv-bias-drift``) still runs and is priced.
    """
    fam = getattr(cfg, "family", None)
    if not isinstance(fam, str) or fam not in _FAMILY_FN or not isinstance(getattr(cfg, "semantics", None), str):
        raise JaxpulpError(f"cfg={cfg!r:.80}: expected a kernel configuration of jaxpulp.kernels.config (ConvConfig, "
                           f"LinearConfig, ...) of a family with a cost model: {sorted(_FAMILY_FN)}")
    target = resolve_target(cluster_or_target)
    pulpnn.Codegen(hwloops=bool(hwloops), outer=outer)  # validates the options
    return _cached(cfg, target, bool(hwloops), outer)


def instruction_classes() -> tuple:
    """The instruction classes a ``Cost`` counts."""
    return INSTRUCTION_CLASSES


class Costed(NamedTuple):
    """A kernel result with its cost: ``output`` (whatever the kernel returns) and ``cost`` (``ClusterCost``)."""

    output: Any
    cost: ClusterCost


def with_cost(output, cfg, cluster_or_target=None, **options) -> Costed:
    """Pair a kernel's ``output`` with ``kernel_cost(cfg, cluster_or_target, **options)`` (for the kernels'
    ``return_cost=True`` paths)."""
    return Costed(output, kernel_cost(cfg, cluster_or_target, **options))
