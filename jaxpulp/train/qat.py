"""Integerisation: float parameters + precisions -> the integer parameters PULP-NN runs, and the integer forward.

Every weighted layer (except the classifier) becomes batch-norm requantisation (relu = bn = 1, 32-bit BN):

    y = clip_out( (kappa * acc + lambda) >> d )       acc = sum(x_int * w_int)  (int32)

with, for input scale ``s_in``, per-channel weight scale ``s_w = max|w_c| / hi_w`` (``w_int = round(w / s_w)``,
symmetric; 2-bit weights are ternary with the TWN threshold and scale, ``model.w_quant``), folded batch norm
``a, b`` and output scale ``s_out = alpha / hi_out``:

    M = a * s_in * s_w / s_out,   B = b / s_out + 1/2  (round half up under the floor shift)
    d = the largest shift <= 30 with  max_c |M_c| * A + |B_c| <= 2**30 / 2**d,   A = taps * max|x| * max|w_int|
    kappa = round(M * 2**d),  lambda = round(B * 2**d)

so no reachable accumulator overflows the 32-bit BN arithmetic and kappa keeps as many bits as that allows (the
power-of-two requantisation DORY and QuantLab use: one shift per layer, per-channel integer multipliers). The
classifier (i32 output) has a per-tensor weight scale and an int32 bias ``round(b / (s_in * s_w))``; its logits
are ``acc + bias``. A residual add maps both inputs to a common 8-bit-range scale (``in*_mul / 2**20``, rounded)
and requantises the sum to the output scale (``out_mul / 2**d``).

``integer_tensors`` runs these integers through ``jaxpulp.network.execute.run_values`` (jaxpulp's value path):
the QAT evaluation forward *is* the integer network, and ``integerise`` returns that network for the packed
path (``jaxpulp.network.run``), which equals it bit for bit where the library's kernels are defect-free.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.network.execute import run_values
from jaxpulp.network.graph import Network
from jaxpulp.qtypes import QType
from jaxpulp.train import model as M

ADD_SHIFT = 20


def layers_at(model: M.Model, precisions: dict | None) -> tuple:
    """The model's layers at ``precisions``: tensor name -> activation type, ``"<layer>.w"`` -> weight type (the
    variable names of ``costtable.config_space``); unnamed ones keep the template type. Pools keep their input's
    type; the classifier's output stays i32."""
    precisions = dict(precisions or {})
    known = {lay.output for lay in model.layers if lay.kind not in kinds.POOLS} | \
        {f"{lay.name}.w" for lay in model.layers if lay.w_type is not None} | {model.input.name}
    for k in precisions:
        if k not in known:
            raise JaxpulpError(f"precisions: {k!r} is neither an activation tensor nor a '<layer>.w' of "
                               f"{model.name}; expected one of {sorted(known)}")
    t_of = {model.input.name: QType.parse(precisions.get(model.input.name, model.input.qtype))}
    out = []
    for lay in model.layers:
        kw = dict(in_type=t_of[lay.inputs[0]])
        if lay.kind == "add":
            kw["in2_type"] = t_of[lay.inputs[1]]
        if lay.kind in kinds.POOLS:
            kw["out_type"] = kw["in_type"]
        elif lay.out_type.bits != 32:
            kw["out_type"] = QType.parse(precisions.get(lay.output, lay.out_type))
        if lay.w_type is not None:
            kw["w_type"] = QType.parse(precisions.get(f"{lay.name}.w", lay.w_type))
            if kw["w_type"].bits == 32 or not kw["w_type"].signed:
                raise JaxpulpError(f"precisions[{lay.name + '.w'!r}]={kw['w_type']}: expected i8, i4 or i2")
        if "out_type" in kw and kw["out_type"].bits == 32 and lay.out_type.bits != 32:
            raise JaxpulpError(f"precisions[{lay.output!r}]=i32: expected an 8, 4 or 2-bit activation type")
        lay = lay.replace(**kw)
        out.append(lay)
        t_of[lay.output] = lay.out_type
    return tuple(out)


def _scale(model, params, layers_by_out, tensor):
    t = model.input.qtype if tensor == model.input.name else layers_by_out[tensor].out_type
    return M.act_scale(t, M.tensor_alpha(model, params, tensor))


def int_params(model: M.Model, params: dict, layers: tuple) -> dict:
    """Integer parameters (jnp int32, traceable: works under ``jit`` / ``grad``, no gradient) of ``layers``."""
    params = jax.lax.stop_gradient(params)
    by_out = {lay.output: lay for lay in layers}
    out = {}
    for lay in layers:
        if lay.kind in kinds.WEIGHTED:
            p = params["layers"][lay.name]
            final = lay.out_type.bits == 32
            s_in = _scale(model, params, by_out, lay.inputs[0])
            w, s_w = M.w_quant(p["w"], lay.w_type, per_channel=not final)
            w = w.astype(jnp.int32)
            Co = lay.out_shape[2]
            zeros = jnp.zeros(Co, jnp.int32)
            if final:
                bias = jnp.clip(jnp.round(p["b"] / (s_in * s_w)), -(2.0 ** 30), 2.0 ** 30).astype(jnp.int32)
                out[lay.name] = dict(w=w, kappa=zeros, lam=zeros, out_mult=jnp.int32(0), out_shift=jnp.int32(0),
                                     bias=bias)
                continue
            s_out = _scale(model, params, by_out, lay.output)
            Mc = p["a"] * s_in * s_w / s_out
            Bc = p["b"] / s_out + 0.5
            xmax = max(abs(lay.in_type.lo), lay.in_type.hi)
            # DORY's (and the importer's) worst case: taps * max|x| * max|w| over the layer
            A = jnp.float32(w[0].size * xmax) * jnp.max(jnp.abs(w)).astype(jnp.float32)
            bound = jnp.max(jnp.abs(Mc) * A + jnp.abs(Bc)) + 1.0
            d = jnp.clip(jnp.floor(30.0 - jnp.log2(bound)), 0, 30).astype(jnp.int32)
            two_d = jnp.exp2(d.astype(jnp.float32))
            kappa = jnp.round(Mc * two_d).astype(jnp.int32)
            lam = jnp.round(Bc * two_d).astype(jnp.int32)
            out[lay.name] = dict(w=w, kappa=kappa, lam=lam, out_mult=jnp.int32(0), out_shift=d)
        elif lay.kind == "add":
            s1 = _scale(model, params, by_out, lay.inputs[0])
            s2 = _scale(model, params, by_out, lay.inputs[1])
            so = _scale(model, params, by_out, lay.output)
            t1, t2 = lay.in_type, lay.in2_type
            R = jnp.maximum(jnp.maximum(s1 * max(-t1.lo, t1.hi), s2 * max(-t2.lo, t2.hi)), 1e-12)
            s_mid = R / (127.0 if (t1.signed or t2.signed) else 255.0)
            two = 2.0 ** ADD_SHIFT
            m1 = jnp.round(s1 / s_mid * two).astype(jnp.int32)
            m2 = jnp.round(s2 / s_mid * two).astype(jnp.int32)
            ratio = s_mid / so
            od = jnp.clip(jnp.floor(30.0 - jnp.log2(512.0 * ratio + 1.0)), 1, 24).astype(jnp.int32)
            om = jnp.round(ratio * jnp.exp2(od.astype(jnp.float32))).astype(jnp.int32)
            half = jnp.int32(1 << (ADD_SHIFT - 1))
            out[lay.name] = dict(in1_mul=m1, in1_add=half, in1_shift=jnp.int32(ADD_SHIFT), in2_mul=m2, in2_add=half,
                                 in2_shift=jnp.int32(ADD_SHIFT), out_mul=om,
                                 out_add=jnp.left_shift(jnp.int32(1), od - 1), out_shift=od)
    return out


@functools.lru_cache(maxsize=128)
def _network(model: M.Model, layers: tuple) -> Network:
    return model.network(layers)


def integer_tensors(model: M.Model, layers: tuple, iparams: dict, x_int) -> dict:
    """Every tensor of the integer network (jaxpulp's value path) on u8 images ``x_int`` (batch, H, W, C):
    tensor name -> int32 array (batch, ...). Traceable."""
    return run_values(_network(model, tuple(layers)), jnp.asarray(x_int, jnp.int32), params=iparams, keep=True)


@functools.partial(jax.jit, static_argnums=(0, 2))
def integer_logits(model: M.Model, params: dict, layers: tuple, x_int):
    """int32 logits (batch, classes) of the integer network: the QAT evaluation forward."""
    ip = int_params(model, params, layers)
    t = integer_tensors(model, layers, ip, x_int)[model.output]
    return t.reshape(t.shape[0], -1)


def integerise(model: M.Model, params: dict, precisions: dict | None = None) -> Network:
    """The deployable integer ``Network`` of ``model`` with float ``params`` at ``precisions`` (see
    ``layers_at``)."""
    layers = layers_at(model, precisions)
    ip = jax.jit(int_params, static_argnums=(0, 2))(model, params, layers)
    np_params = {}
    for lay in layers:
        if lay.name not in ip:
            continue
        p: dict[str, np.ndarray | np.integer] = {k: np.asarray(v) for k, v in ip[lay.name].items()}
        if "w" in p:
            p["w"] = p["w"].astype(np.int8)
        for k, v in list(p.items()):
            if v.ndim == 0:
                p[k] = np.int32(v)
        np_params[lay.name] = p
    net = model.network(layers, np_params)
    return net.replace(notes=(f"integerised by jaxpulp.train from {model.name} (batch-norm requantisation, "
                              "power-of-two shifts)",))
