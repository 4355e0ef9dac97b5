"""Pointwise conformance: every golden case through the packed path, the value path and the numpy twin; the
modelled quirks (§4.4, §7), the refusal rules, the static path, batching, compile caching and bad inputs."""
import functools

import jax
import numpy as np
import pytest
from golden_util import assert_equal_defined, family, report

from jaxpulp import JaxpulpError, UnsupportedConfig, packing, testing
from jaxpulp.cluster import split
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _golden, conv, pointwise

CASES, ARRAYS = family("pointwise")

# Golden cases whose `defined` mask is wrong: a leftover pixel with sub-byte input reads bytes past the input
# image (§7.1) and some output marked defined depends on them (the generator's guard-memory probes happened
# not to change it). test_golden_mislabels_depend_on_the_memory_after_the_input proves it for each one.
MISLABELLED = {cid for fam, cid in testing.KNOWN_GOLDEN_MISLABELS if fam == "pointwise"}


def _try(meta):
    try:
        return _golden.pointwise.from_golden(meta, ARRAYS[meta["id"]]), None
    except UnsupportedConfig as e:
        return None, e


@functools.cache
def _accepted():
    """(call, arrays) of every golden case from_golden accepts."""
    out = []
    for meta in CASES:
        call, _ = _try(meta)
        if call is not None:
            out.append((call, ARRAYS[meta["id"]]))
    return tuple(out)


@functools.cache
def _packed_outputs():
    return _golden.pointwise.run_golden_batch([c for c, _ in _accepted()])


def _unpack(out, cfg):
    return packing.unpack(np.asarray(out), cfg.out_type, cfg.Ho * cfg.Wo * cfg.Co).reshape(cfg.Ho, cfg.Wo, cfg.Co)


def _quirks(cfg, cluster):
    """Which modelled library quirks touch some output of this configuration."""
    ranges = [split.conv_split(c, cfg.Ho, cfg.Wo, cluster.num_cores) for c in range(cluster.num_cores)]
    left = any(r.leftover and r.rows for r in ranges)
    pairs = any(r.pairs_per_row and r.rows for r in ranges)
    q = set()
    if cfg.out_type.signed and cfg.relu == 0 and pairs and cfg.Co >= 4:
        q.add("shift-clip-block")  # §4.4
    if left and cfg.in_type.signed and cfg.in_type.bits == 8:
        q.add("signed-leftover-sdotusp")  # §7.2, §7.5
    if left and cfg.in_type.bits < 8:
        q.add("subbyte-leftover-bytes")  # §7.1
    if left and cfg.bias:
        q.add("leftover-int8-bias")  # §7.3
    return q


# ------------------------------------------------------------------------------------------- golden cases


def test_packed_path_matches_every_golden_case():
    results = testing.run_cases(CASES, ARRAYS)
    failures = [f"{r.id} {r.kernel}: {r.message}" for r in results if not r.passed and r.id not in MISLABELLED]
    report(failures, len(results), "pointwise packed path")
    for r in results:
        if r.id in MISLABELLED:  # refused (the output depends on memory past the input), never run wrong
            assert r.disputed and not r.passed and r.refused.startswith("[pointwise-leftover-overread]"), r
    assert sum(r.refused is None for r in results) > 350


def test_check_refuses_exactly_the_undefined_cases():
    wrong, rules = [], set()
    for meta in CASES:
        _, err = _try(meta)
        if err is not None:
            rules.add(err.rule)
        expected = testing.case_should_be_refused(meta) or meta["id"] in MISLABELLED
        if (err is not None) != expected:
            wrong.append(f"{meta['id']} {meta['kernel']} refused={err} all_defined={meta['all_defined']} "
                         f"guard_written={meta['guard_written']}")
    report(wrong, len(CASES), "pointwise check()")
    # the data exercises the config rules of check() and the data rule of check_inputs()
    assert rules == {"pointwise-output-skip", "pointwise-bias-drift", "pointwise-leftover-overread"}


def test_golden_mislabels_depend_on_the_memory_after_the_input():
    for meta in CASES:
        if meta["id"] not in MISLABELLED:
            continue
        a = ARRAYS[meta["id"]]
        assert meta["all_defined"] and not meta["guard_written"]
        cfg, cluster = _golden.pointwise.config_from_golden(meta), _golden.cluster_of(meta)
        params = _golden.pointwise.params_from_golden(meta, a)
        n_in = cfg.H * cfg.W * cfg.Ci * cfg.in_type.bits // 8
        extra = cfg.Ci - n_in  # the single leftover pixel (0, 0) reads Ci bytes
        assert (cfg.H, cfg.W) == (1, 1) and extra > 0
        # zero-filled memory after the input gives the stored output ...
        zero = pointwise.reference(a["x"], a["w"], params, cfg, cluster, guard=np.zeros(extra, np.uint8))
        np.testing.assert_array_equal(zero, a["out"])
        # ... but another content changes an output the vectors call defined
        w_oob = a["w"].reshape(cfg.Co, -1)[:, n_in:]
        changed = False
        for c in range(cfg.Co):
            for sign in (1, -1):
                guard = np.where(sign * w_oob[c] > 0, 255, 0).astype(np.uint8)
                got = pointwise.reference(a["x"], a["w"], params, cfg, cluster, guard=guard)
                changed |= bool((got != a["out"]).any())
        assert changed, meta["id"]


def test_reference_twin_matches_every_defined_case():
    failures = []
    for call, a in _accepted():
        got = pointwise.reference(a["x"], a["w"], call.args[2], call.cfg, call.cluster)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(CASES), "pointwise reference twin")


def test_in_bounds_garbage_reads_match_the_defined_elements_of_refused_cases():
    # §7.1: where a sub-byte leftover pixel's read stays inside the input image the library result is defined;
    # the refused over-read cases keep those elements defined. Both models, zero memory after the input.
    calls, arrays, twins = [], [], []
    for meta in CASES:
        _, err = _try(meta)
        if err is None or err.rule != "pointwise-leftover-overread":
            continue
        a = ARRAYS[meta["id"]]
        cfg, cluster = _golden.pointwise.config_from_golden(meta), _golden.cluster_of(meta)
        params = _golden.pointwise.params_from_golden(meta, a)
        twins.append(pointwise.reference(a["x"], a["w"], params, cfg, cluster, guard=np.zeros(4096, np.uint8)))
        calls.append(_golden.GoldenCall(meta, cfg, cluster, (packing.pack_hwc(a["x"], cfg.in_type),
                                                             packing.pack(a["w"], cfg.w_type), params)))
        arrays.append(a)
    assert len(calls) > 60 and sum(int(a["defined"].sum()) for a in arrays) > 1000
    failures = []
    for c, got, twin, a in zip(calls, _golden.pointwise.run_golden_batch(calls), twins, arrays, strict=True):
        for what, v in (("packed", got), ("twin", twin)):
            try:
                assert_equal_defined(v, a["out"], a["defined"], f"{c.meta['id']} {what}")
            except AssertionError as e:
                failures.append(str(e))
    report(failures, len(calls), "pointwise in-bounds leftover reads")


def test_value_path_equals_packed_path_where_no_quirk_applies():
    pairs = [(c, a, p) for (c, a), p in zip(_accepted(), _packed_outputs(), strict=True) if c.meta["matches_ideal"]]
    assert len(pairs) > 250
    values = _golden.pointwise.run_values_golden_batch([c for c, _, _ in pairs], [a for _, a, _ in pairs])
    failures = [f"{c.meta['id']}: " + testing.first_mismatches(v, p, np.ones_like(p))
                for (c, _, p), v in zip(pairs, values, strict=True) if not np.array_equal(v, p)]
    report(failures, len(pairs), "pointwise value path vs packed path")


def test_value_path_differs_where_a_quirk_applies():
    pairs = [(c, a) for c, a in _accepted() if not c.meta["matches_ideal"]]
    values = _golden.pointwise.run_values_golden_batch([c for c, _ in pairs], [a for _, a in pairs])
    seen = set()
    for (c, a), v in zip(pairs, values, strict=True):
        assert ((v != a["out"]) & (a["defined"] != 0)).any(), c.meta["id"]
        q = _quirks(c.cfg, c.cluster)
        assert q, c.meta["id"]  # every library-specific result is explained by a modelled quirk
        seen |= q
    # (the sub-byte leftover reads of §7.1 are checked on the refused cases' defined elements, below)
    assert seen >= {"shift-clip-block", "signed-leftover-sdotusp", "leftover-int8-bias"}


def test_static_path_matches_golden_cases_with_each_quirk():
    # run() compiles per configuration: one golden case per quirk combination (and plain ones).
    picked = {}
    for call, a in _accepted():
        key = (frozenset(_quirks(call.cfg, call.cluster)), call.cfg.bias)
        picked.setdefault(key, (call, a))
    assert len(picked) >= 7
    failures = []
    for call, a in picked.values():
        xw, ww, params = call.args
        got = _unpack(pointwise.run(xw, ww, params, cfg=call.cfg, cluster=call.cluster), call.cfg)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(picked), "pointwise static path")


# ------------------------------------------------------------------------------------- worked examples


def _example_15_1(H):
    cfg = pointwise.Config("u4", "u2", "i2", H=H, W=2, Ci=4, Co=4, relu=1, bn=1)
    x = np.tile(np.array([[[3, 7, 0, 15], [1, 2, 8, 4]]]), (H, 1, 1))
    w = np.array([[1, -1, 0, -2], [-2, 1, 1, 0], [0, 0, 1, 1], [-1, -1, -1, -1]]).reshape(4, 1, 1, 4)
    params = pointwise.Params(kappa=np.array([2, 3, 1, -1], np.int32), lam=np.array([100, 8, 4, 30], np.int32),
                              out_mult=3, out_shift=4)
    return cfg, x, w, params


def _bytes(out):
    return packing.words_to_bytes(np.asarray(out)).tolist()


@pytest.mark.parametrize("flags, shift, want", [((1, 1), 4, [0xD2, 0x9B]), ((1, 0), 4, [0x20, 0x24]),
                                                ((0, 1), 2, [0x30, 0x38]), ((0, 0), 2, [0x30, 0x38])])
def test_worked_example_15_1(flags, shift, want):
    cfg, x, w, params = _example_15_1(8)
    cfg = cfg.replace(relu=flags[0], bn=flags[1])
    params = params._replace(out_shift=shift)
    out = pointwise.run(packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type), params, cfg=cfg)
    assert _bytes(out) == want * 8


def test_worked_example_15_2_leftover_reads_packed_bytes():
    cfg, x, w, params = _example_15_1(1)
    xw, ww = packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type)
    # pixel 1 (core 1's leftover) reads the 4 bytes after the input: memory dependent -> refused
    with pytest.raises(UnsupportedConfig, match=r"pointwise-leftover-overread.*\(0, 1\).*bytes \[4, 8\)"):
        pointwise.run(xw, ww, params, cfg=cfg)
    with pytest.raises(UnsupportedConfig, match="pointwise-leftover-overread"):
        pointwise.reference(x, w, params, cfg)
    # with zero memory after the input (the spec's host run): 0xFC 0x43; conv 1x1 gives the intended D2 9B
    twin = pointwise.reference(x, w, params, cfg, guard=np.zeros(4, np.uint8))
    assert _bytes(packing.pack_hwc(twin, cfg.out_type)) == [0xFC, 0x43, 0, 0]
    call = _golden.GoldenCall({}, cfg, Cluster(), (xw, ww, params))
    np.testing.assert_array_equal(_golden.pointwise.run_golden_batch([call])[0], twin)
    ideal = pointwise.run(xw, ww, params, cfg=cfg.replace(semantics="ideal"))
    assert _bytes(ideal)[:2] == [0xD2, 0x9B]


def test_worked_example_15_3_signed_shift_clip():
    cfg = pointwise.Config("u8", "i4", "i8", H=8, W=2, Ci=4, Co=4, relu=0, bn=0)
    x = np.zeros((8, 2, 4), np.int64)
    x[:, 0, 0], x[:, 1, 0] = 10, 3
    w = np.zeros((4, 1, 1, 4), np.int64)
    w[:, 0, 0, 0] = [1, -1, 2, 0]
    params = pointwise.Params(kappa=np.zeros(4, np.int32), lam=np.zeros(4, np.int32), out_shift=0)
    xw, ww = packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type)
    assert _bytes(pointwise.run(xw, ww, params, cfg=cfg))[:4] == [0x0A, 0x0F, 0x03, 0x06]
    assert _bytes(pointwise.run(xw, ww, params, cfg=cfg.replace(semantics="ideal")))[:4] == [0x87, 0x07, 0xD3, 0x06]


def test_overread_refused_only_where_the_output_depends_on_it():
    # 1x1 image of u4: the leftover pixel reads 8 bytes of a 4-byte image (§7.1)
    cfg = pointwise.Config("u4", "u8", "i8", H=1, W=1, Ci=8, Co=4, relu=0, bn=0)
    x = np.zeros((1, 1, 8), np.int64)
    params = pointwise.Params(kappa=np.zeros(4, np.int32), lam=np.zeros(4, np.int32), out_shift=0)
    xw = packing.pack_hwc(x, cfg.in_type)
    neg = packing.pack(-np.ones((4, 1, 1, 8), np.int64), cfg.w_type)  # unsigned bytes x -1: acc <= 0 -> 0
    assert np.asarray(pointwise.run(xw, neg, params, cfg=cfg)).tolist() == [0]
    pos = packing.pack(np.ones((4, 1, 1, 8), np.int64), cfg.w_type)  # acc in [0, 1020]: clip8 varies
    with pytest.raises(UnsupportedConfig, match="pointwise-leftover-overread.*channel 0"):
        pointwise.run(xw, pos, params, cfg=cfg)
    pointwise.run(xw, pos, params, cfg=cfg.replace(semantics="ideal"))  # the ideal semantics reads no garbage
    # for every input (check) and under jit (inputs unknown) the rule is conservative
    with pytest.raises(UnsupportedConfig, match=r"pointwise-leftover-overread.*may\s+depend"):
        pointwise.check(cfg)
    with pytest.raises(UnsupportedConfig, match=r"pointwise-leftover-overread.*may\s+depend"):
        jax.jit(lambda a: pointwise.run(a, neg, params, cfg=cfg))(xw)
    pointwise.check_inputs(cfg, xw, neg, params)
    pointwise.check(pointwise.Config("u4", "u8", "i8", H=1, W=4, Ci=8, Co=4))  # pairs only: no over-read


def test_bytes_past_the_image_inside_its_last_word_are_not_input():
    # u2, 3x1x4: a 3-byte image; each leftover pixel reads 4 bytes at byte 4*y (§7.1), pixel 0 its 4th byte
    cfg = pointwise.Config("u2", "u8", "i8", H=3, W=1, Ci=4, Co=4, relu=0, bn=0)
    cluster = Cluster(num_cores=1)
    x = np.zeros((3, 1, 4), np.int64)
    x[0, 0, 0] = 1  # byte 0 = 1; bytes 1, 2 = 0
    w = np.ones((4, 1, 1, 4), np.int64)
    params = pointwise.Params(kappa=np.zeros(4, np.int32), lam=np.zeros(4, np.int32), out_shift=0)
    xw, ww = _dirty(packing.pack_hwc(x, cfg.in_type), cfg), packing.pack(w, cfg.w_type)
    assert xw[0] >> 24 == 0xFF
    with pytest.raises(UnsupportedConfig, match=r"pointwise-leftover-overread.*\(0, 0\).*bytes \[0, 4\)"):
        pointwise.run(xw, ww, params, cfg=cfg, cluster=cluster)
    want = pointwise.reference(x, w, params, cfg, cluster, guard=np.zeros(16, np.uint8))
    assert want[0, 0].tolist() == [1, 1, 1, 1]
    got = _unpack(pointwise._fast_packed(xw[None], ww, conv._as_params(params, cfg), cfg, cluster)[0], cfg)
    np.testing.assert_array_equal(got, want)
    call = _golden.GoldenCall({}, cfg, cluster, (xw, ww, params))
    np.testing.assert_array_equal(_golden.pointwise.run_golden_batch([call])[0], want)


# ----------------------------------------------------------------------------- random configurations


def _layer(cfg, rng, batch=None):
    shape = (cfg.H, cfg.W, cfg.Ci) if batch is None else (batch, cfg.H, cfg.W, cfg.Ci)
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, shape)
    w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (cfg.Co, 1, 1, cfg.Ci))
    params = pointwise.Params(kappa=rng.integers(-50, 50, cfg.Co).astype(np.int32),
                              lam=rng.integers(-2000, 2000, cfg.Co).astype(np.int32),
                              out_mult=int(rng.integers(0, 1 << 16)), out_shift=int(rng.integers(0, 12)),
                              bias=rng.integers(-50000, 50000, cfg.Co).astype(np.int32) if cfg.bias else None)
    return x, w, params


def _dirty(xw, cfg):
    """The packed image with 0xFF in the unused bytes of its last word (memory after the image: no model reads
    it as input data)."""
    nb = cfg.H * cfg.W * cfg.Ci * cfg.in_type.bits // 8
    xw = np.array(xw)
    if nb % 4:
        xw[..., -1] |= np.uint32((0xFFFFFFFF << (8 * (nb % 4))) & 0xFFFFFFFF)
    return xw


def _random_configs(rng, n):
    types = ["u8", "u4", "u2", "i8", "i4", "i2"]
    out = []
    while len(out) < n:
        it, ot, wt = rng.choice(types), rng.choice(types), rng.choice(["i8", "i4", "i2"])
        ci = int(rng.choice([4, 8, 12, 16, 20]))
        stride = (1, 1) if rng.random() < 0.6 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        cfg = pointwise.Config(it, ot, wt, H=int(rng.integers(1, 10)), W=int(rng.integers(1, 10)), Ci=ci,
                               Co=int(rng.choice([4, 8, 12])), stride=stride, relu=int(rng.choice([0, 1, 2])),
                               bn=int(rng.integers(0, 2)), bias=bool(rng.random() < 0.4))
        cluster = Cluster(num_cores=int(rng.choice([1, 2, 4, 8])))
        try:
            pointwise.check(cfg, cluster)
        except UnsupportedConfig as e:
            if e.rule != "pointwise-leftover-overread":  # data dependent: modelled with zero memory below
                continue
        out.append((cfg, cluster))
    return out


def test_random_configs_match_the_twin():
    # library semantics incl. ignored stride (§7), leftovers, int8 bias, garbage reads with zero memory after
    # the input; all through one shared compiled function
    rng = np.random.default_rng(11)
    calls, twins = [], []
    for cfg, cluster in _random_configs(rng, 48):
        x, w, params = _layer(cfg, rng)
        twins.append(pointwise.reference(x, w, params, cfg, cluster, guard=np.zeros(4096, np.uint8)))
        calls.append(_golden.GoldenCall({}, cfg, cluster, (_dirty(packing.pack_hwc(x, cfg.in_type), cfg),
                                                           packing.pack(w, cfg.w_type), params)))
    assert sum(c.cfg.stride != (1, 1) for c in calls) > 5
    assert sum(bool(_quirks(c.cfg, c.cluster)) for c in calls) > 10
    for c, got, twin in zip(calls, _golden.pointwise.run_golden_batch(calls), twins, strict=True):
        np.testing.assert_array_equal(got, twin, err_msg=f"{c.cfg} {c.cluster}")


@pytest.mark.parametrize("kw, cores", [
    (dict(in_type="i8", out_type="i8", w_type="i4", H=5, W=3, Ci=12, Co=8, bias=True, relu=0, bn=0), 8),
    (dict(in_type="u4", out_type="u8", w_type="i2", H=1, W=6, Ci=8, Co=4, bias=True), 8),
    (dict(in_type="i2", out_type="i8", w_type="i8", H=7, W=5, Ci=8, Co=5, stride=(2, 2)), 4),
    (dict(in_type="u2", out_type="u4", w_type="i2", H=3, W=1, Ci=4, Co=4, bias=True), 1),
])
def test_static_path_matches_the_twin(kw, cores):
    cfg, cluster = pointwise.Config(**kw), Cluster(num_cores=cores)
    x, w, params = _layer(cfg, np.random.default_rng(5))
    xw, ww = _dirty(packing.pack_hwc(x, cfg.in_type), cfg), packing.pack(w, cfg.w_type)
    try:
        want = pointwise.reference(x, w, params, cfg, cluster)
    except UnsupportedConfig:  # memory-dependent for this data: compare with zero memory, bypassing run()
        want = pointwise.reference(x, w, params, cfg, cluster, guard=np.zeros(4096, np.uint8))
        got = pointwise._fast_packed(xw[None], ww, conv._as_params(params, cfg), cfg, cluster)[0]
    else:
        got = pointwise.run(xw, ww, params, cfg=cfg, cluster=cluster)
    np.testing.assert_array_equal(_unpack(got, cfg), want)


def test_ideal_packed_path_equals_conv_1x1():
    cfg = pointwise.Config("i8", "i8", "i4", H=7, W=6, Ci=8, Co=6, stride=(2, 1), relu=0, bn=0, bias=True,
                           semantics="ideal")
    x, w, params = _layer(cfg, np.random.default_rng(6))
    xw, ww = packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type)
    got = pointwise.run(xw, ww, params, cfg=cfg)
    ccfg = conv.Config("i8", "i8", "i4", H=7, W=6, Ci=8, Co=6, Kh=1, Kw=1, stride=(2, 1), relu=0, bn=0, bias=True,
                       semantics="ideal")
    np.testing.assert_array_equal(np.asarray(got), np.asarray(conv.run(xw, ww, params, cfg=ccfg)))
    np.testing.assert_array_equal(_unpack(got, cfg), pointwise.run_values(x, w, params, cfg=cfg))
    # library semantics ignores the stride: same pixels as stride 1 on the first Ho x Wo outputs
    lib = _unpack(pointwise.run(xw, ww, params, cfg=cfg.replace(semantics="library")), cfg)
    np.testing.assert_array_equal(lib, pointwise.reference(x, w, params, cfg.replace(semantics="library")))


def test_bn_bits_64_tree():
    # §4.3: kappa*acc + lambda in 64-bit arithmetic (wraps in the 32bit/ tree); leftover pixels included
    cfg = pointwise.Config("i8", "u8", "i8", H=8, W=5, Ci=8, Co=4, relu=1, bn=1, bn_bits=64)
    rng = np.random.default_rng(9)
    x, w, params = _layer(cfg, rng)
    params = params._replace(kappa=np.array([70000, -90000, 123456, 1], np.int32),
                             lam=np.array([2 ** 30, -2 ** 30, 5, 7], np.int32), out_shift=20)
    xw, ww = packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type)
    want = pointwise.reference(x, w, params, cfg)
    assert not np.array_equal(want, pointwise.reference(x, w, params, cfg.replace(bn_bits=32)))
    np.testing.assert_array_equal(_unpack(pointwise.run(xw, ww, params, cfg=cfg), cfg), want)
    call = _golden.GoldenCall({}, cfg, Cluster(), (xw, ww, params))
    call32 = call._replace(cfg=cfg.replace(bn_bits=32))
    got64, got32 = _golden.pointwise.run_golden_batch([call, call32])
    np.testing.assert_array_equal(got64, want)
    np.testing.assert_array_equal(got32, pointwise.reference(x, w, params, call32.cfg))
    ideal = cfg.replace(semantics="ideal")
    a = {"x": x, "w": w}
    np.testing.assert_array_equal(_golden.pointwise.run_values_golden_batch([call._replace(cfg=ideal)], [a])[0],
                                  conv.reference(x, w, params, ideal))


# ----------------------------------------------------------------------------------------------- API


def test_batch_equals_loop():
    cfg = pointwise.Config("i8", "i8", "i4", H=8, W=7, Ci=8, Co=8, relu=0, bn=0, bias=True)
    rng = np.random.default_rng(1)
    x, w, params = _layer(cfg, rng, batch=3)
    xw = np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x])
    ww = packing.pack(w, cfg.w_type)
    batched = np.asarray(pointwise.run(xw, ww, params, cfg=cfg))
    looped = np.stack([np.asarray(pointwise.run(xi, ww, params, cfg=cfg)) for xi in xw])
    np.testing.assert_array_equal(batched, looped)
    assert np.asarray(pointwise.run_values(x, w, params, cfg=cfg)).shape == (3, 8, 7, 8)


def test_compiles_once_per_config():
    cfg = pointwise.Config("u8", "u8", "i8", H=4, W=5, Ci=8, Co=4, bias=True)
    rng = np.random.default_rng(2)
    before = pointwise._fast_packed._cache_size()
    for _ in range(3):
        x, w, params = _layer(cfg, rng)
        pointwise.run(packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type), params, cfg=cfg)
    assert pointwise._fast_packed._cache_size() == before + 1


def test_bad_inputs_name_the_argument():
    cfg = pointwise.Config("u4", "u4", "i4", H=4, W=4, Ci=4, Co=4)
    x, w, params = _layer(cfg, np.random.default_rng(3))
    xw, ww = packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type)
    with pytest.raises(JaxpulpError, match="x_words.*uint32"):
        pointwise.run(xw.astype(np.int32), ww, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w_words.*shape"):
        pointwise.run(xw, ww[:1], params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.kappa"):
        pointwise.run(xw, ww, params._replace(kappa=np.zeros(3, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.bias"):
        pointwise.run(xw, ww, params._replace(bias=np.zeros(4, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="x: shape"):
        pointwise.run_values(x[:2], w, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="guard: dtype"):
        pointwise.reference(x, w, params, cfg, guard=np.zeros(4, np.int32))
    with pytest.raises(JaxpulpError, match="w_type"):
        pointwise.Config("u4", "u4", "u4", H=4, W=4, Ci=4, Co=4)


@pytest.mark.parametrize("kw, cores, rule, ideal_ok", [
    (dict(Kh=3, Kw=3), 8, "pointwise-kernel-size", False),
    (dict(Ci=3), 8, "input-channel-multiple", False),
    (dict(in_type="u8", w_type="i2", Ci=2), 8, "weight-row-multiple", False),
    (dict(out_type="u2", Co=6), 8, "output-channel-multiple", False),
    (dict(pad=(1, 1, 1, 1)), 8, "pointwise-geometry", False),
    (dict(H=6, W=4), 8, "pointwise-output-skip", True),
    (dict(H=16, W=7, bias=True), 8, "pointwise-bias-drift", True),
    (dict(H=5, W=1, bias=True), 1, "pointwise-bias-drift", True),
    (dict(H=1, W=1, Ci=8), 8, "pointwise-leftover-overread", True),
])
def test_check_names_the_rule(kw, cores, rule, ideal_ok):
    base = dict(in_type="u4", out_type="u4", w_type="i4", H=4, W=4, Ci=4, Co=4)
    base.update(kw)
    cfg, cluster = pointwise.Config(**base), Cluster(num_cores=cores)
    with pytest.raises(UnsupportedConfig, match=rule) as e:
        pointwise.check(cfg, cluster)
    assert ("semantics='ideal'" in str(e.value)) == ideal_ok
    if ideal_ok:
        pointwise.check(cfg.replace(semantics="ideal"), cluster)


def test_check_accepts_what_the_library_defines():
    # ignored stride inside the image, leftover int8 bias for <= 4 rows, one row per core in the half split
    pointwise.check(pointwise.Config("u8", "u8", "i8", H=9, W=9, Ci=4, Co=4, stride=(2, 2)))
    pointwise.check(pointwise.Config("i8", "u8", "i8", H=4, W=1, Ci=4, Co=4, bias=True), Cluster(num_cores=1))
    pointwise.check(pointwise.Config("u8", "u2", "i8", H=3, W=12, Ci=4, Co=4))


def test_run_returns_per_core_cost():
    cfg = pointwise.Config("u8", "u8", "i8", H=6, W=7, Ci=4, Co=4)
    x, w, params = _layer(cfg, np.random.default_rng(5))
    res = pointwise.run(packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type), params, cfg=cfg,
                        return_cost=True)
    assert res.output.dtype == np.uint32
    assert len(res.cost.per_core) == 8
    assert res.cost.per_core[6].macs == 0 and res.cost.per_core[0].macs > 0  # half split: cores 6, 7 idle
    assert sum(c.macs for c in res.cost.per_core) == cfg.macs
    assert pointwise.cost(cfg).cycles == res.cost.cycles
