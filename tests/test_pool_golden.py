"""Pooling conformance (max and average pooling): every golden case through the packed path, the value path and
the numpy twin; the in-place input buffer, the work splits, the refusal rules and bad inputs."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_util import assert_equal_defined, family, report

from jaxpulp import JaxpulpError, UnsupportedConfig, packing, testing
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _golden, catalog, pool

FAMILIES = ("maxpool", "avgpool")
TYPES = ["u8", "u4", "u2", "i8", "i4", "i2"]


def _calls(fam, only=None):
    cases, arrays = family(fam)
    return [(_golden.pool.from_golden(m, arrays[m["id"]]), arrays[m["id"]]) for m in cases if only is None or only(m)]


def test_catalog_maps_both_families_here():
    assert all(catalog.family_module(f) is pool for f in FAMILIES)


@pytest.mark.parametrize("fam", FAMILIES)
def test_packed_path_matches_every_golden_case(fam):
    cases, arrays = family(fam)
    results = testing.run_cases(cases, arrays)
    failures = [f"{r.id} {r.kernel}: {r.message}" for r in results if not r.passed]
    report(failures, len(results), f"{fam} packed path")
    assert sum(r.refused is None for r in results) == len(cases) == {"maxpool": 90, "avgpool": 216}[fam]


@pytest.mark.parametrize("fam", FAMILIES)
def test_check_refuses_exactly_the_undefined_cases(fam):
    # every pooling golden case is defined (no refusals expected); refusals are exercised in test_check_names_*
    cases, arrays = family(fam)
    wrong = []
    for meta in cases:
        try:
            _golden.pool.from_golden(meta, arrays[meta["id"]])
            refused = False
        except UnsupportedConfig as e:
            refused = str(e)
        if bool(refused) != testing.case_should_be_refused(meta):
            wrong.append(f"{meta['id']} {meta['kernel']} refused={refused}")
    report(wrong, len(cases), f"{fam} check()")
    assert not any(testing.case_should_be_refused(m) for m in cases)


@pytest.mark.parametrize("fam", FAMILIES)
def test_reference_twin_matches_every_defined_case(fam):
    pairs = _calls(fam)
    full = _golden.pool.run_golden_batch_full([c for c, _ in pairs])
    failures = []
    for (call, a), packed in zip(pairs, full, strict=True):
        got = pool.reference(a["x"], call.args[1], call.cfg, call.cluster)
        try:
            if fam == "maxpool":
                assert_equal_defined(got.out, a["out"], a["defined"], call.meta["id"])
                # the input buffer after the in-place passes: packed path == twin (the golden files keep the
                # original x only), and columns >= Wo are never touched
                np.testing.assert_array_equal(packed.x, got.x, err_msg=f"{call.meta['id']} input buffer")
                np.testing.assert_array_equal(got.x[:, call.cfg.Wo:], a["x"][:, call.cfg.Wo:])
            else:
                assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(pairs), f"{fam} reference twin")


@pytest.mark.parametrize("fam", FAMILIES)
def test_value_path_equals_packed_path_where_no_quirk_applies(fam):
    pairs = _calls(fam, only=lambda m: m["matches_ideal"])
    assert len(pairs) >= 80
    calls, arrays = [c for c, _ in pairs], [a for _, a in pairs]
    values = _golden.pool.run_values_golden_batch(calls, arrays)
    packed = _golden.pool.run_golden_batch(calls)
    failures = [f"{c.meta['id']}: " + testing.first_mismatches(v, p, np.ones_like(p))
                for c, v, p in zip(calls, values, packed, strict=True) if not np.array_equal(v, p)]
    report(failures, len(calls), f"{fam} value path vs packed path")


@pytest.mark.parametrize("fam, n_quirk", [("maxpool", 10), ("avgpool", 97)])
def test_value_path_differs_where_the_quirks_apply(fam, n_quirk):
    pairs = _calls(fam, only=lambda m: not m["matches_ideal"])
    assert len(pairs) == n_quirk
    values = _golden.pool.run_values_golden_batch([c for c, _ in pairs], [a for _, a in pairs])
    same = [c.meta["id"] for v, (c, a) in zip(values, pairs, strict=True) if np.array_equal(v, a["out"])]
    assert not same, f"ideal == library on quirk cases {same}"
    for (c, a), v in zip(pairs, values, strict=True):  # the ideal twin agrees with the ideal value path
        ref = pool.reference(a["x"], c.args[1], c.cfg.replace(semantics="ideal"), c.cluster)
        np.testing.assert_array_equal(ref.out if fam == "maxpool" else ref, v, err_msg=c.meta["id"])


def test_static_path_matches_golden_per_scenario():
    # ``run`` (one compile per rounded shape; widths and flags are data) on one case per (family, scenario,
    # quirk or not): output and, for max pooling, the returned input buffer
    picked = {}
    for fam in FAMILIES:
        for call, a in _calls(fam):
            picked.setdefault((fam, call.meta["scenario"], call.meta["matches_ideal"]), (call, a))
    failures = []
    for call, a in picked.values():
        cfg = call.cfg
        res = pool.run(call.args[0], call.args[1], cfg=cfg, cluster=call.cluster)
        out = res.out if isinstance(res, pool.MaxPoolResult) else res
        got = packing.unpack_hwc(np.asarray(out), (cfg.Ho, cfg.Wo, cfg.C), cfg.out_type)
        try:
            assert_equal_defined(got, a["out"], a["defined"], call.meta["id"])
            if isinstance(res, pool.MaxPoolResult):
                ref = pool.reference(a["x"], None, cfg, call.cluster)
                xa = packing.unpack_hwc(np.asarray(res.x), (cfg.H, cfg.W, cfg.C), cfg.in_type)
                np.testing.assert_array_equal(xa, ref.x, err_msg=f"{call.meta['id']} input buffer")
        except AssertionError as e:
            failures.append(str(e))
    assert len(picked) >= 20
    report(failures, len(picked), "pool static path")


# ------------------------------------------------------------------------------------- quirks by hand


def _max_row(row, kw, pl, pr, semantics="library", t="u8"):
    cfg = pool.MaxPoolConfig(t, t, H=1, W=len(row), C=4, Kh=1, Kw=kw, stride=(1, 1), pad=(0, 0, pl, pr),
                             semantics=semantics)
    x = np.repeat(np.asarray(row)[None, :, None], 4, axis=2)
    xw = packing.pack_hwc(x, cfg.in_type)
    res = pool.run(xw, cfg=cfg)
    out = packing.unpack_hwc(np.asarray(res.out), (1, cfg.Wo, 4), cfg.out_type)[0, :, 0]
    buf = packing.unpack_hwc(np.asarray(res.x), (1, cfg.W, 4), cfg.in_type)[0, :, 0]
    ref = pool.reference(x, None, cfg)
    np.testing.assert_array_equal(ref.out[0, :, 0], out)
    np.testing.assert_array_equal(ref.x[0, :, 0], buf)
    return out.tolist(), buf.tolist()


@pytest.mark.parametrize("t", ["u8", "i4", "u2"])
def test_maxpool_reads_overwritten_columns(t):
    # stride 1, pad 1: window of xo=3 starts at column 2, already overwritten with max(1, 5, 2) = ... 5
    row = [1, 3, 2, 0] if t != "u8" else [1, 5, 2, 0]
    big = max(row)
    assert _max_row(row, 3, 1, 1, t=t) == ([big] * 4, [big] * 4)
    ideal = _max_row(row, 3, 1, 1, "ideal", t=t)
    assert ideal == ([big, big, big, 2], row)  # ideal: clipped windows, input untouched


def test_maxpool_padded_window_starts_at_the_target_column():
    # pad 2, kernel 3: xo=1 has window start -1 < 0 -> starts at column 1 itself (not 0) and misses the 7
    assert _max_row([7, 1, 0, 0], 3, 2, 0) == ([7, 1, 7, 7], [7, 1, 7, 7])
    assert _max_row([7, 1, 0, 0], 3, 2, 0, "ideal") == ([7, 7, 7, 1], [7, 1, 0, 0])


def test_maxpool_returns_the_whole_input_buffer():
    # u4, 3 pixels of 2 channels = 3 bytes: the 4th byte of the word image is not part of the buffer and is
    # returned as given; columns >= Wo keep their input values
    cfg = pool.MaxPoolConfig("u4", "u4", H=1, W=3, C=2, Kh=1, Kw=2, stride=(1, 1), pad=(0, 0, 0, 0))
    x = np.array([[[1, 9], [4, 2], [3, 15]]])
    xw = packing.pack_hwc(x, cfg.in_type) | np.uint32(0xAB000000)
    res = pool.run(xw, cfg=cfg)
    assert int(np.asarray(res.x)[0]) >> 24 == 0xAB
    buf = packing.unpack_hwc(np.asarray(res.x), (1, 3, 2), cfg.in_type)
    assert buf.tolist() == [[[4, 9], [4, 15], [3, 15]]]
    assert packing.unpack_hwc(np.asarray(res.out), (1, 2, 2), cfg.out_type).tolist() == [[[4, 9], [4, 15]]]


def _avg(it, ot, x, params, **kw):
    cfg = pool.AvgPoolConfig(it, ot, H=x.shape[0], W=x.shape[1], C=x.shape[2], **kw)
    out = pool.run(packing.pack_hwc(x, cfg.in_type), params, cfg=cfg)
    got = packing.unpack_hwc(np.asarray(out), (cfg.Ho, cfg.Wo, cfg.C), cfg.out_type)
    np.testing.assert_array_equal(got, pool.reference(x, params, cfg))
    ideal = pool.run_values(x, params, cfg=cfg)
    np.testing.assert_array_equal(ideal, pool.reference(x, params, cfg.replace(semantics="ideal")))
    return got, np.asarray(ideal)


def test_avgpool_arithmetic_quirks():
    x = np.full((2, 2, 4), -3, np.int64)
    # signed input, no requant: the sum -12 divided as uint32 by 4 -> 0x3FFFFFFD -> clips at the maximum
    lib, ideal = _avg("i8", "i8", x, None, Kh=2, Kw=2)
    assert lib.reshape(-1).tolist() == [127] * 4 and ideal.reshape(-1).tolist() == [-3] * 4
    # unsigned input with requant: sum*lambda' + out_add < 0 in uint32, logical shift -> saturates at the max
    u = np.full((2, 2, 4), 5, np.int64)
    p = pool.AvgPoolParams(lam=8, out_shift=2, out_add=-100)  # 20 * 2 - 100 = -60
    lib, ideal = _avg("u8", "u4", u, p, Kh=2, Kw=2, requant=1)
    assert lib.reshape(-1).tolist() == [15] * 4 and ideal.reshape(-1).tolist() == [0] * 4
    # negative lambda: lambda / 4 is an unsigned division in the library: (2**32 - 9) // 4 = 2**30 - 3, and
    # 20 * (2**30 - 3) wraps to -60 (ideal: 20 * trunc(-9 / 4) = -40)
    lib, ideal = _avg("i8", "i8", u, pool.AvgPoolParams(lam=-9, out_shift=0, out_add=0), Kh=2, Kw=2, requant=1)
    assert lib.reshape(-1).tolist() == [-60] * 4 and ideal.reshape(-1).tolist() == [-40] * 4
    # padding mix-up (pad bottom 1, top 0): the library starts output row yo at input row yo - pad_bottom, so
    # row 1 averages rows 0..2 (sum 6 / 2 = 3) and row 2 rows 1..2; the divisor is always Kh*Kw = 2
    v = np.arange(3)[:, None, None] * np.ones((3, 1, 4), np.int64) + 1  # rows 1, 2, 3
    lib, ideal = _avg("u8", "u8", v, None, Kh=2, Kw=1, stride=(1, 1), pad=(0, 1, 0, 0))
    assert lib[:, 0, 0].tolist() == [1, 3, 2] and ideal[:, 0, 0].tolist() == [1, 2, 1]


# ------------------------------------------------------------------------------------- API, splits, rules


@pytest.mark.parametrize("ncores", [1, 8])
def test_batch_equals_loop(ncores):
    cluster = Cluster(num_cores=ncores)
    rng = np.random.default_rng(1)
    for cfg, params in [
        (pool.MaxPoolConfig("i4", "i4", H=5, W=6, C=4, Kh=3, Kw=3, stride=(1, 1), pad=(1, 1, 1, 1)), None),
        (pool.AvgPoolConfig("u2", "i4", H=6, W=5, C=8, Kh=3, Kw=2, stride=(1, 2), pad=(1, 0, 0, 1), requant=1),
         pool.AvgPoolParams(lam=40, out_shift=3, out_add=-7)),
    ]:
        x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (3, cfg.H, cfg.W, cfg.C))
        xw = np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x])
        batched = pool.run(xw, params, cfg=cfg, cluster=cluster)
        looped = [pool.run(xi, params, cfg=cfg, cluster=cluster) for xi in xw]
        if isinstance(batched, pool.MaxPoolResult):
            np.testing.assert_array_equal(np.asarray(batched.out), np.stack([np.asarray(r.out) for r in looped]))
            np.testing.assert_array_equal(np.asarray(batched.x), np.stack([np.asarray(r.x) for r in looped]))
        else:
            np.testing.assert_array_equal(np.asarray(batched), np.stack([np.asarray(r) for r in looped]))
        vb = np.asarray(pool.run_values(x, params, cfg=cfg, cluster=cluster))
        vl = np.stack([np.asarray(pool.run_values(xi, params, cfg=cfg, cluster=cluster)) for xi in x])
        np.testing.assert_array_equal(vb, vl)


def test_one_compiled_function_per_rounded_shape():
    # precision, flags, window and padding are data: three different kernels of one rounded shape, one compile
    rng = np.random.default_rng(4)
    before = pool._avg_packed_batch._cache_size()
    for it, ot, h, w, k, rq in [("u8", "i4", 5, 6, (2, 2), 0), ("i2", "u8", 6, 7, (3, 3), 1),
                                ("u4", "u2", 7, 5, (3, 2), 1)]:
        cfg = pool.AvgPoolConfig(it, ot, H=h, W=w, C=8, Kh=k[0], Kw=k[1], pad=(1, 0, 1, 0), requant=rq)
        x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (h, w, 8))
        p = pool.AvgPoolParams(lam=int(rng.integers(1, 99)), out_shift=3, out_add=-2)
        out = pool.run(packing.pack_hwc(x, cfg.in_type), p, cfg=cfg, return_cost=True)
        got = packing.unpack_hwc(np.asarray(out.output), (cfg.Ho, cfg.Wo, 8), cfg.out_type)
        np.testing.assert_array_equal(got, pool.reference(x, p, cfg))
        assert out.cost.kernel == cfg.c_name
    assert pool._avg_packed_batch._cache_size() == before + 1


def _random_cfg(rng, semantics):
    fam = str(rng.choice(FAMILIES))
    it = str(rng.choice(TYPES))
    ot = it if fam == "maxpool" else str(rng.choice(TYPES))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    pads = tuple(int(rng.integers(0, k + (fam == "avgpool"))) for k in (kh, kh, kw, kw))
    kw_ = dict(H=int(rng.integers(kh, 10)), W=int(rng.integers(kw, 10)), C=int(rng.choice([4, 8, 12])), Kh=kh,
               Kw=kw, stride=tuple(int(v) for v in rng.integers(1, 4, 2)), pad=pads, semantics=semantics)
    if fam == "avgpool":
        return pool.AvgPoolConfig(it, ot, requant=int(rng.integers(0, 2)), **kw_), pool.AvgPoolParams(
            lam=int(rng.integers(-3000, 3000)), out_shift=int(rng.integers(0, 40)),
            out_add=int(rng.integers(-300, 300)))
    return pool.MaxPoolConfig(it, ot, **kw_), None


def test_random_configs_match_reference_twin():
    # many configurations (library and ideal, 1..8 cores, all widths) through one compiled function per family
    rng = np.random.default_rng(7)
    calls, refs = [], []
    while len(calls) < 150:
        cfg, params = _random_cfg(rng, str(rng.choice(["library", "ideal"])))
        cluster = Cluster(num_cores=int(rng.choice([1, 2, 4, 8])))
        try:
            pool.check(cfg, cluster)
        except UnsupportedConfig:
            continue
        x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (cfg.H, cfg.W, cfg.C))
        calls.append(_golden.GoldenCall({}, cfg, cluster, (packing.pack_hwc(x, cfg.in_type), params)))
        refs.append(pool.reference(x, params, cfg, cluster))
    got = _golden.pool.run_golden_batch_full(calls)
    failures = []
    for c, g, r in zip(calls, got, refs, strict=True):
        pairs = [(g.out, r.out), (g.x, r.x)] if isinstance(r, pool.MaxPoolResult) else [(g, r)]
        for a, b in pairs:
            if not np.array_equal(a, b):
                failures.append(f"{c.cfg} on {c.cluster.num_cores} cores: "
                                + testing.first_mismatches(a, b, np.ones_like(b)))
    report(failures, len(calls), "random pooling configurations")
    assert {(type(c.cfg), c.cfg.semantics) for c in calls} == {
        (t, s) for t in (pool.MaxPoolConfig, pool.AvgPoolConfig) for s in ("library", "ideal")}


def test_traced_splits_equal_static_splits():
    grid = list(itertools.product(range(1, 40), range(1, 40), (1, 2, 4, 8)))
    h, ho, nc = (jnp.array(v, jnp.int32) for v in zip(*grid, strict=True))

    def all_cores(h_, ho_, n_):
        return cluster_run.over_cores(lambda c: jnp.stack(
            cluster_run.row_split(c, h_, n_) + cluster_run.avgpool_split(c, ho_, n_)
            + cluster_run.maxpool_out_split(c, h_, ho_, n_)))

    got = np.asarray(jax.jit(jax.vmap(all_cores))(h, ho, nc))
    for i, (h_, ho_, n_) in enumerate(grid):
        for core in range(8):
            want = (0,) * 6
            if core < n_:
                want = (split.row_split(core, h_, n_) + split.avgpool_split(core, ho_, n_)
                        + split.maxpool_out_split(core, h_, ho_, n_))
            assert tuple(got[i, core]) == want, (h_, ho_, n_, core)
        # every row / output row belongs to some core (the kernels never leave rows unprocessed)
        for fn, rows in ((functools.partial(split.row_split, rows=h_, ncores=n_), h_),
                         (functools.partial(split.avgpool_split, Ho=ho_, ncores=n_), ho_),
                         (functools.partial(split.maxpool_out_split, H=h_, Ho=ho_, ncores=n_), ho_)):
            cover = np.zeros(rows, int)
            for core in range(n_):
                r0, r1 = fn(core)
                cover[r0:r1] += 1
            assert (cover == 1).all(), (h_, ho_, n_)


def test_split_examples():
    # 8 cores: H = 6 -> n = 6, chunk = (6 >> 2) + 1 = 2 (cores 0..2 busy); pass 2 with H = 3 < Ho = 9 keeps n = 3
    assert [split.row_split(c, 6, 8) for c in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 6)]
    assert split.avgpool_split(3, 4, 8) == (3, 4) and split.avgpool_split(5, 4, 8) == (5, 5)
    assert split.maxpool_out_split(0, 3, 9, 8) == (0, 5) and split.row_split(0, 9, 8) == (0, 2)


@pytest.mark.parametrize("cls, kw, rule", [
    (pool.MaxPoolConfig, dict(in_type="u4", C=3), "channel-multiple"),
    (pool.AvgPoolConfig, dict(out_type="i2", C=6), "channel-multiple"),
    (pool.AvgPoolConfig, dict(W=70000), "uint16-extent"),
    (pool.MaxPoolConfig, dict(Kw=2, stride=(1, 1), pad=(0, 0, 1, 1)), "maxpool-output-width"),
    (pool.MaxPoolConfig, dict(Wo=5), "maxpool-window-start"),
    (pool.MaxPoolConfig, dict(Ho=6, Wo=3), "maxpool-window-start"),
])
def test_check_names_the_rule(cls, kw, rule):
    base = dict(in_type="u8", out_type="u8", H=8, W=8, C=8)
    base.update(kw)
    if cls is pool.MaxPoolConfig:
        base["out_type"] = base["in_type"]
    cfg = cls(**base)
    with pytest.raises(UnsupportedConfig, match=rule):
        pool.check(cfg)
    if rule == "maxpool-output-width":
        pool.check(cfg.replace(semantics="ideal"))  # the ideal semantics has no in-place pass


def test_ideal_maxpool_refuses_empty_windows():
    cfg = pool.MaxPoolConfig("u8", "u8", H=4, W=4, C=4, Kh=2, Kw=2, stride=(1, 1), pad=(2, 0, 0, 0))
    pool.check(cfg)  # library: a window entirely in the padding copies row 0 (deterministic)
    with pytest.raises(UnsupportedConfig, match="maxpool-empty-window"):
        pool.check(cfg.replace(semantics="ideal"))


def test_bad_inputs_name_the_argument():
    mcfg = pool.MaxPoolConfig("u4", "u4", H=4, W=4, C=4)
    acfg = pool.AvgPoolConfig("u4", "i8", H=4, W=4, C=4, requant=1)
    xw = packing.pack_hwc(np.zeros((4, 4, 4), np.int64), mcfg.in_type)
    with pytest.raises(JaxpulpError, match="x_words.*uint32"):
        pool.run(xw.astype(np.int32), cfg=mcfg)
    with pytest.raises(JaxpulpError, match="x_words.*shape"):
        pool.run(xw[:3], cfg=mcfg)
    with pytest.raises(JaxpulpError, match="params=.*no parameters"):
        pool.run(xw, pool.AvgPoolParams(), cfg=mcfg)
    with pytest.raises(JaxpulpError, match="params.out_shift"):
        pool.run(xw, pool.AvgPoolParams(out_shift=1.5), cfg=acfg)
    with pytest.raises(JaxpulpError, match="params.out_shift=-1"):
        pool.run(xw, pool.AvgPoolParams(out_shift=-1), cfg=acfg)
    with pytest.raises(JaxpulpError, match="params.lam"):
        pool.run(xw, pool.AvgPoolParams(lam=1 << 31), cfg=acfg)
    with pytest.raises(JaxpulpError, match="x: shape"):
        pool.run_values(np.zeros((4, 4, 3), np.int32), cfg=mcfg)
    with pytest.raises(JaxpulpError, match="cfg="):
        pool.check(pool.PoolConfig("u8", "u8", H=4, W=4, C=4))
    with pytest.raises(JaxpulpError, match="out_type"):
        pool.MaxPoolConfig("u8", "i8", H=4, W=4, C=4)
    with pytest.raises(JaxpulpError, match="requant"):
        pool.AvgPoolConfig("u8", "i8", H=4, W=4, C=4, requant="yes")
    with pytest.raises(JaxpulpError, match="family"):
        _golden.pool.config_from_golden({"family": "add"})
