"""The test session runs under strict dtype promotion (tests/conftest.py), unless JAXPULP_STRICT_PROMOTION=0."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

STRICT = os.environ.get("JAXPULP_STRICT_PROMOTION", "1") != "0"


@pytest.mark.skipif(not STRICT, reason="JAXPULP_STRICT_PROMOTION=0: the session opted out")
def test_strict_promotion_is_on_in_the_test_session():
    assert jax.config.jax_numpy_dtype_promotion == "strict"
    # int32 + float32 would silently become float32 under the default ('standard') promotion
    with pytest.raises(jax.dtypes.TypePromotionError):
        jnp.int32(1) + jnp.float32(1)
    # same-dtype arithmetic and Python scalars (weakly typed) stay allowed
    assert (jnp.int32(1) + 1).dtype == jnp.int32


@pytest.mark.parametrize("opt_out, expected", [("0", "standard"), ("1", "strict")])
def test_opting_out_restores_standard_promotion(opt_out, expected):
    """tests/conftest.py, loaded in a fresh interpreter, leaves standard promotion with JAXPULP_STRICT_PROMOTION=0
    and turns on strict promotion otherwise (a child process, so this runs in every session instead of being
    skipped in the default one)."""
    conftest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")
    probe = ("import runpy, jax, jax.numpy as jnp\n"
             f"runpy.run_path({conftest!r})\n"
             "print(jax.config.jax_numpy_dtype_promotion)\n"
             "try:\n"
             "    print((jnp.int32(1) + jnp.float32(1)).dtype)\n"
             "except jax.dtypes.TypePromotionError:\n"
             "    print('refused')\n")
    env = {**os.environ, "JAXPULP_STRICT_PROMOTION": opt_out, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == [expected, "float32" if expected == "standard" else "refused"]
