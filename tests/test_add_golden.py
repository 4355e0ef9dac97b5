"""Add conformance (requantising and legacy add): every golden case through the packed path, the value path and
the numpy twin; the written-element masks from the work split, the refusal rules and bad inputs."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_util import assert_equal_defined, family, report

from jaxpulp import JaxpulpError, UnsupportedConfig, packing, testing
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _golden, add, catalog

CASES, ARRAYS = family("add")  # add.json holds both families ("add" and "add_legacy")
TYPES = ["u8", "u4", "u2", "i8", "i4", "i2"]


def _calls(only=None):
    out = []
    for meta in CASES:
        if only is not None and not only(meta):
            continue
        try:
            out.append((_golden.add.from_golden(meta, ARRAYS[meta["id"]]), ARRAYS[meta["id"]]))
        except UnsupportedConfig:
            continue
    return out


def test_catalog_maps_both_families_here():
    assert catalog.family_module("add") is add and catalog.family_module("add_legacy") is add
    assert {m["family"] for m in CASES} == {"add", "add_legacy"}


def test_packed_path_matches_every_golden_case():
    results = testing.run_cases(CASES, ARRAYS)
    failures = [f"{r.id} {r.kernel}: {r.message}" for r in results if not r.passed]
    report(failures, len(results), "add packed path")
    assert len(results) == 666 and sum(r.refused is not None for r in results) == 49


def test_check_refuses_exactly_the_undefined_cases():
    wrong, rules = [], set()
    for meta in CASES:
        try:
            _golden.add.from_golden(meta, ARRAYS[meta["id"]])
            refused = False
        except UnsupportedConfig as e:
            refused = True
            rules.add((meta["family"], e.rule))
        if refused != testing.case_should_be_refused(meta):
            wrong.append(f"{meta['id']} {meta['kernel']} {meta['H']}x{meta['W']}x{meta['Ci']} ncores={meta['ncores']} "
                         f"refused={refused} all_defined={meta['all_defined']} guard={meta['guard_written']}")
    report(wrong, len(CASES), "add check()")
    assert rules == {("add", "add-subbyte-tail"), ("add_legacy", "add-legacy-overrun"),
                     ("add_legacy", "add-legacy-tail")}


def test_written_mask_equals_the_golden_defined_mask():
    # the per-core element ranges (split.row_split + the C loop bounds) predict every undefined element,
    # refused cases included; the traced twin of the mask agrees
    failures = []
    for meta in CASES:
        cfg, cluster = _golden.add.config_from_golden(meta), _golden.cluster_of(meta)
        mask = add.written_mask(cfg, cluster)
        if not np.array_equal(mask, ARRAYS[meta["id"]]["defined"] != 0):
            failures.append(f"{meta['id']} {meta['kernel']} ncores={meta['ncores']}")
        out_of_bounds = max(e1 for _, e1 in add.core_ranges(cfg, cluster)) > cfg.H * cfg.W * cfg.C
        if out_of_bounds != bool(meta["guard_written"]):
            failures.append(f"{meta['id']}: out-of-bounds={out_of_bounds} guard_written={meta['guard_written']}")
    report(failures, len(CASES), "add written mask")


def test_traced_written_mask_equals_static_mask():
    cfgs = []
    for h, w, c, nc, legacy, t in itertools.product((1, 3, 4, 9, 10), (1, 3, 5), (4, 8), (1, 2, 8), (0, 1),
                                                    ("u8", "u4")):
        cfg = (add.AddLegacyConfig(t, "u2", H=h, W=w, C=c) if legacy
               else add.AddConfig(t, "i8", "u8", H=h, W=w, C=c))
        cfgs.append((cfg, Cluster(num_cores=nc)))
    bk = add.Bucket(512)
    g = jax.tree_util.tree_map(lambda *v: np.stack(v), *[add.geometry(c, cl) for c, cl in cfgs])
    for legacy in (False, True):
        got = np.asarray(jax.jit(jax.vmap(lambda g_, legacy=legacy: add._written(g_, bk, legacy)))(g))
        for (cfg, cl), m in zip(cfgs, got, strict=True):
            if isinstance(cfg, add.AddLegacyConfig) == legacy:
                n = cfg.H * cfg.W * cfg.C
                np.testing.assert_array_equal(m[:n], add.written_mask(cfg, cl).reshape(-1), err_msg=f"{cfg} {cl}")
                assert not m[n:].any()


def test_reference_twin_matches_every_defined_case():
    failures = []
    pairs = _calls()
    for call, a in pairs:
        got = add.reference(a["x1"], a["x2"], call.args[2], call.cfg, call.cluster)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(pairs), "add reference twin")


def test_value_path_equals_packed_path_where_no_quirk_applies():
    pairs = _calls(only=lambda m: m["matches_ideal"])
    assert len(pairs) == 617
    calls, arrays = [c for c, _ in pairs], [a for _, a in pairs]
    values = _golden.add.run_values_golden_batch(calls, arrays)
    packed = _golden.add.run_golden_batch(calls)
    failures = [f"{c.meta['id']}: " + testing.first_mismatches(v, p, np.ones_like(p))
                for c, v, p in zip(calls, values, packed, strict=True) if not np.array_equal(v, p)]
    report(failures, len(calls), "add value path vs packed path")


def test_ideal_semantics_computes_the_dropped_elements():
    # every non-ideal add case is a refused one (unwritten elements); the ideal semantics accepts all 49 refused
    # cases, writes every element and agrees with the library wherever the library wrote
    metas = [m for m in CASES if testing.case_should_be_refused(m)]
    assert len(metas) == 49 and {m["id"] for m in CASES if not m["matches_ideal"]} <= {m["id"] for m in metas}
    calls = []
    for m in metas:
        cfg = _golden.add.config_from_golden(m).replace(semantics="ideal")
        a = ARRAYS[m["id"]]
        calls.append(_golden.GoldenCall(m, cfg, _golden.cluster_of(m), (
            packing.pack_hwc(a["x1"], cfg.in1_type), packing.pack_hwc(a["x2"], cfg.in2_type),
            _golden.add.params_from_golden(m))))
    packed = _golden.add.run_golden_batch(calls)
    values = _golden.add.run_values_golden_batch(calls, [ARRAYS[m["id"]] for m in metas])
    for c, p, v in zip(calls, packed, values, strict=True):
        a = ARRAYS[c.meta["id"]]
        np.testing.assert_array_equal(p, v)
        np.testing.assert_array_equal(p, add.reference(a["x1"], a["x2"], c.args[2], c.cfg, c.cluster))
        assert_equal_defined(p, a["out"], a["defined"], c.meta["id"])


def test_static_path_matches_golden():
    picked = {}
    for call, a in _calls():
        m = call.meta
        picked.setdefault((m["family"], m["out_type"], m["scenario"]), (call, a))
    failures = []
    for call, a in picked.values():
        cfg = call.cfg
        out = add.run(*call.args, cfg=cfg, cluster=call.cluster)
        got = packing.unpack_hwc(np.asarray(out), (cfg.H, cfg.W, cfg.C), cfg.out_type)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    assert len(picked) >= 25
    report(failures, len(picked), "add static path")


# ------------------------------------------------------------------------------------- quirks by hand


def test_inputs_clip_to_the_8_bit_range_whatever_their_width():
    # u2 input 3 * 50 = 150 stays 150 (clip8, not clip2); i4 input -8 * 20 = -160 clips to -128 (not -8)
    cfg = add.AddConfig("u2", "i4", "i8", H=1, W=1, C=4, requant=1)
    p = add.Params(in1_mul=50, in2_mul=20, out_mul=1, out_add=0, out_shift=1)
    x1, x2 = np.full((1, 1, 4), 3), np.full((1, 1, 4), -8)
    out = add.run(packing.pack_hwc(x1, cfg.in1_type), packing.pack_hwc(x2, cfg.in2_type), p, cfg=cfg)
    got = packing.unpack_hwc(np.asarray(out), (1, 1, 4), cfg.out_type)
    assert got.reshape(-1).tolist() == [(150 - 128) >> 1] * 4
    np.testing.assert_array_equal(got, add.reference(x1, x2, p, cfg))


def test_legacy_add_is_unsigned_with_a_logical_shift():
    # out_mult2 = 0xFFFF is int16 -1: 10*3 - 200 = -170 -> uint32 >> 1 = 0x7FFFFFAB -> clips at the maximum 255
    cfg = add.AddLegacyConfig("u8", "u8", H=1, W=1, C=4)
    p = add.LegacyParams(out_mult1=3, out_mult2=0xFFFF, out_shift=1)
    x1, x2 = np.full((1, 1, 4), 10), np.full((1, 1, 4), 200)
    out = add.run(packing.pack_hwc(x1, cfg.in1_type), packing.pack_hwc(x2, cfg.in2_type), p, cfg=cfg,
                  cluster=Cluster(num_cores=1))
    assert packing.unpack_hwc(np.asarray(out), (1, 1, 4), cfg.out_type).reshape(-1).tolist() == [255] * 4
    with pytest.raises(UnsupportedConfig, match="add-legacy-overrun"):  # 8 cores: core 1 writes [16, 24) of 16
        add.check(add.AddLegacyConfig("u8", "u8", H=2, W=2, C=4))
    add.check(add.AddLegacyConfig("u8", "u8", H=1, W=1, C=4))  # one busy core, 4 elements: defined


# ------------------------------------------------------------------------------------- API, splits, rules


def _params(cfg, rng):
    if isinstance(cfg, add.AddLegacyConfig):
        return add.LegacyParams(*(int(v) for v in rng.integers(0, 1 << 16, 2)), int(rng.integers(0, 40)))
    r = lambda lo, hi: int(rng.integers(lo, hi))  # noqa: E731
    return add.Params(r(-300, 300), r(-3000, 3000), r(0, 40), r(-300, 300), r(-3000, 3000), r(0, 40),
                      r(-300, 300), r(-3000, 3000), r(0, 40))


@pytest.mark.parametrize("ncores", [1, 8])
def test_batch_equals_loop(ncores):
    cluster = Cluster(num_cores=ncores)
    rng = np.random.default_rng(1)
    for cfg in (add.AddConfig("u4", "i2", "i4", H=10, W=3, C=4, requant=1),
                add.AddConfig("i8", "u8", "u8", H=3, W=5, C=3),
                add.AddLegacyConfig("u4", "u2", H=4, W=4, C=4)):
        cl = Cluster(num_cores=1) if isinstance(cfg, add.AddLegacyConfig) else cluster
        p = _params(cfg, rng)
        x1 = rng.integers(cfg.in1_type.lo, cfg.in1_type.hi + 1, (3, cfg.H, cfg.W, cfg.C))
        x2 = rng.integers(cfg.in2_type.lo, cfg.in2_type.hi + 1, (3, cfg.H, cfg.W, cfg.C))
        w1 = np.stack([packing.pack_hwc(v, cfg.in1_type) for v in x1])
        w2 = np.stack([packing.pack_hwc(v, cfg.in2_type) for v in x2])
        batched = np.asarray(add.run(w1, w2, p, cfg=cfg, cluster=cl))
        looped = np.stack([np.asarray(add.run(a, b, p, cfg=cfg, cluster=cl)) for a, b in zip(w1, w2, strict=True)])
        np.testing.assert_array_equal(batched, looped)
        # one operand without a batch axis broadcasts
        np.testing.assert_array_equal(np.asarray(add.run(w1, w2[0], p, cfg=cfg, cluster=cl)),
                                      np.stack([np.asarray(add.run(a, w2[0], p, cfg=cfg, cluster=cl)) for a in w1]))
        for a, b, o in zip(x1, x2, batched, strict=True):
            want = add.reference(a, b, p, cfg, cl)
            np.testing.assert_array_equal(packing.unpack_hwc(o, want.shape, cfg.out_type), want)
        vb = np.asarray(add.run_values(x1, x2, p, cfg=cfg, cluster=cl))
        vl = np.stack([np.asarray(add.run_values(a, b, p, cfg=cfg, cluster=cl)) for a, b in zip(x1, x2, strict=True)])
        np.testing.assert_array_equal(vb, vl)


def test_random_configs_match_reference_twin():
    rng = np.random.default_rng(11)
    calls, refs = [], []
    while len(calls) < 200:
        semantics = str(rng.choice(["library", "ideal"]))
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        if rng.integers(0, 4) == 0:
            t1, t2 = sorted((str(rng.choice(["u8", "u4", "u2"])), str(rng.choice(["u8", "u4", "u2"]))),
                            key=lambda t: -int(t[1:]))
            cfg = add.AddLegacyConfig(t1, t2, H=h, W=w, C=int(rng.choice([4, 8])), semantics=semantics)
        else:
            types = [str(v) for v in rng.choice(TYPES, 3)]
            c = int(rng.choice([1, 2, 3, 4, 8])) if all(t[1:] == "8" for t in types) else int(rng.choice([4, 8]))
            cfg = add.AddConfig(*types, H=h, W=w, C=c, requant=int(rng.integers(0, 2)), semantics=semantics)
        cluster = Cluster(num_cores=int(rng.choice([1, 2, 4, 8])))
        try:
            add.check(cfg, cluster)
        except UnsupportedConfig:
            continue
        p = _params(cfg, rng)
        x1 = rng.integers(cfg.in1_type.lo, cfg.in1_type.hi + 1, (cfg.H, cfg.W, cfg.C))
        x2 = rng.integers(cfg.in2_type.lo, cfg.in2_type.hi + 1, (cfg.H, cfg.W, cfg.C))
        calls.append(_golden.GoldenCall({}, cfg, cluster, (packing.pack_hwc(x1, cfg.in1_type),
                                                           packing.pack_hwc(x2, cfg.in2_type), p)))
        refs.append(add.reference(x1, x2, p, cfg, cluster))
    got = _golden.add.run_golden_batch(calls)
    failures = [f"{c.cfg} on {c.cluster.num_cores} cores: " + testing.first_mismatches(g, r, np.ones_like(r))
                for c, g, r in zip(calls, got, refs, strict=True) if not np.array_equal(g, r)]
    report(failures, len(calls), "random add configurations")
    assert {(type(c.cfg), c.cfg.semantics) for c in calls} == {
        (t, s) for t in (add.AddConfig, add.AddLegacyConfig) for s in ("library", "ideal")}


def test_traced_row_split_equals_static_split():
    grid = list(itertools.product(range(1, 70), (1, 2, 4, 8)))
    rows, nc = (jnp.array(v, jnp.int32) for v in zip(*grid, strict=True))
    got = np.asarray(jax.jit(jax.vmap(lambda r, n: cluster_run.over_cores(
        lambda c: jnp.stack(cluster_run.row_split(c, r, n)))))(rows, nc))
    for i, (r, n) in enumerate(grid):
        for core in range(8):
            assert tuple(got[i, core]) == (split.row_split(core, r, n) if core < n else (0, 0)), (r, n, core)


@pytest.mark.parametrize("cfg, ncores, rule", [
    (add.AddConfig("u4", "u8", "u8", H=4, W=4, C=3), 8, "channel-multiple"),
    (add.AddConfig("u8", "u8", "i2", H=4, W=4, C=6), 8, "channel-multiple"),
    (add.AddConfig("u8", "u8", "u8", H=4, W=70000, C=1), 8, "uint16-extent"),
    (add.AddConfig("u8", "u8", "u4", H=3, W=5, C=2), 8, "add-subbyte-tail"),   # core 1: 10 elements
    (add.AddConfig("i4", "u8", "u8", H=3, W=5, C=2), 1, "add-subbyte-tail"),   # 30 elements
    (add.AddLegacyConfig("u8", "u4", H=4, W=4, C=2), 8, "add-legacy-overrun"),
    (add.AddLegacyConfig("u8", "u8", H=3, W=5, C=2), 1, "add-legacy-tail"),
    (add.AddLegacyConfig("u8", "u8", H=10, W=3, C=1), 8, "add-legacy-tail"),
])
def test_check_names_the_rule(cfg, ncores, rule):
    with pytest.raises(UnsupportedConfig, match=rule):
        add.check(cfg, Cluster(num_cores=ncores))
    if rule.startswith("add-"):
        add.check(cfg.replace(semantics="ideal"), Cluster(num_cores=ncores))  # ideal lifts library defects


def test_more_cores_than_the_default_bucket():
    # a 16-core cluster: the split is evaluated for every core id (bucket.cores), rows 8..15 on cores 8..15
    cfg, cl = add.AddConfig("u8", "i8", "i4", H=16, W=2, C=2, requant=0), Cluster(num_cores=16)
    assert add.core_ranges(cfg, cl)[15] == (60, 64)
    rng = np.random.default_rng(5)
    x1, x2 = rng.integers(0, 256, (16, 2, 2)), rng.integers(-128, 128, (16, 2, 2))
    p = add.Params(in1_mul=1, in2_mul=1)
    out = add.run(packing.pack_hwc(x1, cfg.in1_type), packing.pack_hwc(x2, cfg.in2_type), p, cfg=cfg, cluster=cl)
    want = add.reference(x1, x2, p, cfg, cl)
    np.testing.assert_array_equal(packing.unpack_hwc(np.asarray(out), want.shape, cfg.out_type), want)


def test_defined_shapes_are_accepted():
    add.check(add.AddConfig("u8", "i8", "u8", H=3, W=5, C=3))         # 8/8/8: cleanup loop
    add.check(add.AddConfig("u2", "i4", "u4", H=10, W=3, C=4))        # 12 elements per core
    add.check(add.AddLegacyConfig("u4", "u2", H=4, W=4, C=4), Cluster(num_cores=1))


def test_bad_inputs_name_the_argument():
    cfg = add.AddConfig("u4", "i4", "u8", H=2, W=2, C=4)
    p = add.Params()
    w1 = packing.pack_hwc(np.zeros((2, 2, 4), np.int64), cfg.in1_type)
    with pytest.raises(JaxpulpError, match="x1_words.*uint32"):
        add.run(w1.astype(np.int64), w1, p, cfg=cfg)
    with pytest.raises(JaxpulpError, match="x2_words.*shape"):
        add.run(w1, w1[:1], p, cfg=cfg)
    with pytest.raises(JaxpulpError, match="batch"):
        add.run(np.stack([w1] * 2), np.stack([w1] * 3), p, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.in1_shift=-1"):
        add.run(w1, w1, p._replace(in1_shift=-1), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.out_add"):
        add.run(w1, w1, p._replace(out_add=1 << 31), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.in2_mul"):
        add.run(w1, w1, p._replace(in2_mul=0.5), cfg=cfg)
    with pytest.raises(JaxpulpError, match="expected a Params"):
        add.run(w1, w1, add.LegacyParams(), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params=None"):
        add.run(w1, w1, None, cfg=cfg)
    with pytest.raises(JaxpulpError, match="x2: shape"):
        add.run_values(np.zeros((2, 2, 4), np.int32), np.zeros((2, 4, 2), np.int32), p, cfg=cfg)
    with pytest.raises(JaxpulpError, match="in1_type"):
        add.AddLegacyConfig("i8", "u8", H=2, W=2, C=4)
    with pytest.raises(JaxpulpError, match="requant"):
        add.AddConfig("u8", "u8", "u8", H=2, W=2, C=4, requant=None)
    with pytest.raises(JaxpulpError, match="cfg="):
        add.check(object())
    with pytest.raises(JaxpulpError, match="family"):
        _golden.add.config_from_golden({"family": "maxpool"})
