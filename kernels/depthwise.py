"""Depthwise convolution ``pulp_nn_depthwise_<in>_<out>_<w>`` (108 variants): byte-plane CHW input and weights,
HWC output, channel groups over cores, one vertical im2col strip per output column (semantics.md §8).

Three ways to run one configuration (``cfg``: a frozen ``DepthwiseConfig``, a static jit argument):

* ``run(x_words, w_words, params, cfg=..)``  packed path: uint32 byte-plane images in, packed HWC image out,
  the library's deterministic quirks included;
* ``run_values(x, w, params, cfg=..)``      value path: int tensors x (H, W, C), w (C, Kh, Kw) -> (Ho, Wo, C),
  the intended zero-padded depthwise convolution with per-channel bias (``semantics="ideal"``);
* ``reference(x, w, params, cfg)``          numpy loops that replay the C kernel core by core, strip by strip
  (the twin).

Groups: G = 8 / min(bi, bo, bw) channels (1, 2 or 4) are computed together; core c owns whole groups
(``split.depthwise_split``). The core split does not change any value (every channel is computed the same way
by whichever core owns it), so the fast paths need no per-core masks.

Quirks reproduced (``semantics="library"``; checked against the C kernels run on a host, every core in turn:
the 540 golden cases and ~2,000 random accepted configurations, 0 mismatches):
  * §8.4 horizontal phases: the left phase (xo*sx < pl) zeroes the z = pl - xo*sx leading taps, the middle
    phase (a do-while: always entered once) zeroes none, the right phase zeroes the last
    ``zr = 1 + pr - (Wo - xo)*sx`` taps; every other tap reads ``lin(y, u)`` = byte ``y*W + u`` of the channel's
    plane, u = xo*sx - pl + kx, with no right-border check: a tap with u >= W reads the next row's pixel u - W.
    This happens when (W + pl + pr - Kw) mod sx != sx - 1 (zr is then smaller than the number of taps past the
    row, e.g. stride 2 with right padding 1 and even W) and in narrow images (left-phase columns and the forced
    middle column that should have been right-phase columns).
  * §8.5 bias: an int8 array indexed ``pBias[g + t]`` for channel t of group g (correct only for G = 1).
  * §4: floor shifts, int16 ``out_mult``, ``out_shift`` mod 32, int32 wrap, ``bn_bits=64`` tree; the signed clip
    is correct in this kernel.
Refused by ``check`` (``UnsupportedConfig``; the first four are lifted by ``semantics="ideal"``):
  * ``depthwise-small-kernel`` (§8.3, library_defects 11): Kh*Kw < 4, the 4-tap do-while runs once and the
    scalar tail then reads Kh*Kw more taps: products of weights and strip bytes outside the channel's data (the
    next channel's weights or another core's / no buffer, strip bytes past the window) are added;
  * ``depthwise-border-overread`` (§8.4): a used tap of the last input row reads past the row end; for the last
    plane that is memory after the input tensor (the same tap of other planes reads the next plane);
  * ``depthwise-strip-overflow`` (§8.3 step 2): the 4-byte loads of the last strip row store past the
    channel's S = Kw*(H+pt+pb)+Kw byte strip (Kw = 1, or pl + 4*ceil(Kw/4) > (pb + 2)*Kw): into the next
    channel's strip, the next core's scratch (a race) or past the buffer. Conservative: the few deterministic
    cases (one channel group on a multi-core cluster, spill into its own next strip) are refused, not modelled;
  * ``depthwise-degenerate-width`` (§8.4): ceil(pl/sx) >= Wo, the do-while phases compute columns >= Wo and
    write them past the row (past the output buffer on the last row);
  * ``depthwise-channels`` / ``depthwise-channel-multiple`` (§8.1, §8.2): Ci != Co, or C not a multiple of G
    (the last C mod G channels are never written);
  * ``output-geometry`` (§16): (Ho, Wo) not the zero-padded geometry; ``uint16-extent``: uint16 sizes wrap.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing, quant
from jaxpulp.cluster import split
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _engine
from jaxpulp.kernels._engine import IntArrayLike, Scalar32
from jaxpulp.kernels.config import DepthwiseConfig, out_dim

Config = DepthwiseConfig


class Params(NamedTuple):
    """Per-call data: kappa / lam (int32, one per channel; read only in BN mode), out_mult (uint16 argument,
    used as int16 in MULT mode), out_shift (bits), bias (one signed byte per channel, values in [-128, 127],
    or None)."""

    kappa: IntArrayLike
    lam: IntArrayLike
    out_mult: IntArrayLike = 0
    out_shift: IntArrayLike = 0
    bias: IntArrayLike | None = None


class Geometry(NamedTuple):
    """A configuration as int32 data (so one compiled function serves many configurations)."""

    H: Scalar32
    W: Scalar32
    C: Scalar32
    Kh: Scalar32
    Kw: Scalar32
    sy: Scalar32
    sx: Scalar32
    pt: Scalar32
    pl: Scalar32
    pr: Scalar32
    Ho: Scalar32
    Wo: Scalar32
    bi: Scalar32
    si: Scalar32
    bo: Scalar32
    so: Scalar32
    bw: Scalar32
    relu: Scalar32
    bn: Scalar32
    library: Scalar32


class Bucket(NamedTuple):
    """Static array extents (elements) the compiled function is traced for; a configuration fits if every
    extent is at least its own."""

    H: int
    W: int
    C: int
    Kh: int
    Kw: int
    Ho: int
    Wo: int

    @property
    def x_words(self):
        return _engine.words_for(self.H * self.W * self.C, 8)

    @property
    def w_words(self):
        return _engine.words_for(self.C * self.Kh * self.Kw, 8)

    @property
    def out_words(self):
        return _engine.words_for(self.Ho * self.Wo * self.C, 8)


def group_size(cfg: DepthwiseConfig) -> int:
    """G = 8 / min(bi, bo, bw): channels computed together (1, 2 or 4), §8.1."""
    return 8 // min(cfg.in_type.bits, cfg.out_type.bits, cfg.w_type.bits)


def geometry(cfg: DepthwiseConfig, cluster: Cluster = GAP8) -> Geometry:
    t, _, left, r = cfg.pad
    vals = (cfg.H, cfg.W, cfg.Co, cfg.Kh, cfg.Kw, cfg.stride[0], cfg.stride[1], t, left, r, cfg.Ho, cfg.Wo,
            cfg.in_type.bits, int(cfg.in_type.signed), cfg.out_type.bits, int(cfg.out_type.signed), cfg.w_type.bits,
            cfg.relu, cfg.bn, int(cfg.semantics == "library"))
    return Geometry(*(np.int32(v) for v in vals))


def exact_bucket(cfg: DepthwiseConfig) -> Bucket:
    return Bucket(cfg.H, cfg.W, cfg.Co, cfg.Kh, cfg.Kw, cfg.Ho, cfg.Wo)


def shared_bucket(cfgs) -> Bucket:
    """One bucket that fits every configuration in ``cfgs`` (extents rounded up so nearby shapes share it)."""
    r = _engine.round_up
    ext = {f: max(getattr(c, "Co" if f == "C" else f) for c in cfgs) for f in Bucket._fields}
    return Bucket(H=r(ext["H"], multiple=4), W=r(ext["W"], multiple=4), C=r(ext["C"], multiple=8),
                  Kh=r(ext["Kh"], choices=(3, 5, 7, 9, 11)), Kw=r(ext["Kw"], choices=(3, 5, 7, 9, 11)),
                  Ho=r(ext["Ho"], multiple=4), Wo=r(ext["Wo"], multiple=4))


# ----------------------------------------------------------------------------------------------- check


def _column_reads(cfg: DepthwiseConfig, phase: str, xo: int) -> list[tuple[int, int]]:
    """(kx, u) of the taps the library reads from the plane for column ``xo`` (the others are 0): u is the
    in-row offset, byte y*W + u of the plane (u >= W runs into the next row)."""
    _, _, pl, pr = cfg.pad
    sx = cfg.stride[1]
    reads = []
    for kx in range(cfg.Kw):
        u = xo * sx - pl + kx
        if u < 0:
            continue  # left phase: z = pl - xo*sx leading zeros
        if phase == "R" and kx >= cfg.Kw - (1 + pr - (cfg.Wo - xo) * sx):
            continue  # right phase: zr trailing zeros
        reads.append((kx, u))
    return reads


def _used_rows(cfg: DepthwiseConfig) -> list[int]:
    """Input rows that lie inside some output row's window."""
    t = cfg.pad[0]
    sy = cfg.stride[0]
    rows = {yo * sy + ky - t for yo in range(cfg.Ho) for ky in range(cfg.Kh)}
    return sorted(y for y in rows if 0 <= y < cfg.H)


def _strip_extent(cfg: DepthwiseConfig) -> tuple[int, int]:
    """(furthest byte written into a channel's strip + 1, strip size S) over all columns (§8.3 step 2):
    every strip row starts at r*Kw and writes 4*ceil(Kw/4) loaded bytes, after z = pl - xo*sx zeros in the
    left phase; the strip holds S = Kw*(H + pt + pb) + Kw bytes."""
    t, b, left, _ = cfg.pad
    p4 = 4 * (-(-cfg.Kw // 4))
    R = cfg.H + t + b
    cols = split.depthwise_columns(cfg.Wo, cfg.stride[1], left, cfg.pad[3])
    z = max([left - xo * cfg.stride[1] for ph, xo in cols if ph == "L"], default=0)
    last_input_row = t + cfg.H - 1
    extent = max((R - 1) * cfg.Kw + p4, last_input_row * cfg.Kw + z + p4)
    return extent, cfg.Kw * R + cfg.Kw


def check(cfg: DepthwiseConfig, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule if the library does not define this call."""
    _engine.check_config(cfg, DepthwiseConfig, "depthwise")
    G = group_size(cfg)
    C = cfg.Co
    if cfg.Ci != C:
        raise UnsupportedConfig(
            "depthwise-channels",
            f"Ci={cfg.Ci}, Co={C}: a depthwise layer maps every channel to itself; the kernel ignores ch_in and "
            "reads Co planes, so Ci must equal Co (semantics.md §8.1)")
    if C % G:
        raise UnsupportedConfig(
            "depthwise-channel-multiple",
            f"C={C} with {cfg.in_type} input, {cfg.out_type} output, {cfg.w_type} weights: channels are computed "
            f"in groups of G = 8/min(bi, bo, bw) = {G}; the library computes floor(C/G) groups and never writes "
            f"the last {C % G} channel(s). Use C a multiple of {G} (semantics.md §8.1, §8.2)")
    t, b, left, r = cfg.pad
    sy, sx = cfg.stride
    want = (out_dim(cfg.H, t, b, cfg.Kh, sy), out_dim(cfg.W, left, r, cfg.Kw, sx))
    if (cfg.Ho, cfg.Wo) != want:
        raise UnsupportedConfig(
            "output-geometry",
            f"(Ho, Wo)=({cfg.Ho}, {cfg.Wo}) with pad={cfg.pad}, kernel=({cfg.Kh}, {cfg.Kw}), stride={cfg.stride}: "
            f"expected {want}; the strips and phases are built for the zero-padded geometry (semantics.md §16)")
    S = cfg.Kw * (cfg.H + t + b) + cfg.Kw
    if (max(cfg.H, cfg.W, C, cfg.Kh, cfg.Kw, cfg.Ho, cfg.Wo, *cfg.pad, *cfg.stride) >= 1 << 16
            or cfg.H * cfg.W >= 1 << 16 or S >= 1 << 16 or cfg.Kh * cfg.Kw >= 1 << 16):
        raise UnsupportedConfig(
            "uint16-extent",
            f"H*W={cfg.H * cfg.W}, strip size Kw*(H+pt+pb)+Kw={S}, cfg={cfg}: dimensions, H*W, Kh*Kw and the strip "
            "size must be < 65536 (uint16 variables in the kernel, semantics.md §16)")
    if cfg.semantics != "library":
        return
    ideal = "Use semantics='ideal' for the intended zero-padded depthwise convolution."
    if cfg.Kh * cfg.Kw < 4:
        raise UnsupportedConfig(
            "depthwise-small-kernel",
            f"Kh*Kw={cfg.Kh * cfg.Kw} ({cfg.Kh}x{cfg.Kw} kernel): the 4-tap SIMD do-while runs once even when "
            "Kh*Kw < 4 and then the scalar tail reads Kh*Kw more taps, so 4 products of weights and strip bytes "
            "beyond the channel's data (the next channel's or another core's buffers, stale strip bytes) are "
            "added; the result depends on memory outside the call (semantics.md §8.3, library_defects 11). "
            f"Accepted: Kh*Kw >= 4. {ideal}")
    cols = split.depthwise_columns(cfg.Wo, sx, left, r)
    n_left = sum(ph == "L" for ph, _ in cols)
    if n_left >= cfg.Wo:
        raise UnsupportedConfig(
            "depthwise-degenerate-width",
            f"Wo={cfg.Wo} with pad_left={left}, stride_x={sx}: the left phase computes ceil(pl/sx)={n_left} "
            f"column(s) and the middle do-while one more, column {n_left} >= Wo, written past the output row "
            "(past the output buffer on the last row) (semantics.md §8.4). Accepted: ceil(pl/sx) < Wo. " + ideal)
    extent, size = _strip_extent(cfg)
    if extent > size:
        raise UnsupportedConfig(
            "depthwise-strip-overflow",
            f"Kw={cfg.Kw}, pad={cfg.pad}: the last strip row's 4-byte loads (4*ceil(Kw/4)={4 * (-(-cfg.Kw // 4))} "
            f"bytes after up to pl zeros) reach byte {extent} of a {size}-byte strip and overwrite the next "
            "channel's strip or the next core's scratch (semantics.md §8.3 step 2). Accepted: Kw >= 2 and "
            "pl + 4*ceil(Kw/4) <= (pb + 2)*Kw. " + ideal)
    rows = _used_rows(cfg)
    umax = max((u for ph, xo in cols if xo < cfg.Wo for _, u in _column_reads(cfg, ph, xo)), default=-1)
    if rows and umax >= 0 and rows[-1] * cfg.W + umax >= cfg.H * cfg.W:
        raise UnsupportedConfig(
            "depthwise-border-overread",
            f"W={cfg.W}, Kw={cfg.Kw}, stride_x={sx}, pad={cfg.pad}: a border column reads in-row offset u={umax} of "
            f"input row {rows[-1]} with no right-border zero (§8.4), i.e. byte {rows[-1] * cfg.W + umax} of an "
            f"{cfg.H * cfg.W}-byte plane: for the last plane that is memory after the input tensor. Accepted: every "
            "used tap inside its row, which holds when W >= Kw + stride_x - 1 and (W + pl + pr - Kw) mod stride_x "
            "== stride_x - 1 (any W >= Kw for stride 1), or when the last input row is in no window. " + ideal)


# ---------------------------------------------------------------------------------------- fast paths


def _group_traced(g: Geometry):
    return 8 // jnp.minimum(jnp.minimum(g.bi, g.bo), g.bw)


def _x_columns(g: Geometry, Wb: int, Kwb: int):
    """(u, read) of shape (Wb, Kwb): in-row offset of tap kx of output column xo, and whether the tap is read
    from the plane (False: a zero). Library: §8.4 phases; ideal: 0 <= u < W."""
    xo = jnp.arange(Wb, dtype=jnp.int32)[:, None]
    kx = jnp.arange(Kwb, dtype=jnp.int32)[None, :]
    u = xo * g.sx - g.pl + kx
    n_left = jnp.where(g.pl > 0, (g.pl + g.sx - 1) // g.sx, 0)
    right = (xo > n_left) & (xo * g.sx >= g.Wo * g.sx - g.pr)
    zr = 1 + g.pr - (g.Wo - xo) * g.sx
    lib = (u >= 0) & ~(right & (kx >= g.Kw - zr))
    ideal = (u >= 0) & (u < g.W)
    return u, jnp.where(g.library != 0, lib, ideal) & (kx < g.Kw)


def _unpack_weights(g: Geometry, w_words, bk: Bucket):
    """W8 (C, Kh, Kw) from the byte-plane weight image: channel c, tap k is lane c % Ew of byte
    (c // Ew)*Kh*Kw + k (Ew = 8/bw), sign-extended."""
    c, ky, kx = jnp.meshgrid(jnp.arange(bk.C), jnp.arange(bk.Kh), jnp.arange(bk.Kw), indexing="ij")
    ew = 8 // g.bw
    idx = ((c // ew) * (g.Kh * g.Kw) + ky * g.Kw + kx) * ew + c % ew
    valid = (c < g.C) & (ky < g.Kh) & (kx < g.Kw)
    return jnp.where(valid, packing.extract_elements(w_words, jnp.where(valid, idx, 0), g.bw, 1), 0)


def _accumulate_planes(g: Geometry, x_words, w8, bk: Bucket):
    """int32 accumulators (Ho, Wo, C), taps read from the byte-plane image as the strips hold them (§8.3, §8.4):
    channel c, flat plane offset a = y*W + u -> lane c % Ei of byte (c // Ei)*H*W + a (Ei = 8/bi)."""
    u, read = _x_columns(g, bk.Wo, bk.Kw)
    yo = jnp.arange(bk.Ho, dtype=jnp.int32)[:, None, None]
    c = jnp.arange(bk.C, dtype=jnp.int32)[None, None, :]
    ei = 8 // g.bi
    total = g.C * g.H * g.W  # elements in the image
    acc = jnp.zeros((bk.Ho, bk.Wo, bk.C), jnp.int32)
    for ky in range(bk.Kh):
        y = yo * g.sy + ky - g.pt
        vy = (y >= 0) & (y < g.H) & (ky < g.Kh)
        for kx in range(bk.Kw):
            a = y * g.W + u[None, :, kx, None]
            idx = ((c // ei) * (g.H * g.W) + a) * ei + c % ei
            ok = vy & read[None, :, kx, None] & (idx >= 0) & (idx < total) & (c < g.C)
            v = jnp.where(ok, packing.extract_elements(x_words, jnp.where(ok, idx, 0), g.bi, g.si), 0)
            acc = acc + v * w8[None, None, :, ky, kx]
    return acc


def _accumulate_values(g: Geometry, x, w, bk: Bucket):
    """int32 accumulators (Ho, Wo, C) of the zero-padded depthwise correlation of int tensors x (H, W, C),
    w (C, Kh, Kw) (ideal semantics)."""
    u, read = _x_columns(g, bk.Wo, bk.Kw)
    yo = jnp.arange(bk.Ho, dtype=jnp.int32)
    acc = jnp.zeros((bk.Ho, bk.Wo, bk.C), jnp.int32)
    for ky in range(bk.Kh):
        y = yo * g.sy + ky - g.pt
        vy = (y >= 0) & (y < g.H) & (ky < g.Kh)
        for kx in range(bk.Kw):
            ok = vy[:, None] & read[None, :, kx]
            v = x[jnp.clip(y, 0, bk.H - 1)[:, None], jnp.clip(u[:, kx], 0, bk.W - 1)[None, :]]
            acc = acc + jnp.where(ok[..., None], v, 0) * w[None, None, :, ky, kx]
    return acc


def _finish(g: Geometry, acc, p: Params, C: int, bn_bits: int = 32, bn_split=None):
    """Bias and requantisation of accumulators (..., C) -> output values. Library bias: channel t of group gi
    adds ``bias[gi + t]`` (§8.5); ideal: ``bias[c]``. Requant §4.1 with the correct signed clip; ``bn_bits``
    (static): the library tree (32bit/ or 64bit/, §4.3); ``bn_split``: ``DepthwiseConfig.bn_split``."""
    if p.bias is not None:
        c = jnp.arange(C, dtype=jnp.int32)
        G = _group_traced(g)
        bidx = jnp.where(g.library != 0, c // G + c % G, c)
        acc = acc + jnp.asarray(p.bias, jnp.int32)[jnp.clip(bidx, 0, C - 1)]
    lo, hi = quant.type_bounds(g.bo, g.so)
    return quant.requant(acc, relu=g.relu, bn=g.bn, kappa=p.kappa, lam=p.lam, out_mult=p.out_mult,
                         out_shift=p.out_shift, lo=lo, hi=hi, bn_bits=bn_bits, bn_split=bn_split)


def _pack_output(g: Geometry, vals, bk: Bucket):
    o_y, o_x, o_c = jnp.meshgrid(jnp.arange(bk.Ho), jnp.arange(bk.Wo), jnp.arange(bk.C), indexing="ij")
    idx = (o_y * g.Wo + o_x) * g.C + o_c
    valid = (o_y < g.Ho) & (o_x < g.Wo) & (o_c < g.C)
    return _engine.scatter_pack(vals, idx, valid, g.bo, bk.out_words)


def _packed(g: Geometry, x_words, w_words, p: Params, bk: Bucket, bn_bits: int = 32):
    w8 = _unpack_weights(g, w_words, bk)
    return _pack_output(g, _finish(g, _accumulate_planes(g, x_words, w8, bk), p, bk.C, bn_bits), bk)


def _values(g: Geometry, x, w, p: Params, bk: Bucket, bn_bits: int = 32):
    return _finish(g, _accumulate_values(g, x, w, bk), p, bk.C, bn_bits)


@functools.partial(jax.jit, static_argnames=("bk", "bn_bits"))
def _packed_cases(g, x_words, w_words, p, bk, bn_bits=32):
    """Every argument batched: one call per configuration (the golden runner's shared compiled function)."""
    return jax.vmap(functools.partial(_packed, bk=bk, bn_bits=bn_bits))(g, x_words, w_words, p)


@functools.partial(jax.jit, static_argnames=("bk", "bn_bits"))
def _values_cases(g, x, w, p, bk, bn_bits=32):
    return jax.vmap(functools.partial(_values, bk=bk, bn_bits=bn_bits))(g, x, w, p)


def _static_plan(cfg: DepthwiseConfig):
    """numpy, static configuration: per tap column kx the (Wo,) mask of taps read from the plane, and the
    row length Lu (>= W) the extended rows need (library taps may run past the row end, §8.4)."""
    _, _, left, r = cfg.pad
    sx = cfg.stride[1]
    read = np.zeros((cfg.Kw, cfg.Wo), bool)
    if cfg.semantics == "library":
        for ph, xo in split.depthwise_columns(cfg.Wo, sx, left, r):
            if xo < cfg.Wo:
                for kx, _ in _column_reads(cfg, ph, xo):
                    read[kx, xo] = True
    else:
        u = np.arange(cfg.Wo)[None, :] * sx - left + np.arange(cfg.Kw)[:, None]
        read = (u >= 0) & (u < cfg.W)
    u = np.arange(cfg.Wo)[None, :] * sx - left + np.arange(cfg.Kw)[:, None]
    umax = int(u[read].max()) if read.any() else 0
    return read, max(cfg.W, umax + 1)


def _fast_accumulate(V, w8, cfg: DepthwiseConfig):
    """int32 accumulators (batch, Ho, Wo, C) for a static configuration. ``V`` (batch, C, H*W): each channel's
    plane as a flat array (the library reads ``lin(y, u)`` = V[c, y*W + u], past the row end for u >= W);
    ``w8`` (C, Kh, Kw). Extended rows of Lu values are gathered with a static index, zero-padded, and the taps are
    Kh*Kw strided slices summed in int32 (exact, wraps like the core)."""
    t, b, left, _ = cfg.pad
    sy, sx = cfg.stride
    H, W, C = cfg.H, cfg.W, cfg.Co
    read, Lu = _static_plan(cfg)
    ei = 8 // cfg.in_type.bits
    if Lu > W:  # last row runs into the next plane: lane c % Ei of plane c//Ei + 1 = channel c + Ei
        nxt = jnp.pad(V[:, ei:, :Lu - W], ((0, 0), (0, ei), (0, 0)))
        V = jnp.concatenate([V, nxt], axis=-1)
    if Lu == W:  # rows end at the row end: the extended rows are the plane itself (no gather)
        ext = V[:, :, :H * W].reshape(V.shape[0], C, H, W)
    else:
        idx = (np.arange(H)[:, None] * W + np.arange(Lu)[None, :]).astype(np.int32)
        ext = V[:, :, idx]  # (B, C, H, Lu)
    width = max(left + Lu, (cfg.Wo - 1) * sx + cfg.Kw)
    height = max(t + H + b, (cfg.Ho - 1) * sy + cfg.Kh)
    ext = jnp.pad(ext, ((0, 0), (0, 0), (t, height - t - H), (left, width - left - Lu)))
    acc = jnp.zeros((V.shape[0], C, cfg.Ho, cfg.Wo), jnp.int32)
    for ky in range(cfg.Kh):
        for kx in range(cfg.Kw):
            if not read[kx].any():
                continue
            tap = ext[:, :, ky:ky + (cfg.Ho - 1) * sy + 1:sy, kx:kx + (cfg.Wo - 1) * sx + 1:sx]
            if not read[kx].all():
                tap = jnp.where(jnp.asarray(read[kx]), tap, 0)
            acc = acc + tap * w8[None, :, ky, kx, None, None]
    return jnp.transpose(acc, (0, 2, 3, 1))


def accumulate(x, w, bias, cfg: DepthwiseConfig):
    """Value-path accumulators, public entry: int32 (batch, Ho, Wo, C) of the ideal depthwise correlation of x
    (batch, H, W, C) (zero padding ``cfg.pad``, stride ``cfg.stride``) with w (C, Kh, Kw), plus bias (C,) or
    None. Kh*Kw strided slices of the channels-last image times per-channel weights, summed in int32: exact
    and wrapping like the core for any int32 operands (no float, no precision bound). XLA's grouped
    convolution is 10-25x slower on CPU for these shapes (measured). Traceable (``jit`` / ``vmap``)."""
    t, b, left, r = cfg.pad
    sy, sx = cfg.stride
    x = jnp.asarray(x, jnp.int32)
    w = jnp.asarray(w, jnp.int32)
    height = max(t + cfg.H + b, (cfg.Ho - 1) * sy + cfg.Kh)
    width = max(left + cfg.W + r, (cfg.Wo - 1) * sx + cfg.Kw)
    xp = jnp.pad(x, ((0, 0), (t, height - t - cfg.H), (left, width - left - cfg.W), (0, 0)))
    acc = None
    for ky in range(cfg.Kh):
        for kx in range(cfg.Kw):
            tap = xp[:, ky:ky + (cfg.Ho - 1) * sy + 1:sy, kx:kx + (cfg.Wo - 1) * sx + 1:sx] * w[:, ky, kx]
            acc = tap if acc is None else acc + tap
    assert acc is not None  # Kh, Kw >= 1
    return acc if bias is None else acc + jnp.asarray(bias, jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_packed(x_words, w_words, p: Params, cfg: DepthwiseConfig, cluster: Cluster):
    """Packed path for one static configuration (batch axis first): byte planes unpacked with static shifts,
    the library's (or ideal) taps, bias / requant as in the bucketed path, output packed with static shifts."""
    it = cfg.in_type
    H, W, C = cfg.H, cfg.W, cfg.Co
    ei = 8 // it.bits
    x = _engine.unpack_static(x_words, it.bits, it.signed, C * H * W)  # (B, plane, pixel, lane) order
    V = jnp.transpose(x.reshape(-1, C // ei, H * W, ei), (0, 1, 3, 2)).reshape(-1, C, H * W)
    return _fast_packed_planes(V, w_words, p, cfg, cluster)


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_packed_hwc(x_words, w_words, p: Params, cfg: DepthwiseConfig, cluster: Cluster):
    """``_fast_packed`` of the byte-plane image of a packed HWC image (batch axis first), without building it:
    the planes are a byte permutation of the HWC image (plane k = byte k of every pixel, whole-byte pixels), so
    plane c // Ei, lane c % Ei of pixel p is HWC element (p, c): the per-channel planes V are the transposed HWC
    values."""
    it = cfg.in_type
    x = _engine.unpack_static(x_words, it.bits, it.signed, cfg.H * cfg.W * cfg.Co)
    lanes = _fast_lanes_hwc(x, _weights(w_words, cfg), p, cfg, cluster)
    return _engine.pack_static(_engine.flat(lanes), cfg.out_type.bits)


def _fast_lanes_hwc(x, w8, p: Params, cfg: DepthwiseConfig, cluster: Cluster):
    """``_fast_packed_hwc`` on lanes: x (batch, H*W*C) int32, the HWC image's elements, and the unpacked weights
    w8 (C, Kh, Kw) (``_weights``) -> the output elements (batch, Ho, Wo, C) int32 (``_engine.pack_static`` of
    them, flattened, is the output image)."""
    if _reads_like_ideal(cfg):  # the taps of the channels-last image, no transpose to planes and back
        acc = accumulate(x.reshape(-1, cfg.H, cfg.W, cfg.Co), w8, None, cfg)
        return _finish(geometry(cfg, cluster), acc, p, cfg.Co, cfg.bn_bits, cfg.bn_split)
    V = jnp.transpose(x.reshape(-1, cfg.H * cfg.W, cfg.Co), (0, 2, 1))
    return _finish(geometry(cfg, cluster), _fast_accumulate(V, w8, cfg), p, cfg.Co, cfg.bn_bits, cfg.bn_split)


def _reads_like_ideal(cfg: DepthwiseConfig) -> bool:
    """Static: the kernel's taps (``_static_plan``) are the ideal zero-padded correlation's: rows end at the row
    end (Lu == W) and the tap columns read are exactly those inside [0, W) (every other tap reads the zero
    padding in the ideal layer), so ``_fast_accumulate`` on the planes equals ``accumulate`` on the HWC image."""
    read, Lu = _static_plan(cfg)
    u = np.arange(cfg.Wo)[None, :] * cfg.stride[1] - cfg.pad[2] + np.arange(cfg.Kw)[:, None]
    return Lu == cfg.W and bool(np.array_equal(read, (u >= 0) & (u < cfg.W)))


def _weights(w_words, cfg: DepthwiseConfig):
    """w8 (C, Kh, Kw) int32 from the byte-plane weight image (the kernel's weight unpack)."""
    wt = cfg.w_type
    C, K = cfg.Co, cfg.Kh * cfg.Kw
    ew = 8 // wt.bits
    w = _engine.unpack_static(w_words, wt.bits, True, C * K)
    return jnp.transpose(w.reshape(C // ew, K, ew), (0, 2, 1)).reshape(C, cfg.Kh, cfg.Kw)


_weights_jit = jax.jit(_weights, static_argnames=("cfg",))


def _fast_packed_planes(V, w_words, p: Params, cfg: DepthwiseConfig, cluster: Cluster):
    """The packed path from the input planes V (batch, C, H*W) on: weights, taps, requant, packed output."""
    return _engine.pack_static(_engine.flat(_planes_lanes(V, w_words, p, cfg, cluster)), cfg.out_type.bits)


def _planes_lanes(V, w_words, p: Params, cfg: DepthwiseConfig, cluster: Cluster):
    """From the input planes V (batch, C, H*W) to the output elements (batch, Ho, Wo, C): weights, taps, requant."""
    acc = _fast_accumulate(V, _weights(w_words, cfg), cfg)
    return _finish(geometry(cfg, cluster), acc, p, cfg.Co, cfg.bn_bits)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _fast_values(x, w, p: Params, cfg: DepthwiseConfig):
    """Value path for one static configuration: x (batch, H, W, C), w (C, Kh, Kw) int32 -> (batch, Ho, Wo, C)."""
    V = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], cfg.Co, cfg.H * cfg.W)
    acc = _fast_accumulate(V, w, cfg)
    return _finish(geometry(cfg), acc, p, cfg.Co, cfg.bn_bits)


# -------------------------------------------------------------------------------------- public API


def _is_tracer(a) -> bool:
    return isinstance(a, jax.core.Tracer)


def _as_params(params, cfg: DepthwiseConfig) -> Params:
    params = _engine.as_params(params, Params)
    C = cfg.Co

    def vec(name, v, what):
        if v is None:
            raise JaxpulpError(f"params.{name}=None: expected {what} of shape ({C},)")
        _engine.check_int32_values(v, name)
        a = v if _is_tracer(v) else jnp.asarray(v)
        if a.shape != (C,) or not jnp.issubdtype(a.dtype, jnp.integer):
            raise JaxpulpError(f"params.{name}: shape {a.shape} dtype {a.dtype}, expected {what} of shape ({C},)")
        return a.astype(jnp.int32)

    _engine.check_bias_flag(cfg.bias, params.bias, C, "int8 values")
    bias = None
    if params.bias is not None:
        bias = vec("bias", params.bias, "int8 values (one signed byte per channel)")
        if not _is_tracer(params.bias):
            bn = np.asarray(params.bias).astype(np.int64)
            if bn.size and (bn.min() < -128 or bn.max() > 127):
                bad = int(bn.min()) if bn.min() < -128 else int(bn.max())
                raise JaxpulpError(f"params.bias: value {bad} out of range: the depthwise kernel reads one signed "
                                   "byte per channel, expected values in [-128, 127] (semantics.md §8.5)")
    return Params(vec("kappa", params.kappa, "int32"), vec("lam", params.lam, "int32"),
                  *_engine.requant_scalars(params), bias)


_PLANES = "a uint32 byte-plane memory image (see jaxpulp.packing.pack_planes)"


def run(x_words, w_words, params, *, cfg: DepthwiseConfig, cluster: Cluster = GAP8, return_cost: bool = False):
    """Packed path. ``x_words``: byte-plane CHW input image (uint32 words, ``packing.pack_planes`` of the HWC
    tensor; optionally a leading batch axis); ``w_words``: byte-plane weights (``pack_planes`` of [Kh][Kw][C]);
    returns the packed HWC output image (uint32 words, batch kept). With ``return_cost=True`` returns
    ``Costed(output, cost)`` (per-core counts and cycles of one call)."""
    check(cfg, cluster)
    out = _packed_call(_fast_packed, x_words, w_words, params, cfg, cluster)
    return _engine.costed(out, cfg, cluster, return_cost)


def run_hwc(x_words, w_words, params, *, cfg: DepthwiseConfig, cluster: Cluster = GAP8):
    """``run`` on the packed HWC image of the input (what the previous layer of a network wrote) instead of its
    byte-plane image: the result of ``run(pack_planes(x), ...)`` for ``x_words = pack_hwc(x)``, the CHW transfer
    folded into the unpack (DORY moves the tensor to planes between the layers). Batch axis optional."""
    check(cfg, cluster)
    if (cfg.Co * cfg.in_type.bits) % 8:
        raise JaxpulpError(f"cfg: {cfg.Co} channels of {cfg.in_type}: an HWC pixel is not whole bytes, the byte "
                           "planes are undefined")
    return _packed_call(_fast_packed_hwc, x_words, w_words, params, cfg, cluster)


def _weight_image(w_words, cfg: DepthwiseConfig):
    """The checked byte-plane weight image (uint32 words, no batch axis), cut to its words."""
    return _engine.packed_words(w_words, _engine.words_for(cfg.Kh * cfg.Kw * cfg.Co, cfg.w_type.bits), "w_words",
                                batch=False, what=_PLANES)


def unpacked_weights(w_words, cfg: DepthwiseConfig) -> np.ndarray:
    """int32 (C, Kh, Kw): the weights exactly as the kernel unpacks its byte-plane weight image ``w_words`` (the
    same function, run once): for ``run_lanes_hwc(..., unpacked=True)``, which a network's packed path uses so
    that the unpack is not recomputed inside the fused tap loops of every call."""
    return np.asarray(_weights_jit(_weight_image(w_words, cfg), cfg))


def run_lanes_hwc(x, w_words, params, *, cfg: DepthwiseConfig, cluster: Cluster = GAP8, unpacked: bool = False):
    """``run_hwc`` on lanes (see ``conv.run_lanes``): x (batch, H*W*C) int32, the HWC image's elements ->
    (batch, Ho, Wo, C) int32, the elements of ``run_hwc``'s output image. ``unpacked``: ``w_words`` is
    ``unpacked_weights(w_words, cfg)`` instead of the weight image."""
    check(cfg, cluster)
    if (cfg.Co * cfg.in_type.bits) % 8:
        raise JaxpulpError(f"cfg: {cfg.Co} channels of {cfg.in_type}: an HWC pixel is not whole bytes, the byte "
                           "planes are undefined")
    if unpacked:
        w8 = w_words if isinstance(w_words, jax.Array) else np.asarray(w_words)
        if w8.shape != (cfg.Co, cfg.Kh, cfg.Kw):
            raise JaxpulpError(f"w_words: unpacked weights of shape {w8.shape}, expected {(cfg.Co, cfg.Kh, cfg.Kw)} "
                               "(C, Kh, Kw)")
        w8 = jnp.asarray(_engine.value_ints(w8, "w_words", cfg.w_type), jnp.int32)
    else:
        w8 = _weights(_weight_image(w_words, cfg), cfg)
    x = _engine.lanes(x, cfg.H * cfg.W * cfg.Co, "x", cfg.in_type, "the HWC input image's elements")
    return _fast_lanes_hwc(jnp.asarray(x), w8, _as_params(params, cfg), cfg, cluster)


def _packed_call(fast, x_words, w_words, params, cfg: DepthwiseConfig, cluster: Cluster):
    """The checked images and parameters of one packed call through ``fast`` (batch axis optional), the output
    cut to its words."""
    p = _as_params(params, cfg)
    C = cfg.Co
    nx = _engine.words_for(cfg.H * cfg.W * C, cfg.in_type.bits)
    no = _engine.words_for(cfg.Ho * cfg.Wo * C, cfg.out_type.bits)
    x = _engine.packed_words(x_words, nx, "x_words", what=_PLANES)
    w = _weight_image(w_words, cfg)
    batched = x.ndim == 2
    out = fast(x if batched else x[None], w, p, cfg, cluster)[:, :no]
    return out if batched else out[0]


def _as_ints(a, name: str, shape: tuple, q, batch_ok: bool):
    a = a if _is_tracer(a) else jnp.asarray(a)
    ok_shape = a.shape == shape or (batch_ok and a.ndim == len(shape) + 1 and a.shape[1:] == shape)
    if not ok_shape:
        raise JaxpulpError(f"{name}: shape {a.shape}, expected ({'[batch,] ' if batch_ok else ''}"
                           f"{', '.join(map(str, shape))})")
    return jnp.asarray(_engine.value_ints(a, name, q), jnp.int32)


def run_values(x, w, params, *, cfg: DepthwiseConfig, cluster: Cluster = GAP8):
    """Value path: int tensors ``x`` (H, W, C) or (batch, H, W, C) and ``w`` (C, Kh, Kw) (the golden layouts)
    -> int32 outputs (Ho, Wo, C); the intended zero-padded depthwise convolution (``semantics="ideal"``)."""
    _engine.check_config(cfg, DepthwiseConfig, "depthwise")
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = _as_ints(x, "x", (cfg.H, cfg.W, cfg.Co), cfg.in_type, True)
    w = _as_ints(w, "w", (cfg.Co, cfg.Kh, cfg.Kw), cfg.w_type, False)
    batched = x.ndim == 4
    out = _fast_values(x if batched else x[None], w, p, cfg)
    return out if batched else out[0]


def cost(cfg: DepthwiseConfig, cluster: Cluster = GAP8):
    """Per-core instruction counts and cycles (see ``jaxpulp.cost``)."""
    from jaxpulp.cost import kernel_cost

    return kernel_cost(cfg, cluster)


# ------------------------------------------------------------------------------------ reference twin

_UNSET = 1 << 40  # a strip byte never written in this column (stale scratch)
_OUTSIDE = 1 << 41  # a byte past the input image (memory after the tensor)


def reference(x, w, params, cfg: DepthwiseConfig, cluster: Cluster = GAP8) -> np.ndarray:
    """Plain numpy model that replays the C kernel core by core (semantics.md §8): each core's channel groups
    (§8.2); per group and output column (in the order of the three x phases, §8.4) the G vertical strips are
    built byte by byte as the kernel stores them (pt zero rows, input rows loaded 4 bytes at a time from
    ``lin(y, u)``, left zeros / right zeros by phase, pb zero rows; S = Kw*(H+pt+pb)+Kw bytes each); per output
    row the Kh*Kw strip bytes at yo*sy*Kw times the channel's weights, bias ``pBias[g + t]`` (§8.5), requant
    (§4). With ``semantics="ideal"`` the straightforward zero-padded model, channel by channel.
    ``x`` (H, W, C), ``w`` (C, Kh, Kw) int arrays; returns int32 (Ho, Wo, C)."""
    check(cfg, cluster)
    _as_params(params, cfg)
    params = _engine.as_params(params, Params)
    x = np.asarray(_engine.value_ints(x, "x", cfg.in_type), np.int64)
    w = np.asarray(_engine.value_ints(w, "w", cfg.w_type), np.int64)
    if x.shape != (cfg.H, cfg.W, cfg.Co) or w.shape != (cfg.Co, cfg.Kh, cfg.Kw):
        raise JaxpulpError(f"x, w: shapes {x.shape}, {w.shape}, expected ({cfg.H}, {cfg.W}, {cfg.Co}) and "
                           f"({cfg.Co}, {cfg.Kh}, {cfg.Kw})")
    C, H, W, Kh, Kw, Ho, Wo = cfg.Co, cfg.H, cfg.W, cfg.Kh, cfg.Kw, cfg.Ho, cfg.Wo
    t, b, left, r = cfg.pad
    sy, sx = cfg.stride
    kappa = np.asarray(params.kappa, np.int64)
    lam = np.asarray(params.lam, np.int64)
    bias = None if params.bias is None else np.asarray(params.bias, np.int64)
    lo, hi = cfg.out_type.lo, cfg.out_type.hi
    G = group_size(cfg)
    out = np.zeros((Ho, Wo, C), np.int32)

    def requant(acc, c):
        return quant.requant_int(quant.wrap32(acc), relu=cfg.relu, bn=cfg.bn, kappa=kappa[c], lam=lam[c],
                                 out_mult=params.out_mult, out_shift=params.out_shift, lo=lo, hi=hi,
                                 bn_bits=cfg.bn_bits)

    if cfg.semantics != "library":
        for core in range(cluster.num_cores):
            c0, c1 = split.depthwise_split(core, C, G, cluster.num_cores)
            for c in range(c0, c1):
                for yo in range(Ho):
                    for xo in range(Wo):
                        acc = 0 if bias is None else int(bias[c])
                        for ky in range(Kh):
                            for kx in range(Kw):
                                y, u = yo * sy - t + ky, xo * sx - left + kx
                                if 0 <= y < H and 0 <= u < W:
                                    acc += int(x[y, u, c]) * int(w[c, ky, kx])
                        out[yo, xo, c] = requant(acc, c)
        return out

    # the input image as the kernel addresses it: bytes [C*bi/8][H*W]
    it = cfg.in_type
    ei = 8 // it.bits
    img = packing.words_to_bytes(packing.pack_planes(x, it))[:C // ei * H * W].astype(np.int64)
    img = np.concatenate([img, np.full(4 * (-(-Kw // 4)) + W + Kw + sx + left + r + 8, -1, np.int64)])  # -1: after x

    def lanes(c, start, n):
        """n consecutive plane bytes of channel c from flat offset ``start``, as lane c % Ei unpacks them."""
        by = img[(c // ei) * H * W + start:(c // ei) * H * W + start + n]
        v = (by >> ((c % ei) * it.bits)) & ((1 << it.bits) - 1)
        if it.signed:
            v = np.where(v >= 1 << (it.bits - 1), v - (1 << it.bits), v)
        return np.where(by < 0, _OUTSIDE, v)

    p4 = 4 * (-(-Kw // 4))
    R = H + t + b
    S = Kw * R + Kw
    K = Kh * Kw

    def store(strip, start, vals):
        """The kernel's byte stores into one strip; past its S bytes they would hit a neighbour's scratch."""
        vals = np.asarray(vals, np.int64)
        if start + len(vals) > S:
            raise AssertionError("strip overflow (check() must refuse)")
        strip[start:start + len(vals)] = vals

    for core in range(cluster.num_cores):
        c0, c1 = split.depthwise_split(core, C, G, cluster.num_cores)
        for g0 in range(c0, c1, G):
            gi = g0 // G  # the group index the kernel uses for the bias (i_ch)
            for phase, xo in split.depthwise_columns(Wo, sx, left, r):
                strips = np.full((G, S), _UNSET, np.int64)
                for tt in range(G):
                    c = g0 + tt
                    pos = 0  # each strip row starts Kw bytes after the previous one
                    for row in range(R):
                        y = row - t
                        if not 0 <= y < H:  # zero row: 4*ceil(Kw/4) zero bytes
                            store(strips[tt], pos, np.zeros(p4))
                        elif phase == "L":  # z zeros, then 4*ceil(Kw/4) bytes from the row start
                            z = left - xo * sx
                            store(strips[tt], pos, np.zeros(z))
                            store(strips[tt], pos + z, lanes(c, y * W, p4))
                        else:  # 4*ceil(Kw/4) bytes from lin(y, xo*sx - pl); right phase: then zr zeros
                            store(strips[tt], pos, lanes(c, y * W + xo * sx - left, p4))
                            if phase == "R":
                                zr = 1 + r - (Wo - xo) * sx
                                store(strips[tt], pos + Kw - zr, np.zeros(zr))
                        pos += Kw
                if xo >= Wo:
                    raise AssertionError(f"column {xo} >= Wo={Wo} written past the row (check() must refuse)")
                for yo in range(Ho):
                    for tt in range(G):
                        c = g0 + tt
                        # do-while over K >> 2 groups of 4 taps (K >= 4 here), then K & 3 scalar taps
                        taps = strips[tt, yo * sy * Kw:yo * sy * Kw + K]
                        if len(taps) != K or (taps >= _UNSET).any():
                            raise AssertionError(f"column {xo} channel {c}: a tap reads stale scratch or memory "
                                                 "after the input (check() must refuse)")
                        acc = 0 if bias is None else int(bias[gi + tt])
                        acc += int(np.dot(taps, w[c].reshape(-1)))
                        out[yo, xo, c] = requant(acc, c)
    return out


def pack_inputs(x, w, cfg: DepthwiseConfig):
    """(x_words, w_words): byte-plane images of x (H, W, C) (or a batch) and w (C, Kh, Kw)."""
    _engine.check_config(cfg, DepthwiseConfig, "depthwise")
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim not in (3, 4) or x.shape[-3:] != (cfg.H, cfg.W, cfg.Co):
        raise JaxpulpError(f"x: shape {x.shape}, expected ([batch,] {cfg.H}, {cfg.W}, {cfg.Co})")
    if w.shape != (cfg.Co, cfg.Kh, cfg.Kw):
        raise JaxpulpError(f"w: shape {w.shape}, expected ({cfg.Co}, {cfg.Kh}, {cfg.Kw}) (C, Kh, Kw)")
    return (packing.pack_planes(x, cfg.in_type),
            packing.pack_planes(np.transpose(w, (1, 2, 0)), cfg.w_type))
