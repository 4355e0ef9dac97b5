"""Requantisation exactly as the PULP-NN mixed kernels do it (semantics.md §4).

Mode selection (identical in every quantising kernel, evaluated in this order):

* ``bn != 0 and relu != 0`` -> BN:         ``clip(asr(wrap32(wrap32(kappa*acc) + lambda), out_shift))``
* ``relu == 1``             -> MULT:       ``clip(asr(wrap32(int16(out_mult)*acc), int8(out_shift)))``
* otherwise                 -> SHIFT-CLIP: ``clip(asr(acc, out_shift))``  (bn ignored)

``asr`` is a floor shift by the low 5 bits of the amount (the core's ``sra``); there is no rounding term.
``clip`` saturates to the output type (unsigned outputs therefore always rectify).

``bn_bits=64`` selects the library's ``64bit/`` tree (DORY's ``BNRelu_bits = 64``; semantics.md §4.3): the BN
value ``asr(kappa*acc + lambda, out_shift)`` is computed in 64-bit arithmetic (shift amount mod 64) and the clip
receives its low 32 bits. kappa and lambda are int32 values here (int64 in C; wider values are refused where
the parameters are built). MULT and SHIFT-CLIP are identical in both trees. In JAX's 32-bit mode the 64-bit
product is assembled from 16-bit limbs (``_bn64``).

Two implementations share these rules: ``requant`` (jax.numpy, vectorised, every argument may be traced so
precision and flags can be data) and ``requant_int`` (plain Python ints, for the numpy reference twins).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MODE_BN, MODE_MULT, MODE_SHIFT = 0, 1, 2
MODE_NAMES = {MODE_BN: "batch-norm", MODE_MULT: "multiplier", MODE_SHIFT: "shift-and-clip"}


def mode(relu: int, bn: int) -> int:
    """The requantisation mode the library selects for these flag values (static Python ints)."""
    if bn != 0 and relu != 0:
        return MODE_BN
    if relu == 1:
        return MODE_MULT
    return MODE_SHIFT


def mode_traced(relu, bn):
    """``mode`` on traced int32 flags."""
    relu = jnp.asarray(relu, jnp.int32)
    bn = jnp.asarray(bn, jnp.int32)
    return jnp.where((bn != 0) & (relu != 0), MODE_BN, jnp.where(relu == 1, MODE_MULT, MODE_SHIFT))


def wrap32(v: int) -> int:
    """Two's-complement wrap of a Python int to int32."""
    return ((int(v) + (1 << 31)) % (1 << 32)) - (1 << 31)


def int16(v: int) -> int:
    """The uint16 argument ``out_mult`` as the int16 the helper uses (40000 -> -25536)."""
    v = int(v) & 0xFFFF
    return v - 0x10000 if v >= 0x8000 else v


def clip_int(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


BN_BITS = (32, 64)


def requant_int(acc: int, *, relu: int, bn: int, kappa: int, lam: int, out_mult: int, out_shift: int,
                lo: int, hi: int, bn_bits: int = 32) -> int:
    """Reference requantisation of one int32 accumulator (Python ints). Returns the clipped value."""
    s = int(out_shift) & 31
    m = mode(relu, bn)
    if m == MODE_BN and bn_bits == 64:
        v = wrap32((int(kappa) * wrap32(acc) + int(lam)) >> (int(out_shift) & 63))
    elif m == MODE_BN:
        v = wrap32(wrap32(int(kappa) * acc) + int(lam)) >> s
    elif m == MODE_MULT:
        v = wrap32(int16(out_mult) * acc) >> s
    else:
        v = wrap32(acc) >> s
    return clip_int(v, lo, hi)


def type_bounds(bits, signed):
    """(lo, hi) of a ``bits``-bit type; works on Python ints and on traced int32 scalars."""
    bits = jnp.asarray(bits, jnp.int32)
    signed = jnp.asarray(signed, jnp.int32)
    full = jnp.left_shift(jnp.int32(1), bits) - 1
    half = jnp.left_shift(jnp.int32(1), bits - 1)
    lo = jnp.where(signed != 0, -half, 0)
    hi = jnp.where(signed != 0, half - 1, full)
    return lo, hi


def _u32(v):
    return jax.lax.bitcast_convert_type(v, jnp.uint32)


def _i32(v):
    return jax.lax.bitcast_convert_type(v, jnp.int32)


def _add64(hi, lo, x_hi, x_lo):
    """(hi, lo) + (x_hi, x_lo) as 64-bit two's complement pairs (hi int32, lo uint32), wrap-around."""
    new_lo = lo + x_lo
    carry = (new_lo < lo).astype(jnp.int32)
    return hi + x_hi + carry, new_lo


def _bn64(kappa, acc, lam, out_shift):
    """Low 32 bits (int32) of ``asr64(kappa*acc + lam, out_shift & 63)`` for int32 operands, exactly."""
    a, b = jnp.asarray(kappa, jnp.int32), jnp.asarray(acc, jnp.int32)
    a, b = jnp.broadcast_arrays(a, b)
    ah, al = jnp.right_shift(a, 16), a & 0xFFFF  # a = ah*2^16 + al, al in [0, 2^16)
    bh, bl = jnp.right_shift(b, 16), b & 0xFFFF
    hi = ah * bh  # |.| <= 2^30
    lo = _u32(al) * _u32(bl)  # < 2^32, exact in uint32
    for m in (ah * bl, al * bh):  # |m| < 2^31: m * 2^16 = (m >> 16) * 2^32 + ((m & 0xFFFF) << 16)
        hi, lo = _add64(hi, lo, jnp.right_shift(m, 16), _u32(m & 0xFFFF) << 16)
    lam = jnp.asarray(lam, jnp.int32)
    hi, lo = _add64(hi, lo, jnp.right_shift(lam, 31), _u32(lam))
    s = jnp.asarray(out_shift, jnp.int32) & 63
    sl = jnp.minimum(s, 31).astype(jnp.uint32)
    low = (lo >> sl) | jnp.where(s == 0, jnp.uint32(0), _u32(hi) << (32 - sl))
    high = _u32(jnp.right_shift(hi, jnp.maximum(s - 32, 0)))
    return _i32(jnp.where(s >= 32, high, low))


BN64_SPLIT_MAX = 20  # the widest low piece ``bn64_split`` tries (bits)
BN64_SPLIT_PIECES = 3  # the most low pieces it tries


def bn64_split(kappa, lam, out_shift: int, acc_lo=None, acc_hi=None) -> tuple[int, int] | None:
    """Static proof that the 64-bit BN value ``asr64(kappa*acc + lam, s)`` (s = ``out_shift & 63``) of every
    accumulator in [``acc_lo``, ``acc_hi``] (per channel, int64 bounds of the exact sum: where they leave int32
    the accumulator wraps and any int32 value is taken; default the whole int32 range) is computed exactly in
    int32 arithmetic from pieces of ``acc``: n low pieces of r bits, ``a_i = (acc >> i*r) & (2**r - 1)``, and the
    top ``acc >> n*r``. With ``U_0 = lam``, ``U_{i+1} = (kappa*a_i + U_i) >> r``, ``M = kappa*top + U_n`` equals
    ``floor((kappa*acc + lam) / 2**(n*r))`` (each step one floor division by ``2**r`` of an exact sum), and the
    value is ``M >> (s - n*r)`` (``>> 31`` where that exceeds 31, M being in int32). Returns (r, n), the fewest
    pieces (n <= ``BN64_SPLIT_PIECES``), widest first (n*r <= s, r <= ``BN64_SPLIT_MAX``), for which every
    intermediate of every channel lies in int32 (interval arithmetic on Python ints: no wrap anywhere, and the
    value, |v| <= |M| < 2**31, is its own low 32 bits), else None. ``kappa`` / ``lam``: concrete ints per channel
    (or scalars)."""
    s = int(out_shift) & 63
    k = np.atleast_1d(np.asarray(kappa, np.int64)).astype(object)
    lam_ = np.broadcast_to(np.atleast_1d(np.asarray(lam, np.int64)), k.shape).astype(object)
    lo = np.broadcast_to(np.atleast_1d(np.asarray(-(1 << 31) if acc_lo is None else acc_lo, np.int64)), k.shape)
    hi = np.broadcast_to(np.atleast_1d(np.asarray((1 << 31) - 1 if acc_hi is None else acc_hi, np.int64)), k.shape)
    wraps = (lo < -(1 << 31)) | (hi >= (1 << 31))  # an int32 accumulator that may wrap may hold any int32 value
    lo = np.where(wraps, -(1 << 31), lo).astype(object)
    hi = np.where(wraps, (1 << 31) - 1, hi).astype(object)

    def fits(*vs):
        return all(-(1 << 31) <= int(v) < (1 << 31) for arr in vs for v in np.ravel(arr))

    for n in range(1, BN64_SPLIT_PIECES + 1):
        for r in range(min(s // n, BN64_SPLIT_MAX), 0, -1):
            prod = np.stack([k * 0, k * ((1 << r) - 1)])  # kappa * a_i over a_i in [0, 2**r - 1]
            u_lo, u_hi, ok = lam_, lam_, fits(prod)
            for _ in range(n):
                t_lo, t_hi = prod.min(axis=0) + u_lo, prod.max(axis=0) + u_hi
                ok = ok and fits(t_lo, t_hi)
                u_lo, u_hi = t_lo >> r, t_hi >> r
            top = np.stack([k * (lo >> (n * r)), k * (hi >> (n * r))])  # kappa * top: at the ends of its range
            if ok and fits(top, top.min(axis=0) + u_lo, top.max(axis=0) + u_hi):
                return r, n
    return None


def _bn64_split(kappa, acc, lam, out_shift, split: tuple[int, int]):
    """``bn64_split``'s int32 form (``split`` = (r, n) proved for these parameters): the BN value, int32."""
    r, n = split
    k = jnp.asarray(kappa, jnp.int32)
    u = jnp.asarray(lam, jnp.int32)
    for i in range(n):
        u = jnp.right_shift(k * (jnp.right_shift(acc, i * r) & ((1 << r) - 1)) + u, r)
    m = k * jnp.right_shift(acc, n * r) + u
    s = jnp.asarray(out_shift, jnp.int32) & 63
    return jnp.right_shift(m, jnp.minimum(s - n * r, 31))


def requant(acc, *, relu, bn, kappa, lam, out_mult, out_shift, lo, hi, bn_bits: int = 32,
            bn_split: tuple[int, int] | None = None):
    """Vectorised requantisation of int32 accumulators (wrap-around int32 arithmetic, as on the core).

    ``kappa`` / ``lam`` broadcast against ``acc`` (per output channel: the last axis); ``relu``, ``bn``,
    ``out_mult`` (uint16 argument), ``out_shift`` and the clip bounds ``lo``/``hi`` may be traced scalars.
    ``bn_bits`` (static, 32 or 64): the library tree of the BN mode (see the module docstring). ``bn_split``
    (static): for ``bn_bits=64``, a split (r, n) ``bn64_split`` proved for these very parameters and accumulators
    (the same bits in a third to a quarter of the operations), else None (16-bit limbs, any values).
    """
    acc = jnp.asarray(acc, jnp.int32)
    s = jnp.bitwise_and(jnp.asarray(out_shift, jnp.int32), 31)

    def bn_v():
        if bn_bits == 64:
            if bn_split is not None:
                return _bn64_split(kappa, acc, lam, out_shift, bn_split)
            return _bn64(kappa, acc, lam, out_shift)
        return jnp.right_shift(jnp.asarray(kappa, jnp.int32) * acc + jnp.asarray(lam, jnp.int32), s)

    def mult_v():
        m16 = jnp.asarray(out_mult, jnp.int32) & 0xFFFF
        return jnp.right_shift(jnp.where(m16 >= 0x8000, m16 - 0x10000, m16) * acc, s)

    def shift_v():
        return jnp.right_shift(acc, s)

    if all(isinstance(f, (bool, int, np.integer)) for f in (relu, bn)):
        # static flags: only the selected mode is traced (fewer ops to lower and compile; the values of the traced
        # selection below, which takes that very branch)
        v = {MODE_BN: bn_v, MODE_MULT: mult_v, MODE_SHIFT: shift_v}[mode(int(relu), int(bn))]()
    else:
        m = mode_traced(relu, bn)
        v = jnp.where(m == MODE_BN, bn_v(), jnp.where(m == MODE_MULT, mult_v(), shift_v()))
    return jnp.clip(v, lo, hi)


def unsigned_clip_as_signed(acc, out_shift, bits):
    """The matmul main block's SHIFT-CLIP for signed outputs (semantics.md §4.4): the *unsigned* clip
    ``clipU(asr(acc, s), bits)`` is stored, and the stored field is read back as a signed ``bits``-bit value."""
    s = jnp.bitwise_and(jnp.asarray(out_shift, jnp.int32), 31)
    bits = jnp.asarray(bits, jnp.int32)
    full = jnp.left_shift(jnp.int32(1), bits) - 1
    half = jnp.left_shift(jnp.int32(1), bits - 1)
    field = jnp.clip(jnp.right_shift(jnp.asarray(acc, jnp.int32), s), 0, full)
    return jnp.where(field >= half, field - (full + 1), field)


def unsigned_clip_as_signed_int(acc: int, out_shift: int, bits: int) -> int:
    """Python-int twin of ``unsigned_clip_as_signed``."""
    field = clip_int(wrap32(acc) >> (int(out_shift) & 31), 0, (1 << bits) - 1)
    return field - (1 << bits) if field >= (1 << (bits - 1)) else field


def np_wrap32(a) -> np.ndarray:
    """Wrap an int64 numpy array to int32 values (two's complement)."""
    return np.asarray(a, np.int64).astype(np.uint32).astype(np.int32)
