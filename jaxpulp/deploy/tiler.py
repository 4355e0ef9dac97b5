"""DORY-style L1 tiling of one layer (a ``jaxpulp.kernels.config`` kernel configuration).

Rules taken from DORY's tiler (pulp-platform/dory @be3d6dd ``Hardware_targets/PULP/Common/Tiler/tiler_conv2d.py``,
read for this module; dma §6 summarises it):

* [DORY] a layer whose weights + constants + input + output + im2col fit the L1 budget runs as one tile, without
  the double-buffering factor (dma §6.3);
* [DORY] otherwise: ``db * (input tile + output tile + weight tile + k/lambda tile) + bias + im2col + 40 B <=
  l1_budget`` (dma §6.4), ``db`` = the target's ``double_buffering``;
* [DORY] standard / pointwise convolutions keep every input channel (tile_n_in = Cin); depthwise tiles have
  tile_n_in = tile_n_out; channel tiles are multiples of 8 / min(bits) (or the whole channel count); a depthwise
  layer with H, W <= 32 is not tiled spatially, a larger one only along H (dma §6.5);
* [DORY] im2col: 2 * cores * Kh * Kw * Cin bytes for a convolution; for a depthwise layer
  cores * (Kh * (tile_n_in + pt + pb) + Kh) * G (DORY's own formula, which uses the channel tile where the
  kernel's strip uses the tile height);
* [DORY] objective: the tile bytes, plus bonuses for h_out = 0 mod 8 (one output row per core), n_out = 0 mod 4,
  >= 16 output pixels and large n_out (im2col reuse); for depthwise: n_out > 7, n_out = 0 mod 16, h_out = 0 mod 4
  and large h_out (dma §6.6; the same weights as DORY's heuristic).

Ours (not DORY's): output tiles are whole output rows (full width; DORY may tile W), so an input or output tile
with every channel is one contiguous 1-D transfer; only when one output row of the smallest channel tile does not
fit is the width tiled (halved until it fits); a fully connected layer is tiled over its
output neurons with the whole input vector; pooling and add layers over rows with every channel; the search is an
exhaustive enumeration (DORY uses OR-tools) over channel tiles and output rows; ``pareto_tilings`` lists the
maximal feasible tiles for the latency-driven choice (``DeployTarget.tiler = "latency"``: the tile with the
lowest modelled latency, which can beat DORY's heuristic where it leaves cores idle); a layer that cannot fit even one
output row with the smallest channel tile is returned with ``fits=False`` (never silently).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels.config import out_dim

# kernel families with a tiling rule (``geometry``)
TILED_FAMILIES = ("conv", "pointwise", "depthwise", "linear", "maxpool", "avgpool", "add")

# kernel families whose output channel c reads input channel c only: a tile of output channels needs only the same
# input channels
CHANNEL_TILED = ("depthwise", "maxpool", "avgpool", "add")

@dataclasses.dataclass(frozen=True)
class Tiling:
    """The L1 tiling of one layer. Sizes in elements (rows, channels) and bytes.

    family; whole: the layer runs as one tile; fits: the tiling fits ``l1_budget``; co_t: output channels (or
    neurons) per tile; ci_t: input channels per tile; ho_t: output rows per tile; n_co, n_h: tile counts along
    channels and rows; l1_bytes: L1 the tiling uses (with double buffering); x/y/w/c_bytes: bytes of one full
    input / output / weight / constant (k, lambda, bias) tile; im2col_bytes: scratch.
    """

    family: str
    whole: bool
    fits: bool
    co_t: int
    ci_t: int
    ho_t: int
    n_co: int
    n_h: int
    l1_bytes: int
    x_bytes: int
    y_bytes: int
    w_bytes: int
    c_bytes: int
    im2col_bytes: int
    wo_t: int = 0
    n_w: int = 1

    @property
    def n_tiles(self) -> int:
        return self.n_co * self.n_h * self.n_w

    def shape(self) -> str:
        """Compact tile shape: ``ho x Wo x co`` (``x ci`` when the input channels are tiled too)."""
        if self.family == "linear":
            return f"{self.co_t} neurons"
        w = f" x {self.wo_t}px" if self.n_w > 1 else ""
        return f"{self.ho_t}r{w} x {self.co_t}ch" + (f" (in {self.ci_t}ch)" if self.family == "depthwise" else "")


def _nb(numel: int, bits: int) -> int:
    return -(-numel * bits // 8)


def geometry(cfg) -> dict:
    """Whole-layer geometry of a kernel config in common names (H, W, Ci, Co, Kh, Kw, sh, pad, Ho, Wo, bits)."""
    f = cfg.family
    if f in ("conv", "pointwise", "depthwise"):
        return dict(H=cfg.H, W=cfg.W, Ci=cfg.Ci, Co=cfg.Co, Kh=cfg.Kh, Kw=cfg.Kw, sh=cfg.stride[0], pad=cfg.pad,
                    sw=cfg.stride[1], Ho=cfg.Ho, Wo=cfg.Wo, bi=cfg.in_type.bits, bo=cfg.out_type.bits,
                    bw=cfg.w_type.bits, n_in=1, consts=8 * cfg.Co if cfg.bn else 0, bias=4 * cfg.Co if cfg.bias else 0)
    if f == "linear":
        return dict(H=1, W=1, Ci=cfg.N, Co=cfg.M, Kh=1, Kw=1, sh=1, sw=1, pad=(0, 0, 0, 0), Ho=1, Wo=1,
                    bi=cfg.in_type.bits, bo=cfg.out_type.bits, bw=cfg.w_type.bits, n_in=1,
                    consts=8 * cfg.M if cfg.bn and cfg.out_type.bits != 32 else 0, bias=4 * cfg.M if cfg.bias else 0)
    if f in ("maxpool", "avgpool"):
        return dict(H=cfg.H, W=cfg.W, Ci=cfg.C, Co=cfg.C, Kh=cfg.Kh, Kw=cfg.Kw, sh=cfg.stride[0], pad=cfg.pad,
                    sw=cfg.stride[1], Ho=cfg.Ho, Wo=cfg.Wo, bi=cfg.in_type.bits, bo=cfg.out_type.bits, bw=0, n_in=1,
                    consts=0, bias=0)
    if f == "add":
        return dict(H=cfg.H, W=cfg.W, Ci=cfg.C, Co=cfg.C, Kh=1, Kw=1, sh=1, sw=1, pad=(0, 0, 0, 0), Ho=cfg.H, Wo=cfg.W,
                    bi=max(cfg.in1_type.bits, cfg.in2_type.bits), bo=cfg.out_type.bits, bw=0, n_in=2, consts=0,
                    bias=0)
    raise ValueError(f"family {f!r} has no tiling rule")


def in_rows(g: dict, r0: int, n: int, axis: int = 0) -> tuple:
    """Input rows (count, pad_before, pad_after) that output rows [r0, r0 + n) read (axis 1: columns)."""
    s, K, H = (g["sh"], g["Kh"], g["H"]) if axis == 0 else (g["sw"], g["Kw"], g["W"])
    pa, pb = (g["pad"][0], g["pad"][1]) if axis == 0 else (g["pad"][2], g["pad"][3])
    lo = r0 * s - pa
    hi = (r0 + n - 1) * s - pa + K - 1
    return min(hi, H - 1) - max(lo, 0) + 1, max(0, -lo), max(0, hi - (H - 1))


def _sizes(g: dict, fam: str, co_t: int, ho_t: int, ncores: int, wo_t: int = 0) -> tuple:
    """(x, y, w, consts_tile, im2col) bytes of a tile of co_t channels, ho_t output rows (wo_t columns; 0: all)."""
    ci_t = co_t if fam in CHANNEL_TILED else g["Ci"]
    wo_t = wo_t or g["Wo"]
    rows = g["H"] if ho_t >= g["Ho"] else min(g["H"], (ho_t - 1) * g["sh"] + g["Kh"])
    cols = g["W"] if wo_t >= g["Wo"] else min(g["W"], (wo_t - 1) * g["sw"] + g["Kw"])
    x = g["n_in"] * _nb(rows * cols * ci_t, g["bi"])
    y = _nb(ho_t * wo_t * co_t, g["bo"])
    kk = g["Kh"] * g["Kw"]
    if fam in ("conv", "pointwise"):
        w = _nb(co_t * kk * g["Ci"], g["bw"])
    elif fam == "depthwise":
        w = _nb(co_t * kk, g["bw"])
    elif fam == "linear":
        w = _nb(co_t * g["Ci"], g["bw"])
    else:
        w = 0
    c = (g["consts"] // max(g["Co"], 1)) * co_t
    G = 8 // min(g["bi"], g["bo"], g["bw"] or 8)
    if fam == "conv":
        im2col = 2 * ncores * kk * g["Ci"]
    elif fam == "pointwise":
        im2col = 2 * ncores * g["Ci"] if g["bi"] < 8 else 0
    elif fam == "depthwise":
        pt, pb = g["pad"][0], g["pad"][1]
        im2col = ncores * (g["Kh"] * (ci_t + pt + pb) + g["Kh"]) * G
    else:
        im2col = 0
    return x, y, w, c, im2col


def _dory_score(fam: str, g: dict, co_t: int, ho_t: int, total: int) -> int:
    Co, Ho = g["Co"], g["Ho"]
    if fam == "depthwise":
        return (10000 * (co_t > 7) + 20000 * ((co_t - 1) % 16) + 10000 * (ho_t % 4 == 0) + total
                + 1000 * g["Wo"] + 1000 * ho_t + 100 * ((Ho - 1) % ho_t) + 100 * (((Co - 1) % co_t) > 7)
                + 100 * (((Ho - 1) % ho_t) % 4))
    return (2000000 * ((ho_t - 1) % 8) + 3000000 * ((g["Wo"] - 1) % 2) + 1000000 * ((co_t - 1) % 4)
            + 1000000 * (g["Wo"] * ho_t >= 16) + total + 100000 * co_t + 10000 * ((Co - 1) % co_t)
            + 10000 * (((Co - 1) % co_t) % 4) + 20000 * (((Ho - 1) % ho_t) % 8))


def _candidates(cfg, l1_budget: int, double_buffering: int, ncores: int):
    """(geometry, whole-layer Tiling or None, feasible [(co_t, ho_t, total, x, y, w, c, im)], smallest tile)."""
    for k, v, ok, want in (("l1_budget", l1_budget, lambda v: v >= 0, "an int >= 0 (bytes)"),
                           ("double_buffering", double_buffering, lambda v: v in (1, 2), "1 or 2 (L1 buffers)"),
                           ("ncores", ncores, lambda v: v >= 1, "an int >= 1")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not ok(v):
            raise JaxpulpError(f"{k}={v!r}: expected {want}")
    fam = cfg.family
    g = geometry(cfg)
    Co, Ho = g["Co"], g["Ho"]
    x, y, w, c, im = _sizes(g, fam, Co, Ho, ncores)
    whole = x + y + w + c + g["bias"] + im
    full_ci = Co if fam in CHANNEL_TILED else g["Ci"]
    if whole <= l1_budget:
        return g, Tiling(fam, True, True, Co, full_ci, Ho, 1, 1, whole, x, y, w, c + g["bias"], im, g["Wo"]), [], None
    G = 8 // min(g["bi"], g["bo"], g["bw"] or 8)
    step = G if fam in ("conv", "pointwise", "depthwise", "linear") else 1
    co_opts = sorted({*range(step, Co + 1, step), Co})
    if fam == "depthwise" and g["H"] <= 32 and g["W"] <= 32:
        ho_opts = [Ho]
    elif fam == "linear":
        ho_opts = [1]
    else:
        ho_opts = list(range(1, Ho + 1))
    db = double_buffering
    feas = []
    for co_t in co_opts:
        for ho_t in ho_opts:
            x, y, w, c, im = _sizes(g, fam, co_t, ho_t, ncores)
            total = db * (x + y + w + c) + g["bias"] + im + 40
            if total > l1_budget:
                break  # a larger ho_t only grows the tile
            feas.append((co_t, ho_t, total, x, y, w, c, im, g["Wo"]))
    co_t, ho_t, wo_t = co_opts[0], ho_opts[0], g["Wo"]
    while True:  # ours: tile the width only when one row of the smallest channel tile does not fit
        x, y, w, c, im = _sizes(g, fam, co_t, ho_t, ncores, wo_t)
        smallest = (co_t, ho_t, db * (x + y + w + c) + g["bias"] + im + 40, x, y, w, c, im, wo_t)
        if feas or smallest[2] <= l1_budget or wo_t == 1 or fam == "linear":
            break
        wo_t = (wo_t + 1) // 2
    if not feas and smallest[2] <= l1_budget:
        feas.append(smallest)
    return g, None, feas, smallest


def _make(cfg, g, cand, fits) -> Tiling:
    fam = cfg.family
    co_t, ho_t, total, x, y, w, c, im, wo_t = cand
    ci_t = co_t if fam in CHANNEL_TILED else g["Ci"]
    return Tiling(fam, False, fits, co_t, ci_t, ho_t, math.ceil(g["Co"] / co_t), math.ceil(g["Ho"] / ho_t), total,
                  x, y, w, c + g["bias"], im, wo_t, math.ceil(g["Wo"] / wo_t))


def check_config(cfg, arg: str = "cfg") -> None:
    """Raise unless ``cfg`` is a kernel config of a family with a tiling rule (a ``jaxpulp.kernels.config`` record,
    e.g. from ``jaxpulp.network.mapping.kernel_config(layer)``), not a network, a layer or a list of them."""
    fam = getattr(cfg, "family", None)
    if isinstance(fam, str) and fam in TILED_FAMILIES and hasattr(cfg, "replace"):
        return
    what = type(cfg).__name__
    shown = repr(cfg) if len(repr(cfg)) <= 80 else repr(cfg)[:77] + "..."
    why = f"kernel family {fam!r} has no tiling rule (expected one of {TILED_FAMILIES})" if isinstance(fam, str) \
        else "expected a layer's kernel config (jaxpulp.network.mapping.kernel_config(layer) per layer)"
    raise JaxpulpError(f"{arg}={shown} (a {what}): {why}")


def tile(cfg, l1_budget: int = 36_700, double_buffering: int = 1, ncores: int = 8) -> Tiling:
    """DORY's tiling of ``cfg`` within ``l1_budget`` bytes: DORY's constraints and objective (module docstring)."""
    check_config(cfg)
    return _tile(cfg, l1_budget, double_buffering, ncores)


@functools.lru_cache(maxsize=4096)
def _tile(cfg, l1_budget: int = 36_700, double_buffering: int = 1, ncores: int = 8) -> Tiling:
    g, whole, feas, smallest = _candidates(cfg, l1_budget, double_buffering, ncores)
    if whole is not None:
        return whole
    if not feas:
        return _make(cfg, g, smallest, False)
    best = max(feas, key=lambda f: _dory_score(cfg.family, g, f[0], f[1], f[2]))
    return _make(cfg, g, best, True)


def pareto_tilings(cfg, l1_budget: int = 36_700, double_buffering: int = 1, ncores: int = 8,
                   max_candidates: int = 16) -> tuple:
    """Every feasible tiling that no other feasible tiling contains (more rows and at least as many channels, or
    vice versa): the candidates of the latency-driven tiler (``jaxpulp.deploy.latency``, ours)."""
    check_config(cfg)
    if not is_int(max_candidates) or max_candidates < 1:
        raise JaxpulpError(f"max_candidates={max_candidates!r}: expected an int >= 1 (tiles tried per layer)")
    return _pareto_tilings(cfg, l1_budget, double_buffering, ncores, max_candidates)


@functools.lru_cache(maxsize=4096)
def _pareto_tilings(cfg, l1_budget: int = 36_700, double_buffering: int = 1, ncores: int = 8,
                    max_candidates: int = 16) -> tuple:
    g, whole, feas, smallest = _candidates(cfg, l1_budget, double_buffering, ncores)
    if whole is not None:
        return (whole,)
    if not feas:
        return (_make(cfg, g, smallest, False),)
    best_ho: dict = {}
    for f in feas:
        if f[1] >= best_ho.get(f[0], (0, None))[0]:
            best_ho[f[0]] = (f[1], f)
    # for each channel tile its largest row count; keep the row-Pareto-maximal ones and round channel tiles
    # (multiples of 4 channels and of the channel-group size), the ``max_candidates`` largest, plus DORY's choice
    keep, top = {}, 0
    for co_t in sorted(best_ho, reverse=True):
        ho_t, f = best_ho[co_t]
        if ho_t > top or co_t % 4 == 0 or co_t == g["Co"]:
            keep[co_t] = f
        top = max(top, ho_t)
    ranked = sorted(keep.values(), key=lambda f: -(f[0] * f[1]))[:max_candidates]
    dory = max(feas, key=lambda f: _dory_score(cfg.family, g, f[0], f[1], f[2]))
    if dory not in ranked:
        ranked.append(dory)
    ranked.extend(_narrow(cfg, g, l1_budget, double_buffering, ncores, max(2, max_candidates // 2)))
    out = [_make(cfg, g, f, True) for f in ranked]
    return tuple(out)


def _narrow(cfg, g, l1_budget, db, ncores, limit):
    """Ours: conv / pointwise tiles of part of the width whose row count is a multiple of the core count (the
    kernels split output rows over the cores, so a full-width tile of 2-4 rows leaves cores idle; DORY tiles W and
    rewards h_out = 0 mod 8 for the same reason). For each width (Wo / 2, / 4, ...) and row count, the most
    channels (multiples of 4) that fit."""
    fam = cfg.family
    if fam not in ("conv", "pointwise") or g["Ho"] < ncores:
        return []
    out = []
    wo = g["Wo"]
    while wo > 1:
        wo = (wo + 1) // 2
        for ho in sorted({*range(ncores, g["Ho"] + 1, ncores)}, reverse=True):
            best = None
            for co in sorted({*range(4, g["Co"] + 1, 4), g["Co"]}):
                x, y, w, c, im = _sizes(g, fam, co, ho, ncores, wo)
                total = db * (x + y + w + c) + g["bias"] + im + 40
                if total > l1_budget:
                    break
                best = (co, ho, total, x, y, w, c, im, wo)
            if best is not None:
                out.append(best)
                break  # the tallest row count that fits at this width
    return sorted(out, key=lambda f: -(f[0] * f[1] * f[8]))[:limit]


def tile_sequence(cfg, t: Tiling):
    """The tiles of ``t`` in DORY's loop order (channel tiles outer, then rows, then columns; dma §5.8): a list of
    ``(first_of_channel_tile, (ci, rows_in, pad_top, pad_bottom, co, ho, cols_in, pad_left, pad_right, wo))``."""
    g = geometry(cfg)
    if t.whole:
        return [(True, (t.ci_t, g["H"], g["pad"][0], g["pad"][1], t.co_t, g["Ho"], g["W"], g["pad"][2],
                        g["pad"][3], g["Wo"]))]
    fam = cfg.family
    wo_t = t.wo_t or g["Wo"]
    cols_all = [(g["W"], g["pad"][2], g["pad"][3], g["Wo"])] if t.n_w == 1 else [
        (*in_rows(g, k * wo_t, min(wo_t, g["Wo"] - k * wo_t), axis=1), min(wo_t, g["Wo"] - k * wo_t))
        for k in range(t.n_w)]
    seq = []
    for i in range(t.n_co):
        co = min(t.co_t, g["Co"] - i * t.co_t)
        ci = co if fam in CHANNEL_TILED else g["Ci"]
        for j in range(t.n_h):
            r0 = j * t.ho_t
            n = min(t.ho_t, g["Ho"] - r0)
            rows, pt, pb = in_rows(g, r0, n)
            for k, (cols, pl, pr, wo) in enumerate(cols_all):
                seq.append((j == 0 and k == 0, (ci, rows, pt, pb, co, n, cols, pl, pr, wo)))
    return seq


@functools.lru_cache(maxsize=65536)
def tile_config(cfg, ci, rows, pt, pb, co, n, cols, pl, pr, wo):
    """The kernel config of one tile (``cfg`` restricted to ci input / co output channels, ``rows`` x ``cols``
    input pixels with pads pt / pb / pl / pr, n x wo output pixels)."""
    fam = cfg.family
    if fam in ("conv", "pointwise", "depthwise"):
        return cfg.replace(H=rows, W=cols, Ci=ci, Co=co, pad=(pt, pb, pl, pr), Ho=n, Wo=wo)
    if fam == "linear":
        return cfg.replace(M=co)
    if fam in ("maxpool", "avgpool"):
        ho = out_dim(rows, pt, pb, cfg.Kh, cfg.stride[0])
        wo_ = out_dim(cols, pl, pr, cfg.Kw, cfg.stride[1])
        return cfg.replace(H=rows, W=cols, C=ci, pad=(pt, pb, pl, pr), Ho=min(n, ho), Wo=min(wo, wo_))
    if fam == "add":
        return cfg.replace(H=rows, W=cols, C=ci)
    raise ValueError(fam)
