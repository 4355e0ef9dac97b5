"""The golden-vector adapter table (kernels/_golden): one adapter and one record -> config entry per golden
family of the catalogue, and the table's errors."""
import pytest
from golden_util import family

from jaxpulp import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _golden, catalog


def test_every_catalogue_family_has_one_adapter_and_one_config_entry():
    families = {v.family for v in catalog.variants()}
    assert set(_golden.ADAPTERS) == families
    assert set(_golden.CONFIG_OF) == families
    for fam, mod in _golden.ADAPTERS.items():
        assert fam in mod.FAMILIES
        for hook in ("config_from_golden", "params_from_golden", "from_golden", "run_golden_batch",
                     "run_values_golden_batch"):
            assert callable(getattr(mod, hook)), (fam, hook)


@pytest.mark.parametrize("name", ["conv", "pointwise", "depthwise", "linear_quant", "linear_noquant", "maxpool",
                                  "avgpool", "add"])
def test_adapter_calls_carry_the_table_config_and_the_kernel_check(name):
    # from_golden builds the table's configuration and refuses exactly where the kernel module's check does
    # (pointwise also refuses by its inputs: check_inputs, not covered by check)
    cases, arrays = family(name)
    for meta in cases[:40]:
        cfg, cluster = _golden.config_of(meta), _golden.cluster_of(meta)
        mod = catalog.family_module(meta["family"])
        try:
            mod.check(cfg, cluster)
            kernel_refuses = False
        except UnsupportedConfig:
            kernel_refuses = True
        try:
            call = _golden.adapter(meta["family"]).from_golden(meta, arrays[meta["id"]])
        except UnsupportedConfig:
            assert kernel_refuses or name == "pointwise", meta["id"]
            continue
        assert not kernel_refuses, meta["id"]
        assert call.cfg == cfg and call.cluster == cluster and call.meta is meta


def test_unknown_family_is_named():
    with pytest.raises(JaxpulpError, match="family='nope'"):
        _golden.adapter("nope")
    with pytest.raises(JaxpulpError, match=r"meta\['family'\]='conv'"):
        _golden.adapter("linear_quant").config_from_golden({"family": "conv"})
