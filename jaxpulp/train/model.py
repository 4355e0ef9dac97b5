"""Trainable models over the network IR (``jaxpulp.network.graph``): a topology is a tuple of ``Layer`` records
(conv, depthwise, linear, max / global-average pools, residual adds) at *template* precisions; the float,
fake-quantised and integer forwards all follow it.

Build one with the small builder (``build(name, in_shape, [conv(16), dw(), maxpool(2), residual(...), ...],
num_classes)``) or from an existing ``Network`` topology (``from_network``). The last layer is always a
``linear`` classifier with an i32 output (``pulp_nn_linear_*_i32_*``, no requantisation): its logits are the
raw accumulators plus an int32 bias, so one per-tensor weight scale keeps the class order of the float model.

Float parameters per weighted layer: ``w`` (HWC kernels, the IR's weight layout), ``a`` / ``b`` (per-channel
scale and bias: the folded batch norm, trained directly) and, per activation tensor, ``alpha`` (PACT clip).
Activations are ``clip(z, lo*s, alpha)`` with ``s = alpha / hi`` of the tensor's type (unsigned: a clipped
ReLU; signed: symmetric).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.network.graph import Layer, Network, TensorSpec
from jaxpulp.qtypes import QType

U8, I8, I32 = QType(8, False), QType(8, True), QType(32, True)


# --------------------------------------------------------------------------------------------- builder specs


@dataclasses.dataclass(frozen=True)
class Conv:
    ch: int
    k: int = 3
    stride: int = 1
    signed: bool = False


@dataclasses.dataclass(frozen=True)
class DW:
    k: int = 3
    stride: int = 1
    signed: bool = False


@dataclasses.dataclass(frozen=True)
class MaxPool:
    k: int = 2


@dataclasses.dataclass(frozen=True)
class AvgPool:
    """Global average pool (no requantisation: the output keeps the input's type)."""


@dataclasses.dataclass(frozen=True)
class Dense:
    n: int
    signed: bool = False


@dataclasses.dataclass(frozen=True)
class Residual:
    """``x + body(x)`` (a requantising ``pulp_nn_add``); the body keeps shape and channels."""

    body: tuple
    signed: bool = False


conv, dw, maxpool, avgpool, dense = Conv, DW, MaxPool, AvgPool, Dense


def residual(*body, signed: bool = False) -> Residual:
    return Residual(tuple(body), signed)


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A trainable topology: ``layers`` at template types (activations u8 / i8 by signedness, weights i8, the
    classifier's output i32), the u8 ``input`` spec and the number of classes."""

    name: str
    input: TensorSpec
    layers: tuple
    num_classes: int

    @property
    def output(self) -> str:
        return self.layers[-1].output

    def network(self, layers=None, params=None) -> Network:
        """A ``Network`` of this topology (``layers``: the same layers at other types; ``params``: integer
        parameters, default zeros of the right shapes)."""
        layers = tuple(self.layers if layers is None else layers)
        return Network(self.name, (self.input,), layers, params if params is not None else zero_params(layers),
                       (layers[-1].output,), dialect="builtin")


def _pad(k):
    return (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2)


def _out_hw(H, W, k, s, pad):
    return (H + pad[0] + pad[1] - k) // s + 1, (W + pad[2] + pad[3] - k) // s + 1


def build(name: str, in_shape: tuple, specs, num_classes: int) -> Model:
    """A model from builder specs (``conv``, ``dw``, ``maxpool``, ``avgpool``, ``dense``, ``residual``); a linear
    i32 classifier with ``num_classes`` outputs is appended. Channel counts should be multiples of 8 (the
    library's sub-byte packing constraints; unsupported precisions are pruned from the search)."""
    if not is_int(num_classes) or num_classes < 2:
        raise JaxpulpError(f"num_classes={num_classes!r}: expected an int >= 2")  # 2.5 was truncated to 2
    layers = []
    counter = [0]

    def new_name(kind):
        counter[0] += 1
        return f"{kind}{counter[0]}"

    def emit(spec, src, shape, t):
        H, W, C = shape
        if isinstance(spec, Conv):
            pad = _pad(spec.k)
            Ho, Wo = _out_hw(H, W, spec.k, spec.stride, pad)
            ot = I8 if spec.signed else U8
            lay = Layer(new_name("conv"), "conv", (src,), "", (H, W, C), (Ho, Wo, spec.ch), t, ot, I8,
                        kernel=(spec.k, spec.k), stride=(spec.stride,) * 2, pad=pad)
        elif isinstance(spec, DW):
            pad = _pad(spec.k)
            Ho, Wo = _out_hw(H, W, spec.k, spec.stride, pad)
            ot = I8 if spec.signed else U8
            lay = Layer(new_name("dw"), "depthwise", (src,), "", (H, W, C), (Ho, Wo, C), t, ot, I8,
                        kernel=(spec.k, spec.k), stride=(spec.stride,) * 2, pad=pad)
        elif isinstance(spec, MaxPool):
            lay = Layer(new_name("maxpool"), "maxpool", (src,), "", (H, W, C), (H // spec.k, W // spec.k, C), t, t,
                        kernel=(spec.k, spec.k), stride=(spec.k, spec.k))
        elif isinstance(spec, AvgPool):
            if t.signed:
                raise JaxpulpError("avgpool after a signed tensor: the library's non-requantising average pool "
                                   "divides signed sums as unsigned (library_defects.md 12); expected an unsigned "
                                   "input (signed=False on the layer before)")
            lay = Layer(new_name("avgpool"), "avgpool", (src,), "", (H, W, C), (1, 1, C), t, t, kernel=(H, W),
                        stride=(H, W), requant=0)
        elif isinstance(spec, Dense):
            ot = I8 if spec.signed else U8
            lay = Layer(new_name("fc"), "linear", (src,), "", (H, W, C), (1, 1, spec.n), t, ot, I8)
        elif isinstance(spec, Residual):
            cur, cshape, ct = src, shape, t
            for s in spec.body:
                cur, cshape, ct = emit(s, cur, cshape, ct)
            if tuple(cshape) != tuple(shape):
                raise JaxpulpError(f"residual body maps {shape} to {cshape}; expected the same shape")
            ot = I8 if spec.signed else U8
            lay = Layer(new_name("add"), "add", (src, cur), "", shape, shape, t, ot, in2_type=ct)
        else:
            raise JaxpulpError(f"specs: {spec!r} is not a builder spec; expected conv / dw / maxpool / avgpool / "
                               "dense / residual")
        lay = lay.replace(output=lay.name)
        layers.append(lay)
        return lay.output, lay.out_shape, lay.out_type

    inp = TensorSpec("input", in_shape, U8)
    src, shape, t = "input", inp.shape, U8
    for spec in specs:
        src, shape, t = emit(spec, src, shape, t)
    H, W, C = shape
    layers.append(Layer("classifier", "linear", (src,), "classifier", (H, W, C), (1, 1, int(num_classes)),
                        t, I32, I8, relu=0, bn=0, bias=True))
    return Model(name, inp, tuple(layers), int(num_classes))


def from_network(net: Network, name: str | None = None) -> Model:
    """A trainable model with the topology of ``net`` (an imported or built-in network): weighted layers use
    batch-norm requantisation (relu = bn = 1), the last layer must be a linear layer and becomes the i32
    classifier. Its weights are not reused (the model trains from scratch)."""
    if len(net.inputs) != 1:
        raise JaxpulpError(f"net {net.name!r}: {len(net.inputs)} inputs; expected one image input")
    last = net.layers[-1]
    if last.kind != "linear":
        raise JaxpulpError(f"net {net.name!r}: last layer {last.name!r} is a {last.kind}; expected a linear "
                           "classifier")
    layers = []
    for lay in net.layers[:-1]:
        if lay.kind == "avgpool" and not lay.requant and lay.in_type.signed:
            raise JaxpulpError(f"layer {lay.name!r}: avgpool after a signed tensor; the library's non-requantising "
                               "average pool divides signed sums as unsigned (library_defects.md 12); expected an "
                               "unsigned input")
        kw = {}
        if lay.kind in kinds.WEIGHTED:
            kw = dict(relu=1, bn=1, bias=False, bn_bits=32, rounding=False)
        if lay.kind == "add":
            kw = dict(requant=1)
        layers.append(lay.replace(**kw))
    layers.append(last.replace(out_type=I32, relu=0, bn=0, bias=True, rounding=False))
    spec = TensorSpec(net.input.name, net.input.shape, U8)
    first = [i for i, lay in enumerate(layers) if net.input.name in lay.inputs]
    for i in first:
        layers[i] = layers[i].replace(in_type=U8) if layers[i].inputs[0] == net.input.name else \
            layers[i].replace(in2_type=U8)
    return Model(name or net.name, spec, tuple(layers), last.out_shape[2])


def zero_params(layers) -> dict:
    """Integer zero parameters of the right shapes (a valid ``Network`` for topology-only uses)."""
    out = {}
    for lay in layers:
        Co = lay.out_shape[2]
        if lay.kind in kinds.WEIGHTED:
            p = dict(w=np.zeros(kinds.weight_shape(lay), np.int8), kappa=np.zeros(Co, np.int32),
                     lam=np.zeros(Co, np.int32), out_mult=np.int32(0), out_shift=np.int32(0))
            if lay.bias:
                p["bias"] = np.zeros(Co, np.int32)
            out[lay.name] = p
        elif lay.kind == "add":
            out[lay.name] = {k: np.int32(0) for k in kinds.of(lay).params}
    return out


# ------------------------------------------------------------------------------------------- float params


def init_params(model: Model, seed: int = 0, alpha: float = 4.0) -> dict:
    """Float parameters: ``{"layers": {name: {w, a, b}}, "alpha": {tensor: scalar}}`` (He-normal weights)."""
    rng = np.random.default_rng(seed)
    layers, alphas = {}, {}
    for lay in model.layers:
        Co = lay.out_shape[2]
        if lay.kind in kinds.WEIGHTED:
            ws = kinds.weight_shape(lay)
            fan_in = int(np.prod(ws[1:]))
            p = dict(w=jnp.asarray(rng.normal(0, math.sqrt(2.0 / fan_in), ws), jnp.float32),
                     b=jnp.zeros(Co, jnp.float32))
            if lay.out_type.bits != 32:
                p["a"] = jnp.ones(Co, jnp.float32)
            layers[lay.name] = p
        if lay.out_type.bits != 32 and lay.kind not in kinds.POOLS:
            alphas[lay.output] = jnp.float32(alpha)
    return {"layers": layers, "alpha": alphas}


def tensor_alpha(model: Model, params: dict, tensor: str):
    """The PACT clip of ``tensor`` (pools pass their input's through; the input image: 1.0)."""
    if tensor == model.input.name:
        return jnp.float32(1.0)
    if tensor in params["alpha"]:
        return params["alpha"][tensor]
    lay = next(layer for layer in model.layers if layer.output == tensor)
    return tensor_alpha(model, params, lay.inputs[0])


def act_scale(t: QType, alpha):
    """Real value of one integer step of a tensor of type ``t`` with clip ``alpha`` (the input: 1/255)."""
    return alpha / t.hi


def w_qmax(t: QType) -> int:
    return t.hi  # symmetric: [-hi, hi] (i2: ternary)


TWN_DELTA = 0.7  # ternary threshold / mean|w| (Li, Zhang & Liu, "Ternary Weight Networks", 2016, eq. 9)


def w_quant(w, t: QType, per_channel: bool = True):
    """Integer weights (float array of integers in [-hi, hi]) and the scale per output channel (axis 0).

    8 and 4 bits: uniform symmetric grid, ``scale = max|w| / hi``, ``w_int = round(w / scale)``.
    2 bits: ternary {-1, 0, +1} (TWN): threshold ``delta = 0.7 * mean|w|``, ``w_int = sign(w) * (|w| > delta)``,
    ``scale = mean(|w|)`` over the weights above the threshold (the least-squares scale of that pattern).
    ``per_channel=False``: one threshold / scale for the whole tensor (repeated per channel). No gradient flows
    through the scale; the integer pattern is what the deployed network stores."""
    flat = jax.lax.stop_gradient(w).reshape(w.shape[0], -1)
    if not per_channel:
        flat = flat.reshape(1, -1)
    aw = jnp.abs(flat)
    if t.bits == 2:
        delta = TWN_DELTA * jnp.mean(aw, axis=1, keepdims=True)
        mask = (aw > delta).astype(w.dtype)
        s = jnp.sum(aw * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
        s = jnp.maximum(s, 1e-8)
        q = jnp.sign(flat) * mask
    else:
        s = jnp.maximum(jnp.max(aw, axis=1), 1e-8) / w_qmax(t)
        q = jnp.clip(jnp.round(flat / s[:, None]), -w_qmax(t), w_qmax(t))
    if not per_channel:
        s = s * jnp.ones(w.shape[0], w.dtype)
    return q.reshape(w.shape), s


def w_scale(w, t: QType, per_channel: bool = True):
    """Per-output-channel (axis 0) or per-tensor weight scale (see ``w_quant``)."""
    return w_quant(w, t, per_channel)[1]


def round_ste(x):
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def fq_weight(w, t: QType, per_channel: bool = True):
    """Fake-quantised weights ``w_int * scale`` (``w_quant``) with straight-through gradients."""
    q, s = w_quant(w, t, per_channel)
    s = s.reshape((-1,) + (1,) * (w.ndim - 1))
    if t.bits == 2:
        return w + jax.lax.stop_gradient(q * s - w)
    return jnp.clip(round_ste(w / s), -w_qmax(t), w_qmax(t)) * s


def fq_act(z, t: QType, alpha):
    s = act_scale(t, alpha)
    return jnp.clip(round_ste(jnp.clip(z, t.lo * s, alpha) / s), t.lo, t.hi) * s


def clip_float(z, t: QType, alpha):
    return jnp.clip(z, -alpha if t.signed else 0.0, alpha)


# ---------------------------------------------------------------------------------------------- forwards


def _linear_op(lay: Layer, x, w):
    if lay.kind == "conv":
        return jax.lax.conv_general_dilated(x, jnp.transpose(w, (1, 2, 3, 0)), lay.stride,
                                            ((lay.pad[0], lay.pad[1]), (lay.pad[2], lay.pad[3])),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if lay.kind == "depthwise":
        C = w.shape[0]
        return jax.lax.conv_general_dilated(x, jnp.transpose(w, (1, 2, 0))[:, :, None, :], lay.stride,
                                            ((lay.pad[0], lay.pad[1]), (lay.pad[2], lay.pad[3])),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=C)
    return (x.reshape(x.shape[0], -1) @ w.T).reshape(x.shape[0], 1, 1, -1)


def forward(model: Model, params: dict, x, *, act_mix=None, w_mix=None, ints=None):
    """Logits (batch, classes) of images ``x`` (batch, H, W, C) float in [0, 1].

    act_mix: tensor -> ((QType, prob), ...) mixture of fake-quantisers (None: float); w_mix: layer -> the same
    for weights. One-hot mixtures are plain fake quantisation. ints: tensor -> integer values (the integer
    network's, e.g. ``qat.integer_tensors``): each tensor's forward value is replaced by ``int * scale``
    with the fake-quantised gradient (straight-through), so the loss sees the deployed arithmetic.
    """
    env = {model.input.name: x}
    lp = params["layers"]
    for lay in model.layers:
        ins = [env[i] for i in lay.inputs]
        mix = None if act_mix is None else act_mix.get(lay.output)
        if lay.kind in kinds.WEIGHTED:
            p = lp[lay.name]
            w = p["w"]
            final = lay.out_type.bits == 32
            if w_mix is not None:
                w = sum(pr * fq_weight(w, t, per_channel=not final) for t, pr in w_mix[lay.name])
            z = _linear_op(lay, ins[0], w)
            if final:
                y = z.reshape(z.shape[0], -1) + p["b"]
                if ints is not None:
                    s_in = act_scale(model_tensor_type(model, lay.inputs[0], act_mix),
                                     tensor_alpha(model, params, lay.inputs[0]))
                    s_w = w_scale(p["w"], _only(w_mix[lay.name]), per_channel=False)[0]
                    exact = ints[lay.output].reshape(y.shape).astype(jnp.float32) * (s_in * s_w)
                    y = y + jax.lax.stop_gradient(exact - y)
                env[lay.output] = y
                continue
            z = z * p["a"] + p["b"]
        elif lay.kind == "maxpool":
            k, s = lay.kernel, lay.stride
            z = jax.lax.reduce_window(ins[0], -jnp.inf, jax.lax.max, (1, *k, 1), (1, *s, 1), "VALID")
        elif lay.kind == "avgpool":
            z = jnp.mean(ins[0], axis=(1, 2), keepdims=True)
        else:
            z = ins[0] + ins[1]
        alpha = tensor_alpha(model, params, lay.output)
        if lay.kind == "maxpool" or (lay.kind == "avgpool" and act_mix is None):
            y = z
        elif lay.kind == "avgpool":  # the integer pool floors sum / (Kh*Kw): fake-quantise the same way
            pmix = act_mix.get(lay.inputs[0]) or ((model_tensor_type(model, lay.inputs[0], act_mix), 1.0),)
            y = 0.0
            for t, pr in pmix:
                s = act_scale(t, alpha)
                y = y + pr * (z + jax.lax.stop_gradient(jnp.floor(z / s) * s - z))
        elif mix is None:
            y = clip_float(z, lay.out_type, alpha)
        else:
            y = sum(pr * fq_act(z, t, alpha) for t, pr in mix)
        if ints is not None:
            t = _only(mix) if mix is not None else model_tensor_type(model, lay.output, act_mix)
            exact = ints[lay.output].astype(jnp.float32) * act_scale(t, alpha)
            y = y + jax.lax.stop_gradient(exact - y)
        env[lay.output] = y
    return env[model.output]


def _only(mix) -> QType:
    """The type of a one-choice (fixed-precision) mixture."""
    if len(mix) != 1:
        raise JaxpulpError(f"mixture {mix!r}: the integer (straight-through) forward needs fixed precisions")
    return mix[0][0]


def model_tensor_type(model: Model, tensor: str, act_mix) -> QType:
    """The (single) type of ``tensor`` in a one-choice mixture, following pools to their input."""
    if tensor == model.input.name:
        return model.input.qtype
    if act_mix is not None and tensor in act_mix:
        return _only(act_mix[tensor])
    lay = next(layer for layer in model.layers if layer.output == tensor)
    return model_tensor_type(model, lay.inputs[0], act_mix)


def fixed_mix(layers) -> tuple[dict, dict]:
    """One-hot (act_mix, w_mix) for layers at fixed types (pools follow their input's type)."""
    act = {lay.output: ((lay.out_type, 1.0),) for lay in layers}
    w = {lay.name: ((lay.w_type, 1.0),) for lay in layers if lay.w_type is not None}
    return act, w


NETS = {
    "tiny": lambda shape, k: build("tiny", shape, [conv(8), conv(16, stride=2), avgpool()], k),
    "small": lambda shape, k: build("small", shape, [conv(16), maxpool(2), conv(32), avgpool()], k),
    "dscnn": lambda shape, k: build("dscnn", shape, [conv(16), dw(3), conv(32, k=1), maxpool(2), dw(3),
                                                     conv(32, k=1), avgpool()], k),
    # wider convolutions: the weights (not the activations) dominate the memory, so sub-byte weights pay off
    "wide": lambda shape, k: build("wide", shape, [conv(32), maxpool(2), conv(64), conv(64), avgpool()], k),
    "res": lambda shape, k: build("res", shape, [conv(16), residual(conv(16), conv(16)), maxpool(2),
                                                 dense(32)], k),
}


def named(name: str, in_shape: tuple, num_classes: int) -> Model:
    """A built-in topology by name (``tiny``, ``small``, ``dscnn``, ``wide``, ``res``) for images of ``in_shape``."""
    if not isinstance(name, str) or name not in NETS:
        raise JaxpulpError(f"net={name!r}: no such model; expected one of {sorted(NETS)}")
    return NETS[name](tuple(in_shape), num_classes)
