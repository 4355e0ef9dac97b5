"""Targets: turn per-core ``Cost`` counts into cycles, time and energy.

Every constant carries its source: isa_cost.md (section), cycles/README.md (measured CV32E40P RTL runs), the
DORY per-layer board measurement (external_testcases/dory_gap8_mobilenetv1_128_8bit_per_layer.csv), or a
paper abstract. Tags as in isa_cost.md: [DOC] documentation, [CODE] source code, [MEAS] measurement in
../shared, [ABS] paper abstract, [RECALL] unverified recollection, [DERIVED] our arithmetic.

Cluster timing model (``gap8``)::

    cycles = max over cores (core_cycles + tcdm_stalls) + fork_cycles + barriers * barrier_cycles
    core_cycles = sum(count[class] * cycles_per[class]) + stall cycles
    tcdm_stalls(c) = accesses(c) * E[X / (X + 1)],   X = sum_{o != c} Bernoulli(rate(o) / banks)

where ``rate(o)`` is core o's TCDM accesses per cycle and X the number of other cores addressing the same bank
in the same cycle: the logarithmic interconnect grants one request per bank per cycle (round robin), so of
the X + 1 contenders X lose one cycle each, and a given request is among the losers with probability
X / (X + 1) (isa_cost.md §2.3: uniform, independent bank choice [DERIVED]; one-cycle retry [RECALL]; 16
word-interleaved banks [RECALL, as GVSoC's pulp_open]). Accesses of all cores to the same weight words in
lockstep are not modelled separately (an average-case term).

Energy model::

    energy = cycles * pj_base_per_cycle + sum over cores(core busy cycles) * pj_per_core_cycle

i.e. an always-on part (SoC, fabric controller, L2, memories) plus a part per active core cycle; cores that
wait at the barrier are clock-gated. ``pj`` = picojoules.
"""
from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

from jaxpulp._registry import lookup
from jaxpulp.cost.types import INSTRUCTION_CLASSES, Cost
from jaxpulp.errors import JaxpulpError

# CV32E40P / RI5CY cycles per instruction class (isa_cost.md §2.1 [DOC cv32e40p pipeline.rst] and the
# measured rule of cycles/README.md: cycles = instr + ld_stall + 2*branch_taken + jumps [MEAS]).
CV32E40P_CYCLES = (
    ("branch_taken", 3),  # 2-cycle penalty [DOC], [MEAS]
    ("jump", 2),  # jal/jalr: 1-cycle penalty [DOC], [MEAS]
)  # every other class: 1 cycle (single issue, no stall: [DOC], [MEAS])

# GAP-8 cluster constants.
GAP8_FORK_CYCLES = 100  # pi_cl_team_fork dispatch + wake-up: "on the order of 10^2 cycles" (isa_cost §4.5 [RECALL])
GAP8_BARRIER_CYCLES = 20  # event-unit barrier after the last core arrives (isa_cost §4.5 [RECALL], order of 10)
GAP8_TCDM_BANKS = 16  # word-interleaved L1 banks for 8 cores, banking factor 2 (isa_cost §2.3 [RECALL]/[CODE gvsoc])
# Energy at 1.0 V, 100 MHz from DORY's per-layer board measurement [MEAS external_testcases]: pointwise layers with
# all 8 cores busy draw 48.4 mW, the (core-light) pool/FC phases 18.3-19.8 mW. Always-on part 18.3 mW -> 183 pJ
# per cycle; per active core (48.4 - 18.3) / 8 = 3.76 mW -> 37.6 pJ per core cycle [DERIVED]. At 15.5 MAC/cycle
# this is 31 pJ/MAC, inside isa_cost §2.4's 30-40 pJ/MAC bracket and below DORY's 63 pJ/MAC end-to-end [ABS].
GAP8_PJ_BASE_1V0 = 183.0
GAP8_PJ_CORE_1V0 = 37.6
# 175 MHz needs 1.2 V (isa_cost §2.4 [DOC gap_sdk]); dynamic energy per cycle scales with V^2 [DERIVED].
GAP8_V2_SCALE_1V2 = (1.2 / 1.0) ** 2

# Cortex-M7 (STM32H7) running CMSIS-NN / CMix-NN kernels (jaxpulp.cost.cmsis counts the instructions; the
# comparison with GAP-8 is jaxpulp.cost.compare_m7, documented in docs/m7-comparison.md).
M7_FREQ_HZ = 400e6  # STM32H743 rev Y maximum core clock [RECALL]; rev V runs at 480 MHz (time ratios only)
# Cycles per instruction = core part x memory part.
# Core: the M7 issues at most 2 instructions per cycle (LLVM ARMScheduleM7.td: IssueWidth 2, one MAC pipe, one
# SIMD unit that takes UXTB16/SXTB16/USAT/SSUB16 in slot 0 only, two load pipes) [CODE llvm-project]. llvm-mca
# 14 (-mcpu=cortex-m7) on a straight Thumb-2 rendering of the three CMix-NN inner loops (docs/m7-comparison.md)
# gives 19 / 44 / 84 cycles for 20 / 44 / 84 instructions (8 / 4 / 2-bit weights): IPC 1.0-1.05, because the
# unpack -> SMLAD chains are serial and 14 allocatable registers leave no room to interleave two chains; the
# resource bound (RThroughput) is 10 / 22 / 42, i.e. IPC 2 [EXP]. We take IPC 1 (M7_CORE_CPI = 1.0).
M7_CORE_CPI = 1.0
# Memory: calibrated so that the 8-bit benchmark convolution (16x16x32 -> 64, 3x3) runs at 0.6 MAC/cycle, the
# CMSIS-NN figure of isa_cost §4.6 [DERIVED from RECALL: CIFAR-10 in 99.1 ms at 216 MHz, and PULP-NN's "19.6x
# fewer cycles than CMSIS-NN on STM32H7" ABS]: the remaining 1.23x are wait states (weights in flash / AXI SRAM
# behind a 16 kB D-cache; the 18 kB of 8-bit weights of that layer do not fit) [DERIVED].
M7_MEMORY_FACTOR = 1.227
M7_CPI = M7_CORE_CPI * M7_MEMORY_FACTOR
M7_BRANCH_TAKEN_EXTRA = 1  # loop back-edge after branch prediction: ~1 extra cycle [DERIVED from ARMScheduleM7.td]
# Energy per M7 cycle: PULP-NN reports 19.6x fewer cycles but 39.5x better energy efficiency than CMSIS-NN on
# STM32H7 [ABS], so one H7 cycle costs about 39.5 / 19.6 = 2.0 times one GAP-8 cluster cycle at its
# most efficient point (1.0 V, 8 cores busy: 183 + 8 * 37.6 = 484 pJ) -> 976 pJ [DERIVED] (= 390 mW at 400 MHz,
# consistent with ~280 uA/MHz at 3.3 V [RECALL]).
M7_PJ_PER_CYCLE = 976.0


@dataclasses.dataclass(frozen=True)
class Target:
    """A machine that runs the kernels.

    name: registry key; num_cores: cores that run a kernel; freq_hz: clock (Hz); isa: "xpulpv2" (PULP-NN
    kernels, per-core counts from ``jaxpulp.cost.pulpnn``) or "armv7e-m" (CMSIS-NN-style kernels,
    ``jaxpulp.cost.cmsis``); class_cycles: (class, cycles) pairs for classes that do not take 1 cycle; cpi: multiplies
    the instruction part (1 for the in-order RISC-V core); fork_cycles / barrier_cycles: cluster
    synchronisation (cycles); tcdm_banks: 0 disables the contention term; pj_base_per_cycle: always-on energy
    per cycle (pJ); pj_per_core_cycle: energy per busy core cycle (pJ); voltage: informative (V).
    """

    name: str
    num_cores: int
    freq_hz: float
    isa: str = "xpulpv2"
    class_cycles: tuple = CV32E40P_CYCLES
    cpi: float = 1.0
    fork_cycles: int = 0
    barrier_cycles: int = 0
    tcdm_banks: int = 0
    pj_base_per_cycle: float = 0.0
    pj_per_core_cycle: float = 0.0
    voltage: float = 1.0
    description: str = ""

    def __post_init__(self):
        if self.isa not in ("xpulpv2", "armv7e-m"):
            raise JaxpulpError(f"isa={self.isa!r}: expected 'xpulpv2' or 'armv7e-m'")
        n = self.num_cores
        if not isinstance(n, int) or n < 1 or n & (n - 1):
            raise JaxpulpError(f"num_cores={n!r}: expected a power of two >= 1")
        if not self.freq_hz > 0:
            raise JaxpulpError(f"freq_hz={self.freq_hz!r}: expected a positive clock in Hz")

    # --- per core -----------------------------------------------------------------------------------------
    def instruction_cycles(self, cost: Cost) -> float:
        """Cycles of the instructions alone (class costs x ``cpi``), no stalls."""
        cc = dict(self.class_cycles)
        return self.cpi * sum(getattr(cost, c) * cc.get(c, 1) for c in INSTRUCTION_CLASSES)

    def core_cycles(self, cost: Cost) -> int:
        """Cycles one core needs for ``cost`` alone (instructions + stalls; no contention, no barriers)."""
        return int(math.ceil(self.instruction_cycles(cost) + cost.stalls))

    # --- cluster ------------------------------------------------------------------------------------------
    def contention(self, costs) -> tuple:
        """TCDM bank-conflict stall cycles of each core (module docstring); zeros for one core or banks = 0."""
        costs = tuple(costs)
        if self.tcdm_banks <= 0 or len(costs) < 2:
            return tuple(0 for _ in costs)
        busy = [self.core_cycles(c) for c in costs]
        acc = [c.load + c.store for c in costs]
        q = [min(a / t, 1.0) / self.tcdm_banks if t else 0.0 for a, t in zip(acc, busy, strict=True)]
        out = []
        for i, a in enumerate(acc):
            # distribution of X = number of other cores on the same bank (Poisson-binomial, by convolution)
            dist = [1.0]
            for j, qj in enumerate(q):
                if j == i or qj == 0.0:
                    continue
                nxt = [0.0] * (len(dist) + 1)
                for k, pk in enumerate(dist):
                    nxt[k] += pk * (1.0 - qj)
                    nxt[k + 1] += pk * qj
                dist = nxt
            loss = sum(pk * k / (k + 1) for k, pk in enumerate(dist))
            out.append(int(round(a * loss)))
        return tuple(out)

    def sync_cycles(self, costs) -> int:
        """Fork plus barrier cycles of one kernel call (the largest barrier count of any core)."""
        barriers = max((c.barrier for c in costs), default=0)
        return self.fork_cycles + barriers * self.barrier_cycles

    def energy_pj(self, cycles: int, core_busy_cycles) -> float:
        """Energy (pJ) of a call lasting ``cycles`` with each core busy ``core_busy_cycles[i]`` cycles."""
        return cycles * self.pj_base_per_cycle + sum(core_busy_cycles) * self.pj_per_core_cycle

    def with_cores(self, num_cores: int, name: str | None = None) -> Target:
        """The same machine running kernels on ``num_cores`` cores."""
        return dataclasses.replace(self, num_cores=num_cores, name=name or f"{self.name}-{num_cores}core")


GAP8_TARGET = Target(
    name="gap8", num_cores=8, freq_hz=175e6, isa="xpulpv2", fork_cycles=GAP8_FORK_CYCLES,
    barrier_cycles=GAP8_BARRIER_CYCLES, tcdm_banks=GAP8_TCDM_BANKS,
    pj_base_per_cycle=GAP8_PJ_BASE_1V0 * GAP8_V2_SCALE_1V2, pj_per_core_cycle=GAP8_PJ_CORE_1V0 * GAP8_V2_SCALE_1V2,
    voltage=1.2,
    description="GAP-8 cluster, 8 RI5CY/CV32E40P cores at 175 MHz, 1.2 V; PULP-NN mixed XpulpV2 kernels",
)
GAP8_1CORE_TARGET = dataclasses.replace(
    GAP8_TARGET, name="gap8-1core", num_cores=1,
    description="GAP-8 cluster running the kernels on one core (175 MHz, 1.2 V)")
GAP8_EFFICIENT_TARGET = dataclasses.replace(
    GAP8_TARGET, name="gap8-1v0", freq_hz=100e6, pj_base_per_cycle=GAP8_PJ_BASE_1V0,
    pj_per_core_cycle=GAP8_PJ_CORE_1V0, voltage=1.0,
    description="GAP-8 cluster at its efficient point (100 MHz, 1.0 V; DORY's board measurement)")
CORTEX_M7_TARGET = Target(
    name="cortex-m7", num_cores=1, freq_hz=M7_FREQ_HZ, isa="armv7e-m",
    class_cycles=(("branch_taken", 1 + M7_BRANCH_TAKEN_EXTRA / M7_CPI),),
    cpi=M7_CPI, pj_base_per_cycle=M7_PJ_PER_CYCLE, pj_per_core_cycle=0.0, voltage=3.3,
    description="STM32H7 Cortex-M7 at 400 MHz running CMSIS-NN / CMix-NN style kernels (q15 im2col, SMLAD)",
)

TARGETS = MappingProxyType({t.name: t for t in (GAP8_TARGET, GAP8_1CORE_TARGET, GAP8_EFFICIENT_TARGET,
                                                 CORTEX_M7_TARGET)})


def get_target(name: str | Target) -> Target:
    """The registered target called ``name`` (a ``Target`` is returned unchanged)."""
    return lookup(TARGETS, name, Target, "target")
