"""Convolution ``pulp_nn_conv_<in>_<out>_<w>`` (108 variants): im2col + the 4x2 matmul, 8-core row split.

Three ways to run one configuration (``cfg``: a frozen ``ConvConfig``, a static jit argument):

* ``run(x_words, w_words, params, cfg=..)``  packed path: uint32 memory images in and out, lanes read as
  ``p.extract``/``sdotp`` see them, the library's deterministic quirks included (semantics.md §5, §6, §4.4);
* ``run_values(x, w, params, cfg=..)``      value path: int tensors in and out, the intended arithmetic;
* ``reference(x, w, params, cfg)``          numpy loops that follow the spec core by core (the twin).

``check(cfg)`` raises ``UnsupportedConfig`` where the library is undefined (names the rule).
Library quirks reproduced: signed SHIFT-CLIP outputs in the matmul's 4-channel block use the unsigned clip
(§4.4; pairs only, leftover pixels and leftover channels clip correctly); floor shifts, int16 ``out_mult``,
``out_shift`` mod 32, int32 wrap (§4.1). Refused: bias-pointer drift (§5.5), layouts the kernel cannot
address (channel / row / output multiples, §5.4, §6), inconsistent output geometry (§5.2).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing, quant
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _conv_forms, _engine, _host
from jaxpulp.kernels._conv_forms import Weights
from jaxpulp.kernels._engine import IntArrayLike, Scalar32
from jaxpulp.kernels.config import ConvConfig, out_dim

Config = ConvConfig


class Params(NamedTuple):
    """Per-call requantisation data: kappa / lam (int32, one per output channel; read only in BN mode),
    out_mult (uint16 argument, used as int16 in MULT mode), out_shift (bits), bias (int32 per channel or None)."""

    kappa: IntArrayLike
    lam: IntArrayLike
    out_mult: IntArrayLike = 0
    out_shift: IntArrayLike = 0
    bias: IntArrayLike | None = None


class Geometry(NamedTuple):
    """A configuration as int32 data (so one compiled function serves many configurations).

    Legend (all int32 scalars, the C kernel's argument in brackets; extents in elements, not bytes):

    * ``H, W, Ci`` input rows, columns, channels [dim_in_y, dim_in_x, ch_in]; ``Co`` output channels [ch_out].
    * ``Kh, Kw`` kernel rows, columns [dim_kernel_y, dim_kernel_x]; ``sy, sx`` vertical, horizontal stride
      [stride_y, stride_x]; ``pt, pl`` top, left zero padding [pad_top, pad_left] (bottom / right padding only
      enter through ``Ho, Wo``).
    * ``Ho, Wo`` output rows, columns [dim_out_y, dim_out_x].
    * ``bi, si`` input bits (2, 4, 8) and signedness (1 = signed); ``bo, so`` the same for the output; ``bw`` weight
      bits (weights are always signed).
    * ``relu, bn`` the flags [flag_relu, flag_batch_norm] that choose the requantisation (semantics.md §4.1).
    * ``ncores`` cluster cores; ``library`` 1 = reproduce the library's quirks, 0 = ``semantics="ideal"``.
    """

    H: Scalar32
    W: Scalar32
    Ci: Scalar32
    Co: Scalar32
    Kh: Scalar32
    Kw: Scalar32
    sy: Scalar32
    sx: Scalar32
    pt: Scalar32
    pl: Scalar32
    Ho: Scalar32
    Wo: Scalar32
    bi: Scalar32
    si: Scalar32
    bo: Scalar32
    so: Scalar32
    bw: Scalar32
    relu: Scalar32
    bn: Scalar32
    ncores: Scalar32
    library: Scalar32


class Bucket(NamedTuple):
    """Static array extents (elements) the compiled function is traced for; a configuration fits if every
    extent is at least its own."""

    H: int
    W: int
    Ci: int
    Co: int
    Kh: int
    Kw: int
    Ho: int
    Wo: int

    @property
    def x_words(self):
        return _engine.words_for(self.H * self.W * self.Ci, 8)

    @property
    def w_words(self):
        return _engine.words_for(self.Co * self.Kh * self.Kw * self.Ci, 8)

    @property
    def out_words(self):
        return _engine.words_for(self.Ho * self.Wo * self.Co, 8)


def geometry(cfg: ConvConfig, cluster: Cluster = GAP8) -> Geometry:
    t, _, left, _ = cfg.pad
    vals = (cfg.H, cfg.W, cfg.Ci, cfg.Co, cfg.Kh, cfg.Kw, cfg.stride[0], cfg.stride[1], t, left, cfg.Ho, cfg.Wo,
            cfg.in_type.bits, int(cfg.in_type.signed), cfg.out_type.bits, int(cfg.out_type.signed), cfg.w_type.bits,
            cfg.relu, cfg.bn, cluster.num_cores, int(cfg.semantics == "library"))
    return Geometry(*(np.int32(v) for v in vals))


def exact_bucket(cfg: ConvConfig) -> Bucket:
    return Bucket(cfg.H, cfg.W, cfg.Ci, cfg.Co, cfg.Kh, cfg.Kw, cfg.Ho, cfg.Wo)


def shared_bucket(cfgs) -> Bucket:
    """One bucket that fits every configuration in ``cfgs`` (extents rounded up so nearby shapes share it)."""
    r = _engine.round_up
    return Bucket(*(r(max(getattr(c, f) for c in cfgs)) if f not in ("Kh", "Kw")
                    else r(max(getattr(c, f) for c in cfgs), choices=(1, 3, 5, 7, 9, 11))
                    for f in Bucket._fields))


# ----------------------------------------------------------------------------------------------- check


def check_layout(cfg: ConvConfig) -> None:
    """The channel-multiple rules every im2col/matmul kernel (conv, pointwise) shares: whole-byte pixels, weight rows
    and output channel vectors (semantics.md §5.4, §6.1, §6.2, §16)."""
    bi, bo, bw = cfg.in_type.bits, cfg.out_type.bits, cfg.w_type.bits
    if (cfg.Ci * bi) % 8:
        raise UnsupportedConfig(
            "input-channel-multiple",
            f"Ci={cfg.Ci} with {cfg.in_type} input: a pixel must be whole bytes (Ci a multiple of {8 // bi}); "
            "the im2col tail counter of the C kernel never reaches zero otherwise (semantics.md §5.4)")
    if (cfg.K * bw) % 8:
        raise UnsupportedConfig(
            "weight-row-multiple",
            f"K=Ci*Kh*Kw={cfg.K} with {cfg.w_type} weights: each weight row must be whole bytes (K a multiple "
            f"of {8 // bw}); the matmul's uint16 tail counter wraps otherwise (semantics.md §6.1)")
    if (cfg.Co * bo) % 8:
        raise UnsupportedConfig(
            "output-channel-multiple",
            f"Co={cfg.Co} with {cfg.out_type} output: Co must be a multiple of {8 // bo}; the library never "
            "writes the last channel(s) otherwise (semantics.md §6.2)")


def check(cfg: ConvConfig, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule if the library does not define this call."""
    _engine.check_config(cfg, ConvConfig, "conv")
    check_layout(cfg)
    t, b, left, r = cfg.pad
    want = (out_dim(cfg.H, t, b, cfg.Kh, cfg.stride[0]), out_dim(cfg.W, left, r, cfg.Kw, cfg.stride[1]))
    if (cfg.Ho, cfg.Wo) != want or max(t, b) >= cfg.Kh or max(left, r) >= cfg.Kw:
        raise UnsupportedConfig(
            "output-geometry",
            f"(Ho, Wo)=({cfg.Ho}, {cfg.Wo}) with pad={cfg.pad}, kernel=({cfg.Kh}, {cfg.Kw}): expected {want} "
            "and padding smaller than the kernel; the interior im2col reads out of bounds otherwise (§5.2)")
    if cfg.K >= 1 << 16 or max(cfg.H, cfg.W, cfg.Ci, cfg.Co) >= 1 << 16:
        raise UnsupportedConfig("uint16-extent", f"cfg={cfg}: dimensions and K must be < 65536 (uint16 arguments)")
    if cfg.semantics == "library" and cfg.bias:
        for core in range(cluster.num_cores):
            rng = split.conv_split(core, cfg.Ho, cfg.Wo, cluster.num_cores)
            if rng.rows >= 2 and rng.leftover:
                raise UnsupportedConfig(
                    "conv-bias-drift",
                    f"bias with core {core} computing {rng.rows} rows of odd width {rng.width}: the leftover-pixel "
                    "loop advances the bias pointer by Co words per row and never rewinds it, so from the "
                    "second row on the kernel reads past the bias array (semantics.md §5.5). "
                    "Use semantics='ideal', no bias, or a shape where every core has <= 1 row or even widths")


# ---------------------------------------------------------------------------------------- fast paths


def _unpack_inputs(g: Geometry, x_words, w_words, bk: Bucket):
    """X8 (H, W, Ci) and W8 (Co, Kh, Kw, Ci) as the 8-bit values the im2col / weight unpack produce."""
    y, x, c = jnp.meshgrid(jnp.arange(bk.H), jnp.arange(bk.W), jnp.arange(bk.Ci), indexing="ij")
    xi = (y * g.W + x) * g.Ci + c
    xv = (y < g.H) & (x < g.W) & (c < g.Ci)
    x8 = jnp.where(xv, packing.extract_elements(x_words, jnp.where(xv, xi, 0), g.bi, g.si), 0)
    o, ky, kx, c = jnp.meshgrid(jnp.arange(bk.Co), jnp.arange(bk.Kh), jnp.arange(bk.Kw), jnp.arange(bk.Ci),
                                indexing="ij")
    wi = ((o * g.Kh + ky) * g.Kw + kx) * g.Ci + c
    wv = (o < g.Co) & (ky < g.Kh) & (kx < g.Kw) & (c < g.Ci)
    w8 = jnp.where(wv, packing.extract_elements(w_words, jnp.where(wv, wi, 0), g.bw, 1), 0)
    return x8, w8


def _accumulate(g: Geometry, x8, w8, bias, bk: Bucket):
    """int32 accumulators (Ho, Wo, Co) = zero-padded correlation + bias, wrap-around (§5.2)."""
    ky = jnp.arange(bk.Kh)
    kx = jnp.arange(bk.Kw)
    iy = jnp.arange(bk.Ho)[:, None] * g.sy - g.pt + ky[None, :]
    ix = jnp.arange(bk.Wo)[:, None] * g.sx - g.pl + kx[None, :]
    vy = (iy >= 0) & (iy < g.H) & (ky[None, :] < g.Kh)
    vx = (ix >= 0) & (ix < g.W) & (kx[None, :] < g.Kw)
    patches = x8[jnp.clip(iy, 0, bk.H - 1)[:, None, :, None], jnp.clip(ix, 0, bk.W - 1)[None, :, None, :]]
    valid = vy[:, None, :, None] & vx[None, :, None, :]
    patches = jnp.where(valid[..., None], patches, 0)
    acc = _engine.exact_int_matmul(patches.reshape(bk.Ho * bk.Wo, -1), w8.reshape(bk.Co, -1).T)
    acc = acc.reshape(bk.Ho, bk.Wo, bk.Co)
    if bias is not None:
        acc = acc + bias[None, None, :]
    return acc


def _requantise(g: Geometry, acc, p: Params, bk: Bucket, bn_bits: int = 32):
    """Output values (Ho, Wo, Co): §4.1 requant, with the §4.4 signed SHIFT-CLIP quirk in the 4x2 block.
    ``bn_bits`` (static): the library tree (32bit/ or 64bit/, §4.3)."""
    lo, hi = quant.type_bounds(g.bo, g.so)
    out = quant.requant(acc, relu=g.relu, bn=g.bn, kappa=jnp.asarray(p.kappa)[None, None, :],
                        lam=jnp.asarray(p.lam)[None, None, :],
                        out_mult=p.out_mult, out_shift=p.out_shift, lo=lo, hi=hi, bn_bits=bn_bits)
    _, pair, _ = cluster_run.conv_pixel_roles(g.Ho, g.Wo, g.ncores, (bk.Ho, bk.Wo))
    block = jnp.arange(bk.Co) < (g.Co // 4) * 4
    shift_mode = (quant.mode_traced(g.relu, g.bn) == quant.MODE_SHIFT)
    quirk = (g.library != 0) & (g.so != 0) & shift_mode & pair[:, :, None] & block[None, None, :]
    return jnp.where(quirk, quant.unsigned_clip_as_signed(acc, p.out_shift, g.bo), out)


def _values(g: Geometry, x8, w8, p: Params, bk: Bucket, bn_bits: int = 32):
    return _requantise(g, _accumulate(g, x8, w8, p.bias, bk), p, bk, bn_bits)


def _pack_output(g: Geometry, vals, bk: Bucket):
    o_y, o_x, o_c = jnp.meshgrid(jnp.arange(bk.Ho), jnp.arange(bk.Wo), jnp.arange(bk.Co), indexing="ij")
    idx = (o_y * g.Wo + o_x) * g.Co + o_c
    valid = (o_y < g.Ho) & (o_x < g.Wo) & (o_c < g.Co)
    return _engine.scatter_pack(vals, idx, valid, g.bo, bk.out_words)


def _packed(g: Geometry, x_words, w_words, p: Params, bk: Bucket, bn_bits: int = 32):
    x8, w8 = _unpack_inputs(g, x_words, w_words, bk)
    return _pack_output(g, _values(g, x8, w8, p, bk, bn_bits), bk)


@functools.partial(jax.jit, static_argnames=("bk", "bn_bits"))
def _packed_cases(g, x_words, w_words, p, bk, bn_bits=32):
    """Every argument batched: one call per configuration (the golden runner's shared compiled function);
    ``bn_bits`` (static): the library tree of the BN requantisation (§4.3)."""
    return jax.vmap(functools.partial(_packed, bk=bk, bn_bits=bn_bits))(g, x_words, w_words, p)


@functools.partial(jax.jit, static_argnames=("bk", "bn_bits"))
def _values_batch(g, x, w, p, bk, bn_bits=32):
    return jax.vmap(_values, in_axes=(None, 0, None, None, None, None))(g, x, w, p, bk, bn_bits)


@functools.partial(jax.jit, static_argnames=("bk",))
def _values_cases(g, x, w, p, bk):
    return jax.vmap(_values, in_axes=(0, 0, 0, 0, None))(g, x, w, p, bk)


def accumulate(x, w, bias, cfg: ConvConfig, groups: tuple[int, ...] | None = None, x_type=None):
    """Value-path accumulators, public entry: int32 (batch, Ho, Wo, Co) = zero-padded correlation of x (batch,
    H, W, Ci) with w (Co, Kh, Kw, Ci) plus bias (Co,) or None, wrap-around int32 like the core (the ideal
    arithmetic, no library quirks). Traceable (``jit`` / ``vmap``).

    ``x_type``: the (bits, signed) pair (ints or traced int32 scalars) of the type x's values lie in, when the
    precision is data (the value path); then the accumulators may come from an int8 convolution (``x`` moved into
    int8 by a traced offset, see ``_engine.int8_offset``). None: x lies within ``cfg.in_type`` -- or, when the precision
    is data, anywhere in [-255, 255] with ``cfg.in_type`` the widest type (e.g. u8 x i8): float32 convolutions
    whose partial sums the types bound (see ``_fast_accumulate``). ``groups`` (static): the input-channel group
    starts ``_engine.weight_bound_groups`` proved exact for these very weights (then only x's range must hold);
    None: groups sized by the worst case of the types (float32 forms only; int8 needs none). ``w`` may also be
    ``prepare_weights(w, cfg)`` (laid out once per network)."""
    x = jnp.asarray(x, jnp.int32)
    w = w if isinstance(w, Weights) else jnp.asarray(w, jnp.int32)
    b = None if bias is None else jnp.asarray(bias, jnp.int32)
    if x_type is None:
        if isinstance(w, Weights) and w.hwio is None:  # prepared for the 1x1 int8 GEMM: float32 HWIO here
            w = Weights(w.gemm.T.reshape(1, 1, cfg.Ci, cfg.Co).astype(jnp.float32), w.total)
        elif isinstance(w, Weights) and w.hwio.dtype != jnp.float32:  # for an int8 form: float32 HWIO here
            w = _float_hwio(w, cfg)
        acc = _float_accumulate(x, w, cfg, groups)
        return acc if b is None else acc + b
    return _fast_accumulate(x, w, b, cfg, groups, x_off=_engine.int8_offset(x_type))


def prepare_weights(w, cfg: ConvConfig) -> Weights:
    """The weights ``w`` (Co, Kh, Kw, Ci) ints (host, numpy) laid out once for the form ``_fast_accumulate``
    takes for ``cfg`` on the current backend (``int8_form`` at batch 1, the form most batch sizes share): HWIO int8
    for the int8 convolution (with zero filters up to ``_conv_forms.WIDE_CO`` outputs for "wide"; larger batches at
    stride 2 read that HWIO as float32), with zero input channels where YNNPACK runs it (``_conv_forms.conv_hwio``),
    and with the banded or im2col matrix where larger batches take that form (``_larger_batch_gemm``); (Co, Ci)
    int8 for the 1x1 int8 GEMM; the banded matrix (depth padded to a multiple of 4) and HWIO int8 for "band"; the
    (Co, K padded to 32) patch matrix and HWIO int8 for "im2col"; HWIO float32 otherwise; plus each filter's
    weight sum. Pass
    the result wherever ``accumulate`` / ``run_lanes`` take the weights (the same bits; a network prepares its
    weights once instead of on every call and step). Raises for a wrong shape, or for weights outside int8 (every
    PULP-NN weight type has at most 8 bits)."""
    w = _engine.int8_weights(w, (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci), "(Co, Kh, Kw, Ci)", cfg.w_type)
    form = int8_form(cfg, batch=1)
    if form == "gemm":
        return gemm_weights(w.reshape(cfg.Co, cfg.Ci))
    hwio = np.ascontiguousarray(np.transpose(w, (1, 2, 3, 0)))
    total = w.sum(axis=(1, 2, 3)).astype(np.int32)
    if form == "band":  # the banded GEMM's matrix, and the int8 HWIO (float32 forms; "conv" for larger batches)
        return Weights(hwio.astype(np.int8), total, _conv_forms.band_weights(w, cfg, np))
    if form == "im2col":  # the im2col GEMM's matrix, and the int8 HWIO for the value path's float32 forms
        return Weights(hwio.astype(np.int8), total, _conv_forms.im2col_weights(w, cfg, xp=np))
    if form in ("conv", "wide"):  # int8 HWIO with its zero filters ("wide") and zero input channels
        hwio = hwio.astype(np.int8)
        larger = _larger_batch_gemm(cfg, form)  # the GEMM matrix of the larger batches' form, if any
        gemm = (None if larger is None else _conv_forms.band_weights(w, cfg, np) if larger == "band"
                else _conv_forms.im2col_weights(w, cfg, xp=np))
        return Weights(_conv_forms.conv_hwio(_conv_forms.wide_hwio(hwio, np) if form == "wide" else hwio, cfg, np),
                       total, gemm)
    return Weights(hwio.astype(np.float32), total)


def _larger_batch_gemm(cfg: ConvConfig, form: str | None) -> str | None:
    """The GEMM form ("band" or "im2col") whose matrix int8 convolution weights (``form``: ``int8_form`` at batch 1,
    "conv" or "wide") also carry, because larger batches take it: "band" above ``WIDE_MAX_PIXELS`` output pixels
    for "wide", "im2col" from ``YNN_IM2COL_MIN_PIXELS_BATCHED`` for "conv"; else None."""
    if form not in ("conv", "wide"):
        return None
    larger = int8_form(cfg)
    return larger if (form, larger) in (("wide", "band"), ("conv", "im2col")) else None


def gemm_weights(w: np.ndarray) -> Weights:
    """A 1x1 kernel's checked host weights (Co, Ci) (``_engine.int8_weights``) as the int8 GEMM reads them:
    ``Weights(None, total, gemm)`` with ``gemm`` the (Co, Ci) int8 values and ``total`` each filter's sum. The
    conv kernel's "gemm" form and the pointwise kernel (``pointwise.prepare_weights``) share this layout."""
    return Weights(None, w.sum(axis=1).astype(np.int32), np.ascontiguousarray(w).astype(np.int8))


def worst_case_groups(cfg: ConvConfig) -> tuple[int, ...]:
    """Input-channel group starts sized by the worst case of ``cfg``'s types (valid for any weights)."""
    per_tap = _engine.max_abs_product(cfg.in_type.bits, cfg.in_type.signed, cfg.w_type.bits, True)
    group = max(1, ((1 << 24) - 1) // (per_tap * cfg.Kh * cfg.Kw))
    return tuple(range(0, cfg.Ci, group))


# A KxK kernel over a few input channels (an RGB stem) is an int8 GEMM over explicit patches (see ``int8_form``):
# "band" for up to BAND_MAX_CHANNELS at stride 1, "im2col" for up to IM2COL_MAX_CHANNELS where XLA would hand the
# int8 convolution to YNNPACK (Co >= 17), which is slow there.
BAND_MAX_CHANNELS = 3
BAND_MAX_OVERHEAD = 3.0  # the banded GEMM's multiplies per useful one (``_conv_forms.band_overhead``) at most,
BAND_RULE_WIDTH = 4  # in blocks of this many pixels (the limit's measurements: ``_conv_forms.BAND_WIDTH`` was 4)
IM2COL_MAX_CHANNELS = 8

# Output pixels (batch * Ho * Wo) up to which a KxK conv of 2-8 input and at most 16 output channels is "band"
# rather than XLA's generic int8 loop (see ``int8_form``): no loss measured up to here, losses from 8,192 on.
BAND_SMALL_MAX_PIXELS = 4096

# Whether the host is an x86 CPU without int8 dot-product instructions (``_host.lacks_int8_dot``): XLA:CPU's int8
# convolutions and GEMMs then run at about its float32 rate, and ``int8_form`` takes explicit patches and one int8
# GEMM (im2col) where it was measured faster there. On a CPU with them, and where unknown, the rule measured on a
# CPU with them (VNNI / AMX) applies: the im2col GEMM was not measured there for more than 8 input channels.
NO_INT8_DOT: bool = _host.lacks_int8_dot()

# Output pixels (batch * Ho * Wo) from which a KxK conv that XLA:CPU would hand to YNNPACK as an int8 convolution
# (more than 16 channels in or out) is the im2col int8 GEMM instead where ``NO_INT8_DOT`` (see ``int8_form``): in a
# call of one input, and of several (``YNN_IM2COL_MIN_PIXELS_BATCHED``).
YNN_IM2COL_MIN_PIXELS = 512
YNN_IM2COL_MIN_PIXELS_BATCHED = 128
# ... and below those, a deep input (at least ``YNN_IM2COL_DEEP_CHANNELS`` channels) over at most
# ``YNN_IM2COL_DEEP_MAX_PIXELS`` output pixels in the call: YNNPACK's int8 convolution is slowest there.
YNN_IM2COL_DEEP_CHANNELS = 64
YNN_IM2COL_DEEP_MAX_PIXELS = 60

# Output pixels (batch * Ho * Wo) up to which a few-channel KxK conv (9-16 in, at most 16 out) is "wide" (see
# ``int8_form``): measured wins at 1,024-2,500, losses from 16,384 on (above: "band" at stride 1, else float32).
WIDE_MAX_PIXELS = 8192


def int8_form(cfg: ConvConfig, batch: int | None = None) -> str | None:
    """The static formulation rule of ``_fast_accumulate`` for ``batch`` inputs (None: unknown, taken as large):
    "conv" (``_conv_forms.int8_conv``), "wide" (the same with zero filters up to 24 outputs,
    ``_conv_forms.int8_conv_wide``), "gemm" (a 1x1
    kernel as one int8 GEMM, ``int8_pointwise``), "band" (one input channel, or up to ``BAND_MAX_CHANNELS`` at
    stride 1, a KxK kernel with few wasted products: row blocks times banded weights as one int8 GEMM,
    ``_conv_forms.int8_band``), "im2col"
    (2 to ``IM2COL_MAX_CHANNELS`` input channels and at least 17 outputs: explicit patches times the weights as one
    int8 GEMM, ``_conv_forms.int8_im2col``) or None (float32, ``_float_accumulate``).

    Chosen with ``benchmarks/conv_forms.py`` (per shape, against ``lax.conv`` float32 of the same shape in the
    same run) and checked on the whole network (DroNet, paired runs of the value path with and without the rule),
    on the 2-core AMD EPYC (AVX-512 VNNI, 32 MiB L3), jax 0.10.2, batch 16 / 128, machine shared: XLA's CPU
    backend hands int8 convolutions (int32 accumulation) to YNNPACK's VNNI kernels. Per DroNet shape at batch 16
    (ms, best of 7), int8 conv vs this module's float32 form: 2.47 vs 3.37 (Conv_15), 2.04 vs 2.44 (Conv_22),
    1.98 vs 2.71 (Conv_44), 2.07 vs 3.05 (Conv_66), 0.65 vs 0.78 (1x1 s2 Conv_8); batch 128: 23 vs 90 (Conv_15).
    Small channel counts (max(Ci, Co) <= 16) XLA keeps away from YNNPACK; a KxK int8 convolution then runs as
    XLA's generic int32 loop, which still beats its float32 convolution by far on MobileNetV1's first layer
    (128x128x3, 3x3 s2, 8 channels: 0.78 vs 5.70 ms; the whole MobileNetV1-0.25 value path 1.68x faster, paired
    runs), while a 1x1 int8 convolution is slower (pw1, 8 -> 16 channels: 1.61 vs 1.08 ms float32).
    That generic loop is fast for up to 8 input channels and 5-8x slower than the float32 convolution from 12 (2-core
    Intel Xeon with AMX, 3x3 s1 32x32, batch 16, best of 7, ms, int8 / float32: Ci 4 -> 8 0.33 / 0.62, 8 -> 8 0.37
    / 0.64, 8 -> 16 0.66 / 0.55, 12 -> 16 4.41 / 1.00, 16 -> 16 5.99 / 0.80; the bundled MLPerf-Tiny ResNet's and
    NEMO residual net's 16 -> 16 layers made them 0.35x of the float forward). More input channels than 8 with at
    most 16 both ways therefore are "wide" (zero filters up to 24 outputs, which XLA hands to YNNPACK) up to
    ``WIDE_MAX_PIXELS`` output pixels in the call, above it the banded int8 GEMM at stride 1 (where its overhead
    is at most ``BAND_MAX_OVERHEAD``: 2.0 for 3x3 over 32 columns) and float32 otherwise: alone, wide ties the
    float32 convolution at batch 8-16 (0.79 vs 0.80 ms for 16 -> 16, 32x32) and loses at 32 (2.12 vs 1.61); whole
    networks, value path, paired in one process (Xeon): float32 1.06 / 1.12x faster than wide on the MLPerf-Tiny
    ResNet at batch 16 / 128 (16,384 pixels a layer at 16), a tie on the NEMO residual net (40,000); at batch 1
    wide is the faster (ratio to the float forward, two runs each: ResNet 1.13 / 1.15 vs 0.99 / 1.02, residual
    1.40 / 1.47 vs 1.32 / 1.39; rechecked with the order shuffled: 1.50 vs 1.23, 1.78 vs 1.62). The band above
    the limit, against float32 (Xeon with AMX, paired, candidates shuffled): per shape, 16 -> 16 3x3 s1 32x32,
    0.62 vs 0.70 ms at batch 16, 0.98 vs 1.23 at 32 (at 128 alone 5.59 vs 4.46); in the network MLPerf-Tiny
    ResNet (steps of 32) 1.58 -> 1.93x the float forward at batch 16, 1.72 -> 2.26x at 128, still 1.21x faster
    in steps of 128 and a tie in steps of 256; NEMO residual net (25x25 layers) in steps of 16 / 32 1.07 /
    1.05-1.09x faster. Stride 2 (16 -> 16 over 100x100 / 50x50) ties or loses as a band: float32 there.
    XLA's generic loop (2-8 input channels, at most 16 outputs) splits a call over threads, and on a 2-core VM the
    hand-off weighs most in small calls: up to ``BAND_SMALL_MAX_PIXELS`` output pixels the banded GEMM takes them
    (any stride, where it wastes at most ``BAND_MAX_OVERHEAD``). Per shape (Xeon with AMX, order shuffled, us,
    generic loop / band, stride 1, at 1 / 4 / 16 inputs): 4 -> 4
    1x3 over 512 columns 93 / 80, 114 / 101, 123 / 102; 4 -> 8 3x3 16x16 125 / 93, 87 / 54, 172 / 133; 8 -> 8
    16x16 130 / 50, 112 / 99, 228 / 157; 4 -> 16 32x32 248 / 99, 264 / 163, 426 / 419; 8 -> 16 32x32 269 / 73,
    258 / 179, 770 / 450; 6 -> 12 24x24 205 / 92, 228 / 120, 605 / 287; 8 -> 8 8x8 90 / 94, 121 / 98, 107 / 94.
    Stride 2, at 1 / 4 inputs: 3 -> 8 3x3 128x128 246 / 123, 329 / 299; 32x32 70 / 47, 79 / 52; 4 -> 8 32x32 112 /
    75, 107 / 94; 8 -> 16 32x32 175 / 26, 152 / 54; 3 -> 16 16x16 67 / 78, 90 / 72; 8 -> 8 5x5 40x40 224 / 83, 542 /
    172. In the network, paired: EEGNet's 1x3 layers over 4 channels 1.13-1.19x faster at batch 1 (512 pixels), a
    tie at 2 / 4 / 8, 8% slower at 16 and 12% at 128 (8,192 / 16,384 pixels a layer: the generic loop stays
    there); MobileNetV1-0.25's 3 -> 8 s2 stem (4,096 pixels) 6.66 -> 8.35x the float forward at batch 1;
    miniMobileNetv2's 3 -> 16 s2 stem over 8x8 a tie.
    1x1 kernels with more than 8 channels (in or out) are one int8 x int8 -> int32 GEMM over batch * pixels
    (``int8_pointwise``, YNNPACK's VNNI GEMM), not the int8 convolution: MobileNetV1-0.25's value path, paired
    runs in one process (2-core EPYC, shared), int8 convolution -> float32 GEMM -> int8 GEMM: batch 128 77.4 ->
    49.7 -> 39.7 ms (1.95x in all), batch 16 7.3 -> 5.9 -> 5.0 ms, batch 1 1.09 -> 1.17 -> 1.00 ms; DroNet (three
    small 1x1 shortcut convs) 1.01-1.03x at batch 1 / 16. Alone the int8 convolution of such a layer is as fast as
    the GEMMs; in the network it is not (XLA fuses the producer's requantisation into its input conversion). The
    threshold: pw1 (8 -> 16) on the int8 GEMM or on float32 ties (batch 16, paired); at most 8 channels both ways
    (not in the bundled networks) stays float32, unmeasured.
    Ci == 1 with a KxK kernel (DroNet's first layer, 5x5 s2, 30% of its time) is the banded int8 GEMM: measured
    on a 2-core Intel Xeon with AMX (XLA:CPU's int8 GEMM 1,479 GMAC/s there, float32 148), per shape at batch 1 /
    16 / 128 0.29 / 2.87 / 96 ms vs 0.37 / 4.26 / 118 for the float32 form (``benchmarks/conv_forms.py``); the
    whole DroNet, paired in one process, values 1.07 / 1.18 / 1.20x and packed 1.00 / 1.16 / 1.18x faster at batch
    1 / 16 / 128. On the 2-core AMD EPYC with AVX2 only (``NO_INT8_DOT``: int8 GEMM at the float32 rate, so the
    band's 2.2x multiplies weigh more) it still wins, whole networks paired against float32 for every Ci == 1
    KxK layer (``benchmarks/network_ab.py``'s ``ab``, 25 reps, values / packed): DroNet 1.01 / 1.01x faster at
    batch 1, 1.08 / 1.06x at 16; QuantLab DroNet 1.00 / 1.01x, 1.06 / 1.07x; NEMO Frontnet 1.04 / 1.06x, 1.11 /
    1.14x.
    A few input channels (an RGB stem) with at least 17 outputs, where XLA hands the int8 convolution to YNNPACK:
    that convolution is slow there (per shape, 2-core Xeon with AMX, ms at batch 16, int8 convolution / im2col /
    band / this module's float32 form: 32x32x3 -> 24 3x3 s1 3.43 / 0.57 / 0.46 / 3.55, -> 32 s1 3.32 / 0.49 / 0.49 /
    1.68, -> 32 s2 0.88 / 0.24 / 0.38 / 0.48, -> 64 s1 2.29 / 0.90 / 0.91 / 0.89; 96x96x3 -> 32 s1 31.4 / 5.44 /
    4.48 / 14.6; 32x32 -> 32 s1 from 2 / 4 / 6 / 8 channels, without the float32 form: 3.47 / 0.52 / 0.38, 0.86 /
    0.66 / 1.10, 2.02 / 0.77 / 1.29, 0.95 / 0.60 / 1.09): explicit patches ("im2col") from 2 to 8 channels, the
    banded GEMM for up to 3 at stride 1, where it was the fastest (also at 16 outputs: the MLPerf-Tiny ResNet's
    32x32x3 -> 16 stem 0.35 vs 0.52 ms for XLA's generic int8 loop at batch 16, 0.04 vs 0.16 at batch 1). Whole
    networks, paired in one process, ratio to the float forward before -> after (packed / values): Deeploy
    miniMobileNet (8x8x3 -> 32 s2 stem) 1.60 / 1.57 -> 3.01 / 3.06 at batch 16, 1.58 / 1.61 -> 4.66 / 4.38 at 128,
    1.24 / 1.32 -> 1.39 / 1.38 at 1; MLPerf-Tiny ResNet 1.21 / 1.25 -> 1.54 / 1.63 at batch 1, 1.53 / 1.47 -> 1.53 /
    1.58 at 16. At most 16 outputs and stride 2 (MobileNetV1's 3 -> 8 stem) XLA's generic loop stays in large
    calls: it was the fastest there (small calls: the band, below).
    The banded GEMM only where it multiplies at most ``BAND_MAX_OVERHEAD`` times the useful products in blocks of
    ``BAND_RULE_WIDTH`` = 4 pixels (``_conv_forms.band_overhead``: 2.2 for 5x5 s2 over wide images, 2.0 for 3x3 s1;
    the limit was measured at that width, and keeps its layers where the blocks are narrower): the NEMO DS-CNN's and
    MLPerf-Tiny KWS DS-CNN's 10x4 s2 first layer over 5 output columns (4.0) took 0.39 ms in it at batch 16 vs
    0.22 as float32 (0.13 vs 0.02 at batch 1); whole networks, paired, ratio to the float forward band -> float32
    (packed / values): DS-CNN 3.38 / 3.32 -> 3.57 / 3.86 at batch 1, 9.13 / 10.59 -> 11.12 / 11.70 at 16, 15.1 /
    16.2 -> 18.9 / 21.2 at 128; KWS 3.02 / 3.15 -> 4.11 / 4.30 at 1, 16.2 / 18.4 -> 20.5 / 20.5 at 128.
    On an x86 CPU without int8 dot-product instructions (``NO_INT8_DOT``: no AVX-512 VNNI / AVX-VNNI / AMX;
    XLA:CPU's int8 GEMM then runs at about its float32 rate) every convolution YNNPACK would run ("conv": more
    than 16 channels in or out) is the im2col int8 GEMM from ``YNN_IM2COL_MIN_PIXELS`` output pixels in a call of
    one input and from ``YNN_IM2COL_MIN_PIXELS_BATCHED`` in a call of several (a step of a larger batch), and every
    9-16 -> at most 16 channel one is float32 at every batch (not "wide" / "band"). Whole networks, paired
    in one process (``benchmarks/network_ab.py``, 2-core AMD EPYC with AVX2 only, shared), per call, values /
    packed: YNNPACK's convolutions as im2col against the rule without it: DroNet 1.16 / 1.18x faster at batch 16,
    1.19 / 1.17x at 128, 1.02 / 1.02x at 1 (625-pixel layers); NEMO Frontnet 1.13 / 1.13x at 16, 1.14 / 1.15x at
    128, 0.97 / 0.94x at 1 (240 pixels and fewer: hence the threshold); MLPerf-Tiny ResNet 1.06 / 1.07x at 16,
    1.22 / 1.21x at 128, 0.94 / 0.92x at 1 (256 pixels and fewer); networks without such layers tie; float32 for
    them instead was 1.03-1.35x slower than im2col from batch 16 on (DroNet, Frontnet, MLPerf-Tiny ResNet), a tie
    at 1. The lower limit in calls of several inputs (128 against 512; DroNet's steps of 4 inputs hold 196-pixel
    layers, Frontnet's of 8 480-pixel ones): DroNet 1.15 / 1.17x faster at batch 16, 1.12 / 1.10x at 128, QuantLab
    DroNet 1.15 / 1.21x and 1.12 / 1.12x, Frontnet 1.10 / 1.09x and 1.23 / 1.04x, MLPerf-Tiny ResNet a tie; 32
    tied with 128; at batch 1 128 lost (Frontnet 1.08 / 1.05x slower: 240-pixel layers), hence two limits.
    Below them, a deep input over a few pixels (``YNN_IM2COL_DEEP_CHANNELS`` = 64 channels or more, at most
    ``YNN_IM2COL_DEEP_MAX_PIXELS`` = 60 output pixels in the call) is im2col too: per shape at batch 1 (ms, best
    of 60, YNNPACK's int8 convolution / im2col / float32 convolution) DroNet's 128 -> 128 over 7x7 0.36 / 0.22 /
    0.24, 64 -> 128 s2 to 7x7 0.16 / 0.14 / 0.16, Frontnet's 64 -> 13 over 6x10 0.05 / 0.04 / 0.05, while more
    pixels or fewer channels keep the convolution ahead (64 -> 64 over 13x13 0.17 / 0.20, 32 -> 32 over 12x20
    0.09 / 0.11, MLPerf-Tiny ResNet's 64 -> 64 over 8x8 a tie at 0.10). Whole networks at batch 1, paired (41-61
    reps, values / packed): DroNet 1.05 / 1.04x and 1.06 / 1.06x faster (two runs), QuantLab DroNet 1.06 / 1.06x,
    Frontnet 1.01 / 1.03x; with the limit at 64 pixels the ResNet's 8x8 layer made it 1.02 / 1.02x slower, hence
    60. Larger calls are im2col from the limits above anyway.
    The 9-16 channel ones: im2col beat wide / band / float32 (NEMO residual net 1.30 / 1.32x at batch 1,
    1.21 / 1.21x at 16, 1.20 / 1.31x at 128; MLPerf-Tiny ResNet 1.02-1.14x), and float32 at every batch beat
    im2col in turn (NEMO residual 1.14 / 1.17x, 1.13 / 1.11x, 1.12 / 1.12x; MLPerf-Tiny ResNet 1.27 / 1.14x at
    batch 1, 1.05 / 1.02x at 16, 1.04 / 1.03x at 128): XLA:CPU's float32 convolution of 16 channels is fast where
    its int8 one is a generic loop (the earlier rule's float32 above 8,192 pixels at stride 2 included). Not taken
    there: im2col for one input channel (DroNet 1.04-1.10x faster at batch 1 / 16, NEMO Frontnet 1.24 / 1.28x
    slower at 1) nor for 2-8 in and at most 16 out (NEMO EEGNet 1.20-1.32x, MobileNetV1's stem 1.05-1.14x slower).
    Not taken:
    * Ci == 1: the int8 convolution of one channel is slower (19.9 vs 15.0 ms, loaded, EPYC). The int8 im2col
      GEMM (``_conv_forms.int8_im2col``, K padded to 32) is faster alone (6.3 vs 9.4 ms in a quieter run) but not
      in the network: paired whole-network runs tie at batch 16 (1.00x, IQR 0.85-1.20) and lose at 128 (its 41
      MiB of patches leave the cache), and it compiles slower (EPYC; the band reads 2.3x fewer patch bytes);
    * explicit im2col for Ci > 1: faster per shape, slower in the network (XLA fuses the producer of its input
      into each of the Kh*Kw slices; DroNet 0.87x vs 1.02x of the float forward);
    * off the CPU backend: GPUs keep float32 with ``Precision.HIGHEST``, as GEMMs (``_float_accumulate``)."""
    if jax.default_backend() != "cpu":
        return None
    if (cfg.Kh, cfg.Kw) == (1, 1):
        return "gemm" if int8_gemm_1x1(cfg.Ci, cfg.Co) else None  # never for one channel
    # the band would waste few products (judged in blocks of 4 pixels, as the limit was measured, whatever the width)
    banded = _conv_forms.band_overhead(cfg, BAND_RULE_WIDTH) <= BAND_MAX_OVERHEAD
    pixels = float("inf") if batch is None else batch * cfg.Ho * cfg.Wo  # output pixels of the call
    generic = max(cfg.Ci, cfg.Co) < _conv_forms.YNN_MIN_CHANNELS  # XLA would run the int8 conv as its generic loop
    if (cfg.Ci == 1 or (cfg.Ci <= BAND_MAX_CHANNELS and cfg.stride == (1, 1))) and banded:
        return "band"
    if cfg.Ci == 1:
        return None
    if cfg.Ci <= IM2COL_MAX_CHANNELS and cfg.Co >= _conv_forms.YNN_MIN_CHANNELS:
        return "im2col"
    if cfg.Ci > 8 and generic:  # the generic loop is slow here
        if NO_INT8_DOT:
            return None  # XLA's float32 convolution: "wide", "band" and "im2col" lose to it there
        if pixels <= WIDE_MAX_PIXELS:
            return "wide"
        return "band" if cfg.stride == (1, 1) and banded else None
    if generic and pixels <= BAND_SMALL_MAX_PIXELS and banded:
        return "band"  # 2-8 channels in, at most 16 out, few pixels: the band beats the generic loop's hand-off
    if not generic and NO_INT8_DOT and pixels >= (YNN_IM2COL_MIN_PIXELS if batch == 1 else
                                                  YNN_IM2COL_MIN_PIXELS_BATCHED):
        return "im2col"  # YNNPACK's int8 convolution without int8 dot instructions: slower than its int8 GEMM
    if not generic and NO_INT8_DOT and cfg.Ci >= YNN_IM2COL_DEEP_CHANNELS and pixels <= YNN_IM2COL_DEEP_MAX_PIXELS:
        return "im2col"  # ... and a deep input over a few pixels, where that convolution is slowest
    return "conv"


def int8_gemm_1x1(ci: int, co: int) -> bool:
    """Whether a 1x1 kernel of ``ci`` -> ``co`` channels runs as one int8 GEMM on the current backend (the CPU, more
    than 8 channels in or out: see ``int8_form``); the pointwise kernel's main block follows the same rule."""
    return jax.default_backend() == "cpu" and ci > 1 and max(ci, co) > 8


def _fast_accumulate(x8, w8, bias, cfg: ConvConfig, groups: tuple[int, ...] | None = None, x_off=None):
    """int32 accumulators (batch, Ho, Wo, Co) for a static configuration, exact (== the int64 correlation wrapped
    to int32) by one of two arguments, the form chosen statically by ``int8_form``:

    * int8 (``_conv_forms.int8_conv``): ``x - x_off`` and ``w`` are int8, the convolution accumulates their
      products in int32, and int32 addition is exact modulo 2**32 in any order (no float, no groups); the
      offset's share ``x_off * (correlation of the valid-pixel mask with w)`` is added in int32.
      ``x_off``: None -> from the static ``cfg.in_type`` (x must lie within it: the packed path); else the
      (possibly traced) offset of x's actual type (``_engine.int8_offset``).
    * float32 (``_float_accumulate``): convolutions / GEMMs over input-channel groups whose every partial sum,
      in whatever order XLA sums, is a subset sum of the group's products x*w and therefore bounded by
      max|x| * sum|w| <= 2**24 (``groups`` proved from the weights, else the types' worst case): exact.

    The bias is added in int32 at the end (never inside a float32 sum)."""
    if isinstance(w8, Weights):
        _check_prepared(w8, cfg)
    form = int8_form(cfg, batch=x8.shape[0])
    if form is None and isinstance(w8, Weights) and w8.hwio is not None and w8.hwio.dtype != jnp.float32:
        w8 = _float_hwio(w8, cfg)  # "wide" weights at a batch too large for that form
    if form is not None:
        off = _engine.int8_offset((cfg.in_type.bits, cfg.in_type.signed)) if x_off is None else x_off
        acc = {"conv": _conv_forms.int8_conv, "wide": _conv_forms.int8_conv_wide, "gemm": int8_pointwise,
               "band": _conv_forms.int8_band, "im2col": _conv_forms.int8_im2col}[form](
            x8, w8, cfg, off)
    else:
        acc = _float_accumulate(x8, w8, cfg, groups)
    return acc if bias is None else acc + bias


def int8_pointwise(x, w, cfg: ConvConfig, x_off, total=None):
    """int32 accumulators (batch, Ho, Wo, Co) of a 1x1 kernel, without bias, as one int8 x int8 -> int32 GEMM of
    the pixels it reads (``pointwise_pixels``) over batch * pixels (``_engine.int8_matmul``: exact modulo 2**32
    whenever every ``x - x_off`` and every weight is an int8 value). ``w``: (Co, [1, 1,] Ci) ints, or ``Weights``
    prepared for this form (then its ``total`` is used); ``total``: the filters' weight sums, int32 (Co,), or
    None (computed)."""
    px = pointwise_pixels(x, cfg)
    if isinstance(w, Weights):
        w, total = w.gemm, w.total
    acc = _engine.int8_matmul(px.reshape(-1, cfg.Ci), jnp.reshape(w, (cfg.Co, cfg.Ci)), x_off, total)
    return acc.reshape(px.shape[0], cfg.Ho, cfg.Wo, cfg.Co)


def _check_prepared(w: Weights, cfg: ConvConfig) -> None:
    """``prepare_weights``' layout for this very configuration and backend (static shapes and dtypes)."""
    form = int8_form(cfg, batch=1)
    if form == "gemm":
        want = gemm_layout(cfg.Co, cfg.Ci)
    elif form == "band":
        want = (((cfg.Kh, cfg.Kw, cfg.Ci, cfg.Co), jnp.dtype(jnp.int8)), _band_layout(cfg), (cfg.Co,))
    elif form == "im2col":
        want = (((cfg.Kh, cfg.Kw, cfg.Ci, cfg.Co), jnp.dtype(jnp.int8)),
                ((cfg.Co, _conv_forms.im2col_width(cfg)), jnp.dtype(jnp.int8)), (cfg.Co,))
    else:
        co = max(cfg.Co, _conv_forms.WIDE_CO) if form == "wide" else cfg.Co
        ci = cfg.Ci if form is None else _conv_forms.conv_channels(cfg, co)
        larger = _larger_batch_gemm(cfg, form)
        gemm = (None if larger is None else _band_layout(cfg) if larger == "band"
                else ((cfg.Co, _conv_forms.im2col_width(cfg)), jnp.dtype(jnp.int8)))
        want = (((cfg.Kh, cfg.Kw, ci, co), jnp.dtype(jnp.float32 if form is None else jnp.int8)), gemm, (cfg.Co,))
    require_layout(w, want, "w", "conv.prepare_weights for this configuration on this backend")


def _band_layout(cfg: ConvConfig) -> tuple:
    """``_conv_forms.band_weights``' (shape, dtype) for ``cfg``, as ``require_layout`` compares it."""
    bw, _, _ = _conv_forms.band_geometry(cfg)
    return (bw * cfg.Co, _conv_forms.band_depth(cfg)), jnp.dtype(jnp.int8)


def _float_hwio(w: Weights, cfg: ConvConfig) -> Weights:
    """Prepared int8 HWIO (the int8 convolution's, or "wide"'s, with their zero filters and input channels) as the
    float32 forms read it."""
    return Weights(w.hwio[:, :, :cfg.Ci, :cfg.Co].astype(jnp.float32), w.total)


def gemm_layout(co: int, ci: int) -> tuple:
    """``gemm_weights``' layout of a (co, ci) 1x1 kernel, as ``require_layout`` compares it."""
    return None, ((co, ci), jnp.dtype(jnp.int8)), (co,)


def require_layout(w: Weights, want: tuple, arg: str, made_by: str) -> None:
    """Raise unless prepared weights ``w`` have the static layout ``want``: ((hwio shape, dtype) or None, (gemm
    shape, dtype) or None, total shape). ``arg``: the argument's name; ``made_by``: what prepares the right one."""
    got = (None if w.hwio is None else (tuple(w.hwio.shape), jnp.dtype(w.hwio.dtype)),
           None if w.gemm is None else (tuple(w.gemm.shape), jnp.dtype(w.gemm.dtype)), tuple(np.shape(w.total)))
    if got != want:
        raise JaxpulpError(f"{arg}: prepared weights (hwio, gemm, total) {got}; expected {want} ({made_by})")


def _float_accumulate(x8, w8, cfg: ConvConfig, groups: tuple[int, ...] | None = None):
    """Float32 accumulators without bias: XLA's direct convolution over input-channel groups (beats an explicit
    im2col + GEMM on the CPU, ``benchmarks/conv_forms.py``) where it is exact (``_conv_forms.sums_products``: the
    CPU backend), else ``_conv_forms.im2col`` (GPUs: cuDNN's Winograd / FFT convolutions round); 1x1 kernels are
    one (strided) slice and an exact GEMM over batch * pixels."""
    if cfg.Kh == 1 and cfg.Kw == 1:
        per_tap = _engine.max_abs_product(cfg.in_type.bits, cfg.in_type.signed, cfg.w_type.bits, True)
        return _pointwise_accumulate(x8, w8, None, cfg, per_tap)
    form = _conv_forms.lax_conv if _conv_forms.sums_products() else _conv_forms.im2col
    return form(x8, w8, cfg, worst_case_groups(cfg) if groups is None else groups)


def pointwise_pixels(x, cfg: ConvConfig):
    """The input pixels a 1x1 kernel reads, (batch, Ho, Wo, Ci): ``x`` (batch, H, W, Ci) zero-padded by
    ``cfg.pad``, every stride-th pixel."""
    t, b, left, r = cfg.pad
    sy, sx = cfg.stride
    if t or b or left or r:
        x = jnp.pad(x, ((0, 0), (t, b), (left, r), (0, 0)))
    return x[:, :(cfg.Ho - 1) * sy + 1:sy, :(cfg.Wo - 1) * sx + 1:sx]


def _pointwise_accumulate(x8, w8, bias, cfg: ConvConfig, per_tap: int):
    """1x1 kernel: zero-pad, take every stride-th pixel, one exact GEMM (batch * Ho * Wo, Ci) @ (Ci, Co)."""
    x8 = pointwise_pixels(x8, cfg)
    B = x8.shape[0]
    wm = w8.hwio.reshape(cfg.Ci, cfg.Co) if isinstance(w8, Weights) else w8.reshape(cfg.Co, cfg.Ci).T
    acc = _engine.exact_int_matmul_bounded(x8.reshape(B * cfg.Ho * cfg.Wo, cfg.Ci), wm, per_tap)
    acc = acc.reshape(B, cfg.Ho, cfg.Wo, cfg.Co)
    return acc if bias is None else acc + bias


def pair_mask(cfg: ConvConfig, cluster: Cluster = GAP8) -> np.ndarray:
    """Static bool (Ho, Wo): the output pixels the 4x2 matmul computes as pixel pairs (the conv / pointwise
    split, semantics.md §5.3); the others are each row's leftover pixel. Host twin of
    ``cluster_run.conv_pixel_roles``'s ``pair``."""
    m = np.zeros((cfg.Ho, cfg.Wo), bool)
    for core in range(cluster.num_cores):
        rng = split.conv_split(core, cfg.Ho, cfg.Wo, cluster.num_cores)
        m[rng.row0:rng.row1, rng.col0:rng.col0 + 2 * rng.pairs_per_row] = True
    return m


def requantise_static(acc, p: Params, cfg: ConvConfig, cluster: Cluster = GAP8):
    """``_requantise`` for one static configuration on accumulators (batch, Ho, Wo, Co): the mode and clip bounds
    from ``cfg``'s flags and types, and the §4.4 signed SHIFT-CLIP quirk (a static numpy mask) only where it can
    apply (library semantics, signed output, SHIFT mode); no per-pixel geometry is traced. The conv and pointwise
    kernels' packed fast paths."""
    ot = cfg.out_type
    out = quant.requant(acc, relu=cfg.relu, bn=cfg.bn, kappa=p.kappa, lam=p.lam, out_mult=p.out_mult,
                        out_shift=p.out_shift, lo=ot.lo, hi=ot.hi, bn_bits=cfg.bn_bits, bn_split=cfg.bn_split)
    if cfg.semantics != "library" or not ot.signed or quant.mode(cfg.relu, cfg.bn) != quant.MODE_SHIFT:
        return out
    quirk = pair_mask(cfg, cluster)[:, :, None] & (np.arange(cfg.Co) < (cfg.Co // 4) * 4)
    if not quirk.any():
        return out
    return jnp.where(quirk, quant.unsigned_clip_as_signed(acc, p.out_shift, ot.bits), out)


def _fast_lanes(x, w_words, p: Params, cfg: ConvConfig, cluster: Cluster, groups=None):
    """The packed path on lanes: ``x`` (batch, H*W*Ci) int32, the input image's elements as the kernel's unpack
    reads them (``_engine.unpack_static`` of the words; any trailing shape) -> the output elements (batch, Ho, Wo,
    Co) int32 the kernel packs into its output image (``_engine.pack_static`` of them, flattened, is that image).
    Kept in that shape: a flattening reshape at the end of XLA's fused requantisation loop costs it its
    vectorisation (measured 2x on DroNet's 1x1 layer); consumers reshape on their input side for free."""
    wt = cfg.w_type
    x8 = x.reshape(-1, cfg.H, cfg.W, cfg.Ci)
    if isinstance(w_words, Weights):  # unpacked and laid out once (``prepare_weights`` of the image's values)
        w8 = w_words
    else:
        w8 = _engine.unpack_static(w_words, wt.bits, True, cfg.Co * cfg.K).reshape(cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci)
    acc = _fast_accumulate(x8, w8, p.bias, cfg, groups)
    return requantise_static(acc, p, cfg, cluster)


@functools.partial(jax.jit, static_argnames=("cfg", "cluster", "groups"))
def _fast_packed(x_words, w_words, p: Params, cfg: ConvConfig, cluster: Cluster, groups=None):
    """Packed path for one static configuration (batch axis first): lanes unpacked with static shifts,
    ``_fast_lanes``, output packed with static shifts."""
    it = cfg.in_type
    x = _engine.unpack_static(x_words, it.bits, it.signed, cfg.H * cfg.W * cfg.Ci)
    out = _fast_lanes(x, w_words, p, cfg, cluster, groups)
    return _engine.pack_static_grouped(_engine.flat(out), cfg.out_type.bits)


# -------------------------------------------------------------------------------------- public API


def _as_params(params, cfg: ConvConfig) -> Params:
    if not isinstance(params, (Params, dict, tuple, list)):
        raise JaxpulpError(f"params={params!r}: expected a conv.Params (kappa, lam, out_mult, out_shift, bias)")
    params = _engine.as_params(params, Params)
    co = cfg.Co

    def vec(name, v, required):
        if v is None:
            if required:
                raise JaxpulpError(f"params.{name}=None: expected an int32 array of shape ({co},)")
            return None
        _engine.check_int32_values(v, name)
        a = jnp.asarray(v)
        if a.shape != (co,) or not jnp.issubdtype(a.dtype, jnp.integer):
            raise JaxpulpError(f"params.{name}: shape {a.shape} dtype {a.dtype}, expected int32 of shape ({co},)")
        return a.astype(jnp.int32)

    _engine.check_bias_flag(cfg.bias, params.bias, co)
    return Params(vec("kappa", params.kappa, True), vec("lam", params.lam, True), *_engine.requant_scalars(params),
                  vec("bias", params.bias, False))


def run(x_words, w_words, params, *, cfg: ConvConfig, cluster: Cluster = GAP8, return_cost: bool = False,
        groups: tuple[int, ...] | None = None):
    """Packed path. ``x_words``: HWC input image (uint32 words, optionally a leading batch axis);
    ``w_words``: weights [Co][Kh][Kw][Ci]; returns the packed HWC output image (uint32 words, batch kept).
    With ``return_cost=True`` returns ``Costed(output, cost)`` (per-core counts and cycles of one call).
    ``groups`` (static): input-channel group starts ``_engine.weight_bound_groups`` proved exact for these very
    weights at ``cfg.in_type``'s largest magnitude; None: the worst case of the types."""
    check(cfg, cluster)
    p = _as_params(params, cfg)
    nx = _engine.words_for(cfg.H * cfg.W * cfg.Ci, cfg.in_type.bits)
    nw = _engine.words_for(cfg.Co * cfg.K, cfg.w_type.bits)
    no = _engine.words_for(cfg.Ho * cfg.Wo * cfg.Co, cfg.out_type.bits)
    x = _engine.packed_words(x_words, nx, "x_words", min_batch=1)
    w = _engine.packed_words(w_words, nw, "w_words", batch=False)
    batched = x.ndim == 2
    out = _fast_packed(x if batched else x[None], w, p, cfg, cluster, groups)[:, :no]
    out = out if batched else out[0]
    return _engine.costed(out, cfg, cluster, return_cost)


def run_lanes(x, w_words, params, *, cfg: ConvConfig, cluster: Cluster = GAP8,
              groups: tuple[int, ...] | None = None):
    """``run`` on lanes: ``x`` (batch, H*W*Ci) int32, the input image's elements as the kernel reads them (the
    values ``packing.unpack`` gives at ``cfg.in_type``) -> (batch, Ho, Wo, Co) int32, the elements of the output
    image ``run`` returns (the same bits once packed at ``cfg.out_type``). For chaining kernels without packing
    between them (whole networks); traceable. ``w_words``: the weight image, or ``prepare_weights`` of its
    values (``packing.unpack`` at ``cfg.w_type``, reshaped (Co, Kh, Kw, Ci)): unpacked once, not on every call."""
    check(cfg, cluster)
    if isinstance(w_words, Weights):
        _check_prepared(w_words, cfg)
        w = w_words
    else:
        w = _engine.packed_words(w_words, _engine.words_for(cfg.Co * cfg.K, cfg.w_type.bits), "w_words", batch=False)
    x = _engine.lanes(x, cfg.H * cfg.W * cfg.Ci, "x", cfg.in_type, "the input image's elements")
    return _fast_lanes(jnp.asarray(x), w, _as_params(params, cfg), cfg, cluster, groups)


def run_values(x, w, params, *, cfg: ConvConfig, cluster: Cluster = GAP8):
    """Value path: int tensors ``x`` (H, W, Ci) or (batch, H, W, Ci) and ``w`` (Co, Kh, Kw, Ci) -> int32
    outputs (Ho, Wo, Co); the intended arithmetic (``semantics="ideal"``)."""
    _engine.check_config(cfg, ConvConfig, "conv")
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = jnp.asarray(_engine.value_ints(x, "x", cfg.in_type))
    w = jnp.asarray(_engine.value_ints(w, "w", cfg.w_type))
    if x.shape[-3:] != (cfg.H, cfg.W, cfg.Ci) or x.ndim not in (3, 4) or (x.ndim == 4 and not len(x)):
        raise JaxpulpError(f"x: shape {x.shape}, expected ([batch,] {cfg.H}, {cfg.W}, {cfg.Ci})")
    if w.shape != (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci):
        raise JaxpulpError(f"w: shape {w.shape}, expected ({cfg.Co}, {cfg.Kh}, {cfg.Kw}, {cfg.Ci})")
    batched = x.ndim == 4
    xb = (x if batched else x[None]).astype(jnp.int32)
    out = _values_batch(geometry(cfg, cluster), xb, w.astype(jnp.int32), p, exact_bucket(cfg), cfg.bn_bits)
    return out if batched else out[0]


def cost(cfg: ConvConfig, cluster: Cluster = GAP8):
    """Per-core instruction counts and cycles (see ``jaxpulp.cost``)."""
    from jaxpulp.cost import kernel_cost

    return kernel_cost(cfg, cluster)


# ------------------------------------------------------------------------------------ reference twin


def reference(x, w, params, cfg: ConvConfig, cluster: Cluster = GAP8) -> np.ndarray:
    """Plain numpy model that follows semantics.md core by core: split (§5.3), pixel pairs through the 4x2
    matmul (4-channel blocks, then leftover channels), odd leftover pixel per row, requant (§4).
    ``x`` (H, W, Ci), ``w`` (Co, Kh, Kw, Ci) int arrays; returns int32 (Ho, Wo, Co)."""
    check(cfg, cluster)
    _as_params(params, cfg)
    params = _engine.as_params(params, Params)
    x = np.asarray(_engine.value_ints(x, "x", cfg.in_type), np.int64)
    w = np.asarray(_engine.value_ints(w, "w", cfg.w_type), np.int64)
    if x.shape != (cfg.H, cfg.W, cfg.Ci) or w.shape != (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci):
        raise JaxpulpError(f"x, w: shapes {x.shape}, {w.shape}, expected ({cfg.H}, {cfg.W}, {cfg.Ci}) and "
                           f"({cfg.Co}, {cfg.Kh}, {cfg.Kw}, {cfg.Ci})")
    w = w.reshape(cfg.Co, -1)
    kappa = np.asarray(params.kappa, np.int64)
    lam = np.asarray(params.lam, np.int64)
    bias = None if params.bias is None else np.asarray(params.bias, np.int64)
    lo, hi = cfg.out_type.lo, cfg.out_type.hi
    t, _, left, _ = cfg.pad
    sy, sx = cfg.stride
    library = cfg.semantics == "library"
    shift_mode = quant.mode(cfg.relu, cfg.bn) == quant.MODE_SHIFT
    out = np.zeros((cfg.Ho, cfg.Wo, cfg.Co), np.int32)

    def im2col(oy, ox):
        col = np.zeros((cfg.Kh, cfg.Kw, cfg.Ci), np.int64)
        for ky in range(cfg.Kh):
            for kx in range(cfg.Kw):
                iy, ix = oy * sy - t + ky, ox * sx - left + kx
                if 0 <= iy < cfg.H and 0 <= ix < cfg.W:
                    col[ky, kx] = x[iy, ix]
        return col.reshape(-1)

    def requant(acc, co, in_block):
        if library and in_block and cfg.out_type.signed and shift_mode:
            return quant.unsigned_clip_as_signed_int(acc, params.out_shift, cfg.out_type.bits)
        return quant.requant_int(acc, relu=cfg.relu, bn=cfg.bn, kappa=kappa[co], lam=lam[co],
                                 out_mult=params.out_mult, out_shift=params.out_shift, lo=lo, hi=hi,
                                 bn_bits=cfg.bn_bits)

    def pixel(oy, ox, in_pair):
        acc = w @ im2col(oy, ox)
        if bias is not None:
            acc = acc + bias
        block_end = (cfg.Co // 4) * 4 if in_pair else 0  # channels the 4x2 main block computes
        for co in range(cfg.Co):
            out[oy, ox, co] = requant(quant.wrap32(acc[co]), co, co < block_end)

    for core in range(cluster.num_cores):
        rng = split.conv_split(core, cfg.Ho, cfg.Wo, cluster.num_cores)
        for oy in range(rng.row0, rng.row1):
            for k in range(rng.pairs_per_row):
                pixel(oy, rng.col0 + 2 * k, True)
                pixel(oy, rng.col0 + 2 * k + 1, True)
            if rng.leftover:
                pixel(oy, rng.col1 - 1, False)
    return out
