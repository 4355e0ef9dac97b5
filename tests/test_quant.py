"""Requantisation rules: the vectorised and the Python-int implementations agree, and the spec's examples."""
import numpy as np
from hypothesis import assume, given, settings, strategies as st

from jaxpulp import quant

I32 = st.integers(-(2**31), 2**31 - 1)


@settings(max_examples=300, deadline=None)
@given(acc=I32, kappa=I32, lam=I32, mult=st.integers(0, 0xFFFF), shift=st.integers(0, 70),
       relu=st.integers(0, 3), bn=st.integers(0, 2), bits=st.sampled_from([2, 4, 8]), signed=st.booleans())
def test_vectorised_equals_python_ints(acc, kappa, lam, mult, shift, relu, bn, bits, signed):
    lo, hi = quant.type_bounds(bits, signed)
    got = quant.requant(np.int32(acc), relu=relu, bn=bn, kappa=np.int32(kappa), lam=np.int32(lam),
                        out_mult=mult, out_shift=shift, lo=lo, hi=hi)
    lo_i = -(1 << (bits - 1)) if signed else 0
    hi_i = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    want = quant.requant_int(acc, relu=relu, bn=bn, kappa=kappa, lam=lam, out_mult=mult, out_shift=shift,
                             lo=lo_i, hi=hi_i)
    assert int(got) == want
    assert int(quant.unsigned_clip_as_signed(np.int32(acc), shift, bits)) == \
        quant.unsigned_clip_as_signed_int(acc, shift, bits)


def test_mode_selection_order():
    assert quant.mode(1, 1) == quant.MODE_BN
    assert quant.mode(2, 1) == quant.MODE_BN
    assert quant.mode(1, 0) == quant.MODE_MULT
    assert quant.mode(2, 0) == quant.MODE_SHIFT   # relu must be exactly 1 for MULT
    assert quant.mode(0, 1) == quant.MODE_SHIFT   # bn without relu is ignored


def test_spec_examples():
    # semantics.md §15.1 BN: kappa=2, acc=-34, lambda=100, shift 4 -> 2 (u2); floor: -108 >> 4 = -7 -> 0
    kw = dict(relu=1, bn=1, out_mult=0, out_shift=4, lo=0, hi=3)
    assert quant.requant_int(-34, kappa=2, lam=100, **kw) == 2
    assert quant.requant_int(-9, kappa=2, lam=-90, **kw) == 0
    assert (2 * -9 - 90) >> 4 == -7
    # out_mult is a uint16 argument used as int16: 40000 -> -25536
    assert quant.int16(40000) == -25536
    assert quant.requant_int(1, relu=1, bn=0, kappa=0, lam=0, out_mult=40000, out_shift=0, lo=-128, hi=127) == -128
    # §4.4: i4 SHIFT-CLIP in the matmul block: 10 -> 0xA read as -6; 20 -> -1; -10 -> 0
    assert [quant.unsigned_clip_as_signed_int(v, 0, 4) for v in (10, 20, -10)] == [-6, -1, 0]
    # shift amounts are taken mod 32
    assert quant.requant_int(256, relu=0, bn=0, kappa=0, lam=0, out_mult=0, out_shift=33, lo=0, hi=255) == 128


def test_bn64_equals_python_ints_exhaustive_edges_and_random():
    # The 64-bit tree (semantics.md §4.3): asr64(kappa*acc + lambda, shift & 63), low 32 bits, then the clip.
    rng = np.random.default_rng(7)
    edges = np.array([0, 1, -1, 2**31 - 1, -(2**31), 2**16, -(2**16), 65535, -65535, 12345678], np.int64)
    k, a, lm = (np.concatenate([np.repeat(edges, 100), rng.integers(-(2**31), 2**31, 4000)]) for _ in range(3))
    rng.shuffle(a)
    rng.shuffle(lm)
    s = rng.integers(0, 128, k.size)
    got = np.asarray(quant.requant(a.astype(np.int32), relu=1, bn=1, kappa=k.astype(np.int32),
                                   lam=lm.astype(np.int32), out_mult=0, out_shift=s.astype(np.int32),
                                   lo=-(2**31), hi=2**31 - 1, bn_bits=64))
    prod = [(int(x) * int(y) + int(z)) >> (int(t) & 63) for x, y, z, t in zip(k, a, lm, s, strict=True)]
    want = np.array([((v + 2**31) % 2**32) - 2**31 for v in prod])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} differ; first k={k[bad[0]]} acc={a[bad[0]]} lam={lm[bad[0]]} s={s[bad[0]]}"
    for i in range(0, k.size, 97):
        assert quant.requant_int(int(a[i]), relu=1, bn=1, kappa=int(k[i]), lam=int(lm[i]), out_mult=0,
                                 out_shift=int(s[i]), lo=-(2**31), hi=2**31 - 1, bn_bits=64) == want[i]


def test_bn64_differs_from_bn32_on_overflow():
    # kappa*acc overflows int32: the 32-bit tree wraps, the 64-bit tree does not (then clips to u8).
    args = dict(relu=1, bn=1, kappa=np.int32(40940), lam=np.int32(0), out_mult=0, out_shift=24, lo=0, hi=255)
    exact = min(255, (40940 * 3_000_000) >> 24)  # 255
    wrapped = min(255, max(0, quant.wrap32(40940 * 3_000_000) >> 24))
    assert exact != wrapped
    assert int(quant.requant(np.int32(3_000_000), bn_bits=64, **args)) == exact
    assert int(quant.requant(np.int32(3_000_000), bn_bits=32, **args)) == wrapped


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), shift=st.integers(0, 70), mult=st.integers(0, 0xFFFF), relu=st.integers(0, 3),
       bn=st.integers(0, 2), bn_bits=st.sampled_from([32, 64]), bits=st.sampled_from([2, 4, 8]),
       signed=st.booleans())
def test_static_flags_trace_only_the_selected_mode_and_equal_traced_flags(seed, shift, mult, relu, bn, bn_bits, bits,
                                                                         signed):
    # requant with Python-int flags traces one mode only; with traced (int32 array) flags it selects among all
    # three: the same values, at int32 extremes included
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    edges = np.array([-(2**31), 2**31 - 1, -1, 0, 1], np.int64)
    acc, kappa, lam = (np.concatenate([edges, rng.integers(-(2**31), 2**31, 59)]).astype(np.int32) for _ in range(3))
    lo, hi = quant.type_bounds(bits, signed)
    kw = dict(kappa=kappa, lam=lam, out_mult=mult, out_shift=shift, lo=lo, hi=hi, bn_bits=bn_bits)
    static = quant.requant(acc, relu=relu, bn=bn, **kw)
    traced = quant.requant(acc, relu=jnp.int32(relu), bn=jnp.int32(bn), **kw)
    np.testing.assert_array_equal(np.asarray(static), np.asarray(traced))


@settings(max_examples=200, deadline=None)
@given(kappa_bits=st.integers(0, 31), lam_bits=st.integers(0, 31), acc_bits=st.integers(1, 33),
       shift=st.integers(0, 70), seed=st.integers(0, 2**32 - 1))
def test_bn64_split_where_proved_equals_the_64_bit_tree(kappa_bits, lam_bits, acc_bits, shift, seed):
    """``bn64_split``: where it proves a split (r, n) for the channels' parameters and accumulator ranges, the int32
    pieces give the 64-bit tree's bits at the range ends, at the piece boundaries and at random accumulators
    (accumulator ranges beyond int32 mean a wrapping accumulator: the whole int32 range)."""
    rng = np.random.default_rng(seed)
    co = 3
    k = rng.integers(-(1 << kappa_bits), 1 << kappa_bits, co)
    lam = rng.integers(-(1 << lam_bits), 1 << lam_bits, co) if lam_bits < 31 else rng.integers(-(2**31), 2**31, co)
    hi = rng.integers(0, 1 << acc_bits, co)
    lo = -rng.integers(0, 1 << acc_bits, co)
    r = quant.bn64_split(k, lam, shift, lo, hi)
    assume(r is not None)  # test_bn64_split_takes_the_fewest_pieces_that_keep_int32 shows the other side
    width, n = r
    assert 1 <= width <= quant.BN64_SPLIT_MAX and 1 <= n <= quant.BN64_SPLIT_PIECES and width * n <= shift & 63
    wraps = (lo < -(2**31)) | (hi >= 2**31)
    lo32, hi32 = np.where(wraps, -(2**31), lo), np.where(wraps, 2**31 - 1, hi)
    base = lo32 + ((hi32 - lo32) >> 1)  # around the middle: the piece boundaries of its neighbourhood
    cuts = [base - base % (1 << (width * (i + 1))) for i in range(n)]
    edges = [lo32, hi32] + [np.clip(c + d, lo32, hi32) for c in cuts for d in (0, -1)]
    acc = np.stack(edges + [rng.integers(lo32, hi32 + 1) for _ in range(40)]).astype(np.int32)
    kw = dict(relu=1, bn=1, kappa=k.astype(np.int32), lam=lam.astype(np.int32), out_mult=0, out_shift=shift,
              lo=-(2**31), hi=2**31 - 1, bn_bits=64)
    got = np.asarray(quant.requant(acc, bn_split=r, **kw))
    want = np.asarray(quant.requant(acc, **kw))  # 16-bit limbs: equal to Python ints (test above)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"split {r}: acc {acc[tuple(bad[0])]} kappa {k[bad[0][1]]} lam {lam[bad[0][1]]} shift "
                           f"{shift}: {got[tuple(bad[0])]} != {want[tuple(bad[0])]}")


def test_bn64_split_takes_the_fewest_pieces_that_keep_int32():
    # kappa 55,796 over the whole int32 range: with one low piece, kappa * (acc >> r) or kappa * (acc & (2**r - 1))
    # leaves int32 for every r; two pieces of 10 bits fit. Over a 22-bit accumulator range (a NEMO EEGNet layer's)
    # one low piece of 15 bits fits, 16 would not (kappa * 65,535 > 2**31)
    assert quant.bn64_split([55796], [0], 20) == (10, 2)
    assert quant.bn64_split([55796], [0], 20, [-(2**22)], [2**22]) == (15, 1)
    assert quant.bn64_split([3], [7], 0) is None  # no shift: nothing to split
    assert quant.bn64_split([3], [7], 40) == (quant.BN64_SPLIT_MAX, 1)
    assert quant.bn64_split([2**31 - 1], [0], 3) is None  # kappa * a piece of 1 bit already fills int32
