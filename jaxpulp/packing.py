"""Int tensors <-> packed memory images (``uint32`` words, little-endian), as the PULP-NN kernels address them.

A stream of b-bit elements e0, e1, ... is packed lowest bits first inside each byte (semantics.md §3.1):
element k of a 32-bit word sits at bits [k*b, k*b + b). Images are padded with zero bits to whole words.

* ``pack`` / ``unpack``: any tensor as one element stream in C order (weights, linear vectors).
* ``pack_hwc`` / ``unpack_hwc``: HWC activations; every pixel must be whole bytes (C*b a multiple of 8).
  A leading batch axis packs each image separately (shape (..., words)).
* ``pack_planes`` / ``unpack_planes``: the depthwise "byte-plane CHW" layout (semantics.md §8.1): the
  HWC tensor packed along C, its bytes viewed as [H*W][C*b/8] and transposed to [C*b/8][H*W].
* ``extract_elements``: jnp lane read with traced width/signedness, exactly what ``p.extract`` /
  ``p.extractu`` return (used inside the kernels' compiled functions).

The numpy functions validate their input and raise ``JaxpulpError`` naming the argument, the value and what
was expected; nothing is silently truncated or wrapped.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import QType

__all__ = ["pack", "unpack", "pack_hwc", "unpack_hwc", "pack_planes", "unpack_planes", "n_words",
           "words_to_bytes", "bytes_to_words", "extract_elements"]


def _qtype(t, name: str = "qtype") -> QType:
    q = QType.parse(t)
    if q.bits not in (2, 4, 8):
        raise JaxpulpError(f"{name}={q}: packed images hold 2-, 4- or 8-bit elements")
    return q


def _int_values(values, q: QType, name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        raise JaxpulpError(f"{name}: dtype {a.dtype}, expected an integer array of {q} values")
    a = a.astype(np.int64)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < q.lo or hi > q.hi:
            bad = lo if lo < q.lo else hi
            raise JaxpulpError(f"{name}: value {bad} out of range for {q}: expected [{q.lo}, {q.hi}]")
    return a


def _words(words, name: str) -> np.ndarray:
    w = np.asarray(words)
    if w.dtype != np.uint32:
        raise JaxpulpError(f"{name}: dtype {w.dtype}, expected a uint32 memory image")
    return w


def _count(v, name: str, what: str) -> int:
    """An element count or extent: an int (or numpy integer; not a bool) >= 0."""
    if not is_int(v) or v < 0:
        raise JaxpulpError(f"{name}={v!r}: expected an int >= 0 ({what})")
    return int(v)


def n_words(count: int, bits: int) -> int:
    """uint32 words holding ``count`` elements of ``bits`` bits (2, 4, 8 or 32)."""
    count = _count(count, "count", "elements")
    if not is_int(bits) or bits not in (2, 4, 8, 32):
        raise JaxpulpError(f"bits={bits!r}: expected 2, 4, 8 or 32 (element bits)")
    return -(-(count * int(bits)) // 32)


def _pack_stream(a: np.ndarray, bits: int) -> np.ndarray:
    """a: (..., n) int64 in range -> (..., n_words) uint32."""
    per = 32 // bits
    n = a.shape[-1]
    pad = (-n) % per
    field = (a & ((1 << bits) - 1)).astype(np.uint64)
    field = np.pad(field, [(0, 0)] * (a.ndim - 1) + [(0, pad)]).reshape(a.shape[:-1] + (-1, per))
    shifts = (np.arange(per, dtype=np.uint64) * np.uint64(bits))
    return np.bitwise_or.reduce(field << shifts, axis=-1).astype(np.uint32)


def _unpack_stream(w: np.ndarray, bits: int, signed: bool, count: int) -> np.ndarray:
    per = 32 // bits
    shifts = np.arange(per, dtype=np.uint32) * np.uint32(bits)
    v = ((w[..., :, None] >> shifts) & np.uint32((1 << bits) - 1)).astype(np.int64)
    v = v.reshape(w.shape[:-1] + (-1,))[..., :count]
    if signed:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return v


def pack(values, qtype) -> np.ndarray:
    """Pack an int tensor (any shape, C order) of ``qtype`` values as one element stream -> 1-D uint32 words."""
    q = _qtype(qtype)
    a = _int_values(values, q, "values")
    return _pack_stream(a.reshape(-1), q.bits)


def unpack(words, qtype, count: int) -> np.ndarray:
    """The first ``count`` elements of the stream in ``words`` (last axis), sign- or zero-extended -> int64."""
    q = _qtype(qtype)
    w = _words(words, "words")
    count = _count(count, "count", "elements to unpack")
    need = n_words(count, q.bits)
    if w.ndim == 0 or w.shape[-1] < need:
        raise JaxpulpError(f"words: shape {w.shape} holds fewer than count={count} {q} elements "
                           f"(expected >= {need} words on the last axis)")
    return _unpack_stream(w, q.bits, q.signed, count)


def _check_hwc(shape, q: QType, name: str):
    if len(shape) < 3:
        raise JaxpulpError(f"{name}: shape {tuple(shape)}, expected ([batch, ...,] H, W, C)")
    c = shape[-1]
    if (c * q.bits) % 8:
        raise JaxpulpError(f"{name}: C={c} channels of {q}: every pixel must be whole bytes, so C must be a "
                           f"multiple of {8 // q.bits}")


def _hwc_shape(shape, q: QType) -> tuple:
    ok = isinstance(shape, (tuple, list, np.ndarray)) and len(shape) == 3 and all(
        is_int(v) and v >= 0 for v in shape)
    if not ok:
        raise JaxpulpError(f"shape={shape!r}: expected (H, W, C), three ints >= 0")
    shape = tuple(int(s) for s in shape)
    _check_hwc(shape, q, "shape")
    return shape


def pack_hwc(x, qtype) -> np.ndarray:
    """HWC int tensor (H, W, C), or (..., H, W, C) for a batch, -> packed image(s) (..., n_words) uint32.
    Pixel (y, x) starts at byte (y*W + x)*C*bits/8; channel c of a byte at bits [(c % E)*bits, ...)."""
    q = _qtype(qtype)
    a = _int_values(x, q, "x")
    _check_hwc(a.shape, q, "x")
    return _pack_stream(a.reshape(a.shape[:-3] + (-1,)), q.bits)


def unpack_hwc(words, shape, qtype) -> np.ndarray:
    """Packed HWC image(s) (..., n_words) -> int64 tensor (..., H, W, C) with ``shape`` = (H, W, C)."""
    q = _qtype(qtype)
    shape = _hwc_shape(shape, q)
    w = _words(words, "words")
    v = unpack(w, q, shape[0] * shape[1] * shape[2])
    return v.reshape(w.shape[:-1] + shape)


def pack_planes(x, qtype) -> np.ndarray:
    """Depthwise byte-plane CHW image of an HWC tensor (H, W, C) (or a batch (..., H, W, C)).

    Plane p (H*W bytes, row-major) holds channels p*E .. p*E+E-1 of every pixel (E = 8/bits, low bits =
    lowest channel); planes follow each other; the image is padded with zero bytes to whole words.
    For 8-bit elements this is plain CHW. Depthwise weights [Kh][Kw][C] use the same transform."""
    q = _qtype(qtype)
    a = _int_values(x, q, "x")
    _check_hwc(a.shape, q, "x")
    *lead, h, w, c = a.shape
    bpp = c * q.bits // 8  # bytes per pixel
    by = words_to_bytes(_pack_stream(a.reshape(tuple(lead) + (h * w * c,)), q.bits))[..., :h * w * bpp]
    planes = np.swapaxes(by.reshape(tuple(lead) + (h * w, bpp)), -1, -2).reshape(tuple(lead) + (-1,))
    return bytes_to_words(planes)


def unpack_planes(words, shape, qtype) -> np.ndarray:
    """Inverse of ``pack_planes``: byte-plane image(s) -> int64 HWC tensor (..., H, W, C), ``shape`` = (H, W, C)."""
    q = _qtype(qtype)
    h, w, c = shape = _hwc_shape(shape, q)
    bpp = c * q.bits // 8
    wd = _words(words, "words")
    by = words_to_bytes(wd)
    if by.shape[-1] < h * w * bpp:
        raise JaxpulpError(f"words: shape {wd.shape} holds fewer than {h * w * bpp} bytes of planes")
    lead = by.shape[:-1]
    hwc = np.swapaxes(by[..., :h * w * bpp].reshape(lead + (bpp, h * w)), -1, -2).reshape(lead + (-1,))
    return unpack(bytes_to_words(hwc), q, h * w * c).reshape(lead + shape)


def words_to_bytes(words) -> np.ndarray:
    """uint32 words (..., n) -> their little-endian bytes (..., 4n) uint8 (the memory image as bytes)."""
    w = _words(words, "words")
    return np.ascontiguousarray(w.astype("<u4")).view(np.uint8).reshape(w.shape[:-1] + (-1,))


def bytes_to_words(data) -> np.ndarray:
    """uint8 bytes (..., n) -> uint32 words (..., ceil(n/4)), zero-padded to whole words."""
    b = np.asarray(data)
    if b.dtype != np.uint8:
        raise JaxpulpError(f"data: dtype {b.dtype}, expected uint8 bytes")
    if b.ndim == 0:
        raise JaxpulpError(f"data: shape {b.shape}, expected uint8 bytes ([..., ] n), at least one axis")
    b = np.pad(b, [(0, 0)] * (b.ndim - 1) + [(0, (-b.shape[-1]) % 4)])
    return np.ascontiguousarray(b).view("<u4").astype(np.uint32)


def extract_elements(words, index, bits, signed):
    """jnp: element ``index`` of the ``bits``-bit stream in ``words`` (1-D uint32), sign-extended when
    ``signed`` (``p.extract``) else zero-extended (``p.extractu``) -> int32. ``bits`` in {2, 4, 8} and
    ``signed`` may be traced; ``index`` is an int array of any shape (in range: the caller masks)."""
    bits = jnp.asarray(bits, jnp.int32)
    bitpos = jnp.asarray(index, jnp.int32) * bits
    word = jnp.asarray(words, jnp.uint32)[bitpos >> 5]
    ub = bits.astype(jnp.uint32)
    v = (word >> (bitpos & 31).astype(jnp.uint32)) & ((jnp.uint32(1) << ub) - jnp.uint32(1))
    v = v.astype(jnp.int32)
    neg = (jnp.asarray(signed) != 0) & (v >= (jnp.int32(1) << (bits - 1)))
    return jnp.where(neg, v - (jnp.int32(1) << bits), v)
