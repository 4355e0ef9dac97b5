"""Deployment flavours: which kernel a layer runs and how its tiles are laid out in L1.

* ``dory-gap8``: DORY's 8-bit flow for GAP-8 (the pulp-sdk DORY MobileNetV1 application and DORY @09b4029,
  the flow of the dory_examples GVSoC figures: both call the same 8-bit pulp-nn kernels and build with
  ``-O3 -flto``, DORY ``templates_MCU/Makefile_template``, pulp-sdk ``applications/MobileNetV1/Makefile``).
  Non-1x1 / strided convolutions run ``pulp_nn_conv_Ho_parallel`` (whole rows per core), pointwise layers
  ``pulp_nn_pointwise_HoWo_parallel`` (the same split and MatMul as pulp-nn-mixed's 8-bit pointwise); the
  depthwise kernel (not ``noinline``) and the average pool see the layer's literal kernel size / stride /
  flags at link time and are costed specialised (``lto``); the depthwise input copy is waited channel by
  channel (``dw_input_waits``), partial-channel tiles pixel by pixel (``dma_3d``); ``dory-gap8-bn32`` /
  ``dory-gap8-bn64`` fix the network's BN tree as DORY's ``--Bn_Relu_Bits`` does. Details below; the depthwise
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

from jaxpulp._registry import lookup
from jaxpulp.errors import JaxpulpError

DW_INPUT = ("hwc-to-chw", "chw-planes")
POOL_FC = ("dory", "pulp-nn-mixed")


@dataclasses.dataclass(frozen=True)
class Flavour:
    """name; dw_input: how a depthwise input tile is moved ("hwc-to-chw": one 2-D command per channel, one
    element per row; "chw-planes": one command per channel plane, whole rows); pool_fc: who provides pooling /
    FC ("dory" or "pulp-nn-mixed", informative); dory_kernels: 8-bit depthwise and average-pool layers are costed
    with the 8-bit pulp-nn kernels DORY calls (``jaxpulp.deploy.dory_kernels``: ``pulp_nn_depthwise_generic``,
    DORY's single-core ``pulp_nn_avgpool``) instead of the pulp-nn-mixed model; FC keeps the mixed model.
    matmul_outer: the ``Codegen.outer`` of the conv / pointwise MatMul block (``jaxpulp.cost.pulpnn``):
    "measured" (the RTL-measured clang block) or "gcc" (the first-principles PULP GCC count: DORY builds pulp-nn
    with the PULP GCC toolchain of pulp-sdk / gap_sdk).
    lto: the application is built with ``-O3 -flto`` (DORY's Makefile templates; see below), so the kernels that
    take the layer's literal kernel size / stride / flags are specialised for them (``dory_kernels``: the
    depthwise and average-pool counts with ``lto=True``). conv_split: "ho" runs all-8-bit convolutions on the
    8-bit pulp-nn ``pulp_nn_conv_Ho_parallel`` (whole output rows per core), "mixed" on pulp-nn-mixed's conv
    (half rows when Ho is not a multiple of the core count). bn_bits: the BN tree DORY's ``--Bn_Relu_Bits`` /
    ``BNRelu_bits`` selects for the whole network (it copies ``pulp-nn/32bit`` or ``pulp-nn/64bit``); None keeps
    each layer's own (``bn_bits="auto"`` of the importer). dw_input_waits: the depthwise input copy waits for
    each channel's command (``mchan_barrier`` after every HWC->CHW command in DORY's ``dory_dma_memcpy_async``),
    so even a double-buffered target cannot overlap it with the kernel. dma_3d: how a tile with part of the
    channels of an HWC tensor is copied: "row" (one 2-D command per row) or "pixel" (one 1-D command per pixel:
    DORY's ``dory_dma_memcpy_3d_custom_out`` / ``_blocking`` in the pulp-sdk application, the ``TRANSFER_3D``
    case of ``dory_dma_memcpy_async`` at DORY @09b4029, rows split over the cores)."""

    name: str
    dw_input: str
    pool_fc: str
    description: str = ""
    dory_kernels: bool = False
    matmul_outer: str = "measured"
    lto: bool = False
    conv_split: str = "mixed"
    bn_bits: int | None = None
    dw_input_waits: bool = False
    dma_3d: str = "row"
    mixed_sw: bool = False  # conv / pointwise layers with 4-bit weights: jaxpulp.deploy.mixed_noinline
    mixed_sw_spills: bool = True  # count its MatMul loop's stack spills (False: the spill-free lower bound)

    def __post_init__(self):
        for n in ("name", "description"):
            v = getattr(self, n)
            if not isinstance(v, str) or (n == "name" and not v):
                raise JaxpulpError(f"{n}={v!r}: expected a{' non-empty' if n == 'name' else ''} str")
        if self.pool_fc not in POOL_FC:
            raise JaxpulpError(f"pool_fc={self.pool_fc!r}: expected one of {POOL_FC}")
        for n in ("dory_kernels", "lto", "dw_input_waits", "mixed_sw", "mixed_sw_spills"):
            v = getattr(self, n)
            if not isinstance(v, bool):
                raise JaxpulpError(f"{n}={v!r}: expected True or False")
        if isinstance(self.bn_bits, bool):
            raise JaxpulpError(f"bn_bits={self.bn_bits!r}: expected None, 32 or 64")
        if self.conv_split not in ("mixed", "ho"):
            raise JaxpulpError(f"conv_split={self.conv_split!r}: expected 'mixed' or 'ho'")
        if self.dma_3d not in ("row", "pixel"):
            raise JaxpulpError(f"dma_3d={self.dma_3d!r}: expected 'row' or 'pixel'")
        if self.bn_bits not in (None, 32, 64):
            raise JaxpulpError(f"bn_bits={self.bn_bits!r}: expected None, 32 or 64")
        if self.dw_input not in DW_INPUT:
            raise JaxpulpError(f"dw_input={self.dw_input!r}: expected one of {DW_INPUT}")
        if self.matmul_outer not in ("measured", "gcc"):
            raise JaxpulpError(f"matmul_outer={self.matmul_outer!r}: expected 'measured' or 'gcc'")


DORY_GAP8 = Flavour("dory-gap8", "hwc-to-chw", "dory",
                    "DORY's 8-bit flow for GAP-8 (-O3 -flto): pulp-nn conv_Ho_parallel / pointwise_HoWo_parallel, "
                    "link-time specialised depthwise_generic fed by a waited per-channel HWC->CHW DMA, DORY pooling",
                    dory_kernels=True, matmul_outer="gcc", lto=True, conv_split="ho", dw_input_waits=True,
                    dma_3d="pixel")
# DORY's --Bn_Relu_Bits (network_generate.py default 32) picks pulp-nn/32bit or pulp-nn/64bit for every layer
DORY_GAP8_BN32 = dataclasses.replace(DORY_GAP8, name="dory-gap8-bn32", bn_bits=32,
                                     description=DORY_GAP8.description + "; --Bn_Relu_Bits 32 (pulp-nn/32bit)")
DORY_GAP8_BN64 = dataclasses.replace(DORY_GAP8, name="dory-gap8-bn64", bn_bits=64,
                                     description=DORY_GAP8.description + "; --Bn_Relu_Bits 64 (pulp-nn/64bit)")
PULP_NN_MIXED = Flavour("pulp-nn-mixed", "chw-planes", "pulp-nn-mixed",
                        "pure pulp-nn-mixed: byte-plane depthwise input kept in L2, mixed kernels everywhere")
# DORY d046edd's mixed-precision software flow ('mixed-sw'): pulp-nn-mixed 7e9c4b0b, whose sub-byte unpack
# helpers are noinline calls; every conv and pointwise layer runs pulp_nn_conv_* (docs/deploy.md, "4-bit networks").
DORY_MIXED_SW = Flavour("dory-mixed-sw", "hwc-to-chw", "pulp-nn-mixed",
                        "DORY mixed-sw (d046edd): pulp-nn-mixed 7e9c4b0b, noinline unpack calls, pointwise as conv",
                        matmul_outer="gcc", mixed_sw=True)
FLAVOURS = MappingProxyType({f.name: f for f in (DORY_GAP8, DORY_GAP8_BN32, DORY_GAP8_BN64, PULP_NN_MIXED,
                                                  DORY_MIXED_SW)})


def get_flavour(flavour: str | Flavour) -> Flavour:
    """The registered flavour called ``flavour`` (a ``Flavour`` is returned unchanged)."""
    return lookup(FLAVOURS, flavour, Flavour, "flavour")
