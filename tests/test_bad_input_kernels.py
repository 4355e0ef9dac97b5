"""Bad input to the kernel layer (``jaxpulp.kernels``, ``jaxpulp.packing``, ``jaxpulp.qtypes``) ends in a
``JaxpulpError`` naming the argument, the value and what was expected; nothing is silently truncated or wrapped."""
import jax
import numpy as np
import pytest

from jaxpulp import JaxpulpError, packing
from jaxpulp.kernels import add, conv, depthwise as dw, linear as li, pointwise as pw, pool
from jaxpulp.kernels.config import ConvConfig, LinearConfig
from jaxpulp.qtypes import QType

CFG = conv.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4, pad=(1, 1, 1, 1))
RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (4, 4, 4))
W = RNG.integers(-128, 128, (4, 3, 3, 4))
P = conv.Params(kappa=np.full(4, 3, np.int32), lam=np.zeros(4, np.int32), out_shift=9)
XW, WW = packing.pack_hwc(X, "u8"), packing.pack(W, "i8")

PW_CFG = pw.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4)
PW_WW = packing.pack(RNG.integers(-128, 128, (4, 1, 1, 4)), "i8")
DW_CFG = dw.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4, pad=(1, 1, 1, 1))
DW_X, DW_W = RNG.integers(0, 256, (4, 4, 4)), RNG.integers(-128, 128, (4, 3, 3))
DW_P = dw.Params(np.ones(4, np.int32), np.zeros(4, np.int32), 0, 3)
LI_CFG = li.Config("u8", "u8", "i8", N=16, M=4)
LI_X, LI_W = RNG.integers(0, 256, 16), RNG.integers(-128, 128, (4, 16))
LI_P = li.Params(np.ones(4, np.int32), np.zeros(4, np.int32), 0, 3)
MP_CFG = pool.MaxPoolConfig("u8", "u8", H=4, W=4, C=4)
AP_CFG = pool.AvgPoolConfig("u8", "u8", H=4, W=4, C=4)
ADD_CFG = add.Config("u8", "u8", "u8", H=2, W=2, C=4)


def _runs():
    """(name, run(params)) of the four requantising families' packed paths."""
    dxw, dww = dw.pack_inputs(DW_X, DW_W, DW_CFG)
    return [
        ("conv", lambda p: conv.run(XW, WW, p, cfg=CFG)),
        ("pointwise", lambda p: pw.run(XW, PW_WW, p, cfg=PW_CFG)),
        ("depthwise", lambda p: dw.run(dxw, dww, p._replace(kappa=DW_P.kappa, lam=DW_P.lam), cfg=DW_CFG)),
        ("linear", lambda p: li.run(packing.pack(LI_X, "u8"), packing.pack(LI_W, "i8"),
                                    li.Params(LI_P.kappa, LI_P.lam, p.out_mult, p.out_shift), cfg=LI_CFG)),
    ]


# ------------------------------------------------------------------------------ 1. out_mult / out_shift


@pytest.mark.parametrize("family", ["conv", "pointwise", "depthwise", "linear"])
@pytest.mark.parametrize("field, value, match", [
    ("out_shift", 9.7, r"params\.out_shift=9\.7: expected an integer scalar"),
    ("out_shift", -1, r"params\.out_shift=-1: expected 0 <= value <= 65535"),
    ("out_shift", 1 << 40, r"params\.out_shift=1099511627776: expected 0 <= value <= 65535"),
    ("out_shift", np.array([9, 9]), r"params\.out_shift=array\(\[9, 9\]\): expected an integer scalar"),
    ("out_shift", None, r"params\.out_shift=None: expected an integer scalar"),
    ("out_shift", "abc", r"params\.out_shift='abc': expected an integer scalar"),
    ("out_shift", True, r"params\.out_shift=True: expected an integer scalar"),
    ("out_mult", 65539, r"params\.out_mult=65539: expected -32768 <= value <= 65535"),
    ("out_mult", np.int64(2**32 + 9), r"params\.out_mult=4294967305: expected -32768 <= value <= 65535"),
])
def test_requant_scalars_are_range_and_type_checked(family, field, value, match):
    run = dict(_runs())[family]
    with pytest.raises(JaxpulpError, match=match):
        run(P._replace(**{field: value}))


def test_valid_requant_scalars_keep_their_bits():
    # the uint16 range is the C argument's: out_shift 41 is shift 9 (mod 32, semantics.md §4.1), out_mult 40000
    # the int16 -25536, which may also be given as that int16
    base = np.asarray(conv.run(XW, WW, P, cfg=CFG))
    np.testing.assert_array_equal(np.asarray(conv.run(XW, WW, P._replace(out_shift=41), cfg=CFG)), base)
    np.testing.assert_array_equal(np.asarray(conv.run(XW, WW, P._replace(out_shift=np.int64(9)), cfg=CFG)), base)
    mult = CFG.replace(bn=0)
    a = np.asarray(conv.run(XW, WW, P._replace(out_mult=40000), cfg=mult))
    np.testing.assert_array_equal(np.asarray(conv.run(XW, WW, P._replace(out_mult=-25536), cfg=mult)), a)


def test_oversized_kappa_is_refused():
    with pytest.raises(JaxpulpError, match=r"params\.kappa: value 1180591620717411303424: expected int32"):
        conv.run(XW, WW, P._replace(kappa=[2**70] * 4), cfg=CFG)


def test_traced_requant_scalars_still_run():
    f = jax.jit(lambda s: conv.run(XW, WW, P._replace(out_shift=s), cfg=CFG))
    np.testing.assert_array_equal(np.asarray(f(np.int32(9))), np.asarray(conv.run(XW, WW, P, cfg=CFG)))


# ------------------------------------------------------------------------------ 2. params containers


def test_params_dict_with_a_wrong_key_names_the_fields():
    with pytest.raises(JaxpulpError, match=r"params: dict with unknown field\(s\) \['lamb'\].*kappa, lam, out_mult"):
        conv.run(XW, WW, dict(kappa=P.kappa, lamb=P.lam), cfg=CFG)
    with pytest.raises(JaxpulpError, match=r"params: dict with missing field\(s\) \['lam'\]"):
        dw.run(*dw.pack_inputs(DW_X, DW_W, DW_CFG), dict(kappa=DW_P.kappa), cfg=DW_CFG)


def test_params_sequence_of_the_wrong_length_names_the_fields():
    with pytest.raises(JaxpulpError, match=r"params: a tuple of length 1, expected 2 to 5 values.*kappa, lam"):
        conv.run(XW, WW, (P.kappa,), cfg=CFG)
    with pytest.raises(JaxpulpError, match=r"params: a list of length 4, expected 0 to 3 values.*lam, out_shift"):
        pool.run(packing.pack_hwc(X, "u8"), [1, 2, 3, 4], cfg=AP_CFG)
    with pytest.raises(JaxpulpError, match=r"params: a str, expected a AvgPoolParams"):
        pool.run(packing.pack_hwc(X, "u8"), "abc", cfg=AP_CFG)


def test_params_dict_with_the_right_keys_runs():
    got = conv.run(XW, WW, P._asdict(), cfg=CFG)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(conv.run(XW, WW, P, cfg=CFG)))


# ------------------------------------------------------------------------------ 3. exact packed buffers


def test_longer_input_image_is_refused():
    x8 = packing.pack_hwc(RNG.integers(0, 256, (4, 4, 8)), "u8")
    with pytest.raises(JaxpulpError, match=r"x_words: shape \(32,\), expected \(batch >= 1, 16\) uint32 words"):
        conv.run(x8, WW, P, cfg=CFG)
    with pytest.raises(JaxpulpError, match=r"x_words: shape \(32,\), expected \(\[batch,\] 16\)"):
        pool.run(x8, cfg=MP_CFG)


def test_longer_weight_image_is_refused():
    with pytest.raises(JaxpulpError, match=r"w_words: shape \(72,\), expected \(36,\) uint32 words"):
        conv.run(XW, np.concatenate([WW, WW]), P, cfg=CFG)
    with pytest.raises(JaxpulpError, match=r"w_words: shape \(8,\), expected \(4,\)"):
        pw.run_lanes(np.zeros((1, 64), np.int32), np.concatenate([PW_WW, PW_WW]), P, cfg=PW_CFG)


def test_depthwise_pack_inputs_checks_shapes():
    with pytest.raises(JaxpulpError, match=r"x: shape \(4, 4, 8\), expected \(\[batch,\] 4, 4, 4\)"):
        dw.pack_inputs(RNG.integers(0, 256, (4, 4, 8)), DW_W, DW_CFG)
    with pytest.raises(JaxpulpError, match=r"w: shape \(4, 5, 5\), expected \(4, 3, 3\)"):
        dw.pack_inputs(DW_X, RNG.integers(-128, 128, (4, 5, 5)), DW_CFG)


# ------------------------------------------------------------------------------ 4. lane entries


def _lane_calls(x):
    """(family, call) of every lane entry on lanes ``x`` (one 64-element image of the 4x4x4 configurations)."""
    return [
        ("conv", lambda: conv.run_lanes(x, WW, P, cfg=CFG)),
        ("pointwise", lambda: pw.run_lanes(x, PW_WW, P, cfg=PW_CFG)),
        ("depthwise", lambda: dw.run_lanes_hwc(x, dw.pack_inputs(DW_X, DW_W, DW_CFG)[1], DW_P, cfg=DW_CFG)),
        ("maxpool", lambda: pool.run_lanes(x, None, cfg=MP_CFG)),
        ("avgpool", lambda: pool.run_lanes(x, None, cfg=AP_CFG)),
        ("add", lambda: add.run_lanes(x, x, add.Params(), cfg=ADD_CFG.replace(H=4, W=4))),
    ]


@pytest.mark.parametrize("family", ["conv", "pointwise", "depthwise", "maxpool", "avgpool", "add"])
def test_lanes_of_the_wrong_length_are_refused(family):
    call = dict(_lane_calls(np.zeros((1, 128), np.int32)))[family]
    with pytest.raises(JaxpulpError, match=r"x1?: shape \(1, 128\), expected \(batch, 64\) lanes"):
        call()
    call = dict(_lane_calls(np.zeros((1, 60), np.int32)))[family]
    with pytest.raises(JaxpulpError, match=r"x1?: shape \(1, 60\), expected \(batch, 64\) lanes"):
        call()


@pytest.mark.parametrize("family", ["conv", "pointwise", "depthwise", "maxpool", "avgpool", "add"])
def test_lanes_values_are_checked(family):
    with pytest.raises(JaxpulpError, match=r"x1?: value 300 out of range for u8: expected \[0, 255\]"):
        dict(_lane_calls(np.full((1, 64), 300)))[family]()
    with pytest.raises(JaxpulpError, match=r"x1?: dtype float64, expected an integer array of u8 values"):
        dict(_lane_calls(np.full((1, 64), 0.5)))[family]()


def test_linear_lanes_are_checked():
    ww = packing.pack(LI_W, "i8")
    with pytest.raises(JaxpulpError, match=r"x: shape \(1, 32\), expected \(batch, 16\) lanes"):
        li.run_lanes(np.zeros((1, 32), np.int32), ww, LI_P, cfg=LI_CFG)
    with pytest.raises(JaxpulpError, match=r"x: shape \(16,\), expected \(batch, 16\) lanes"):
        li.run_lanes(np.zeros(16, np.int32), ww, LI_P, cfg=LI_CFG)
    with pytest.raises(JaxpulpError, match=r"x: value -1 out of range for u8"):
        li.run_lanes(np.full((1, 16), -1), ww, LI_P, cfg=LI_CFG)


def test_valid_lanes_equal_the_packed_run_and_run_under_jit():
    lanes = packing.unpack(XW, "u8", 64)[None]
    got = np.asarray(conv.run_lanes(lanes, WW, P, cfg=CFG))
    want = packing.unpack_hwc(np.asarray(conv.run(XW, WW, P, cfg=CFG)), (4, 4, 4), "u8")
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda v: conv.run_lanes(v, WW, P, cfg=CFG))(lanes)), got)
    # a producer's (batch, H, W, C) lanes are accepted as they are
    np.testing.assert_array_equal(np.asarray(conv.run_lanes(lanes.reshape(1, 4, 4, 4), WW, P, cfg=CFG)), got)


def test_unpacked_depthwise_weights_are_checked():
    x = np.zeros((1, 64), np.int32)
    with pytest.raises(JaxpulpError, match=r"w_words: value 999 out of range for i8"):
        dw.run_lanes_hwc(x, np.full((4, 3, 3), 999), DW_P, cfg=DW_CFG, unpacked=True)
    with pytest.raises(JaxpulpError, match=r"w_words: dtype float64, expected an integer array of i8"):
        dw.run_lanes_hwc(x, np.full((4, 3, 3), 0.7), DW_P, cfg=DW_CFG, unpacked=True)


# ------------------------------------------------------------------------------ 5. reference twins


def test_pool_reference_checks_its_input():
    with pytest.raises(JaxpulpError, match=r"x: value 325 out of range for u8: expected \[0, 255\]"):
        pool.reference(np.full((4, 4, 4), 325), None, MP_CFG)
    with pytest.raises(JaxpulpError, match=r"x: dtype float64, expected an integer array of u8"):
        pool.reference(np.full((4, 4, 4), 0.5), None, AP_CFG)
    with pytest.raises(JaxpulpError, match=r"x: shape \(4, 4, 8\), expected \(4, 4, 4\)"):
        pool.reference(np.zeros((4, 4, 8), int), None, MP_CFG)
    with pytest.raises(JaxpulpError, match=r"params\.out_shift=-2: expected 0 <= value <= 65535"):
        pool.reference(np.zeros((4, 4, 4), int), pool.AvgPoolParams(out_shift=-2), AP_CFG)


def test_add_reference_checks_its_inputs():
    ok = np.zeros((2, 2, 4), int)
    with pytest.raises(JaxpulpError, match=r"x1: dtype float64, expected an integer array of u8"):
        add.reference(np.full((2, 2, 4), 0.5), ok, add.Params(), ADD_CFG)
    with pytest.raises(JaxpulpError, match=r"x2: value 256 out of range for u8"):
        add.reference(ok, np.full((2, 2, 4), 256), add.Params(), ADD_CFG)
    with pytest.raises(JaxpulpError, match=r"x2: shape \(16,\), expected \(2, 2, 4\)"):
        add.reference(ok, np.zeros(16, int), add.Params(), ADD_CFG)


def test_linear_reference_checks_its_inputs():
    with pytest.raises(JaxpulpError, match=r"x, w: shapes \(1, 16\), \(4, 16\), expected \(16,\) and \(4, 16\)"):
        li.reference(LI_X[None], LI_W, LI_P, LI_CFG)
    with pytest.raises(JaxpulpError, match=r"x, w: shapes \(16,\), \(4, 8\), expected \(16,\) and \(4, 16\)"):
        li.reference(LI_X, LI_W[:, :8], LI_P, LI_CFG)
    with pytest.raises(JaxpulpError, match=r"x: dtype float64, expected an integer array of u8"):
        li.reference(LI_X + 0.5, LI_W, LI_P, LI_CFG)
    with pytest.raises(JaxpulpError, match=r"w: value 200 out of range for i8"):
        li.reference(LI_X, np.full((4, 16), 200), LI_P, LI_CFG)
    with pytest.raises(JaxpulpError, match=r"params\.out_shift=9\.5: expected an integer scalar"):
        li.reference(LI_X, LI_W, LI_P._replace(out_shift=9.5), LI_CFG)


def test_references_accept_their_valid_inputs():
    assert pool.reference(np.full((4, 4, 4), 200), None, MP_CFG).out.max() == 200
    np.testing.assert_array_equal(li.reference(LI_X, LI_W, LI_P, LI_CFG),
                                  np.asarray(li.run_values(LI_X, LI_W, LI_P, cfg=LI_CFG)))


# ------------------------------------------------------------------------------ 6. values entries


def test_pool_values_checks_shape_dtype_and_types():
    with pytest.raises(JaxpulpError, match=r"x: shape \(4, 4, 4\), expected \(batch, 4, 4, 4\)"):
        pool.values(np.zeros((4, 4, 4), int), None, cfg=AP_CFG)
    with pytest.raises(JaxpulpError, match=r"x: dtype float64, expected an integer array of u8"):
        pool.values(np.full((1, 4, 4, 4), 0.5), None, cfg=MP_CFG)
    with pytest.raises(JaxpulpError, match=r"in_type='u3': expected None or a \(bits, signed\) pair"):
        pool.values(np.zeros((1, 4, 4, 4), int), None, cfg=AP_CFG, in_type="u3")
    with pytest.raises(JaxpulpError, match=r"out_type=\(3, 0\): expected a \(bits, signed\) pair with bits in"):
        pool.values(np.zeros((1, 4, 4, 4), int), None, cfg=AP_CFG, out_type=(3, 0))
    with pytest.raises(JaxpulpError, match=r"x: value 20 out of range for u4"):
        pool.values(np.full((1, 4, 4, 4), 20), None, cfg=AP_CFG, in_type=(4, 0))


def test_add_values_checks_dtype_and_types():
    ok = np.zeros((2, 2, 4), int)
    with pytest.raises(JaxpulpError, match=r"x1: dtype float64, expected an integer array of u8"):
        add.values(np.full((2, 2, 4), 0.5), ok, add.Params(), cfg=ADD_CFG)
    with pytest.raises(JaxpulpError, match=r"out_type='u3': expected None or a \(bits, signed\) pair"):
        add.values(ok, ok, add.Params(), cfg=ADD_CFG, out_type="u3")
    with pytest.raises(JaxpulpError, match=r"in2_type=\(8, 2\): expected a \(bits, signed\) pair with signed"):
        add.values(ok, ok, add.Params(), cfg=ADD_CFG, in2_type=(8, 2))
    with pytest.raises(JaxpulpError, match=r"params\.out_shift=-1: expected 0 <= value <= 65535"):
        add.values(ok, ok, add.Params(out_shift=-1), cfg=ADD_CFG)


def test_values_entries_still_trace():
    x = np.ones((1, 4, 4, 4), np.int32)
    f = jax.jit(lambda v, t: pool.values(v, None, cfg=AP_CFG, in_type=t))
    np.testing.assert_array_equal(np.asarray(f(x, (np.int32(8), np.int32(0)))),
                                  np.asarray(pool.values(x, None, cfg=AP_CFG)))


# ------------------------------------------------------------------------------ 7. prepared weights


def test_linear_prepare_weights_checks_the_configured_type():
    cfg = LI_CFG.replace(w_type="i2")
    with pytest.raises(JaxpulpError, match=r"w: values span \[-126, 121\], expected i2 \(cfg\.w_type\) weights "
                                           r"\[-2, 1\]"):
        li.prepare_weights(np.where(np.eye(4, 16) > 0, -126, 121), cfg)
    li.prepare_weights(np.full((4, 16), -2), cfg)


# ------------------------------------------------------------------------------ 8. configurations and types


@pytest.mark.parametrize("kw, match", [
    (dict(bias="no"), r"bias='no': expected a bool"),
    (dict(stride=1), r"stride=1: expected \(y, x\), two ints >= 1"),
    (dict(pad=1), r"pad=1: expected \(top, bottom, left, right\), four ints >= 0"),
    (dict(pad=None), r"pad=None: expected \(top, bottom, left, right\)"),
    (dict(stride=(True, True)), r"stride=\(True, True\): expected \(y, x\)"),
    (dict(H=4.0), r"H=4\.0: expected an int >= 1"),
    (dict(H=True), r"H=True: expected an int >= 1"),
])
def test_config_fields_are_checked(kw, match):
    with pytest.raises(JaxpulpError, match=match):
        ConvConfig("u8", "u8", "i8", **{**dict(H=4, W=4, Ci=4, Co=4), **kw})


def test_config_accepts_numpy_integers_as_ints():
    cfg = ConvConfig("u8", "u8", "i8", H=np.int64(4), W=np.int32(4), Ci=4, Co=4, stride=(np.int64(1), 1),
                     pad=(np.int8(1),) * 4)
    assert cfg == CFG and type(cfg.H) is int and type(cfg.pad[0]) is int and hash(cfg) == hash(CFG)
    assert LinearConfig("u8", "u8", "i8", N=np.int64(16), M=4) == LI_CFG
    assert ConvConfig("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4, bias=np.bool_(True)).bias is True


def test_qtype_fields_and_strings_are_checked():
    with pytest.raises(JaxpulpError, match=r"bits=8\.0: expected one of 2, 4, 8"):
        QType(8.0, False)
    with pytest.raises(JaxpulpError, match=r"signed='yes': expected a bool"):
        QType(8, "yes")
    with pytest.raises(JaxpulpError, match=r"type='u²': expected a type string"):
        QType.parse("u²")
    with pytest.raises(JaxpulpError, match=r"type='u٨': expected a type string"):
        QType.parse("u٨")
    assert QType(np.int64(4), np.bool_(True)) == QType.parse("i4") and QType(np.int64(4), True).name == "i4"


# ------------------------------------------------------------------------------ 9. packing


def test_unpack_hwc_shape_is_checked():
    for shape in [(2.5, 2, 4), (-1, 2, 4), None, "abc", (2, 2)]:
        with pytest.raises(JaxpulpError, match=r"shape=.*: expected \(H, W, C\), three ints >= 0"):
            packing.unpack_hwc(XW, shape, "u8")


@pytest.mark.parametrize("args, match", [
    ((2.7, 8), r"count=2\.7: expected an int >= 0"),
    ((-5, 8), r"count=-5: expected an int >= 0"),
    (("a", 8), r"count='a': expected an int >= 0"),
    ((5, 3), r"bits=3: expected 2, 4, 8 or 32"),
])
def test_n_words_arguments_are_checked(args, match):
    with pytest.raises(JaxpulpError, match=match):
        packing.n_words(*args)


def test_bytes_to_words_refuses_a_scalar():
    with pytest.raises(JaxpulpError, match=r"data: shape \(\), expected uint8 bytes"):
        packing.bytes_to_words(np.uint8(3))
    assert packing.n_words(np.int64(5), 8) == 2


# ------------------------------------------------------------------------------ 10. configuration classes


def test_a_cfg_of_another_class_is_refused_by_name():
    with pytest.raises(JaxpulpError, match=r"cfg='u8': a str, expected a ConvConfig"):
        conv.run(XW, WW, P, cfg="u8")
    with pytest.raises(JaxpulpError, match=r"cfg='x': a str, expected a ConvConfig"):
        conv.check("x")
    with pytest.raises(JaxpulpError, match=r"cfg='x': a str, expected a ConvConfig"):
        conv.run_values(X, W, P, cfg="x")
    with pytest.raises(JaxpulpError, match=r"cfg=.*a LinearConfig, expected a DepthwiseConfig"):
        dw.check(LI_CFG)
    with pytest.raises(JaxpulpError, match=r"cfg=.*a ConvConfig, expected a LinearConfig"):
        li.run_values(LI_X, LI_W, LI_P, cfg=CFG)
    with pytest.raises(JaxpulpError, match=r"cfg='u8': a str, expected a ConvConfig"):
        pw.run(XW, PW_WW, P, cfg="u8")
    with pytest.raises(JaxpulpError, match=r"cfg='u8': expected an AddConfig"):
        add.run_values(X, X, add.Params(), cfg="u8")
