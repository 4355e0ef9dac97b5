"""Each kernel family's real work split over cores, as the C library computes it (semantics.md §5.3, §8.2,
§9.2, §10, §11, §11.3).

Every function is pure integer arithmetic on Python ints (static information) and returns, for one core id,
the half-open ranges that core owns. ``jaxpulp.cluster.run`` evaluates them for all core ids.
"""
from __future__ import annotations

import dataclasses

from jaxpulp.errors import JaxpulpError


def _int(name: str, v, lo: int) -> None:
    if type(v) is not int and (isinstance(v, bool) or not hasattr(v, "__index__")):
        raise JaxpulpError(f"{name}={v!r}: expected an int >= {lo}")
    if v < lo:
        raise JaxpulpError(f"{name}={v!r}: expected an int >= {lo}")


def _check(core, ncores, **dims) -> None:
    """Cheap argument checks (a few int comparisons): ncores >= 1, 0 <= core < ncores, dims >= their minimum
    (``name=(value, minimum)``)."""
    _int("ncores", ncores, 1)
    _int("core", core, 0)
    if core >= ncores:
        raise JaxpulpError(f"core={core!r}: expected a core id in 0..{ncores - 1} (ncores={ncores})")
    for name, (v, lo) in dims.items():
        _int(name, v, lo)


def fl1(x: int) -> int:
    """``p.fl1``: index of the most significant set bit (= floor(log2 x)) for x > 0."""
    _int("x", x, 1)
    return x.bit_length() - 1


@dataclasses.dataclass(frozen=True)
class PixelRange:
    """Output rows [row0, row1) and columns [col0, col1) that one core computes."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def empty(self) -> bool:
        return self.row1 <= self.row0 or self.col1 <= self.col0

    @property
    def width(self) -> int:
        return max(0, self.col1 - self.col0)

    @property
    def rows(self) -> int:
        return max(0, self.row1 - self.row0)

    @property
    def pairs_per_row(self) -> int:
        """Pixel pairs per row handed to the 4x2 matmul."""
        return self.width // 2

    @property
    def leftover(self) -> bool:
        """True when each row ends with a single leftover pixel (odd width)."""
        return self.width % 2 == 1


def conv_split(core: int, Ho: int, Wo: int, ncores: int) -> PixelRange:
    """Conv / pointwise split (§5.3): whole rows when ``Ho % ncores == 0`` or ``Wo == 1``, else core pairs
    share ceil(Ho / (ncores/2)) rows and split each row in halves (section 1 gets the extra column)."""
    _check(core, ncores, Ho=(Ho, 0), Wo=(Wo, 0))
    extra = int(Ho % ncores != 0)
    if extra and Wo > 1:
        half = ncores // 2
        group, section = core >> 1, core & 1
        chunk = Ho // half + int(Ho % half != 0)
        start = min(group * chunk, Ho)
        stop = min(start + chunk, Ho)
        wh = Wo // 2
        c0, c1 = (0, wh) if section == 0 else (wh, Wo)
        return PixelRange(start, stop, c0, c1)
    chunk = Ho // ncores + extra
    start = min(core * chunk, Ho)
    return PixelRange(start, min(start + chunk, Ho), 0, Wo)


def depthwise_split(core: int, Co: int, group: int, ncores: int) -> tuple[int, int]:
    """Depthwise split (§8.2): channel groups of ``group`` channels, ceil(Ng/ncores) groups per core.
    Returns the core's channel range [c0, c1) (whole groups)."""
    _check(core, ncores, Co=(Co, 0), group=(group, 1))
    ng = Co // group
    chunk = ng // ncores + int(ng % ncores != 0)
    start = min(core * chunk, ng)
    stop = min(start + chunk, ng)
    return start * group, stop * group


def row_split(core: int, rows: int, ncores: int) -> tuple[int, int]:
    """Max pooling and add split (§10.1, §11.1): ``n = min(ncores, rows)``,
    ``chunk = (rows >> fl1(n)) + [rows % ncores != 0]``; rows [min(c*chunk, rows), min(start+chunk, rows))."""
    _check(core, ncores, rows=(rows, 1))
    n = min(ncores, rows)
    chunk = (rows >> fl1(n)) + int(rows % ncores != 0)
    start = min(core * chunk, rows)
    return start, min(start + chunk, rows)


def avgpool_split(core: int, Ho: int, ncores: int) -> tuple[int, int]:
    """Average pooling split (§10.2): ``n = min(ncores, Ho)``, ``chunk = (Ho >> fl1(n)) + [(Ho & (n-1)) != 0]``,
    start = core*chunk (not clamped), stop = min(start + chunk, Ho)."""
    _check(core, ncores, Ho=(Ho, 1))
    n = min(ncores, Ho)
    chunk = (Ho >> fl1(n)) + int((Ho & (n - 1)) != 0)
    start = core * chunk
    return start, max(start, min(start + chunk, Ho))


def maxpool_out_split(core: int, H: int, Ho: int, ncores: int) -> tuple[int, int]:
    """Max pooling pass 2 (the y pass, §10.1): output rows of ``core``. The kernel reuses pass 1's core count
    ``n = min(ncores, H)`` and lowers it to ``Ho`` only if ``Ho < ncores``; ``chunk = (Ho >> fl1(n)) +
    [Ho % ncores != 0]``, start = core*chunk (not clamped), stop = min(start + chunk, Ho)."""
    _check(core, ncores, H=(H, 1), Ho=(Ho, 1))
    n = Ho if Ho < ncores else min(ncores, H)
    chunk = (Ho >> fl1(n)) + int(Ho % ncores != 0)
    start = core * chunk
    return start, max(start, min(start + chunk, Ho))


def linear_split(core: int, N: int, ncores: int, out_bits: int | None) -> tuple[int, int]:
    """Linear split over output neurons (§9.2). ``out_bits`` = 8, 4, 2, or None for the int32-output kernels.

    bo = 8 / int32: chunk = ceil(N/ncores); bo = 4: chunk' = 2 if chunk == 1 else chunk;
    bo = 2: chunk' = chunk + (4 - chunk % 8 if chunk % 4 else 0). Returns the neuron range [n0, n1)."""
    _check(core, ncores, N=(N, 0))
    if out_bits not in (None, 2, 4, 8, 32) or isinstance(out_bits, bool):
        raise JaxpulpError(f"out_bits={out_bits!r}: expected 8, 4, 2 or None (int32 output)")
    chunk = N // ncores + int(N % ncores != 0)
    if out_bits == 4:
        chunk = 2 if chunk == 1 else chunk
    elif out_bits == 2:
        chunk = chunk + ((4 - (chunk & 7)) if chunk & 3 else 0)
    start = min(core * chunk, N)
    return start, min(start + chunk, N)


def depthwise_columns(Wo: int, sx: int, pl: int, pr: int) -> list[tuple[str, int]]:
    """Output columns in the order the C kernel's three x phases visit them (§8.4): ('L'|'M'|'R', xo).
    Left: do-while while xo*sx < pl (only if pl > 0); middle: do-while (always once) while
    xo*sx < Wo*sx - pr; right: for the rest of the row. Columns >= Wo are written past the row."""
    cols, x = [], 0
    if pl > 0:
        while True:
            cols.append(("L", x))
            x += 1
            if not x * sx < pl:
                break
    while True:
        cols.append(("M", x))
        x += 1
        if not x * sx < Wo * sx - pr:
            break
    while x < Wo:
        cols.append(("R", x))
        x += 1
    return cols
