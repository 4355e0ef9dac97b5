"""XpulpV2 (RV32IMCXpulpV2, RI5CY / CV32E40P) instructions used by the PULP-NN mixed kernels, in ``jax.numpy``.

Every function is named after its C builtin without the ``__builtin_pulp_`` prefix (``sdotusp4`` is
``__builtin_pulp_sdotusp4``, i.e. ``pv.sdotusp.b``). They are pure, elementwise (operands broadcast like
``jnp`` arrays) and work under ``jit`` and ``vmap`` in JAX's default 32-bit mode.

Conventions (semantics.md §3, isa_cost.md §1):

* A register is a 32-bit **word**. Operands may be ``uint32`` or ``int32`` arrays (the bits are what
  matter), narrower integer arrays (extended like a C argument: ``int8`` sign-, ``uint8`` zero-extended),
  numpy integer arrays or Python ints (both taken modulo 2^32).
* Results that are bit patterns (extractu, insert, pack, SIMD lanes) are ``uint32``; results that are
  signed quantities (dot products, extract, clips, signed scalar min/max, fl1) are ``int32``; unsigned
  scalar min/max are ``uint32``.
* SIMD ``.b`` lanes: lane i is bits [8i, 8i+8) of the word (lane 0 = lowest address, little-endian).
* Bit-field widths ``n`` are in bits (1..32), offsets ``o`` in bits (0..31). A Python-int width/offset is
  checked (``JaxpulpError`` outside those ranges); an array width/offset is decoded like the register forms
  ``p.extractr``/``p.insertr`` (width ``((n - 1) & 31) + 1``, offset ``o & 31``), never raising.
* Fields that run past bit 31 (``o + n > 32``): the hardware clamps the field's top bit to 31
  (CV32E40P manual: ``rD = Sext(rs1[min(Is3+Is2,31):Is2])``). So ``bextract`` is then an arithmetic and
  ``bextractu`` a logical right shift by ``o``, and ``insert_field`` writes only the low ``32 - o`` bits of
  the source. (PULP GCC rejects constant ``size + offset > 32`` for the builtins; the kernels never do it.)

``INSTRUCTIONS`` maps each builtin name to an ``Instruction`` record (mnemonic, function, cost class and
machine-instruction count): a reference table, checked by ``tests/test_isa.py`` against the instruction classes
of ``jaxpulp.cost.types``. The cost model does not read it: ``jaxpulp.cost.pulpnn`` counts per class directly
while walking each kernel's loops (a ``pack4`` there is 2 ``pack`` instructions, as ``count`` says here).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.errors import JaxpulpError

_U32 = jnp.uint32
_I32 = jnp.int32
_MASK32 = 0xFFFFFFFF


# --- operand conversion ------------------------------------------------------------------------------------

def _word(x) -> jax.Array:
    """Any integer operand -> ``uint32`` word with the same low 32 bits (C argument promotion for narrow types)."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"expected an integer word, got {type(x).__name__}")
    if isinstance(x, (int, np.integer)):
        return jnp.asarray(np.uint32(int(x) & _MASK32))
    if isinstance(x, np.ndarray) and not isinstance(x, jax.Array):
        if x.dtype.kind not in "iu":
            raise TypeError(f"expected an integer array, got dtype {x.dtype}")
        if x.dtype.itemsize > 4:
            x = (x.astype(np.int64) & _MASK32).astype(np.uint32)  # uint64 -> int64 wraps, the mask undoes it
        elif x.dtype.kind == "i":
            x = x.astype(np.int32).view(np.uint32)
        else:
            x = x.astype(np.uint32)
        return jnp.asarray(x)
    x = jnp.asarray(x)
    kind, size = x.dtype.kind, x.dtype.itemsize
    if kind not in "iu":
        raise TypeError(f"expected an integer array, got dtype {x.dtype}")
    if kind == "u" and size == 4:
        return x
    if kind == "i" and size == 4:
        return jax.lax.bitcast_convert_type(x, _U32)
    if size > 4:  # only with jax_enable_x64
        return (x & _MASK32).astype(_U32)
    if kind == "i":  # int8 / int16: sign-extend first
        return jax.lax.bitcast_convert_type(x.astype(_I32), _U32)
    return x.astype(_U32)


def _as_i32(w: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(w, _I32)


def _as_u32(w: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(w, _U32)


def _sword(x) -> jax.Array:
    """Any integer operand -> ``int32`` (two's-complement reading of the word)."""
    return _as_i32(_word(x))


def _is_static(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _width(n, name: str = "n") -> jax.Array:
    """Field width in bits as a ``uint32`` (1..32): checked if static, register-decoded if an array."""
    if _is_static(n):
        if not 1 <= int(n) <= 32:
            raise JaxpulpError(f"{name}={int(n)}: bit-field width must be in 1..32")
        return jnp.asarray(np.uint32(n))
    return ((_word(n) - 1) & 31) + 1


def _offset(o, name: str = "o") -> jax.Array:
    """Bit offset as a ``uint32`` (0..31): checked if static, ``& 31`` if an array."""
    if _is_static(o):
        if not 0 <= int(o) <= 31:
            raise JaxpulpError(f"{name}={int(o)}: bit offset must be in 0..31")
        return jnp.asarray(np.uint32(o))
    return _word(o) & 31


def _low_mask(n: jax.Array) -> jax.Array:
    """``uint32`` mask of the low ``n`` bits, n in 1..32 (a shift by 0..31, always defined)."""
    return jnp.right_shift(jnp.asarray(np.uint32(_MASK32)), jnp.uint32(32) - n)


def _lane_u(w: jax.Array, i: int) -> jax.Array:
    """Byte lane ``i`` of ``uint32`` word ``w``, zero-extended (``uint32``)."""
    return jnp.right_shift(w, jnp.uint32(8 * i)) & 0xFF


def _lane_s(w: jax.Array, i: int) -> jax.Array:
    """Byte lane ``i`` of ``uint32`` word ``w``, sign-extended (``int32``)."""
    return jnp.right_shift(_as_i32(jnp.left_shift(w, jnp.uint32(24 - 8 * i))), jnp.int32(24))


def _join_lanes(lanes) -> jax.Array:
    """Four ``uint32`` byte values (only their low 8 bits are used) -> one word, lane 0 first."""
    out = lanes[0] & 0xFF
    for i in (1, 2, 3):
        out = out | jnp.left_shift(lanes[i] & 0xFF, jnp.uint32(8 * i))
    return out


def _wrap_add(acc: jax.Array, v: jax.Array) -> jax.Array:
    """``int32`` + ``int32`` with two's-complement wrap-around (done in ``uint32``)."""
    return _as_i32(_as_u32(acc) + _as_u32(v))


# --- dot products (pv.sdot*.b) -------------------------------------------------------------------------------

def _sdot4(a, b, acc, a_signed: bool, b_signed: bool) -> jax.Array:
    wa, wb, c = _word(a), _word(b), _sword(acc)
    dot = jnp.zeros(jnp.broadcast_shapes(wa.shape, wb.shape), _I32)
    for i in range(4):
        la = _lane_s(wa, i) if a_signed else _as_i32(_lane_u(wa, i))
        lb = _lane_s(wb, i) if b_signed else _as_i32(_lane_u(wb, i))
        dot = dot + la * lb  # |each product| <= 2^16, |sum| < 2^18: no overflow in int32
    return _wrap_add(c, dot)


def sdotusp4(a, b, acc) -> jax.Array:
    """``pv.sdotusp.b``: ``acc + Σ_{i<4} zext8(a.lane_i) · sext8(b.lane_i)``, wrapped to int32.

    a: word of 4 unsigned 8-bit lanes (activations); b: word of 4 signed 8-bit lanes (weights);
    acc: int32 accumulator. Returns int32.
    """
    return _sdot4(a, b, acc, a_signed=False, b_signed=True)


def sdotsp4(a, b, acc) -> jax.Array:
    """``pv.sdotsp.b``: ``acc + Σ_{i<4} sext8(a.lane_i) · sext8(b.lane_i)``, wrapped to int32. Returns int32."""
    return _sdot4(a, b, acc, a_signed=True, b_signed=True)


def sdotup4(a, b, acc) -> jax.Array:
    """``pv.sdotup.b``: ``acc + Σ_{i<4} zext8(a.lane_i) · zext8(b.lane_i)``, wrapped to 32 bits.

    Returns int32 (the hardware result is the same bit pattern read as unsigned).
    """
    return _sdot4(a, b, acc, a_signed=False, b_signed=False)


# --- bit-field extract / insert (p.extract, p.extractu, p.insert) ---------------------------------------------

def bextract(x, n, o) -> jax.Array:
    """``p.extract``: bits [o, o+n) of word ``x``, sign-extended from the field's top bit. Returns int32.

    n: width in bits (1..32); o: offset in bits (0..31). If o+n > 32 the field stops at bit 31
    (hardware clamp), so the result is ``x >> o`` (arithmetic).
    """
    w, nn, oo = _word(x), _width(n), _offset(o)
    shifted = jnp.right_shift(_as_i32(w), oo.astype(_I32))  # arithmetic: bits above 31 copy bit 31
    up = (jnp.uint32(32) - nn).astype(_I32)  # 0..31
    return jnp.right_shift(jnp.left_shift(shifted, up), up)


def bextractu(x, n, o) -> jax.Array:
    """``p.extractu``: bits [o, o+n) of word ``x``, zero-extended. Returns **uint32** (n = 32 needs it).

    n: width in bits (1..32); o: offset in bits (0..31). If o+n > 32 the field stops at bit 31
    (hardware clamp), so the result is ``x >> o`` (logical).
    """
    w, nn, oo = _word(x), _width(n), _offset(o)
    return jnp.right_shift(w, oo) & _low_mask(nn)


def binsert(d, nmask, s, mask, o) -> jax.Array:
    """``__builtin_pulp_binsert`` (``p.insert``): ``(d & nmask) | ((s << o) & mask)``. Returns uint32.

    This is the builtin's literal definition (semantics.md §3). PULP-NN passes int8 constants, so masks
    arrive sign-extended (0xf0 -> 0xFFFFFFF0, ~0xf0 -> 0x0000000F); only the result's low byte is stored.
    o: shift in bits (0..31).
    """
    return (_word(d) & _word(nmask)) | (jnp.left_shift(_word(s), _offset(o)) & _word(mask))


def insert_field(d, s, n, o) -> jax.Array:
    """``p.insert rD, rs1, n-1, o``: replace bits [o, o+n) of word ``d`` by the low ``n`` bits of ``s``.

    n: width in bits (1..32); o: offset in bits (0..31); the other bits of ``d`` are kept. If o+n > 32
    only bits [o, 32) are written, with the low 32-o bits of ``s`` (hardware clamp). Returns uint32.
    """
    nn, oo = _width(n), _offset(o)
    m = jnp.left_shift(_low_mask(nn), oo)  # bits pushed past 31 fall off: the clamp
    return (_word(d) & ~m) | (jnp.left_shift(_word(s), oo) & m)


# --- pack (pv.packlo.b + pv.packhi.b) ---------------------------------------------------------------------------

def pack4(a, b, c, d) -> jax.Array:
    """``__builtin_pulp_pack4`` (``pv.packlo.b`` + ``pv.packhi.b``): the low byte of ``a`` in lane 0 (bits 0..7),
    ``b`` in lane 1, ``c`` in lane 2, ``d`` in lane 3 (bits 24..31). Returns uint32."""
    return _join_lanes([_word(a), _word(b), _word(c), _word(d)])


# --- clips (p.clipur, p.clipr) -----------------------------------------------------------------------------------

def clipu_r(x, bound) -> jax.Array:
    """``p.clipur``: with ``B = bound & 0x7FFFFFFF``: x <= 0 -> 0, else x >= B -> B, else x (signed compare).

    Equals ``clipU(x, k)`` for bound = 2^k - 1. Returns int32.
    """
    v, b = _sword(x), _sword(_word(bound) & 0x7FFFFFFF)
    return jnp.where(v <= 0, jnp.int32(0), jnp.where(v >= b, b, v))


def clip_r(x, bound) -> jax.Array:
    """``p.clipr``: with ``B = bound & 0x7FFFFFFF``: clamp x to [-(B+1), B] (signed). Returns int32.

    Equals ``clipS(x, k+1)`` for bound = 2^k - 1.
    """
    v, b = _sword(x), _sword(_word(bound) & 0x7FFFFFFF)
    lo = ~b  # = -(B + 1), never overflows
    return jnp.where(v <= lo, lo, jnp.where(v >= b, b, v))


# --- SIMD 8-bit lanes (pv.max.b, pv.maxu.b, pv.min.b, pv.minu.b, pv.avgu.b) ------------------------------------

def _simd4(a, b, op) -> jax.Array:
    wa, wb = _word(a), _word(b)
    return _join_lanes([op(_lane_u(wa, i), _lane_u(wb, i)) for i in range(4)])


def _flip(v: jax.Array) -> jax.Array:
    """Unsigned byte with its sign bit flipped: unsigned order of the result = signed order of ``v``."""
    return v ^ 0x80


def max4(a, b) -> jax.Array:
    """``pv.max.b``: lane-wise maximum of four signed 8-bit lanes. Returns uint32 word."""
    return _simd4(a, b, lambda x, y: jnp.where(_flip(x) >= _flip(y), x, y))


def maxu4(a, b) -> jax.Array:
    """``pv.maxu.b``: lane-wise maximum of four unsigned 8-bit lanes. Returns uint32 word."""
    return _simd4(a, b, jnp.maximum)


def min4(a, b) -> jax.Array:
    """``pv.min.b``: lane-wise minimum of four signed 8-bit lanes. Returns uint32 word."""
    return _simd4(a, b, lambda x, y: jnp.where(_flip(x) <= _flip(y), x, y))


def minu4(a, b) -> jax.Array:
    """``pv.minu.b``: lane-wise minimum of four unsigned 8-bit lanes. Returns uint32 word."""
    return _simd4(a, b, jnp.minimum)


def avgu4(a, b) -> jax.Array:
    """``pv.avgu.b``: lane-wise ``((a_i + b_i) mod 2^8) >> 1`` (unsigned). Returns uint32 word.

    The lane sum is taken modulo 2^8 *before* the shift: the carry out of the lane is lost, so the
    result is ⌊(a_i+b_i)/2⌋ only when a_i + b_i < 256 (avgu4(0xFF, 0xFF) = 0x7F). This is the CV32E40P
    manual's definition and GVSoC's model. No PULP-NN kernel calls it.
    """
    return _simd4(a, b, lambda x, y: ((x + y) & 0xFF) >> 1)


# --- scalar min/max (p.max, p.min, p.maxu, p.minu) ---------------------------------------------------------------

def maxsi(a, b) -> jax.Array:
    """``p.max``: signed 32-bit maximum. Returns int32."""
    return jnp.maximum(_sword(a), _sword(b))


def minsi(a, b) -> jax.Array:
    """``p.min``: signed 32-bit minimum. Returns int32."""
    return jnp.minimum(_sword(a), _sword(b))


def maxusi(a, b) -> jax.Array:
    """``p.maxu``: unsigned 32-bit maximum. Returns uint32."""
    return jnp.maximum(_word(a), _word(b))


def minusi(a, b) -> jax.Array:
    """``p.minu``: unsigned 32-bit minimum. Returns uint32."""
    return jnp.minimum(_word(a), _word(b))


# --- bit counting (p.fl1) -------------------------------------------------------------------------------------

def fl1(x) -> jax.Array:
    """``p.fl1``: bit index (0..31) of the most significant set bit of word ``x`` = ⌊log2 x⌋ for x > 0.

    ``fl1(0) = 32``, as the CV32E40P manual (``cv.fl1``: "If rs1 is 0, rD will be 32") and GVSoC's RI5CY
    model define it. Returns int32.
    """
    w = _word(x)
    return jnp.where(w == 0, jnp.int32(32), jnp.int32(31) - jax.lax.clz(w).astype(_I32))


# --- instruction table ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Instruction:
    """One C builtin and what it costs.

    name: builtin name without prefix (key of ``INSTRUCTIONS``); mnemonic: RI5CY assembly mnemonic(s);
    fn: the jax.numpy semantics in this module; cost_class: instruction class of ``jaxpulp.cost.types.Cost``;
    count: machine instructions the builtin compiles to; macs: multiply-accumulates per execution.
    """

    name: str
    mnemonic: str
    fn: Callable[..., jax.Array]
    cost_class: str
    count: int = 1
    macs: int = 0

    @property
    def builtin(self) -> str:
        """The C builtin, e.g. ``__builtin_pulp_sdotusp4``."""
        return f"__builtin_pulp_{self.name}"


_TABLE = (
    Instruction("sdotusp4", "pv.sdotusp.b", sdotusp4, "sdotp", macs=4),
    Instruction("sdotsp4", "pv.sdotsp.b", sdotsp4, "sdotp", macs=4),
    Instruction("sdotup4", "pv.sdotup.b", sdotup4, "sdotp", macs=4),
    Instruction("bextract", "p.extract", bextract, "extract"),
    Instruction("bextractu", "p.extractu", bextractu, "extract"),
    Instruction("binsert", "p.insert", binsert, "insert"),
    Instruction("pack4", "pv.packlo.b+pv.packhi.b", pack4, "pack", count=2),
    Instruction("clipu_r", "p.clipur", clipu_r, "clipu"),
    Instruction("clip_r", "p.clipr", clip_r, "clip"),
    Instruction("max4", "pv.max.b", max4, "simd"),
    Instruction("maxu4", "pv.maxu.b", maxu4, "simd"),
    Instruction("min4", "pv.min.b", min4, "simd"),
    Instruction("minu4", "pv.minu.b", minu4, "simd"),
    Instruction("avgu4", "pv.avgu.b", avgu4, "simd"),
    Instruction("maxsi", "p.max", maxsi, "minmax"),
    Instruction("minsi", "p.min", minsi, "minmax"),
    Instruction("maxusi", "p.maxu", maxusi, "minmax"),
    Instruction("minusi", "p.minu", minusi, "minmax"),
    Instruction("fl1", "p.fl1", fl1, "bitcount"),
)

INSTRUCTIONS: dict[str, Instruction] = {ins.name: ins for ins in _TABLE}

__all__ = [
    "Instruction", "INSTRUCTIONS",
    "sdotusp4", "sdotsp4", "sdotup4",
    "bextract", "bextractu", "binsert", "insert_field", "pack4",
    "clipu_r", "clip_r",
    "max4", "maxu4", "min4", "minu4", "avgu4",
    "maxsi", "minsi", "maxusi", "minusi",
    "fl1",
]
