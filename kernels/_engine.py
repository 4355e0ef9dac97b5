"""Shared machinery of the kernel families' fast paths: exact integer dot products, packed output images,
and shape buckets that let one compiled function serve many configurations.

Private: the public surface is each family module and ``jaxpulp.kernels.catalog``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.errors import JaxpulpError, UnsupportedConfig

# A geometry field: an int32 scalar, numpy on the host (np.int32, built by ``geometry``) and a traced jax.Array
# inside jit / vmap.
Scalar32 = jax.Array | np.int32
# An integer parameter as the public API takes it: a jax or numpy array or scalar, or a Python int.
IntArrayLike = jax.Array | np.ndarray | np.integer | int

# Largest |a*b| of two operands in [-256, 255] x [-128, 127] (unsigned 8-bit x signed 8-bit): 255*128.
_MAX_PRODUCT = 255 * 128
# A float32 sum of integers stays exact while every partial sum is below 2**24: 512 * 32640 < 2**24.
EXACT_F32_CHUNK = (1 << 24) // _MAX_PRODUCT // 8 * 8  # 512 elements


def exact_int_matmul(a, b):
    """``a @ b`` for int32 operands holding 8-bit values (|a| <= 255, |b| <= 128): int32, wrap-around.

    The reduction is cut into chunks of ``EXACT_F32_CHUNK`` (512) elements; each chunk is a float32 GEMM whose
    partial sums are integers below 2**24 and therefore exact, and chunks are added in int32 (which wraps
    like the core's accumulator). ``precision=HIGHEST`` keeps GPUs from rounding through TF32.
    a: (..., P, K), b: (K, N) -> (..., P, N).
    """
    k = a.shape[-1]
    n_chunks = -(-k // EXACT_F32_CHUNK)
    if n_chunks <= 1:
        out = jnp.matmul(a.astype(jnp.float32), b.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
        return out.astype(jnp.int32)
    kp = n_chunks * EXACT_F32_CHUNK
    a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, kp - k)])
    b = jnp.pad(b, [(0, kp - k), (0, 0)])
    a = a.reshape(a.shape[:-1] + (n_chunks, EXACT_F32_CHUNK)).astype(jnp.float32)
    b = b.reshape(n_chunks, EXACT_F32_CHUNK, -1).astype(jnp.float32)
    parts = jnp.einsum("...pkc,kcn->...pkn", a, b, precision=jax.lax.Precision.HIGHEST)
    return parts.astype(jnp.int32).sum(axis=-2, dtype=jnp.int32)


_FEW_COLUMNS = 64  # output columns up to which exact_int_matmul_bounded's chunks are one batched GEMM


def exact_int_matmul_bounded(a, b, max_product: int):
    """``exact_int_matmul`` with the reduction chunk sized by a static bound on |a*b| (``max_abs_product``): every
    float32 partial sum stays an exact integer (<= 2**24), so sub-byte operands need one GEMM where 8-bit ones
    need one per 512 elements. The chunks are slices of the operands, one plain GEMM each (a batched einsum over
    chunks makes XLA copy and transpose the operands first), added in int32 (wrap-around like the accumulator).
    a: (..., P, K), b: (K, N) int32 -> (..., P, N) int32."""
    k = a.shape[-1]
    limit = max(1, (1 << 24) // max(1, max_product))
    n_chunks = max(1, -(-k // limit))
    chunk = -(-k // n_chunks)  # balanced chunks (<= limit)
    if n_chunks > 1 and b.shape[-1] <= _FEW_COLUMNS:
        # few output columns (a classifier): one batched GEMM over zero-padded chunks. XLA compiles each sliced
        # GEMM on its own (DroNet's 6272 x 2 layer: 13 slices, 0.75 s of compile vs 0.10 s; run time equal)
        kp = n_chunks * chunk
        ac = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, kp - k)]).reshape(a.shape[:-1] + (n_chunks, chunk))
        bc = jnp.pad(b, [(0, kp - k), (0, 0)]).reshape(n_chunks, chunk, -1)
        parts = jnp.einsum("...pc,pcn->...pn", ac.astype(jnp.float32), bc.astype(jnp.float32),
                           precision=jax.lax.Precision.HIGHEST)
        return parts.astype(jnp.int32).sum(axis=-2, dtype=jnp.int32)
    af, bf = a.astype(jnp.float32), b.astype(jnp.float32)
    acc = None
    for c0 in range(0, k, chunk):
        part = jnp.matmul(af[..., c0:c0 + chunk], bf[c0:c0 + chunk], precision=jax.lax.Precision.HIGHEST)
        part = part.astype(jnp.int32)
        acc = part if acc is None else acc + part
    return acc


def int8_offset(x_type):
    """The offset that moves every value of a <= 8-bit type into int8: 128 for u8 ([0, 255] - 128 = [-128, 127]),
    0 for narrower unsigned types (at most 127) and signed ones. Static int for static types, traced int32 for
    traced ones."""
    bits, signed = x_type
    if isinstance(signed, (bool, int, np.integer)) and isinstance(bits, (int, np.integer)):
        if bits > 8:
            raise JaxpulpError(f"x_type={x_type}: expected an activation type of at most 8 bits")
        return 0 if signed or bits < 8 else 128
    unsigned8 = (jnp.asarray(signed, jnp.int32) == 0) & (jnp.asarray(bits, jnp.int32) >= 8)
    return jnp.where(unsigned8, 128, 0).astype(jnp.int32)


def int8_weights(w, shape: tuple, axes: str, q=None) -> np.ndarray:
    """Host weights ``w`` checked for a kernel's prepared int8 forms: integers of exactly ``shape`` (``axes`` names
    them, e.g. "(M, N)") within the configured weight type ``q`` (``cfg.w_type``; None: int8, which holds every
    PULP-NN weight type); returned as int64."""
    w = np.asarray(w)
    if w.shape != tuple(shape) or w.dtype.kind not in "iu":
        raise JaxpulpError(f"w: shape {w.shape} dtype {w.dtype}, expected ints of shape {tuple(shape)} {axes}")
    w = w.astype(np.int64)
    lo, hi = (-128, 127) if q is None else (q.lo, q.hi)
    if w.size and (w.min() < lo or w.max() > hi):
        what = "int8" if q is None or q.bits == 8 else f"{q} (cfg.w_type)"
        raise JaxpulpError(f"w: values span [{w.min()}, {w.max()}], expected {what} weights [{lo}, {hi}]")
    return w


# int8_matmul zero-pads a short contracted axis to a multiple of GEMM_K_MULTIPLE (zero columns on both sides: exact
# zeros): YNNPACK's int8 GEMM runs such depths faster (2-core Xeon with AMX, rows x K -> N, ms: 960 x 13 -> 64 0.063
# vs 0.041 at K = 16, 15,360 x 13 -> 64 0.30 vs 0.26, 15,360 x 30 -> 32 0.23 vs 0.15, 15,360 x 102 -> 64 0.38 vs
# 0.34); whole 1x1 layers (``conv.accumulate``, requantised, batch 16, ms): 32x32x13 -> 64 0.72 vs 0.61, 16x16x30 ->
# 32 0.23 vs 0.20, 32x32x6 -> 24 0.35 vs 0.31, 8x8x102 -> 64 0.115 vs 0.120 (a tie). A long K is left as is (16 x
# 585 -> 4: 0.039 vs 0.040 at 588, no gain measured). No bundled network has such a layer.
GEMM_K_MULTIPLE = 4
GEMM_PAD_MAX_K = 256


def gemm_depth(k: int) -> int:
    """``int8_matmul``'s contracted length for K = ``k``: rounded up to a multiple of ``GEMM_K_MULTIPLE`` up to
    ``GEMM_PAD_MAX_K``, else ``k``."""
    return round_up(k, multiple=GEMM_K_MULTIPLE) if k <= GEMM_PAD_MAX_K else k


def int8_matmul(x, w, x_off, total=None):
    """int32 (rows, M) = x (rows, K) @ w (M, K).T, wrapped to int32 like the core, as ``(x - x_off) @ w.T`` in
    int8 x int8 with int32 accumulation plus ``x_off * sum_k w[m, k]`` (``total``: those sums, int32 (M,), when
    prepared; else computed from w).

    Exact (== the int64 product wrapped to int32) whenever every ``x - x_off`` and every ``w`` is an int8 value:
    int8 products are exact, int32 addition is exact modulo 2**32 in whatever order the GEMM sums, and
    ``x @ w.T = (x - x_off) @ w.T + x_off * rowsum(w)`` modulo 2**32. ``x_off``: int or traced int32 scalar (128
    for u8 values, 0 for narrower unsigned and signed ones). The weights' contracted axis is their last one:
    XLA:CPU hands such int8 dots to YNNPACK's VNNI kernels; a short K is zero-padded (``gemm_depth``)."""
    xs = (jnp.asarray(x, jnp.int32) - x_off).astype(jnp.int8)
    w8 = jnp.asarray(w).astype(jnp.int8)
    extra = gemm_depth(xs.shape[-1]) - xs.shape[-1]
    if extra:
        xs = jnp.pad(xs, ((0, 0), (0, extra)))
        w8 = jnp.pad(w8, ((0, 0), (0, extra)))
    acc = jax.lax.dot_general(xs, w8, (((1,), (1,)), ((), ())), preferred_element_type=jnp.int32)
    if isinstance(x_off, int) and x_off == 0:
        return acc
    if total is None:
        total = jnp.sum(jnp.asarray(w, jnp.int32), axis=1, dtype=jnp.int32)
    return acc + x_off * total


def materialise(v):
    """``v`` itself, computed into its own buffer: for int32, the maximum over ``[v, INT32_MIN]`` (a reduction,
    which XLA:CPU does not fuse into the element loops that read ``v``; a chain of elementwise producers it does
    fuse, and may then recompute for every reader, or for every element of a broadcasting reader). The same bits
    (max with the smallest int32 is the identity). Other dtypes pass through."""
    v = jnp.asarray(v)
    if v.dtype != jnp.int32:
        return v
    return jnp.max(jnp.stack([v, jnp.full_like(v, jnp.iinfo(jnp.int32).min)]), axis=0)


def weight_bound_groups(w, max_x: int, limit: int = 1 << 24) -> tuple[int, ...] | None:
    """Input-channel groups of a convolution proven exact in float32 from its concrete weights.

    ``w``: concrete int weights (Co, Kh, Kw, Ci) (numpy); ``max_x``: the largest input magnitude |x| of the input
    type (e.g. 255 for u8, 128 for i8). Every float32 partial sum of one group's convolution is a sum of a subset
    of the products x*w of that group, so its magnitude is at most ``max_x * sum |w|`` over the group's taps; a
    group is exact when that bound is <= 2**24 (every integer of magnitude <= 2**24 is a float32) for every
    output channel. Greedy: contiguous groups, each as long as the bound allows. Returns the start channel of
    each group (static, hashable), or None when a single channel alone breaks the bound (the caller keeps its
    worst-case chunking). The bias is added afterwards in int32 and is not part of the float32 sums."""
    w = np.abs(np.asarray(w, np.int64))
    per_channel = w.reshape(w.shape[0], -1, w.shape[-1]).sum(axis=1) * int(max_x)  # (Co, Ci)
    starts, running = [0], np.zeros(w.shape[0], np.int64)
    for c in range(w.shape[-1]):
        col = per_channel[:, c]
        if int(col.max(initial=0)) > limit:
            return None
        if int((running + col).max(initial=0)) > limit:
            starts.append(c)
            running = col.copy()
        else:
            running = running + col
    return tuple(starts)


def host_int32(v):
    """An integer argument as int32 without a device dispatch when it is a host value (numpy / Python):
    jax arrays and tracers go through ``jnp`` (as ``jnp.int32`` / ``astype`` would), host values through numpy
    (Python ints out of the int32 range raise OverflowError as ``jnp.int32`` does; numpy integers wrap as
    ``astype`` does)."""
    if isinstance(v, jax.Array):
        return v.astype(jnp.int32)
    if isinstance(v, int):
        return np.int32(v)
    return np.asarray(v).astype(np.int32)


INT32_RANGE = (-(1 << 31), (1 << 31) - 1)


def check_int32_values(v, name: str) -> None:
    """Raise when a host (numpy / Python) integer argument holds a value outside int32, which converting it to
    the kernels' int32 would wrap silently (kappa, lambda and bias are int32 arrays in the 32-bit tree; the 64-bit
    tree's int64 kappa / lambda beyond int32 are not emulated). Jax arrays and tracers are int32 already (or the
    caller's responsibility under x64)."""
    if isinstance(v, (jax.Array, jax.core.Tracer)) or v is None:
        return
    a = np.asarray(v)
    if a.dtype == object:  # Python ints beyond int64 (or other objects): numpy cannot hold them as integers
        bad = next((t for t in a.reshape(-1) if not isinstance(t, (int, np.integer)) or not
                    INT32_RANGE[0] <= int(t) <= INT32_RANGE[1]), None)
        raise JaxpulpError(f"params.{name}: value {bad!r}: expected int32 values in [{INT32_RANGE[0]}, "
                           f"{INT32_RANGE[1]}]")
    if a.size and a.dtype.kind in "iu" and (a.dtype.itemsize > 4 or a.dtype == np.uint32):  # only these can leave
        lo, hi = int(a.min()), int(a.max())
        if lo < INT32_RANGE[0] or hi > INT32_RANGE[1]:
            raise JaxpulpError(f"params.{name}: value {lo if lo < INT32_RANGE[0] else hi} outside int32 "
                               f"[{INT32_RANGE[0]}, {INT32_RANGE[1]}]; the kernels read int32 {name} (64-bit-tree "
                               "values beyond int32 are not emulated)")


def check_int32_params(params) -> None:
    """``check_int32_values`` for a Params' kappa, lam and bias (the numpy twins read them as int64)."""
    for name in ("kappa", "lam", "bias"):
        check_int32_values(getattr(params, name, None), name)


def scatter_pack(values, index, valid, bits, n_words: int):
    """Pack ``values`` (int32, already in range) as a ``bits``-bit stream into ``n_words`` uint32 words.

    ``index`` = each value's element position in the stream; ``valid`` = which values are stored. Fields of
    distinct elements never overlap, so the words are sums of shifted fields. ``bits`` may be traced.
    """
    bits = jnp.asarray(bits, jnp.int32)
    bitpos = index.astype(jnp.int32) * bits
    word = jnp.where(valid, bitpos >> 5, n_words)  # out-of-range index: dropped
    mask = (jnp.left_shift(jnp.uint32(1), bits.astype(jnp.uint32)) - 1).astype(jnp.uint32)
    field = jnp.left_shift(values.astype(jnp.uint32) & mask, (bitpos & 31).astype(jnp.uint32))
    out = jnp.zeros((n_words,), jnp.uint32)
    return out.at[word.reshape(-1)].add(field.reshape(-1), mode="drop")


def words_for(count_elems: int, bits: int) -> int:
    """uint32 words holding ``count_elems`` elements of ``bits`` bits."""
    return -(-(count_elems * bits) // 32)


def round_up(n: int, choices=None, multiple: int | None = None) -> int:
    """Bucket size for ``n``: the next power of two (at least 4), the next multiple, or the first choice >= n."""
    if choices is not None:
        for c in choices:
            if c >= n:
                return c
        return n
    if multiple is not None:
        return -(-n // multiple) * multiple
    p = 4
    while p < n:
        p *= 2
    return p


def pad_to(a, n: int):
    """Zero-pad a 1-D array to length ``n`` (it must not be longer)."""
    a = jnp.asarray(a)
    return jnp.pad(a, (0, n - a.shape[0]))


def unpack_static(words, bits: int, signed: bool, count: int):
    """jnp: the first ``count`` ``bits``-bit elements of uint32 ``words`` (last axis), sign- or zero-extended
    as ``p.extract`` / ``p.extractu`` return them. ``bits`` is static: pure shifts and reshapes, no gather."""
    per = 32 // bits
    shifts = jnp.arange(per, dtype=jnp.uint32) * bits
    v = (words[..., :, None] >> shifts) & jnp.uint32((1 << bits) - 1)
    v = v.reshape(words.shape[:-1] + (-1,))[..., :count].astype(jnp.int32)
    if signed:
        v = jnp.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v


def pack_static(values, bits: int):
    """jnp: pack int32 ``values`` (last axis = the element stream, already in range) into uint32 words."""
    per = 32 // bits
    n = values.shape[-1]
    pad = (-n) % per
    v = jnp.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, pad)]).astype(jnp.uint32) & jnp.uint32((1 << bits) - 1)
    v = v.reshape(values.shape[:-1] + (-1, per))
    shifts = jnp.arange(per, dtype=jnp.uint32) * bits
    return jnp.sum(v << shifts, axis=-1, dtype=jnp.uint32)


def pack_static_grouped(values, bits: int, group: int = 32):
    """``pack_static`` with the same result, built as ``group // (32 // bits)`` words per group of ``group``
    elements from static slices instead of one reduction over the lanes of each word. XLA fuses a reduction
    with its producer into one scalar loop; the sliced form makes it materialise the (vectorised) producer
    first, which is much faster when the producer broadcasts per-channel vectors (requantisation)."""
    per = 32 // bits
    group = max(per, group // per * per)
    n = values.shape[-1]
    pad = (-n) % group
    v = jnp.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, pad)]).astype(jnp.uint32) & jnp.uint32((1 << bits) - 1)
    v = v.reshape(values.shape[:-1] + (-1, group))
    words = []
    for j in range(group // per):
        w = v[..., j * per]
        for k in range(1, per):
            w = w | (v[..., j * per + k] << jnp.uint32(k * bits))
        words.append(w)
    out = jnp.stack(words, axis=-1).reshape(values.shape[:-1] + (-1,))
    return out[..., :-(-n // per)]


def flat(v):
    """``v`` (batch, ...) as (batch, elements)."""
    return v.reshape(v.shape[0], -1)


def pack_lanes(lanes, bits: int):
    """The packed image (batch, words) uint32 of elements ``lanes`` (batch, ...) int32 at ``bits`` (static):
    ``pack_static``, or the values' own bits for 32-bit elements (int32 outputs)."""
    lanes = flat(lanes)
    if bits == 32:
        return jax.lax.bitcast_convert_type(lanes.astype(jnp.int32), jnp.uint32)
    return pack_static(lanes, bits)


def unpack_lanes(words, bits: int, signed: bool, count: int):
    """The first ``count`` elements (int32) of packed ``words`` at ``bits`` (static): ``unpack_static``, or the
    words' own bits for 32-bit elements."""
    if bits == 32:
        return jax.lax.bitcast_convert_type(words[..., :count], jnp.int32)
    return unpack_static(words, bits, signed, count)


def max_abs_product(a_bits: int, a_signed: bool, b_bits: int, b_signed: bool) -> int:
    """Largest |a*b| for operands of the two types."""
    amax = (1 << (a_bits - 1)) if a_signed else (1 << a_bits) - 1
    bmax = (1 << (b_bits - 1)) if b_signed else (1 << b_bits) - 1
    return amax * bmax


def value_ints(a, name: str, q):
    """A value-path operand: integer dtype, and (where its values are known, i.e. not traced) every value in
    ``q``'s range, like the packed path's ``packing.pack``. NaN, fractions and out-of-range values are refused."""
    if not isinstance(a, jax.core.Tracer):
        a = np.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.integer):
        raise JaxpulpError(f"{name}: dtype {a.dtype}, expected an integer array of {q} values")
    if not isinstance(a, jax.core.Tracer) and a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < q.lo or hi > q.hi:
            raise JaxpulpError(f"{name}: value {lo if lo < q.lo else hi} out of range for {q}: expected "
                               f"[{q.lo}, {q.hi}]")
    return a


def int_scalar(v, name: str, lo: int, hi: int, what: str):
    """An integer scalar argument as int32 (range-checked where its value is known; host values stay numpy, so
    validating them dispatches nothing)."""
    a = v if isinstance(v, jax.Array) else np.asarray(v)
    if a.shape != () or not jnp.issubdtype(a.dtype, jnp.integer):
        raise JaxpulpError(f"params.{name}={v!r}: expected an integer scalar ({what})")
    try:
        iv = int(a)
    except jax.errors.ConcretizationTypeError:  # traced: the caller's responsibility
        iv = None
    if iv is not None and not lo <= iv <= hi:
        raise JaxpulpError(f"params.{name}={iv}: expected {lo} <= value <= {hi} ({what})")
    return a.astype(jnp.int32) if isinstance(a, jax.Array) else a.astype(np.int32)


# The requantisation scalars of the conv, pointwise, depthwise and linear kernels (semantics.md §4.1):
# ``out_mult`` a uint16 argument the helper reads as int16 (so the int16 values -32768..-1 are accepted as the
# same bits as 32768..65535, like the legacy add's multipliers), ``out_shift`` a uint16 argument (bits; the
# hardware shifts by it mod 32, mod 64 in the 64-bit BN tree).
OUT_MULT_RANGE = (-(1 << 15), 0xFFFF, "uint16 out_mult argument, used as int16")
OUT_SHIFT_RANGE = (0, 0xFFFF, "uint16 out_shift argument, bits")


def requant_scalars(params) -> tuple[IntArrayLike, IntArrayLike]:
    """(out_mult, out_shift) of a Params, validated by ``int_scalar`` against the kernels' argument ranges."""
    return (int_scalar(params.out_mult, "out_mult", *OUT_MULT_RANGE),
            int_scalar(params.out_shift, "out_shift", *OUT_SHIFT_RANGE))


def check_config(cfg, cls, family: str):
    """Raise unless ``cfg`` is an instance of the family's configuration class ``cls``."""
    if not isinstance(cfg, cls):
        raise JaxpulpError(f"cfg={cfg!r}: a {type(cfg).__name__}, expected a {cls.__name__} (the {family} kernels' "
                           "configuration)")


def type_pair(t, name: str):
    """A ``values`` entry's element type given as data: None, or a (bits, signed) pair (ints or traced int32
    scalars; a QType is not this pair). Where known, bits in {2, 4, 8} and signed 0 or 1 (or a bool)."""
    if t is None:
        return None
    if not isinstance(t, (tuple, list)) or len(t) != 2:
        raise JaxpulpError(f"{name}={t!r}: expected None or a (bits, signed) pair such as (8, 0) or (4, 1)")
    for v, ok, what in ((t[0], (2, 4, 8), "bits in {2, 4, 8}"), (t[1], (0, 1), "signed 0 or 1")):
        a = v if isinstance(v, jax.Array) else np.asarray(v)
        if a.shape != () or not (jnp.issubdtype(a.dtype, jnp.integer) or a.dtype == bool):
            raise JaxpulpError(f"{name}={t!r}: expected a (bits, signed) pair of int scalars ({what})")
        if not isinstance(a, jax.core.Tracer) and int(a) not in ok:
            raise JaxpulpError(f"{name}={t!r}: expected a (bits, signed) pair with {what}")
    return t


def values_ints(a, name: str, q):
    """A ``values`` operand: integers (traced or not); where known and ``q`` (a QType) is given, in its range."""
    if q is None:
        a = a if isinstance(a, jax.Array) else np.asarray(a)
        if not jnp.issubdtype(a.dtype, jnp.integer):
            raise JaxpulpError(f"{name}: dtype {a.dtype}, expected an integer array")
        return a
    return value_ints(a, name, q)


def pair_qtype(t, default):
    """The QType of a ``type_pair`` where it is known: ``default`` for None, None where traced."""
    if t is None:
        return default
    if any(isinstance(v, jax.core.Tracer) for v in t):
        return None
    from jaxpulp.qtypes import QType

    return QType(int(t[0]), bool(int(t[1])))


# ------------------------------------------------------------------------------------ argument checks
# Shared by the family modules' ``run`` / ``run_values`` (the messages name the argument, value and expectation).

MEMORY_IMAGE = "a uint32 memory image (see jaxpulp.packing)"


def packed_words(a, n_words: int, name: str, *, batch: bool = True, min_batch: int = 0, what: str = MEMORY_IMAGE):
    """A packed operand: uint32 words, 1-D or (``batch``) 2-D with a leading batch axis of at least ``min_batch``,
    exactly ``n_words`` words on the last axis (a longer buffer is refused, not cut: it is another tensor's image
    or a wrong configuration). Host arrays stay numpy (validating them dispatches nothing); jax arrays and
    tracers pass through."""
    a = a if isinstance(a, jax.Array) else np.asarray(a)
    if a.dtype != np.uint32:
        raise JaxpulpError(f"{name}: dtype {a.dtype}, expected {what}")
    if a.ndim not in ((1, 2) if batch else (1,)) or a.shape[-1] != n_words or (a.ndim == 2 and len(a) < min_batch):
        lead = (f"batch >= {min_batch}, " if min_batch else "[batch,] ") if batch else ""
        want = f"({lead}{n_words})" if lead else f"({n_words},)"
        raise JaxpulpError(f"{name}: shape {a.shape}, expected {want} uint32 words (exactly {n_words} words of "
                           f"{what})")
    return a


def lanes(x, n: int, name: str, q, what: str):
    """A lane operand of ``run_lanes``: (batch, ...) integers whose per-image elements number exactly ``n`` (any
    trailing shape, e.g. (batch, n) or a producer's (batch, H, W, C)); where the values are known (not traced)
    every one in ``q``'s range, as the packed image would hold them. Returned as int32 (host values as numpy:
    validating them dispatches nothing). Shapes and dtypes are static, so they are checked under jit too."""
    a = x if isinstance(x, jax.Array) else np.asarray(x)
    if a.ndim < 2 or int(np.prod(a.shape[1:])) != n:
        raise JaxpulpError(f"{name}: shape {a.shape}, expected (batch, {n}) lanes ({what}; any trailing shape of "
                           f"{n} elements per image)")
    value_ints(a, name, q)
    return a if a.dtype == np.int32 else a.astype(jnp.int32 if isinstance(a, jax.Array) else np.int32)


def check_whole_byte_pixels(cfg, type_names, why: str) -> None:
    """Raise ``UnsupportedConfig("channel-multiple")`` unless a pixel (``cfg.C`` elements) of every tensor type
    ``cfg.<name>`` is whole bytes; ``why``: what the kernel does otherwise (library_defects.md 16)."""
    for name in type_names:
        t = getattr(cfg, name)
        if (cfg.C * t.bits) % 8:
            raise UnsupportedConfig(
                "channel-multiple",
                f"C={cfg.C} with {name}={t}: a pixel must be whole bytes (C a multiple of {8 // t.bits}); the "
                f"kernel {why} (library_defects.md 16)")


def as_params(params, cls):
    """``params`` as the NamedTuple ``cls`` (given as one, as a dict of its fields or as a sequence); anything else,
    an unknown or missing field or a sequence of the wrong length raises naming the expected fields."""
    if isinstance(params, cls):
        return params
    fields = cls._fields
    required = [f for f in fields if f not in cls._field_defaults]
    expect = f"expected a {cls.__name__} or a dict / sequence of its fields ({', '.join(fields)}"
    expect += f"; required: {', '.join(required)})" if required else ")"
    if isinstance(params, dict):
        unknown = [k for k in params if k not in fields]
        missing = [f for f in required if f not in params]
        if unknown or missing:
            what = f"unknown field(s) {unknown}" if unknown else f"missing field(s) {missing}"
            raise JaxpulpError(f"params: dict with {what}: {expect}")
        return cls(**params)
    if isinstance(params, (tuple, list)):
        if not len(required) <= len(params) <= len(fields):
            raise JaxpulpError(f"params: a {type(params).__name__} of length {len(params)}, expected "
                               f"{len(required)} to {len(fields)} values: {expect}")
        return cls(*params)
    raise JaxpulpError(f"params: a {type(params).__name__}, {expect}")


def check_bias_flag(cfg_bias, bias, n: int, what: str = "an int32 array") -> None:
    """The bias argument agrees with the configuration's bias flag (the kernels read a bias pointer iff it is
    set)."""
    if cfg_bias and bias is None:
        raise JaxpulpError(f"params.bias=None but cfg.bias=True: expected {what} of shape ({n},), or cfg.bias=False")
    if not cfg_bias and bias is not None:
        raise JaxpulpError("params.bias is given but cfg.bias=False: set cfg.bias=True to pass a bias pointer")


def costed(out, cfg, cluster, return_cost: bool):
    """``out``, or ``Costed(out, cost)`` when ``return_cost`` (per-core counts and cycles of one call)."""
    if not return_cost:
        return out
    from jaxpulp.cost import with_cost

    return with_cost(out, cfg, cluster)
