"""The static packed paths behind ``run`` (one compile per configuration: static shifts, slices, masks evaluated in
Python) against the golden vectors and against the bucketed paths (configuration as data) the golden runner uses:
pooling (including max pooling on packed words), add, linear and pointwise. Compiles are kept to a few dozen:
golden subsets chosen to cover every scenario and quirk with distinct kernels, and small hypothesis samples."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_util import assert_equal_defined, family, report
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from jaxpulp import UnsupportedConfig, packing, testing
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _engine, _golden, add, conv, linear, pointwise, pool
from jaxpulp.qtypes import QType

TYPES = ["u8", "u4", "u2", "i8", "i4", "i2"]
PROPERTY = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def _bits(t: str) -> int:
    return int(t[1:])


def _subset(cases, key):
    """One case per ``key(meta)``, preferring kernels not picked yet (deterministic, in file order)."""
    picked, kernels = {}, set()
    for fresh_only in (True, False):
        for m in cases:
            k = key(m)
            if k in picked or (fresh_only and m["kernel"] in kernels):
                continue
            picked[k] = m
            kernels.add(m["kernel"])
    return list(picked.values())


def _garbage_tail(words, n_bits: int, seed: int = 0):
    """Random bits in the last word past the image's ``n_bits`` (they are not part of the input)."""
    words = np.array(words, np.uint32)
    tail = n_bits % 32
    if tail:
        junk = np.random.default_rng(seed).integers(0, 1 << 32, words.shape[:-1], dtype=np.uint64).astype(np.uint32)
        words[..., -1] |= junk & ~np.uint32((1 << tail) - 1)
    return words


# ------------------------------------------------------------------------------------ golden subsets, run()


def test_pool_static_path_matches_golden_subset():
    # max pooling: every scenario (the scan case included) and, where pixels are whole words (the lane-wise
    # max on packed words), unsigned and signed lanes; average pooling: every (scenario, requant) pair
    picks = []
    for fam, key in (("maxpool", lambda m: (m["scenario"], m["matches_ideal"],
                                            m["in_type"][0] if m["Ci"] * _bits(m["in_type"]) % 32 == 0 else None)),
                     ("avgpool", lambda m: (m["scenario"], m["requant"]))):
        cases, arrays = family(fam)
        picks += [(_golden.pool.from_golden(m, arrays[m["id"]]), arrays[m["id"]]) for m in _subset(cases, key)]
    assert len({c.meta["kernel"] for c, _ in picks}) >= 18
    failures = []
    for call, a in picks:
        cfg = call.cfg
        xw = _garbage_tail(call.args[0], cfg.H * cfg.W * cfg.C * cfg.in_type.bits)
        res = pool.run(xw, call.args[1], cfg=cfg, cluster=call.cluster, static=True)
        out = res.out if isinstance(res, pool.MaxPoolResult) else res
        got = packing.unpack_hwc(np.asarray(out), (cfg.Ho, cfg.Wo, cfg.C), cfg.out_type)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
            if isinstance(res, pool.MaxPoolResult):  # the in-place buffer: the twin's, tail bits as given
                ref = pool.reference(a["x"], None, cfg, call.cluster)
                xa = np.asarray(res.x)
                np.testing.assert_array_equal(packing.unpack_hwc(xa, (cfg.H, cfg.W, cfg.C), cfg.in_type), ref.x,
                                              err_msg=f"{call.meta['id']} input buffer")
                tail = (cfg.H * cfg.W * cfg.C * cfg.in_type.bits) % 32
                past = ~np.uint32((1 << tail) - 1) if tail else np.uint32(0)
                assert xa[-1] & past == xw[-1] & past, f"{call.meta['id']}: bits past the image changed"
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(picks), "pool static path on golden cases")


def test_add_static_path_matches_golden_subset():
    cases, arrays = family("add")
    defined = [m for m in cases if not testing.case_should_be_refused(m)]  # the rest: sub-byte tails, overruns
    metas = _subset(defined, lambda m: (m["family"], m["scenario"], m["out_type"][0],
                                        all(_bits(m[t]) == 8 for t in ("in1_type", "in2_type", "out_type"))))
    picks = [(_golden.add.from_golden(m, arrays[m["id"]]), arrays[m["id"]]) for m in metas]
    assert len(picks) >= 12 and {c.meta["family"] for c, _ in picks} == {"add", "add_legacy"}
    failures = []
    for call, a in picks:
        cfg = call.cfg
        out = np.asarray(add.run(*call.args, cfg=cfg, cluster=call.cluster, static=True))
        got = packing.unpack_hwc(out, (cfg.H, cfg.W, cfg.C), cfg.out_type)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
            np.testing.assert_array_equal(out, np.asarray(add.run(*call.args, cfg=cfg, cluster=call.cluster,
                                                                  static=False)), err_msg=call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(picks), "add static path on golden cases")


# ------------------------------------------------------------------- static path == bucketed path (hypothesis)


@PROPERTY
@given(st.data())
def test_pool_static_equals_bucketed(data):
    fam = data.draw(st.sampled_from(["maxpool", "avgpool"]))
    it = data.draw(st.sampled_from(TYPES))
    ot = it if fam == "maxpool" else data.draw(st.sampled_from(TYPES))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    pads = tuple(data.draw(st.integers(0, k)) for k in (kh, kh, kw, kw))  # pad >= kernel: edge windows
    kw_ = dict(H=data.draw(st.integers(kh, 9)), W=data.draw(st.integers(kw, 9)),
               C=data.draw(st.sampled_from([4, 8, 16])), Kh=kh, Kw=kw,
               stride=(data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))), pad=pads,
               semantics=data.draw(st.sampled_from(["library", "ideal"])))
    if fam == "maxpool":
        cfg, params = pool.MaxPoolConfig(it, ot, **kw_), None
    else:
        cfg = pool.AvgPoolConfig(it, ot, requant=data.draw(st.integers(0, 1)), **kw_)
        params = pool.AvgPoolParams(lam=data.draw(st.integers(-3000, 3000)), out_shift=data.draw(st.integers(0, 40)),
                                    out_add=data.draw(st.integers(-300, 300)))
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8, 16])))
    try:
        pool.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (2, cfg.H, cfg.W, cfg.C))
    xw = _garbage_tail(np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x]),
                       cfg.H * cfg.W * cfg.C * cfg.in_type.bits, seed=1)
    fast = pool.run(xw, params, cfg=cfg, cluster=cluster, static=True)
    slow = pool.run(xw, params, cfg=cfg, cluster=cluster, static=False)
    for a, b in zip(_results(fast), _results(slow), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{cfg} on {cluster.num_cores} cores")
    ref = pool.reference(x[1], params, cfg, cluster)
    out = fast.out if fam == "maxpool" else fast
    got = packing.unpack_hwc(np.asarray(out)[1], (cfg.Ho, cfg.Wo, cfg.C), cfg.out_type)
    np.testing.assert_array_equal(got, ref.out if fam == "maxpool" else ref)


def _results(res):
    return tuple(res) if isinstance(res, pool.MaxPoolResult) else (res,)


@PROPERTY
@given(st.data())
def test_add_static_equals_bucketed(data):
    semantics = data.draw(st.sampled_from(["library", "ideal"]))
    h, w = data.draw(st.integers(1, 11)), data.draw(st.integers(1, 11))
    if data.draw(st.integers(0, 3)) == 0:
        unsigned = st.sampled_from(["u8", "u4", "u2"])
        t1, t2 = sorted((data.draw(unsigned), data.draw(unsigned)), key=lambda t: -_bits(t))
        cfg = add.AddLegacyConfig(t1, t2, H=h, W=w, C=data.draw(st.sampled_from([4, 8])), semantics=semantics)
        params = add.LegacyParams(data.draw(st.integers(0, 0xFFFF)), data.draw(st.integers(0, 0xFFFF)),
                                  data.draw(st.integers(0, 40)))
    else:
        types = [data.draw(st.sampled_from(TYPES)) for _ in range(3)]
        c = data.draw(st.sampled_from([1, 2, 3, 4, 8] if all(_bits(t) == 8 for t in types) else [4, 8, 16]))
        cfg = add.AddConfig(*types, H=h, W=w, C=c, requant=data.draw(st.integers(0, 1)), semantics=semantics)
        params = add.Params(*(data.draw(st.integers(lo, hi)) for lo, hi in
                              [(-300, 300), (-3000, 3000), (0, 40)] * 3))
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8, 16])))
    try:
        add.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    n = cfg.H * cfg.W * cfg.C
    x1 = rng.integers(cfg.in1_type.lo, cfg.in1_type.hi + 1, (2, cfg.H, cfg.W, cfg.C))
    x2 = rng.integers(cfg.in2_type.lo, cfg.in2_type.hi + 1, (cfg.H, cfg.W, cfg.C))
    w1 = _garbage_tail(np.stack([packing.pack_hwc(v, cfg.in1_type) for v in x1]), n * cfg.in1_type.bits, seed=2)
    w2 = _garbage_tail(packing.pack_hwc(x2, cfg.in2_type), n * cfg.in2_type.bits, seed=3)
    for a, b in ((w1, w2), (w1[1], w2), (w1[1], np.stack([w2, w2]))):  # batch axes on either operand, or none
        fast = np.asarray(add.run(a, b, params, cfg=cfg, cluster=cluster, static=True))
        slow = np.asarray(add.run(a, b, params, cfg=cfg, cluster=cluster, static=False))
        assert fast.shape == slow.shape
        np.testing.assert_array_equal(fast, slow, err_msg=f"{cfg} on {cluster.num_cores} cores")
    got = packing.unpack_hwc(np.asarray(add.run(w1[1], w2, params, cfg=cfg, cluster=cluster, static=True)),
                             (cfg.H, cfg.W, cfg.C), cfg.out_type)
    np.testing.assert_array_equal(got, add.reference(x1[1], x2, params, cfg, cluster))


def _linear_layer(cfg, rng):
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (cfg.N,))
    w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (cfg.M, cfg.N))
    q = cfg.quantized
    params = linear.Params(kappa=rng.integers(-50, 50, cfg.M).astype(np.int32) if q else None,
                           lam=rng.integers(-2000, 2000, cfg.M).astype(np.int32) if q else None,
                           out_mult=int(rng.integers(0, 1 << 16)), out_shift=int(rng.integers(0, 12)),
                           bias=rng.integers(-500, 500, cfg.M).astype(np.int32) if cfg.bias else None)
    return x, w, params


@PROPERTY
@given(st.data())
def test_linear_static_equals_bucketed(data):
    quirk = data.draw(st.booleans())  # §9.4 (2-bit in/out, 4-bit weights) and §9.2 b (2-bit weights) variants
    it = data.draw(st.sampled_from(["u2", "i2"] if quirk else TYPES))
    wt = data.draw(st.sampled_from(["i4", "i2"] if quirk else ["i8", "i4", "i2"]))
    ot = data.draw(st.sampled_from(["u2", "i2", "u8", "i8"] if quirk else TYPES + ["i32"]))
    semantics = data.draw(st.sampled_from(["library", "ideal"]))
    step = 16 if semantics == "library" else 1
    cfg = linear.Config(it, ot, wt, N=data.draw(st.integers(1, 40)) * step + data.draw(st.sampled_from([0, 3])),
                        M=data.draw(st.integers(1, 48)), relu=data.draw(st.sampled_from([0, 1, 2])),
                        bn=data.draw(st.integers(0, 1)), bias=data.draw(st.booleans()), semantics=semantics)
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8, 16])))
    try:
        linear.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    x, w, params = _linear_layer(cfg, np.random.default_rng(data.draw(st.integers(0, 2**31))))
    call = _golden.GoldenCall({}, cfg, cluster, (packing.pack(x, cfg.in_type), packing.pack(w, cfg.w_type), params))
    fast = _golden.linear.unpack_output(np.asarray(linear.run(*call.args, cfg=cfg, cluster=cluster)), cfg)
    slow = _golden.linear.run_golden_batch([call])[0]
    np.testing.assert_array_equal(fast, slow, err_msg=f"{cfg} on {cluster.num_cores} cores")
    np.testing.assert_array_equal(fast, linear.reference(x, w, params, cfg, cluster))


@PROPERTY
@given(st.data())
def test_pointwise_static_equals_bucketed(data):
    it, ot = data.draw(st.sampled_from(TYPES)), data.draw(st.sampled_from(TYPES))
    wt = data.draw(st.sampled_from(["i8", "i4", "i2"]))
    h, w = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    cfg = pointwise.Config(it, ot, wt, H=h, W=w, Ci=data.draw(st.sampled_from([4, 8, 16])),
                           Co=data.draw(st.sampled_from([4, 8, 12])), relu=data.draw(st.sampled_from([0, 1, 2])),
                           bn=data.draw(st.integers(0, 1)), bias=data.draw(st.booleans()),
                           bn_bits=data.draw(st.sampled_from([32, 64])),
                           semantics=data.draw(st.sampled_from(["library", "library", "ideal"])))
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8])))
    try:
        pointwise.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (cfg.H, cfg.W, cfg.Ci))
    wv = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (cfg.Co, 1, 1, cfg.Ci))
    params = conv.Params(kappa=rng.integers(-40, 40, cfg.Co).astype(np.int32),
                         lam=rng.integers(-3000, 3000, cfg.Co).astype(np.int32),
                         out_mult=int(rng.integers(0, 1 << 16)), out_shift=int(rng.integers(0, 16)),
                         bias=rng.integers(-2000, 2000, cfg.Co).astype(np.int32) if cfg.bias else None)
    call = _golden.GoldenCall({}, cfg, cluster, (packing.pack_hwc(x, cfg.in_type), packing.pack(wv, cfg.w_type),
                                                 params))
    out = np.asarray(pointwise.run(*call.args, cfg=cfg, cluster=cluster))
    fast = packing.unpack(out, cfg.out_type, cfg.Ho * cfg.Wo * cfg.Co).reshape(cfg.Ho, cfg.Wo, cfg.Co)
    slow = _golden.pointwise.run_golden_batch([call])[0]
    np.testing.assert_array_equal(fast, slow, err_msg=f"{cfg} on {cluster.num_cores} cores")
    np.testing.assert_array_equal(fast, pointwise.reference(x, wv, params, cfg, cluster))


# ------------------------------------------------------------------------------------------ building blocks


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("signed", [False, True])
def test_swar_max_is_the_lane_wise_max_for_every_pair(bits, signed):
    t = QType(bits, signed)
    a, b = (v.reshape(-1) for v in np.meshgrid(np.arange(t.lo, t.hi + 1), np.arange(t.lo, t.hi + 1), indexing="ij"))
    got = pool._swar_max(bits, signed)(jnp.asarray(packing.pack(a, t)), jnp.asarray(packing.pack(b, t)))
    np.testing.assert_array_equal(packing.unpack(np.asarray(got), t, a.size), np.maximum(a, b))


def test_grouped_pack_and_bounded_matmul_equal_the_plain_ones():
    rng = np.random.default_rng(0)
    both = jax.jit(lambda v, bits: (_engine.pack_static_grouped(v, bits), _engine.pack_static(v, bits)),
                   static_argnums=1)
    for bits in (8, 4, 2):
        for n in (5, 33, 257):  # partial words and partial groups
            grouped, plain = both(jnp.asarray(rng.integers(-300, 300, (2, n)), jnp.int32), bits)
            np.testing.assert_array_equal(np.asarray(grouped), np.asarray(plain))
    dots = jax.jit(lambda a, b, mp: (_engine.exact_int_matmul_bounded(a, b, mp), _engine.exact_int_matmul(a, b)),
                   static_argnums=2)
    for (ab, asg), bb, k in [((8, False), 8, 1100), ((4, True), 4, 700)]:  # 3 chunks of <= 514; one chunk
        a = jnp.asarray(rng.integers(-(1 << ab - 1) if asg else 0, 1 << (ab - asg), (3, k)), jnp.int32)
        b = jnp.asarray(rng.integers(-(1 << bb - 1), 1 << (bb - 1), (k, 5)), jnp.int32)
        bounded, plain = dots(a, b, _engine.max_abs_product(ab, asg, bb, True))
        np.testing.assert_array_equal(np.asarray(bounded), np.asarray(plain))


# ------------------------------------------------------------------------------------- dispatch, regressions


def test_run_takes_the_static_path_for_large_calls_only():
    rng = np.random.default_rng(3)
    cfg = pool.AvgPoolConfig("u4", "i8", H=16, W=16, C=16, requant=1)
    p = pool.AvgPoolParams(lam=7, out_shift=2, out_add=-3)
    x = rng.integers(0, 16, (17, 16, 16, 16))
    xw = np.stack([packing.pack_hwc(v, cfg.in_type) for v in x])
    assert 4 * cfg.H * cfg.W * cfg.C >= pool.STATIC_MIN_ELEMENTS > cfg.H * cfg.W * cfg.C
    before = pool._fast_avg._cache_size()
    one = pool.run(xw[4], p, cfg=cfg)      # 1 image: the bucketed path (no static compile)
    assert pool._fast_avg._cache_size() == before
    big = pool.run(xw[:4], p, cfg=cfg)     # 4 images: the static path
    assert pool._fast_avg._cache_size() == before + 1
    np.testing.assert_array_equal(np.asarray(pool.run(xw[4], p, cfg=cfg, static=True)), np.asarray(one))
    np.testing.assert_array_equal(np.asarray(pool.run(xw[:4], p, cfg=cfg, static=False)), np.asarray(big))
    acfg = add.AddConfig("u4", "i8", "u2", H=16, W=16, C=16, requant=1)
    ap = add.Params(in1_mul=3, in2_mul=2, in2_shift=1, out_mul=5, out_shift=4)
    w1 = np.stack([packing.pack_hwc(v, acfg.in1_type) for v in x[:4]])
    w2 = packing.pack_hwc(rng.integers(-128, 128, (16, 16, 16)), acfg.in2_type)
    before = add._fast_packed._cache_size()
    out = np.asarray(add.run(w1, w2, ap, cfg=acfg))
    assert add._fast_packed._cache_size() == before + 1
    np.testing.assert_array_equal(out, np.asarray(add.run(w1, w2, ap, cfg=acfg, static=False)))


def test_maxpool_window_in_the_padding_copies_its_first_column():
    # library, pad_left >= Kw: the window of xo = 0 starts at column 0 itself and its compare loop is empty, so
    # the kernel copies column 0 (the bucketed vectorised pass 1 once returned 0 bits there)
    for kw, pl, sx, c in [(1, 1, 2, 4), (2, 2, 3, 4), (1, 2, 3, 3)]:  # C = 3: pixels not whole words (unpacked path)
        cfg = pool.MaxPoolConfig("u8", "u8", H=2, W=6, C=c, Kh=1, Kw=kw, stride=(1, sx), pad=(0, 0, pl, 0))
        x = np.arange(2 * 6 * c).reshape(2, 6, c) % 200 + 1
        ref = pool.reference(x, None, cfg)
        for static in (True, False):
            res = pool.run(packing.pack_hwc(x, cfg.in_type), cfg=cfg, static=static)
            np.testing.assert_array_equal(packing.unpack_hwc(np.asarray(res.out), (cfg.Ho, cfg.Wo, c), cfg.out_type),
                                          ref.out)
            np.testing.assert_array_equal(packing.unpack_hwc(np.asarray(res.x), (2, 6, c), cfg.in_type), ref.x)
        assert ref.out[0, 0].tolist() == x[0, 0].tolist()


def test_linear_bucketed_path_splits_over_every_core():
    # 16 cores: leftover neurons of cores 8..15 read kappa[0] (§9.2 a); the shared bucket evaluates all 16
    cfg = linear.Config("u8", "u8", "i8", N=32, M=48, relu=1, bn=1)
    cluster = Cluster(num_cores=16)
    x, w, params = _linear_layer(cfg, np.random.default_rng(5))
    call = _golden.GoldenCall({}, cfg, cluster, (packing.pack(x, cfg.in_type), packing.pack(w, cfg.w_type), params))
    want = linear.reference(x, w, params, cfg, cluster)
    np.testing.assert_array_equal(_golden.linear.run_golden_batch([call])[0], want)
    np.testing.assert_array_equal(
        _golden.linear.unpack_output(np.asarray(linear.run(*call.args, cfg=cfg, cluster=cluster)), cfg), want)
    leftover, _ = linear._static_roles(cfg, cluster)
    assert leftover[24:].any()  # the quirk reaches neurons of cores >= 8
