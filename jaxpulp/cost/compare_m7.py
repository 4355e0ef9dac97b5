"""The CF'20 headline, checked permutation by permutation: PULP-NN mixed on the 8-core GAP-8 cluster against
CMix-NN / CMSIS-NN on an STM32H7 (Cortex-M7), on the PULP-NN benchmark layer.

Bruschi et al. (CF'20, arXiv 2007.07759, abstract): 27 kernels, "21x to 25x faster than an STM32H7 ... with
15x to 21x better energy efficiency" [ABS]. The paper body (layer, frequencies, power figures) could not be
read; the set-up used here is stated in docs/m7-comparison.md with the sensitivity of each ratio to it.

Speed-up = M7 cycles / GAP-8 cycles (the abstract's "faster" read as cycles: at 175 vs 400 MHz the wall-time
ratio is 2.3x smaller, and the 8-bit rows could not then reach 21x). Energy ratio = M7 energy / GAP-8 energy
of the same layer. Every row outside a published range carries a named cause (``Cause``) with its source.
"""
from __future__ import annotations

import dataclasses
import itertools
import json

from jaxpulp._io import write_text
from jaxpulp.cost.model import kernel_cost, resolve_target
from jaxpulp.cost.report import BITS, _describe, _layer_config
from jaxpulp.errors import JaxpulpError

PAPER_SPEEDUP = (21.0, 25.0)  # CF'20 abstract [ABS paperswithcode / cris.unibo.it 11585/761813]
PAPER_ENERGY = (15.0, 21.0)  # same source
PULPNN_CYCLES, PULPNN_ENERGY = 19.6, 39.5  # PULP-NN abstract vs CMSIS-NN on STM32H7 [ABS PMC6939244]


@dataclasses.dataclass(frozen=True)
class Cause:
    """A named, sourced reason for a ratio outside the published range."""

    key: str
    text: str
    source: str


CAUSES = {
    "subbyte-unpack": Cause(
        "subbyte-unpack",
        "sub-byte weights: GAP-8 (XpulpV2, no sub-byte SIMD) unpacks one weight per p.extract plus half a pack "
        "and feeds each unpacked word to only 2 sdotp, 2.3-2.6x its 8-bit cost per MAC; CMix-NN on the M7 "
        "unpacks two weights per AND-ROR + UXTB16 into the q15 SMLAD it uses for 8-bit weights anyway, only "
        "1.1x its 8-bit cost. The ratio therefore halves for 4- and 2-bit weights.",
        "pulp-nn-mixed XpulpV2 pulp_nn_matmul_u8_u8_i4.c (isa_cost.md §4.2) [CODE]; EEESlab/CMix-NN "
        "inc/arm_cmixnn_support.h read_and_pad_reordered_u4/u2 [CODE]; the CF'20-era kernels unpack the "
        "same way: pulp-platform/pulp-nn @3c07638 (2020-08-05) mixed/32bit/src/SupportFunctions/pulp_nn_utils.c "
        "pulp_nn_i4_to_i8 = 8 bextract + 2 pack per word, through a memory array [CODE]"),
    "power-figures": Cause(
        "power-figures",
        "power figures: this model prices an H7 cycle from PULP-NN's own ratios (39.5x energy at 19.6x cycles "
        "-> 2.0 GAP-8 cycles at 1.0 V = 976 pJ); CF'20's 15-21x at 21-25x imply an H7 cycle at only 0.6-1.0 "
        "GAP-8 cycles. The two papers (same group, same chips) used power figures 2-3x apart.",
        "PULP-NN abstract [ABS PMC6939244]; CF'20 abstract [ABS]; targets.py M7_PJ_PER_CYCLE"),
    "m7-anchor": Cause(
        "m7-anchor",
        "8-bit M7 throughput: the M7 memory factor is calibrated to 0.6 MAC/cycle on the 8-bit layer from a "
        "recalled CMSIS-NN end-to-end figure; the H7 speed-up that would put every 8-bit-weight row inside "
        "21-25x is printed by `jaxpulp compare-m7` (about 6%, well inside that figure's uncertainty).",
        "isa_cost.md §4.6 [DERIVED from RECALL]; targets.py M7_MEMORY_FACTOR"),
}


@dataclasses.dataclass(frozen=True)
class M7Row:
    """One permutation: cycles, time (us), energy (uJ) on both machines, the ratios and the causes of any
    ratio outside the paper's range (keys of ``CAUSES``)."""

    in_bits: int
    out_bits: int
    w_bits: int
    gap8_kernel: str
    m7_kernel: str
    macs: int
    gap8_cycles: int
    m7_cycles: int
    gap8_us: float
    m7_us: float
    gap8_uj: float
    m7_uj: float
    speedup: float
    speedup_time: float
    energy_ratio: float
    speedup_causes: tuple
    energy_causes: tuple

    @property
    def speedup_in_range(self) -> bool:
        return PAPER_SPEEDUP[0] <= round(self.speedup, 1) <= PAPER_SPEEDUP[1]

    @property
    def energy_in_range(self) -> bool:
        return PAPER_ENERGY[0] <= round(self.energy_ratio, 1) <= PAPER_ENERGY[1]


@dataclasses.dataclass(frozen=True)
class M7Comparison:
    """The 27 rows plus the set-up they were computed with."""

    layer: str
    gap8_target: str
    m7_target: str
    gap8_freq_mhz: float
    m7_freq_mhz: float
    m7_pj_per_cycle: float
    gap8_pj_per_cycle: float
    rows: tuple

    def row(self, in_bits: int, out_bits: int, w_bits: int) -> M7Row:
        for r in self.rows:
            if (r.in_bits, r.out_bits, r.w_bits) == (in_bits, out_bits, w_bits):
                return r
        raise KeyError((in_bits, out_bits, w_bits))

    def ranges(self) -> dict:
        """(min, max) of speed-up and energy ratio: all rows, 8-bit weights, 4/2-bit weights."""
        out = {}
        for key in ("speedup", "energy_ratio", "speedup_time"):
            grp = {"all": self.rows, "w8": [r for r in self.rows if r.w_bits == 8],
                   "w4_w2": [r for r in self.rows if r.w_bits != 8]}
            out[key] = {k: (min(getattr(r, key) for r in v), max(getattr(r, key) for r in v))
                        for k, v in grp.items()}
        return out

    def as_text(self) -> str:
        lines = [f"GAP-8 ({self.gap8_target}, {self.gap8_freq_mhz:g} MHz) vs STM32H7 ({self.m7_target}, "
                 f"{self.m7_freq_mhz:g} MHz, {self.m7_pj_per_cycle:.0f} pJ/cycle) - {self.layer}",
                 f"paper (CF'20): {PAPER_SPEEDUP[0]:g}-{PAPER_SPEEDUP[1]:g}x faster, {PAPER_ENERGY[0]:g}-"
                 f"{PAPER_ENERGY[1]:g}x more energy-efficient; * = outside, [cause]",
                 f"{'in':>2} {'out':>3} {'w':>2} | {'GAP-8 cyc':>9} {'M7 cyc':>9} | {'GAP-8 us':>8} {'M7 us':>8} | "
                 f"{'GAP-8 uJ':>8} {'M7 uJ':>8} | {'x speed':>8} {'x time':>6} {'x energy':>9}  causes"]
        for r in self.rows:
            sp = f"{r.speedup:7.1f}{' ' if r.speedup_in_range else '*'}"
            en = f"{r.energy_ratio:8.1f}{' ' if r.energy_in_range else '*'}"
            causes = ",".join(dict.fromkeys(r.speedup_causes + r.energy_causes))
            lines.append(f"{r.in_bits:>2} {r.out_bits:>3} {r.w_bits:>2} | {r.gap8_cycles:9d} {r.m7_cycles:9d} | "
                         f"{r.gap8_us:8.1f} {r.m7_us:8.1f} | {r.gap8_uj:8.2f} {r.m7_uj:8.2f} | {sp} "
                         f"{r.speedup_time:6.1f} {en}  {causes}")
        rg = self.ranges()
        n_sp = sum(r.speedup_in_range for r in self.rows)
        n_en = sum(r.energy_in_range for r in self.rows)
        lines.append(f"speed-up {rg['speedup']['all'][0]:.1f}-{rg['speedup']['all'][1]:.1f}x (8-bit weights "
                     f"{rg['speedup']['w8'][0]:.1f}-{rg['speedup']['w8'][1]:.1f}x, 4/2-bit "
                     f"{rg['speedup']['w4_w2'][0]:.1f}-{rg['speedup']['w4_w2'][1]:.1f}x): {n_sp}/27 in range")
        lines.append(f"energy {rg['energy_ratio']['all'][0]:.1f}-{rg['energy_ratio']['all'][1]:.1f}x (8-bit "
                     f"weights {rg['energy_ratio']['w8'][0]:.1f}-{rg['energy_ratio']['w8'][1]:.1f}x, 4/2-bit "
                     f"{rg['energy_ratio']['w4_w2'][0]:.1f}-{rg['energy_ratio']['w4_w2'][1]:.1f}x): "
                     f"{n_en}/27 in range")
        used = dict.fromkeys(k for r in self.rows for k in r.speedup_causes + r.energy_causes)
        for k in used:
            lines.append(f"[{k}] {CAUSES[k].text} Source: {CAUSES[k].source}.")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ranges"] = self.ranges()
        d["paper"] = {"speedup": PAPER_SPEEDUP, "energy": PAPER_ENERGY}
        d["causes"] = {k: dataclasses.asdict(c) for k, c in CAUSES.items()}
        return d


def _pj_per_cycle_busy(target) -> float:
    """Energy of one cycle with every core busy (pJ)."""
    return target.pj_base_per_cycle + target.num_cores * target.pj_per_core_cycle


# Plausibility bounds of the M7 figures a user may replace (a value outside is almost surely a unit slip: an H7
# clock given in GHz or Hz, a power in W or uW), generous for any Cortex-M7 part: the fastest run at about 1 GHz
# (i.MX RT1170); one drawing 10 W, or below 1 mW while computing, would be a different class of device.
M7_FREQ_MHZ = (1.0, 2000.0)
M7_POWER_MW = (1.0, 10000.0)


def compare_m7(layer=None, *, gap8="gap8", m7="cortex-m7", m7_power_mw: float | None = None,
               m7_freq_mhz: float | None = None, family: str = "conv", signed: bool = False) -> M7Comparison:
    """The 27-permutation comparison of ``layer`` (None: the PULP-NN benchmark layer).

    gap8 / m7: target names or ``Target``s. m7_power_mw: replaces the M7's energy per cycle by this average
    power (mW) at its clock; m7_freq_mhz: replaces the M7 clock (MHz; time ratios and, with m7_power_mw,
    energy per cycle).
    """
    tg, tm = resolve_target(gap8), resolve_target(m7)
    if tm.isa != "armv7e-m":
        raise JaxpulpError(f"m7={tm.name!r}: expected an armv7e-m target such as 'cortex-m7'")
    if tg.isa != "xpulpv2":
        raise JaxpulpError(f"gap8={tg.name!r}: expected an xpulpv2 target such as 'gap8' or 'gap8-1v0'")
    if m7_freq_mhz is not None:
        if not M7_FREQ_MHZ[0] <= m7_freq_mhz <= M7_FREQ_MHZ[1]:
            raise JaxpulpError(f"m7_freq_mhz={m7_freq_mhz!r}: expected a clock in MHz, {M7_FREQ_MHZ[0]:g} to "
                               f"{M7_FREQ_MHZ[1]:g} (STM32H7 parts run at 400-550 MHz; a value outside is probably "
                               "in GHz, kHz or Hz)")
        tm = dataclasses.replace(tm, freq_hz=m7_freq_mhz * 1e6)
    if m7_power_mw is not None:
        if not M7_POWER_MW[0] <= m7_power_mw <= M7_POWER_MW[1]:
            raise JaxpulpError(f"m7_power_mw={m7_power_mw!r}: expected an average power in mW, {M7_POWER_MW[0]:g} to "
                               f"{M7_POWER_MW[1]:g} (an STM32H7 running draws 150-400 mW; a value outside is "
                               "probably in W or uW)")
        tm = dataclasses.replace(tm, pj_base_per_cycle=m7_power_mw * 1e-3 / tm.freq_hz * 1e12, pj_per_core_cycle=0.0)
    rows, desc = [], ""
    for bi, bo, bw in itertools.product(BITS, BITS, BITS):
        cfg = _layer_config(layer, family, bi, bo, bw, signed)
        desc = desc or _describe(cfg)
        a, b = kernel_cost(cfg, tg), kernel_cost(cfg, tm)
        sp = b.cycles / a.cycles
        en = b.energy_pj / a.energy_pj
        sc, ec = [], []
        if not PAPER_SPEEDUP[0] <= round(sp, 1) <= PAPER_SPEEDUP[1]:
            sc.append("subbyte-unpack" if bw != 8 else "m7-anchor")
        if not PAPER_ENERGY[0] <= round(en, 1) <= PAPER_ENERGY[1]:
            ec.append("power-figures")
            if bw != 8:
                ec.append("subbyte-unpack")
        rows.append(M7Row(bi, bo, bw, a.kernel, b.kernel, a.macs, a.cycles, b.cycles, a.seconds * 1e6,
                          b.seconds * 1e6, a.energy_pj * 1e-6, b.energy_pj * 1e-6, sp, b.seconds / a.seconds, en,
                          tuple(sc), tuple(ec)))
    return M7Comparison(desc, tg.name, tm.name, tg.freq_hz / 1e6, tm.freq_hz / 1e6, tm.pj_base_per_cycle,
                        _pj_per_cycle_busy(tg), tuple(rows))


def energy_sensitivity(comp: M7Comparison, m7_power_mw=(150, 200, 234, 300, 390), w_bits: int = 8) -> list:
    """Energy-ratio range of the ``w_bits`` rows when the M7 draws each power in ``m7_power_mw`` (mW at the
    comparison's M7 clock): [(mW, pJ/cycle, lo, hi)]. Energy scales linearly with the M7 power."""
    out = []
    rows = [r for r in comp.rows if r.w_bits == w_bits]
    for p in m7_power_mw:
        pj = p * 1e-3 / (comp.m7_freq_mhz * 1e6) * 1e12
        k = pj / comp.m7_pj_per_cycle
        vals = [r.energy_ratio * k for r in rows]
        out.append((p, pj, min(vals), max(vals)))
    return out


def heatmap_png(comp: M7Comparison, path: str) -> str:
    """Speed-up and energy ratio of the 27 permutations as a 2 x 3 heat map (rows: ratio; panels: output
    bits; axes: input x weight bits); cells outside the paper's range are starred. Needs matplotlib (optional
    extra ``plot``); raises ``JaxpulpError`` naming the extra when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise JaxpulpError("the heat map needs matplotlib, an optional extra: pip install 'jaxpulp[plot]'") from e
    import numpy as np

    fig, axes = plt.subplots(2, 3, figsize=(11, 7), constrained_layout=True)
    for row_axes, key, (lo, hi), label in ((axes[0], "speedup", PAPER_SPEEDUP, "x fewer cycles"),
                                           (axes[1], "energy_ratio", PAPER_ENERGY, "x less energy")):
        vmax = max(getattr(r, key) for r in comp.rows)
        im = None
        for ax, bo in zip(row_axes, BITS, strict=True):
            grid = np.array([[getattr(comp.row(bi, bo, bw), key) for bw in BITS] for bi in BITS])
            im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=vmax)
            ax.set_xticks(range(3), [f"w{b}" for b in BITS])
            ax.set_yticks(range(3), [f"in {b}" for b in BITS])
            ax.set_title(f"output {bo} bit - paper {lo:g}-{hi:g}x", fontsize=9)
            for i in range(3):
                for j in range(3):
                    v = grid[i, j]
                    star = "" if lo <= round(v, 1) <= hi else "*"
                    ax.text(j, i, f"{v:.1f}{star}", ha="center", va="center",
                            color="white" if v < 0.6 * vmax else "black", fontsize=10)
        assert im is not None  # three panels drawn
        fig.colorbar(im, ax=list(row_axes), label=label)
    fig.suptitle(f"GAP-8 ({comp.gap8_target}) vs STM32H7 ({comp.m7_target}): {comp.layer}\n"
                 "* = outside the CF'20 range", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cmd(args) -> int:
    import sys

    comp = compare_m7(gap8=args.gap8_target, m7_power_mw=args.m7_power_mw, m7_freq_mhz=args.m7_freq_mhz)
    print(comp.as_text())
    print("\nenergy ratio of the 8-bit-weight rows vs the H7's power "
          f"(at {comp.m7_freq_mhz:g} MHz; this run: {comp.m7_pj_per_cycle:.0f} pJ/cycle):")
    for p, pj, lo, hi in energy_sensitivity(comp):
        print(f"  {p:5.0f} mW = {pj:5.0f} pJ/cycle -> {lo:5.1f}-{hi:5.1f}x")
    ranges = comp.ranges()
    w8 = ranges["speedup"]["w8"]
    print(f"8-bit-weight speed-ups {w8[0]:.1f}-{w8[1]:.1f}x: an H7 {w8[1] / PAPER_SPEEDUP[1]:.3f}x faster "
          f"puts them all inside {PAPER_SPEEDUP[0]:g}-{PAPER_SPEEDUP[1]:g}x (lowest then "
          f"{w8[0] * PAPER_SPEEDUP[1] / w8[1]:.1f}x).")
    sub, e_sub = ranges["speedup"]["w4_w2"], ranges["energy_ratio"]["w4_w2"]
    inside = PAPER_ENERGY[0] <= round(e_sub[0], 1) and round(e_sub[1], 1) <= PAPER_ENERGY[1]
    print(f"4/2-bit-weight speed-ups {sub[0]:.1f}-{sub[1]:.1f}x: reaching {PAPER_SPEEDUP[0]:g}x needs the H7 "
          f"{PAPER_SPEEDUP[0] / sub[0]:.2f}x slower or GAP-8 that much faster on these rows [subbyte-unpack]; "
          f"their energy ratios ({e_sub[0]:.1f}-{e_sub[1]:.1f}x) "
          + (f"land inside {PAPER_ENERGY[0]:g}-{PAPER_ENERGY[1]:g}x only because this too-low speed-up meets a "
             "too-high H7 power figure [power-figures]." if inside else
             f"fall outside {PAPER_ENERGY[0]:g}-{PAPER_ENERGY[1]:g}x in this run."))
    if args.json:
        try:
            write_text(args.json, json.dumps(comp.as_dict(), indent=1))
        except OSError as e:
            raise JaxpulpError(f"--json {args.json!r}: cannot write ({e.strerror})") from None
        print(f"json: {args.json}")
    if args.png:
        try:
            print("heat map: " + heatmap_png(comp, args.png))
        except JaxpulpError as e:
            print(f"heat map skipped: {e}", file=sys.stderr)
        except OSError as e:
            raise JaxpulpError(f"--png {args.png!r}: cannot write ({e.strerror})") from None
    return 0


def add_subcommand(sub) -> None:
    """Register ``jaxpulp compare-m7`` on an argparse sub-parser set."""
    p = sub.add_parser("compare-m7", help="the 27 permutations on GAP-8 vs an STM32H7 (CF'20's 21-25x / 15-21x)")
    p.add_argument("--png", default=None, help="write the speed-up / energy heat map here (needs matplotlib)")
    p.add_argument("--json", default=None, help="write the table as JSON here")
    p.add_argument("--gap8-target", default="gap8", help="gap8 (175 MHz, 1.2 V; default) or gap8-1v0 (100 MHz, 1.0 V)")
    p.add_argument("--m7-power-mw", type=float, default=None,
                   help="H7 average power in mW (default: the cortex-m7 target's 976 pJ/cycle)")
    p.add_argument("--m7-freq-mhz", type=float, default=None, help="H7 clock in MHz (default 400; rev V: 480)")
    p.set_defaults(fn=_cmd, outputs=("png", "json"), output_suffixes={"json": (".json",)})
