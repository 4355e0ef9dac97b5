"""Depthwise conformance: every golden case through the packed path (bucketed and static), the value path and
the numpy twin; library quirks the golden set does not exercise, recorded from the C kernel; the refusal rules;
batching, compile caching and bad inputs."""
import jax
import numpy as np
import pytest
from golden_util import assert_equal_defined, family, report

from jaxpulp import JaxpulpError, UnsupportedConfig, packing, testing
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _golden, catalog, depthwise
from jaxpulp.kernels.config import out_dim

CASES, ARRAYS = family("depthwise")


def _calls(only=None):
    out = []
    for meta in CASES:
        if only is not None and not only(meta):
            continue
        try:
            out.append((_golden.depthwise.from_golden(meta, ARRAYS[meta["id"]]), ARRAYS[meta["id"]]))
        except UnsupportedConfig:
            continue
    return out


def _unpack(out_words, cfg):
    return packing.unpack_hwc(np.asarray(out_words), (cfg.Ho, cfg.Wo, cfg.Co), cfg.out_type)


def test_catalog_maps_depthwise_here():
    assert catalog.family_module("depthwise") is depthwise
    assert len(catalog.variants("depthwise")) == 108


def test_packed_path_matches_every_golden_case():
    results = testing.run_cases(CASES, ARRAYS)
    failures = [f"{r.id} {r.kernel}: {r.message}" for r in results if not r.passed]
    report(failures, len(results), "depthwise packed path")
    assert sum(r.refused is None for r in results) > 500
    assert {m["kernel"] for m in CASES} == {v.c_name for v in catalog.variants("depthwise")}


def test_check_refuses_exactly_the_undefined_cases():
    # The golden depthwise set holds no undefined case, so check() must refuse none of them; the refusal rules
    # themselves are exercised by test_check_names_the_rule on configurations the C kernel leaves undefined.
    wrong = []
    for meta in CASES:
        try:
            _golden.depthwise.from_golden(meta, ARRAYS[meta["id"]])
            refused = None
        except UnsupportedConfig as e:
            refused = e.rule
        if (refused is not None) != testing.case_should_be_refused(meta):
            wrong.append(f"{meta['id']} {meta['kernel']} {meta['scenario']} refused={refused} "
                         f"all_defined={meta['all_defined']} guard_written={meta['guard_written']}")
    report(wrong, len(CASES), "depthwise check()")


def test_reference_twin_matches_every_defined_case():
    failures = []
    for call, a in _calls():
        got = depthwise.reference(a["x"], a["w"], call.args[2], call.cfg, call.cluster)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(CASES), "depthwise reference twin")


def test_static_run_matches_golden_cases():
    # run() compiles per configuration: a spread of cases over precisions, scenarios, bias and core counts.
    calls = _calls()
    picked = (calls[::40] + [p for p in calls if p[0].cfg.bias and p[0].cluster.num_cores == 8][:3]
              + [p for p in calls if p[0].cluster.num_cores == 1][:3])
    assert len(picked) >= 18 and len({c.cfg.c_name for c, _ in picked}) >= 15
    failures = []
    for call, a in picked:
        got = _unpack(depthwise.run(*call.args, cfg=call.cfg, cluster=call.cluster), call.cfg)
        try:
            assert_equal_defined(got, a["out"], a["defined"], f"{call.meta['id']} {call.meta['kernel']}")
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(picked), "depthwise run()")


def test_value_path_equals_packed_path_where_no_quirk_applies():
    pairs = _calls(only=lambda m: m["matches_ideal"])
    assert len(pairs) > 400
    calls, arrays = [c for c, _ in pairs], [a for _, a in pairs]
    values = _golden.depthwise.run_values_golden_batch(calls, arrays)
    packed = _golden.depthwise.run_golden_batch(calls)
    failures = [f"{c.meta['id']}: " + testing.first_mismatches(v, p, np.ones_like(p))
                for c, v, p in zip(calls, values, packed, strict=True) if not np.array_equal(v, p)]
    report(failures, len(calls), "depthwise value path vs packed path")
    # run_values (static, one compile per configuration) agrees with the batched value path
    for c, a, v in list(zip(calls, arrays, values, strict=True))[::120]:
        np.testing.assert_array_equal(np.asarray(depthwise.run_values(a["x"], a["w"], c.args[2], cfg=c.cfg)), v)


def test_value_path_differs_where_the_quirk_applies():
    # §8.5: with G > 1 the library adds bias[g + t] to channel t of group g; the ideal path adds bias[c].
    pairs = _calls(only=lambda m: not m["matches_ideal"])
    assert len(pairs) > 30 and all(c.cfg.bias and depthwise.group_size(c.cfg) > 1 for c, _ in pairs)
    values = _golden.depthwise.run_values_golden_batch([c for c, _ in pairs], [a for _, a in pairs])
    same = [c.meta["id"] for (c, a), v in zip(pairs, values, strict=True) if np.array_equal(v, a["out"])]
    assert not same, f"ideal semantics reproduces the library's bias indexing on {same}"


# Library behaviour outside the golden set, recorded by running the C kernels (pulp-nn-mixed b69ec23e,
# XpulpV2/32bit) on a host with the PULP built-ins emulated, every core in turn: (name, config, ncores,
# out_mult, out_shift, output (Ho, Wo, C) flattened). Inputs are the ramps of _ramp_inputs.
RECORDED = [
    ("stride2_right_border_reads_next_row", dict(in_type="u8", out_type="u8", w_type="i8", H=6, W=4, Ci=2, Co=2,
     Kh=3, Kw=3, stride=(2, 2), pad=(0, 0, 0, 1), relu=1, bn=1), 8, 3, 9,
     [0, 193, 0, 112, 0, 64, 0, 158]),
    ("stride2_sub_byte", dict(in_type="u4", out_type="i4", w_type="i4", H=6, W=6, Ci=4, Co=4, Kh=3, Kw=3,
     stride=(2, 2), pad=(0, 0, 0, 1), relu=1, bn=0), 8, 3, 5,
     [2, -8, -7, -8, -6, -3, 1, -2, 2, -8, -7, -8, 2, -8, -7, -8, -6, -3, 1, -2, 2, -8, -7, -8]),
    ("narrow_forced_middle_column", dict(in_type="i8", out_type="i8", w_type="i8", H=4, W=2, Ci=2, Co=2, Kh=3,
     Kw=3, stride=(2, 1), pad=(0, 0, 1, 1), relu=0, bn=0), 2, 3, 7,
     [78, -47, 117, -73]),
    ("bias_by_group_g4", dict(in_type="u2", out_type="i8", w_type="i2", H=3, W=3, Ci=8, Co=8, Kh=3, Kw=3,
     stride=(1, 1), pad=(1, 1, 1, 1), relu=1, bn=1, bias=True), 8, 3, 1,
     [-80, 92, -108, 82, -128, 42, -30, 32, -79, 92, -113, 86, -128, 42, -33, 35, -74, 92, -114, 82, -128, 42, -34,
      32, -82, 92, -110, 94, -128, 42, -31, 41, -82, 92, -113, 98, -128, 42, -33, 44, -79, 92, -113, 86, -128, 42,
      -33, 35, -80, 92, -108, 98, -128, 42, -30, 44, -82, 92, -110, 94, -128, 42, -31, 41, -80, 92, -108, 82, -128,
      42, -30, 32]),
    ("stride3_right_border", dict(in_type="i2", out_type="u4", w_type="i8", H=6, W=6, Ci=4, Co=4, Kh=2, Kw=2,
     stride=(3, 3), pad=(0, 1, 1, 1), relu=1, bn=1), 1, 3, 3,
     [0, 13, 15, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 13, 15, 0, 0, 5, 0, 0, 0, 5, 0, 0]),
]


def _ramp(shape, q, mul, add):
    n = int(np.prod(shape))
    return (q.lo + (np.arange(n) * mul + add) % (q.hi - q.lo + 1)).reshape(shape)


def _ramp_inputs(cfg, out_mult, out_shift):
    C = cfg.Co
    x = _ramp((cfg.H, cfg.W, C), cfg.in_type, 37, 11)
    w = _ramp((C, cfg.Kh, cfg.Kw), cfg.w_type, 23, 5)
    kappa = ((np.arange(C) % 5 + 1) * (-1) ** np.arange(C)).astype(np.int32)
    lam = (np.arange(C) * 7 - 20).astype(np.int32)
    bias = ((np.arange(C) * 29) % 256 - 128).astype(np.int32) if cfg.bias else None
    return x, w, depthwise.Params(kappa, lam, np.int32(out_mult), np.int32(out_shift), bias)


@pytest.mark.parametrize("name, kw, ncores, out_mult, out_shift, want", RECORDED, ids=[r[0] for r in RECORDED])
def test_library_quirks_recorded_from_the_c_kernel(name, kw, ncores, out_mult, out_shift, want):
    cfg = depthwise.Config(**kw)
    cluster = Cluster(num_cores=ncores)
    x, w, params = _ramp_inputs(cfg, out_mult, out_shift)
    want = np.asarray(want).reshape(cfg.Ho, cfg.Wo, cfg.Co)
    xw, ww = depthwise.pack_inputs(x, w, cfg)
    ones = np.ones_like(want)
    got = {"run": _unpack(depthwise.run(xw, ww, params, cfg=cfg, cluster=cluster), cfg),
           "twin": depthwise.reference(x, w, params, cfg, cluster)}
    for path, g in got.items():
        assert np.array_equal(g, want), f"{name} {path}: " + testing.first_mismatches(g, want, ones)
    ideal = np.asarray(depthwise.run_values(x, w, params, cfg=cfg, cluster=cluster))
    np.testing.assert_array_equal(ideal, depthwise.reference(x, w, params, cfg.replace(semantics="ideal"), cluster))
    assert not np.array_equal(ideal, want), f"{name}: the quirk is not visible in this record"


def test_recorded_quirks_through_the_shared_bucket():
    calls, wants = [], []
    for name, kw, ncores, out_mult, out_shift, want in RECORDED:
        cfg = depthwise.Config(**kw)
        x, w, params = _ramp_inputs(cfg, out_mult, out_shift)
        calls.append(_golden.GoldenCall({"id": name}, cfg, Cluster(num_cores=ncores),
                                        depthwise.pack_inputs(x, w, cfg) + (params,)))
        wants.append(np.asarray(want).reshape(cfg.Ho, cfg.Wo, cfg.Co))
    outs = _golden.depthwise.run_golden_batch(calls)
    failures = [f"{c.meta['id']}: " + testing.first_mismatches(g, want, np.ones_like(want))
                for c, g, want in zip(calls, outs, wants, strict=True) if not np.array_equal(g, want)]
    report(failures, len(calls), "depthwise recorded quirks, bucketed path")


def _random_layer(rng, cfg):
    C = cfg.Co
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (cfg.H, cfg.W, C))
    w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (C, cfg.Kh, cfg.Kw))
    params = depthwise.Params(kappa=rng.integers(-30, 30, C).astype(np.int32),
                              lam=rng.integers(-500, 500, C).astype(np.int32),
                              out_mult=np.int32(rng.integers(0, 1 << 16)), out_shift=np.int32(rng.integers(0, 10)),
                              bias=rng.integers(-128, 128, C).astype(np.int32) if cfg.bias else None)
    return x, w, params


def test_random_configs_match_the_twin():
    # One shared bucket (one compile): random precisions and geometries that check() accepts, library and ideal.
    rng = np.random.default_rng(7)
    types = ["u8", "u4", "u2", "i8", "i4", "i2"]
    items = []
    quirky = 0
    while len(items) < 48:
        it, ot, wt = rng.choice(types), rng.choice(types), rng.choice(["i8", "i4", "i2"])
        Kh, Kw = int(rng.integers(1, 6)), int(rng.integers(2, 6))
        pad = tuple(int(rng.integers(0, k)) for k in (Kh, Kh, Kw, Kw))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        H, W = int(rng.integers(1, 11)), int(rng.integers(1, 11))
        if min(out_dim(H, pad[0], pad[1], Kh, stride[0]), out_dim(W, pad[2], pad[3], Kw, stride[1])) < 1:
            continue
        G = 8 // min(int(it[1]), int(ot[1]), int(wt[1]))
        C = G * int(rng.integers(1, 4))
        cfg = depthwise.Config(it, ot, wt, H=H, W=W, Ci=C, Co=C, Kh=Kh, Kw=Kw, stride=stride, pad=pad,
                               relu=int(rng.integers(0, 3)), bn=int(rng.integers(0, 2)), bias=bool(rng.integers(0, 2)),
                               semantics=str(rng.choice(["library", "ideal"])))
        cluster = Cluster(num_cores=int(rng.choice([1, 2, 8])))
        try:
            depthwise.check(cfg, cluster)
        except UnsupportedConfig:
            continue
        x, w, params = _random_layer(rng, cfg)
        want = depthwise.reference(x, w, params, cfg, cluster)
        if cfg.semantics == "library":
            ideal = depthwise.reference(x, w, params, cfg.replace(semantics="ideal"), cluster)
            quirky += not np.array_equal(ideal, want)
        items.append((_golden.GoldenCall({}, cfg, cluster, depthwise.pack_inputs(x, w, cfg) + (params,)), want))
    assert quirky >= 5  # horizontal-phase reads and bias indexing do show up
    outs = _golden.depthwise.run_golden_batch([c for c, _ in items])
    failures = [f"{c.cfg} ncores={c.cluster.num_cores}: " + testing.first_mismatches(o, want, np.ones_like(want))
                for (c, want), o in zip(items, outs, strict=True) if not np.array_equal(o, want)]
    report(failures, len(items), "depthwise random configurations vs twin")


def test_batch_equals_loop():
    cfg = depthwise.Config("u4", "i4", "i2", H=6, W=7, Ci=8, Co=8, pad=(1, 1, 1, 1), relu=0, bn=0, bias=True)
    rng = np.random.default_rng(1)
    _, w, params = _random_layer(rng, cfg)
    xs = rng.integers(0, 16, (3, cfg.H, cfg.W, cfg.Co))
    xw = packing.pack_planes(xs, cfg.in_type)
    ww = depthwise.pack_inputs(xs[0], w, cfg)[1]
    batched = np.asarray(depthwise.run(xw, ww, params, cfg=cfg))
    looped = np.stack([np.asarray(depthwise.run(xi, ww, params, cfg=cfg)) for xi in xw])
    np.testing.assert_array_equal(batched, looped)
    values = np.asarray(depthwise.run_values(xs, w, params, cfg=cfg))
    for i in range(3):
        np.testing.assert_array_equal(values[i], depthwise.reference(xs[i], w, params,
                                                                     cfg.replace(semantics="ideal")))


def test_compiles_once_per_config():
    cfg = depthwise.Config("u8", "i4", "i8", H=5, W=7, Ci=12, Co=12, pad=(1, 1, 1, 1), relu=2)
    rng = np.random.default_rng(2)
    before = depthwise._fast_packed._cache_size()
    for _ in range(3):
        x, w, params = _random_layer(rng, cfg)
        depthwise.run(*depthwise.pack_inputs(x, w, cfg), params, cfg=cfg)
    assert depthwise._fast_packed._cache_size() == before + 1
    # the golden runner: one compiled function for every golden configuration
    before = depthwise._packed_cases._cache_size()
    _golden.depthwise.run_golden_batch([c for c, _ in _calls()[:130]])
    assert depthwise._packed_cases._cache_size() <= before + 2


def test_run_inside_jit_with_traced_arguments():
    cfg = depthwise.Config("i8", "u4", "i4", H=5, W=6, Ci=4, Co=4, stride=(2, 2), pad=(1, 1, 1, 1), bias=True)
    x, w, params = _random_layer(np.random.default_rng(3), cfg)
    xw, ww = depthwise.pack_inputs(x, w, cfg)
    eager = np.asarray(depthwise.run(xw, ww, params, cfg=cfg))
    traced = jax.jit(lambda a, b, p: depthwise.run(a, b, p, cfg=cfg))(xw, ww, params)
    np.testing.assert_array_equal(np.asarray(traced), eager)


# (config overrides, rule, lifted by semantics="ideal"); each library rule's case was run on the C kernel:
# undefined elements (small kernel, border over-read), a write into another core's scratch or past the scratch
# buffer (strip overflow), writes past the output buffer (degenerate width).
RULES = [
    (dict(Kh=1, Kw=3, pad=(0, 0, 1, 1)), "depthwise-small-kernel", True),
    (dict(Kh=3, Kw=1, pad=(1, 1, 0, 0)), "depthwise-small-kernel", True),
    (dict(stride=(2, 2), pad=(0, 1, 0, 1)), "depthwise-border-overread", True),
    (dict(Kh=2, Kw=2, pad=(0, 0, 1, 0)), "depthwise-strip-overflow", True),
    (dict(Kh=4, Kw=1, pad=(1, 2, 0, 0)), "depthwise-strip-overflow", True),
    (dict(W=1, pad=(1, 1, 1, 1)), "depthwise-degenerate-width", True),
    (dict(Ci=8), "depthwise-channels", False),
    (dict(Ci=6, Co=6, out_type="u2"), "depthwise-channel-multiple", False),
    (dict(Ho=5), "output-geometry", False),
    (dict(H=300, W=300), "uint16-extent", False),
]


@pytest.mark.parametrize("kw, rule, lifted", RULES, ids=[f"{r[1]}-{i}" for i, r in enumerate(RULES)])
def test_check_names_the_rule(kw, rule, lifted):
    base = dict(in_type="u4", out_type="i4", w_type="i4", H=4, W=4, Ci=4, Co=4, relu=0, bn=0)
    base.update(kw)
    cfg = depthwise.Config(**base)
    with pytest.raises(UnsupportedConfig, match=rule) as e:
        depthwise.check(cfg)
    assert e.value.rule == rule and ("semantics='ideal'" in str(e.value)) == lifted
    if lifted:
        depthwise.check(cfg.replace(semantics="ideal"))
    else:
        with pytest.raises(UnsupportedConfig, match=rule):
            depthwise.check(cfg.replace(semantics="ideal"))


def test_check_accepts_the_common_layers():
    for kw in (dict(H=112, W=112, Ci=32, Co=32, pad=(1, 1, 1, 1)),
               dict(H=112, W=112, Ci=64, Co=64, stride=(2, 2), pad=(0, 1, 0, 1), Ho=56, Wo=56),
               dict(H=7, W=7, Ci=1024, Co=1024, pad=(1, 1, 1, 1), bias=True)):
        # stride 2 TF "SAME" on an even image (pad bottom/right): the last column's middle-phase taps run past
        # the last row of the last plane (memory after the input, §8.4); top/left padding has no such column
        cfg = depthwise.Config("u8", "u8", "i8", **kw)
        if cfg.stride == (2, 2):
            with pytest.raises(UnsupportedConfig, match="depthwise-border-overread"):
                depthwise.check(cfg)
            cfg = cfg.replace(pad=(1, 0, 1, 0))
        depthwise.check(cfg)


def test_bad_inputs_name_the_argument():
    cfg = depthwise.Config("u4", "u4", "i4", H=4, W=4, Ci=4, Co=4, pad=(1, 1, 1, 1), bias=True)
    x, w, params = _random_layer(np.random.default_rng(4), cfg)
    xw, ww = depthwise.pack_inputs(x, w, cfg)
    with pytest.raises(JaxpulpError, match="x_words.*uint32"):
        depthwise.run(xw.astype(np.int32), ww, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="x_words.*shape"):
        depthwise.run(xw[:1], ww, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w_words.*shape"):
        depthwise.run(xw, ww[:1], params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.kappa"):
        depthwise.run(xw, ww, params._replace(kappa=np.zeros(3, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.lam"):
        depthwise.run(xw, ww, params._replace(lam=np.zeros(4, np.float32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match=r"params.bias: value 200 .*\[-128, 127\]"):
        depthwise.run(xw, ww, params._replace(bias=np.full(4, 200, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.bias=None"):
        depthwise.run(xw, ww, params._replace(bias=None), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.bias is given"):
        depthwise.run(xw, ww, params, cfg=cfg.replace(bias=False))
    with pytest.raises(JaxpulpError, match="params.out_shift"):
        depthwise.run(xw, ww, params._replace(out_shift=np.zeros(2, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="x: shape"):
        depthwise.run_values(x[:2], w, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w: shape"):
        depthwise.run_values(x, np.transpose(w, (1, 2, 0)), params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="x: dtype"):
        depthwise.run_values(x.astype(np.float32), w, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="x: value 16 out of range for u4"):
        depthwise.run_values(np.where(np.arange(x.size).reshape(x.shape) == 5, 16, x), w, params, cfg=cfg)


def test_run_returns_per_core_cost():
    cfg = depthwise.Config("u8", "u8", "i8", H=6, W=6, Ci=16, Co=16, pad=(1, 1, 1, 1))
    x, w, params = _random_layer(np.random.default_rng(5), cfg)
    res = depthwise.run(*depthwise.pack_inputs(x, w, cfg), params, cfg=cfg, return_cost=True)
    assert res.output.dtype == np.uint32
    assert len(res.cost.per_core) == 8 and all(c.macs == 2 * 36 * 9 for c in res.cost.per_core)
    assert sum(c.macs for c in res.cost.per_core) == cfg.macs
    assert depthwise.cost(cfg).cycles == res.cost.cycles


def test_64bit_bn_tree():
    # bn_bits=64 (the 64bit/ tree, §4.3): kappa*acc + lambda in 64 bits, the clip sees the low 32 bits.
    cfg = depthwise.Config("u8", "i8", "i8", H=4, W=5, Ci=4, Co=4, pad=(1, 1, 1, 1), relu=1, bn=1, bn_bits=64)
    x, w, params = _random_layer(np.random.default_rng(6), cfg)
    params = params._replace(kappa=np.array([1 << 20, -(1 << 22), 3, 1 << 24], np.int32), out_shift=np.int32(40))
    want = depthwise.reference(x, w, params, cfg)
    got = _unpack(depthwise.run(*depthwise.pack_inputs(x, w, cfg), params, cfg=cfg), cfg)
    np.testing.assert_array_equal(got, want)
    call = _golden.GoldenCall({}, cfg, Cluster(), depthwise.pack_inputs(x, w, cfg) + (params,))
    bucketed = _golden.depthwise.run_golden_batch([call])[0]
    np.testing.assert_array_equal(bucketed, want)
    assert not np.array_equal(want, depthwise.reference(x, w, params, cfg.replace(bn_bits=32)))
