"""Every PULP-NN mixed (XpulpV2) kernel variant, by the C name users know (``pulp_nn_conv_u4_u2_i4``).

``variants()`` lists them all; ``lookup(c_name)`` returns the ``Variant`` (family, precisions, module, config
class and its constraints); ``family_module(family)`` returns the module that implements a family; ``FAMILIES``
relates the kernel families (``cfg.family``) to their modules and golden families.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools

from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import ALL_ACT_TYPES, WEIGHT_TYPES, QType


@dataclasses.dataclass(frozen=True)
class Family:
    """One kernel family: ``name`` is ``cfg.family`` (the ``<family>`` of ``pulp_nn_<family>_...``), ``module`` the
    module under ``jaxpulp.kernels`` that runs it, ``golden`` the golden-vector families of its kernels (the same
    name, except linear: ``linear_quant`` / ``linear_noquant`` by output type). The layer kinds that run as each
    family are in ``jaxpulp.network.kinds``."""

    name: str
    module: str
    golden: tuple


FAMILIES = {f.name: f for f in (
    Family("conv", "conv", ("conv",)),
    Family("pointwise", "pointwise", ("pointwise",)),
    Family("depthwise", "depthwise", ("depthwise",)),
    Family("linear", "linear", ("linear_quant", "linear_noquant")),
    Family("pool", "pool", ()),  # PoolConfig, the base of the two pooling configs
    Family("maxpool", "pool", ("maxpool",)),
    Family("avgpool", "pool", ("avgpool",)),
    Family("add", "add", ("add",)),
    Family("add_legacy", "add", ("add_legacy",)),
)}

# golden family name -> module under jaxpulp.kernels
_FAMILY_MODULES = {g: f.module for f in FAMILIES.values() for g in f.golden}
# either vocabulary (kernel family or golden family) -> module
_ANY_FAMILY_MODULES = {**{f.name: f.module for f in FAMILIES.values()}, **_FAMILY_MODULES}

CONSTRAINTS = {
    "conv": "Ci*bi % 8 == 0; Ci*Kh*Kw*bw % 8 == 0; Co*bo % 8 == 0; consistent Ho/Wo; bias only without drift (§5.5)",
    "pointwise": "1x1 (stride / padding are ignored by the kernel); Ci*bi, Ci*bw, Co*bo multiples of 8; no sub-byte "
                 "output with the half-width split (§7.4); no bias read past the array (§7.3); sub-byte leftover "
                 "pixels only where no output depends on bytes past the input (§7.1)",
    "depthwise": "Ci == Co, a multiple of G = 8/min(bi, bo, bw); Kh*Kw >= 4; Kw >= 2 and pl + 4*ceil(Kw/4) <= "
                 "(pb+2)*Kw; ceil(pl/sx) < Wo; no used tap of the last input row past the row end (§8)",
    "linear_quant": "N a multiple of 16 (min(bi,bw)=2) or 8 (=4); no short last chunk (8-bit), "
                    "no odd chunk start (4-bit), ceil(M/8) % 8 not in {5,6,7} (2-bit) (§9)",
    "linear_noquant": "N a multiple of 16 (min(bi,bw)=2) or 8 (=4); no short last chunk of other parity (§9)",
    "maxpool": "C*b % 8 == 0; Wo <= W (in-place pass 1); no window starting past the image (§10.1)",
    "avgpool": "C*b % 8 == 0 for input and output (asymmetric padding is modelled as the library does it, §10.2)",
    "add": "H*W*C per core a multiple of 4 for sub-byte tensors (§11.1)",
    "add_legacy": "one core only: with 8 cores the kernel writes past the output (§11.2)",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One C kernel: its name, family and element types (``None`` where the family has no such operand)."""

    c_name: str
    family: str
    in_type: QType
    out_type: QType
    w_type: QType | None = None
    in2_type: QType | None = None

    @property
    def module(self):
        return family_module(self.family)

    @property
    def constraints(self) -> str:
        return CONSTRAINTS[self.family]


def family_module(family: str):
    """The module implementing ``family``: a golden family (``"linear_quant"`` -> ``jaxpulp.kernels.linear``) or a
    kernel family, ``cfg.family`` (``"linear"``, ``"maxpool"``)."""
    if family not in _ANY_FAMILY_MODULES:
        raise JaxpulpError(f"family={family!r}: expected one of {sorted(_ANY_FAMILY_MODULES)}")
    name = _ANY_FAMILY_MODULES[family]
    try:
        return importlib.import_module(f"jaxpulp.kernels.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"jaxpulp.kernels.{name}":
            raise JaxpulpError(f"family={family!r}: module jaxpulp.kernels.{name} is not implemented yet") from e
        raise


def _build() -> dict[str, Variant]:
    out = {}

    def add(v):
        out[v.c_name] = v

    for fam in ("conv", "pointwise", "depthwise", "linear"):
        for i, o, w in itertools.product(ALL_ACT_TYPES, ALL_ACT_TYPES, WEIGHT_TYPES):
            add(Variant(f"pulp_nn_{fam}_{i}_{o}_{w}", FAMILIES[fam].golden[0], i, o, w))
    for i, w in itertools.product(ALL_ACT_TYPES, WEIGHT_TYPES):
        add(Variant(f"pulp_nn_linear_{i}_i32_{w}", "linear_noquant", i, QType(32, True), w))
    for t in ALL_ACT_TYPES:
        add(Variant(f"pulp_nn_maxpool_{t}", "maxpool", t, t))
    for i, o in itertools.product(ALL_ACT_TYPES, ALL_ACT_TYPES):
        add(Variant(f"pulp_nn_avgpool_{i}_{o}", "avgpool", i, o))
    for a, b, o in itertools.product(ALL_ACT_TYPES, ALL_ACT_TYPES, ALL_ACT_TYPES):
        add(Variant(f"pulp_nn_add_{a}_{b}_{o}", "add", a, o, in2_type=b))
    unsigned = [t for t in ALL_ACT_TYPES if not t.signed]
    for a, b in itertools.combinations_with_replacement(unsigned, 2):
        add(Variant(f"pulp_nn_add_{a}_{b}", "add_legacy", a, QType(max(a.bits, b.bits), False), in2_type=b))
    return out


_VARIANTS = _build()


def variants(family: str | None = None) -> list[Variant]:
    """All variants (750 minus the matmul helpers), optionally of one golden family."""
    return [v for v in _VARIANTS.values() if family is None or v.family == family]


def lookup(c_name: str) -> Variant:
    """The variant with this C name; a clear error with close matches otherwise."""
    try:
        return _VARIANTS[c_name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(c_name, _VARIANTS, n=3)
        raise JaxpulpError(f"c_name={c_name!r}: no such PULP-NN kernel"
                           + (f"; did you mean {', '.join(close)}?" if close else "")) from None
