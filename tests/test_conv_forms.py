"""The conv accumulator formulations (``kernels/_conv_forms``) against the int64 numpy correlation (``==``) at the
type extremes, and the packed path that uses them (``conv.run``, whatever form ``int8_form`` picks) against the
numpy ``reference`` twin. Adversarial data: inputs at the type's bounds, weights at -128 / 127 / -127, and one
image aligned with output channel 0's weight signs so its float32 partial sums reach the group bound."""
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conv_util import correlation
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from jaxpulp import packing
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _conv_forms, _engine, conv
from jaxpulp.kernels.config import ConvConfig, out_dim
from jaxpulp.qtypes import QType

_IN = ["u8", "i8", "u4", "i4", "u2", "i2"]


def _adversarial(rng, q: QType, shape_x, shape_w, extreme: float):
    """Weights at the int8 extremes with one sign per (output, input) channel pair, and x = two images: one at
    the type's bounds aligned with output channel 0's signs (every product of that channel as large as it
    gets, all of one sign), one at random bounds."""
    co, kh, kw, ci = shape_w
    sign = rng.choice(np.array([-1, 1]), (co, 1, 1, ci))
    mag = rng.choice(np.array([128, 127]), shape_w)
    w = np.where(sign > 0, np.minimum(mag, 127), -mag)
    w = np.where(rng.random(shape_w) < extreme, w, rng.integers(-3, 4, shape_w)).astype(np.int32)
    aligned = np.broadcast_to(np.where(sign[0, 0, 0] > 0, q.hi, q.lo), shape_x[1:])
    x = np.stack([aligned, rng.choice(np.array([q.lo, q.hi]), shape_x[1:])]).astype(np.int32)
    return x, w


@st.composite
def _case(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)),
           draw(st.integers(0, kw - 1)))
    H, W = draw(st.integers(kh, 8)), draw(st.integers(kw, 8))
    assume(out_dim(H, pad[0], pad[1], kh, stride[0]) >= 1 and out_dim(W, pad[2], pad[3], kw, stride[1]) >= 1)
    ci = draw(st.sampled_from([1, 2, 3, 8, 12, 16, 32, 64, 150]))  # 150 x 5 x 5 u8 x i8: several worst-case groups
    co = draw(st.sampled_from([1, 8, 17, 32]))  # > 16 channels: XLA hands the int8 forms to YNNPACK
    in_t = draw(st.sampled_from(_IN))
    cfg = ConvConfig(in_t, "u8", "i8", H=H, W=W, Ci=ci, Co=co, Kh=kh, Kw=kw, stride=stride, pad=pad,
                     semantics="ideal")
    return cfg, draw(st.integers(0, 2**32 - 1)), draw(st.floats(0.5, 1.0))


def _float_groups(cfg, w):
    q = cfg.in_type
    proved = _engine.weight_bound_groups(w, max(-q.lo, q.hi))
    return conv.worst_case_groups(cfg), proved


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_case())
def test_every_form_equals_the_int64_correlation_at_the_type_extremes(case):
    cfg, seed, extreme = case
    rng = np.random.default_rng(seed)
    q = cfg.in_type
    x, w = _adversarial(rng, q, (2, cfg.H, cfg.W, cfg.Ci), (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci), extreme)
    want = correlation(x, w, cfg)
    worst, proved = _float_groups(cfg, w)
    off = 0 if q.signed else 128

    # the forms built on XLA's convolution are exact only where it sums products (not cuDNN's Winograd / FFT)
    exact = tuple(f for f in ("lax", "im2col", "s2d", "taps")
                  if f not in _conv_forms.CONV_FORMS or _conv_forms.sums_products())

    def all_forms(a, k, off_traced):
        out = {f"{f}/worst": _conv_forms.form(f)(a, k, cfg, worst) for f in exact}
        if proved is not None:
            out.update({f"{f}/proved": _conv_forms.form(f)(a, k, cfg, proved) for f in exact if f != "taps"})
        if jax.default_backend() == "cpu":  # XLA:GPU has no general integer convolution (int8_conv's docstring)
            out["int8_conv"] = _conv_forms.int8_conv(a, k, cfg, off)
            out["int8_conv/traced offset"] = _conv_forms.int8_conv(a, k, cfg, off_traced)
            out["int8_conv_wide"] = _conv_forms.int8_conv_wide(a, k, cfg, off)
            out["int8_conv_wide/traced offset"] = _conv_forms.int8_conv_wide(a, k, cfg, off_traced)
        out["int8_band"] = _conv_forms.int8_band(a, k, cfg, off)
        out["int8_band/traced offset"] = _conv_forms.int8_band(a, k, cfg, off_traced)
        out["int8_im2col"] = _conv_forms.int8_im2col(a, k, cfg, off)
        out["int8_im2col/traced offset"] = _conv_forms.int8_im2col(a, k, cfg, off_traced)
        return out

    got = jax.jit(all_forms)(jnp.asarray(x), jnp.asarray(w), jnp.int32(off))
    for name, acc in got.items():
        np.testing.assert_array_equal(np.asarray(acc), want, err_msg=f"{name} {cfg}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), ci=st.sampled_from([4, 8, 12, 32, 36]), co=st.integers(1, 20),
       k=st.sampled_from([(1, 1), (3, 3), (5, 3), (2, 4)]), s=st.integers(1, 3), signed=st.booleans(),
       k_multiple=st.sampled_from([4, 32, 128]))
def test_patches_built_from_words_equal_the_correlation(seed, ci, co, k, s, signed, k_multiple):
    """``int8_im2col`` with its patches built from 32-bit words (``patch_words``, forced on for every channel count
    that is a multiple of 4 and every call): four channels per word, the weights' columns reordered to match
    (``_word_columns``), == the int64 correlation at the type extremes, with the offset static and traced, from raw
    weights and from the prepared int8 matrix, and == the byte-built patches."""
    q = QType.parse("i8" if signed else "u8")
    cfg = ConvConfig(q, "u8", "i8", H=7, W=9, Ci=ci, Co=co, Kh=k[0], Kw=k[1], stride=(s, s),
                     pad=(k[0] // 2, (k[0] - 1) // 2, k[1] // 2, (k[1] - 1) // 2), semantics="ideal")
    rng = np.random.default_rng(seed)
    x, w = _adversarial(rng, q, (2, cfg.H, cfg.W, ci), (co, k[0], k[1], ci), 0.9)
    off = 0 if signed else 128
    mat = _conv_forms.Weights(None, np.sum(w, axis=(1, 2, 3), dtype=np.int32),
                              _conv_forms.im2col_weights(w, cfg, k_multiple, xp=np))

    def forms(a, kk, off_traced):
        return {"raw": _conv_forms.int8_im2col(a, kk, cfg, off, k_multiple),
                "raw/traced offset": _conv_forms.int8_im2col(a, kk, cfg, off_traced, k_multiple),
                "prepared": _conv_forms.int8_im2col(a, mat, cfg, off)}

    with mock.patch.object(_conv_forms, "WORD_PATCH_MIN_PIXELS", 0), \
            mock.patch.object(_conv_forms, "WORD_PATCH_MIN_CHANNELS", 0):
        assert _conv_forms.patch_words(cfg, 1)
        got = jax.jit(forms)(jnp.asarray(x), jnp.asarray(w), jnp.int32(off))
    want = correlation(x, w, cfg)
    for name, acc in got.items():
        np.testing.assert_array_equal(np.asarray(acc), want, err_msg=f"{name} {cfg}")
    with mock.patch.object(_conv_forms, "WORD_PATCH_MIN_PIXELS", 10**9):
        assert not _conv_forms.patch_words(cfg, 2)
        np.testing.assert_array_equal(np.asarray(_conv_forms.int8_im2col(jnp.asarray(x), w, cfg, off, k_multiple)),
                                      want)


def test_patch_words_rule():
    """Words from ``WORD_PATCH_MIN_CHANNELS`` input channels (a multiple of 4) and ``WORD_PATCH_MIN_PIXELS`` output
    pixels in the call; the word columns are a permutation of the weight columns that keeps the zero padding."""
    cfg = ConvConfig("u8", "u8", "i8", H=16, W=16, Ci=32, Co=32, pad=(1, 1, 1, 1))
    per_input = cfg.Ho * cfg.Wo
    need = -(-_conv_forms.WORD_PATCH_MIN_PIXELS // per_input)
    assert _conv_forms.patch_words(cfg, need) and not _conv_forms.patch_words(cfg, need - 1)
    assert not _conv_forms.patch_words(cfg.replace(Ci=_conv_forms.WORD_PATCH_MIN_CHANNELS + 2), 10**4)
    assert not _conv_forms.patch_words(cfg.replace(Ci=_conv_forms.WORD_PATCH_MIN_CHANNELS - 4), 10**4)
    cols = _conv_forms._word_columns(cfg.replace(Ci=12), 128)
    assert sorted(cols) == list(range(128)) and list(cols[108:]) == list(range(108, 128))
    assert list(cols[:8]) == [0, 3, 6, 9, 1, 4, 7, 10]  # word 0: channels 0, 3, 6, 9 of tap 0; word 1: 1, 4, 7, 10


@pytest.mark.parametrize("form", ["int8_conv", "int8_conv_wide", "int8_band", "int8_im2col"])
def test_a_case_where_an_int8_pad_fed_to_the_convolution_went_wrong(form):
    """i8 input (offset 0), 4x1 kernel over 8 channels, pad (1, 3, 0, 0): with the input shifted to int8 first and
    padded after, XLA:CPU's YNNPACK convolution returned garbage under jit (jax 0.10.2); every form must keep the
    int64 correlation here."""
    if form.startswith("int8_conv") and jax.default_backend() != "cpu":
        pytest.skip("XLA:GPU has no general integer convolution (int8_conv's docstring)")
    cfg = ConvConfig("i8", "u8", "i8", H=4, W=1, Ci=8, Co=1, Kh=4, Kw=1, pad=(1, 3, 0, 0), semantics="ideal")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (2, 4, 1, 8)).astype(np.int32)
    w = rng.integers(-128, 128, (1, 4, 1, 8)).astype(np.int32)
    got = jax.jit(lambda a, k: getattr(_conv_forms, form)(a, k, cfg, 0))(jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_array_equal(np.asarray(got), correlation(x, w, cfg))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([1, 3, 5]), s=st.integers(1, 2),
       ci=st.sampled_from([1, 3, 32]))
def test_value_path_with_traced_types_equals_the_correlation_for_each_type(seed, k, s, ci):
    """``accumulate`` with the input type as data (vmapped over u8 / i8 / u4 / i2 batches, each holding values of
    its own type at the extremes): the int8 offset is traced, the result == the int64 correlation plus bias."""
    rng = np.random.default_rng(seed)
    cfg = ConvConfig("u8", "u8", "i8", H=7, W=6, Ci=ci, Co=32, Kh=k, Kw=k, stride=(s, s), pad=(k // 2,) * 4,
                     semantics="ideal")
    types = [QType.parse(t) for t in ("u8", "i8", "u4", "i2")]
    xs, ws = zip(*(_adversarial(rng, q, (2, 7, 6, ci), (32, k, k, ci), 0.9) for q in types), strict=True)
    bias = rng.integers(-(1 << 31), 1 << 31, 32, dtype=np.int64).astype(np.int32)
    bits = jnp.asarray([q.bits for q in types], jnp.int32)
    signed = jnp.asarray([int(q.signed) for q in types], jnp.int32)
    got = jax.jit(jax.vmap(lambda a, w, b, sg: conv.accumulate(a, w, bias, cfg, x_type=(b, sg))))(
        jnp.asarray(np.stack(xs)), jnp.asarray(np.stack(ws)), bits, signed)
    for i, q in enumerate(types):
        want = correlation(xs[i], ws[i], cfg).astype(np.int64) + bias
        want = ((want + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
        np.testing.assert_array_equal(np.asarray(got[i]), want, err_msg=f"x_type {q}, {cfg}")


def test_int8_offset_refuses_wide_types_and_follows_the_sign():
    assert _engine.int8_offset((8, 0)) == 128 and _engine.int8_offset((4, 0)) == 0 and _engine.int8_offset((8, 1)) == 0
    assert int(jax.jit(lambda b, s: _engine.int8_offset((b, s)))(8, 0)) == 128
    with pytest.raises(JaxpulpError, match="x_type"):
        _engine.int8_offset((16, 1))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), in_t=st.sampled_from(["u8", "i8", "u4"]),
       ci_co=st.sampled_from([(1, 32), (3, 24), (4, 32), (32, 32), (16, 16), (12, 8)]), k=st.sampled_from([3, 5]),
       s=st.integers(1, 2), relu=st.integers(0, 1), bn=st.integers(0, 1))
def test_packed_run_equals_the_reference_twin_at_the_extremes(seed, in_t, ci_co, k, s, relu, bn):
    """``conv.run`` (packed path: the int8 forms where ``int8_form`` says so) == ``conv.reference`` (numpy loops
    following the spec core by core) on adversarial data, library semantics, quirks included."""
    q = QType.parse(in_t)
    ci, co = ci_co
    p = k // 2
    cfg = ConvConfig(in_t, "u8", "i8", H=6, W=6, Ci=ci, Co=co, Kh=k, Kw=k, stride=(s, s), pad=(p, p, p, p),
                     relu=relu, bn=bn)
    try:
        conv.check(cfg)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(seed)
    x, w = _adversarial(rng, q, (2, 6, 6, ci), (co, k, k, ci), 0.9)
    params = conv.Params(kappa=rng.integers(-40, 40, co).astype(np.int32),
                         lam=rng.integers(-3000, 3000, co).astype(np.int32), out_mult=int(rng.integers(0, 1 << 16)),
                         out_shift=int(rng.integers(8, 20)), bias=None)
    out = np.asarray(conv.run(np.stack([packing.pack_hwc(v, q) for v in x]), packing.pack(w, cfg.w_type), params,
                              cfg=cfg))
    for i in range(2):
        got = packing.unpack(out[i], cfg.out_type, cfg.Ho * cfg.Wo * cfg.Co).reshape(cfg.Ho, cfg.Wo, cfg.Co)
        np.testing.assert_array_equal(got, conv.reference(x[i], w, params, cfg), err_msg=f"{cfg} image {i}")
