"""The test session runs under strict dtype promotion (tests/conftest.py), unless JAXPULP_STRICT_PROMOTION=0."""

import os

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


@pytest.mark.skipif(STRICT, reason="only when the session opted out")
def test_opting_out_restores_standard_promotion():
    assert jax.config.jax_numpy_dtype_promotion == "standard"
    assert (jnp.int32(1) + jnp.float32(1)).dtype == jnp.float32
