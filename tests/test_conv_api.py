"""Conv API behaviour: batching, compile caching, errors, and random configurations against the twin."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp import JaxpulpError, UnsupportedConfig, packing
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _golden, conv


def _layer(cfg, rng, batch=None):
    shape = (cfg.H, cfg.W, cfg.Ci) if batch is None else (batch, cfg.H, cfg.W, cfg.Ci)
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, shape)
    w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci))
    params = conv.Params(kappa=rng.integers(-50, 50, cfg.Co).astype(np.int32),
                         lam=rng.integers(-2000, 2000, cfg.Co).astype(np.int32),
                         out_mult=int(rng.integers(0, 1 << 16)), out_shift=int(rng.integers(0, 12)),
                         bias=rng.integers(-500, 500, cfg.Co).astype(np.int32) if cfg.bias else None)
    return x, w, params


def _run_unpacked(x, w, params, cfg, cluster=None):
    cluster = Cluster() if cluster is None else cluster
    xw = packing.pack_hwc(x, cfg.in_type)
    out = conv.run(xw, packing.pack(w, cfg.w_type), params, cfg=cfg, cluster=cluster)
    return packing.unpack_hwc(np.asarray(out), (cfg.Ho, cfg.Wo, cfg.Co), cfg.out_type)


def test_batch_equals_loop():
    cfg = conv.Config("u4", "i4", "i2", H=6, W=7, Ci=8, Co=8, pad=(1, 1, 1, 1), relu=0, bn=0)
    rng = np.random.default_rng(1)
    x, w, params = _layer(cfg, rng, batch=3)
    xw = np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x])
    ww = packing.pack(w, cfg.w_type)
    batched = np.asarray(conv.run(xw, ww, params, cfg=cfg))
    looped = np.stack([np.asarray(conv.run(xi, ww, params, cfg=cfg)) for xi in xw])
    np.testing.assert_array_equal(batched, looped)


def test_compiles_once_per_config():
    cfg = conv.Config("u8", "u8", "i8", H=5, W=5, Ci=4, Co=4, pad=(1, 1, 1, 1))
    rng = np.random.default_rng(2)
    before = conv._fast_packed._cache_size()
    for _ in range(3):
        x, w, params = _layer(cfg, rng)
        _run_unpacked(x, w, params, cfg)
    assert conv._fast_packed._cache_size() == before + 1


def test_ideal_semantics_lifts_the_signed_shift_clip_quirk():
    # semantics.md §15.3: pulp_nn_pointwise_u8_i4_i8 data run through conv 1x1 (pairs -> quirk applies).
    cfg = conv.Config("u8", "i4", "i8", H=8, W=2, Ci=4, Co=4, Kh=1, Kw=1, relu=0, bn=0)
    x = np.zeros((8, 2, 4), np.int64)
    x[:, 0, 0], x[:, 1, 0] = 10, 3
    w = np.zeros((4, 1, 1, 4), np.int64)
    w[:, 0, 0, 0] = [1, -1, 2, 0]
    params = conv.Params(kappa=np.zeros(4, np.int32), lam=np.zeros(4, np.int32), out_shift=0)
    lib = _run_unpacked(x, w, params, cfg)
    ideal = _run_unpacked(x, w, params, cfg.replace(semantics="ideal"))
    assert lib[0, 0].tolist() == [-6, 0, -1, 0] and lib[0, 1].tolist() == [3, 0, 6, 0]
    assert ideal[0, 0].tolist() == [7, -8, 7, 0] and ideal[0, 1].tolist() == [3, -3, 6, 0]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_random_configs_match_reference_twin(data):
    types = ["u8", "u4", "u2", "i8", "i4", "i2"]
    it, ot = data.draw(st.sampled_from(types)), data.draw(st.sampled_from(types))
    wt = data.draw(st.sampled_from(["i8", "i4", "i2"]))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    ci = data.draw(st.sampled_from([4, 8]))
    co = data.draw(st.sampled_from([4, 8, 12]))
    pads = tuple(data.draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw))
    cfg = conv.Config(it, ot, wt, H=data.draw(st.integers(kh, 9)), W=data.draw(st.integers(kw, 9)), Ci=ci, Co=co,
                      Kh=kh, Kw=kw, stride=(data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))), pad=pads,
                      relu=data.draw(st.sampled_from([0, 1, 2])), bn=data.draw(st.integers(0, 1)))
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8])))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x, w, params = _layer(cfg, rng)
    # same compiled function for every example: the shared golden bucket
    call = _golden.GoldenCall({}, cfg, cluster, (packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type),
                                                 params))
    got = _golden.conv.run_golden_batch([call])[0]
    np.testing.assert_array_equal(got, conv.reference(x, w, params, cfg, cluster))


def test_bn_bits_64_tree_on_the_bucketed_path():
    # §4.3: kappa*acc + lambda in 64 bits (the 64bit/ tree); the bucketed path takes bn_bits as a static argument
    cfg = conv.Config("u8", "u8", "i8", H=5, W=5, Ci=8, Co=4, pad=(1, 1, 1, 1), relu=1, bn=1, bn_bits=64)
    x, w, params = _layer(cfg, np.random.default_rng(11))
    params = params._replace(kappa=np.array([70000, -90000, 123456, 1], np.int32),
                             lam=np.array([2 ** 30, -2 ** 30, 5, 7], np.int32), out_shift=20)
    want = conv.reference(x, w, params, cfg)
    assert not np.array_equal(want, conv.reference(x, w, params, cfg.replace(bn_bits=32)))
    call = _golden.GoldenCall({}, cfg, Cluster(), (packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type),
                                                   params))
    call32 = call._replace(cfg=cfg.replace(bn_bits=32))
    got64, got32 = _golden.conv.run_golden_batch([call, call32])
    np.testing.assert_array_equal(got64, want)
    np.testing.assert_array_equal(got32, conv.reference(x, w, params, call32.cfg))
    np.testing.assert_array_equal(_run_unpacked(x, w, params, cfg), want)


def test_bad_inputs_name_the_argument():
    cfg = conv.Config("u4", "u4", "i4", H=4, W=4, Ci=4, Co=4)
    rng = np.random.default_rng(3)
    x, w, params = _layer(cfg, rng)
    xw, ww = packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type)
    with pytest.raises(JaxpulpError, match="x_words.*uint32"):
        conv.run(xw.astype(np.int32), ww, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w_words.*shape"):
        conv.run(xw, ww[:1], params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.kappa"):
        conv.run(xw, ww, params._replace(kappa=np.zeros(3, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="params.bias"):
        conv.run(xw, ww, params._replace(bias=np.zeros(4, np.int32)), cfg=cfg)
    with pytest.raises(JaxpulpError, match="x: shape"):
        conv.run_values(x[:2], w, params, cfg=cfg)
    with pytest.raises(JaxpulpError, match="w_type"):
        conv.Config("u4", "u4", "u4", H=4, W=4, Ci=4, Co=4)
    with pytest.raises(JaxpulpError, match="pad="):
        conv.Config("u4", "u4", "i4", H=4, W=4, Ci=4, Co=4, pad=(1, 1))


@pytest.mark.parametrize("family", ["conv", "pointwise", "depthwise", "linear"])
@pytest.mark.parametrize("field, value", [("kappa", 1 << 31), ("lam", -(1 << 31) - 1), ("lam", 1 << 40)])
def test_parameters_outside_int32_are_refused_not_wrapped(family, field, value):
    """kappa / lambda are int32 arrays to the kernels: an int64 value beyond int32 was wrapped to int32 without a
    word (a different layer); the packed and value paths and the numpy twin refuse it, naming field and value."""
    from jaxpulp.kernels import depthwise, linear, pointwise

    rng = np.random.default_rng(0)
    if family == "linear":
        cfg = linear.Config("u8", "u8", "i8", N=16, M=4)
        x, w = rng.integers(0, 256, 16), rng.integers(-128, 128, (4, 16))
        mod, xw, ww, params = linear, packing.pack(x, cfg.in_type), packing.pack(w, cfg.w_type), linear.Params
    else:
        mod = {"conv": conv, "pointwise": pointwise, "depthwise": depthwise}[family]
        k = 1 if family == "pointwise" else 3
        cfg = mod.Config("u8", "u8", "i8", H=4, W=4, Ci=4, Co=4, Kh=k, Kw=k)
        x = rng.integers(0, 256, (4, 4, 4))
        w = rng.integers(-128, 128, (4, k, k) if family == "depthwise" else (4, k, k, 4))
        xw = packing.pack_hwc(x, cfg.in_type)
        ww = packing.pack_planes(w, cfg.w_type) if family == "depthwise" else packing.pack(w, cfg.w_type)
        params = depthwise.Params if family == "depthwise" else conv.Params
    good = dict(kappa=np.ones(4, np.int64), lam=np.zeros(4, np.int64), out_shift=8)
    ok = params(**good)
    mod.run(xw, ww, ok, cfg=cfg)  # the same call in range runs
    bad = params(**{**good, field: np.full(4, value, np.int64)})
    for call in (lambda: mod.run(xw, ww, bad, cfg=cfg), lambda: mod.run_values(x, w, bad, cfg=cfg),
                 lambda: mod.reference(x, w, bad, cfg)):
        with pytest.raises(JaxpulpError, match=f"params.{field}: value {value} outside int32"):
            call()


@pytest.mark.parametrize("kw, rule", [
    (dict(Ci=3), "input-channel-multiple"),
    (dict(Ci=2, w_type="i2", Kh=1, Kw=1), "weight-row-multiple"),
    (dict(Co=6, out_type="u2"), "output-channel-multiple"),
    (dict(Ho=5), "output-geometry"),
    (dict(H=16, W=7, bias=True, pad=(1, 1, 1, 1)), "conv-bias-drift"),
])
def test_check_names_the_rule(kw, rule):
    base = dict(in_type="u4", out_type="u4", w_type="i4", H=4, W=4, Ci=4, Co=4)
    base.update(kw)
    cfg = conv.Config(**base)
    with pytest.raises(UnsupportedConfig, match=rule):
        conv.check(cfg)
    if rule == "conv-bias-drift":
        conv.check(cfg.replace(semantics="ideal"))  # the ideal semantics has no drift


def test_value_path_batch_and_ideal():
    cfg = conv.Config("i8", "i8", "i8", H=5, W=6, Ci=4, Co=4, pad=(1, 1, 1, 1), relu=0, bn=0)
    rng = np.random.default_rng(4)
    x, w, params = _layer(cfg, rng, batch=2)
    vals = np.asarray(conv.run_values(x, w, params, cfg=cfg))
    for i in range(2):
        np.testing.assert_array_equal(vals[i], conv.reference(x[i], w, params, cfg.replace(semantics="ideal")))


def test_run_returns_per_core_cost():
    cfg = conv.Config("u8", "u8", "i8", H=6, W=7, Ci=4, Co=4, pad=(1, 1, 1, 1))
    x, w, params = _layer(cfg, np.random.default_rng(5))
    res = conv.run(packing.pack_hwc(x, cfg.in_type), packing.pack(w, cfg.w_type), params, cfg=cfg,
                   return_cost=True)
    assert res.output.dtype == np.uint32
    assert len(res.cost.per_core) == 8
    # Ho=6 is not a multiple of 8: core pairs split rows in halves and cores 6, 7 get no work
    assert res.cost.per_core[6].macs == 0 and res.cost.per_core[0].macs > 0
    assert sum(c.macs for c in res.cost.per_core) == cfg.macs
