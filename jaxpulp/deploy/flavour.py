"""Deployment flavours: which kernel a layer runs and how its tiles are laid out in L1.

* ``dory-gap8``: DORY for GAP-8. Convolutions and pointwise layers run pulp-nn-mixed's kernels; the depthwise
  input is moved HWC -> CHW by one 2-D DMA command **per channel with 1-byte rows** (dma §5.11) into the CHW
  layout pulp-nn's depthwise reads; pooling and FC run DORY's own kernels (8-bit pulp-nn; their cycle counts
  are taken from the pulp-nn-mixed model of the same layer, an approximation stated in docs/deploy.md).
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
    FC ("dory" or "pulp-nn-mixed", informative: both use the pulp-nn-mixed cycle model)."""

    name: str
    dw_input: str
    pool_fc: str
    description: str = ""

    def __post_init__(self):
        if self.dw_input not in DW_INPUT:
            raise JaxpulpError(f"dw_input={self.dw_input!r}: expected one of {DW_INPUT}")


DORY_GAP8 = Flavour("dory-gap8", "hwc-to-chw", "dory",
                    "DORY for GAP-8: pulp-nn depthwise fed by per-channel HWC->CHW DMA, DORY pooling / FC")
PULP_NN_MIXED = Flavour("pulp-nn-mixed", "chw-planes", "pulp-nn-mixed",
                        "pure pulp-nn-mixed: byte-plane depthwise input kept in L2, mixed kernels everywhere")
FLAVOURS = MappingProxyType({f.name: f for f in (DORY_GAP8, PULP_NN_MIXED)})


def get_flavour(flavour: "str | Flavour") -> Flavour:
    if isinstance(flavour, Flavour):
        return flavour
    try:
        return FLAVOURS[flavour]
    except (KeyError, TypeError):
        raise JaxpulpError(f"flavour={flavour!r}: expected a Flavour or one of {sorted(FLAVOURS)}") from None
