"""Pointwise ``pulp_nn_pointwise_<in>_<out>_<w>`` (108 variants): conv's 4x2 matmul on pixel pairs without
im2col geometry, a scalar loop for each row's odd leftover pixel, the conv 8-core split (semantics.md §7, §5.3).

Three ways to run one configuration (``cfg``: a frozen ``PointwiseConfig``, a static jit argument):

* ``run(x_words, w_words, params, cfg=..)``  packed path: uint32 memory images in and out, the library's
  deterministic quirks included;
* ``run_values(x, w, params, cfg=..)``      value path: int tensors, the intended arithmetic (= conv 1x1);
* ``reference(x, w, params, cfg)``          numpy loops that follow the C kernel core by core (the twin).

Library quirks reproduced (``semantics="library"``; ``"ideal"`` computes a zero-padded strided 1x1 conv):

* §4.4: signed outputs in SHIFT-CLIP mode use the unsigned clip in the matmul's 4-channel block (pairs only);
* §7 / defect 8: kernel size, stride and padding are ignored: output pixel (y, x) reads input pixel y*W + x
  (flat HWC index, row stride W), whatever ``stride`` / ``pad`` / ``Ho`` / ``Wo`` say;
* §7.2, §7.5: leftover pixel, signed input: the vector part of its dot product (the first S*floor(Ci/S)
  elements, S = 32/bw) uses ``pv.sdotusp.b``, i.e. input bytes as unsigned (-x reads as 256-x); the scalar
  tail (Ci mod S elements) is signed;
* §7.1 / defect 9: leftover pixel, sub-byte input: the packed input bytes at byte offset (y*W + x)*Ci are read
  as 8-bit activations (same sign rule); bytes past the input image are modelled only where the output does
  not depend on them (see ``check_inputs``);
* §7.3 / defect 7: leftover pixel bias: the j-th row of a core (j = 0, 1, ..) reads the int8 byte ``j*Co + c``
  of the little-endian int32 bias array for channel c; pairs read the int32 bias (drift-free by ``check``);
* floor shifts, int16 ``out_mult``, ``out_shift`` mod 32, int32 wrap (§4.1); ``bn_bits=64``: the 64bit/ tree's
  batch-norm arithmetic (§4.3).

Refused by ``check(cfg)``: kernels other than 1x1 (``pointwise-kernel-size``), output pixels past the input
(``pointwise-geometry``), channel multiples (``input-channel-multiple``, ``weight-row-multiple``,
``output-channel-multiple``, §16), ``uint16-extent``, the §7.4 output-pointer skip with sub-byte output in the
half-width split (``pointwise-output-skip``), bias reads past the bias array (``pointwise-bias-drift``, §7.3).
A sub-byte leftover pixel reading past the input image (``pointwise-leftover-overread``, §7.1, §15.2): ``check``
refuses the configuration (the outputs may depend on the memory after the input); ``check_inputs`` (used by
``run`` outside jit, the golden adapter ``_golden.pointwise.from_golden`` and the twin) refuses only inputs whose
outputs do depend on it, by an exact interval argument (so it also refuses golden cases pointwise_0197 / _0471,
whose ``defined`` masks missed it).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing, quant
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _engine, conv
from jaxpulp.kernels.config import ConvConfig, PointwiseConfig

Config = PointwiseConfig
Params = conv.Params  # kappa, lam (int32 per channel), out_mult, out_shift, bias (int32 per channel or None)
Geometry = conv.Geometry
Bucket = conv.Bucket
geometry = conv.geometry
exact_bucket = conv.exact_bucket
shared_bucket = conv.shared_bucket


# ------------------------------------------------------------------------------------- static helpers


def _simd_step(bw: int) -> int:
    """Elements per vector step of the leftover dot product (one weight word): 4, 8, 16 for bw = 8, 4, 2."""
    return 32 // bw


def _in_bytes(cfg: PointwiseConfig) -> int:
    """Bytes of the packed input image (the ``x`` argument)."""
    return cfg.H * cfg.W * cfg.Ci * cfg.in_type.bits // 8


def _ranges(cfg: PointwiseConfig, cluster: Cluster):
    return [split.conv_split(core, cfg.Ho, cfg.Wo, cluster.num_cores) for core in range(cluster.num_cores)]


def _leftovers(cfg: PointwiseConfig, cluster: Cluster):
    """Leftover pixels as (core, j, y, x): the last column of each row of a core with an odd column range."""
    out: list = []
    for core, r in enumerate(_ranges(cfg, cluster)):
        if r.leftover:
            out.extend((core, j, y, r.col1 - 1) for j, y in enumerate(range(r.row0, r.row1)))
    return out


def _overread_leftovers(cfg: PointwiseConfig, cluster: Cluster):
    """Leftover pixels whose Ci-byte read at byte (y*W + x)*Ci runs past the input image (sub-byte input)."""
    if cfg.semantics != "library" or cfg.in_type.bits == 8:
        return []
    nb = _in_bytes(cfg)
    return [t for t in _leftovers(cfg, cluster) if (t[2] * cfg.W + t[3] + 1) * cfg.Ci > nb]


# ----------------------------------------------------------------------------------------------- check


def check(cfg: PointwiseConfig, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule unless the library defines this call for every input.

    Conservative where the answer depends on the data: a sub-byte leftover pixel that reads past the input
    image is refused here (``pointwise-leftover-overread``); ``check_inputs`` decides it for given inputs."""
    _check_config(cfg, cluster)
    lefts = _overread_leftovers(cfg, cluster)
    if lefts:
        core, _, y, x = lefts[0]
        off = (y * cfg.W + x) * cfg.Ci
        raise UnsupportedConfig(
            "pointwise-leftover-overread",
            f"{cfg.in_type} input: the leftover pixel (y, x)=({y}, {x}) of core {core} reads input bytes [{off}, "
            f"{off + cfg.Ci}) as 8-bit activations but the image has {_in_bytes(cfg)} bytes, so its outputs may "
            "depend on the memory after the input (semantics.md §7.1, §15.2). check_inputs (and run() outside "
            "jit) accept inputs whose outputs do not. Use an even column range per core (no leftover pixel), "
            "8-bit input, jaxpulp.kernels.conv with a 1x1 kernel, or semantics='ideal'")


def _check_config(cfg: PointwiseConfig, cluster: Cluster) -> None:
    """Every rule of ``check`` but the data-dependent over-read."""
    _engine.check_config(cfg, ConvConfig, "pointwise")
    if (cfg.Kh, cfg.Kw) != (1, 1):
        raise UnsupportedConfig(
            "pointwise-kernel-size",
            f"kernel=({cfg.Kh}, {cfg.Kw}): pointwise kernels are 1x1; the C kernel ignores dim_kernel_* in its "
            f"addressing but multiplies Ci by them for the dot-product length (semantics.md §7). Use Kh=Kw=1, "
            "or jaxpulp.kernels.conv for other kernel sizes")
    if cfg.semantics == "ideal":
        conv.check(cfg, cluster)  # the intended arithmetic is conv 1x1: its layout and geometry rules
        return
    conv.check_layout(cfg)  # K = Ci for a 1x1 kernel: the same whole-byte rules as conv
    if max(cfg.H, cfg.W, cfg.Ci, cfg.Co, cfg.Ho, cfg.Wo) >= 1 << 16:
        raise UnsupportedConfig("uint16-extent", f"cfg={cfg}: every dimension must be < 65536 (uint16 arguments)")
    if (cfg.Ho - 1) * cfg.W + cfg.Wo > cfg.H * cfg.W:
        raise UnsupportedConfig(
            "pointwise-geometry",
            f"(Ho, Wo)=({cfg.Ho}, {cfg.Wo}) from H={cfg.H}, W={cfg.W}, stride={cfg.stride}, pad={cfg.pad}: the "
            "kernel ignores stride and padding and computes output (y, x) from input pixel y*W + x, so the last "
            f"output reads pixel {(cfg.Ho - 1) * cfg.W + cfg.Wo - 1} of an image of {cfg.H * cfg.W} pixels "
            "(semantics.md §7). Use an output grid within the input (no padding; an explicit Ho, Wo no larger "
            "than H, W)")
    nc = cluster.num_cores
    ranges = _ranges(cfg, cluster)
    half = cfg.Ho % nc != 0 and cfg.Wo > 1
    if half and cfg.out_type.bits < 8:
        for core, r in enumerate(ranges):
            if r.rows >= 2 and not r.empty:
                raise UnsupportedConfig(
                    "pointwise-output-skip",
                    f"{cfg.out_type} output, Ho={cfg.Ho} not a multiple of {nc} cores and Wo={cfg.Wo} > 1 (half-"
                    f"width split): core {core} computes {r.rows} rows, and after each row the kernel skips the "
                    f"other section's pixels by Co={cfg.Co} bytes per pixel instead of Co*{cfg.out_type.bits}/8, so "
                    "its later rows "
                    "are stored in wrong places (some outputs never written, others overwritten, stores past the "
                    "output) (semantics.md §7 defect 4). Use 8-bit output, Ho a multiple of the core count, at "
                    "most one row per core (Ho <= cores/2), or semantics='ideal'")
    if cfg.bias:
        for core, r in enumerate(ranges):
            if not r.leftover or r.empty:
                continue
            if r.rows >= 2 and r.pairs_per_row:
                raise UnsupportedConfig(
                    "pointwise-bias-drift",
                    f"bias with core {core} computing {r.rows} rows of odd width {r.width}: each leftover pixel "
                    f"advances the bias pointer by Co={cfg.Co} bytes and never rewinds it, so the pixel pairs of "
                    f"its second row read int32 bias words at byte {cfg.Co} + 4c, past the {4 * cfg.Co}-byte bias "
                    "array for the last channels (semantics.md §7 defect 3). Use no bias, even section widths, "
                    "at most one row per core, or semantics='ideal'")
            if r.rows > 4:
                raise UnsupportedConfig(
                    "pointwise-bias-drift",
                    f"bias with core {core} computing {r.rows} leftover pixels (width {r.width}): the j-th reads "
                    f"the int8 bias byte j*Co + c, past the {4 * cfg.Co}-byte bias array from j = 4 on "
                    "(semantics.md §7 defect 3). Use no bias, even section widths, at most 4 rows per core, or "
                    "semantics='ideal'")


def _requant_exact(acc, kappa, lam, cfg: PointwiseConfig, p) -> tuple[np.ndarray, np.ndarray]:
    """numpy int64 requantisation (§4.1) of accumulators ``acc`` (..., Co) -> (values, ok); ok = False where the
    accumulator or an intermediate leaves int32 (wrap-around: the interval argument of ``check_inputs`` fails)."""
    lim = 1 << 31

    def in32(v):
        return (v >= -lim) & (v < lim)

    s = int(p.out_shift) & 31
    ok = in32(acc)
    m = quant.mode(cfg.relu, cfg.bn)
    if m == quant.MODE_BN and cfg.bn_bits == 64:  # exact in int64; the clip sees the low 32 bits (§4.3)
        t = (kappa * acc + lam) >> (int(p.out_shift) & 63)
        ok &= in32(t)
        s = 0
    elif m == quant.MODE_BN:
        t = kappa * acc
        ok &= in32(t)
        t = t + lam
        ok &= in32(t)
    elif m == quant.MODE_MULT:
        t = quant.int16(int(p.out_mult)) * acc
        ok &= in32(t)
    else:
        t = acc
    return np.clip(t >> s, cfg.out_type.lo, cfg.out_type.hi), ok


def check_inputs(cfg: PointwiseConfig, x_words, w_words, params, cluster: Cluster = GAP8) -> None:
    """``check`` for these inputs: the configuration rules, then ``pointwise-leftover-overread`` only if an output
    depends on the memory past the input.

    A leftover pixel with sub-byte input reads Ci bytes at byte (y*W + x)*Ci of the packed image (§7.1); where
    that runs past the image, each output channel's accumulator is known up to the unknown bytes, i.e. lies in
    an exact interval. The output is defined iff requantisation maps both ends to the same value without int32
    wrap-around. ``x_words``: (words,) or (batch, words) uint32 (concrete); ``w_words``: packed weights."""
    _check_config(cfg, cluster)
    lefts = _overread_leftovers(cfg, cluster)
    if not lefts:
        return
    p = conv._as_params(params, cfg)
    ci, co = cfg.Ci, cfg.Co
    nb = _in_bytes(cfg)
    xb = packing.words_to_bytes(np.atleast_2d(np.asarray(x_words, np.uint32)))[:, :nb].astype(np.int64)
    w = packing.unpack(np.asarray(w_words, np.uint32), cfg.w_type, co * ci).reshape(co, ci)
    k = np.arange(ci)
    tail_signed = cfg.in_type.signed & (k >= (ci // _simd_step(cfg.w_type.bits)) * _simd_step(cfg.w_type.bits))
    r_lo, r_hi = np.where(tail_signed, -128, 0), np.where(tail_signed, 127, 255)
    b8 = None if p.bias is None else np.asarray(p.bias, "<i4").view(np.int8).astype(np.int64)
    kappa, lam = np.asarray(p.kappa, np.int64), np.asarray(p.lam, np.int64)
    for core, j, y, x in lefts:
        off = (y * cfg.W + x) * ci + k
        inb = off < nb
        v = np.where(inb, xb[:, np.minimum(off, nb - 1)], 0)
        v = np.where(tail_signed & (v >= 128), v - 256, v)
        known = v @ w.T + (0 if b8 is None else b8[j * co:(j + 1) * co])  # in range by check()
        lo = np.minimum(r_lo * w, r_hi * w)[:, ~inb].sum(1)
        hi = np.maximum(r_lo * w, r_hi * w)[:, ~inb].sum(1)
        v_lo, ok_lo = _requant_exact(known + lo, kappa, lam, cfg, p)
        v_hi, ok_hi = _requant_exact(known + hi, kappa, lam, cfg, p)
        bad = np.argwhere(~(ok_lo & ok_hi & (v_lo == v_hi)))
        if len(bad):
            b, c = (int(t) for t in bad[0])
            raise UnsupportedConfig(
                "pointwise-leftover-overread",
                f"{cfg.in_type} input: the leftover pixel (y, x)=({y}, {x}) of core {core} reads input bytes "
                f"[{off[0]}, {off[-1] + 1}) as 8-bit activations but the image has {nb} bytes, and output channel "
                f"{c}{f' of batch item {b}' if xb.shape[0] > 1 else ''} depends on the {int((~inb).sum())} bytes "
                f"past it (it can be anything in [{int(v_lo[b, c])}, {int(v_hi[b, c])}]) (semantics.md §7.1, "
                "§15.2). Use an even column range per core (no leftover pixel), 8-bit input, "
                "jaxpulp.kernels.conv with a 1x1 kernel, or semantics='ideal'")


# ---------------------------------------------------------------------------------------- fast paths


def _accumulate(g: Geometry, x_words, w_words, bias, bk: Bucket):
    """int32 accumulators (Ho, Wo, Co) for traced geometry: pairs (and ideal) from the unpacked input pixel,
    library leftover pixels from the raw input bytes with the int8 bias byte (§7)."""
    x8, w8 = conv._unpack_inputs(g, x_words, w_words, bk)
    w8 = w8.reshape(bk.Co, bk.Ci)
    lib = g.library != 0
    oy = jnp.arange(bk.Ho)[:, None]
    ox = jnp.arange(bk.Wo)[None, :]
    flat = oy * g.W + ox  # library: stride, padding and kernel ignored (§7)
    iy = jnp.where(lib, flat // g.W, oy * g.sy - g.pt)
    ix = jnp.where(lib, flat % g.W, ox * g.sx - g.pl)
    valid = (iy >= 0) & (iy < g.H) & (ix >= 0) & (ix < g.W)
    pix = x8[jnp.clip(iy, 0, bk.H - 1), jnp.clip(ix, 0, bk.W - 1)]
    pix = jnp.where(valid[..., None], pix, 0)
    acc = _engine.exact_int_matmul(pix.reshape(-1, bk.Ci), w8.T).reshape(bk.Ho, bk.Wo, bk.Co) + bias
    # leftover pixels: Ci raw input bytes at byte flat*Ci; vector part unsigned, scalar tail signed if si
    owner, pair, j = cluster_run.conv_pixel_roles(g.Ho, g.Wo, g.ncores, (bk.Ho, bk.Wo))
    left = lib & (owner >= 0) & ~pair
    k = jnp.arange(bk.Ci)
    off = flat[..., None] * g.Ci + k
    inb = left[..., None] & (k < g.Ci) & (off < (g.H * g.W * g.Ci * g.bi) >> 3)
    byte = packing.extract_elements(x_words, jnp.where(inb, off, 0), 8, 0)
    step = 32 // g.bw
    signed = (g.si != 0) & (k >= (g.Ci // step) * step) & (byte >= 128)
    lv = jnp.where(inb, jnp.where(signed, byte - 256, byte), 0)
    acc_left = _engine.exact_int_matmul(lv.reshape(-1, bk.Ci), w8.T).reshape(bk.Ho, bk.Wo, bk.Co)
    bidx = j[..., None] * g.Co + jnp.arange(bk.Co)
    bvalid = left[..., None] & (bidx < 4 * bk.Co)
    b8 = packing.extract_elements(jax.lax.bitcast_convert_type(bias, jnp.uint32), jnp.where(bvalid, bidx, 0), 8, 1)
    return jnp.where(left[..., None], acc_left + jnp.where(bvalid, b8, 0), acc)


def _packed(g: Geometry, x_words, w_words, p: Params, bk: Bucket, bn_bits: int = 32):
    acc = _accumulate(g, x_words, w_words, p.bias, bk)
    return conv._pack_output(g, conv._requantise(g, acc, p, bk, bn_bits), bk)


@functools.partial(jax.jit, static_argnames=("bk", "bn_bits"))
def _packed_cases(g, x_words, w_words, p, bk, bn_bits=32):
    """Every argument batched: one call per configuration (the golden runner's shared compiled function);
    ``bn_bits`` (static): the library tree of the BN requantisation (§4.3)."""
    return jax.vmap(functools.partial(_packed, bk=bk, bn_bits=bn_bits))(g, x_words, w_words, p)


def _pixel_index(cfg: PointwiseConfig) -> np.ndarray:
    """Static flat input pixel of every output pixel (Ho*Wo,), H*W where the ideal layer reads padding."""
    oy, ox = np.meshgrid(np.arange(cfg.Ho), np.arange(cfg.Wo), indexing="ij")
    if cfg.semantics == "library":
        return (oy * cfg.W + ox).reshape(-1)
    iy, ix = oy * cfg.stride[0] - cfg.pad[0], ox * cfg.stride[1] - cfg.pad[2]
    ok = (iy >= 0) & (iy < cfg.H) & (ix >= 0) & (ix < cfg.W)
    return np.where(ok, iy * cfg.W + ix, cfg.H * cfg.W).reshape(-1)


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_packed(x_words, w_words, p: Params, cfg: PointwiseConfig, cluster: Cluster):
    """Packed path for one static configuration (batch axis first, or none): static-shift unpack,
    ``_fast_lanes``, static-shift pack."""
    xb = x_words if x_words.ndim == 2 else x_words[None]
    it = cfg.in_type
    x = _engine.unpack_static(xb, it.bits, it.signed, cfg.H * cfg.W * cfg.Ci)
    out = _engine.pack_static_grouped(_engine.flat(_fast_lanes(x, w_words, p, cfg, cluster, xb)), cfg.out_type.bits)
    return out if x_words.ndim == 2 else out[0]


def _fast_lanes(x, w_words, p: Params, cfg: PointwiseConfig, cluster: Cluster, x_words=None):
    """The packed path on lanes (see ``conv._fast_lanes``): x (batch, H*W*Ci) int32 -> (batch, Ho, Wo, Co) int32.
    One exact GEMM over all output pixels, the leftover pixels recomputed from the raw input bytes (library;
    ``x_words``: the input image if at hand, else packed from the lanes), conv's static requantisation."""
    it, wt = cfg.in_type, cfg.w_type
    ci, co = cfg.Ci, cfg.Co
    batch = x.shape[0]
    x = x.reshape(batch, -1)
    x8 = x.reshape(batch, -1, ci)
    x8 = jnp.concatenate([x8, jnp.zeros((batch, 1, ci), jnp.int32)], axis=1)  # pixel H*W: padding
    if isinstance(w_words, conv.Weights):  # unpacked once (``prepare_weights``), not in every call and step
        w8, total = w_words.gemm, w_words.total
    else:
        w8, total = _engine.unpack_static(w_words, wt.bits, True, co * ci).reshape(co, ci), None
    idx = _pixel_index(cfg)
    pix = x8[:, :idx.size] if np.array_equal(idx, np.arange(idx.size)) else x8[:, idx]
    if conv.int8_gemm_1x1(ci, co):  # the lanes lie within cfg.in_type (<= 8 bits): one exact int8 GEMM
        off = _engine.int8_offset((it.bits, it.signed))
        acc = _engine.int8_matmul(pix.reshape(-1, ci), w8, off, total).reshape(batch, idx.size, co)
    else:
        w8 = jnp.asarray(w8, jnp.int32)
        acc = _engine.exact_int_matmul(pix, w8.T)  # (batch, Ho*Wo, Co)
    if p.bias is not None:
        acc = acc + p.bias
    lefts = _leftovers(cfg, cluster) if cfg.semantics == "library" else []
    if lefts and (it.signed or it.bits < 8 or p.bias is not None):
        _, j, y, x_ = (np.array(t) for t in zip(*lefts, strict=True))
        nb = _in_bytes(cfg)
        off = ((y * cfg.W + x_) * ci)[:, None] + np.arange(ci)
        inb = off < nb
        words = _engine.pack_static(x, it.bits) if x_words is None else x_words
        xb = _engine.unpack_static(words, 8, False, nb)
        byte = jnp.where(inb, xb[:, np.where(inb, off, 0)], 0)
        step = _simd_step(wt.bits)
        if it.signed:
            tail = np.arange(ci) >= (ci // step) * step
            byte = jnp.where(tail & (byte >= 128), byte - 256, byte)
        acc_left = _engine.exact_int_matmul(byte, jnp.asarray(w8, jnp.int32).T)
        if p.bias is not None:
            bidx = j[:, None] * co + np.arange(co)
            word = jax.lax.bitcast_convert_type(p.bias, jnp.uint32)[bidx >> 2]
            b8 = ((word >> (8 * (bidx & 3)).astype(np.uint32)) & 0xFF).astype(jnp.int32)
            acc_left = acc_left + jnp.where(b8 >= 128, b8 - 256, b8)
        acc = acc.at[:, y * cfg.Wo + x_].set(acc_left)
    return conv.requantise_static(acc.reshape(batch, cfg.Ho, cfg.Wo, co), p, cfg, cluster)


# -------------------------------------------------------------------------------------- public API


def _host_params(params, cfg: PointwiseConfig):
    """``conv._as_params`` for parameters given as host values (numpy / Python ints), without a device dispatch
    per argument; None where ``conv._as_params`` must decide (jax arrays, other containers, any invalid value:
    it raises the error)."""
    if not isinstance(params, conv.Params) or (params.bias is not None) != bool(cfg.bias):
        return None
    vecs = [params.kappa, params.lam] + ([params.bias] if cfg.bias else [])
    if not all(isinstance(v, np.ndarray) and v.shape == (cfg.Co,) and np.issubdtype(v.dtype, np.integer)
               for v in vecs):
        return None
    _engine.check_int32_params(params)  # as conv._as_params: values outside int32 are refused, not wrapped
    if not all(isinstance(v, (int, np.integer)) for v in (params.out_mult, params.out_shift)):
        return None
    kappa, lam, bias = (v if isinstance(v, np.ndarray) else None for v in (params.kappa, params.lam, params.bias))
    assert kappa is not None and lam is not None  # checked above: numpy vectors
    return Params(kappa.astype(np.int32), lam.astype(np.int32), *_engine.requant_scalars(params),
                  bias.astype(np.int32) if bias is not None else None)


def run(x_words, w_words, params, *, cfg: PointwiseConfig, cluster: Cluster = GAP8, return_cost: bool = False):
    """Packed path. ``x_words``: HWC input image (uint32 words, optionally a leading batch axis);
    ``w_words``: weights [Co][Ci]; returns the packed HWC output image (uint32 words, batch kept).
    With ``return_cost=True`` returns ``Costed(output, cost)`` (per-core counts and cycles of one call)."""
    _check_config(cfg, cluster)
    p = _host_params(params, cfg) or conv._as_params(params, cfg)
    nx = _engine.words_for(cfg.H * cfg.W * cfg.Ci, cfg.in_type.bits)
    nw = _engine.words_for(cfg.Co * cfg.Ci, cfg.w_type.bits)
    x = _engine.packed_words(x_words, nx, "x_words")
    w = _engine.packed_words(w_words, nw, "w_words", batch=False)
    if _overread_leftovers(cfg, cluster):  # the only data-dependent rule
        if any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves((x, w, p))):
            check(cfg, cluster)  # under jit / vmap the inputs are not known: the conservative rule
        else:
            check_inputs(cfg, x, w, p, cluster)
    out = _fast_packed(x, w, p, cfg, cluster)  # static-shift packing: exactly the output words, batch kept
    return _engine.costed(out, cfg, cluster, return_cost)


def prepare_weights(w, cfg: PointwiseConfig) -> conv.Weights:
    """The weights ``w`` (Co, 1, 1, Ci) ints (host, numpy: the values of the weight image) unpacked once, for
    ``run_lanes``: ``conv.Weights`` with ``gemm`` the (Co, Ci) int8 values and ``total`` each filter's sum (the int8
    GEMM's offset share). The same bits as the image; a network prepares them once instead of unpacking the image
    in every call and step. Raises for a wrong shape or values outside int8."""
    w = _engine.int8_weights(w, (cfg.Co, 1, 1, cfg.Ci), "(Co, 1, 1, Ci)", cfg.w_type)
    return conv.gemm_weights(w.reshape(cfg.Co, cfg.Ci))


def run_lanes(x, w_words, params, *, cfg: PointwiseConfig, cluster: Cluster = GAP8):
    """``run`` on lanes (see ``conv.run_lanes``): x (batch, H*W*Ci) int32 -> (batch, Ho, Wo, Co) int32.
    ``w_words``: the weight image, or ``prepare_weights`` of its values."""
    _check_config(cfg, cluster)
    p = _host_params(params, cfg) or conv._as_params(params, cfg)
    if isinstance(w_words, conv.Weights):
        conv.require_layout(w_words, conv.gemm_layout(cfg.Co, cfg.Ci), "w_words",
                            "pointwise.prepare_weights for this configuration")
        w = w_words
    else:
        w = _engine.packed_words(w_words, _engine.words_for(cfg.Co * cfg.Ci, cfg.w_type.bits), "w_words",
                                 batch=False)
    x = _engine.lanes(x, cfg.H * cfg.W * cfg.Ci, "x", cfg.in_type, "the input image's elements")
    x = jnp.asarray(x) if not isinstance(x, jax.core.Tracer) else x
    if _overread_leftovers(cfg, cluster):  # the only data-dependent rule
        if any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves((x, w, p))):
            check(cfg, cluster)  # under jit / vmap the inputs are not known: the conservative rule
        else:
            image = packing.pack(np.asarray(w.gemm), cfg.w_type) if isinstance(w, conv.Weights) else w
            check_inputs(cfg, _engine.pack_static(x, cfg.in_type.bits), image, p, cluster)
    return _fast_lanes(x, w, p, cfg, cluster)


def run_values(x, w, params, *, cfg: PointwiseConfig, cluster: Cluster = GAP8):
    """Value path: int tensors ``x`` (H, W, Ci) or (batch, H, W, Ci) and ``w`` (Co, 1, 1, Ci) -> int32 outputs
    (Ho, Wo, Co); the intended arithmetic (``semantics="ideal"``), i.e. ``conv.run_values`` with a 1x1 kernel."""
    _engine.check_config(cfg, ConvConfig, "pointwise")
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    return conv.run_values(x, w, params, cfg=cfg, cluster=cluster)


def cost(cfg: PointwiseConfig, cluster: Cluster = GAP8):
    """Per-core instruction counts and cycles (see ``jaxpulp.cost``)."""
    from jaxpulp.cost import kernel_cost

    return kernel_cost(cfg, cluster)


# ------------------------------------------------------------------------------------ reference twin


def reference(x, w, params, cfg: PointwiseConfig, cluster: Cluster = GAP8, guard=None) -> np.ndarray:
    """Plain numpy model that follows the C kernel core by core (§7, §5.3): per row, pixel pairs through the 4x2
    matmul (4-channel blocks, then leftover channels), then the leftover pixel's scalar loop over the raw input
    bytes with the int8 bias pointer; requant (§4). ``x`` (H, W, Ci), ``w`` (Co, 1, 1, Ci) int arrays; returns
    int32 (Ho, Wo, Co). ``guard``: uint8 bytes of the memory after the input image; without it, an output that
    depends on that memory raises ``UnsupportedConfig`` (``pointwise-leftover-overread``).
    ``semantics="ideal"`` delegates to ``conv.reference`` (a 1x1 conv)."""
    _check_config(cfg, cluster)
    if cfg.semantics == "ideal":
        return conv.reference(x, w, params, cfg, cluster)
    conv._as_params(params, cfg)
    params = _engine.as_params(params, Params)
    x = np.asarray(_engine.value_ints(x, "x", cfg.in_type), np.int64)
    w = np.asarray(_engine.value_ints(w, "w", cfg.w_type), np.int64)
    if x.shape != (cfg.H, cfg.W, cfg.Ci) or w.size != cfg.Co * cfg.Ci:
        raise JaxpulpError(f"x, w: shapes {x.shape}, {w.shape}, expected ({cfg.H}, {cfg.W}, {cfg.Ci}) and "
                           f"({cfg.Co}, 1, 1, {cfg.Ci})")
    w = w.reshape(cfg.Co, cfg.Ci)
    ci, co = cfg.Ci, cfg.Co
    mem = [int(b) for b in packing.words_to_bytes(packing.pack_hwc(x, cfg.in_type))[:_in_bytes(cfg)]]
    n_in = len(mem)
    if guard is not None:
        g = np.asarray(guard)
        if g.dtype != np.uint8 or g.ndim != 1:
            raise JaxpulpError(f"guard: dtype {g.dtype} shape {g.shape}, expected a 1-D uint8 array (the bytes "
                               "after the input image)")
        mem += [int(b) for b in g]
    pixels = x.reshape(cfg.H * cfg.W, ci)
    bias_mem = None if params.bias is None else [int(b) for b in np.asarray(params.bias, "<i4").view(np.uint8)]
    kappa = [int(v) for v in np.asarray(params.kappa)]
    lam = [int(v) for v in np.asarray(params.lam)]
    shift_mode = quant.mode(cfg.relu, cfg.bn) == quant.MODE_SHIFT
    step = _simd_step(cfg.w_type.bits)
    out = np.zeros((cfg.Ho, cfg.Wo, co), np.int32)

    def rq(acc, c, quirk):
        if quirk:
            return quant.unsigned_clip_as_signed_int(acc, params.out_shift, cfg.out_type.bits)
        return quant.requant_int(quant.wrap32(acc), relu=cfg.relu, bn=cfg.bn, kappa=kappa[c], lam=lam[c],
                                 out_mult=params.out_mult, out_shift=params.out_shift, lo=cfg.out_type.lo,
                                 hi=cfg.out_type.hi, bn_bits=cfg.bn_bits)

    def rq_checked(acc, c):
        """Requant of an accumulator that must not wrap (the interval argument); None where it would."""
        m16 = quant.int16(params.out_mult)
        lim = 1 << 31
        mode = quant.mode(cfg.relu, cfg.bn)
        if mode == quant.MODE_BN and cfg.bn_bits == 64:  # 64-bit exact; the clip sees the low 32 bits
            inner = [acc, (kappa[c] * acc + lam[c]) >> (int(params.out_shift) & 63)]
        else:
            inner = [acc] + ([kappa[c] * acc, kappa[c] * acc + lam[c]] if mode == quant.MODE_BN else
                             [m16 * acc] if mode == quant.MODE_MULT else [])
        return rq(acc, c, False) if all(-lim <= v < lim for v in inner) else None

    def bias32(ptr, c):
        if bias_mem is None:
            return 0
        off = ptr + 4 * c
        assert off + 4 <= len(bias_mem), "check() admits no bias read past the array"
        return int.from_bytes(bytes(bias_mem[off:off + 4]), "little", signed=True)

    def pair_pixel(y, px, ptr):
        acc = w @ pixels[y * cfg.W + px]
        block_end = (co // 4) * 4  # channels the 4x2 main block computes
        for c in range(co):
            quirk = cfg.out_type.signed and shift_mode and c < block_end
            out[y, px, c] = rq(int(acc[c]) + bias32(ptr, c), c, quirk)

    for core in range(cluster.num_cores):
        rng = split.conv_split(core, cfg.Ho, cfg.Wo, cluster.num_cores)
        ptr = 0  # function-level bias pointer, bytes
        for y in range(rng.row0, rng.row1):
            for n in range(rng.pairs_per_row):
                pair_pixel(y, rng.col0 + 2 * n, ptr)
                pair_pixel(y, rng.col0 + 2 * n + 1, ptr)
            if not rng.leftover:
                continue
            px = rng.col1 - 1
            base = (y * cfg.W + px) * ci
            for c in range(co):
                acc, lo, hi = 0, 0, 0
                if bias_mem is not None:
                    assert ptr < len(bias_mem), "check() admits no bias read past the array"
                    acc = bias_mem[ptr] - 256 * (bias_mem[ptr] >= 128)  # int8 *pBias++
                    ptr += 1
                for k in range(ci):
                    signed = cfg.in_type.signed and k >= (ci // step) * step  # scalar tail: int8_t inB1
                    if base + k < len(mem):
                        b = mem[base + k]
                        acc += (b - 256 if signed and b >= 128 else b) * int(w[c, k])
                    elif guard is not None:
                        raise JaxpulpError(f"guard: {len(mem) - n_in} bytes, but pixel ({y}, {px}) reads "
                                           f"{base + ci - n_in} bytes past the input")
                    else:
                        r = (-128, 127) if signed else (0, 255)
                        lo += min(r[0] * int(w[c, k]), r[1] * int(w[c, k]))
                        hi += max(r[0] * int(w[c, k]), r[1] * int(w[c, k]))
                v = rq(acc, c, False)
                if (lo, hi) != (0, 0):
                    v_lo, v_hi = rq_checked(acc + lo, c), rq_checked(acc + hi, c)
                    if v_lo is None or v_lo != v_hi:
                        raise UnsupportedConfig(
                            "pointwise-leftover-overread",
                            f"pixel ({y}, {px}) channel {c} depends on the memory after the input "
                            f"(semantics.md §7.1); pass guard=... to choose it")
                    v = v_lo
                out[y, px, c] = v
    return out
