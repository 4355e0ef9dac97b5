"""Conv input-channel groups proved exact from concrete weights (``_engine.weight_bound_groups``): the fast
float32 convolution with those groups must equal an int64 numpy correlation (``==``) on adversarial weights
(extremes of the type, mixed signs, group bounds landing exactly on 2**24)."""
import jax
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxpulp.kernels import _engine, conv
from jaxpulp.kernels.config import ConvConfig
from jaxpulp.qtypes import QType

_LIMIT = 1 << 24


def _reference(x, w, pad):
    """int64 zero-padded correlation, stride 1: x (B, H, W, Ci), w (Co, Kh, Kw, Ci) -> (B, Ho, Wo, Co)."""
    t, b, left, r = pad
    xp = np.pad(np.asarray(x, np.int64), ((0, 0), (t, b), (left, r), (0, 0)))
    co, kh, kw, _ = w.shape
    ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, co), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            out += np.einsum("bhwc,oc->bhwo", xp[:, ky:ky + ho, kx:kx + wo], w[:, ky, kx].astype(np.int64))
    return out


def _cfg(in_t, H, W, Ci, Co, k, pad=(0, 0, 0, 0)):
    ho, wo = H + pad[0] + pad[1] - k + 1, W + pad[2] + pad[3] - k + 1
    return ConvConfig(QType.parse(in_t), QType.parse("u8"), QType.parse("i8"), semantics="ideal", H=H, W=W, Ci=Ci,
                      Co=Co, Kh=k, Kw=k, stride=(1, 1), pad=pad, Ho=ho, Wo=wo)


_acc = jax.jit(conv.accumulate, static_argnames=("cfg", "groups"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([2, 3]), ci=st.integers(1, 300), co=st.integers(1, 3),
       in_t=st.sampled_from(["u8", "i8"]), extreme=st.floats(0.5, 1.0))
def test_groups_exact_on_adversarial_weights(seed, k, ci, co, in_t, extreme):
    rng = np.random.default_rng(seed)
    q = QType.parse(in_t)
    max_x = max(-q.lo, q.hi)
    # weights at the type's extremes (-128 / 127 / -127, odd and even), mixed signs; one sign per (output,
    # input) channel pair for all taps, so an input aligned with output channel 0's signs makes every product
    # of that channel positive and its partial sums as large as the weights allow; the rest small odd values
    sign = rng.choice(np.array([-1, 1], np.int32), (co, 1, 1, ci))
    mag = rng.choice(np.array([128, 127], np.int32), (co, k, k, ci))
    w = np.where(sign > 0, np.minimum(mag, 127), -mag)
    w = np.where(rng.random((co, k, k, ci)) < extreme, w, rng.integers(-3, 4, (co, k, k, ci))).astype(np.int32)
    groups = _engine.weight_bound_groups(w, max_x)
    assert groups is not None and groups[0] == 0 and list(groups) == sorted(set(groups))
    s0 = sign[0, 0, 0]
    x_max = np.where(s0 > 0, q.hi, q.lo if q.signed else 0)
    H = W = k + 1
    x = np.stack([np.broadcast_to(x_max, (H, W, ci)),
                  rng.choice(np.array([q.lo, q.hi, q.hi - 1]), (H, W, ci))]).astype(np.int32)
    cfg = _cfg(in_t, H, W, ci, co, k, pad=(1, 0, 0, 1))
    got = np.asarray(_acc(x, w, None, cfg=cfg, groups=groups))
    want = _reference(x, w, cfg.pad)
    assert np.array_equal(got.astype(np.int64), want)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 5), ci=st.integers(1, 300), co=st.integers(1, 4),
       max_x=st.sampled_from([1, 7, 128, 255]))
def test_groups_are_within_bound_and_maximal(seed, k, ci, co, max_x):
    """Every group's bound max_x * sum|w| is <= 2**24 for every output channel, and adding the next channel
    would break it (greedy: no group could be longer)."""
    rng = np.random.default_rng(seed)
    w = rng.choice(np.array([-128, 127, 0, 1, -1]), (co, k, k, ci), p=[0.4, 0.4, 0.1, 0.05, 0.05])
    groups = _engine.weight_bound_groups(w, max_x)
    assert groups is not None
    col = np.abs(w.astype(np.int64)).sum(axis=(1, 2)) * max_x  # (Co, Ci)
    ends = groups[1:] + (ci,)
    for c0, c1 in zip(groups, ends, strict=True):
        assert c1 > c0
        assert col[:, c0:c1].sum(axis=1).max() <= _LIMIT
        if c1 < ci:
            assert col[:, c0:c1 + 1].sum(axis=1).max() > _LIMIT


def test_group_bound_exactly_at_2_pow_24():
    """i8 inputs (|x| <= 128) x weights -128, 2x2 taps: 2**16 per channel, so 256 channels reach 2**24 exactly
    (one group) and the 257th starts a new one; with x = -128 everywhere the full windows sum to 2**24 + 2**16,
    and an odd weight in the second group makes any rounding past 2**24 visible."""
    ci = 257
    w = np.full((2, 2, 2, ci), -128, np.int32)
    w[1, :, :, -1] = -127
    assert _engine.weight_bound_groups(w, 128) == (0, 256)
    assert _engine.weight_bound_groups(w[..., :256], 128) == (0,)
    x = np.full((1, 3, 3, ci), -128, np.int32)
    x[0, 1, 1, -1] = 127
    cfg = _cfg("i8", 3, 3, ci, 2, 2)
    got = np.asarray(_acc(x, w, None, cfg=cfg, groups=(0, 256)))
    want = _reference(x, w, cfg.pad)
    assert want.max() > _LIMIT
    assert np.array_equal(got.astype(np.int64), want)


def test_single_channel_over_the_bound_gives_none():
    w = np.full((1, 31, 31, 2), -128, np.int32)  # 961 taps * 128 * 255 > 2**24
    assert _engine.weight_bound_groups(w, 255) is None


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(0.1, 0.35), it=st.sampled_from(["u8", "i8"]),
       ci=st.sampled_from([120, 128]))  # worst case: 3 groups at u8, 2 at i8; these weights prove 1
def test_networks_with_weight_proved_groups_equal_the_numpy_interpreter(seed, frac, it, ci):
    """A 3x3 conv whose worst-case chunking needs several float32 convolutions but whose weights (a fraction at
    the extremes, the rest small) prove fewer: both paths of ``run`` use the proved groups and equal the int64
    numpy interpreter, on inputs aligned with output channel 0's weight signs (its largest sums)."""
    from jaxpulp.network import execute, reference
    from jaxpulp.network.graph import Layer, Network, TensorSpec

    rng = np.random.default_rng(seed)
    co, H = 4, 4  # even widths: no leftover-pixel bias drift (library quirk)
    sign = rng.choice(np.array([-1, 1]), (co, 1, 1, ci))
    big = np.where(sign > 0, 127, rng.choice(np.array([-128, -127]), (co, 3, 3, ci)))
    w = np.where(rng.random((co, 3, 3, ci)) < frac, big, sign * rng.integers(0, 3, (co, 3, 3, ci)))
    p = dict(w=w.astype(np.int32), bias=rng.integers(-500, 500, co).astype(np.int32),
             kappa=rng.integers(1, 4, co).astype(np.int32), lam=rng.integers(-900, 900, co).astype(np.int32),
             out_mult=0, out_shift=int(rng.integers(14, 20)))
    lay = Layer("l", "conv", ("in",), "out", (H, H, ci), (H, H, co), it, "u8", "i8", bias=True, kernel=(3, 3),
                stride=(1, 1), pad=(1, 1, 1, 1))
    net = Network("one", (TensorSpec("in", lay.in_shape, lay.in_type),), (lay,), {lay.name: p}, (lay.output,))
    assert execute._prepared_groups(net)[0] is not None  # the proved groups are in use
    assert execute._prepared_packed_groups(net, execute.GAP8)[0] is not None
    q = QType.parse(it)
    aligned = np.broadcast_to(np.where(sign[0, 0, 0] > 0, q.hi, q.lo if q.signed else 0), (H, H, ci))
    x = np.stack([aligned, rng.integers(q.lo, q.hi + 1, (H, H, ci))])
    want = reference.forward(net, x)["out"]
    for path in ("values", "packed"):
        np.testing.assert_array_equal(execute.run(net, x, path=path).outputs["out"], want, err_msg=path)
