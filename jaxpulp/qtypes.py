"""Quantised element types: a signedness letter plus a bit width (``u8 i8 u4 i4 u2 i2``, ``i32``)."""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.errors import JaxpulpError

SUB_WORD_BITS = (8, 4, 2)


@dataclasses.dataclass(frozen=True, order=True)
class QType:
    """An integer element type: ``bits`` in {2, 4, 8, 32}; ``signed`` two's complement or unsigned."""

    bits: int
    signed: bool

    def __post_init__(self):
        b = self.bits
        if not is_int(b) or int(b) not in (2, 4, 8, 32):
            raise JaxpulpError(f"bits={b!r}: expected one of 2, 4, 8 (or 32 for raw accumulators), an int")
        if not isinstance(self.signed, (bool, np.bool_)):
            raise JaxpulpError(f"signed={self.signed!r}: expected a bool (True: two's complement, False: unsigned)")
        object.__setattr__(self, "bits", int(b))  # numpy integers as the int they hold: one hash, one name
        object.__setattr__(self, "signed", bool(self.signed))

    @classmethod
    def parse(cls, s: str | QType) -> QType:
        """``"u4"`` -> QType(4, False); ``"i8"`` -> QType(8, True). A QType is returned unchanged."""
        if isinstance(s, QType):
            return s
        if (not isinstance(s, str) or len(s) < 2 or s[0] not in "ui" or not s[1:].isascii()
                or not s[1:].isdigit()):
            raise JaxpulpError(f"type={s!r}: expected a type string such as 'u8', 'i4', 'u2'")
        return cls(int(s[1:]), s[0] == "i")

    @property
    def name(self) -> str:
        return f"{'i' if self.signed else 'u'}{self.bits}"

    def __str__(self) -> str:
        return self.name

    @property
    def lo(self) -> int:
        """Smallest representable value."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest representable value."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def per_byte(self) -> int:
        """Elements per byte (1, 2 or 4)."""
        return max(1, 8 // self.bits)


def qtype(s: str | QType) -> QType:
    return QType.parse(s)


ALL_ACT_TYPES = tuple(QType(b, s) for s in (False, True) for b in SUB_WORD_BITS)
WEIGHT_TYPES = tuple(QType(b, True) for b in SUB_WORD_BITS)
