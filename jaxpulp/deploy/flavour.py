"""Deployment flavours: which kernel a layer runs and how its tiles are laid out in L1.

* ``dory-gap8``: DORY for GAP-8. Convolutions and pointwise layers run pulp-nn-mixed's kernels; the depthwise
  input is moved HWC -> CHW by one 2-D DMA command **per channel with 1-byte rows** (dma §5.11) into the CHW
  layout pulp-nn's depthwise reads; 8-bit depthwise layers are costed as ``pulp_nn_depthwise_generic`` and the
  average pool as DORY's single-core ``pulp_nn_avgpool`` (``jaxpulp.deploy.dory_kernels``, counted from the C of
  the DORY-generated MobileNetV1 in pulp-sdk); FC keeps the pulp-nn-mixed model (an approximation stated in
  docs/deploy.md).
* ``pulp-nn-mixed``: every layer a pulp-nn-mixed kernel; the depthwise input is kept in the kernel's byte-plane
  CHW layout in L2 (its producer writes it so), so a channel tile is one command per channel plane with whole
  rows (no byte-granular rows).
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType

from jaxpulp.errors import JaxpulpError

DW_INPUT = ("hwc-to-chw", "chw-planes")


@dataclasses.dataclass(frozen=True)
class Flavour:
    """name; dw_input: how a depthwise input tile is moved ("hwc-to-chw": one 2-D command per channel, one
    element per row; "chw-planes": one command per channel plane, whole rows); pool_fc: who provides pooling /
    FC ("dory" or "pulp-nn-mixed", informative); dory_kernels: 8-bit depthwise and average-pool layers are costed
    with the 8-bit pulp-nn kernels DORY calls (``jaxpulp.deploy.dory_kernels``: ``pulp_nn_depthwise_generic``,
    DORY's single-core ``pulp_nn_avgpool``) instead of the pulp-nn-mixed model; FC keeps the mixed model.
    matmul_outer: the ``Codegen.outer`` of the conv / pointwise MatMul block (``jaxpulp.cost.pulpnn``):
    "measured" (the RTL-measured clang block) or "gcc" (the first-principles PULP GCC count: DORY builds pulp-nn
    with the PULP GCC toolchain of pulp-sdk / gap_sdk)."""

    name: str
    dw_input: str
    pool_fc: str
    description: str = ""
    dory_kernels: bool = False
    matmul_outer: str = "measured"
    mixed_sw: bool = False  # conv / pointwise layers with 4-bit weights: jaxpulp.deploy.mixed_noinline (j14b)
    mixed_sw_spills: bool = True  # count its MatMul loop's stack spills (False: the spill-free lower bound)

    def __post_init__(self):
        if self.dw_input not in DW_INPUT:
            raise JaxpulpError(f"dw_input={self.dw_input!r}: expected one of {DW_INPUT}")
        if self.matmul_outer not in ("measured", "gcc"):
            raise JaxpulpError(f"matmul_outer={self.matmul_outer!r}: expected 'measured' or 'gcc'")


DORY_GAP8 = Flavour("dory-gap8", "hwc-to-chw", "dory",
                    "DORY for GAP-8: pulp-nn depthwise_generic fed by per-channel HWC->CHW DMA, DORY pooling / FC",
                    dory_kernels=True, matmul_outer="gcc")
PULP_NN_MIXED = Flavour("pulp-nn-mixed", "chw-planes", "pulp-nn-mixed",
                        "pure pulp-nn-mixed: byte-plane depthwise input kept in L2, mixed kernels everywhere")
# DORY d046edd's mixed-precision software flow ('mixed-sw'): pulp-nn-mixed 7e9c4b0b, whose sub-byte unpack
# helpers are noinline calls; every conv and pointwise layer runs pulp_nn_conv_* (docs/deploy.md, "4-bit networks").
DORY_MIXED_SW = Flavour("dory-mixed-sw", "hwc-to-chw", "pulp-nn-mixed",
                        "DORY mixed-sw (d046edd): pulp-nn-mixed 7e9c4b0b, noinline unpack calls, pointwise as conv",
                        matmul_outer="gcc", mixed_sw=True)
FLAVOURS = MappingProxyType({f.name: f for f in (DORY_GAP8, PULP_NN_MIXED, DORY_MIXED_SW)})


def get_flavour(flavour: str | Flavour) -> Flavour:
    if isinstance(flavour, Flavour):
        return flavour
    try:
        return FLAVOURS[flavour]
    except (KeyError, TypeError):
        raise JaxpulpError(f"flavour={flavour!r}: expected a Flavour or one of {sorted(FLAVOURS)}") from None
