"""The layer-kind table (jaxpulp.network.kinds): every hook resolves, the table agrees with the kernel catalogue,
and its formulas agree with the arrays a network actually carries and the images the packing writes."""
import numpy as np
import pytest

from jaxpulp import packing
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import catalog
from jaxpulp.network import graph, kinds, mapping, zoo


@pytest.mark.parametrize("kind", kinds.NAMES)
@pytest.mark.parametrize("stage", kinds.HOOKS)
def test_every_hook_resolves_to_a_function(kind, stage):
    assert callable(kinds.of(kind).hook(stage))


def test_bad_hook_and_kind_are_named():
    with pytest.raises(JaxpulpError, match="stage='nope'"):
        kinds.of("conv").hook("nope")
    with pytest.raises(JaxpulpError, match="kind='conv3d'"):
        kinds.of("conv3d")
    with pytest.raises(JaxpulpError, match="hook='nomodule'"):
        kinds.resolve("nomodule")


def test_table_agrees_with_the_catalogue_and_the_graph():
    assert graph.KINDS == kinds.NAMES
    for k in kinds.KINDS.values():
        assert k.kernel_module().__name__ == f"jaxpulp.kernels.{k.module}"
        for fam in k.families:
            assert catalog.family_module(fam).__name__.endswith(catalog.FAMILIES[fam].module)
    # every kernel family that has golden vectors is run by exactly one layer kind
    assert {f for f, v in catalog.FAMILIES.items() if v.golden} == set(kinds.FAMILY_KIND)
    assert {g for v in catalog.FAMILIES.values() for g in v.golden} == {v.family for v in catalog.variants()}


def _networks():
    return [zoo.mobilenet_v1(alpha=0.25, resolution=32), zoo.dronet()]


def test_formulas_match_the_networks_arrays_and_packed_images():
    seen = set()
    for net in _networks():
        for lay in net.layers:
            k = kinds.of(lay)
            seen.add(lay.kind)
            assert mapping.kernel_config(lay, "ideal").family in k.families
            if not k.weighted:
                assert kinds.weight_numel(lay) == 0 and kinds.weight_bytes(lay) == 0
                continue
            w = np.asarray(net.params[lay.name]["w"], np.int64)
            assert kinds.weight_numel(lay) == w.size and kinds.weight_shape(lay) == w.shape
            for bits in (8, 4, 2):
                wt = f"i{bits}"
                words = (packing.pack_planes(np.transpose(w, (1, 2, 0)) % (1 << bits) - (1 << bits) // 2, wt)
                         if k.channelwise else packing.pack(w % (1 << bits) - (1 << bits) // 2, wt))
                # the packed image is the weight bytes rounded up to whole 32-bit words
                assert 0 <= 4 * np.asarray(words).size - kinds.weight_bytes(lay, wt) < 4 * (lay.kernel[0] *
                                                                                           lay.kernel[1])
            Ho, Wo, Co = lay.out_shape
            assert lay.macs == (w.size if k.flat else w.size * Ho * Wo)
    assert {"conv", "depthwise", "linear", "add", "avgpool", "maxpool"} & seen == seen


def test_weight_bytes_of_a_tile_and_the_per_channel_parameters():
    lay = graph.Layer("c", "conv", ("x",), "y", (8, 8, 16), (8, 8, 32), "u8", "u8", "i4", kernel=(3, 3),
                      pad=(1, 1, 1, 1), bias=True)
    assert kinds.weight_bytes(lay, channels=32) == kinds.weight_bytes(lay)
    assert kinds.weight_bytes(lay, channels=4) * 8 == kinds.weight_bytes(lay)
    assert kinds.param_bytes(lay) == 32 * (4 + 4 + 4)  # kappa, lambda, bias: int32 per output channel
    assert kinds.param_bytes(lay.replace(bn_bits=64)) == 32 * (4 + 8 + 8)  # act_t = int64 in the 64-bit tree
    assert kinds.param_bytes(lay.replace(bn=0)) == 32 * 4  # MULT / SHIFT-CLIP modes read no kappa / lambda
    assert kinds.param_bytes(lay.replace(relu=0)) == 32 * 4  # BN without relu falls into SHIFT-CLIP
    assert kinds.param_bytes(lay.replace(kind="maxpool", w_type=None, bias=False)) == 0
    with pytest.raises(JaxpulpError, match="has no weights"):
        kinds.weight_shape(lay.replace(kind="maxpool", w_type=None))


def test_int32_output_linear_layers_take_no_requantisation_parameters():
    """The linear no-quant kernels (int32 outputs) read only weights and bias (semantics.md 2)."""
    base = graph.Layer("fc", "linear", ("x",), "y", (1, 1, 64), (1, 1, 10), "u8", "u8", "i8", bias=True)
    assert kinds.param_bytes(base) == 10 * (4 + 4 + 4)
    raw = base.replace(out_type="i32")
    assert kinds.param_bytes(raw) == 10 * 4
    assert kinds.param_bytes(raw.replace(bias=False)) == 0
