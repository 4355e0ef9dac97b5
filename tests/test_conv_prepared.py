"""``conv.prepare_weights``: a conv's weights laid out once for its accumulation form give the bits of the raw
weights, on the value path's ``accumulate`` (every form the rule picks, traced types) and the packed path's
``run_lanes`` (== the reference twin); wrong weights are refused by name."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conv_util import correlation
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from jaxpulp import JaxpulpError, QType, UnsupportedConfig, packing
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _conv_forms, conv, pointwise

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# (Ci, Co, K): Ci = 1 (and up to 3 at stride 1) takes the banded int8 GEMM, small 1x1 layers the float32 forms,
# larger 1x1 ones the int8 GEMM, KxK ones with 2-8 channels in and at least 17 out the im2col int8 GEMM (at stride
# 2 for 2-3 channels), with 9-16 channels in and at most 16 out the int8 convolution with zero filters ("wide", at
# these small batches), the others the int8 convolution (on the CPU)
SHAPES = [(1, 8, 3), (8, 8, 1), (16, 32, 1), (24, 8, 1), (8, 24, 3), (24, 8, 3), (16, 16, 3), (12, 8, 3), (3, 8, 3),
          (3, 32, 3), (13, 24, 3), (10, 8, 3)]  # the last two: zero input channels up to a multiple of 4


def _extreme(rng, lo, hi, shape):
    """Random values with a good share of both ends of [lo, hi] (where the int8 offset and the float32 bounds bite)."""
    v = rng.integers(lo, hi + 1, shape)
    ends = rng.random(shape)
    return np.where(ends < 0.3, lo, np.where(ends > 0.7, hi, v))


@PROPERTY
@given(shape=st.sampled_from(SHAPES), it=st.sampled_from(["u8", "i8", "u4", "i2"]), wt=st.sampled_from(["i8", "i4"]),
       stride=st.integers(1, 2), bias=st.booleans(), seed=st.integers(0, 2**31))
def test_prepared_weights_give_the_raw_weights_bits_on_the_value_path(shape, it, wt, stride, bias, seed):
    ci, co, k = shape
    cfg = conv.Config("u8", "u8", "i8", H=6, W=5, Ci=ci, Co=co, Kh=k, Kw=k, stride=(stride, stride),
                      pad=(k // 2,) * 4)
    rng = np.random.default_rng(seed)
    in_t, w_t = QType.parse(it), QType.parse(wt)
    x = _extreme(rng, in_t.lo, in_t.hi, (2, cfg.H, cfg.W, ci))
    w = _extreme(rng, w_t.lo, w_t.hi, (co, k, k, ci))
    b = rng.integers(-2**20, 2**20, co).astype(np.int32) if bias else None
    prep = conv.prepare_weights(w, cfg)
    form = conv.int8_form(cfg, batch=1)  # the layout prepare_weights makes
    if form == "gemm":  # 1x1, more than 8 channels: (Co, Ci) int8, the GEMM's contracted axis last
        assert prep.hwio is None and prep.gemm.dtype == np.int8 and prep.gemm.shape == (co, ci)
    elif form == "band":  # few input channels: the banded GEMM's matrix, and int8 HWIO for the float32 forms
        assert prep.hwio.dtype == np.int8 and prep.gemm.dtype == np.int8 and prep.gemm.shape[0] % co == 0
    elif form == "im2col":  # (Co, K padded to a multiple of 32) int8, and int8 HWIO for the float32 forms
        assert prep.hwio.dtype == np.int8 and prep.gemm.dtype == np.int8
        assert prep.gemm.shape == (co, -(-k * k * ci // 32) * 32) and not prep.gemm[:, k * k * ci:].any()
    elif form == "wide":  # int8 HWIO with zero filters up to WIDE_CO outputs (+ the band where larger batches use it)
        assert prep.hwio.dtype == np.int8 and prep.hwio.shape[-1] == _conv_forms.WIDE_CO
        assert not prep.hwio[..., co:].any()
        assert (prep.gemm is None) == (conv.int8_form(cfg) != "band")
    elif form == "conv":  # int8 HWIO (+ the im2col matrix where larger batches take it: no int8 dot instructions)
        assert prep.hwio.dtype == np.int8 and (prep.gemm is None) == (conv.int8_form(cfg) != "im2col")
    else:
        assert prep.gemm is None and prep.hwio.dtype == np.float32
    if form in ("conv", "wide"):  # YNNPACK's (> 16 channels in or out): zero input channels up to a multiple of 4
        ynn = max(ci, prep.hwio.shape[-1]) >= _conv_forms.YNN_MIN_CHANNELS
        assert prep.hwio.shape[2] == (-(-ci // 4) * 4 if ynn else ci) and not prep.hwio[:, :, ci:].any()
    x_type = (jnp.int32(in_t.bits), jnp.int32(in_t.signed))  # traced, as the value path passes them
    f = jax.jit(lambda x, w, t: conv.accumulate(x, w, b, cfg, x_type=t))
    got = np.asarray(f(jnp.asarray(x), jax.tree_util.tree_map(jnp.asarray, prep), x_type))
    raw = np.asarray(f(jnp.asarray(x), jnp.asarray(w), x_type))
    np.testing.assert_array_equal(got, raw)
    # and both are the int64 correlation (so a layout error common to both would show too)
    np.testing.assert_array_equal(got, correlation(x, w, cfg) + (0 if b is None else b))
    # without a type (x within the widest type): the float32 forms, from int8-prepared weights too
    np.testing.assert_array_equal(np.asarray(conv.accumulate(x, prep, b, cfg)), got)


@PROPERTY
@given(shape=st.sampled_from(SHAPES), types=st.sampled_from([("u8", "u8", "i8"), ("i8", "i4", "i8"),
                                                              ("u4", "u2", "i4"), ("i2", "i8", "i2")]),
       seed=st.integers(0, 2**31))
def test_prepared_weights_give_the_image_bits_on_the_packed_path(shape, types, seed):
    ci, co, k = shape
    cfg = conv.Config(*types, H=4, W=4, Ci=ci, Co=co, Kh=k, Kw=k, pad=(k // 2,) * 4, relu=1, bn=1)
    try:
        conv.check(cfg, Cluster())
    except UnsupportedConfig:
        assume(False)  # a layout the library cannot address (sub-byte pixels of one channel)
    rng = np.random.default_rng(seed)
    x = _extreme(rng, cfg.in_type.lo, cfg.in_type.hi, (2, cfg.H, cfg.W, ci))
    w = _extreme(rng, cfg.w_type.lo, cfg.w_type.hi, (co, k, k, ci))
    params = conv.Params(kappa=rng.integers(-50, 50, co).astype(np.int32),
                         lam=rng.integers(-2000, 2000, co).astype(np.int32), out_mult=3, out_shift=9, bias=None)
    image = packing.pack(w, cfg.w_type)
    prep = conv.prepare_weights(packing.unpack(image, cfg.w_type, w.size).reshape(w.shape), cfg)
    lanes = x.reshape(2, -1)
    got = np.asarray(conv.run_lanes(lanes, prep, params, cfg=cfg))
    np.testing.assert_array_equal(got, np.asarray(conv.run_lanes(lanes, image, params, cfg=cfg)))
    twin = np.stack([conv.reference(xi, w, params, cfg, Cluster()) for xi in x])
    np.testing.assert_array_equal(got, twin.reshape(got.shape))


@pytest.mark.parametrize("ci, co, k, small, large", [(1, 8, 3, "band", "band"), (8, 16, 3, "conv", "conv"),
                                                     (3, 8, 3, "band", "band"), (3, 32, 5, "band", "band"),
                                                     (4, 32, 3, "im2col", "im2col"), (8, 17, 3, "im2col", "im2col"),
                                                     (4, 16, 3, "conv", "conv"),
                                                     (9, 16, 3, "wide", "band"), (16, 16, 3, "wide", "band"),
                                                     (12, 8, 5, "wide", "band"), (16, 17, 3, "conv", "conv"),
                                                     (16, 16, 1, "gemm", "gemm"), (8, 8, 1, None, None)])
def test_the_form_rule_on_the_cpu(ci, co, k, small, large, monkeypatch):
    """``int8_form`` on a CPU with int8 dot instructions (``NO_INT8_DOT`` False; without them, the test after
    next): a KxK kernel with 9-16 input and at most 16 output channels is "wide" up to
    ``WIDE_MAX_PIXELS`` output pixels in the call and above the banded GEMM at stride 1, float32 at stride 2
    (XLA:CPU would run its int8 convolution as a generic loop, 5-8x slower), fewer input channels the int8
    convolution (that loop is fast there; in small calls the band: the next test), more than 16
    channels either way YNNPACK's, except over 2-8 input channels (an RGB stem: explicit patches, "im2col", or for
    up to 3 at stride 1 "band"); off the CPU always None."""
    monkeypatch.setattr(conv, "NO_INT8_DOT", False)
    cfg = conv.Config("u8", "u8", "i8", H=32, W=32, Ci=ci, Co=co, Kh=k, Kw=k, pad=(k // 2,) * 4)
    cpu = jax.default_backend() == "cpu"
    last = conv.WIDE_MAX_PIXELS // (cfg.Ho * cfg.Wo)  # the largest batch still "small"
    assert conv.int8_form(cfg, batch=last) == (small if cpu else None)
    assert conv.int8_form(cfg, batch=last + 1) == (large if cpu else None)
    assert conv.int8_form(cfg) == (large if cpu else None)  # batch unknown: taken as large
    if small == "wide" and cpu:  # the band ties or loses at stride 2: float32 above the limit there
        s2 = cfg.replace(stride=(2, 2))
        assert conv.int8_form(s2, batch=conv.WIDE_MAX_PIXELS // (s2.Ho * s2.Wo) + 1) is None


@pytest.mark.parametrize("ci, co, kh, kw, stride, band", [(4, 4, 1, 3, 1, True), (8, 16, 3, 3, 1, True),
                                                      (3, 8, 3, 3, 2, True), (8, 16, 5, 5, 2, True),
                                                      (8, 17, 3, 3, 1, False), (9, 16, 3, 3, 1, False)])
def test_few_channels_take_the_band_in_small_calls_only(ci, co, kh, kw, stride, band):
    """2-8 input and at most 16 output channels (not already a band: 2-3 at stride 1): the banded GEMM up to
    ``BAND_SMALL_MAX_PIXELS`` output pixels in the call, XLA's generic int8 loop ("conv") above; weights prepared
    once (as "band") give the int64 correlation on both sides of the limit. More channels keep their forms."""
    cfg = conv.Config("u8", "u8", "i8", H=16, W=32, Ci=ci, Co=co, Kh=kh, Kw=kw, stride=(stride, stride),
                      pad=(kh // 2, kh // 2, kw // 2, kw // 2), semantics="ideal")
    last = conv.BAND_SMALL_MAX_PIXELS // (cfg.Ho * cfg.Wo)  # the largest batch still "small"
    forms = [conv.int8_form(cfg, batch=b) for b in (1, last, last + 1)]
    if jax.default_backend() != "cpu":
        assert forms == [None] * 3  # the int8 forms are the CPU's
        return
    if not band:
        assert "band" not in forms
        return
    assert forms == ["band", "band", "conv"] and conv.int8_form(cfg) == "conv"
    rng = np.random.default_rng(ci)
    w = _extreme(rng, -128, 127, (co, kh, kw, ci))
    prep = conv.prepare_weights(w, cfg)
    f = jax.jit(lambda a, p: conv.accumulate(a, p, None, cfg, x_type=(8, 0)))
    for b in (last, last + 1):
        x = _extreme(rng, 0, 255, (b, cfg.H, cfg.W, ci))
        np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), prep)), correlation(x, w, cfg))


YNN = ["conv"] + ["im2col"] * 3  # batch 1 (below the limit), 2, 3, unknown


@pytest.mark.parametrize("ci, co, stride, forms", [(16, 17, 1, YNN), (32, 32, 2, YNN), (17, 8, 1, YNN),
                                                   (64, 128, 1, YNN), (16, 16, 1, [None] * 4), (9, 12, 2, [None] * 4)])
def test_without_int8_dot_instructions_convs_take_im2col_or_float32(ci, co, stride, forms, monkeypatch):
    """Without int8 dot instructions (``NO_INT8_DOT``) a KxK conv that XLA:CPU would hand to YNNPACK (more than 16
    channels in or out) is the int8 convolution below ``YNN_IM2COL_MIN_PIXELS`` output pixels in a call of one input
    (``YNN_IM2COL_MIN_PIXELS_BATCHED`` in a call of several) and the im2col int8 GEMM from there,
    one of 9-16 input and at most 16 output channels float32 at any batch; weights prepared once (for "conv" its
    HWIO with the im2col matrix, else float32 HWIO) give the int64 correlation at every batch, on the value path
    (traced input type, and the float32 forms without one) and the packed path (== the raw weights). Fewer
    channels keep their forms; with int8 dot instructions none of these is "im2col"."""
    cfg = conv.Config("u8", "u8", "i8", H=9, W=7, Ci=ci, Co=co, Kh=3, Kw=3, stride=(stride, stride),
                      pad=(1, 1, 1, 1), semantics="ideal")
    monkeypatch.setattr(conv, "NO_INT8_DOT", True)
    monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS", cfg.Ho * cfg.Wo + 1)  # batch 1 below its limit
    monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS_BATCHED", 2 * cfg.Ho * cfg.Wo)  # batch 2 on the other
    got = [conv.int8_form(cfg, batch=b) for b in (1, 2, 3, None)]
    if jax.default_backend() != "cpu":
        assert got == [None] * 4
        return
    assert got == forms
    if forms == YNN:  # each limit applies to its own calls: one input, several
        monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS_BATCHED", 2 * cfg.Ho * cfg.Wo + 1)
        assert conv.int8_form(cfg, batch=2) == "conv" and conv.int8_form(cfg, batch=3) == "im2col"
        monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS", cfg.Ho * cfg.Wo)
        assert conv.int8_form(cfg, batch=1) == "im2col" and conv.int8_form(cfg, batch=2) == "conv"
        monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS", cfg.Ho * cfg.Wo + 1)
        monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS_BATCHED", 2 * cfg.Ho * cfg.Wo)
    assert conv.int8_form(cfg.replace(Ci=8, Co=16), batch=2) != "im2col"  # 2-8 channels in: their own rule
    monkeypatch.setattr(conv, "NO_INT8_DOT", False)
    assert None not in [conv.int8_form(cfg, batch=b) for b in (1, 2)]
    assert "im2col" not in [conv.int8_form(cfg, batch=b) for b in (1, 2, 3, None)]
    monkeypatch.setattr(conv, "NO_INT8_DOT", True)
    rng = np.random.default_rng(ci + co)
    w = _extreme(rng, -128, 127, (co, 3, 3, ci))
    prep = conv.prepare_weights(w, cfg)
    if forms[0] == "conv":
        assert prep.hwio.dtype == np.int8 and prep.gemm.shape == (co, _conv_forms.im2col_width(cfg))
    else:
        assert prep.hwio.dtype == np.float32 and prep.gemm is None
    _exact_at_batches(cfg, w, prep, rng, (1, 2, 3))


def _exact_at_batches(cfg, w, prep, rng, batches):
    """Prepared weights ``prep`` of ``w`` give the int64 correlation at each batch size on the value path (traced
    u8 input type, and without one) and the packed path's bits of the raw packed weights."""
    f = jax.jit(lambda a, p: conv.accumulate(a, p, None, cfg, x_type=(jnp.int32(8), jnp.int32(0))))
    for b in batches:
        x = _extreme(rng, 0, 255, (b, cfg.H, cfg.W, cfg.Ci))
        want = correlation(x, w, cfg)
        np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), prep)), want)
        np.testing.assert_array_equal(np.asarray(conv.accumulate(x, prep, None, cfg)), want)
        lanes = x.reshape(b, -1)
        params = conv.Params(kappa=rng.integers(-50, 50, cfg.Co).astype(np.int32),
                             lam=rng.integers(-2000, 2000, cfg.Co).astype(np.int32), out_mult=3, out_shift=9,
                             bias=None)
        packed = np.asarray(conv.run_lanes(lanes, prep, params, cfg=cfg))
        np.testing.assert_array_equal(packed, np.asarray(conv.run_lanes(lanes, packing.pack(w, cfg.w_type), params,
                                                                        cfg=cfg)))


@pytest.mark.parametrize("ci, co, H, W, stride", [(128, 128, 7, 7, 1), (102, 39, 3, 5, 1), (64, 13, 12, 20, 2)])
def test_without_int8_dot_instructions_deep_inputs_over_few_pixels_take_im2col(ci, co, H, W, stride, monkeypatch):
    """Without int8 dot instructions a deep input (``YNN_IM2COL_DEEP_CHANNELS`` or more) over at most
    ``YNN_IM2COL_DEEP_MAX_PIXELS`` output pixels in the call is the im2col GEMM (DroNet's 7x7 layers at batch 1),
    the int8 convolution again from there up to the batched limit: weights prepared for im2col (HWIO without the
    zero input channels YNNPACK's convolution wants, which it pads in the graph) give the int64 correlation at
    every batch, on the value path and the packed path. Fewer channels keep the convolution."""
    cfg = conv.Config("u8", "u8", "i8", H=H, W=W, Ci=ci, Co=co, Kh=3, Kw=3, stride=(stride, stride),
                      pad=(1, 1, 1, 1), semantics="ideal")
    px = cfg.Ho * cfg.Wo
    monkeypatch.setattr(conv, "NO_INT8_DOT", True)
    monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS", 10**6)
    monkeypatch.setattr(conv, "YNN_IM2COL_MIN_PIXELS_BATCHED", 3 * px)
    monkeypatch.setattr(conv, "YNN_IM2COL_DEEP_MAX_PIXELS", px)  # batch 1 within, 2 above, 3 batched
    got = [conv.int8_form(cfg, batch=b) for b in (1, 2, 3)]
    if jax.default_backend() != "cpu":
        assert got == [None] * 3
        return
    assert got == ["im2col", "conv", "im2col"]
    assert conv.int8_form(cfg.replace(Ci=32), batch=1) == "conv"  # not deep
    rng = np.random.default_rng(ci)
    w = _extreme(rng, -128, 127, (co, 3, 3, ci))
    prep = conv.prepare_weights(w, cfg)
    assert prep.hwio.shape == (3, 3, ci, co) and prep.gemm.shape == (co, _conv_forms.im2col_width(cfg))
    _exact_at_batches(cfg, w, prep, rng, (1, 2, 3))


@pytest.mark.parametrize("stride, batch_over_limit", [(1, 0), (1, 1), (2, 1)])
def test_wide_weights_serve_every_form(stride, batch_over_limit, monkeypatch):
    """Weights prepared once as "wide" (int8, zero filters; at stride 1 with the banded matrix) give the int64
    correlation at the largest "wide" batch and at the next batch up: the band at stride 1, at stride 2 the float32
    form (the HWIO read as float32 without the zero filters). (A CPU with int8 dot instructions: the forms'
    rule there.)"""
    monkeypatch.setattr(conv, "NO_INT8_DOT", False)
    cfg = conv.Config("u8", "u8", "i8", H=32, W=32, Ci=16, Co=16, Kh=3, Kw=3, pad=(1, 1, 1, 1),
                      stride=(stride, stride), semantics="ideal")
    rng = np.random.default_rng(batch_over_limit)
    B = conv.WIDE_MAX_PIXELS // (cfg.Ho * cfg.Wo) + batch_over_limit
    cpu = jax.default_backend() == "cpu"
    want = "wide" if not batch_over_limit else "band" if stride == 1 else None
    assert conv.int8_form(cfg, batch=B) == (want if cpu else None)
    x = _extreme(rng, 0, 255, (B, 32, 32, 16))
    w = _extreme(rng, -128, 127, (16, 3, 3, 16))
    prep = conv.prepare_weights(w, cfg)
    assert (prep.gemm is not None) == (stride == 1 and cpu)
    got = np.asarray(jax.jit(lambda a, p: conv.accumulate(a, p, None, cfg, x_type=(8, 0)))(jnp.asarray(x), prep))
    np.testing.assert_array_equal(got, correlation(x, w, cfg))


@pytest.mark.parametrize("k, s, ci", [(5, 2, 1), (3, 1, 1), (3, 2, 1), (4, 1, 1), (3, 1, 3), (5, 1, 2)])
def test_band_gemm_depths_are_padded_to_a_multiple_of_four(k, s, ci):
    """The banded GEMM's depth Kh * span * Ci is zero-padded to a multiple of ``BAND_K_MULTIPLE`` (zero columns of
    the band, zero pieces of the patches); the band stays exact, also where a block's columns lie past the input's
    right edge (7 columns, blocks of 4 pixels)."""
    cfg = conv.Config("u8", "u8", "i8", H=7, W=7, Ci=ci, Co=8, Kh=k, Kw=k, stride=(s, s), pad=(k // 2,) * 4,
                      semantics="ideal")
    bw, nb, span = _conv_forms.band_geometry(cfg)
    depth = _conv_forms.band_depth(cfg)
    assert depth % _conv_forms.BAND_K_MULTIPLE == 0 and k * span * ci <= depth < k * span * ci + 4
    rng = np.random.default_rng(k * 10 + s)
    x = rng.integers(0, 256, (2, 7, 7, ci)).astype(np.int32)
    w = rng.integers(-128, 128, (8, k, k, ci)).astype(np.int32)
    band = np.asarray(_conv_forms.band_weights(jnp.asarray(w), cfg))
    assert band.shape == (bw * 8, depth) and not band[:, k * span * ci:].any()
    got = jax.jit(lambda a: _conv_forms.int8_band(a, jnp.asarray(w), cfg, 128))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(got), correlation(x, w, cfg))


def test_the_banded_gemm_only_where_it_wastes_few_products():
    """A one-channel KxK layer is the banded GEMM where it multiplies at most ``BAND_MAX_OVERHEAD`` times the
    useful products (DroNet's 5x5 s2 first layer: 2.2), else float32 (a DS-CNN's 10x4 s2 first layer over 5 output
    columns: 4.0); up to 3 channels at stride 1 likewise, else the next rule (im2col for >= 17 outputs)."""
    cpu = jax.default_backend() == "cpu"
    dronet = conv.Config("u8", "u8", "i8", H=200, W=200, Ci=1, Co=32, Kh=5, Kw=5, stride=(2, 2), pad=(2, 2, 2, 2))
    dscnn = conv.Config("u8", "u8", "i8", H=49, W=10, Ci=1, Co=64, Kh=10, Kw=4, stride=(2, 2), pad=(5, 4, 1, 1))
    narrow_rgb = conv.Config("u8", "u8", "i8", H=8, W=5, Ci=3, Co=32, Kh=3, Kw=3, pad=(1, 1, 1, 1))  # 3.2
    def overhead(cfg):
        return _conv_forms.band_overhead(cfg, conv.BAND_RULE_WIDTH)

    assert overhead(dronet) == pytest.approx(2.2) and _conv_forms.band_overhead(dronet, 2) == pytest.approx(1.4)
    assert overhead(dscnn) > conv.BAND_MAX_OVERHEAD >= overhead(dronet)
    assert overhead(narrow_rgb) > conv.BAND_MAX_OVERHEAD
    assert conv.int8_form(dronet, batch=1) == ("band" if cpu else None)
    assert conv.int8_form(dscnn, batch=1) is None
    assert conv.int8_form(narrow_rgb, batch=1) == ("im2col" if cpu else None)


@pytest.mark.parametrize("ci, co, small, large", [(3, 32, "im2col", "im2col"), (2, 24, "im2col", "im2col"),
                                                 (3, 8, "band", "conv"), (8, 17, "im2col", "im2col")])
def test_the_form_rule_at_stride_two(ci, co, small, large):
    """At stride 2 the banded GEMM of up to 3 channels gives way: explicit patches where XLA would take YNNPACK's
    int8 convolution (at least 17 outputs), its generic loop below, except in small calls (the band)."""
    cfg = conv.Config("u8", "u8", "i8", H=32, W=32, Ci=ci, Co=co, Kh=3, Kw=3, stride=(2, 2), pad=(1, 1, 1, 1))
    cpu = jax.default_backend() == "cpu"
    assert conv.int8_form(cfg, batch=1) == (small if cpu else None)
    assert conv.int8_form(cfg) == (large if cpu else None)


def test_bad_weights_are_refused_by_name():
    cfg = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=8, Co=8, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    with pytest.raises(JaxpulpError, match=r"w: shape \(8, 3, 3, 4\).*expected ints of shape \(8, 3, 3, 8\)"):
        conv.prepare_weights(np.zeros((8, 3, 3, 4), np.int32), cfg)
    with pytest.raises(JaxpulpError, match=r"w: values span \[128, 128\], expected int8"):
        conv.prepare_weights(np.full((8, 3, 3, 8), 128), cfg)
    with pytest.raises(JaxpulpError, match="expected ints"):
        conv.prepare_weights(np.zeros((8, 3, 3, 8), np.float32), cfg)
    other = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=8, Co=16, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    prep = conv.prepare_weights(np.zeros((16, 3, 3, 8), np.int32), other)
    params = conv.Params(np.zeros(8, np.int32), np.zeros(8, np.int32), 0, 0, None)
    with pytest.raises(JaxpulpError, match=r"prepared weights \(hwio, gemm, total\) \(\(\(3, 3, 8, 16\)"):
        conv.run_lanes(np.zeros((1, 4 * 4 * 8), np.int32), prep, params, cfg=cfg)
    # a 1x1 layout (the int8 GEMM's (Co, Ci) on the CPU) is refused by a 3x3 configuration, and the reverse
    one = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=8, Co=16, Kh=1, Kw=1)
    with pytest.raises(JaxpulpError, match="conv.prepare_weights for this configuration"):
        conv.run_lanes(np.zeros((1, 4 * 4 * 8), np.int32), conv.prepare_weights(np.zeros((16, 1, 1, 8), int), one),
                       params, cfg=other)
    with pytest.raises(JaxpulpError, match="conv.prepare_weights for this configuration"):
        conv.run_lanes(np.zeros((1, 4 * 4 * 8), np.int32), prep, params, cfg=one)
    # "wide" int8 HWIO (zero filters up to WIDE_CO) and the plain int8 HWIO are not each other's layout
    w16 = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=16, Co=16, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    if conv.int8_form(w16, batch=1) == "wide":
        plain = conv.Weights(np.zeros((3, 3, 16, 16), np.int8), np.zeros(16, np.int32))
        params16 = conv.Params(np.zeros(16, np.int32), np.zeros(16, np.int32), 0, 0, None)
        with pytest.raises(JaxpulpError, match=r"expected \(\(\(3, 3, 16, 24\)"):
            conv.run_lanes(np.zeros((1, 4 * 4 * 16), np.int32), plain, params16, cfg=w16)
    # the im2col GEMM's layout: the int8 HWIO alone is refused
    stem = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=24, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    if conv.int8_form(stem, batch=1) == "im2col":
        params24 = conv.Params(np.zeros(24, np.int32), np.zeros(24, np.int32), 0, 0, None)
        hwio_only = conv.Weights(np.zeros((3, 3, 4, 24), np.int8), np.zeros(24, np.int32))
        with pytest.raises(JaxpulpError, match=r"expected \(\(\(3, 3, 4, 24\).*\(\(24, 64\)"):
            conv.run_lanes(np.zeros((1, 4 * 4 * 4), np.int32), hwio_only, params24, cfg=stem)
    # one input channel (the banded GEMM on the CPU): a band of 2- or 4-pixel blocks (``BAND_WIDTH``) for a
    # 1-pixel-wide output, or the int8 HWIO alone, is refused
    narrow = conv.Config("u8", "u8", "i8", H=4, W=1, Ci=1, Co=8, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    wide = conv.Config("u8", "u8", "i8", H=4, W=16, Ci=1, Co=8, Kh=3, Kw=3, pad=(1, 1, 1, 1))
    band_wide = conv.prepare_weights(np.zeros((8, 3, 3, 1), np.int32), wide)
    lanes = np.zeros((1, 4 * 1), np.int32)
    assert conv.int8_form(narrow) == ("band" if jax.default_backend() == "cpu" else None)
    if conv.int8_form(narrow) == "band":  # elsewhere both layouts are the same float32 HWIO
        with pytest.raises(JaxpulpError, match="conv.prepare_weights for this configuration"):
            conv.run_lanes(lanes, band_wide, params, cfg=narrow)
        with pytest.raises(JaxpulpError, match="conv.prepare_weights for this configuration"):
            conv.run_lanes(lanes, conv.Weights(band_wide.hwio, band_wide.total), params, cfg=narrow)


# ------------------------------------------------------------------------------- the pointwise kernel's weights


@PROPERTY
@given(co_ci=st.sampled_from([(4, 8), (16, 8), (12, 16), (32, 24)]),
       types=st.sampled_from([("u8", "u8", "i8"), ("i8", "i4", "i8"), ("u4", "u8", "i4"), ("i2", "i8", "i2")]),
       bias=st.booleans(), cores=st.sampled_from([1, 8]), seed=st.integers(0, 2**31))
def test_pointwise_prepared_weights_give_the_image_bits(co_ci, types, bias, cores, seed):
    """``pointwise.prepare_weights`` (the int8 GEMM's (Co, Ci) values, unpacked once) == the weight image on
    ``run_lanes`` == the reference twin, library semantics with leftover pixels (odd widths) and bias bytes."""
    co, ci = co_ci
    cfg = pointwise.Config(*types, H=3, W=5, Ci=ci, Co=co, relu=1, bn=1, bias=bias)
    cluster = Cluster(num_cores=cores)
    try:
        pointwise.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(seed)
    x = _extreme(rng, cfg.in_type.lo, cfg.in_type.hi, (2, cfg.H, cfg.W, ci))
    w = _extreme(rng, cfg.w_type.lo, cfg.w_type.hi, (co, 1, 1, ci))
    params = conv.Params(kappa=rng.integers(-50, 50, co).astype(np.int32),
                         lam=rng.integers(-2000, 2000, co).astype(np.int32), out_mult=3, out_shift=9,
                         bias=rng.integers(-3000, 3000, co).astype(np.int32) if bias else None)
    image = packing.pack(w, cfg.w_type)
    prep = pointwise.prepare_weights(packing.unpack(image, cfg.w_type, w.size).reshape(w.shape), cfg)
    lanes = x.reshape(2, -1)
    got = np.asarray(jax.jit(lambda a, p: pointwise.run_lanes(a, p, params, cfg=cfg, cluster=cluster))(lanes, prep))
    np.testing.assert_array_equal(got, np.asarray(pointwise.run_lanes(lanes, image, params, cfg=cfg, cluster=cluster)))
    twin = np.stack([pointwise.reference(xi, w, params, cfg, cluster) for xi in x])
    np.testing.assert_array_equal(got, twin.reshape(got.shape))


def test_pointwise_bad_prepared_weights_are_refused_by_name():
    cfg = pointwise.Config("u8", "u8", "i8", H=2, W=2, Ci=16, Co=8)
    with pytest.raises(JaxpulpError, match=r"w: values span \[-129, -129\], expected int8"):
        pointwise.prepare_weights(np.full((8, 1, 1, 16), -129), cfg)
    other = pointwise.prepare_weights(np.zeros((8, 1, 1, 8), int), cfg.replace(Ci=8))
    params = conv.Params(np.zeros(8, np.int32), np.zeros(8, np.int32), 0, 0, None)
    with pytest.raises(JaxpulpError, match=r"w_words: prepared weights .*pointwise.prepare_weights"):
        pointwise.run_lanes(np.zeros((1, 2 * 2 * 16), np.int32), other, params, cfg=cfg)
