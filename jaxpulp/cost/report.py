"""Reports over the 27 (input, output, weight) precision permutations of a layer: MACs/cycle tables, the
comparison of two targets (e.g. GAP-8 vs Cortex-M7), and a heat map (matplotlib, optional extra).

The default layer is the PULP-NN benchmark layer (isa_cost.md §3b: 16x16x32 input, 64 output channels,
3x3 kernel, stride 1, padding 1) with shift-and-clip requantisation, as in the PULP-NN paper.
"""
from __future__ import annotations

import dataclasses
import itertools

from jaxpulp.cost.model import kernel_cost, resolve_target
from jaxpulp.errors import JaxpulpError

BITS = (8, 4, 2)
BENCHMARK_LAYER = dict(H=16, W=16, Ci=32, Co=64, Kh=3, Kw=3, stride=(1, 1), pad=(1, 1, 1, 1), relu=0, bn=0)


# The families a dict layer (or the benchmark layer) is tabled as: ``permutation_table(family=...)``.
PERMUTATION_FAMILIES = ("conv", "pointwise", "depthwise")


def _layer_config(layer, family, bi, bo, bw, signed):
    from jaxpulp.kernels import config as kc

    s_in = "i" if signed else "u"
    s_out = "i" if signed else "u"
    types = dict(in_type=f"{s_in}{bi}", out_type=f"{s_out}{bo}", w_type=f"i{bw}")
    if layer is None:
        layer = BENCHMARK_LAYER
    if not isinstance(layer, dict):  # a config: keep its shapes and flags, change the precisions
        if not isinstance(layer, (kc.ConvConfig, kc.LinearConfig)):  # the configs with in / out / weight types
            raise JaxpulpError(f"layer={layer!r:.80}: expected None (the PULP-NN benchmark layer), a dict of "
                               "ConvConfig shape / flag fields, or a ConvConfig / PointwiseConfig / DepthwiseConfig "
                               "/ LinearConfig whose shapes and flags are kept")
        return layer.replace(**types)
    classes = dict(zip(PERMUTATION_FAMILIES, (kc.ConvConfig, kc.PointwiseConfig, kc.DepthwiseConfig), strict=True))
    cls = classes.get(family)
    if cls is None:
        raise JaxpulpError(f"family={family!r}: expected 'conv', 'pointwise' or 'depthwise' (or pass a config)")
    shape = dict(layer)
    fields = [f for f in cls.__dataclass_fields__ if f not in types]
    unknown = [k for k in shape if k not in fields]
    if unknown:
        raise JaxpulpError(f"layer={layer!r:.120}: {unknown} are not {cls.__name__} fields; expected some of "
                           f"{fields} (the precisions are the table's)")
    if family == "pointwise":
        for k in ("Kh", "Kw", "stride", "pad"):
            shape.pop(k, None)
    if family == "depthwise":
        shape["Ci"] = shape["Co"] = shape.get("Ci", shape.get("Co"))
    try:
        return cls(**types, **shape)
    except TypeError as e:  # a missing field (H, W, Ci, Co)
        raise JaxpulpError(f"layer={layer!r:.120}: {e}; expected a dict of {cls.__name__} fields with at least H, W, "
                           "Ci and Co") from None


@dataclasses.dataclass(frozen=True)
class PermutationRow:
    """One permutation: bit widths, the kernel name, MACs, cycles, MACs/cycle, energy (pJ) on the target."""

    in_bits: int
    out_bits: int
    w_bits: int
    kernel: str
    macs: int
    cycles: int
    macs_per_cycle: float
    energy_pj: float


@dataclasses.dataclass(frozen=True)
class PermutationTable:
    """The 27 rows of one layer on one target (``rows`` ordered input, output, weight bits = 8, 4, 2)."""

    target: str
    layer: str
    rows: tuple

    def value(self, in_bits: int, out_bits: int, w_bits: int) -> float:
        """MACs/cycle of one permutation."""
        for r in self.rows:
            if (r.in_bits, r.out_bits, r.w_bits) == (in_bits, out_bits, w_bits):
                return r.macs_per_cycle
        raise KeyError((in_bits, out_bits, w_bits))

    def as_dict(self) -> dict:
        return {"target": self.target, "layer": self.layer, "rows": [dataclasses.asdict(r) for r in self.rows]}

    def as_text(self) -> str:
        """A compact text table: one line per (input, output) pair, one column per weight width."""
        lines = [f"MACs/cycle on {self.target} - {self.layer}",
                 f"{'in':>3} {'out':>4} | {'w8':>7} {'w4':>7} {'w2':>7}"]
        for bi, bo in itertools.product(BITS, BITS):
            vals = " ".join(f"{self.value(bi, bo, bw):7.2f}" for bw in BITS)
            lines.append(f"{bi:>3} {bo:>4} | {vals}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()


def _describe(cfg) -> str:
    k = f"{cfg.Kh}x{cfg.Kw}" if hasattr(cfg, "Kh") else ""
    mode = "BN" if (cfg.bn and cfg.relu) else ("mult" if cfg.relu == 1 else "shift-clip")
    return f"{cfg.family} {cfg.H}x{cfg.W}x{cfg.Ci} -> {cfg.Ho}x{cfg.Wo}x{cfg.Co}, {k}, {mode} requant"


def permutation_table(cluster_or_target=None, layer=None, *, family: str = "conv", signed: bool = False,
                      **options) -> PermutationTable:
    """MACs/cycle of the 27 (input, output, weight) precision permutations of ``layer`` on a target.

    layer: None (the PULP-NN benchmark layer), a dict of ``ConvConfig`` shape/flag fields, or a config whose
    shapes and flags are kept. family: "conv", "pointwise" or "depthwise" (dict layers). signed: signed
    activations. options: passed to ``kernel_cost`` (``hwloops``, ``outer``).
    """
    target = resolve_target(cluster_or_target)
    rows = []
    desc = ""
    for bi, bo, bw in itertools.product(BITS, BITS, BITS):
        cfg = _layer_config(layer, family, bi, bo, bw, signed)
        desc = desc or _describe(cfg)
        cc = kernel_cost(cfg, target, **options)
        rows.append(PermutationRow(bi, bo, bw, cc.kernel, cc.macs, cc.cycles, cc.macs_per_cycle, cc.energy_pj))
    return PermutationTable(target.name, desc, tuple(rows))


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    in_bits: int
    out_bits: int
    w_bits: int
    speedup_cycles: float  # cycles(b) / cycles(a)
    speedup_time: float  # seconds(b) / seconds(a)
    energy_ratio: float  # energy(b) / energy(a)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Target ``a`` against target ``b`` over the 27 permutations (ratios > 1: ``a`` is better)."""

    a: PermutationTable
    b: PermutationTable
    rows: tuple

    def ranges(self) -> dict:
        """(min, max) of each ratio over the 27 permutations, and over the 8-bit-weight ones."""
        out = {}
        for key in ("speedup_cycles", "speedup_time", "energy_ratio"):
            vals = [getattr(r, key) for r in self.rows]
            w8 = [getattr(r, key) for r in self.rows if r.w_bits == 8]
            sub = [getattr(r, key) for r in self.rows if r.w_bits != 8]
            out[key] = {"all": (min(vals), max(vals)), "w8": (min(w8), max(w8)), "w4_w2": (min(sub), max(sub))}
        return out

    def as_text(self) -> str:
        lines = [f"{self.a.target} vs {self.b.target} - {self.a.layer}",
                 f"{'in':>3} {'out':>4} {'w':>3} | {'MAC/cyc a':>9} {'MAC/cyc b':>9} | {'x cycles':>8} "
                 f"{'x time':>7} {'x energy':>8}"]
        for r, ra, rb in zip(self.rows, self.a.rows, self.b.rows, strict=True):
            lines.append(f"{r.in_bits:>3} {r.out_bits:>4} {r.w_bits:>3} | {ra.macs_per_cycle:9.2f} "
                         f"{rb.macs_per_cycle:9.3f} | {r.speedup_cycles:8.1f} {r.speedup_time:7.1f} "
                         f"{r.energy_ratio:8.1f}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"a": self.a.target, "b": self.b.target, "layer": self.a.layer,
                "rows": [dataclasses.asdict(r) for r in self.rows], "ranges": self.ranges()}


def compare_targets(a="gap8", b="cortex-m7", layer=None, **kw) -> Comparison:
    """Speed-up (cycles and wall time) and energy-efficiency ratio of target ``a`` over ``b`` for the 27
    permutations of ``layer`` (same arguments as ``permutation_table``)."""
    ta, tb = resolve_target(a), resolve_target(b)
    pa = permutation_table(ta, layer, **kw)
    pb = permutation_table(tb, layer, **{k: v for k, v in kw.items() if k in ("family", "signed")})
    rows = []
    for ra, rb in zip(pa.rows, pb.rows, strict=True):
        sa, sb = ra.cycles / ta.freq_hz, rb.cycles / tb.freq_hz
        rows.append(ComparisonRow(ra.in_bits, ra.out_bits, ra.w_bits, rb.cycles / ra.cycles, sb / sa,
                                  rb.energy_pj / ra.energy_pj))
    return Comparison(pa, pb, tuple(rows))


def _check_png_path(path, name: str = "path") -> None:
    """Raise unless ``path`` (a str or path-like) can be written (checked before any work)."""
    import os

    from jaxpulp._io import check_output_path

    check_output_path(os.fspath(path) if isinstance(path, os.PathLike) else path, f"{name}=")


def heatmap_png(table: PermutationTable, path: str, *, title: str | None = None) -> str:
    """Write ``table`` as a heat map PNG (3 panels, one per output width; input x weight bits). Needs the
    optional matplotlib extra (``pip install 'jaxpulp[plot]'``). Returns ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise JaxpulpError("heatmap_png needs matplotlib, an optional extra: pip install 'jaxpulp[plot]' "
                           "(or pip install matplotlib)") from e
    import numpy as np

    _check_png_path(path)
    if not isinstance(table, PermutationTable):
        raise JaxpulpError(f"table={table!r:.80}: expected a PermutationTable (permutation_table(...))")
    vmax = max(r.macs_per_cycle for r in table.rows)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), constrained_layout=True)
    im = None
    for ax, bo in zip(axes, BITS, strict=True):
        grid = np.array([[table.value(bi, bo, bw) for bw in BITS] for bi in BITS])
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=vmax)
        ax.set_xticks(range(3), [f"w{b}" for b in BITS])
        ax.set_yticks(range(3), [f"in {b}" for b in BITS])
        ax.set_title(f"output {bo} bit")
        for i in range(3):
            for j in range(3):
                v = grid[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                        color="white" if v < 0.6 * vmax else "black", fontsize=10)
    assert im is not None  # three panels drawn
    fig.colorbar(im, ax=axes, label="MACs/cycle")
    fig.suptitle(title or f"{table.target}: {table.layer}", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def kernels_cost_report(targets=("gap8", "gap8-1core"), layer=None, *, png: str | None = None, **kw) -> str:
    """Text for ``jaxpulp kernels --cost``: the 27-permutation MACs/cycle table on each target and the
    comparison with the Cortex-M7; with ``png`` (a path ending in .png), the first target's heat map is written
    there and the others' next to it (``<stem>_<target>.png``; needs matplotlib) and the paths are listed."""
    import os

    if isinstance(targets, str) or not isinstance(targets, (tuple, list)) or not targets:
        raise JaxpulpError(f"targets={targets!r:.80}: expected a non-empty sequence of targets, e.g. "
                           "('gap8', 'gap8-1core')")
    if png:
        _check_png_path(png, "png")
    parts = []
    tables = [permutation_table(t, layer, **kw) for t in targets]
    parts += [t.as_text() for t in tables]
    comp = compare_targets(targets[0], "cortex-m7", layer, **kw)
    r = comp.ranges()
    parts.append(f"{comp.a.target} vs {comp.b.target}: {r['speedup_cycles']['all'][0]:.1f}-"
                 f"{r['speedup_cycles']['all'][1]:.1f}x fewer cycles, {r['energy_ratio']['all'][0]:.1f}-"
                 f"{r['energy_ratio']['all'][1]:.1f}x less energy (8-bit weights: "
                 f"{r['speedup_cycles']['w8'][0]:.1f}-{r['speedup_cycles']['w8'][1]:.1f}x cycles; CF'20: 21-25x, "
                 "15-21x; per-row causes: jaxpulp compare-m7)")
    if png:
        stem, ext = os.path.splitext(png)
        for i, t in enumerate(tables):  # the first target at the path asked for, the others next to it
            parts.append("heat map: " + heatmap_png(t, png if i == 0 else f"{stem}_{t.target}{ext or '.png'}"))
    return "\n\n".join(parts)
