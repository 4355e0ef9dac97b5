"""Whole-network execution: one jit-compiled function per network, a batch of inputs at a time.

* ``run(net, x)`` — the **packed** (faithful) path: every layer is its PULP-NN kernel's packed path on the
  uint32 memory images the C kernels read and write (library semantics, quirks included); activations move
  between layers as packed HWC images, turned into byte planes for depthwise layers (DORY's CHW transfer).
* ``run(net, x, path="values")`` / ``run_values`` — the **value** path: int tensors, the intended arithmetic,
  with precision as data (``act_types`` / ``w_types`` may be traced, so a sweep can ``vmap`` over precision
  configurations without recompiling).

Both return the output tensor values (batch first); ``keep=True`` returns every activation tensor by name.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing, quant
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import _engine, add, conv, depthwise, linear, pool
from jaxpulp.kernels.config import ConvConfig
from jaxpulp.network import mapping
from jaxpulp.network.graph import Layer, Network

PATHS = ("packed", "values")


class RunResult(NamedTuple):
    """``outputs``: name -> int array (batch, ...) of each network output; ``tensors``: every activation by name
    (only with ``keep=True``, else empty)."""

    outputs: dict
    tensors: dict


# ------------------------------------------------------------------------------------------------ inputs


def _check_one(spec, x, name: str) -> np.ndarray:
    x = np.asarray(x)
    shape, qt = spec.shape, spec.qtype
    if x.dtype.kind not in "iu":
        raise JaxpulpError(f"{name}: dtype {x.dtype}, expected integers of type {qt} (network input {spec.name!r})")
    if x.shape == shape:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != shape:
        raise JaxpulpError(f"{name}: shape {x.shape}, expected (batch, {', '.join(map(str, shape))}) HWC "
                           f"(network input {spec.name!r})")
    if x.size and (x.min() < qt.lo or x.max() > qt.hi):
        raise JaxpulpError(f"{name}: values span [{x.min()}, {x.max()}], outside {qt} [{qt.lo}, {qt.hi}] (network "
                           f"input {spec.name!r})")
    return x


def _check_inputs(net: Network, x) -> dict:
    """{input name: (batch, H, W, C) int array}; ``x`` is an array (one input), a sequence or a dict by name."""
    specs = net.inputs
    if isinstance(x, dict):
        missing = [s.name for s in specs if s.name not in x]
        extra = sorted(set(x) - {s.name for s in specs})
        if missing or extra:
            raise JaxpulpError(f"x: keys {sorted(x)}, expected the network inputs {[s.name for s in specs]}")
        xs = [x[s.name] for s in specs]
    elif isinstance(x, (list, tuple)):
        if len(x) != len(specs):
            raise JaxpulpError(f"x: {len(x)} arrays, the network has {len(specs)} inputs {[s.name for s in specs]}")
        xs = list(x)
    else:
        if len(specs) != 1:
            raise JaxpulpError(f"x: one array, the network has {len(specs)} inputs {[s.name for s in specs]}; pass "
                               "a dict by name or a sequence")
        xs = [x]
    out = {s.name: _check_one(s, v, "x" if len(specs) == 1 else f"x[{s.name!r}]") for s, v in zip(specs, xs)}
    batches = {v.shape[0] for v in out.values()}
    if len(batches) != 1:
        raise JaxpulpError(f"x: batch sizes {sorted(batches)} differ between the inputs")
    return out


# ------------------------------------------------------------------------------------------- packed path


def _layer_args(lay: Layer, p: dict, cfg):
    """Host-side preparation of one layer's kernel arguments (packed weights, Params)."""
    kind = lay.kind
    if kind in ("conv", "depthwise", "linear"):
        w = np.asarray(p["w"])
        if kind == "depthwise":
            w_words = packing.pack_planes(np.transpose(w, (1, 2, 0)), lay.w_type)
        else:
            w_words = packing.pack(w, lay.w_type)
        bias = np.asarray(p["bias"], np.int32) if lay.bias else None
        Co = lay.out_shape[2]
        kappa = np.asarray(p.get("kappa", np.zeros(Co)), np.int32)
        lam = np.asarray(p.get("lam", np.zeros(Co)), np.int32)
        if kind == "linear":
            if lay.out_type.bits == 32:  # the int32-output kernels take no requantisation parameters
                return (w_words, linear.Params(bias=bias))
            cls = linear.Params
        elif kind == "depthwise":
            cls = depthwise.Params
        else:
            cls = conv.Params
        return (w_words, cls(kappa=kappa, lam=lam, out_mult=np.int32(p.get("out_mult", 0)),
                             out_shift=np.int32(p.get("out_shift", 0)), bias=bias))
    if kind == "avgpool":
        return (pool.AvgPoolParams(np.int32(p.get("lam", 1)), np.int32(p.get("out_shift", 0)),
                                   np.int32(p.get("out_add", 0))) if lay.requant else None,)
    if kind == "maxpool":
        return (None,)
    if kind == "add":
        return (add.Params(*(np.int32(p[k]) for k in add.Params._fields)),)
    raise JaxpulpError(f"layer {lay.name!r}: kind {kind!r} cannot run")


def _hwc_to_planes(words, shape, bits: int):
    """jnp: packed HWC images (batch, n) -> depthwise byte-plane images (batch, m) (semantics.md §8.1)."""
    H, W, C = shape
    bpp = C * bits // 8
    by = (words[:, :, None] >> jnp.arange(0, 32, 8, dtype=jnp.uint32)) & jnp.uint32(0xFF)
    by = by.reshape(words.shape[0], -1)[:, :H * W * bpp]
    planes = jnp.swapaxes(by.reshape(-1, H * W, bpp), 1, 2).reshape(words.shape[0], -1)
    pad = (-planes.shape[1]) % 4
    planes = jnp.pad(planes, ((0, 0), (0, pad))).reshape(words.shape[0], -1, 4)
    return jnp.sum(planes << jnp.arange(0, 32, 8, dtype=jnp.uint32), axis=-1, dtype=jnp.uint32)


def _run_layer_packed(lay: Layer, cfg, args, ins, cluster: Cluster):
    kind = lay.kind
    if kind == "conv":
        mod = mapping.kernel_module(cfg)
        return mod.run(ins[0], args[0], args[1], cfg=cfg, cluster=cluster)
    if kind == "depthwise":
        planes = _hwc_to_planes(ins[0], lay.in_shape, lay.in_type.bits)
        return depthwise.run(planes, args[0], args[1], cfg=cfg, cluster=cluster)
    if kind == "linear":
        n = _engine.words_for(cfg.N, cfg.in_type.bits)
        return linear.run(ins[0][:, :n], args[0], args[1], cfg=cfg, cluster=cluster)
    if kind == "maxpool":
        return pool.run(ins[0], None, cfg=cfg, cluster=cluster).out
    if kind == "avgpool":
        return pool.run(ins[0], args[0], cfg=cfg, cluster=cluster)
    if kind == "add":
        return add.run(ins[0], ins[1], args[0], cfg=cfg, cluster=cluster)
    raise JaxpulpError(f"layer {lay.name!r}: kind {kind!r} cannot run")


@functools.partial(jax.jit, static_argnames=("layers", "cfgs", "want", "cluster"))
def _packed_forward(x_words, args, layers, cfgs, want, cluster):
    env = dict(x_words)
    for lay, cfg, a in zip(layers, cfgs, args):
        env[lay.output] = _run_layer_packed(lay, cfg, a, [env[i] for i in lay.inputs], cluster)
    return {k: env[k] for k in want}


@functools.lru_cache(maxsize=64)
def _configs(layers, semantics, cluster):
    return tuple(mapping.kernel_config(lay, semantics, cluster) for lay in layers)


def _unpack_tensor(words, shape, qt) -> np.ndarray:
    words = np.asarray(words)
    if qt.bits == 32:
        return words.view(np.int32)[:, :int(np.prod(shape))].reshape((-1,) + tuple(shape))
    return packing.unpack(words, qt, int(np.prod(shape))).reshape((-1,) + tuple(shape))


# -------------------------------------------------------------------------------------------- value path


def _bounds(t):
    return quant.type_bounds(t[0], t[1])


def _requant(acc, p, lay: Layer, out_t):
    lo, hi = _bounds(out_t)
    return quant.requant(acc, relu=lay.relu, bn=lay.bn, kappa=p["kappa"], lam=p["lam"], out_mult=p["out_mult"],
                         out_shift=p["out_shift"], lo=lo, hi=hi, bn_bits=lay.bn_bits)


def _conv_acc(lay: Layer, x, p):
    """int32 accumulators (B, Ho, Wo, Co) of a conv layer on x (B, H, W, C): exact float32 convolutions in channel
    groups (any precision <= 8 bit), bias added."""
    H, W, C = lay.in_shape
    Ho, Wo, Co = lay.out_shape
    # u8 x i8 has the largest product (255 * 128): channel groups sized for it keep every partial sum exact in
    # float32 whatever the (traced) precisions are
    cfg8 = ConvConfig("u8", "u8", "i8", H=H, W=W, Ci=C, Co=Co, Kh=lay.kernel[0], Kw=lay.kernel[1],
                      stride=lay.stride, pad=lay.pad, Ho=Ho, Wo=Wo, semantics="ideal")
    w = jnp.asarray(p["w"], jnp.int32)
    return conv._fast_accumulate(x, w, jnp.asarray(p["bias"], jnp.int32) if lay.bias else None, cfg8)


_DW_EXACT_TAPS = ((1 << 24) - 1) // (255 * 128)  # 514 taps of u8 x i8 products keep float32 sums exact


def _depthwise_acc(lay: Layer, x, p):
    """int32 accumulators (B, Ho, Wo, C) of a depthwise layer: float32 grouped convolutions over blocks of at most
    514 kernel taps (every partial sum an exact integer), added in int32; bias added."""
    t, b, l, r = lay.pad
    Ho, Wo, Co = lay.out_shape
    Kh, Kw = lay.kernel
    xp = jnp.pad(x.astype(jnp.float32), ((0, 0), (t, b), (l, r), (0, 0)))
    w = jnp.transpose(jnp.asarray(p["w"], jnp.float32), (1, 2, 0))[:, :, None, :]  # HWIO, I = 1
    rw = min(Kw, _DW_EXACT_TAPS)
    rh = max(1, _DW_EXACT_TAPS // rw)
    acc = None
    for i in range(0, Kh, rh):
        for j in range(0, Kw, rw):
            part = jax.lax.conv_general_dilated(xp[:, i:, j:], w[i:i + rh, j:j + rw], window_strides=lay.stride,
                                                padding="VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                feature_group_count=Co, precision=jax.lax.Precision.HIGHEST)
            part = part[:, :Ho, :Wo].astype(jnp.int32)
            acc = part if acc is None else acc + part
    return acc + jnp.asarray(p["bias"], jnp.int32) if lay.bias else acc


def _conv_values(lay: Layer, x, p, out_t):
    return _requant(_conv_acc(lay, x, p), p, lay, out_t)


def _depthwise_values(lay: Layer, x, p, out_t):
    return _requant(_depthwise_acc(lay, x, p), p, lay, out_t)


def _linear_values(lay: Layer, x, p, out_t):
    xb = x.reshape(x.shape[0], -1)
    acc = _engine.exact_int_matmul(xb, jnp.asarray(p["w"], jnp.int32).T)
    if lay.bias:
        acc = acc + jnp.asarray(p["bias"], jnp.int32)
    if lay.out_type.bits == 32:
        return acc.reshape((-1, 1, 1, acc.shape[-1]))
    return _requant(acc, p, lay, out_t).reshape((-1, 1, 1, acc.shape[-1]))


def _traced_geometry(geom, **types):
    return geom._replace(**{k: jnp.asarray(v, jnp.int32) for k, v in types.items()})


def _pool_values(lay: Layer, cfg, x, p, in_t, out_t, cluster):
    bk = pool.shared_bucket([cfg], [cluster])
    g = _traced_geometry(pool.geometry(cfg, cluster), bi=in_t[0], si=in_t[1], bo=out_t[0], so=out_t[1])
    H, W, C = lay.in_shape
    X = jnp.pad(x, ((0, 0), (0, bk.H - H), (0, bk.W - W), (0, bk.C - C)))
    if lay.kind == "maxpool":
        out = jax.vmap(lambda xi: pool._max_only(g, xi, bk))(X)
    else:
        pp = pool.AvgPoolParams(*(jnp.asarray(p.get(k, d), jnp.int32) for k, d in
                                  (("lam", 1), ("out_shift", 0), ("out_add", 0))))
        out = jax.vmap(lambda xi: pool._avg_only(g, xi, pp, bk))(X)
    Ho, Wo, Co = lay.out_shape
    return out[:, :Ho, :Wo, :Co]


def _add_values(lay: Layer, cfg, x1, x2, p, t1, t2, out_t, cluster):
    bk = add.shared_bucket([cfg], [cluster])
    g = _traced_geometry(add.geometry(cfg, cluster), b1=t1[0], s1=t1[1], b2=t2[0], s2=t2[1], bo=out_t[0],
                         so=out_t[1])
    n = int(np.prod(lay.out_shape))
    a = jnp.pad(x1.reshape(x1.shape[0], -1), ((0, 0), (0, bk.N - n)))
    b = jnp.pad(x2.reshape(x2.shape[0], -1), ((0, 0), (0, bk.N - n)))
    pp = add.Params(*(jnp.asarray(p[k], jnp.int32) for k in add.Params._fields))
    out = jax.vmap(lambda u, v: add._values(g, u, v, pp, bk))(a, b)
    return out[:, :n].reshape((-1,) + lay.out_shape)


def _types_of(net: Network, act_types, w_types):
    """(tensor name -> (bits, signed), layer name -> w bits): the layers' static types, overridden by data."""
    acts = {i.name: (i.qtype.bits, int(i.qtype.signed)) for i in net.inputs}
    net_layers = net.layers
    ws = {}
    for lay in net_layers:
        acts[lay.output] = (lay.out_type.bits, int(lay.out_type.signed))
        if lay.w_type is not None:
            ws[lay.name] = lay.w_type.bits
    acts.update(act_types or {})
    ws.update(w_types or {})
    return acts, ws


def _values_forward(x, params, act_types, layers, cfgs, want, cluster):
    env = {k: v.astype(jnp.int32) for k, v in x.items()}
    for lay, cfg in zip(layers, cfgs):
        p = params.get(lay.name, {})
        ins = [env[i] for i in lay.inputs]
        out_t = act_types[lay.output]
        if lay.kind == "conv":
            y = _conv_values(lay, ins[0], p, out_t)
        elif lay.kind == "depthwise":
            y = _depthwise_values(lay, ins[0], p, out_t)
        elif lay.kind == "linear":
            y = _linear_values(lay, ins[0], p, out_t)
        elif lay.kind in ("maxpool", "avgpool"):
            y = _pool_values(lay, cfg, ins[0], p, act_types[lay.inputs[0]], out_t, cluster)
        else:
            y = _add_values(lay, cfg, ins[0], ins[1], p, act_types[lay.inputs[0]], act_types[lay.inputs[1]],
                            out_t, cluster)
        env[lay.output] = y
    return {k: env[k] for k in want}


_values_forward_jit = jax.jit(_values_forward, static_argnames=("layers", "cfgs", "want", "cluster"))


def _value_params(net: Network, params):
    src = net.params if params is None else params
    out = {}
    for lay in net.layers:
        p = src.get(lay.name, {})
        out[lay.name] = {k: jnp.asarray(v, jnp.int32) for k, v in p.items()}
    return out


def run_values(net: Network, x, *, params=None, act_types=None, w_types=None, keep: bool = False,
               cluster: Cluster = GAP8):
    """Value path (intended arithmetic) with precision as data.

    x: int (batch, H, W, C) (may be traced), or a dict by input name for several inputs. params: a pytree
    shaped like ``net.params`` (default: it).
    act_types: tensor name -> (bits, signed) int32 scalars (clip bounds of that tensor's producer);
    w_types: layer name -> weight bits (informational for the value path: weights are taken as given).
    Returns the int32 values of ``net.outputs[0]`` (batch, ...), or every tensor by name with ``keep=True``.
    Works under ``jit`` and ``vmap`` (over params / types / inputs).
    """
    acts, _ = _types_of(net, act_types, w_types)
    cfgs = _configs(net.layers, "ideal", cluster)
    want = tuple(t for t in acts) if keep else net.outputs[:1]
    xs = dict(x) if isinstance(x, dict) else {net.input.name: x}
    out = _values_forward({k: jnp.asarray(v) for k, v in xs.items()}, _value_params(net, params), acts,
                          layers=net.layers, cfgs=cfgs, want=want, cluster=cluster)
    return out if keep else out[net.outputs[0]]


# ------------------------------------------------------------------------------------------------ public


def run(net: Network, x, *, path: str = "packed", keep: bool = False, cluster: Cluster = GAP8) -> RunResult:
    """Run a batch of inputs ``x`` (int, (batch, H, W, C) or one (H, W, C) image; a dict by input name or a
    sequence for networks with several inputs) through ``net``.

    path="packed": each layer's PULP-NN kernel on packed memory images (bit-exact to the library);
    path="values": the value path (ideal semantics). Compiles once per (network, batch size, path).
    Returns ``RunResult(outputs, tensors)`` with numpy int arrays (batch first)."""
    if path not in PATHS:
        raise JaxpulpError(f"path={path!r}: expected one of {PATHS}")
    xs = _check_inputs(net, x)
    types = net.tensor_types()
    want = tuple(types) if keep else net.outputs
    if path == "values":
        acts, _ = _types_of(net, None, None)
        out = _values_forward_jit({k: jnp.asarray(v, jnp.int32) for k, v in xs.items()}, _value_params(net, None),
                                  acts, layers=net.layers, cfgs=_configs(net.layers, "ideal", cluster), want=want,
                                  cluster=cluster)
        res = {k: np.asarray(v) for k, v in out.items()}
    else:
        cfgs = _configs(net.layers, "library", cluster)
        args = tuple(_layer_args(lay, net.params.get(lay.name, {}), cfg) for lay, cfg in zip(net.layers, cfgs))
        words = {s.name: jnp.asarray(packing.pack_hwc(xs[s.name], s.qtype)) for s in net.inputs}
        out = _packed_forward(words, args, layers=net.layers, cfgs=cfgs, want=want, cluster=cluster)
        res = {k: _unpack_tensor(v, types[k][0], types[k][1]) for k, v in out.items()}
    outputs = {k: res[k] for k in net.outputs}
    return RunResult(outputs, res if keep else {})
