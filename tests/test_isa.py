"""Tests of jaxpulp.isa.xpulpv2 against plain Python / numpy integer arithmetic written independently here.

Small operand spaces are covered exhaustively (all 8-bit lane pairs, every bit-field width/offset), each in
one vectorised, jitted call. Reference values are numpy int64 computations, never the module under test.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp.cost.types import INSTRUCTION_CLASSES
from jaxpulp.errors import JaxpulpError
from jaxpulp.isa import xpulpv2 as isa

M32 = 0xFFFFFFFF
RNG_SEED = 20240717

EDGE_WORDS = [
    0x00000000, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0x00000001, 0xFFFFFFFE, 0x55555555, 0xAAAAAAAA,
    0x0F0F0F0F, 0xF0F0F0F0, 0x01234567, 0x89ABCDEF, 0xDEADBEEF, 0x00FF00FF, 0xFF00FF00, 0x80808080,
    0x7F7F7F7F, 0x00008000, 0x40000000, 0xC0000000,
]


# --- helpers --------------------------------------------------------------------------------------------------

def _hex(v) -> str:
    return f"0x{int(v) & M32:08x}"


def assert_words_equal(got, want, name: str, **inputs) -> None:
    """Compare as 32-bit patterns; on mismatch print the first differing index, values and inputs in hex."""
    g = np.asarray(got).astype(np.int64) & M32
    w = np.broadcast_to(np.asarray(want, dtype=np.int64) & M32, g.shape)
    bad = np.flatnonzero(g.ravel() != w.ravel())
    if bad.size:
        k = int(bad[0])
        idx = np.unravel_index(k, g.shape) if g.ndim else ()
        shown = []
        for key, arr in inputs.items():
            a = np.broadcast_to(np.asarray(arr), g.shape)
            shown.append(f"{key}={_hex(a[idx])}")
        pytest.fail(
            f"{name}: {bad.size} of {g.size} differ; first at index {k}: got {_hex(g.ravel()[k])}, "
            f"want {_hex(w.ravel()[k])} ({', '.join(shown)})"
        )


def assert_dtype(x, dtype) -> None:
    assert jnp.asarray(x).dtype == jnp.dtype(dtype), f"dtype {jnp.asarray(x).dtype}, expected {dtype}"


def s32(v):
    """int64 array -> the int32 value of its low 32 bits (as int64)."""
    v = np.asarray(v, dtype=np.int64) & M32
    return np.where(v >= 1 << 31, v - (1 << 32), v)


def sx8(v):
    v = np.asarray(v, dtype=np.int64) & 0xFF
    return np.where(v >= 128, v - 256, v)


def all_pairs():
    """(a, b) over all 256 x 256 byte pairs, int64."""
    k = np.arange(65536, dtype=np.int64)
    return k >> 8, k & 0xFF


def rolled_lane_words(a, b, shifts=(0, 12345, 33333, 50001)):
    """Words whose lane i carries pair number (k + shift_i): every lane position sees every pair and the
    four lanes of a word hold different pairs. Returns (word_a, word_b, lanes_a, lanes_b) as int64."""
    la = np.stack([np.roll(a, -s) for s in shifts])  # (4, N)
    lb = np.stack([np.roll(b, -s) for s in shifts])
    wa = sum(la[i] << (8 * i) for i in range(4))
    wb = sum(lb[i] << (8 * i) for i in range(4))
    return wa, wb, la, lb


def u32(v):
    return np.asarray(np.asarray(v, dtype=np.int64) & M32, dtype=np.uint32)


def random_words(n, seed=RNG_SEED):
    return np.random.default_rng(seed).integers(0, 1 << 32, size=n, dtype=np.int64)


# --- dot products -----------------------------------------------------------------------------------------------

SDOT_CASES = {
    # name: (a lane extension, b lane extension)
    "sdotusp4": (lambda v: v & 0xFF, sx8),
    "sdotsp4": (sx8, sx8),
    "sdotup4": (lambda v: v & 0xFF, lambda v: v & 0xFF),
}

ACC_EDGES = np.array(
    [-(1 << 31), -(1 << 31) + 1, -(1 << 31) + 70000, (1 << 31) - 1, (1 << 31) - 2, (1 << 31) - 70000,
     -1, 0, 1, 123456789, -987654321],
    dtype=np.int64,
)


@pytest.mark.parametrize("name", sorted(SDOT_CASES))
def test_sdotp_all_lane_pairs_every_lane_wrap(name):
    ext_a, ext_b = SDOT_CASES[name]
    fn = jax.jit(getattr(isa, name))
    a, b = all_pairs()
    wa, wb, la, lb = rolled_lane_words(a, b)
    acc = np.resize(ACC_EDGES, a.shape)  # accumulators near +-2^31 so that the sum wraps
    got = fn(u32(wa), u32(wb), s32(acc).astype(np.int32))
    assert_dtype(got, jnp.int32)
    want = s32(acc + sum(ext_a(la[i]) * ext_b(lb[i]) for i in range(4)))
    assert_words_equal(got, want, name, a=wa, b=wb, acc=acc)
    # the wrap really happened somewhere (the test would be weak otherwise)
    assert np.any(acc + sum(ext_a(la[i]) * ext_b(lb[i]) for i in range(4)) != want)


@pytest.mark.parametrize("name", sorted(SDOT_CASES))
def test_sdotp_single_lane_products(name):
    """One pair in one lane, zeros elsewhere: result = the lane product, for each lane position."""
    ext_a, ext_b = SDOT_CASES[name]
    fn = jax.jit(getattr(isa, name))
    a, b = all_pairs()
    for lane in range(4):
        wa, wb = a << (8 * lane), b << (8 * lane)
        got = fn(u32(wa), u32(wb), np.int32(0))
        assert_words_equal(got, ext_a(a) * ext_b(b), f"{name} lane {lane}", a=wa, b=wb)


def test_sdotp_accepts_int32_words_and_python_ints():
    # 0xFF lanes: zext 255, sext -1
    assert int(isa.sdotusp4(0xFFFFFFFF, 0xFFFFFFFF, 0)) == -4 * 255
    assert int(isa.sdotusp4(np.int32(-1), np.int32(-1), 0)) == -4 * 255
    assert int(isa.sdotsp4(-1, -1, 10)) == 14
    assert int(isa.sdotup4(0xFFFFFFFF, 0xFFFFFFFF, 0)) == 4 * 255 * 255
    assert int(isa.sdotsp4(0x80808080, 0x80808080, (1 << 31) - 1)) == s32((1 << 31) - 1 + 4 * 16384)
    assert int(isa.sdotusp4(0x01020304, 0x01020304, 0xFFFFFFFF)) == 1 + 4 + 9 + 16 - 1  # acc 0xFFFFFFFF = -1


# --- extract / extractu / insert ----------------------------------------------------------------------------------

def _field_grid(words):
    """Every (n, o) with 1 <= n <= 32, 0 <= o <= 31, o + n <= 32, crossed with every word (flat int64 arrays)."""
    no = np.array([(n, o) for n in range(1, 33) for o in range(32) if o + n <= 32], dtype=np.int64)
    assert len(no) == 528
    x = np.repeat(np.asarray(words, dtype=np.int64), len(no))
    n = np.tile(no[:, 0], len(words))
    o = np.tile(no[:, 1], len(words))
    return x, n, o


def _ref_extractu(x, n, o):
    return (x >> o) & ((1 << n) - 1)


def _ref_extract(x, n, o):
    f = _ref_extractu(x, n, o)
    return np.where((f >> (n - 1)) & 1, f - (1 << n), f)


def _ref_insert(d, s, n, o):
    m = (((1 << n) - 1) << o) & M32
    return ((d & ~m) | ((s << o) & m)) & M32


FIELD_WORDS = EDGE_WORDS + list(random_words(12))


def test_extract_extractu_every_width_offset():
    x, n, o = _field_grid(FIELD_WORDS)
    got_s = jax.jit(isa.bextract)(u32(x), n.astype(np.int32), o.astype(np.int32))
    got_u = jax.jit(isa.bextractu)(u32(x), n.astype(np.int32), o.astype(np.int32))
    assert_dtype(got_s, jnp.int32)
    assert_dtype(got_u, jnp.uint32)
    assert_words_equal(got_s, _ref_extract(x, n, o), "bextract", x=x, n=n, o=o)
    assert_words_equal(got_u, _ref_extractu(x, n, o), "bextractu", x=x, n=n, o=o)


def test_insert_every_width_offset():
    x, n, o = _field_grid(FIELD_WORDS)
    s = np.roll(x, 7) ^ 0x5A5A5A5A  # sources with bits above the field, unrelated to d
    got = jax.jit(isa.insert_field)(u32(x), u32(s), n.astype(np.int32), o.astype(np.int32))
    assert_dtype(got, jnp.uint32)
    assert_words_equal(got, _ref_insert(x, s, n, o), "insert_field", d=x, s=s, n=n, o=o)
    # binsert with the explicit masks of the same field gives the same word
    m = (((1 << n) - 1) << o) & M32
    got_b = jax.jit(isa.binsert)(u32(x), u32(~m), u32(s), u32(m), o.astype(np.int32))
    assert_words_equal(got_b, _ref_insert(x, s, n, o), "binsert", d=x, s=s, n=n, o=o)


def test_static_width_offset_path_matches_reference():
    """Python-int n, o (the builtins' constant form) for every valid (n, o), eagerly, on a few words."""
    words = np.array([0xDEADBEEF, 0x80000001, 0x7FFFFFFE, 0x13579BDF], dtype=np.int64)
    s = np.array([0xFFFFFFFF, 0x00000000, 0x12345678, 0xA5A5A5A5], dtype=np.int64)
    xs, ss = u32(words), u32(s)
    for n in range(1, 33):
        for o in range(0, 33 - n):
            assert_words_equal(isa.bextract(xs, n, o), _ref_extract(words, n, o), f"bextract n={n} o={o}", x=words)
            assert_words_equal(isa.bextractu(xs, n, o), _ref_extractu(words, n, o), f"bextractu n={n} o={o}",
                               x=words)
            assert_words_equal(isa.insert_field(xs, ss, n, o), _ref_insert(words, s, n, o),
                               f"insert_field n={n} o={o}", d=words, s=s)


def test_field_past_bit_31_is_clamped_like_the_hardware():
    """o + n > 32: the field is bits [o, 32) (CV32E40P: rs1[min(Is3+Is2,31):Is2])."""
    x = np.array(EDGE_WORDS, dtype=np.int64)
    s = np.roll(x, 3)
    for o in range(1, 32):
        for n in range(33 - o, 33):
            assert_words_equal(isa.bextract(u32(x), n, o), s32(x) >> o, f"bextract n={n} o={o}", x=x)
            assert_words_equal(isa.bextractu(u32(x), n, o), x >> o, f"bextractu n={n} o={o}", x=x)
            assert_words_equal(isa.insert_field(u32(x), u32(s), n, o), _ref_insert(x, s, 32 - o, o),
                               f"insert_field n={n} o={o}", d=x, s=s)


def test_register_form_decoding_of_array_width_offset():
    """Array n/o are decoded like rs2 of p.extractr: width ((n-1)&31)+1, offset o&31."""
    x = u32(0xDEADBEEF)
    assert int(isa.bextractu(x, jnp.int32(40), jnp.int32(36))) == _ref_extractu(0xDEADBEEF, 8, 4)
    assert int(isa.bextractu(x, jnp.int32(0), jnp.int32(0))) == 0xDEADBEEF  # width field 31 -> 32 bits


@pytest.mark.parametrize("fn,args", [
    (isa.bextract, (0, 0, 0)), (isa.bextract, (0, 33, 0)), (isa.bextractu, (0, 8, 32)),
    (isa.bextractu, (0, 8, -1)), (isa.insert_field, (0, 0, 0, 0)), (isa.binsert, (0, 0, 0, 0, 32)),
])
def test_static_width_offset_out_of_range_raises(fn, args):
    with pytest.raises(JaxpulpError):
        fn(*args)


@pytest.mark.parametrize("bits,masks", [
    (4, [(0xF0, 4)]),
    (2, [(0x0C, 2), (0x30, 4), (0xC0, 6)]),
])
def test_binsert_kernel_packing_with_int8_masks(bits, masks):
    """The kernels' output packing: successive binsert with sign-extended int8 masks into a (possibly
    negative) first value; the stored low byte is Σ low_bits(v_t) << (bits·t) (semantics.md §4.5)."""
    lim = 1 << bits
    vals = np.array(np.meshgrid(*[np.arange(-lim // 2, lim)] * (len(masks) + 1), indexing="ij"))
    vals = vals.reshape(len(masks) + 1, -1).astype(np.int64)
    acc = jnp.asarray(vals[0].astype(np.int32))
    for t, (mask8, off) in enumerate(masks, start=1):
        mask = int(np.int8(np.uint8(mask8)))  # int8 constant, sign-extended when passed as int
        nmask = int(np.int8(np.uint8(~mask8 & 0xFF)))
        acc = isa.binsert(acc, nmask, jnp.asarray(vals[t].astype(np.int32)), mask, off)
    want = sum((vals[t] & (lim - 1)) << (bits * t) for t in range(len(masks) + 1))
    assert_words_equal(np.asarray(acc) & 0xFF, want, f"binsert pack {bits}-bit", v0=vals[0])


# --- pack4 ----------------------------------------------------------------------------------------------------

def test_pack4_all_byte_values_every_lane_and_high_bits_ignored():
    a, b = all_pairs()
    c, d = np.roll(a, 101), np.roll(b, 7777)
    junk = random_words(a.size, seed=1) & ~0xFF  # garbage above the low byte must be ignored
    ins = [a | junk, b | np.roll(junk, 1), c | np.roll(junk, 2), d | np.roll(junk, 3)]
    got = jax.jit(isa.pack4)(*[u32(v) for v in ins])
    assert_dtype(got, jnp.uint32)
    assert_words_equal(got, a | (b << 8) | (c << 16) | (d << 24), "pack4", a=ins[0], b=ins[1], c=ins[2], d=ins[3])
    # signed int8 inputs (as the unpack helpers pass them)
    got = isa.pack4(jnp.int8(-1), jnp.int8(-128), jnp.int8(127), jnp.int8(1))
    assert int(got) == 0x017F80FF


# --- clips ---------------------------------------------------------------------------------------------------

def _clip_values(bound):
    around = [bound + k for k in range(-3, 4)] + [-bound + k for k in range(-4, 3)]
    fixed = [0, 1, -1, 2, -2, -(1 << 31), (1 << 31) - 1, 255, 256, -129, -128, 127, 128]
    return np.array(around + fixed, dtype=np.int64)


def _clip_grid():
    xs, bs = [], []
    for k in range(32):
        bound = (1 << k) - 1
        v = _clip_values(bound)
        xs.append(v)
        bs.append(np.full(v.shape, bound))
    r = random_words(4000, seed=2)
    xs.append(s32(r))
    bs.append((1 << (r % 32)) - 1)
    return s32(np.concatenate(xs)), np.concatenate(bs)


def test_clipu_r_every_bound_2k_minus_1():
    x, bound = _clip_grid()
    got = jax.jit(isa.clipu_r)(x.astype(np.int32), bound.astype(np.int32))
    assert_dtype(got, jnp.int32)
    want = np.minimum(np.maximum(x, 0), bound)
    assert_words_equal(got, want, "clipu_r", x=x, bound=bound)


def test_clip_r_every_bound_2k_minus_1():
    x, bound = _clip_grid()
    got = jax.jit(isa.clip_r)(x.astype(np.int32), bound.astype(np.int32))
    assert_dtype(got, jnp.int32)
    want = np.minimum(np.maximum(x, -bound - 1), bound)
    assert_words_equal(got, want, "clip_r", x=x, bound=bound)


def test_clips_ignore_bit_31_of_the_bound():
    """rs2' = rs2 & 0x7FFFFFFF (CV32E40P manual): a 'negative' bound acts as a large positive one."""
    x = np.array([-(1 << 31), -5, 0, 5, (1 << 31) - 1], dtype=np.int64)
    for bound, bclean in [(-1, (1 << 31) - 1), (0x800000FF, 255), (0x80000000, 0)]:
        assert_words_equal(isa.clipu_r(x.astype(np.int32), bound), np.clip(x, 0, bclean), "clipu_r", x=x)
        assert_words_equal(isa.clip_r(x.astype(np.int32), bound), np.clip(x, -bclean - 1, bclean), "clip_r", x=x)


def test_library_clip_macros():
    """clip8/4/2 = clipu_r(x, 255/15/3), clips8/4/2 = clip_r(x, 127/7/1) equal clipU/clipS (semantics.md §1)."""
    x = np.arange(-1000, 1000, dtype=np.int32)
    for b in (8, 4, 2):
        assert_words_equal(isa.clipu_r(x, (1 << b) - 1), np.clip(x, 0, (1 << b) - 1), f"clip{b}", x=x)
        assert_words_equal(isa.clip_r(x, (1 << (b - 1)) - 1), np.clip(x, -(1 << (b - 1)), (1 << (b - 1)) - 1),
                           f"clips{b}", x=x)


# --- SIMD lanes and scalar min/max -----------------------------------------------------------------------------

SIMD_CASES = {
    "max4": lambda a, b: np.where(sx8(a) >= sx8(b), a, b),
    "min4": lambda a, b: np.where(sx8(a) <= sx8(b), a, b),
    "maxu4": np.maximum,
    "minu4": np.minimum,
    "avgu4": lambda a, b: ((a + b) & 0xFF) >> 1,  # lane sum wraps before the shift (CV32E40P / GVSoC)
}


@pytest.mark.parametrize("name", sorted(SIMD_CASES))
def test_simd_all_lane_pairs(name):
    ref = SIMD_CASES[name]
    a, b = all_pairs()
    wa, wb, la, lb = rolled_lane_words(a, b)
    got = jax.jit(getattr(isa, name))(u32(wa), u32(wb))
    assert_dtype(got, jnp.uint32)
    want = sum(ref(la[i], lb[i]) << (8 * i) for i in range(4))
    assert_words_equal(got, want, name, a=wa, b=wb)


def test_avgu4_is_floor_mean_without_lane_carry():
    a, b = all_pairs()
    got = np.asarray(isa.avgu4(u32(a), u32(b))).astype(np.int64)
    small = a + b < 256
    assert_words_equal(got[small], (a + b)[small] // 2, "avgu4 (no carry)", a=a[small], b=b[small])
    assert int(isa.avgu4(0xFFFFFFFF, 0x01010101)) == 0
    assert int(isa.avgu4(0xFFFFFFFF, 0xFFFFFFFF)) == 0x7F7F7F7F


def test_scalar_min_max():
    edges = np.array(EDGE_WORDS, dtype=np.int64)
    r = random_words(2000, seed=3)
    a = np.concatenate([np.repeat(edges, edges.size), r])
    b = np.concatenate([np.tile(edges, edges.size), np.roll(r, 1)])
    ua, ub = u32(a), u32(b)
    sa, sb = s32(a), s32(b)
    cases = {
        "maxsi": (jnp.int32, np.maximum(sa, sb)), "minsi": (jnp.int32, np.minimum(sa, sb)),
        "maxusi": (jnp.uint32, np.maximum(a, b)), "minusi": (jnp.uint32, np.minimum(a, b)),
    }
    for name, (dtype, want) in cases.items():
        got = jax.jit(getattr(isa, name))(ua, ub)
        assert_dtype(got, dtype)
        assert_words_equal(got, want, name, a=a, b=b)


# --- fl1 -----------------------------------------------------------------------------------------------------

def test_fl1_single_bits_random_words_and_zero():
    k = np.arange(32, dtype=np.int64)
    got = jax.jit(isa.fl1)(u32(1 << k))
    assert_dtype(got, jnp.int32)
    assert_words_equal(got, k, "fl1 single bit", x=1 << k)
    # top bit k plus random lower bits
    r = random_words(32 * 64, seed=4)
    kk = np.repeat(k, 64)
    x = (1 << kk) | (r & ((1 << kk) - 1))
    assert_words_equal(isa.fl1(u32(x)), kk, "fl1 top bit", x=x)
    r = random_words(5000, seed=5)
    r = r[r != 0]
    assert_words_equal(isa.fl1(u32(r)), np.array([int(v).bit_length() - 1 for v in r]), "fl1 random", x=r)
    assert int(isa.fl1(0)) == 32
    assert int(isa.fl1(np.int32(-1))) == 31


# --- jit / vmap / dtypes ---------------------------------------------------------------------------------------

def test_jit_vmap_and_broadcasting():
    a = jnp.arange(8, dtype=jnp.uint32) * jnp.uint32(0x01010101)
    b = jnp.full((8,), 0xFF, jnp.uint32)
    v = jax.vmap(isa.sdotusp4, in_axes=(0, 0, None))(a, b, jnp.int32(0))
    assert_words_equal(v, -np.arange(8), "vmap sdotusp4", a=np.asarray(a))
    # vmap over width/offset (register form) inside jit
    f = jax.jit(jax.vmap(isa.bextractu, in_axes=(None, 0, 0)))
    got = f(jnp.uint32(0x87654321), jnp.full((8,), 4, jnp.int32), jnp.arange(0, 32, 4, dtype=jnp.int32))
    assert_words_equal(got, np.arange(1, 9), "vmap bextractu")
    # broadcasting: (3, 1) x (1, 4)
    out = isa.maxu4(u32(np.arange(3)[:, None]), u32(np.arange(4)[None, :]))
    assert out.shape == (3, 4)
    # static n/o in a jitted closure
    g = jax.jit(lambda x: isa.bextract(x, 4, 28))
    assert int(g(jnp.uint32(0x80000000))) == -8


def test_rejects_non_integer_operands():
    with pytest.raises(TypeError):
        isa.pack4(jnp.float32(1.0), 0, 0, 0)
    with pytest.raises(TypeError):
        isa.fl1(np.array([1.5]))


# --- instruction table -------------------------------------------------------------------------------------------

def test_instruction_table():
    t = isa.INSTRUCTIONS
    expected = {
        "sdotusp4", "sdotsp4", "sdotup4", "bextract", "bextractu", "binsert", "pack4", "clipu_r", "clip_r",
        "max4", "maxu4", "min4", "minu4", "avgu4", "maxsi", "minsi", "maxusi", "minusi", "fl1",
    }
    assert set(t) == expected
    for key, ins in t.items():
        assert ins.name == key
        assert ins.fn is getattr(isa, key)
        assert ins.builtin == f"__builtin_pulp_{key}"
        assert ins.cost_class in INSTRUCTION_CLASSES, ins
        assert ins.mnemonic.startswith(("p.", "pv.")), ins
        assert ins.count >= 1
    assert t["pack4"].count == 2 and t["pack4"].cost_class == "pack"
    assert all(t[k].macs == 4 and t[k].cost_class == "sdotp" for k in ("sdotusp4", "sdotsp4", "sdotup4"))
    assert t["sdotusp4"].mnemonic == "pv.sdotusp.b"
    assert t["clipu_r"].cost_class == "clipu" and t["clip_r"].cost_class == "clip"
    assert t["fl1"].cost_class == "bitcount"
    with pytest.raises(dataclasses.FrozenInstanceError):
        t["fl1"].count = 3  # frozen


# --- property tests (hypothesis) -----------------------------------------------------------------------------------

word = st.integers(0, M32)
field = st.integers(1, 32).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 32 - n)))


@settings(max_examples=150, deadline=None)
@given(d=word, s=word, no=field)
def test_prop_insert_then_extract_returns_the_field(d, s, no):
    n, o = no
    w = isa.insert_field(d, s, n, o)
    assert int(isa.bextractu(w, n, o)) == s & ((1 << n) - 1)
    f = s & ((1 << n) - 1)
    assert int(isa.bextract(w, n, o)) == (f - (1 << n) if f >> (n - 1) else f)
    # bits outside the field are d's
    m = (((1 << n) - 1) << o) & M32
    assert int(w) & ~m & M32 == d & ~m & M32


@settings(max_examples=150, deadline=None)
@given(bs=st.lists(st.integers(-(1 << 31), M32), min_size=4, max_size=4))
def test_prop_pack4_then_extractu_gives_the_bytes_back(bs):
    w = isa.pack4(*bs)
    for i in range(4):
        assert int(isa.bextractu(w, 8, 8 * i)) == bs[i] & 0xFF
        assert int(isa.bextract(w, 8, 8 * i)) == int(np.int8(np.uint8(bs[i] & 0xFF)))


@settings(max_examples=150, deadline=None)
@given(a=word, b=word, acc=st.integers(-(1 << 31), (1 << 31) - 1))
def test_prop_sdotp_accumulator_is_additive_mod_2_32(a, b, acc):
    for fn in (isa.sdotusp4, isa.sdotsp4, isa.sdotup4):
        assert (int(fn(a, b, acc)) - int(fn(a, b, 0)) - acc) % (1 << 32) == 0
    # usp: a's lanes unsigned, b's signed; swapping roles matches sp only when no lane has bit 7 set
    if not (a & 0x80808080):
        assert int(isa.sdotusp4(a, b, acc)) == int(isa.sdotsp4(a, b, acc))


@settings(max_examples=150, deadline=None)
@given(x=st.integers(-(1 << 31), (1 << 31) - 1), k=st.integers(0, 31))
def test_prop_clips_are_idempotent_and_bounded(x, k):
    bound = (1 << k) - 1
    u = int(isa.clipu_r(x, bound))
    s = int(isa.clip_r(x, bound))
    assert 0 <= u <= bound and int(isa.clipu_r(u, bound)) == u
    assert -bound - 1 <= s <= bound and int(isa.clip_r(s, bound)) == s
    if 0 <= x <= bound:
        assert u == x == s


@settings(max_examples=150, deadline=None)
@given(x=st.integers(1, M32))
def test_prop_fl1_is_floor_log2(x):
    k = int(isa.fl1(x))
    assert (1 << k) <= x < (1 << (k + 1))
