"""One record per layer kind: everything the network code needs to know about a ``Layer.kind``.

Adding a layer kind touches its ``LayerKind`` record here, the hook functions the record names and its kernel
module (``jaxpulp.kernels.<module>``); the graph, the mapping, both execution paths, the numpy reference, the
report and the cost table read the record instead of switching on the kind.

Vocabulary (see ``docs/architecture.md``): a **layer kind** (``Layer.kind``, the rows below) is what a network
layer computes; a **kernel family** (``cfg.family``, the ``<family>`` of ``pulp_nn_<family>_...``) is which
PULP-NN kernel runs it (a conv layer runs as the ``conv`` or the ``pointwise`` family); a **golden family** is
how the C library's test vectors group the kernels (the kernel family, except that linear splits into
``linear_quant`` / ``linear_noquant``). ``kernels.catalog.FAMILIES`` holds the family side of that table.

Hooks are ``"module:function"`` strings resolved on first use (``LayerKind.hook``), so this module imports
nothing from the rest of ``jaxpulp.network`` and the modules holding the hooks can import it. Each hook's
signature is the same for every kind:

* ``choose(lay, semantics, cluster) -> mapping.KernelChoice``: the kernel configuration (and why),
* ``packed_args(lay, params, cfg) -> tuple``: the packed path's host-side kernel arguments (packed weights,
  Params), built once per network,
* ``packed(cfg, args, ins, cluster, groups) -> lanes``: the layer's kernel on its input ``execute.Image``s (packed
  memory images, held as words or as their elements), returning the output image's elements ((batch, ...)
  int32 at ``cfg.out_type``: the kernel module's ``run_lanes``, bit-identical to unpacking its packed ``run``),
* ``values(lay, cfg, p, ins, in_types, out_type, cluster, groups) -> int32 values``: the value path (types as
  data); ``groups`` (static, both paths): the layer's conv input-channel groups proved exact from its concrete
  weights (``execute._weight_groups``), None where not applicable (every other kind ignores it),
* ``reference(lay, p, ins) -> int64``: the plain-numpy twin (accumulators for weighted kinds; the
  requantisation after them is shared).

Memory (bytes): ``weight_bytes`` is the packed weight image (``ceil(numel * bits / 8)``: the kernels' constraints
make every weighted row a whole number of bytes, and depthwise weights are byte planes across channels, so this
is exact); ``param_bytes`` the per-output-channel bias (4 B) and kappa / lambda (4 + 4 B, 8 + 8 B in the 64-bit tree;
only in BN mode, never for int32-output linear layers). The cost table's
``weight_bytes`` (a precision choice's cost) is the first; ``report.memory``'s ``weights`` (what sits in memory)
is their sum.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import QType

if TYPE_CHECKING:
    from jaxpulp.network.graph import Layer

HOOKS = ("choose", "packed_args", "packed", "values", "reference")


def _conv_w(lay: Layer) -> tuple:
    H, W, C = lay.in_shape
    return (lay.out_shape[2], lay.kernel[0], lay.kernel[1], C)


def _depthwise_w(lay: Layer) -> tuple:
    return (lay.out_shape[2], lay.kernel[0], lay.kernel[1])


def _linear_w(lay: Layer) -> tuple:
    H, W, C = lay.in_shape
    return (lay.out_shape[2], H * W * C)


@dataclasses.dataclass(frozen=True)
class LayerKind:
    """The facts of one layer kind.

    name: ``Layer.kind``. module: the kernel module under ``jaxpulp.kernels``. families: the kernel families
    (``cfg.family``) a layer of this kind may run as. params: the parameter arrays it carries (``net.params``
    keys). n_inputs: input tensors. weight_shape: layer -> the weight array's shape (None: no weights).
    flat: reads its input as one vector (linear: (1, 1, N)). int32_out: has kernels with a raw int32 output (no
    requantisation: linear). channelwise: output channel c reads input channel c
    only (depthwise). params_optional: the parameters may be absent (an average pool without requantisation).
    plinio: PLiNIO's pattern name (cost LUT export). choose / packed_args / packed / values / reference: hooks
    (module docstring).
    """

    name: str
    module: str
    families: tuple
    params: tuple
    plinio: str
    choose: str
    packed_args: str
    packed: str
    values: str
    reference: str
    n_inputs: int = 1
    weight_shape: Callable[[Layer], tuple] | None = None
    flat: bool = False
    channelwise: bool = False
    int32_out: bool = False
    params_optional: Callable[[Layer], bool] | None = None

    @property
    def weighted(self) -> bool:
        """Has a weight tensor (and kappa / lambda requantisation)."""
        return self.weight_shape is not None

    @property
    def slots(self) -> tuple:
        """What the three cost-table axes of a layer of this kind mean."""
        if self.weighted:
            return ("in", "w", "out")
        if self.n_inputs == 2:
            return ("in1", "in2", "out")
        return ("in", None, "out")

    def hook(self, stage: str) -> Callable[..., Any]:
        """The function of hook ``stage`` (one of ``HOOKS``), imported on first use."""
        if stage not in HOOKS:
            raise JaxpulpError(f"stage={stage!r}: expected one of {HOOKS}")
        return resolve(getattr(self, stage))

    def kernel_module(self):
        """The kernel module (``jaxpulp.kernels.<module>``)."""
        return importlib.import_module(f"jaxpulp.kernels.{self.module}")


@functools.cache
def resolve(ref: str) -> Callable[..., Any]:
    """The function a ``"package.module:function"`` hook names."""
    mod, _, fn = ref.partition(":")
    if not mod or not fn:
        raise JaxpulpError(f"hook={ref!r}: expected 'package.module:function'")
    return getattr(importlib.import_module(mod), fn)


_WEIGHTED_PARAMS = ("w", "kappa", "lam", "out_mult", "out_shift", "bias")
_M, _E, _R = "jaxpulp.network.mapping", "jaxpulp.network.execute", "jaxpulp.network.reference"


def _weighted(name: str, shape, plinio: str, **kw) -> LayerKind:
    return LayerKind(name, name, (name,), _WEIGHTED_PARAMS, plinio, choose=f"{_M}:choose_{name}",
                     packed_args=f"{_E}:weighted_args", packed=f"{_E}:packed_{name}", values=f"{_E}:weighted_values",
                     reference=f"{_R}:{name}_acc", weight_shape=shape, **kw)


def _pool(name: str, params: tuple, plinio: str, **kw) -> LayerKind:
    return LayerKind(name, "pool", (name,), params, plinio, choose=f"{_M}:choose_{name}",
                     packed_args=f"{_E}:{name}_args", packed=f"{_E}:packed_{name}", values=f"{_E}:pool_values",
                     reference=f"{_R}:{name}", **kw)


KINDS: dict[str, LayerKind] = {k.name: k for k in (
    dataclasses.replace(_weighted("conv", _conv_w, "Conv2dGeneric"), families=("conv", "pointwise")),
    _weighted("depthwise", _depthwise_w, "Conv2dDW", channelwise=True),
    _weighted("linear", _linear_w, "LinearGeneric", flat=True, int32_out=True),
    _pool("maxpool", (), "MaxPool2d"),
    _pool("avgpool", ("lam", "out_shift", "out_add"), "AvgPool2d", params_optional=lambda lay: not lay.requant),
    LayerKind("add", "add", ("add", "add_legacy"), ("in1_mul", "in1_add", "in1_shift", "in2_mul", "in2_add",
                                                    "in2_shift", "out_mul", "out_add", "out_shift"), "Add",
              choose=f"{_M}:choose_add", packed_args=f"{_E}:add_args", packed=f"{_E}:packed_add",
              values=f"{_E}:add_values", reference=f"{_R}:add", n_inputs=2),
)}

NAMES = tuple(KINDS)  # ("conv", "depthwise", "linear", "maxpool", "avgpool", "add")
WEIGHTED = tuple(k.name for k in KINDS.values() if k.weighted)  # ("conv", "depthwise", "linear")
FAMILY_KIND = {f: k.name for k in KINDS.values() for f in k.families}  # cfg.family -> Layer.kind
POOLS = tuple(k.name for k in KINDS.values() if k.module == "pool")  # ("maxpool", "avgpool")


def of(kind) -> LayerKind:
    """The record of ``kind`` (a kind name or a ``Layer``)."""
    name = getattr(kind, "kind", kind)
    if name not in KINDS:
        raise JaxpulpError(f"kind={name!r}: expected one of {NAMES}")
    return KINDS[name]


def _bits(t, default) -> int:
    return QType.parse(default if t is None else t).bits


def nbytes(numel: int, bits: int) -> int:
    """Bytes of ``numel`` packed ``bits``-bit elements (rounded up to a whole byte)."""
    return -(-numel * bits // 8)


def weight_shape(lay: Layer) -> tuple:
    """The shape of ``lay``'s weight array (``net.params[name]["w"]``); raises for a kind without weights."""
    shape = of(lay).weight_shape
    if shape is None:
        raise JaxpulpError(f"layer {lay.name!r}: a {lay.kind} layer has no weights; expected one of {WEIGHTED}")
    return shape(lay)


def weight_numel(lay: Layer) -> int:
    """Weights of ``lay`` (elements; 0 for kinds without weights)."""
    shape = of(lay).weight_shape
    return math.prod(shape(lay)) if shape else 0


def weight_bytes(lay: Layer, w_type=None, channels: int | None = None) -> int:
    """The packed weight image of ``lay`` at ``w_type`` (default: its own), bytes; 0 without weights.
    channels: only that many output channels' weights (a tile), default all."""
    if not of(lay).weighted:
        return 0
    numel = weight_numel(lay)
    if channels is not None:
        numel = numel // lay.out_shape[2] * channels
    return nbytes(numel, _bits(w_type, lay.w_type))


def param_bytes(lay: Layer, channels: int | None = None) -> int:
    """The per-output-channel parameters next to the weights, bytes: the int32 bias, and kappa and lambda
    (``act_t``: 4 B each in the 32-bit tree, 8 B in the 64-bit one) only where the kernel reads them, i.e. the
    BN mode (bn and relu set, semantics.md 4.1) of a requantising layer; the int32-output linear kernels and
    the MULT / SHIFT-CLIP modes take none. channels: only that many output channels', default all."""
    per_ch = (4 if lay.bias else 0) + (2 * lay.bn_bits // 8 if reads_kappa_lambda(lay) else 0)
    return (lay.out_shape[2] if channels is None else channels) * per_ch


def reads_kappa_lambda(lay: Layer) -> bool:
    """Whether the layer's kernel reads per-channel kappa / lambda arrays (BN mode of a requantising weighted
    layer)."""
    k = of(lay)
    requantises = not (k.flat and lay.out_type.bits == 32)
    return k.weighted and requantises and bool(lay.bn) and bool(lay.relu)


def act_bytes(lay: Layer, in_type=None, second=None, out_type=None) -> int:
    """The packed input(s) and output of ``lay`` at the given types (default: its own), bytes."""
    numel_in = math.prod(lay.in_shape)
    out = nbytes(numel_in, _bits(in_type, lay.in_type)) + nbytes(math.prod(lay.out_shape), _bits(out_type,
                                                                                                 lay.out_type))
    if of(lay).n_inputs == 2:
        out += nbytes(numel_in, _bits(second, lay.in2_type))
    return out


def macs(lay: Layer) -> int:
    """Multiply-accumulates of one inference: every weight once per output pixel (0 without weights)."""
    Ho, Wo, _ = lay.out_shape
    return weight_numel(lay) * (1 if of(lay).flat else Ho * Wo)
