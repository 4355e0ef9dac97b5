"""Frozen, hashable kernel configurations (static jit arguments), one per kernel family.

Everything that selects a code path in the C kernel is here (shapes, precisions, flags, whether a bias
pointer is passed); per-call numbers (``out_mult``, ``out_shift``, kappa, lambda, bias values) are data.
Field names follow the golden vectors (../shared/golden/README.md). Shapes are in elements, not bytes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import QType

SEMANTICS = ("library", "ideal")


def _q(v, name):
    try:
        return QType.parse(v)
    except JaxpulpError as e:
        raise JaxpulpError(f"{name}={v!r}: expected a type string such as 'u8', 'i4', 'u2'") from e


def _int(v):
    """``v`` as a Python int when it is an int or a numpy integer (bools are not ints here); else None."""
    return int(v) if is_int(v) else None


def _pos(obj, *names, minimum=1):
    for n in names:
        v = getattr(obj, n)
        iv = _int(v)
        if iv is None or iv < minimum:
            raise JaxpulpError(f"{n}={v!r}: expected an int >= {minimum}")
        object.__setattr__(obj, n, iv)


def _ints(obj, name, count, minimum, what):
    v = getattr(obj, name)
    t = tuple(v) if isinstance(v, (tuple, list)) else None
    if t is None or len(t) != count or any(_int(e) is None or _int(e) < minimum for e in t):
        raise JaxpulpError(f"{name}={v!r}: expected {what}, {'two' if count == 2 else 'four'} ints >= {minimum}")
    object.__setattr__(obj, name, tuple(int(e) for e in t))


def _pair(obj, name, minimum):
    _ints(obj, name, 2, minimum, "(y, x)")


def _pad4(obj):
    _ints(obj, "pad", 4, 0, "(top, bottom, left, right)")


def _bias(obj):
    v = obj.bias
    if not isinstance(v, (bool, np.bool_)) and _int(v) not in (0, 1):
        raise JaxpulpError(f"bias={v!r}: expected a bool (whether a bias pointer is passed)")
    object.__setattr__(obj, "bias", bool(v))


def _sem(obj):
    if obj.semantics not in SEMANTICS:
        raise JaxpulpError(f"semantics={obj.semantics!r}: expected one of {SEMANTICS}")


def _bn_bits(obj):
    if obj.bn_bits not in (32, 64):
        raise JaxpulpError(f"bn_bits={obj.bn_bits!r}: expected 32 or 64 (the library's 32bit/ or 64bit/ tree: width "
                           "of kappa, lambda and the batch-norm requantisation arithmetic)")
    v = obj.bn_split
    if v is None:
        return
    if (obj.bn_bits != 64 or not isinstance(v, tuple) or len(v) != 2
            or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in v)):
        raise JaxpulpError(f"bn_split={v!r}: expected None, or with bn_bits=64 a (piece bits, pieces) pair of ints "
                           ">= 1 that quant.bn64_split proved for the parameters the kernel will run with")


def _flags(obj):
    for n in ("relu", "bn"):
        v = getattr(obj, n)
        iv = int(v) if isinstance(v, bool) else _int(v)  # a bool is the flag value 0 / 1 (kept as given)
        if iv is None or not 0 <= iv <= 255:
            raise JaxpulpError(f"{n}={v!r}: expected a uint8 flag value (0 or 1; the library passes uint8)")
        if not isinstance(v, bool):
            object.__setattr__(obj, n, iv)


def out_dim(size: int, pad_a: int, pad_b: int, k: int, stride: int) -> int:
    """Output extent of a zero-padded window: floor((size + pad_a + pad_b - k) / stride) + 1."""
    return (size + pad_a + pad_b - k) // stride + 1


@dataclasses.dataclass(frozen=True)
class ConvConfig:
    """``pulp_nn_conv_<in>_<out>_<w>``: H x W x Ci input (HWC) -> Ho x Wo x Co output, Kh x Kw kernel.

    stride = (y, x); pad = (top, bottom, left, right); relu / bn = the uint8 flags; bias = a bias pointer is
    passed; Ho / Wo default to the zero-padded geometry. semantics: "library" (bit-exact, quirks included)
    or "ideal" (the intended integer arithmetic).
    """

    in_type: QType
    out_type: QType
    w_type: QType
    H: int
    W: int
    Ci: int
    Co: int
    Kh: int = 3
    Kw: int = 3
    stride: tuple = (1, 1)
    pad: tuple = (0, 0, 0, 0)
    relu: int = 1
    bn: int = 1
    bias: bool = False
    Ho: int = None  # type: ignore[assignment]  # None until __post_init__ computes it: always an int after
    Wo: int = None  # type: ignore[assignment]  # (as Ho)
    semantics: str = "library"
    bn_bits: int = 32
    bn_split: tuple[int, int] | None = None  # see LinearConfig

    family = "conv"

    def __post_init__(self):
        for n in ("in_type", "out_type", "w_type"):
            object.__setattr__(self, n, _q(getattr(self, n), n))
        if not self.w_type.signed or self.w_type.bits == 32:
            raise JaxpulpError(f"w_type={self.w_type}: expected signed weights i8, i4 or i2")
        for n in ("in_type", "out_type"):
            if getattr(self, n).bits == 32:
                raise JaxpulpError(f"{n}={getattr(self, n)}: expected 8, 4 or 2 bits")
        _pos(self, "H", "W", "Ci", "Co", "Kh", "Kw")
        _pair(self, "stride", 1)
        _pad4(self)
        _flags(self)
        _bias(self)
        _sem(self)
        _bn_bits(self)
        t, b, left, r = self.pad
        if self.Ho is None:
            object.__setattr__(self, "Ho", out_dim(self.H, t, b, self.Kh, self.stride[0]))
        if self.Wo is None:
            object.__setattr__(self, "Wo", out_dim(self.W, left, r, self.Kw, self.stride[1]))
        _pos(self, "Ho", "Wo")

    @property
    def K(self) -> int:
        """im2col length Ci*Kh*Kw (elements)."""
        return self.Ci * self.Kh * self.Kw

    @property
    def c_name(self) -> str:
        return f"pulp_nn_{self.family}_{self.in_type}_{self.out_type}_{self.w_type}"

    @property
    def macs(self) -> int:
        return self.Ho * self.Wo * self.Co * self.K

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class PointwiseConfig(ConvConfig):
    """``pulp_nn_pointwise_<in>_<out>_<w>``: 1x1, stride 1, no padding (the library ignores those arguments)."""

    Kh: int = 1
    Kw: int = 1
    family = "pointwise"


@dataclasses.dataclass(frozen=True)
class DepthwiseConfig(ConvConfig):
    """``pulp_nn_depthwise_<in>_<out>_<w>``: channel-major input/weights, HWC output; Ci must equal Co."""

    family = "depthwise"

    @property
    def K(self) -> int:
        """Taps per output value Kh*Kw."""
        return self.Kh * self.Kw


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """``pulp_nn_linear_<in>_<out>_<w>``: N inputs -> M output neurons, weights (M, N) row-major.

    out_type "i32" selects the no-quant kernels (``pulp_nn_linear_<in>_i32_<w>``, raw int32 output).
    """

    in_type: QType
    out_type: QType
    w_type: QType
    N: int
    M: int
    relu: int = 1
    bn: int = 1
    bias: bool = False
    semantics: str = "library"
    bn_bits: int = 32
    # bn_bits=64 in the int32 pieces of quant.bn64_split: a (piece bits, pieces) split proved for the kappa, lambda
    # and out_shift of every call (jaxpulp.network sets it from a network's own parameters); None: 16-bit limbs
    bn_split: tuple[int, int] | None = None

    family = "linear"

    def __post_init__(self):
        for n in ("in_type", "out_type", "w_type"):
            object.__setattr__(self, n, _q(getattr(self, n), n))
        if not self.w_type.signed or self.w_type.bits == 32:
            raise JaxpulpError(f"w_type={self.w_type}: expected signed weights i8, i4 or i2")
        if self.in_type.bits == 32:
            raise JaxpulpError(f"in_type={self.in_type}: expected 8, 4 or 2 bits")
        if self.out_type.bits == 32 and not self.out_type.signed:
            raise JaxpulpError(f"out_type={self.out_type}: expected u8..i2 or i32")
        _pos(self, "N", "M")
        _flags(self)
        _bias(self)
        _sem(self)
        _bn_bits(self)

    @property
    def quantized(self) -> bool:
        return self.out_type.bits != 32

    @property
    def c_name(self) -> str:
        return f"pulp_nn_linear_{self.in_type}_{self.out_type}_{self.w_type}"

    @property
    def macs(self) -> int:
        return self.N * self.M

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """Pooling window over an H x W x C (HWC) tensor; stride = (y, x), pad = (top, bottom, left, right)."""

    in_type: QType
    out_type: QType
    H: int
    W: int
    C: int
    Kh: int = 2
    Kw: int = 2
    stride: tuple = (2, 2)
    pad: tuple = (0, 0, 0, 0)
    Ho: int = None  # type: ignore[assignment]  # None until __post_init__ computes it: always an int after
    Wo: int = None  # type: ignore[assignment]  # (as Ho)
    semantics: str = "library"

    family = "pool"

    def __post_init__(self):
        for n in ("in_type", "out_type"):
            object.__setattr__(self, n, _q(getattr(self, n), n))
            if getattr(self, n).bits == 32:
                raise JaxpulpError(f"{n}={getattr(self, n)}: expected 8, 4 or 2 bits")
        _pos(self, "H", "W", "C", "Kh", "Kw")
        _pair(self, "stride", 1)
        _pad4(self)
        _sem(self)
        t, b, left, r = self.pad
        if self.Ho is None:
            object.__setattr__(self, "Ho", out_dim(self.H, t, b, self.Kh, self.stride[0]))
        if self.Wo is None:
            object.__setattr__(self, "Wo", out_dim(self.W, left, r, self.Kw, self.stride[1]))
        _pos(self, "Ho", "Wo")

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class MaxPoolConfig(PoolConfig):
    """``pulp_nn_maxpool_<t>``: out_type must equal in_type."""

    family = "maxpool"

    def __post_init__(self):
        super().__post_init__()
        if self.out_type != self.in_type:
            raise JaxpulpError(f"out_type={self.out_type}: max pooling keeps the input type {self.in_type}")

    @property
    def c_name(self) -> str:
        return f"pulp_nn_maxpool_{self.in_type}"


@dataclasses.dataclass(frozen=True)
class AvgPoolConfig(PoolConfig):
    """``pulp_nn_avgpool_<in>_<out>``; requant = the ``flag_requant`` argument."""

    requant: int = 0
    family = "avgpool"

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.requant, int):
            raise JaxpulpError(f"requant={self.requant!r}: expected an int flag (0 = divide by Kh*Kw, "
                               "nonzero = requantise with lambda / out_add / out_shift)")

    @property
    def c_name(self) -> str:
        return f"pulp_nn_avgpool_{self.in_type}_{self.out_type}"


@dataclasses.dataclass(frozen=True)
class AddConfig:
    """``pulp_nn_add_<in1>_<in2>_<out>`` (requantising add) over H x W x C tensors;
    requant = ``out_requant_flag``."""

    in1_type: QType
    in2_type: QType
    out_type: QType
    H: int
    W: int
    C: int
    requant: int = 1
    semantics: str = "library"

    family = "add"

    def __post_init__(self):
        for n in ("in1_type", "in2_type", "out_type"):
            object.__setattr__(self, n, _q(getattr(self, n), n))
            if getattr(self, n).bits == 32:
                raise JaxpulpError(f"{n}={getattr(self, n)}: expected 8, 4 or 2 bits")
        _pos(self, "H", "W", "C")
        _sem(self)
        if not isinstance(self.requant, int):
            raise JaxpulpError(f"requant={self.requant!r}: expected an int flag (out_requant_flag: 0 = no output "
                               "requantisation, nonzero = (s*out_mul + out_add) >> out_shift)")

    @property
    def c_name(self) -> str:
        return f"pulp_nn_add_{self.in1_type}_{self.in2_type}_{self.out_type}"

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class AddLegacyConfig:
    """Legacy ``pulp_nn_add_u<b1>_u<b2>``: unsigned inputs, output type u<max(b1, b2)>."""

    in1_type: QType
    in2_type: QType
    H: int
    W: int
    C: int
    semantics: str = "library"

    family = "add_legacy"

    def __post_init__(self):
        for n in ("in1_type", "in2_type"):
            object.__setattr__(self, n, _q(getattr(self, n), n))
            t = getattr(self, n)
            if t.signed or t.bits == 32:
                raise JaxpulpError(f"{n}={t}: the legacy add kernels take unsigned u8, u4 or u2 inputs")
        _pos(self, "H", "W", "C")
        _sem(self)

    @property
    def out_type(self) -> QType:
        return QType(max(self.in1_type.bits, self.in2_type.bits), False)

    @property
    def c_name(self) -> str:
        return f"pulp_nn_add_{self.in1_type}_{self.in2_type}"

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)
