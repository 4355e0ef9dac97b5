"""The kernels' lane entries (``run_lanes``: element values in and out, what a whole network chains without packing
between layers) against the slow paths: each family's numpy core-by-core twin (``reference``, library quirks
included) and the packed ``run`` on memory images; and the packed network path (layer outputs kept as lanes)
against the layer-by-layer kernels on packed images."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from jaxpulp import JaxpulpError, QType, UnsupportedConfig, packing
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _engine, add, conv, depthwise, linear, pointwise, pool
from jaxpulp.kernels.config import ConvConfig, DepthwiseConfig, LinearConfig, out_dim
from jaxpulp.network import execute, mapping, zoo

TYPES = ["u8", "u4", "u2", "i8", "i4", "i2"]
PROPERTY = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
B = 2


def _lanes(x, qt):
    """(batch, H, W, C) values -> (batch, count) lanes as the kernels' unpack reads them (via the real image)."""
    q = QType.parse(str(qt)) if not isinstance(qt, QType) else qt
    img = np.stack([packing.pack_hwc(xi, q) for xi in x])
    return jnp.asarray(_engine.unpack_static(jnp.asarray(img), q.bits, q.signed, x[0].size)), img


def _unpacked(words, qt, count):
    return np.asarray(_engine.unpack_lanes(jnp.asarray(words), qt.bits, qt.signed, count))


def _requant_params(rng, co, mod=conv):
    # small kappa / shifts so the outputs spread over the type (clips and SHIFT-CLIP quirk both hit)
    return dict(kappa=rng.integers(-40, 40, co).astype(np.int32), lam=rng.integers(-3000, 3000, co).astype(np.int32),
                out_mult=int(rng.integers(0, 1 << 16)), out_shift=int(rng.integers(0, 14)))


def _check_lanes(lanes, run_words, twin, cfg, out_t, count):
    got = np.asarray(lanes).reshape(B, -1)
    np.testing.assert_array_equal(got, _unpacked(run_words, out_t, count), err_msg=f"run: {cfg}")
    np.testing.assert_array_equal(got, np.stack(twin).reshape(got.shape), err_msg=f"reference: {cfg}")
    # what the network chains: the lanes packed at the output type are the kernel's output image
    np.testing.assert_array_equal(np.asarray(_engine.pack_lanes(jnp.asarray(got), out_t.bits)),
                                  np.asarray(run_words)[:, :_engine.words_for(count, out_t.bits)])


@PROPERTY
@given(st.data())
def test_conv_and_pointwise_lanes_equal_the_twin_and_the_packed_run(data):
    it, ot = (QType.parse(data.draw(st.sampled_from(TYPES))) for _ in range(2))
    wt = QType.parse(data.draw(st.sampled_from(["i8", "i4", "i2"])))
    k = data.draw(st.sampled_from([1, 3]))
    s = data.draw(st.integers(1, 2)) if k == 3 else 1
    pad = (k // 2,) * 4
    H, W = data.draw(st.integers(k, 7)), data.draw(st.integers(k, 7))
    Ci, Co = data.draw(st.sampled_from([4, 8, 16])), data.draw(st.sampled_from([4, 8, 12]))
    Ho, Wo = out_dim(H, pad[0], pad[1], k, s), out_dim(W, pad[2], pad[3], k, s)
    flags = dict(relu=data.draw(st.sampled_from([0, 1, 2])), bn=data.draw(st.integers(0, 1)),
                 bias=data.draw(st.booleans()), bn_bits=data.draw(st.sampled_from([32, 64])), semantics="library")
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8])))
    if k == 1:
        cfg = pointwise.Config(it, ot, wt, H=H, W=W, Ci=Ci, Co=Co, **flags)
        mod = pointwise
    else:
        cfg = ConvConfig(it, ot, wt, H=H, W=W, Ci=Ci, Co=Co, Kh=k, Kw=k, stride=(s, s), pad=pad, Ho=Ho, Wo=Wo,
                         **flags)
        mod = conv
    try:
        mod.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.integers(it.lo, it.hi + 1, (B, H, W, Ci))
    # weights at the type's extremes half of the time
    w = rng.choice([wt.lo, wt.hi, -1, 0, 1], (Co, k, k, Ci)) if data.draw(st.booleans()) else \
        rng.integers(wt.lo, wt.hi + 1, (Co, k, k, Ci))
    params = conv.Params(**_requant_params(rng, Co),
                         bias=rng.integers(-2000, 2000, Co).astype(np.int32) if cfg.bias else None)
    lanes, img = _lanes(x, it)
    w_words = packing.pack(w, wt)
    got = mod.run_lanes(lanes, w_words, params, cfg=cfg, cluster=cluster)
    _check_lanes(got, mod.run(img, w_words, params, cfg=cfg, cluster=cluster),
                 [mod.reference(xi, w, params, cfg, cluster) for xi in x], cfg, ot, Ho * Wo * Co)


@PROPERTY
@given(st.data())
def test_depthwise_and_linear_lanes_equal_the_twin_and_the_packed_run(data):
    it, ot = (QType.parse(data.draw(st.sampled_from(TYPES))) for _ in range(2))
    wt = QType.parse(data.draw(st.sampled_from(["i8", "i4", "i2"])))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    flags = dict(relu=data.draw(st.sampled_from([0, 1, 2])), bn=data.draw(st.integers(0, 1)),
                 bias=data.draw(st.booleans()), semantics="library")
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8])))
    if data.draw(st.booleans()):
        k, s = data.draw(st.sampled_from([1, 3, 5])), data.draw(st.integers(1, 2))
        pad = tuple(data.draw(st.integers(0, k // 2)) for _ in range(4))  # uneven: taps past the row end too
        H, W, C = data.draw(st.integers(k, 8)), data.draw(st.integers(k, 8)), data.draw(st.sampled_from([4, 8, 16]))
        cfg = DepthwiseConfig(it, ot, wt, H=H, W=W, Ci=C, Co=C, Kh=k, Kw=k, stride=(s, s), pad=pad,
                              Ho=out_dim(H, pad[0], pad[1], k, s), Wo=out_dim(W, pad[2], pad[3], k, s), **flags)
        try:
            depthwise.check(cfg, cluster)
        except UnsupportedConfig:
            assume(False)
        x = rng.integers(it.lo, it.hi + 1, (B, H, W, C))
        w = rng.integers(wt.lo, wt.hi + 1, (C, k, k))
        params = depthwise.Params(**_requant_params(rng, C),
                                  bias=rng.integers(-128, 128, C).astype(np.int32) if cfg.bias else None)
        lanes, img = _lanes(x, it)
        _, w_words = depthwise.pack_inputs(x[0], w, cfg)
        got = depthwise.run_lanes_hwc(lanes, w_words, params, cfg=cfg, cluster=cluster)
        want_run = depthwise.run_hwc(img, w_words, params, cfg=cfg, cluster=cluster)
        twin = [depthwise.reference(xi, w, params, cfg, cluster) for xi in x]
        _check_lanes(got, want_run, twin, cfg, ot, cfg.Ho * cfg.Wo * C)
        # the weights unpacked once (a network's packed path) give the same lanes as the weight image
        w8 = depthwise.unpacked_weights(w_words, cfg)
        got8 = depthwise.run_lanes_hwc(lanes, w8, params, cfg=cfg, cluster=cluster, unpacked=True)
        _check_lanes(got8, want_run, twin, cfg, ot, cfg.Ho * cfg.Wo * C)
        return
    ot = QType.parse(data.draw(st.sampled_from(TYPES + ["i32"])))
    N, M = data.draw(st.sampled_from([8, 16, 24, 40])), data.draw(st.integers(1, 12))
    cfg = LinearConfig(it, ot, wt, N=N, M=M, **flags)
    try:
        linear.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    x = rng.integers(it.lo, it.hi + 1, (B, 1, 1, N))
    w = rng.integers(wt.lo, wt.hi + 1, (M, N))
    bias = rng.integers(-2000, 2000, M).astype(np.int32) if cfg.bias else None
    params = (linear.Params(**_requant_params(rng, M), bias=bias) if ot.bits != 32 else
              linear.Params(kappa=None, lam=None, bias=bias))
    lanes, img = _lanes(x, it)
    w_words = packing.pack(w, wt)
    got = linear.run_lanes(lanes, w_words, params, cfg=cfg, cluster=cluster)
    _check_lanes(got, linear.run(img, w_words, params, cfg=cfg, cluster=cluster),
                 [linear.reference(xi.reshape(-1), w, params, cfg, cluster) for xi in x], cfg, ot, M)


@PROPERTY
@given(st.data())
def test_pool_and_add_lanes_equal_the_twin_and_the_packed_run(data):
    it, ot = (QType.parse(data.draw(st.sampled_from(TYPES))) for _ in range(2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    cluster = Cluster(num_cores=data.draw(st.sampled_from([1, 2, 8])))
    fam = data.draw(st.sampled_from(["maxpool", "avgpool", "add"]))
    H, W, C = data.draw(st.integers(2, 9)), data.draw(st.integers(2, 9)), data.draw(st.sampled_from([4, 8, 16]))
    if fam == "add":
        t2 = QType.parse(data.draw(st.sampled_from(TYPES)))
        cfg = add.Config(it, t2, ot, H=H, W=W, C=C, requant=data.draw(st.integers(0, 1)))
        try:
            add.check(cfg, cluster)
        except UnsupportedConfig:
            assume(False)
        params = add.Params(*(int(v) for v in rng.integers(0, 300, 9)))
        params = params._replace(in1_shift=int(rng.integers(0, 9)), in2_shift=int(rng.integers(0, 9)),
                                 out_shift=int(rng.integers(0, 9)))
        x1, x2 = rng.integers(it.lo, it.hi + 1, (B, H, W, C)), rng.integers(t2.lo, t2.hi + 1, (B, H, W, C))
        (l1, i1), (l2, i2) = _lanes(x1, it), _lanes(x2, t2)
        got = add.run_lanes(l1, l2, params, cfg=cfg, cluster=cluster)
        _check_lanes(got, add.run(i1, i2, params, cfg=cfg, cluster=cluster),
                     [add.reference(a, b, params, cfg, cluster) for a, b in zip(x1, x2, strict=True)], cfg, ot,
                     H * W * C)
        return
    k = data.draw(st.integers(1, 3))
    geo = dict(H=max(H, k), W=max(W, k), C=C, Kh=k, Kw=k, stride=(data.draw(st.integers(1, 3)),) * 2,
               pad=tuple(data.draw(st.integers(0, k - 1)) for _ in range(4)))
    if fam == "maxpool":
        cfg, params = pool.MaxPoolConfig(it, it, **geo), None
    else:
        cfg = pool.AvgPoolConfig(it, ot, requant=data.draw(st.integers(0, 1)), **geo)
        params = pool.AvgPoolParams(lam=int(rng.integers(-3000, 3000)), out_shift=int(rng.integers(0, 40)),
                                    out_add=int(rng.integers(-300, 300)))
    try:
        pool.check(cfg, cluster)
    except UnsupportedConfig:
        assume(False)
    x = rng.integers(it.lo, it.hi + 1, (B, cfg.H, cfg.W, C))
    lanes, img = _lanes(x, it)
    got = pool.run_lanes(lanes, params, cfg=cfg, cluster=cluster)
    res = pool.run(img, params, cfg=cfg, cluster=cluster, static=data.draw(st.booleans()))
    twin = [pool.reference(xi, params, cfg, cluster) for xi in x]
    if fam == "maxpool":
        res, twin = res.out, [t.out for t in twin]
    _check_lanes(got, res, twin, cfg, cfg.out_type, cfg.Ho * cfg.Wo * C)


def _layer_by_layer(net, x, cluster=execute.GAP8):
    """The packed path as it was: every layer's kernel ``run`` on the previous layers' packed images (words)."""
    cfgs = execute._configs(net.layers, "library", cluster)
    args = execute._prepared_packed(net, cluster)
    env = {s.name: jnp.asarray(np.stack([packing.pack_hwc(xi, s.qtype) for xi in x])) for s in net.inputs}
    for lay, cfg, a in zip(net.layers, cfgs, args, strict=True):
        ins = [env[i] for i in lay.inputs]
        fam = cfg.family
        if fam == "conv":  # its weight image from the parameters (the network keeps them laid out for its form)
            w_words = packing.pack(np.asarray(net.params[lay.name]["w"]), lay.w_type)
            out = conv.run(ins[0], w_words, a[1], cfg=cfg, cluster=cluster)
        elif fam == "pointwise":  # its weight image from the parameters, as for conv
            w_words = packing.pack(np.asarray(net.params[lay.name]["w"]), lay.w_type)
            out = mapping.kernel_module(cfg).run(ins[0], w_words, a[1], cfg=cfg, cluster=cluster)
        elif fam == "depthwise":  # its weight image from the parameters (the network keeps them unpacked)
            w_words = packing.pack_planes(np.transpose(np.asarray(net.params[lay.name]["w"]), (1, 2, 0)), lay.w_type)
            out = depthwise.run_hwc(ins[0], w_words, a[1], cfg=cfg, cluster=cluster)
        elif fam == "linear":  # its weight image from the parameters, as for conv
            w_words = packing.pack(np.asarray(net.params[lay.name]["w"]), lay.w_type)
            out = linear.run(ins[0][:, :_engine.words_for(cfg.N, cfg.in_type.bits)], w_words, a[1], cfg=cfg,
                             cluster=cluster)
        elif fam == "maxpool":
            out = pool.run(ins[0], None, cfg=cfg, cluster=cluster).out
        elif fam == "avgpool":
            out = pool.run(ins[0], a[0], cfg=cfg, cluster=cluster)
        else:
            out = add.run(ins[0], ins[1], a[0], cfg=cfg, cluster=cluster)
        env[lay.output] = out
    types = net.tensor_types()
    return {k: _unpacked(v, types[k][1], int(np.prod(types[k][0]))).reshape((-1,) + tuple(types[k][0]))
            for k, v in env.items()}


@settings(max_examples=3, deadline=None, derandomize=True)
@given(st.sampled_from(["u8", "i8", "u4"]), st.integers(0, 2**31))
def test_packed_network_equals_the_layer_by_layer_kernels_on_packed_images(act, seed):
    net = zoo.mobilenet_v1(alpha=0.25, resolution=96, seed=seed % 1000, act=act)  # i8 weights: conv0 has K = 27
    qt = net.input.qtype
    x = np.random.default_rng(seed).integers(qt.lo, qt.hi + 1, (B,) + net.input.shape)
    got = execute.run(net, x, keep=True).tensors
    want = _layer_by_layer(net, x)
    for name, v in want.items():
        np.testing.assert_array_equal(got[name], v, err_msg=name)


def test_dronet_packed_path_equals_the_layer_by_layer_kernels():
    net = zoo.dronet()
    x = np.clip(zoo.dronet_input()[None] + np.random.default_rng(1).integers(-40, 41, (B,) + net.input.shape),
                0, 255)
    got = execute.run(net, x, keep=True).tensors
    for name, v in _layer_by_layer(net, x).items():
        np.testing.assert_array_equal(got[name], v, err_msg=name)


def test_an_image_read_at_another_type_goes_through_its_words():
    # lanes written as u8 and read as i8 / i4: the reader sees the bits of the u8 image, not the u8 values
    rng = np.random.default_rng(0)
    v = rng.integers(0, 256, (2, 16))
    img = execute.Image(None, jnp.asarray(v, jnp.int32), QType.parse("u8"))
    words = np.stack([packing.pack(vi, QType.parse("u8")) for vi in v])
    for t in ("u8", "i8", "i4", "u2"):
        q = QType.parse(t)
        n = 16 * 8 // q.bits
        want = np.stack([packing.unpack(wi, q, n) for wi in words])
        np.testing.assert_array_equal(np.asarray(execute.read(img, q, n)), want, err_msg=t)
    np.testing.assert_array_equal(np.asarray(execute.words(img)), words)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(st.sampled_from([2, 5, 64, 65]), st.integers(515, 2100), st.integers(0, 2**31))
def test_bounded_matmul_both_forms_equal_int64_at_the_extremes(cols, k, seed):
    # few columns: one batched GEMM over padded chunks; more: sliced GEMMs. Operands near the u8 x i8 extremes,
    # mostly one sign and odd (odd products: a float32 sum past 2**24 would round), so every chunk's partial sums
    # approach the 2**24 bound
    rng = np.random.default_rng(seed)
    a = rng.choice([255, 253, 1, 0], (3, k), p=[0.7, 0.2, 0.05, 0.05])
    b = rng.choice([127, 125, -127, -128], (k, cols), p=[0.7, 0.2, 0.05, 0.05])
    got = _engine.exact_int_matmul_bounded(jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.int32), 255 * 128)
    want = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)  # |sum| < 2**31 here: no wrap
    np.testing.assert_array_equal(np.asarray(got), want)


def test_depthwise_unpacked_weights_of_the_wrong_shape_or_image_are_refused_by_name():
    cfg = DepthwiseConfig("u8", "u8", "i8", H=4, W=4, Ci=8, Co=8, Kh=3, Kw=3, stride=(1, 1), pad=(1, 1, 1, 1),
                          Ho=4, Wo=4, relu=1, bn=1)
    params = depthwise.Params(kappa=np.ones(8, np.int32), lam=np.zeros(8, np.int32))
    x = np.zeros((1, 4 * 4 * 8), np.int32)
    with pytest.raises(JaxpulpError, match=r"w_words: unpacked weights of shape \(8, 9\), expected \(8, 3, 3\)"):
        depthwise.run_lanes_hwc(x, np.zeros((8, 9), np.int32), params, cfg=cfg, unpacked=True)
    with pytest.raises(JaxpulpError, match="w_words: dtype int32, expected a uint32 byte-plane memory image"):
        depthwise.unpacked_weights(np.zeros(18, np.int32), cfg)
