"""The accumulation forms a GPU backend takes, run on this machine (CI has no GPU): with ``jax.default_backend``
reporting "gpu", the kernels pick their GPU rules (no int8 forms; float32 convolutions as im2col GEMMs, because
cuDNN's Winograd / FFT convolutions round: ``_conv_forms.sums_products``). The programs must hold no
convolution at all, and give the reference's bits."""
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from conv_util import correlation
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxpulp import QType
from jaxpulp.cluster.config import GAP8
from jaxpulp.kernels import _conv_forms, conv
from jaxpulp.network import execute, reference, zoo


def _as_gpu():
    return mock.patch("jax.default_backend", return_value="gpu")


def test_the_gpu_route_has_no_float_convolution_form():
    with _as_gpu():
        assert not _conv_forms.sums_products()
        assert conv.int8_form(conv.Config("u8", "u8", "i8", H=4, W=4, Ci=8, Co=8, Kh=3, Kw=3)) is None
    assert _conv_forms.sums_products("cpu") and not _conv_forms.sums_products("cuda")


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from([(1, 8, 5, 2), (8, 16, 3, 1), (24, 8, 3, 2), (16, 32, 1, 1), (8, 8, 3, 1)]),
       it=st.sampled_from(["u8", "i8", "u4", "i2"]), wt=st.sampled_from(["i8", "i4", "i2"]),
       seed=st.integers(0, 2**31))
def test_gpu_route_accumulators_equal_the_int64_correlation(shape, it, wt, seed):
    ci, co, k, stride = shape
    cfg = conv.Config("u8", "u8", "i8", H=7, W=6, Ci=ci, Co=co, Kh=k, Kw=k, stride=(stride, stride),
                      pad=(k // 2,) * 4)
    in_t, w_t = QType.parse(it), QType.parse(wt)
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((2, 7, 6, ci)) < 0.5, in_t.hi, rng.integers(in_t.lo, in_t.hi + 1, (2, 7, 6, ci)))
    w = np.where(rng.random((co, k, k, ci)) < 0.5, w_t.lo, rng.integers(w_t.lo, w_t.hi + 1, (co, k, k, ci)))
    with _as_gpu():
        prep = conv.prepare_weights(w, cfg)
        assert prep.gemm is None and prep.hwio.dtype == np.float32
        f = jax.jit(lambda x, w, t: conv.accumulate(x, w, None, cfg, x_type=t))
        t = (jnp.int32(in_t.bits), jnp.int32(in_t.signed))
        program = str(jax.make_jaxpr(f)(x, prep, t))
        got = np.asarray(f(x, prep, t))
    assert "conv_general_dilated" not in program
    np.testing.assert_array_equal(got, correlation(x, w, cfg))


def test_dronet_on_the_gpu_route_has_no_convolution_and_the_reference_bits():
    """Both paths of the whole network (DroNet: 5x5 and 3x3 convolutions, 1x1 shortcuts, pooling, adds, linear)."""
    x = np.random.default_rng(3).integers(0, 256, (2, 200, 200, 1))
    with _as_gpu():
        net = zoo.dronet()  # a fresh network: its prepared weights and runners are built for the GPU rules
        for path in execute.PATHS:
            fn, prepared, _ = execute._runner(net, path, False, GAP8, 2)
            program = fn.lower(execute._check_inputs(net, x), *prepared).as_text()  # StableHLO
            assert "dot_general" in program and "convolution" not in program, path
            got = execute.run(net, x, path=path, step=2).outputs
            want = reference.forward(net, x)
            for k in net.outputs:
                np.testing.assert_array_equal(got[k], want[k], err_msg=f"{path} {k}")


def test_metric_sweep_on_the_gpu_route_has_no_int8_gemm_or_convolution_and_the_definitions_bits():
    """The batched metric forward (configurations folded into the batch) follows the value path's backend rules:
    its 1x1 convolution (16 channels: the int8 GEMM on the CPU) is a float32 GEMM, nothing is a convolution,
    and each configuration's outputs are those of the definition (``Deriver.derive`` then ``run_values``)."""
    from jaxpulp import costtable
    from jaxpulp.sweep import _batched, _metric
    from jaxpulp.sweep._nets import toy_net

    net = toy_net(seed=1, size=8)
    pw1 = next(lay for lay in net.layers if lay.name == "pw1")
    assert _batched._is_int8_gemm(pw1)  # the CPU's rule, so the patch below is what changes it
    with _as_gpu():
        assert not _batched._is_int8_gemm(pw1)
        space = costtable.config_space(costtable.build_table(net))
        der = _metric.Deriver(space, net.outputs[0])
        plan = _batched.Plan(net, der)
        configs = np.array(costtable.decode_sampled(space.arrays, jnp.arange(3), 5))
        x = jnp.asarray(_metric.random_inputs(net, 2, 5))
        fwd = jax.jit(lambda c, x: _batched.forward(plan, c, x, rows=4))
        program = fwd.lower(jnp.asarray(configs), x).as_text()
        y, s = fwd(jnp.asarray(configs), x)
        one = jax.jit(lambda c, x: _metric.config_outputs(net, der, c, x))
        for j in range(len(configs)):
            y1, s1 = one(jnp.asarray(configs[j]), x)
            np.testing.assert_array_equal(np.asarray(y[j]), np.asarray(y1))
            assert int(s[j]) == int(s1)
    assert "convolution" not in program and "dot_general" in program
    assert "xi8>" not in program  # no int8 operand anywhere (the int8 GEMM's)
