"""Deployment targets: the memory sizes, DMA and L3 figures and the schedule of one PULP chip as deployed.

A ``DeployTarget`` is a frozen dataclass, so another PULP chip (or another deployment of the same chip) is a new
instance, not new code. Units: bytes, cycles of the cluster clock, bytes per cluster cycle.

Sources (``../shared/spec/dma_facts.md``, cited as ``dma §n.m``; tags as there: [DOC] [CODE] [DERIVED], and
[OURS] for a figure of our own that no source gives, [FIT] for a figure fitted on the GAP-8 board rows with
leave-one-out validation in ``benchmarks/fidelity.py``):

* L1 64,000 B as DORY counts it, L1 budget after the stacks 36,700 B (DORY GAP8) / 35,000 B (DORY PULP_gvsoc)
  [dma §6.1-6.2 CODE+DERIVED]; L2 512,000 B, tiling budget 380,000 B (MobileNetV1 config) [dma §6.8-6.9]; the board
  target uses the
  2020 (paper-era, the era of the board measurement) L2 buffer of 400,000 B [dma §4.3].
* L2 -> L1 cluster DMA: 8 B/cycle on the board (64-bit AXI; a tool constant and an upper bound) [dma §2.4, §7.2];
  4 B/cycle on GVSoC (router-bound) [dma §2.9]; first-byte latency 10 (DORY's constant) / 19 router cycles
  (GVSoC) [dma §2.15, §2.9]. A 2-D row takes at least one cycle however short it is (one TCDM beat per port,
  dma §2.7 [DERIVED]).
* Per-command programming: 1 load + 3 (1-D) or 4 (2-D) stores to enqueue, a status poll + event wait and one
  store to free [dma §2.13 CODE]; their cycle cost is unknown [dma §2.14]: 10 cycles [OURS: ~10 instructions].
  The board target blocks on every push with a barrier in 3-D and HWC->CHW copies [dma §5.4]; the barrier
  costs ``GAP8_BARRIER_CYCLES`` (jaxpulp.cost.targets, isa_cost §4.5 [RECALL]).
* L3 HyperRAM -> L2 by the micro-DMA in 512 B bursts [dma §3.6]. GVSoC: 1 B per cluster cycle at 100 MHz
  [dma §3.11 DERIVED]. The board's HyperRAM rate is unknown [dma §3.5]; the generic HyperBus bound is 3.3 B/cycle
  at 100 MHz [dma §3.13]. ``gap8-board`` uses the rate fitted on the board rows [FIT] (see docs/deploy.md).
* Schedule: DORY's GAP8 board target: ``double_buffering: 1`` and blocking DMA [dma §5.2, §5.6]; PULP_gvsoc:
  double buffering 2, DMA overlapped with the kernel [dma §5.3, §5.7].
* Weights that are not L3-tiled are copied L3 -> L2 synchronously before the layer, outside DORY's per-layer
  counter [dma §6.16-6.17]: ``count_weight_preload=False`` leaves that copy out, as the measurements do.
* L3 tiles: current DORY reads the next L3 weight tile while the current one runs (dma §6.14), so
  ``l3_overlap=True`` on GVSoC; on the board every transfer is blocking (dma §5.2, §5.4) and we take the L3 reads
  as blocking too (``l3_overlap=False`` [OURS]). The board figures are from 2020 DORY, which reserved L2 / 2 for the
  next layer's L3-tiled weights and read them during the previous layer unless that one used L3 itself
  (dma §6.13, §6.18): ``l3_prefetch_next=True`` on the board.
* Per-layer call overhead: one cluster dispatch, ``GAP8_FORK_CYCLES`` (isa_cost §4.5 [RECALL]); the kernel
  calls' own fork and barriers are in the kernel cost.
"""
from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

from jaxpulp._registry import lookup
from jaxpulp.cost.targets import GAP8_BARRIER_CYCLES, GAP8_FORK_CYCLES, TARGETS as COST_TARGETS, Target as CostTarget
from jaxpulp.errors import JaxpulpError

SCHEDULES = ("blocking", "double")
TILERS = ("latency", "dory")


@dataclasses.dataclass(frozen=True)
class DeployTarget:
    """A PULP chip as a deployment tool uses it (see the module docstring for the source of every default).

    kernel_target: cost-model target of the kernels (``jaxpulp.cost.TARGETS`` name); num_cores: cluster cores;
    freq_hz: cluster clock (Hz). l1_bytes / l1_budget: L1 size and what the tiler may use (bytes);
    l2_bytes / l2_budget: L2 size and the activations + weights budget before L3 tiling (bytes);
    double_buffering: 1 or 2 L1 buffers per tiled tensor; schedule: "blocking" (every DMA waited before the
    kernel) or "double" (next tile's transfers overlap the current kernel).
    dma_bytes_per_cycle: L2 <-> L1 bandwidth (B/cycle); dma_latency_cycles: first byte of a command (cycles);
    dma_cmd_cycles: core cycles to program, wait and free one command; dma_outstanding / dma_row_latency_cycles:
    L2-side reads in flight and the round trip of one (cycles): every row of a 2-D command is one L2 read, so rows
    move at most dma_outstanding / dma_row_latency_cycles per cycle (0: no such limit); blocking_barrier_cycles:
    barrier after each push of a 3-D / HWC->CHW copy
    (0: none). l3_bytes_per_cycle: L3 -> L2 (B/cycle); l3_burst_bytes / l3_burst_cycles: micro-DMA burst size and
    its fixed cost; count_weight_preload: include the synchronous L3 -> L2 weight copy of non-L3-tiled layers.
    l3_overlap: L3 tile reads overlap the layer (else they add to it); l3_prefetch_next: the first l2_budget / 2
    bytes of a layer's L3-tiled weights are read during the previous layer unless that one streams from L3
    itself (2020 DORY).
    layer_overhead_cycles: per-layer call overhead (cycles). tiler: "dory" (DORY's heuristic objective) or
    "latency" (ours: of the maximal feasible tiles, the one with the lowest modelled latency).
    """

    name: str
    kernel_target: str = "gap8-1v0"
    num_cores: int = 8
    freq_hz: float = 100e6
    l1_bytes: int = 64_000
    l1_budget: int = 36_700
    l2_bytes: int = 512_000
    l2_budget: int = 380_000
    double_buffering: int = 1
    schedule: str = "blocking"
    dma_bytes_per_cycle: float = 8.0
    dma_latency_cycles: int = 10
    dma_cmd_cycles: int = 10
    blocking_barrier_cycles: int = GAP8_BARRIER_CYCLES
    dma_outstanding: int = 8
    dma_row_latency_cycles: int = 0
    l3_bytes_per_cycle: float = 1.0
    l3_burst_bytes: int = 512
    l3_burst_cycles: int = 0
    count_weight_preload: bool = False
    l3_overlap: bool = True
    l3_prefetch_next: bool = False
    layer_overhead_cycles: int = GAP8_FORK_CYCLES
    tiler: str = "latency"
    tiler_candidates: int = 16
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise JaxpulpError(f"name={self.name!r}: expected a non-empty str")
        if not isinstance(self.description, str):
            raise JaxpulpError(f"description={self.description!r}: expected a str")
        if self.schedule not in SCHEDULES:
            raise JaxpulpError(f"schedule={self.schedule!r}: expected one of {SCHEDULES}")
        if self.tiler not in TILERS:
            raise JaxpulpError(f"tiler={self.tiler!r}: expected one of {TILERS}")
        if isinstance(self.double_buffering, bool) or self.double_buffering not in (1, 2):
            raise JaxpulpError(f"double_buffering={self.double_buffering!r}: expected 1 or 2")
        for n in ("count_weight_preload", "l3_overlap", "l3_prefetch_next"):
            v = getattr(self, n)
            if not isinstance(v, bool):
                raise JaxpulpError(f"{n}={v!r}: expected True or False")
        for n in ("dma_bytes_per_cycle", "l3_bytes_per_cycle", "freq_hz"):
            v = getattr(self, n)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 < v < math.inf):
                raise JaxpulpError(f"{n}={v!r}: expected a positive finite number")
        for n in ("l1_bytes", "l1_budget", "l2_bytes", "l2_budget", "l3_burst_bytes"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise JaxpulpError(f"{n}={v!r}: expected a positive int number of bytes")
        for n, want in (("dma_outstanding", "an int >= 1 (L2 reads in flight)"),
                        ("tiler_candidates", "an int >= 1 (tiles the latency tiler tries per layer)")):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise JaxpulpError(f"{n}={v!r}: expected {want}")
        for n in ("dma_latency_cycles", "dma_row_latency_cycles", "dma_cmd_cycles", "blocking_barrier_cycles",
                  "l3_burst_cycles",
                  "layer_overhead_cycles"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
                raise JaxpulpError(f"{n}={v!r}: expected a non-negative finite number of cycles")
        if self.l1_budget > self.l1_bytes or self.l2_budget > self.l2_bytes:
            raise JaxpulpError(f"{self.name}: l1_budget / l2_budget must not exceed l1_bytes / l2_bytes")
        kt = lookup(COST_TARGETS, self.kernel_target, CostTarget, "kernel_target")
        n = self.num_cores
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= kt.num_cores:
            raise JaxpulpError(f"num_cores={n!r}: expected an int in [1, {kt.num_cores}] (the cores of kernel_target "
                               f"{kt.name!r})")

    def replace(self, **kw) -> DeployTarget:
        return dataclasses.replace(self, **kw)


# One 2-D row = one L2 read through the cluster -> SoC -> L2 interconnect: 2 + 9 + 8 = 19 cycles of round trip
# (dma §2.9, GVSoC's model; the board's is not documented, assumed the same) with 8 reads in flight (dma §2.6), so
# byte-granular rows (the depthwise HWC->CHW copy, dma §5.11) move at 8/19 rows per cycle, not 1.
L2_ROW_ROUND_TRIP_CYCLES = 19
L2_READS_IN_FLIGHT = 8

# Fitted on the GAP-8 board rows (benchmarks/fidelity.py, leave-one-out errors in docs/deploy.md) [FIT]:
# the sustained L3 -> L2 rate of the board's HyperRAM (inside the 3.3 B/cycle HyperBus bound, dma §3.13).
BOARD_L3_BYTES_PER_CYCLE = 0.7

GAP8_BOARD = DeployTarget(
    name="gap8-board", l1_budget=36_700, l2_budget=400_000, double_buffering=1, schedule="blocking",
    dma_bytes_per_cycle=8.0, dma_latency_cycles=10, dma_row_latency_cycles=L2_ROW_ROUND_TRIP_CYCLES,
    dma_outstanding=L2_READS_IN_FLIGHT, l3_overlap=False, l3_prefetch_next=True,
    l3_bytes_per_cycle=BOARD_L3_BYTES_PER_CYCLE,
    description="GAP-8 board as DORY's GAP8 target deploys it: 100 MHz, one L1 buffer per tensor, blocking DMA")
GAP8_GVSOC = DeployTarget(
    name="gap8-gvsoc", kernel_target="gap8-1v0", l1_budget=35_000, double_buffering=2, schedule="double",
    dma_bytes_per_cycle=4.0, dma_latency_cycles=19, dma_row_latency_cycles=L2_ROW_ROUND_TRIP_CYCLES,
    dma_outstanding=L2_READS_IN_FLIGHT, blocking_barrier_cycles=0, l3_bytes_per_cycle=1.0,
    description="GAP-8 on GVSoC as DORY's PULP_gvsoc target deploys it: double-buffered, DMA overlapped")

TARGETS = MappingProxyType({t.name: t for t in (GAP8_BOARD, GAP8_GVSOC)})


def get_target(target: str | DeployTarget) -> DeployTarget:
    """The registered deployment target called ``target`` (a ``DeployTarget`` is returned unchanged)."""
    return lookup(TARGETS, target, DeployTarget, "target")
