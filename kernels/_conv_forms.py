"""Formulations of a convolution's exact int32 accumulators (value path), one per shape class.

Each form takes int32 values ``x`` (B, H, W, Ci) and weights ``w`` (Co, Kh, Kw, Ci), a static ``ConvConfig`` (its
geometry: kernel, stride, pad, Ho, Wo) and static input-channel group starts, and returns the int32 zero-padded
correlation (B, Ho, Wo, Co) without bias, wrap-around int32 between groups. They differ only in how XLA is asked
to do the float32 arithmetic; which one is fastest depends on the shape (``benchmarks/conv_forms.py`` measures
them, ``conv._fast_accumulate`` encodes the winner as a static rule).

Exactness (the same argument for every form). Within one input-channel group, every float32 operation adds
exact integers, and every intermediate value -- whatever order XLA's GEMM / convolution reassociates the sum
in, blocked, vectorised, split over threads -- is the sum of a *subset* of the group's products x*w (plus
exact zeros from padding or from zero weights the form inserts). Its magnitude is therefore at most
``sum |x| |w|`` over the group's products, which the caller's groups keep <= 2**24 for every output channel
(``conv.worst_case_groups``: from the types; ``_engine.weight_bound_groups``: from the concrete weights), and
every integer of magnitude <= 2**24 is a float32, so no rounding ever happens. The float32 result of a group is
converted to int32 exactly, and groups are added in int32 (wrap-around like the core's accumulator). None of
the forms adds anything but products and zeros in float32 (the bias is added by the caller in int32).

The argument needs the backend to compute what the form asks for as sums of products. A GEMM does (CPU and GPU,
``Precision.HIGHEST``: no TF32). A convolution does on XLA:CPU; on a GPU, cuDNN may pick a Winograd or FFT
algorithm, which multiplies *transformed* operands (fractions) and rounds. Seen on an H200 (jax 0.11.2, cuDNN's
choice not inspected): DroNet's value and packed paths differed from the reference at batch 128 and 1024 with
``lax_conv`` (batch 1 and 16 equal), and were equal at both with ``im2col``. So the forms built on
``conv_general_dilated`` (``lax_conv``, ``s2d``) count as exact on the CPU only (``sums_products``), and
``conv._float_accumulate`` takes ``im2col`` (one GEMM per group) elsewhere.

``int8_conv`` needs no groups: int8 operands, int32 accumulation, exact modulo 2**32 in any order (its docstring).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.kernels import _engine, _host
from jaxpulp.kernels.config import ConvConfig

_HIGHEST = jax.lax.Precision.HIGHEST  # keeps GPUs from rounding the float32 GEMMs through TF32 / bf16
FORMS = ("lax", "im2col", "s2d", "taps", "int8", "int8_wide", "int8_im2col", "int8_band")
CONV_FORMS = ("lax", "s2d")  # built on XLA's convolution: exact only where it sums products (the CPU backend)


def sums_products(backend: str | None = None) -> bool:
    """Whether ``backend``'s (default: JAX's default) float32 convolution is a sum of products (the forms in
    ``CONV_FORMS`` exact): the CPU backend's is; a GPU's cuDNN Winograd / FFT algorithms are not."""
    return (backend or jax.default_backend()) == "cpu"


class Weights(NamedTuple):
    """A convolution's weights laid out once (per network, on the host: ``conv.prepare_weights``) as the form
    ``conv._fast_accumulate`` chooses reads them, so no layout or conversion work is left in the compiled forward.
    ``hwio``: (Kh, Kw, Ci, Co), int8 for the int8 convolution (``conv_hwio``: Ci padded with zero channels where
    YNNPACK runs it; ``wide_hwio`` for ``int8_conv_wide``: Co padded with zero filters), float32 for the float32
    forms (the same integers),
    None for the 1x1 int8 GEMM; ``total``: int32 (Co,), each filter's sum of weights (the int8 forms' offset
    share); ``gemm``: the 1x1 int8 GEMM's (Co, Ci) int8 operand (its contracted axis last: XLA:CPU hands only such
    int8 dots to YNNPACK, a transposed one ran 3.7x slower), ``int8_band``'s banded matrix (``band_weights``; with
    a "band" or a "wide" ``hwio``, for batches above ``conv.WIDE_MAX_PIXELS``) or ``int8_im2col``'s
    (``im2col_weights``; for "band" and "im2col" ``hwio`` holds the int8 HWIO for the float32 forms, and for the
    int8 convolution of the batches above ``conv.BAND_SMALL_MAX_PIXELS``), else None."""

    hwio: Any
    total: Any
    gemm: Any = None


def _spans(cfg: ConvConfig, starts: tuple[int, ...]):
    return list(zip(starts, starts[1:] + (cfg.Ci,), strict=True))


def _int_sum(parts):
    acc = None
    for p in parts:
        p = p.astype(jnp.int32)
        acc = p if acc is None else acc + p
    assert acc is not None  # Ci >= 1: at least one group
    return acc


def _padded(x, cfg: ConvConfig, rows: int, cols: int, value=0):
    """x padded by cfg.pad, then cut or extended (bottom / right) to exactly ``rows`` x ``cols``; the added pixels
    hold ``value`` (zero: the convolutions' padding; a traced scalar allowed)."""
    t, b, left, r = cfg.pad
    H, W = x.shape[1], x.shape[2]
    return jax.lax.pad(x, jnp.asarray(value).astype(x.dtype),
                       ((0, 0, 0), (t, rows - t - H, 0), (left, cols - left - W, 0), (0, 0, 0)))


def _tap_slices(xp, cfg: ConvConfig):
    """The Kh*Kw shifted, strided views (B, Ho, Wo, C) of a padded input, in (ky, kx) order."""
    sy, sx = cfg.stride
    return [xp[:, ky:ky + (cfg.Ho - 1) * sy + 1:sy, kx:kx + (cfg.Wo - 1) * sx + 1:sx]
            for ky in range(cfg.Kh) for kx in range(cfg.Kw)]


def _full_padded(x, cfg: ConvConfig):
    sy, sx = cfg.stride
    return _padded(x, cfg, (cfg.Ho - 1) * sy + cfg.Kh, (cfg.Wo - 1) * sx + cfg.Kw)


def lax_conv(x, w, cfg: ConvConfig, starts: tuple[int, ...]):
    """XLA's direct convolution (NHWC / HWIO), one per input-channel group."""
    t, b, left, r = cfg.pad
    xf = x.astype(jnp.float32)
    wf = w.hwio if isinstance(w, Weights) else jnp.transpose(w, (1, 2, 3, 0)).astype(jnp.float32)  # HWIO
    parts = []
    for c0, c1 in _spans(cfg, starts):
        part = jax.lax.conv_general_dilated(
            xf[..., c0:c1], wf[:, :, c0:c1], window_strides=cfg.stride, padding=((t, b), (left, r)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)
        parts.append(part[:, :cfg.Ho, :cfg.Wo])
    return _int_sum(parts)


def im2col(x, w, cfg: ConvConfig, starts: tuple[int, ...]):
    """Explicit im2col: the Kh*Kw strided tap slices concatenated along channels, then one float32 GEMM
    (B*Ho*Wo, Kh*Kw*c) @ (Kh*Kw*c, Co) per input-channel group (the batch folded into the GEMM rows). ``w``:
    (Co, Kh, Kw, Ci) ints or float32 ``Weights`` (``conv.prepare_weights``)."""
    xp = _full_padded(x.astype(jnp.float32), cfg)
    wf = w.hwio if isinstance(w, Weights) else jnp.transpose(w, (1, 2, 3, 0)).astype(jnp.float32)  # HWIO
    rows = x.shape[0] * cfg.Ho * cfg.Wo
    parts = []
    for c0, c1 in _spans(cfg, starts):
        taps = _tap_slices(xp[..., c0:c1], cfg)
        cols = (jnp.concatenate(taps, axis=-1) if len(taps) > 1 else taps[0]).reshape(rows, -1)
        wg = wf[:, :, c0:c1].reshape(-1, cfg.Co)  # (Kh*Kw*c, Co), (ky, kx, c) order like the columns
        parts.append(jnp.matmul(cols, wg, precision=_HIGHEST))
    return _int_sum(parts).reshape(x.shape[0], cfg.Ho, cfg.Wo, cfg.Co)


def s2d(x, w, cfg: ConvConfig, starts: tuple[int, ...]):
    """Space-to-depth: a (sy, sx)-strided Kh x Kw convolution as a stride-1 convolution over sy*sx*Ci channels
    with a ceil(Kh/sy) x ceil(Kw/sx) kernel. With ky = sy*qy + py, input row oy*sy + ky of the padded input is
    row oy + qy, phase py of the folded input; kernel taps beyond Kh (ky >= Kh) get zero weights, which add
    exact zeros (so the bound of the group is unchanged). Channels are folded (c, py, px), so an input-channel
    group stays one contiguous channel range."""
    sy, sx = cfg.stride
    qh, qw = -(-cfg.Kh // sy), -(-cfg.Kw // sx)
    B, Ci, Co = x.shape[0], cfg.Ci, cfg.Co
    hz, wz = cfg.Ho + qh - 1, cfg.Wo + qw - 1
    xp = _padded(x.astype(jnp.float32), cfg, hz * sy, wz * sx)  # rows used: <= (Ho-1)*sy + Kh-1 < hz*sy
    z = xp.reshape(B, hz, sy, wz, sx, Ci).transpose(0, 1, 3, 5, 2, 4).reshape(B, hz, wz, Ci * sy * sx)
    wf = jnp.pad(w.astype(jnp.float32), ((0, 0), (0, qh * sy - cfg.Kh), (0, qw * sx - cfg.Kw), (0, 0)))
    wz_ = wf.reshape(Co, qh, sy, qw, sx, Ci).transpose(1, 3, 5, 2, 4, 0).reshape(qh, qw, Ci * sy * sx, Co)
    f = sy * sx
    parts = [jax.lax.conv_general_dilated(z[..., c0 * f:c1 * f], wz_[:, :, c0 * f:c1 * f], (1, 1), "VALID",
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)
             for c0, c1 in _spans(cfg, starts)]
    return _int_sum(parts)


def taps(x, w, cfg: ConvConfig, starts: tuple[int, ...]):
    """One float32 GEMM (B*Ho*Wo, c) @ (c, Co) per kernel tap, summed in float32 within a group (every running
    sum is a subset sum of the group's products, see the module docstring)."""
    xp = _full_padded(x.astype(jnp.float32), cfg)
    wf = w.astype(jnp.float32)
    rows = x.shape[0] * cfg.Ho * cfg.Wo
    parts = []
    for c0, c1 in _spans(cfg, starts):
        acc = None
        for k, view in enumerate(_tap_slices(xp[..., c0:c1], cfg)):
            ky, kx = divmod(k, cfg.Kw)
            part = jnp.matmul(view.reshape(rows, c1 - c0), wf[:, ky, kx, c0:c1].T, precision=_HIGHEST)
            acc = part if acc is None else acc + part
        parts.append(acc)
    return _int_sum(parts).reshape(x.shape[0], cfg.Ho, cfg.Wo, cfg.Co)


def form(name: str):
    """The form function by name (one of ``FORMS``)."""
    if name == "int8":
        return lambda x, w, cfg, starts: int8_conv(x, w, cfg, 128)  # u8 inputs
    if name == "int8_wide":
        return lambda x, w, cfg, starts: int8_conv_wide(x, w, cfg, 128)
    if name == "int8_im2col":
        return lambda x, w, cfg, starts: int8_im2col(x, w, cfg, 128)
    if name == "int8_band":
        return lambda x, w, cfg, starts: int8_band(x, w, cfg, 128)
    return {"lax": lax_conv, "im2col": im2col, "s2d": s2d, "taps": taps}[name]


# ------------------------------------------------------------------------------------------ int8 forms


def _hwio(w):
    """(Co, Kh, Kw, Ci) -> (Kh, Kw, Ci, Co) as one 2-D transpose: XLA's CPU backend hands an int8 convolution to
    YNNPACK only when its filter is not produced by a 4-D transpose (measured, jax 0.10.2: otherwise it becomes a
    generic int32 convolution, 20x slower)."""
    co, kh, kw, ci = w.shape
    return w.reshape(co, -1).T.reshape(kh, kw, ci, co)


def _offset_share(w, x_off):
    """int32 (Co,): ``x_off`` times the sum of all of a filter's weights -- what the offset contributes to every
    output pixel once padded pixels hold ``0 - x_off`` too (so every tap of every window sees ``x - x_off``)."""
    if isinstance(w, Weights):
        return x_off * w.total
    return x_off * jnp.sum(w.astype(jnp.int32), axis=(1, 2, 3), dtype=jnp.int32)


def _shifted_int8_padded(x, cfg: ConvConfig, x_off, rows: int, cols: int):
    """int8 ``x - x_off`` padded as ``_padded`` to ``rows`` x ``cols`` with ``-x_off`` (the same values as
    ``_shifted_padded``'s): XLA then materialises the padded input that several slices share in int8, not int32.
    Only for an input that slices read (``int8_band``, ``int8_im2col``), never one fed to the convolution itself
    (see ``_shifted_padded``)."""
    return _padded((x.astype(jnp.int32) - x_off).astype(jnp.int8), cfg, rows, cols, -x_off)


def _shifted_padded(x, cfg: ConvConfig, x_off):
    """int8 (B, Hp, Wp, Ci): x zero-padded to exactly the rows / columns the windows read, minus ``x_off``.
    Padded in int32, shifted after: an int8 pad feeding the convolution directly (shifted first, padded with
    ``-x_off``) gave wrong accumulators under jit for x_off = 0 (jax 0.10.2, XLA:CPU's YNNPACK convolution of a
    4x1 kernel over 8 channels with pad (1, 3, 0, 0); ``tests/test_conv_forms.py`` keeps that case)."""
    return (_full_padded(x.astype(jnp.int32), cfg) - x_off).astype(jnp.int8)


def int8_conv(x, w, cfg: ConvConfig, x_off):
    """int8 x int8 -> int32 convolution: ``conv(pad(x) - x_off, w) + x_off * sum(w)`` per output channel.

    Exact (== the int64 correlation of x and w, wrapped to int32) whenever every ``x - x_off`` (and ``-x_off``,
    the padding) and every w is an int8 value: the convolution multiplies int8 values exactly and accumulates in
    int32, and int32 addition is exact modulo 2**32 whatever the order (no float32 anywhere, so no input-channel
    groups are needed). The input is zero-padded before the offset is subtracted, so every tap of every window
    holds ``x_p - x_off`` and the offset's share is the same ``x_off * sum(w)`` for every pixel. ``x_off``:
    Python int (0: no correction) or traced int32 scalar (128 for u8 inputs, see ``_engine.int8_offset``). ``w``:
    (Co, Kh, Kw, Ci) ints, or ``Weights`` with int8 ``hwio``. The CPU backend only: XLA:GPU hands convolutions
    to cuDNN, which takes integer ones only in one int8x4 pattern (jax-ml/jax#7637, open), and
    ``conv.int8_form`` never picks this form off the CPU. Where YNNPACK runs it, x and the filters get zero input
    channels up to a multiple of ``CONV_CI_MULTIPLE`` (``conv_channels``: zero products, the same sums)."""
    hwio = w.hwio if isinstance(w, Weights) else _hwio(w.astype(jnp.int8))
    xs = _shifted_padded(x, cfg, x_off)
    hwio = conv_hwio(hwio, cfg)  # prepared weights have their zero channels already
    if hwio.shape[2] > cfg.Ci:  # zero input channels against zero weights (exact zeros): a depth YNNPACK runs faster
        xs = jnp.pad(xs, ((0, 0), (0, 0), (0, 0), (0, hwio.shape[2] - cfg.Ci)))
    acc = jax.lax.conv_general_dilated(
        xs, hwio, window_strides=cfg.stride, padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.int32)
    if hwio.shape[-1] > cfg.Co:  # zero filters added by ``int8_conv_wide``
        acc = acc[..., :cfg.Co]
    if isinstance(x_off, int) and x_off == 0:
        return acc
    return acc + _offset_share(w, x_off)


# int8_conv's input channels are zero-padded to a multiple of this where YNNPACK runs it: its int8 convolution is
# 1.4-3.8x slower for a channel count that is not a multiple of 4 (2-core Xeon with AMX, batch 16, ms: 6x10x13 ->
# 102 3x3 s2 0.153 vs 0.111 with 16 channels, 3x5x102 -> 39 0.211 vs 0.097 with 104, 12x20x13 -> 32 0.473 vs 0.141,
# 24x40x30 -> 32 1.73 vs 0.45). Whole network (NEMO Frontnet: 13 and 102 channels), paired in one process, ratio
# to the float forward before -> after at batch 1 / 16 / 128, values: 1.04 / 2.12 / 3.67 -> 1.23 / 2.41 / 4.23;
# packed: 1.14 / 2.15 / 3.78 -> 1.24 / 2.41 / 4.20. (Padding the output channels instead measured no faster.)
CONV_CI_MULTIPLE = 4


def conv_channels(cfg: ConvConfig, co: int) -> int:
    """Input channels of ``int8_conv``'s convolution of ``co`` filters: ``cfg.Ci``, rounded up to a multiple of
    ``CONV_CI_MULTIPLE`` where XLA:CPU hands it to YNNPACK (more than 16 channels in or out)."""
    if max(cfg.Ci, co) < YNN_MIN_CHANNELS:
        return cfg.Ci
    return _engine.round_up(cfg.Ci, multiple=CONV_CI_MULTIPLE)


def conv_hwio(hwio, cfg: ConvConfig, xp=jnp):
    """int8 HWIO (Kh, Kw, Ci, Co) with zero input channels up to ``conv_channels`` (as is when it has them):
    ``int8_conv``'s filters. ``xp``: ``numpy`` on the host (prepared once), ``jnp`` in the graph."""
    extra = conv_channels(cfg, hwio.shape[-1]) - hwio.shape[2]
    return xp.pad(hwio, ((0, 0), (0, 0), (0, extra), (0, 0))) if extra > 0 else hwio


# XLA:CPU hands an int8 convolution to YNNPACK only when max(Ci, Co) > 16 (xla/backends/cpu/ynn_support.cc, "our
# overhead is probably too significant"); below that it runs as a generic int32 loop, fast for a few input channels
# but 5-8x slower than the float32 convolution from about 12 of them (measured, ``conv.int8_form``, which takes
# ``int8_conv_wide`` there for small batches and the float32 form for large ones).
YNN_MIN_CHANNELS = 17
WIDE_CO = 24  # output channels ``int8_conv_wide`` pads to (17, 24 and 32 measured alike; 24: a multiple of 8)


def wide_hwio(hwio, xp=jnp):
    """int8 HWIO (Kh, Kw, Ci, Co) -> (Kh, Kw, Ci, max(Co, WIDE_CO)), the added filters all zero: ``int8_conv_wide``'s
    filters. ``xp``: ``numpy`` on the host (prepared once), ``jnp`` in the graph."""
    return xp.pad(hwio, ((0, 0), (0, 0), (0, 0), (0, max(hwio.shape[-1], WIDE_CO) - hwio.shape[-1])))


def int8_conv_wide(x, w, cfg: ConvConfig, x_off):
    """``int8_conv`` with the filters padded by zero filters to ``WIDE_CO`` output channels, so that XLA:CPU hands
    a convolution of at most 16 channels in and out to YNNPACK, and the padding's outputs dropped. Exact as
    ``int8_conv`` (the real filters' products and sums are the same; the zero filters' outputs are never read).
    ``w``: (Co, Kh, Kw, Ci) ints, or ``Weights`` whose ``hwio`` is ``wide_hwio``."""
    if not isinstance(w, Weights):
        total = jnp.sum(w.astype(jnp.int32), axis=(1, 2, 3), dtype=jnp.int32)
        w = Weights(wide_hwio(_hwio(w.astype(jnp.int8))), total)
    return int8_conv(x, w, cfg, x_off)


IM2COL_K_MULTIPLE = 32  # int8_im2col's patch columns are zero-padded to a multiple of this


def im2col_width(cfg: ConvConfig, k_multiple: int = IM2COL_K_MULTIPLE) -> int:
    """``int8_im2col``'s patch width Kp: Kh*Kw*Ci rounded up to a multiple of ``k_multiple``."""
    return _engine.round_up(cfg.Kh * cfg.Kw * cfg.Ci, multiple=k_multiple)


def im2col_weights(w, cfg: ConvConfig, k_multiple: int = IM2COL_K_MULTIPLE, xp=jnp):
    """``int8_im2col``'s weight matrix, int8 (Co, Kp): each filter's (ky, kx, c) values, zero-padded to ``Kp``
    (``im2col_width``; its contracted axis last, as XLA:CPU hands int8 dots to YNNPACK). ``w``: (Co, Kh, Kw, Ci)
    ints; ``xp``: ``numpy`` on the host (prepared once), ``jnp`` in the graph."""
    k, kp = cfg.Kh * cfg.Kw * cfg.Ci, im2col_width(cfg, k_multiple)
    return xp.pad(xp.asarray(w).reshape(cfg.Co, k), ((0, 0), (0, kp - k))).astype(xp.int8)


# Output pixels (batch * Ho * Wo) of an ``int8_im2col`` call, and input channels, from which its patches are built
# from 32-bit words (``patch_words``: 4 channels of a pixel per element, ``_words``) rather than bytes: XLA:CPU
# copies a concatenation element by element, so a quarter of the elements moves the same bytes faster. Per shape
# (2-core AMD EPYC, AVX2 only, batch 16, a requantising producer fused in, patches and GEMM together, ms, bytes /
# words): 32 -> 32 3x3 s1 16x16 0.93 / 0.71, 25x25 1.98 / 1.59, with a 2x2 max pool before 1.96 / 1.55; s2 50x50
# 2.35 / 1.86; 64 -> 64 s2 16x16 with the pool 0.78 / 0.72, s1 8x8 0.58 / 0.66; 16 channels lost (16 -> 32 s1
# 16x16 0.74 / 0.83, s2 32x32 0.71 / 1.20: 4 words a pixel), as did batch 1 (256 / 169 pixels: 0.10 / 0.13 ms, the
# unpacking split over threads). Whole networks, paired in one process (``benchmarks/network_ab.py``, same EPYC,
# values / packed, batch 1 / 16 / 128, words against bytes): DroNet 1.13 / 1.07x, 1.09 / 1.10x, 1.12 / 1.03x
# faster; QuantLab DroNet 1.08 / 1.14x, 1.11 / 1.05x, 1.11 / 1.11x; NEMO Frontnet (16 / 128 only: 240-pixel layers
# at 1) 1.16 / 1.17x, 1.16 / 1.13x; MLPerf-Tiny ResNet 1.05 / 1.07x and 1.03 / 1.03x at 16 / 128; the other
# bundled networks have no such layer.
WORD_PATCH_MIN_PIXELS = 512
WORD_PATCH_MIN_CHANNELS = 32


def patch_words(cfg: ConvConfig, batch: int) -> bool:
    """Whether ``int8_im2col`` builds the patches of ``batch`` inputs from 32-bit words (4 channels each): a
    multiple of 4 input channels, at least ``WORD_PATCH_MIN_CHANNELS`` of them, and at least
    ``WORD_PATCH_MIN_PIXELS`` output pixels in the call."""
    return cfg.Ci % 4 == 0 and cfg.Ci >= WORD_PATCH_MIN_CHANNELS and batch * cfg.Ho * cfg.Wo >= WORD_PATCH_MIN_PIXELS


def _words(xs):
    """int8 (..., C) -> uint32 (..., C / 4): word j holds channels j, j + C/4, j + C/2, j + 3C/4 in its bytes 0-3,
    built from four contiguous quarters by shifts (elementwise, so XLA fuses the producer once per byte; the
    equivalent ``bitcast_convert_type`` becomes a reduction over 4 bytes, and with a pooling producer fused in it
    made NEMO Frontnet's value path 1.15x slower)."""
    q = xs.shape[-1] // 4
    u = xs.astype(jnp.uint8).astype(jnp.uint32)
    return (u[..., :q] | (u[..., q:2 * q] << 8)) | ((u[..., 2 * q:3 * q] << 16) | (u[..., 3 * q:] << 24))


@functools.cache
def _word_columns(cfg: ConvConfig, kp: int) -> np.ndarray:
    """The weight columns, in ``im2col_weights`` order, that the word-built patch columns hold: patch column
    4 * w + b is byte b of word w (``bitcast_convert_type``'s order), i.e. tap w // (Ci/4), channel
    b * Ci/4 + w % (Ci/4) (``_words``); the zero columns past Kh*Kw*Ci stay where they are."""
    q, cols = cfg.Ci // 4, np.arange(kp)
    w, b = np.divmod(np.arange(cfg.Kh * cfg.Kw * cfg.Ci), 4)
    cols[:w.size] = (w // q) * cfg.Ci + b * q + w % q
    return cols


def int8_im2col(x, w, cfg: ConvConfig, x_off, k_multiple: int = IM2COL_K_MULTIPLE):
    """``int8_conv`` as an explicit im2col and one int8 GEMM: the patches (B*Ho*Wo, Kh*Kw*Ci) of the padded
    ``x - x_off`` are built in two passes (the Kw column-strided slices side by side, then the Kh row-strided
    slices of that), zero-padded to a multiple of ``k_multiple`` columns (zero weights: exact zeros), and
    multiplied by the weights (Co, K) in int8 with int32 accumulation; from ``WORD_PATCH_MIN_PIXELS`` on, both
    passes move 32-bit words of 4 channels (``patch_words``), the same bytes. Exact under the same conditions as
    ``int8_conv`` (the same products, the same offset share). ``w``: (Co, Kh, Kw, Ci) ints, or ``Weights`` whose
    ``gemm`` is ``im2col_weights`` (its padded width then sets the patches')."""
    wk = w.gemm if isinstance(w, Weights) else im2col_weights(w, cfg, k_multiple)
    sy, sx = cfg.stride
    # padded in int8 (Deeploy miniMobileNet 4-11% faster, paired)
    xs = _shifted_int8_padded(x, cfg, x_off, (cfg.Ho - 1) * sy + cfg.Kh, (cfg.Wo - 1) * sx + cfg.Kw)
    k, kp = cfg.Kh * cfg.Kw * cfg.Ci, wk.shape[1]
    words = patch_words(cfg, x.shape[0]) and (kp - k) % 4 == 0
    if words:  # 4 channels of a pixel in each 32-bit word (``_words``): the same bytes in a quarter of the elements
        xs, wk = _words(xs), wk[:, _word_columns(cfg, kp)]
    cols = [xs[:, :, kx:kx + (cfg.Wo - 1) * sx + 1:sx] for kx in range(cfg.Kw)]
    h = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]  # (B, Hp, Wo, Kw*Ci) bytes, as words or not
    rows = [h[:, ky:ky + (cfg.Ho - 1) * sy + 1:sy] for ky in range(cfg.Kh)]
    if kp > k:
        rows.append(jnp.zeros(rows[0].shape[:-1] + ((kp - k) // 4 if words else kp - k,), xs.dtype))
    patches = jnp.concatenate(rows, axis=-1) if len(rows) > 1 else rows[0]
    if words:
        patches = jax.lax.bitcast_convert_type(patches, jnp.int8)  # (..., Kp / 4, 4): the bytes back, in order
    patches = patches.reshape(-1, kp)
    # contracting the weights' last axis keeps XLA from inserting an int8 transpose that YNNPACK would refuse
    acc = jax.lax.dot_general(patches, wk, (((1,), (1,)), ((), ())), preferred_element_type=jnp.int32)
    acc = acc.reshape(x.shape[0], cfg.Ho, cfg.Wo, cfg.Co)
    if isinstance(x_off, int) and x_off == 0:
        return acc
    return acc + _offset_share(w, x_off)


# Output pixels per row block of ``int8_band``: wider blocks multiply more zeros (5x5 s2: 2.2x the useful products
# at 4, 1.4x at 2) in a GEMM with more outputs per row. With int8 dot instructions 4 beat 2, 6 and 8 on DroNet's
# Conv_0 (Xeon with AMX); without them (``_host.lacks_int8_dot``: int8 at the float32 rate, products cost more) 2
# beat 4 in whole networks, paired (2-core AMD EPYC, AVX2 only; values / packed, batch 1 and 16): DroNet 1.04 /
# 1.03x and 1.07 / 1.07x faster, Frontnet 1.05 / 1.06x and 1.08 / 1.08x, NEMO residual 1.02x and 1.01x, MLPerf-Tiny
# ResNet 1.10 / 1.02x and 1.03 / 1.02x, the others ties; 1 and 3 lost to 2 there (Frontnet 3-7% slower than 4 at
# batch 1 with either).
BAND_WIDTH = 2 if _host.lacks_int8_dot() else 4


# int8_band's GEMM depth Kh * span * Ci is zero-padded to a multiple of this (zero columns on both sides, exact
# zeros): YNNPACK's int8 GEMM runs a depth of 55 (5x5 s2, 11 columns) 1.3-1.5x slower than 56 and 54 (3x3 s1 over 3
# channels, 6 columns) 1.4-1.6x slower than 56 (2-core Xeon with AMX, 960-20,000 rows x 64 / 128 outputs). Whole
# networks, paired in one process, ratio to the float forward before -> after at batch 1 / 16 / 128, value path:
# DroNet 1.69 / 2.58 / 4.36 -> 1.97 / 2.81 / 4.84, NEMO Frontnet 1.07 / 1.93 / 3.47 -> 1.25 / 2.14 / 3.96, NEMO
# residual 1.65 / 1.56 / 1.71 -> 1.85 / 1.68 / 1.84 (one channel: first measured with a 12-column span, depth 60,
# which the zero columns tie per layer); MLPerf-Tiny ResNet (3 channels) 1.38 / 1.53 / 1.64 -> 1.49 / 1.58 / 1.70.
# Packed likewise. The patches are one concatenation of per-row pieces in the band's column order, zero piece
# last: padding the transposed patches of a 3-channel stem instead made them 2.7x slower to build.
BAND_K_MULTIPLE = 4


def band_geometry(cfg: ConvConfig, width: int | None = None) -> tuple[int, int, int]:
    """``int8_band``'s (pixels per block, blocks per output row, input columns per block), in blocks of ``width``
    pixels (default ``BAND_WIDTH``)."""
    bw = min(BAND_WIDTH if width is None else width, cfg.Wo)
    return bw, -(-cfg.Wo // bw), cfg.stride[1] * (bw - 1) + cfg.Kw


def band_overhead(cfg: ConvConfig, width: int | None = None) -> float:
    """``int8_band``'s multiplies per useful one in blocks of ``width`` pixels (default ``BAND_WIDTH``): blocks of
    ``bw`` pixels over ``span`` input columns where the filter reads Kw, and the last block of a row padded to
    ``bw`` pixels (at width 4: DroNet's 5x5 s2 first layer 2.2; a 10x4 s2 kernel over 5 output columns 4.0)."""
    bw, nb, span = band_geometry(cfg, width)
    return nb * bw * span / (cfg.Wo * cfg.Kw)


def band_depth(cfg: ConvConfig) -> int:
    """``int8_band``'s GEMM depth: Kh * span * Ci (``band_geometry``) rounded up to a multiple of
    ``BAND_K_MULTIPLE`` (zero columns on both sides)."""
    _, _, span = band_geometry(cfg)
    return _engine.round_up(cfg.Kh * span * cfg.Ci, multiple=BAND_K_MULTIPLE)


def band_weights(w, cfg: ConvConfig, xp=jnp):
    """The banded weight matrix of ``int8_band``, int8 (bw * Co, ``band_depth``): row (j, o) holds filter o at
    input column ``sx * j + kx`` of the block (zeros elsewhere, and in the padding columns), its contracted axis
    last (as XLA:CPU hands int8 dots to YNNPACK). ``w``: (Co, Kh, Kw, Ci) ints; ``xp``: ``numpy`` on the host
    (prepared once), ``jnp`` in the graph."""
    bw, _, span = band_geometry(cfg)
    sx = cfg.stride[1]
    place = np.zeros((cfg.Kw, span, bw), np.int32)  # place[kx, sx*j + kx, j] = 1
    for j in range(bw):
        place[np.arange(cfg.Kw), sx * j + np.arange(cfg.Kw), j] = 1
    band = xp.einsum("oykc,kpj->joypc", xp.asarray(w).astype(xp.int32), place)  # one nonzero term per entry
    k = cfg.Kh * span * cfg.Ci
    return xp.pad(band.reshape(bw * cfg.Co, k), ((0, 0), (0, band_depth(cfg) - k))).astype(xp.int8)


def int8_band(x, w, cfg: ConvConfig, x_off):
    """``int8_conv`` as one int8 GEMM over row blocks: each output row is cut into blocks of ``bw`` pixels; a
    block reads the Kh input rows of its window and ``span = sx * (bw - 1) + Kw`` input columns, so its patch
    (Kh * span * Ci values of the padded ``x - x_off``) times the banded weights (``band_weights``: a filter
    placed once per output pixel of the block, zeros elsewhere) gives all ``bw * Co`` accumulators of the block.
    Fewer bytes of patches than im2col (``span`` columns per block instead of ``bw * Kw``) for a few multiplies by
    zero (exact zeros); meant for one or a few input channels (DroNet's first layer, RGB stems at stride 1), where
    the convolution libraries are slow. Exact under ``int8_conv``'s conditions: every product is of int8 values,
    accumulated in int32 (modulo 2**32 in any order), plus the same offset share; the GEMM depth is zero-padded to
    ``band_depth`` (zero columns of patches and band). ``w``: (Co, Kh, Kw, Ci) ints, or ``Weights`` whose ``gemm``
    is ``band_weights``."""
    bw, nb, span = band_geometry(cfg)
    sy, sx = cfg.stride
    step = sx * bw
    chunks = -(-span // step)  # a block's span in whole steps: chunk m of block j is step j + m
    # padded in int8 (NEMO residual / DroNet / Frontnet 3-20% faster, paired)
    xs = _shifted_int8_padded(x, cfg, x_off, (cfg.Ho - 1) * sy + cfg.Kh, step * (nb + chunks - 1))
    B, C, k = x.shape[0], cfg.Ci, cfg.Kh * span * cfg.Ci
    band = w.gemm if isinstance(w, Weights) else band_weights(w, cfg)
    pieces = []  # (B, Ho, nb, columns * C) each, in the band's (ky, column, c) order: one concatenation
    for ky in range(cfg.Kh):
        row = xs[:, ky:ky + (cfg.Ho - 1) * sy + 1:sy]  # (B, Ho, Wp, C)
        for m in range(chunks):
            cols = min(step, span - m * step)
            pieces.append(row[:, :, step * m:step * (m + nb)].reshape(B, cfg.Ho, nb, step * C)[..., :cols * C])
    if band.shape[1] > k:  # zero columns against the band's (``band_depth``)
        pieces.append(jnp.zeros((B, cfg.Ho, nb, band.shape[1] - k), jnp.int8))
    patches = jnp.concatenate(pieces, axis=-1).reshape(B * cfg.Ho * nb, band.shape[1])
    acc = jax.lax.dot_general(patches, band, (((1,), (1,)), ((), ())), preferred_element_type=jnp.int32)
    acc = acc.reshape(B, cfg.Ho, nb * bw, cfg.Co)[:, :, :cfg.Wo]
    if isinstance(x_off, int) and x_off == 0:
        return acc
    return acc + _offset_share(w, x_off)
