"""The linear value path's int8 form (``_engine.int8_matmul``) and ``linear.prepare_weights``: == the int64 product
wrapped to int32, for every <= 8-bit input type at its ends (traced types, as the value path passes them), with
raw and prepared weights; wrong weights refused by name."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxpulp import JaxpulpError, QType, packing
from jaxpulp.kernels import _engine, linear
from jaxpulp.kernels.config import LinearConfig

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _ends(rng, q: QType, shape):
    v = rng.integers(q.lo, q.hi + 1, shape)
    u = rng.random(shape)
    return np.where(u < 0.35, q.lo, np.where(u > 0.65, q.hi, v))


@PROPERTY
@given(it=st.sampled_from(["u8", "i8", "u4", "i4", "u2", "i2"]), wt=st.sampled_from(["i8", "i4", "i2"]),
       n=st.integers(1, 700), m=st.integers(1, 12), bias=st.booleans(), seed=st.integers(0, 2**31))
def test_int8_value_form_is_the_exact_product(it, wt, n, m, bias, seed):
    rng = np.random.default_rng(seed)
    in_t, w_t = QType.parse(it), QType.parse(wt)
    cfg = LinearConfig("u8", "u8", "i8", N=n, M=m, semantics="ideal")  # the widest types, as the value path
    x = _ends(rng, in_t, (3, n))
    w = _ends(rng, w_t, (m, n))
    b = rng.integers(-2**31, 2**31, m, dtype=np.int64).astype(np.int32) if bias else None
    want = x.astype(np.int64) @ w.T.astype(np.int64) + (0 if b is None else b)
    want = ((want + 2**31) % 2**32 - 2**31).astype(np.int32)
    f = jax.jit(lambda x, w, t: linear.accumulate(x, w, b, cfg, x_type=t))
    t = (jnp.int32(in_t.bits), jnp.int32(in_t.signed))
    prep = jax.tree_util.tree_map(jnp.asarray, linear.prepare_weights(w, cfg))
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), prep, t)), want)
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), jnp.asarray(w), t)), want)
    np.testing.assert_array_equal(np.asarray(linear.accumulate(x, prep, b, cfg)), want)  # float32 chunks


def test_int8_matmul_takes_the_prepared_sums():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 50))
    w = rng.integers(-128, 128, (3, 50))
    total = w.sum(axis=1).astype(np.int32)
    want = x @ w.T
    np.testing.assert_array_equal(np.asarray(_engine.int8_matmul(x, w, 128, total)), want)
    np.testing.assert_array_equal(np.asarray(_engine.int8_matmul(x, w, 128)), want)
    assert not np.array_equal(np.asarray(_engine.int8_matmul(x, w, 128, total + 1)), want)


def test_short_gemm_depths_are_padded_to_a_multiple_of_four():
    """``int8_matmul`` pads a contracted axis of up to ``GEMM_PAD_MAX_K`` with zero columns to a multiple of 4 (the
    exactness at every K is the property tests' business); a longer one is left as is."""
    assert [_engine.gemm_depth(k) for k in (1, 13, 16, 30, 102, 255, 256)] == [4, 16, 16, 32, 104, 256, 256]
    assert _engine.gemm_depth(257) == 257 and _engine.gemm_depth(585) == 585
    x = jnp.zeros((2, 13), jnp.int32)
    text = jax.jit(lambda a: _engine.int8_matmul(a, jnp.ones((3, 13), jnp.int8), 128)).lower(x).as_text()
    assert "tensor<2x16xi8>" in text and "tensor<3x16xi8>" in text


def test_bad_linear_weights_are_refused_by_name():
    cfg = LinearConfig("u8", "u8", "i8", N=16, M=4)
    with pytest.raises(JaxpulpError, match=r"w: shape \(4, 15\).*expected ints of shape \(4, 16\)"):
        linear.prepare_weights(np.zeros((4, 15), np.int32), cfg)
    with pytest.raises(JaxpulpError, match=r"w: values span \[-129, 0\], expected int8"):
        linear.prepare_weights(np.where(np.eye(4, 16) > 0, -129, 0), cfg)


@pytest.mark.parametrize("types, M, ncores, bias", [
    (("u4", "i8", "i2"), 24, 8, True),    # 8-bit output, odd chunks: kappa[0] and lost weights (quirks)
    (("i2", "u2", "i4"), 16, 1, False),   # 2-bit output: wrong-row quads (quirk)
    (("u8", "i32", "i4"), 10, 8, True),   # int32 output
    (("u8", "u8", "i8"), 16, 8, False),   # quirk-free: the int8 GEMM
    (("i8", "i4", "i8"), 8, 4, True),
])
def test_prepared_weights_give_the_image_bits_on_the_packed_path(types, M, ncores, bias):
    from jaxpulp.cluster.config import Cluster

    cfg = linear.Config(*types, N=48, M=M, relu=1, bn=1, bias=bias)
    cluster = Cluster(num_cores=ncores)
    rng = np.random.default_rng(M)
    x = _ends(rng, cfg.in_type, (3, cfg.N))
    w = _ends(rng, cfg.w_type, (M, cfg.N))
    q = cfg.quantized
    params = linear.Params(kappa=rng.integers(-50, 50, M).astype(np.int32) if q else None,
                           lam=rng.integers(-2000, 2000, M).astype(np.int32) if q else None, out_mult=7,
                           out_shift=5, bias=rng.integers(-500, 500, M).astype(np.int32) if bias else None)
    image = packing.pack(w, cfg.w_type)
    prep = linear.prepare_weights(packing.unpack(image, cfg.w_type, w.size).reshape(w.shape), cfg)
    got = np.asarray(linear.run_lanes(x, prep, params, cfg=cfg, cluster=cluster))
    np.testing.assert_array_equal(got, np.asarray(linear.run_lanes(x, image, params, cfg=cfg, cluster=cluster)))
    twin = np.stack([linear.reference(xi, w, params, cfg, cluster) for xi in x])
    np.testing.assert_array_equal(got, twin)


def test_prepared_weights_of_another_shape_are_refused_by_name():
    cfg = linear.Config("u8", "u8", "i8", N=48, M=16, relu=1, bn=1)
    other = linear.prepare_weights(np.ones((8, 48), np.int32), linear.Config("u8", "u8", "i8", N=48, M=8))
    params = linear.Params(kappa=np.ones(16, np.int32), lam=np.zeros(16, np.int32), out_shift=3)
    with pytest.raises(JaxpulpError, match=r"prepared weights w \(8, 48\).*expected w \(16, 48\)"):
        linear.run_lanes(np.zeros((1, 48), np.int32), other, params, cfg=cfg)
