"""The value path's fast public entries (``conv`` / ``depthwise`` / ``linear.accumulate``, ``pool.values``,
``add.values``) against the slow ones (the bucketed ``run_values`` of each family: configuration as data, scans and
gathers) and against int64 numpy twins, including extreme operands near the float32-exact bounds, traced
precisions, and whole single-layer networks on ``run(path="values")`` against the numpy interpreter."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from jaxpulp import UnsupportedConfig, packing
from jaxpulp.kernels import add, conv, depthwise, linear, pool
from jaxpulp.kernels.config import ConvConfig, DepthwiseConfig, LinearConfig, out_dim
from jaxpulp.network import reference
from jaxpulp.network.execute import run, run_values
from jaxpulp.network.graph import Layer, Network, TensorSpec

TYPES = ["u8", "u4", "u2", "i8", "i4", "i2"]
PROPERTY = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def _types(t):
    return (jnp.int32(int(t[1:])), jnp.int32(t[0] == "i"))


@PROPERTY
@given(st.data())
def test_pool_values_equal_the_bucketed_value_path(data):
    fam = data.draw(st.sampled_from(["maxpool", "avgpool"]))
    it = data.draw(st.sampled_from(TYPES))
    ot = it if fam == "maxpool" else data.draw(st.sampled_from(TYPES))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    pads = tuple(data.draw(st.integers(0, k)) for k in (kh, kh, kw, kw))
    kw_ = dict(H=data.draw(st.integers(kh, 9)), W=data.draw(st.integers(kw, 9)), C=data.draw(st.sampled_from([4, 8])),
               Kh=kh, Kw=kw, stride=(data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))), pad=pads,
               semantics="ideal")
    if fam == "maxpool":
        cfg, params = pool.MaxPoolConfig(it, ot, **kw_), None
    else:
        cfg = pool.AvgPoolConfig(it, ot, requant=data.draw(st.integers(0, 1)), **kw_)
        params = pool.AvgPoolParams(lam=data.draw(st.integers(-3000, 3000)), out_shift=data.draw(st.integers(0, 40)),
                                    out_add=data.draw(st.integers(-300, 300)))
    try:
        pool.check(cfg)
    except UnsupportedConfig:
        assume(False)
    x = np.random.default_rng(data.draw(st.integers(0, 2**31))).integers(cfg.in_type.lo, cfg.in_type.hi + 1,
                                                                         (3, cfg.H, cfg.W, cfg.C))
    slow = np.asarray(pool.run_values(x, params, cfg=cfg))
    np.testing.assert_array_equal(np.asarray(pool.values(x, params, cfg=cfg)), slow, err_msg=str(cfg))
    # the types as traced data give the same result as the static ones
    traced = jax.jit(lambda v, ti, to: pool.values(v, params, cfg=cfg, in_type=ti, out_type=to))
    np.testing.assert_array_equal(np.asarray(traced(x, _types(it), _types(ot))), slow, err_msg=str(cfg))


@PROPERTY
@given(st.data())
def test_add_values_equal_the_bucketed_value_path(data):
    h, w, c = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)), data.draw(st.sampled_from([4, 8]))
    if data.draw(st.integers(0, 3)) == 0:
        t1, t2 = sorted((data.draw(st.sampled_from(["u8", "u4", "u2"])) for _ in range(2)), key=lambda t: -int(t[1:]))
        types = (t1, t2, "u8")
        cfg = add.AddLegacyConfig(t1, t2, H=h, W=w, C=c, semantics="ideal")
        params = add.LegacyParams(data.draw(st.integers(0, 0xFFFF)), data.draw(st.integers(0, 0xFFFF)),
                                  data.draw(st.integers(0, 40)))
    else:
        types = tuple(data.draw(st.sampled_from(TYPES)) for _ in range(3))
        cfg = add.AddConfig(*types, H=h, W=w, C=c, requant=data.draw(st.integers(0, 1)), semantics="ideal")
        params = add.Params(*(data.draw(st.integers(lo, hi)) for lo, hi in [(-300, 300), (-3000, 3000), (0, 40)] * 3))
    try:
        add.check(cfg)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x1 = rng.integers(cfg.in1_type.lo, cfg.in1_type.hi + 1, (2, h, w, c))
    x2 = rng.integers(cfg.in2_type.lo, cfg.in2_type.hi + 1, (2, h, w, c))
    slow = np.asarray(add.run_values(x1, x2, params, cfg=cfg))
    np.testing.assert_array_equal(np.asarray(add.values(x1, x2, params, cfg=cfg)), slow, err_msg=str(cfg))
    if isinstance(params, add.Params):
        traced = jax.jit(lambda a, b, t1, t2, to: add.values(a, b, params, cfg=cfg, in1_type=t1, in2_type=t2,
                                                             out_type=to))
        got = traced(x1, x2, *(_types(t) for t in types))
        np.testing.assert_array_equal(np.asarray(got), slow, err_msg=str(cfg))


def _twin_windows(x, kh, kw, stride, pad, ho, wo):
    lay = Layer("l", "conv", ("in",), "l", x.shape[1:], (ho, wo, 1), "u8", "u8", "i8", kernel=(kh, kw), stride=stride,
                pad=pad)
    return reference._windows(x, lay)


@PROPERTY
@given(st.data())
def test_conv_and_depthwise_accumulators_equal_the_int64_twin(data):
    kh, kw = data.draw(st.sampled_from([(1, 1), (3, 3), (1, 3), (5, 5)]))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    pad = tuple(data.draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw))
    H, W = data.draw(st.integers(kh, 9)), data.draw(st.integers(kw, 9))
    ci = data.draw(st.sampled_from([3, 8, 64, 600]))  # 600 x 1x1 taps: two exact GEMM chunks at u8 x i8
    co = data.draw(st.sampled_from([1, 8]))
    ho, wo = out_dim(H, pad[0], pad[1], kh, stride[0]), out_dim(W, pad[2], pad[3], kw, stride[1])
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    extreme = data.draw(st.booleans())  # products near 255 * -128: partial sums at the float32-exact bound
    x = rng.integers(247, 256, (2, H, W, ci)) if extreme else rng.integers(0, 256, (2, H, W, ci))
    w = rng.integers(-128, -120, (co, kh, kw, ci)) if extreme else rng.integers(-128, 128, (co, kh, kw, ci))
    bias = rng.integers(-1000, 1000, co)
    geo = dict(H=H, W=W, Kh=kh, Kw=kw, stride=stride, pad=pad, Ho=ho, Wo=wo, semantics="ideal")
    win = _twin_windows(x, kh, kw, stride, pad, ho, wo)
    cfg = ConvConfig("u8", "u8", "i8", Ci=ci, Co=co, **geo)
    got = np.asarray(jax.jit(lambda a, b, c: conv.accumulate(a, b, c, cfg))(x, w, bias))
    np.testing.assert_array_equal(got, np.einsum("bhwijc,oijc->bhwo", win, w) + bias, err_msg=str(cfg))
    dcfg = DepthwiseConfig("u8", "u8", "i8", Ci=ci, Co=ci, **geo)
    wd = w[0].transpose(2, 0, 1)  # (C, Kh, Kw)
    got = np.asarray(jax.jit(lambda a, b: depthwise.accumulate(a, b, None, dcfg))(x, wd))
    np.testing.assert_array_equal(got, np.einsum("bhwijc,cij->bhwc", win, wd), err_msg=str(dcfg))


def test_linear_accumulator_equals_the_int64_twin_past_one_exact_chunk():
    rng = np.random.default_rng(5)
    n, m = 1100, 7  # 1100 u8 x i8 products: more than one float32-exact chunk (514)
    x = rng.integers(247, 256, (3, n))
    w = rng.integers(-128, -120, (m, n))
    bias = rng.integers(-9, 9, m)
    cfg = LinearConfig("u8", "u8", "i8", N=n, M=m, semantics="ideal")
    got = np.asarray(linear.accumulate(x, w, bias, cfg))
    np.testing.assert_array_equal(got, x @ w.T + bias)


def _one_layer_net(lay: Layer, p: dict) -> Network:
    return Network("one", (TensorSpec("in", lay.in_shape, lay.in_type),), (lay,), {lay.name: p}, (lay.output,))


@PROPERTY
@given(st.data())
def test_single_layer_networks_on_the_value_path_equal_the_numpy_interpreter(data):
    kind = data.draw(st.sampled_from(["conv", "depthwise", "linear", "maxpool", "avgpool"]))
    it = data.draw(st.sampled_from(["u8", "u4", "i8"]))
    ot = data.draw(st.sampled_from(["u8", "u4", "i8", "i2"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    H, W, C = data.draw(st.integers(3, 8)), data.draw(st.integers(3, 8)), data.draw(st.sampled_from([4, 8]))
    k, s = data.draw(st.sampled_from([1, 3])), data.draw(st.integers(1, 2))
    pad = (k // 2,) * 4 if kind in ("conv", "depthwise") else (0, 0, 0, 0)
    Ho, Wo = out_dim(H, pad[0], pad[1], k, s), out_dim(W, pad[2], pad[3], k, s)
    Co = C if kind in ("depthwise", "maxpool", "avgpool") else data.draw(st.sampled_from([4, 8]))
    geo = dict(kernel=(k, k), stride=(s, s), pad=pad)
    p = {}
    if kind in ("conv", "depthwise", "linear"):
        w_shape = {"conv": (Co, k, k, C), "depthwise": (C, k, k), "linear": (Co, H * W * C)}[kind]
        p = dict(w=rng.integers(-128, 128, w_shape), bias=rng.integers(-500, 500, Co).astype(np.int32),
                 kappa=rng.integers(1, 4, Co).astype(np.int32), lam=rng.integers(-900, 900, Co).astype(np.int32),
                 out_mult=0, out_shift=int(rng.integers(4, 12)))
        if kind == "linear":
            geo, Ho, Wo = {}, 1, 1
        lay = Layer("l", kind, ("in",), "out", (H, W, C), (Ho, Wo, Co), it, ot, "i8", bias=True, **geo)
    elif kind == "avgpool":
        p = dict(lam=int(rng.integers(1, 3000)), out_shift=int(rng.integers(0, 12)), out_add=int(rng.integers(0, 99)))
        lay = Layer("l", kind, ("in",), "out", (H, W, C), (Ho, Wo, C), it, ot, **geo)
    else:
        lay = Layer("l", kind, ("in",), "out", (H, W, C), (Ho, Wo, C), it, it, **geo)
    net = _one_layer_net(lay, p)
    qt = net.input.qtype
    x = rng.integers(qt.lo, qt.hi + 1, (3, H, W, C))
    want = reference.forward(net, x)["out"]
    np.testing.assert_array_equal(run(net, x, path="values").outputs["out"], want, err_msg=str(lay))
    got = jax.jit(lambda v: run_values(net, v))(jnp.asarray(x, jnp.int32))
    np.testing.assert_array_equal(np.asarray(got), want, err_msg=str(lay))


def test_prepared_parameters_are_built_once_per_network():
    from jaxpulp.network import execute, zoo

    net = zoo.mobilenet_v1(0.25, 96)
    a = execute._prepared_values(net)
    assert execute._prepared_values(net) is a
    assert execute._prepared_packed(net, execute.GAP8) is execute._prepared_packed(net, execute.GAP8)
    other = net.replace(params={k: dict(v) for k, v in net.params.items()})
    assert execute._prepared_values(other) is not a


@PROPERTY
@given(st.data())
def test_depthwise_on_the_hwc_image_equals_the_byte_plane_path(data):
    # the network's packed path hands depthwise layers the previous layer's HWC image (run_hwc); it must give
    # the bits the kernel gives on the byte-plane image DORY's CHW transfer builds (run)
    it, ot = (data.draw(st.sampled_from(TYPES)) for _ in range(2))
    wt = data.draw(st.sampled_from(["i8", "i4", "i2"]))
    k, s = data.draw(st.sampled_from([1, 3, 5])), data.draw(st.integers(1, 2))
    pad = tuple(data.draw(st.integers(0, k // 2)) for _ in range(4))
    H, W = data.draw(st.integers(k, 10)), data.draw(st.integers(k, 10))
    C = data.draw(st.sampled_from([4, 8, 16]))
    cfg = DepthwiseConfig(it, ot, wt, H=H, W=W, Ci=C, Co=C, Kh=k, Kw=k, stride=(s, s), pad=pad,
                          Ho=out_dim(H, pad[0], pad[1], k, s), Wo=out_dim(W, pad[2], pad[3], k, s),
                          relu=data.draw(st.integers(0, 1)), bn=data.draw(st.integers(0, 1)),
                          bias=data.draw(st.booleans()), semantics=data.draw(st.sampled_from(["library", "ideal"])))
    try:
        depthwise.check(cfg)
    except UnsupportedConfig:
        assume(False)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (2, H, W, C))
    w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (C, k, k))
    params = depthwise.Params(kappa=rng.integers(-9, 9, C).astype(np.int32),
                              lam=rng.integers(-999, 999, C).astype(np.int32), out_mult=int(rng.integers(0, 300)),
                              out_shift=int(rng.integers(0, 12)),
                              bias=rng.integers(-128, 128, C).astype(np.int32) if cfg.bias else None)
    planes, w_words = depthwise.pack_inputs(x, w, cfg)
    hwc = np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x])
    hwc[:, -1] |= np.uint32(0xA5A5A5A5) & ~np.uint32((1 << ((H * W * C * cfg.in_type.bits) % 32 or 32)) - 1
                                                     if (H * W * C * cfg.in_type.bits) % 32 else 0xFFFFFFFF)
    want = np.asarray(depthwise.run(planes, w_words, params, cfg=cfg))
    np.testing.assert_array_equal(np.asarray(depthwise.run_hwc(hwc, w_words, params, cfg=cfg)), want, err_msg=str(cfg))
    np.testing.assert_array_equal(np.asarray(depthwise.run_hwc(hwc[1], w_words, params, cfg=cfg)), want[1])


@settings(max_examples=12, deadline=None, derandomize=True)
@given(st.sampled_from(TYPES), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(1, 9),
       st.integers(0, 2**31))
def test_device_pack_and_unpack_are_the_host_packing_bits(t, batch, h, w, c, seed):
    # the packed network path packs its inputs and unpacks its outputs on the device (_engine.pack_static /
    # unpack_static) instead of with jaxpulp.packing on the host: the same words and values
    from jaxpulp import QType
    from jaxpulp.kernels import _engine

    q = QType.parse(t)
    c *= 8 // q.bits  # whole-byte pixels (what pack_hwc accepts)
    x = np.random.default_rng(seed).integers(q.lo, q.hi + 1, (batch, h, w, c))
    host = packing.pack_hwc(x, q)
    dev = np.asarray(_engine.pack_static(jnp.asarray(x.reshape(batch, -1), jnp.int32), q.bits))
    np.testing.assert_array_equal(dev, host)
    back = np.asarray(_engine.unpack_static(jnp.asarray(host), q.bits, q.signed, h * w * c))
    np.testing.assert_array_equal(back, packing.unpack(host, q, h * w * c).reshape(batch, -1))
