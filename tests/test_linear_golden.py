"""Linear conformance (quantised and int32-output kernels): every golden case through the packed path, the
value path and the numpy twin; the static path, the work split, the refusal rules and bad inputs."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_util import assert_equal_defined, family, report

from jaxpulp import JaxpulpError, UnsupportedConfig, packing, testing
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _golden, catalog, linear

FAMILIES = ("linear_quant", "linear_noquant")


def _calls(fam, only=None):
    cases, arrays = family(fam)
    out = []
    for meta in cases:
        if only is not None and not only(meta):
            continue
        try:
            out.append((_golden.linear.from_golden(meta, arrays[meta["id"]]), arrays[meta["id"]]))
        except UnsupportedConfig:
            continue
    return out


def test_catalog_maps_both_families_here():
    assert all(catalog.family_module(f) is linear for f in FAMILIES)


@pytest.mark.parametrize("fam", FAMILIES)
def test_packed_path_matches_every_golden_case(fam):
    cases, arrays = family(fam)
    results = testing.run_cases(cases, arrays)
    failures = [f"{r.id} {r.kernel}: {r.message}" for r in results if not r.passed]
    report(failures, len(results), f"{fam} packed path")
    assert sum(r.refused is None for r in results) > 100


@pytest.mark.parametrize("fam", FAMILIES)
def test_check_refuses_exactly_the_undefined_cases(fam):
    cases, arrays = family(fam)
    wrong = []
    for meta in cases:
        try:
            _golden.linear.from_golden(meta, arrays[meta["id"]])
            refused = False
        except UnsupportedConfig:
            refused = True
        if refused != testing.case_should_be_refused(meta):
            wrong.append(f"{meta['id']} {meta['kernel']} N={meta['N']} M={meta['M']} ncores={meta['ncores']} "
                         f"refused={refused} all_defined={meta['all_defined']} guard={meta['guard_written']}")
    report(wrong, len(cases), f"{fam} check()")
    assert any(testing.case_should_be_refused(m) for m in cases)  # the data does exercise refusals


@pytest.mark.parametrize("fam", FAMILIES)
def test_reference_twin_matches_every_defined_case(fam):
    failures = []
    for call, a in _calls(fam):
        got = linear.reference(a["x"], a["w"], call.args[2], call.cfg, call.cluster)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(family(fam)[0]), f"{fam} reference twin")


@pytest.mark.parametrize("fam", FAMILIES)
def test_value_path_equals_packed_path_where_no_quirk_applies(fam):
    pairs = _calls(fam, only=lambda m: m["matches_ideal"])
    assert len(pairs) > 100
    calls, arrays = [c for c, _ in pairs], [a for _, a in pairs]
    values = _golden.linear.run_values_golden_batch(calls, arrays)
    packed = _golden.linear.run_golden_batch(calls)
    failures = [f"{c.meta['id']}: " + testing.first_mismatches(v, p, np.ones_like(p))
                for c, v, p in zip(calls, values, packed, strict=True) if not np.array_equal(v, p)]
    report(failures, len(calls), f"{fam} value path vs packed path")


def _quirk_kind(meta):
    bi, bw = int(meta["in_type"][1:]), int(meta["w_type"][1:])
    if meta["out_type"][1:] == "2" and bi == 2 and bw == 4:
        return "wrong-row"
    if bw == 2 and bi in (8, 4):
        return "lost-weights"
    return "kappa0"


def test_value_path_differs_where_the_quirks_apply():
    # the quirks must be visible: ideal != library (== golden) on every deterministic-quirk case
    pairs = _calls("linear_quant", only=lambda m: not m["matches_ideal"])
    assert {_quirk_kind(c.meta) for c, _ in pairs} == {"wrong-row", "lost-weights", "kappa0"}
    values = _golden.linear.run_values_golden_batch([c for c, _ in pairs], [a for _, a in pairs])
    assert all(not np.array_equal(v, a["out"]) for v, (_, a) in zip(values, pairs, strict=True))


def test_static_path_matches_golden_on_each_quirk_and_width():
    # ``run`` (one compile per cfg, static shifts) on one case per (quirk, output width, family)
    picked = {}
    for fam in FAMILIES:
        for call, a in _calls(fam):
            m = call.meta
            key = (fam, m["out_type"][1:], m["matches_ideal"] or _quirk_kind(m), m["ncores"])
            picked.setdefault(key, (call, a))
    assert len(picked) >= 10
    failures = []
    for call, a in picked.values():
        x_words, w_words, params = call.args
        out = linear.run(x_words, w_words, params, cfg=call.cfg, cluster=call.cluster)
        got = _golden.linear.unpack_output(np.asarray(out), call.cfg)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(picked), "linear static path")


def _layer(cfg, rng, batch=None):
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (cfg.N,) if batch is None else (batch, cfg.N))
    w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (cfg.M, cfg.N))
    q = cfg.quantized
    params = linear.Params(kappa=rng.integers(-50, 50, cfg.M).astype(np.int32) if q else None,
                           lam=rng.integers(-2000, 2000, cfg.M).astype(np.int32) if q else None,
                           out_mult=int(rng.integers(0, 1 << 16)), out_shift=int(rng.integers(0, 12)),
                           bias=rng.integers(-500, 500, cfg.M).astype(np.int32) if cfg.bias else None)
    return x, w, params


@pytest.mark.parametrize("types, M, ncores", [
    (("u4", "i8", "i2"), 24, 8),   # 8-bit output, odd chunk: leftover neurons (kappa[0], lost weights)
    (("i2", "u2", "i4"), 16, 1),   # 2-bit output: wrong-row quads
    (("u8", "i32", "i4"), 10, 8),  # int32 output
])
def test_batch_equals_loop(types, M, ncores):
    cfg = linear.Config(*types, N=32, M=M, relu=1, bn=1, bias=True)
    cluster = Cluster(num_cores=ncores)
    x, w, params = _layer(cfg, np.random.default_rng(1), batch=3)
    xw = np.stack([packing.pack(xi, cfg.in_type) for xi in x])
    ww = packing.pack(w, cfg.w_type)
    batched = np.asarray(linear.run(xw, ww, params, cfg=cfg, cluster=cluster))
    looped = np.stack([np.asarray(linear.run(xi, ww, params, cfg=cfg, cluster=cluster)) for xi in xw])
    np.testing.assert_array_equal(batched, looped)
    for xi, out in zip(x, batched, strict=True):
        np.testing.assert_array_equal(_golden.linear.unpack_output(out, cfg),
                                      linear.reference(xi, w, params, cfg, cluster))
    vb = np.asarray(linear.run_values(x, w, params, cfg=cfg, cluster=cluster))
    vl = np.stack([np.asarray(linear.run_values(xi, w, params, cfg=cfg, cluster=cluster)) for xi in x])
    np.testing.assert_array_equal(vb, vl)


def test_random_configs_match_reference_twin():
    # many configurations (library and ideal, 1..8 cores, all widths) through one shared compiled function
    rng = np.random.default_rng(7)
    types = ["u8", "u4", "u2", "i8", "i4", "i2"]
    calls, refs = [], []
    while len(calls) < 160:
        it, wt = str(rng.choice(types)), str(rng.choice(["i8", "i4", "i2"]))
        ot = str(rng.choice(types + ["i32"]))
        semantics = str(rng.choice(["library", "ideal"]))
        step = 16 if semantics == "library" else 1
        cfg = linear.Config(it, ot, wt, N=int(rng.integers(1, 5)) * step + int(rng.integers(0, 2)) * 3,
                            M=int(rng.integers(1, 41)), relu=int(rng.choice([0, 1, 1, 2])),
                            bn=int(rng.choice([0, 1, 1])), bias=bool(rng.integers(0, 2)), semantics=semantics)
        cluster = Cluster(num_cores=int(rng.choice([1, 2, 4, 8])))
        try:
            linear.check(cfg, cluster)
        except UnsupportedConfig:
            continue
        x, w, params = _layer(cfg, rng)
        calls.append(_golden.GoldenCall({}, cfg, cluster,
                                        (packing.pack(x, cfg.in_type), packing.pack(w, cfg.w_type), params)))
        refs.append(linear.reference(x, w, params, cfg, cluster))
    got = _golden.linear.run_golden_batch(calls)
    failures = [f"{c.cfg} on {c.cluster.num_cores} cores: " + testing.first_mismatches(g, r, np.ones_like(r))
                for c, g, r in zip(calls, got, refs, strict=True) if not np.array_equal(g, r)]
    report(failures, len(calls), "random linear configurations")
    assert {c.cfg.semantics for c in calls} == {"library", "ideal"}


def test_traced_split_equals_static_split():
    grid = list(itertools.product(range(1, 70), (1, 2, 4, 8), (8, 4, 2, 32)))
    m, nc, bo = (jnp.array(v, jnp.int32) for v in zip(*grid, strict=True))

    def all_cores(m_, n_, b_):
        return cluster_run.over_cores(lambda c: jnp.stack(cluster_run.linear_split(c, m_, n_, b_)))

    got = np.asarray(jax.jit(jax.vmap(all_cores))(m, nc, bo))
    for i, (m_, n_, b_) in enumerate(grid):
        for core in range(8):
            want = split.linear_split(core, m_, n_, None if b_ == 32 else b_) if core < n_ else (0, 0)
            assert tuple(got[i, core]) == tuple(want), (m_, n_, b_, core)


def test_split_examples():
    # semantics.md §9.2 / library_defects.md 6 (8 cores): 2-bit M=48 leaves 32..47 uncomputed; 4-bit M=24 odd
    assert split.linear_split(7, 48, 8, 2) == (28, 32)
    assert split.linear_split(1, 24, 8, 4) == (3, 6)
    assert split.linear_split(3, 9, 8, 8) == (6, 8) and split.linear_split(4, 9, 8, 8) == (8, 9)


@pytest.mark.parametrize("kw, ncores, rule", [
    (dict(in_type="u4", w_type="i8", N=12), 8, "linear-reduction-tail"),
    (dict(in_type="u8", w_type="i2", N=24), 8, "linear-reduction-tail"),
    (dict(out_type="u8", M=9), 8, "linear-short-last-chunk"),   # chunk 2, last core gets 1 neuron
    (dict(out_type="i32", M=20), 8, "linear-short-last-chunk"),  # chunk 3, last busy core gets 2
    (dict(out_type="u4", M=24), 8, "linear-nibble-race"),
    (dict(out_type="u2", M=48), 8, "linear-uncomputed-neurons"),
    (dict(out_type="u2", M=12), 2, "linear-uncomputed-neurons"),  # chunk 6 -> 4 per core
    (dict(N=70000), 8, "uint16-extent"),
])
def test_check_names_the_rule(kw, ncores, rule):
    base = dict(in_type="u8", out_type="u8", w_type="i8", N=32, M=16)
    base.update(kw)
    cfg = linear.Config(**base)
    cluster = Cluster(num_cores=ncores)
    with pytest.raises(UnsupportedConfig, match=rule):
        linear.check(cfg, cluster)
    if rule != "uint16-extent":
        linear.check(cfg.replace(semantics="ideal"), cluster)  # the ideal semantics lifts library defects


def test_defined_odd_shapes_are_accepted():
    # 8-bit data: any N; odd chunks end in a leftover neuron (modelled, not refused); 4-bit chunk 1 -> 2
    linear.check(linear.Config("u8", "u8", "i8", N=5, M=9), Cluster(num_cores=1))
    linear.check(linear.Config("i8", "i32", "i8", N=7, M=24))
    linear.check(linear.Config("u8", "u4", "i8", N=32, M=2))
    linear.check(linear.Config("u8", "u2", "i8", N=32, M=4))


@pytest.mark.parametrize("types, M, ncores", [
    (("u8", "u4", "i8"), 9, 8),    # chunk 2: the last core's pair is (8, phantom 9)
    (("i4", "i4", "i4"), 7, 8),    # chunk 1 -> 2 per core: core 3's pair is (6, phantom 7)
    (("u8", "u2", "i8"), 10, 1),   # one core: quads (0..3), (4..7), (8, 9, phantoms 10, 11)
    (("u4", "i2", "i8"), 6, 8),    # chunk 1 -> 4: the second core's quad is (4, 5, phantoms 6, 7)
])
def test_partial_last_output_byte_is_modelled_not_refused(types, M, ncores):
    # the phantom neurons only fill the unused high bits of the last byte: every real output is the plain integer
    # model's value (these configurations have no other quirk), the phantom bits are marked undefined
    cfg = linear.Config(*types, N=32, M=M, relu=1, bn=1, bias=True)
    cluster = Cluster(num_cores=ncores)
    linear.check(cfg, cluster)
    x, w, params = _layer(cfg, np.random.default_rng(M), batch=4)
    xw = np.stack([packing.pack(xi, cfg.in_type) for xi in x])
    out = np.asarray(linear.run(xw, packing.pack(w, cfg.w_type), params, cfg=cfg, cluster=cluster))
    acc = x.astype(np.int64) @ w.T.astype(np.int64) + params.bias
    v = (np.asarray(params.kappa, np.int64) * acc + params.lam) >> int(params.out_shift)
    want = np.clip(v, cfg.out_type.lo, cfg.out_type.hi)
    got = np.asarray(packing.unpack(out, cfg.out_type, M)).reshape(4, M)
    assert (got == want).all()
    for xi, row in zip(x, want, strict=True):
        assert (linear.reference(xi, w, params, cfg, cluster) == row).all()
    mask = linear.defined_mask(cfg)
    assert mask.shape == out.shape[1:] and (out & ~mask == 0).all()
    assert bin(int(mask[-1])).count("1") == (M * cfg.out_type.bits) % 32 or (M * cfg.out_type.bits) % 32 == 0


def test_bad_inputs_name_the_argument():
    cfg = linear.Config("u4", "u4", "i4", N=16, M=8)
    x, w, params = _layer(cfg, np.random.default_rng(3))
    xw, ww = packing.pack(x, cfg.in_type), packing.pack(w, cfg.w_type)
    with pytest.raises(JaxpulpError, match="x_words.*uint32"):
        linear.run(xw.astype(np.int32), ww, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w_words.*shape"):
        linear.run(xw, ww[:1], params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.kappa"):
        linear.run(xw, ww, params._replace(kappa=np.zeros(3, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.lam=None"):
        linear.run(xw, ww, params._replace(lam=None), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.bias"):
        linear.run(xw, ww, params._replace(bias=np.zeros(8, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.out_shift"):
        linear.run(xw, ww, params._replace(out_shift=1.5), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.kappa is given"):
        linear.run(xw, ww, params, cfg=cfg.replace(out_type="i32"))
    with pytest.raises(JaxpulpError, match="x: shape"):
        linear.run_values(x[:2], w, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w: shape"):
        linear.run_values(x, w.T, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w_type"):
        linear.Config("u4", "u4", "u4", N=16, M=8)
    with pytest.raises(JaxpulpError, match="out_type"):
        linear.Config("u4", "u32", "i4", N=16, M=8)
    with pytest.raises(JaxpulpError, match="family"):
        _golden.linear.config_from_golden({"family": "conv"})
