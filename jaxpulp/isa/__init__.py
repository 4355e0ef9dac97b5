"""Instruction-set extensions, one module each: ``xpulpv2`` (RI5CY / GAP-8 cluster cores).

The XpulpV2 builtins are re-exported here: ``from jaxpulp.isa import sdotusp4, INSTRUCTIONS``.
"""
from jaxpulp.isa import xpulpv2 as xpulpv2
from jaxpulp.isa.xpulpv2 import (
    INSTRUCTIONS as INSTRUCTIONS,
    Instruction as Instruction,
    avgu4 as avgu4,
    bextract as bextract,
    bextractu as bextractu,
    binsert as binsert,
    clip_r as clip_r,
    clipu_r as clipu_r,
    fl1 as fl1,
    insert_field as insert_field,
    max4 as max4,
    maxsi as maxsi,
    maxu4 as maxu4,
    maxusi as maxusi,
    min4 as min4,
    minsi as minsi,
    minu4 as minu4,
    minusi as minusi,
    pack4 as pack4,
    sdotsp4 as sdotsp4,
    sdotup4 as sdotup4,
    sdotusp4 as sdotusp4,
)

__all__ = ["xpulpv2", *xpulpv2.__all__]
