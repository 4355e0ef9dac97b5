"""A small graph IR for quantised networks as PULP-NN runs them.

A ``Network`` is a topologically ordered tuple of ``Layer`` records (static: shapes, precisions, flags; frozen
and hashable, so a layer tuple is a static jit argument) plus ``params`` (data: weights, kappa / lambda,
shifts, as numpy arrays keyed by layer name). Activations are HWC tensors; a linear layer's input and output
are (1, 1, N) / (1, 1, M). Tensors are named; a layer reads ``inputs`` and writes ``output``.

Layer kinds and the PULP-NN family each becomes (``kernel_config`` picks the variant by precision; every fact
about a kind is its record in ``jaxpulp.network.kinds``):

============  ===============================================================================
``conv``      ``pulp_nn_conv_*`` (``pulp_nn_pointwise_*`` for 1x1 / stride 1 / no padding when it is defined)
``depthwise`` ``pulp_nn_depthwise_*`` (HWC activations are turned into byte planes on the way in)
``linear``    ``pulp_nn_linear_*`` (``pulp_nn_linear_*_i32_*`` when the output type is i32)
``maxpool``   ``pulp_nn_maxpool_*``
``avgpool``   ``pulp_nn_avgpool_*``
``add``       ``pulp_nn_add_*`` (requantising residual add)
============  ===============================================================================
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.qtypes import QType

KINDS = kinds.NAMES

# Parameter arrays each kind carries (all integer numpy arrays / scalars).
PARAM_NAMES = {k.name: k.params for k in kinds.KINDS.values()}


def _qt(v, name):
    if v is None:
        return None
    try:
        return QType.parse(v)
    except JaxpulpError as e:
        raise JaxpulpError(f"{name}={v!r}: expected a type string such as 'u8', 'i4'") from e


def _tuple_ints(v, n, name, minimum=0):
    t = tuple(int(x) for x in v)
    if len(t) != n or any(x < minimum for x in t):
        raise JaxpulpError(f"{name}={v!r}: expected {n} ints >= {minimum}")
    return t


@dataclasses.dataclass(frozen=True)
class Layer:
    """One kernel call of a network.

    in_shape / out_shape: (H, W, C) of ``inputs[0]`` and of ``output`` (elements). kernel = (Kh, Kw);
    stride = (y, x); pad = (top, bottom, left, right). relu / bn: the PULP-NN flags (bn=1 and relu=1 select
    the kappa/lambda requantisation). requant: the add / avgpool output-requantisation flag. bn_bits: 32 or 64
    (the library's ``32bit`` / ``64bit`` trees: kappa*acc + lambda and the shift in 32- or 64-bit arithmetic).
    rounding: the source dialect rounds (Deeploy ``RequantShift``); the importer folded ``div/2`` into lambda /
    the offsets, which PULP-NN adds before its floor shift, so the result is the dialect's exactly.
    source: the ONNX nodes the layer was built from.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    output: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    in_type: QType
    out_type: QType
    w_type: QType | None = None
    in2_type: QType | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    relu: int = 1
    bn: int = 1
    bias: bool = False
    requant: int = 1
    bn_bits: int = 32
    rounding: bool = False
    source: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise JaxpulpError(f"layer {self.name!r}: kind={self.kind!r}, expected one of {KINDS}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        need = kinds.of(self.kind).n_inputs
        if len(self.inputs) != need:
            raise JaxpulpError(f"layer {self.name!r}: {len(self.inputs)} inputs, a {self.kind} layer takes {need}")
        for n in ("in_type", "out_type", "w_type", "in2_type"):
            object.__setattr__(self, n, _qt(getattr(self, n), f"layer {self.name!r}: {n}"))
        if kinds.of(self.kind).weighted and self.w_type is None:
            raise JaxpulpError(f"layer {self.name!r}: a {self.kind} layer needs w_type")
        if need == 2 and self.in2_type is None:
            raise JaxpulpError(f"layer {self.name!r}: an add layer needs in2_type")
        object.__setattr__(self, "in_shape", _tuple_ints(self.in_shape, 3, f"layer {self.name!r}: in_shape", 1))
        object.__setattr__(self, "out_shape", _tuple_ints(self.out_shape, 3, f"layer {self.name!r}: out_shape", 1))
        object.__setattr__(self, "kernel", _tuple_ints(self.kernel, 2, f"layer {self.name!r}: kernel", 1))
        object.__setattr__(self, "stride", _tuple_ints(self.stride, 2, f"layer {self.name!r}: stride", 1))
        object.__setattr__(self, "pad", _tuple_ints(self.pad, 4, f"layer {self.name!r}: pad", 0))
        object.__setattr__(self, "source", tuple(self.source))
        if self.bn_bits not in (32, 64):
            raise JaxpulpError(f"layer {self.name!r}: bn_bits={self.bn_bits!r}, expected 32 or 64")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (0 for pooling and add)."""
        return kinds.macs(self)

    def replace(self, **kw) -> Layer:
        return dataclasses.replace(self, **kw)

    def with_types(self, in_type=None, out_type=None, w_type=None, in2_type=None) -> Layer:
        """The same layer at other precisions (``None`` keeps a type)."""
        kw = {k: v for k, v in dict(in_type=in_type, out_type=out_type, w_type=w_type, in2_type=in2_type).items()
              if v is not None}
        return self.replace(**kw)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A network input: name, (H, W, C) shape and element type."""

    name: str
    shape: tuple[int, int, int]
    qtype: QType

    def __post_init__(self):
        object.__setattr__(self, "shape", _tuple_ints(self.shape, 3, f"input {self.name!r}: shape", 1))
        object.__setattr__(self, "qtype", _qt(self.qtype, f"input {self.name!r}: qtype"))


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
    """Layers in execution order, their parameters, the input tensor(s) and the output tensor names.

    inputs: one ``TensorSpec`` or a tuple of them (``input`` is the first). dialect: where it came from ("dory",
    "nemo", "deeploy", "builtin"); notes: what the importer did that a user should know (folded rounding,
    dropped host-side tail operators, layout changes).
    """

    name: str
    inputs: tuple
    layers: tuple
    params: dict
    outputs: tuple
    dialect: str = "builtin"
    notes: tuple = ()

    def __post_init__(self):
        ins = (self.inputs,) if isinstance(self.inputs, TensorSpec) else tuple(self.inputs)
        if not ins or not all(isinstance(i, TensorSpec) for i in ins):
            raise JaxpulpError(f"inputs={self.inputs!r}: expected a TensorSpec or a tuple of them")
        object.__setattr__(self, "inputs", ins)
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "notes", tuple(self.notes))
        validate(self)

    @property
    def input(self) -> TensorSpec:
        """The first (usually the only) input."""
        return self.inputs[0]

    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise JaxpulpError(f"layer={name!r}: no such layer; expected one of {[layer.name for layer in self.layers]}")

    @property
    def macs(self) -> int:
        return sum(lay.macs for lay in self.layers)

    def tensor_types(self) -> dict:
        """Name -> (shape, QType) of every activation tensor."""
        out = {i.name: (i.shape, i.qtype) for i in self.inputs}
        for lay in self.layers:
            out[lay.output] = (lay.out_shape, lay.out_type)
        return out

    def replace(self, **kw) -> Network:
        return dataclasses.replace(self, **kw)


def validate(net: Network) -> None:
    """Producer/consumer consistency: every input exists, shapes and types match what produced them, every
    layer has its parameters with the right shapes. Raises ``JaxpulpError`` naming the layer."""
    known = {i.name: (i.shape, i.qtype) for i in net.inputs}
    names = set()
    for lay in net.layers:
        if lay.name in names:
            raise JaxpulpError(f"layer {lay.name!r}: duplicate layer name")
        names.add(lay.name)
        types = (lay.in_type, lay.in2_type)
        for k, src in enumerate(lay.inputs):
            if src not in known:
                raise JaxpulpError(f"layer {lay.name!r}: input {src!r} is not produced by an earlier layer")
            shape, qt = known[src]
            want_shape = lay.in_shape
            if kinds.of(lay).flat:
                ok = int(np.prod(shape)) == int(np.prod(want_shape))
            else:
                ok = tuple(shape) == tuple(want_shape)
            if not ok:
                raise JaxpulpError(f"layer {lay.name!r}: input {src!r} has shape {shape}, the layer expects "
                                   f"{want_shape}")
            if qt != types[k]:
                raise JaxpulpError(f"layer {lay.name!r}: input {src!r} is {qt}, the layer reads {types[k]} "
                                   "(a layer's output precision is the next layer's input precision)")
        if lay.output in known:
            raise JaxpulpError(f"layer {lay.name!r}: output {lay.output!r} is written twice")
        known[lay.output] = (lay.out_shape, lay.out_type)
        _check_params(lay, net.params.get(lay.name))
    for o in net.outputs:
        if o not in known:
            raise JaxpulpError(f"outputs: {o!r} is not produced by any layer")


def _check_params(lay: Layer, p) -> None:
    k = kinds.of(lay)
    need = k.params
    if not need or (k.params_optional is not None and k.params_optional(lay)):
        return
    if p is None:
        raise JaxpulpError(f"layer {lay.name!r}: no parameters; expected {need}")
    Co = lay.out_shape[2]
    for n in need:
        if n == "bias" and not lay.bias:
            continue
        if n not in p:
            raise JaxpulpError(f"layer {lay.name!r}: parameter {n!r} missing")
        a = np.asarray(p[n])
        if a.dtype.kind not in "iu":
            raise JaxpulpError(f"layer {lay.name!r}: parameter {n!r} has dtype {a.dtype}, expected integers")
    if k.weighted:
        want = kinds.weight_shape(lay)
        if np.shape(p["w"]) != want:
            raise JaxpulpError(f"layer {lay.name!r}: w has shape {np.shape(p['w'])}, expected {want}")
        w = np.asarray(p["w"])
        assert lay.w_type is not None  # weighted kinds: checked by Layer
        if w.size and (w.min() < lay.w_type.lo or w.max() > lay.w_type.hi):
            raise JaxpulpError(f"layer {lay.name!r}: weights span [{w.min()}, {w.max()}], outside {lay.w_type} "
                               f"[{lay.w_type.lo}, {lay.w_type.hi}]")
        for n in ("kappa", "lam") + (("bias",) if lay.bias else ()):
            if np.shape(p[n]) != (Co,):
                raise JaxpulpError(f"layer {lay.name!r}: {n} has shape {np.shape(p[n])}, expected ({Co},)")
