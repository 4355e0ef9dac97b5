"""The ``Cost`` value type: instruction counts per class for one core, plus stall cycles and useful MACs.

A ``Cost`` is a frozen, hashable record of non-negative integers. It adds (``a + b``), scales by an integer
(``3 * a``), and knows nothing about timing: a ``Target`` (``jaxpulp.cost.targets``) turns it into cycles and
energy. Instruction classes follow the XpulpV2 ISA as the PULP-NN kernels use it (isa_cost.md §1, §2.1):

=================  ===========================================================================================
field              instructions counted
=================  ===========================================================================================
load               ``lw/lh/lb(u)`` incl. post-increment and register-offset forms (``p.lw rd, 4(rs!)``)
store              ``sw/sh/sb`` incl. post-increment forms
alu                integer ALU, shifts, moves, ``li``, compares, address arithmetic, ``p.fl1``-class bit counts
mul                ``mul``, ``p.mac``, ``p.msu`` (32x32 -> 32, single cycle on CV32E40P)
div                ``div/divu/rem/remu`` (their extra latency is in ``stall_div``)
sdotp              ``pv.sdotusp.b`` / ``pv.sdotsp.b`` (4 MACs each)
extract            ``p.extract`` / ``p.extractu`` (sub-byte unpacking)
insert             ``p.insert`` (sub-byte output packing)
pack               ``pv.packlo.b`` / ``pv.packhi.b`` (a ``pack4`` built-in is 2 of these)
clip               ``p.clip`` / ``p.clipr`` (signed saturation)
clipu              ``p.clipu`` / ``p.clipur`` (unsigned saturation)
simd               lane-wise SIMD ALU: ``pv.max(u).b``, ``pv.avgu.b``, ...
minmax             scalar ``p.max/p.min(u)``
bitcount           ``p.fl1`` (the kernels' ``log2``)
branch_taken       taken conditional branches (3 cycles on CV32E40P)
branch_not_taken   not-taken conditional branches (1 cycle)
jump               ``jal/jalr`` incl. calls and returns (2 cycles)
hwloop             hardware-loop set-up instructions (``lp.setup(i)``, ``lp.count(i)``...)
csr                CSR accesses (``csrr mhartid`` behind ``pi_core_id``)
=================  ===========================================================================================

Events and stalls (cycles, not instructions): ``barrier`` (cluster barriers the core enters; their cycles are a
target property), ``stall_load_use`` (1 cycle when an instruction uses the result of the load right before it),
``stall_misaligned`` (extra cycle of a word access that crosses a word boundary), ``stall_div`` (extra cycles
of divisions), ``stall_other`` (``jalr`` hazards, misaligned branch targets). ``macs`` counts the useful
multiply-accumulates the core performs (the work, not instructions).
"""
from __future__ import annotations

import dataclasses

from jaxpulp.errors import JaxpulpError

INSTRUCTION_CLASSES = (
    "load", "store", "alu", "mul", "div", "sdotp", "extract", "insert", "pack", "clip", "clipu", "simd",
    "minmax", "bitcount", "branch_taken", "branch_not_taken", "jump", "hwloop", "csr",
)
STALL_CLASSES = ("stall_load_use", "stall_misaligned", "stall_div", "stall_other")
EVENT_CLASSES = ("barrier",)
FIELDS = INSTRUCTION_CLASSES + STALL_CLASSES + EVENT_CLASSES + ("macs",)


@dataclasses.dataclass(frozen=True)
class Cost:
    """Counts for one core (see the module docstring for the classes). All fields are ints >= 0."""

    load: int = 0
    store: int = 0
    alu: int = 0
    mul: int = 0
    div: int = 0
    sdotp: int = 0
    extract: int = 0
    insert: int = 0
    pack: int = 0
    clip: int = 0
    clipu: int = 0
    simd: int = 0
    minmax: int = 0
    bitcount: int = 0
    branch_taken: int = 0
    branch_not_taken: int = 0
    jump: int = 0
    hwloop: int = 0
    csr: int = 0
    stall_load_use: int = 0
    stall_misaligned: int = 0
    stall_div: int = 0
    stall_other: int = 0
    barrier: int = 0
    macs: int = 0

    # --- arithmetic -------------------------------------------------------------------------------------
    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def __radd__(self, other):
        # lets sum([...]) start from 0
        if other == 0:
            return self
        return NotImplemented

    def __mul__(self, k: int) -> Cost:
        if isinstance(k, bool) or not isinstance(k, int):
            return NotImplemented
        if k < 0:
            raise JaxpulpError(f"k={k}: a Cost can only be scaled by an integer >= 0")
        return Cost(*(a * k for a in self._values()))

    __rmul__ = __mul__

    def scale(self, k: int) -> Cost:
        """``k`` repetitions of this cost (k an int >= 0)."""
        return self * k

    def _values(self):
        return tuple(getattr(self, f) for f in FIELDS)

    # --- views --------------------------------------------------------------------------------------------
    @property
    def instructions(self) -> int:
        """Retired instructions (every instruction class; stalls, barriers and MACs excluded)."""
        return sum(getattr(self, f) for f in INSTRUCTION_CLASSES)

    @property
    def stalls(self) -> int:
        """Stall cycles (load-use, misaligned, division, other)."""
        return sum(getattr(self, f) for f in STALL_CLASSES)

    def as_dict(self, nonzero: bool = False) -> dict:
        """Field -> count (only the non-zero ones when ``nonzero``)."""
        d = {f: getattr(self, f) for f in FIELDS}
        return {k: v for k, v in d.items() if v} if nonzero else d

    def builtins(self) -> dict:
        """Counts comparable with the golden vectors' per-core built-in counters (``pack4`` = pack / 2;
        ``sdotp``, ``extract`` and ``clip`` merge the signed and unsigned flavours)."""
        return {
            "sdotp": self.sdotp, "extract": self.extract, "insert": self.insert, "pack4": self.pack // 2,
            "clip": self.clip, "clipu": self.clipu, "simd": self.simd, "minmax": self.minmax,
            "bitcount": self.bitcount, "barrier": self.barrier, "core_id": self.csr,
        }

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.as_dict(nonzero=True).items())
        return f"Cost({inner})"


ZERO = Cost()


def total(costs) -> Cost:
    """Sum of an iterable of ``Cost`` (``ZERO`` when empty)."""
    out = ZERO
    for c in costs:
        out = out + c
    return out
