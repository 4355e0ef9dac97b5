"""Whole-network execution: one jit-compiled function per network, a batch of inputs at a time.

* ``run(net, x)`` — the **packed** (faithful) path: every layer is its PULP-NN kernel's packed path on the
  uint32 memory images the C kernels read and write (library semantics, quirks included); activations move
  between layers as packed HWC images, turned into byte planes for depthwise layers (DORY's CHW transfer).
* ``run(net, x, path="values")`` / ``run_values`` — the **value** path: int tensors, the intended arithmetic,
  with precision as data (``act_types`` may be traced, so a sweep can ``vmap`` over precision
  configurations without recompiling).

Both return the output tensor values (batch first); ``keep=True`` returns every activation tensor by name.
"""
from __future__ import annotations

import dataclasses
import functools
import weakref
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing, quant
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import _engine, add, conv, depthwise, linear, pointwise, pool
from jaxpulp.kernels.config import ConvConfig, DepthwiseConfig, LinearConfig, PointwiseConfig
from jaxpulp.network import kinds, mapping
from jaxpulp.network.graph import Layer, Network
from jaxpulp.qtypes import ALL_ACT_TYPES, QType

PATHS = ("packed", "values")

# A compiled step's working-set target (bytes): its widest layer's int32 input + output values for ``step``
# inputs. Measured (benchmarks/network.py, 2-core AMD EPYC, 1 MiB L2 per core, 32 MiB L3, batch 128, paired
# runs): DroNet's value path 363 -> 670 inputs/s in steps of 4 (1.44 MB a widest layer per input), MobileNetV1-0.25
# 833 -> 950-1,070 in steps of 8-32 (0.39 MB); a whole large batch in one step leaves the caches at every layer.
# Other backends (GPUs want large batches; not measured, no GPU was lent): steps only bound the memory, 1 GiB.
# Without int8 dot instructions (``conv.NO_INT8_DOT``: convolutions as im2col GEMMs, which gain from more rows a
# call) 16 MiB, measured paired against 8 (``benchmarks/network_ab.py``, 2-core AMD EPYC with AVX2 only, same
# caches, values / packed, batch 16 / 128): NEMO Frontnet 1.11 / 1.12x and 1.10 / 1.10x faster (steps of 16 instead
# of 8), QuantLab DroNet 1.02 / 1.08x and 1.04 / 1.06x, DroNet 1.03 / 1.01x and 1.02 / 1.04x (8 instead of 4),
# the others ties (32 MiB: no better than 16). On CPUs with them unmeasured, so 8 MiB stays there.
STEP_BYTES = 16 << 20 if conv.NO_INT8_DOT else 8 << 20
STEP_BYTES_ACCELERATOR = 1 << 30


def auto_step(net: Network, backend: str | None = None) -> int:
    """Inputs per compiled step of ``run``: the largest power of two whose widest layer (int32 input and output
    values, bytes) fits ``STEP_BYTES`` on the CPU backend (``STEP_BYTES_ACCELERATOR`` on others; ``backend``:
    default ``jax.default_backend()``), at least 1."""
    per_input = layer_bytes(net, host_inputs=False)
    budget = STEP_BYTES if (backend or jax.default_backend()) == "cpu" else STEP_BYTES_ACCELERATOR
    n = max(1, budget // per_input)
    return 1 << (n.bit_length() - 1)


def layer_bytes(net: Network, host_inputs: bool = True) -> int:
    """The most bytes of one layer of ``net`` for one input: its inputs and output as int32 values; with
    ``host_inputs`` a network input in ``host_dtype`` (what ``run`` moves to the device and the first layer
    reads), else as int32 too."""
    types = net.tensor_types()
    inputs = {s.name for s in net.inputs} if host_inputs else set()

    def size(t: str) -> int:
        width = host_dtype(types[t][1]).itemsize if t in inputs else 4
        return int(np.prod(types[t][0])) * width
    return max(sum(size(i) for i in lay.inputs) + size(lay.output) for lay in net.layers)


def scope_name(lay: Layer) -> str:
    """The ``jax.named_scope`` of a layer's operations in the compiled forward (its name, '/' replaced by '|'),
    so XLA's op metadata and profiles name the layer (``benchmarks/network_trace.py``)."""
    return lay.name.replace("/", "|")


def _in_steps(fn, x: dict, step: int | None):
    """``fn`` ({name: (batch, ...)} -> {name: (batch, ...)}) over the batch in steps of ``step`` inputs
    (``lax.map``: one compiled step, run in sequence, so each layer's tensors stay in the caches), the last step
    padded with zero inputs (a value of every type) whose outputs are dropped; in one step when ``step`` is None
    or at least the batch. Inputs are independent, so the result is the same bits either way."""
    B = next(iter(x.values())).shape[0]
    if step is None or B <= step:
        return fn(x)
    n = -(-B // step)

    def split(v):
        v = jnp.pad(v, ((0, n * step - B),) + ((0, 0),) * (v.ndim - 1))
        return v.reshape((n, step) + v.shape[1:])

    out = jax.lax.map(fn, {k: split(v) for k, v in x.items()})
    return {k: v.reshape((n * step,) + v.shape[2:])[:B] for k, v in out.items()}


class RunResult(NamedTuple):
    """``outputs``: name -> int array (batch, ...) of each network output; ``tensors``: every activation by name
    (only with ``keep=True``, else empty)."""

    outputs: dict
    tensors: dict


# ------------------------------------------------------------------------------------------------ inputs


@functools.cache
def host_dtype(qt: QType) -> np.dtype:
    """The narrowest numpy integer dtype that holds every value of ``qt`` (uint8 for u8, int8 for i4, ...): the
    dtype ``run`` moves its inputs to the device in (a quarter of int32's bytes for 8-bit images; the jitted
    forward widens them to int32 itself)."""
    for dt in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(dt)
        if info.min <= qt.lo and qt.hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


@functools.cache
def _dtype_within(dtype: np.dtype, qt: QType) -> bool:
    """Whether every value of the integer ``dtype`` lies in ``qt`` (then no input of it needs a range check)."""
    info = np.iinfo(dtype)
    return qt.lo <= info.min and info.max <= qt.hi


def _check_one(spec, x, name: str):
    """``x`` checked against the input ``spec`` and converted to ``host_dtype`` of its type (batch axis added).
    A ``jax.Array`` stays on its device (no round trip through the host): its dtype is converted there, and its
    values are range-checked there too when its dtype can hold values outside the type. A traced ``x``
    (``run_values`` under ``jit`` / ``vmap``): its shape and dtype only, returned as it is (batch axis added)."""
    traced = isinstance(x, jax.core.Tracer)
    on_device = isinstance(x, jax.Array) and not traced
    if not on_device and not traced:
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:  # ragged nesting and the like
            raise JaxpulpError(f"{name}: not an array ({e}), expected integers of type {spec.qtype} (network "
                               f"input {spec.name!r})") from None
    shape, qt = spec.shape, spec.qtype
    dtype = np.dtype(x.dtype)
    if dtype.kind not in "iu":
        raise JaxpulpError(f"{name}: dtype {dtype}, expected integers of type {qt} (network input {spec.name!r})")
    src = x
    if x.shape == shape:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != shape or not x.shape[0]:
        raise JaxpulpError(f"{name}: shape {x.shape}, expected (batch, {', '.join(map(str, shape))}) HWC, batch >= 1 "
                           f"(network input {spec.name!r})")
    if traced:
        return x
    if x.size and not _dtype_within(dtype, qt):
        if on_device:
            with jax.ensure_compile_time_eval():  # concrete even when called under a trace (run_values in a jit)
                lo, hi = int(jnp.min(src)), int(jnp.max(src))
        else:
            lo, hi = int(x.min()), int(x.max())
        if lo < qt.lo or hi > qt.hi:
            raise JaxpulpError(f"{name}: values span [{lo}, {hi}], outside {qt} [{qt.lo}, {qt.hi}] (network "
                               f"input {spec.name!r})")
    want = host_dtype(qt)
    if dtype == want:
        return x
    return x.astype(want) if on_device else x.astype(want, copy=False)


def _check_inputs(net: Network, x) -> dict:
    """{input name: (batch, H, W, C) int array}; ``x`` is an array (one input), a sequence or a dict by name."""
    specs = net.inputs
    if len(specs) == 1 and type(x) is np.ndarray:  # the common call, decided in a few comparisons (batch 1: us)
        spec = specs[0]
        if x.ndim == 4 and x.shape[0] and x.shape[1:] == spec.shape and x.dtype == host_dtype(spec.qtype) and \
                _dtype_within(x.dtype, spec.qtype):
            return {spec.name: x}  # what _check_one returns for it: in shape, in range by its dtype, in host dtype
    if isinstance(x, dict):
        missing = [s.name for s in specs if s.name not in x]
        extra = sorted(set(x) - {s.name for s in specs})
        if missing or extra:
            raise JaxpulpError(f"x: keys {sorted(x, key=repr)}, expected the network inputs {[s.name for s in specs]}")
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
    out = {s.name: _check_one(s, v, "x" if len(specs) == 1 else f"x[{s.name!r}]")
           for s, v in zip(specs, xs, strict=True)}
    batches = {v.shape[0] for v in out.values()}
    if len(batches) != 1:
        raise JaxpulpError(f"x: batch sizes {sorted(batches)} differ between the inputs")
    return out


def _short(v, n: int = 80) -> str:
    """``repr(v)``, cut to ``n`` characters (a message names a wrong object without printing all of it)."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _check_call(net, keep, cluster) -> None:
    """The arguments ``run`` and ``run_values`` share besides ``x``: a few isinstance checks."""
    if not isinstance(net, Network):
        raise JaxpulpError(f"net={_short(net)}: expected a jaxpulp.network.Network (e.g. load_onnx(path), "
                           "jaxpulp.network.zoo.builtin(name) or jaxpulp.sweep.load_network(spec))")
    if keep is not False and keep is not True and not isinstance(keep, np.bool_):
        raise JaxpulpError(f"keep={_short(keep)}: expected True or False")
    if not isinstance(cluster, Cluster):
        raise JaxpulpError(f"cluster={_short(cluster)}: expected a jaxpulp.cluster.config.Cluster (e.g. "
                           "jaxpulp.cluster.config.GAP8)")


# The (bits, signed) pairs ``run_values`` takes in ``act_types`` (besides each tensor's own type, e.g. the int32
# output of a linear layer): the value path's accumulators are sized for operands of at most 8 bits (u8 x i8).
_VALUE_ACT_TYPES = frozenset((t.bits, int(t.signed)) for t in ALL_ACT_TYPES)
_WIDEST_W_RANGE = (-128, 127)  # the value path's widest weights (i8): its exact chunking assumes no wider


def _scalar(v, what: str, bool_ok: bool):
    """A concrete int of a scalar ``v`` (an int, numpy / jax integer scalar), or None when ``v`` is traced
    (its dtype and shape are still checked). ``what`` names it in the message."""
    if isinstance(v, jax.core.Tracer):
        dtype, shape = np.dtype(v.dtype), v.shape
    else:
        if isinstance(v, (bool, np.bool_)) and not bool_ok:
            raise JaxpulpError(f"{what}={v!r}: expected an int")
        try:
            a = np.asarray(v)
        except (ValueError, TypeError):
            raise JaxpulpError(f"{what}={_short(v)}: expected an int") from None
        dtype, shape = a.dtype, a.shape
    if dtype.kind not in ("iub" if bool_ok else "iu") or shape != ():
        raise JaxpulpError(f"{what}={_short(v)}: expected an int scalar (dtype {dtype}, shape {shape})")
    return None if isinstance(v, jax.core.Tracer) else int(a)


def _check_act_types(net: Network, act_types) -> None:
    """``run_values``'s ``act_types``: tensor name -> (bits, signed) of a tensor of ``net``; concrete pairs must
    be a type the value path computes (``_VALUE_ACT_TYPES`` or the tensor's own type), traced ones are data."""
    if act_types is None:
        return
    if not isinstance(act_types, dict):
        raise JaxpulpError(f"act_types={_short(act_types)}: expected None or a dict tensor name -> (bits, signed)")
    types = net.tensor_types()
    for name, v in act_types.items():
        if name not in types:
            raise JaxpulpError(f"act_types: key {name!r} is not a tensor of network {net.name!r}; expected some of "
                               f"{list(types)}")
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise JaxpulpError(f"act_types[{name!r}]={_short(v)}: expected a (bits, signed) pair of ints, e.g. "
                               "(8, 0) for u8, (4, 1) for i4")
        bits = _scalar(v[0], f"act_types[{name!r}] bits", bool_ok=False)
        signed = _scalar(v[1], f"act_types[{name!r}] signed", bool_ok=True)
        if bits is None or signed is None:
            continue
        own = types[name][1]
        if (bits, signed) not in _VALUE_ACT_TYPES and (bits, signed) != (own.bits, int(own.signed)):
            ok = sorted(_VALUE_ACT_TYPES | {(own.bits, int(own.signed))}, key=lambda t: (t[1], -t[0]))
            raise JaxpulpError(f"act_types[{name!r}]={tuple(v)!r}: (bits, signed) ({bits}, {signed}) is not a "
                               f"type the value path computes; expected one of {ok}")


def _check_params(net: Network, params) -> None:
    """``run_values``'s ``params``: shaped like ``net.params`` (per layer the same keys and shapes; a layer without
    parameters may be absent or an empty dict), integers; concrete values in int32, weights in i8 (the widest the
    value path's exact accumulation is sized for). Traced values: their dtypes and shapes."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise JaxpulpError(f"params={_short(params)}: expected None or a dict shaped like net.params (layer name "
                           "-> {parameter name: int array})")
    layers = [lay.name for lay in net.layers]
    extra = [k for k in params if k not in layers]
    if extra:
        raise JaxpulpError(f"params: keys {extra} are not layers of network {net.name!r}; expected the keys of "
                           f"net.params {sorted(net.params)}")
    for name in layers:
        own = net.params.get(name) or {}
        given = params.get(name, {})
        if not isinstance(given, dict) or set(given) != set(own):
            got = sorted(given, key=str) if isinstance(given, dict) else _short(given)
            raise JaxpulpError(f"params[{name!r}]: {'keys ' if isinstance(given, dict) else ''}{got}, expected a "
                               f"dict with the keys of net.params[{name!r}] {sorted(own)}")
        for k, v in given.items():
            what = f"params[{name!r}][{k!r}]"
            a = None
            if isinstance(v, jax.core.Tracer):
                dtype, shape = np.dtype(v.dtype), v.shape
            else:
                try:
                    a = np.asarray(v)
                except (ValueError, TypeError):
                    raise JaxpulpError(f"{what}={_short(v)}: expected an int array") from None
                dtype, shape = a.dtype, a.shape
            want = np.shape(own[k])
            if dtype.kind not in "iu" or shape != want:
                raise JaxpulpError(f"{what}: dtype {dtype}, shape {shape}, expected integers of shape {want} (as "
                                   f"net.params[{name!r}][{k!r}])")
            if a is not None and a.size:
                lo, hi, kind = (*_WIDEST_W_RANGE, "i8, the widest weights the value path computes exactly") \
                    if k == "w" else (-(2**31), 2**31 - 1, "int32")
                if int(a.min()) < lo or int(a.max()) > hi:
                    raise JaxpulpError(f"{what}: values span [{int(a.min())}, {int(a.max())}], expected [{lo}, {hi}] "
                                       f"({kind})")


# ------------------------------------------------------------------------------------------- packed path


def _layer_args(lay: Layer, p: dict, cfg):
    """Host-side preparation of one layer's kernel arguments (packed weights, Params): its kind's hook."""
    return kinds.of(lay).hook("packed_args")(lay, p, cfg)


def _run_layer_packed(lay: Layer, cfg, args, ins, cluster: Cluster, groups=None):
    return kinds.of(lay).hook("packed")(cfg, args, ins, cluster, groups)


class Image(NamedTuple):
    """A tensor between packed layers, as its packed memory image (``words``, (batch, n) uint32) or as its elements
    (``lanes``, (batch, ...) int32, the values the producer packed at ``qtype``), whichever is at hand; both
    stand for the same bits (``_engine.pack_lanes(lanes, qtype.bits)`` is the image). A consumer that reads the
    image at the producer's type gets the lanes themselves (unpack of pack is the identity on in-range values),
    so layers chain without packing in between; any other reading goes through the words."""

    words: jax.Array | None
    lanes: jax.Array | None
    qtype: QType | None


def read(img: Image, qtype: QType, count: int):
    """The first ``count`` elements of ``img`` as a kernel reading it at ``qtype`` sees them (int32, (batch, count)
    or, when they are all of the lanes, the lanes' own (batch, ...) shape): the lanes when they were packed at
    that very type, else unpacked from the words."""
    if img.lanes is not None and img.qtype is not None and (img.qtype.bits, img.qtype.signed) == (
            qtype.bits, qtype.signed):
        n = int(np.prod(img.lanes.shape[1:]))
        if n == count:
            return img.lanes  # the producer's own shape (the kernels reshape on their input side)
        if n > count:
            return _engine.flat(img.lanes)[:, :count]
    return _engine.unpack_lanes(words(img), qtype.bits, qtype.signed, count)


def words(img: Image):
    """The packed memory image of ``img`` ((batch, words) uint32)."""
    if img.words is not None:
        return img.words
    assert img.lanes is not None and img.qtype is not None
    return _engine.pack_lanes(img.lanes, img.qtype.bits)


# The ``packed_args`` and ``packed`` hooks of jaxpulp.network.kinds. ``packed`` takes the input ``Image``s and
# returns the output elements (lanes, (batch, ...) int32, at ``cfg.out_type``) of the kernel's ``run_lanes``.
# ``groups`` (static): the layer's conv input-channel groups proved exact from its concrete weights
# (``_weight_groups``), None where not applicable.


def _image_values(w, qtype: QType) -> np.ndarray:
    """The weights as the kernel reads them: the values of their packed image (``packing.unpack`` of ``pack``)."""
    return packing.unpack(packing.pack(w, qtype), qtype, w.size).reshape(w.shape)


def weighted_args(lay: Layer, p: dict, cfg) -> tuple:
    """conv / depthwise / linear: (packed weights -- for depthwise, ``depthwise.unpacked_weights`` of them, for the
    conv and linear kernels ``prepare_weights`` of their values --, the kernel module's Params)."""
    k = kinds.of(lay)
    w = np.asarray(p["w"])
    wt = lay.w_type
    assert wt is not None  # a weighted layer has a weight type (Layer checks it)
    w_words: object
    if k.channelwise:  # depthwise weights are byte planes, one per tap, kept as the kernel unpacks them: its
        # tap loops broadcast the weights, and XLA fused a per-call unpack into them (redone for every pixel)
        w_words = depthwise.unpacked_weights(packing.pack_planes(np.transpose(w, (1, 2, 0)), wt), cfg)
    elif type(cfg) is ConvConfig and cfg.family == "conv":  # the conv and linear kernels' weights unpacked and
        # laid out once (the values the image holds), not in every call and step (DroNet packed: 0.6 of 3.4 ms
        # at batch 1)
        w_words = conv.prepare_weights(_image_values(w, wt), cfg)
    elif type(cfg) is LinearConfig:
        w_words = linear.prepare_weights(_image_values(w, wt), cfg)
    elif type(cfg) is PointwiseConfig:  # unpacked once too (only its check of the over-read rule reads the image,
        # on concrete inputs, never in a network's traced forward)
        w_words = pointwise.prepare_weights(_image_values(w, wt), cfg)
    else:
        w_words = packing.pack(w, wt)
    bias = np.asarray(p["bias"], np.int32) if lay.bias else None
    Co = lay.out_shape[2]
    kappa = np.asarray(p.get("kappa", np.zeros(Co)), np.int32)
    lam = np.asarray(p.get("lam", np.zeros(Co)), np.int32)
    cls = k.kernel_module().Params
    if k.flat and lay.out_type.bits == 32:  # the int32-output linear kernels take no requantisation parameters
        return (w_words, cls(bias=bias))
    return (w_words, cls(kappa=kappa, lam=lam, out_mult=np.int32(p.get("out_mult", 0)),
                         out_shift=np.int32(p.get("out_shift", 0)), bias=bias))


def maxpool_args(lay: Layer, p: dict, cfg) -> tuple:
    return (None,)


def avgpool_args(lay: Layer, p: dict, cfg) -> tuple:
    return (pool.AvgPoolParams(np.int32(p.get("lam", 1)), np.int32(p.get("out_shift", 0)),
                               np.int32(p.get("out_add", 0))) if lay.requant else None,)


def add_args(lay: Layer, p: dict, cfg) -> tuple:
    return (add.Params(*(np.int32(p[k]) for k in add.Params._fields)),)


def packed_conv(cfg, args, ins, cluster: Cluster, groups=None):
    """The conv or pointwise kernel, whichever ``mapping`` chose (``groups``: only the KxK conv kernel has them)."""
    extra = {} if groups is None else {"groups": groups}
    x = read(ins[0], cfg.in_type, cfg.H * cfg.W * cfg.Ci)
    return mapping.kernel_module(cfg).run_lanes(x, args[0], args[1], cfg=cfg, cluster=cluster, **extra)


def packed_depthwise(cfg, args, ins, cluster: Cluster, groups=None):
    """DORY's CHW transfer folded into the kernel's unpack (the same bits as the planes)."""
    x = read(ins[0], cfg.in_type, cfg.H * cfg.W * cfg.Co)
    return depthwise.run_lanes_hwc(x, args[0], args[1], cfg=cfg, cluster=cluster, unpacked=True)


def packed_linear(cfg, args, ins, cluster: Cluster, groups=None):
    return linear.run_lanes(read(ins[0], cfg.in_type, cfg.N), args[0], args[1], cfg=cfg, cluster=cluster)


def packed_maxpool(cfg, args, ins, cluster: Cluster, groups=None):
    return pool.run_lanes(read(ins[0], cfg.in_type, cfg.H * cfg.W * cfg.C), None, cfg=cfg, cluster=cluster)


def packed_avgpool(cfg, args, ins, cluster: Cluster, groups=None):
    return pool.run_lanes(read(ins[0], cfg.in_type, cfg.H * cfg.W * cfg.C), args[0], cfg=cfg, cluster=cluster)


def packed_add(cfg, args, ins, cluster: Cluster, groups=None):
    n = cfg.H * cfg.W * cfg.C
    return add.run_lanes(read(ins[0], cfg.in1_type, n), read(ins[1], cfg.in2_type, n), args[0], cfg=cfg,
                         cluster=cluster)


def _shared_tensors(layers) -> frozenset:
    """The tensors more than one of ``layers`` reads. Both paths compute them into their own buffer
    (``_engine.materialise``): else XLA fuses a producer's requantisation (and a pooling after it) into each
    reader's input loop and computes it once per reader (DroNet: Conv_0's requantisation and max pool twice, in
    both Conv_8's and Conv_15's input, 3.6 of 22 ms at batch 16; paired runs on the shared 2-core EPYC, two
    rounds: value path 0.94 -> 1.12x / 1.01 -> 1.03x of the float32 forward at batch 16, 0.79 -> 0.91x / 0.72 ->
    0.80x at batch 1, packed path +1-25%; materialising every tensor instead lost 15%)."""
    counts: dict = {}
    for lay in layers:
        for i in set(lay.inputs):
            counts[i] = counts.get(i, 0) + 1
    return frozenset(k for k, n in counts.items() if n > 1)


def _packed_images(images, args, layers, cfgs, want, cluster, groups=None):
    """The layers on packed images: {input name: Image} -> {wanted name: Image}. Each layer's output is kept
    as lanes at its ``cfg.out_type`` (``Image``), packed only where a reader needs the words."""
    env = dict(images)
    groups = (None,) * len(layers) if groups is None else groups
    shared = _shared_tensors(layers)
    for lay, cfg, a, g in zip(layers, cfgs, args, groups, strict=True):
        with jax.named_scope(scope_name(lay)):
            lanes = _run_layer_packed(lay, cfg, a, [env[i] for i in lay.inputs], cluster, g)
            lanes = _engine.materialise(lanes) if lay.output in shared else lanes
        env[lay.output] = Image(None, lanes, cfg.out_type)
    return {k: env[k] for k in want}


def _packed_lanes(x_lanes, args, layers, cfgs, want, cluster, in_types, groups=None):
    """The layers from and to lanes, as the whole network chains them: {input name: (batch, ...) int32} ->
    {wanted name: lanes}. in_types (static): ((input name, QType the lanes were written at), ...)."""
    images = {n: Image(None, x_lanes[n], q) for n, q in in_types}
    out = _packed_images(images, args, layers, cfgs, want, cluster, groups)
    return {k: v.lanes if v.lanes is not None else v.words for k, v in out.items()}


_packed_lanes_jit = jax.jit(_packed_lanes, static_argnames=("layers", "cfgs", "want", "cluster", "in_types", "groups"))


# XLA options of the stepped forwards. Its while-loop invariant code motion hoists every weight-only and
# per-channel computation of the step loop's body out of the loop, each broadcast to the step's shape: many more
# fusions to compile and their materialised results read back in every step (DroNet packed, batch 128 in steps
# of 4, 2-core EPYC, loaded: 169 -> 54 fusions, XLA compile 3.1-3.3 -> 2.0 CPU s, a call 394-606 -> 238-322 ms
# without it). Only which operations run where changes, not what they compute.
_STEP_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "while-loop-invariant-code-motion"}


@functools.partial(jax.jit, static_argnames=("layers", "cfgs", "want", "cluster", "io", "groups", "step"),
                   compiler_options=_STEP_COMPILER_OPTIONS)
def _packed_forward(x, args, layers, cfgs, want, cluster, io, groups=None, step=None):
    """Packed path from and to int values: the inputs are packed and the wanted tensors unpacked on the device
    (``_engine.pack_lanes`` / ``unpack_lanes``: the bits of ``packing.pack_hwc`` / ``unpack``), where they are
    needed at all: a tensor read at the type it was written with is its lanes, so an input and an output
    only are packed / unpacked where a reader takes another type. io = ((input name, QType), ...), ((tensor
    name, elements, QType), ...). ``step`` (static): inputs per step (``_in_steps``), None: one step."""
    ins, outs = io

    def one(xs):
        images = {n: Image(None, xs[n].astype(jnp.int32), qt) for n, qt in ins}
        env = _packed_images(images, args, layers, cfgs, want, cluster, groups)
        return {n: read(env[n], qt, count) for n, count, qt in outs}

    return _in_steps(one, x, step)


def _packed_io(net: Network, want: tuple) -> tuple:
    """``_packed_forward``'s static io: ((input name, QType), ...), ((wanted tensor, elements, QType), ...)."""
    types = net.tensor_types()
    return (tuple((s.name, s.qtype) for s in net.inputs),
            tuple((k, int(np.prod(types[k][0])), types[k][1]) for k in want))


@functools.lru_cache(maxsize=64)
def _configs(layers, semantics, cluster):
    return tuple(mapping.kernel_config(lay, semantics, cluster) for lay in layers)




# -------------------------------------------------------------------------------------------- value path


def _bounds(t):
    return quant.type_bounds(t[0], t[1])


def _requant(acc, p, lay: Layer, out_t):
    lo, hi = _bounds(out_t)
    return quant.requant(acc, relu=lay.relu, bn=lay.bn, kappa=p["kappa"], lam=p["lam"], out_mult=p["out_mult"],
                         out_shift=p["out_shift"], lo=lo, hi=hi, bn_bits=lay.bn_bits,
                         bn_split=getattr(lay, "bn_split", None))


@dataclasses.dataclass(frozen=True)
class _SplitBNLayer(Layer):
    """A ``bn_bits=64`` layer whose 64-bit BN value ``quant.bn64_split`` proved, from the layer's own parameters
    and input type (``_bn_split``), to be computed exactly by the int32 form of this split (piece bits, pieces)."""

    bn_split: tuple[int, int] = (16, 1)


# The value path's types are data (a sweep vmaps over them), so the accumulators are sized for the widest
# operands any <= 8-bit precision gives: u8 x i8 (largest product 255 * 128). Every float32 partial sum of the
# kernels' exact GEMMs / convolutions stays below 2**24 for them whatever the traced precisions are.
_WIDEST_IN, _WIDEST_OUT, _WIDEST_W = QType.parse("u8"), QType.parse("u8"), QType.parse("i8")


@functools.lru_cache(maxsize=256)
def widest_acc_config(lay: Layer, Co: int | None = None):
    """The kernel configuration of a weighted layer at the widest types (static, for the exact chunking).
    ``Co``: another output channel count (the metric sweep's weight variants stacked along the channels)."""
    H, W, C = lay.in_shape
    Ho, Wo, co = lay.out_shape
    Co = co if Co is None else Co
    k = kinds.of(lay)
    if k.flat:
        return LinearConfig(_WIDEST_IN, _WIDEST_OUT, _WIDEST_W, N=H * W * C, M=Co, semantics="ideal")
    cls = DepthwiseConfig if k.channelwise else ConvConfig
    return cls(_WIDEST_IN, _WIDEST_OUT, _WIDEST_W, semantics="ideal", H=H, W=W, Ci=C, Co=Co, Kh=lay.kernel[0],
               Kw=lay.kernel[1], stride=lay.stride, pad=lay.pad, Ho=Ho, Wo=Wo)


def _accumulate(lay: Layer, x, p, groups=None, in_t=None):
    """int32 accumulators of a conv / depthwise (batch, Ho, Wo, Co) or linear (batch, M) layer on values x
    (batch, H, W, C): the kernel family's public value-path accumulator, bias added. ``groups``: a conv's
    input-channel groups proved exact from its concrete weights (``_weight_groups``), or None (worst case).
    ``in_t``: x's (bits, signed) type (possibly traced); a conv then may take its int8 form."""
    cfg = widest_acc_config(lay)
    bias = p["bias"] if lay.bias else None
    k = kinds.of(lay)
    if type(cfg) is ConvConfig and in_t is not None:  # the conv kernel's int8 forms need x's type
        return conv.accumulate(x, p["w"], bias, cfg, groups, x_type=in_t)
    if k.flat:
        return linear.accumulate(x.reshape(x.shape[0], -1), p["w"], bias, cfg, x_type=in_t)
    args = (x, p["w"], bias, cfg)
    return k.kernel_module().accumulate(*args) if groups is None else k.kernel_module().accumulate(*args, groups)


def _weight_groups(net: Network, cfgs) -> tuple:
    """Per layer: the input-channel groups of a KxK (not 1x1) conv proved exact from the network's own concrete
    weights at the largest input magnitude of its ``cfgs`` entry's input type (the value path passes the widest,
    u8: 255, valid for any <= 8-bit activation type it may trace), when that needs fewer float32 convolutions
    than the worst case; else None. Static (hashable), for the jit."""
    out = []
    for lay, cfg in zip(net.layers, cfgs, strict=True):
        w = net.params.get(lay.name, {}).get("w")
        g = None
        if (type(cfg) is ConvConfig and cfg.family == "conv" and (cfg.Kh, cfg.Kw) != (1, 1)  # not depthwise, 1x1
                and kinds.of(lay).weighted and w is not None):
            g = _engine.weight_bound_groups(np.asarray(w), max(-cfg.in_type.lo, cfg.in_type.hi))
            if g is not None and len(g) >= len(conv.worst_case_groups(cfg)):
                g = None
        out.append(g)
    return tuple(out)


def _weighted_values(lay: Layer, x, p, out_t, groups=None, in_t=None):
    """conv / depthwise / linear on values: accumulators, then the requantisation with the (possibly traced)
    output type (none for int32-output linear layers)."""
    acc = _accumulate(lay, x, p, groups, in_t)
    if kinds.of(lay).flat:
        acc = acc if lay.out_type.bits == 32 else _requant(acc, p, lay, out_t)
        return acc.reshape((-1, 1, 1, acc.shape[-1]))
    return _requant(acc, p, lay, out_t)


def _types_of(net: Network, act_types):
    """tensor name -> (bits, signed): the layers' static types, overridden by data (``act_types``)."""
    acts = {i.name: (i.qtype.bits, int(i.qtype.signed)) for i in net.inputs}
    for lay in net.layers:
        acts[lay.output] = (lay.out_type.bits, int(lay.out_type.signed))
    acts.update(act_types or {})
    return acts


def _values_forward(x, params, act_types, layers, cfgs, want, cluster, groups=None):
    """``params``: one dict per layer (the order of ``layers``). ``groups`` (static): per layer, the exact
    input-channel groups proved from the concrete weights ``params`` holds (``_weight_groups``), or None."""
    env = {k: v.astype(jnp.int32) for k, v in x.items()}
    groups = (None,) * len(layers) if groups is None else groups
    shared = _shared_tensors(layers)
    for lay, cfg, p, g in zip(layers, cfgs, params, groups, strict=True):
        ins = [env[i] for i in lay.inputs]
        in_types = [act_types[i] for i in lay.inputs]
        with jax.named_scope(scope_name(lay)):
            out = kinds.of(lay).hook("values")(lay, cfg, p, ins, in_types, act_types[lay.output], cluster, g)
            env[lay.output] = _engine.materialise(out) if lay.output in shared else out
    return {k: env[k] for k in want}


# The ``values`` hooks of jaxpulp.network.kinds: (lay, cfg, p, ins, in_types, out_type, cluster, groups) -> int32
# values; in_types / out_type are (bits, signed) pairs, possibly traced; groups (static) as for ``packed``.


def weighted_values(lay: Layer, cfg, p, ins, in_types, out_type, cluster: Cluster, groups=None):
    return _weighted_values(lay, ins[0], p, out_type, groups, in_types[0])


def pool_values(lay: Layer, cfg, p, ins, in_types, out_type, cluster: Cluster, groups=None):
    """maxpool and avgpool (an average pool's parameters default to no requantisation)."""
    pp = (pool.AvgPoolParams(*(p.get(k, d) for k, d in (("lam", 1), ("out_shift", 0), ("out_add", 0))))
          if kinds.of(lay).params else None)
    return pool.values(ins[0], pp, cfg=cfg, in_type=in_types[0], out_type=out_type, cluster=cluster)


def add_values(lay: Layer, cfg, p, ins, in_types, out_type, cluster: Cluster, groups=None):
    return add.values(ins[0], ins[1], add.Params(*(p[k] for k in add.Params._fields)), cfg=cfg,
                      in1_type=in_types[0], in2_type=in_types[1], out_type=out_type, cluster=cluster)


_values_forward_jit = jax.jit(_values_forward, static_argnames=("layers", "cfgs", "want", "cluster", "groups"))


def _to_device(v, dtype=None):
    """``v`` as a device array: host (numpy / Python) values by one ``jax.device_put`` of their numpy form (no
    eagerly run conversion op, each of which would be compiled on first use: ~40 ms apiece on a fresh process);
    jax arrays and tracers through ``jnp.asarray``."""
    if isinstance(v, (jax.Array, jax.core.Tracer)):
        return jnp.asarray(v, dtype)
    return jax.device_put(np.asarray(v, dtype))


@functools.partial(jax.jit, static_argnames=("layers", "cfgs", "want", "cluster", "groups", "step", "types"),
                   compiler_options=_STEP_COMPILER_OPTIONS)
def _values_stepped(x, params, act_types, layers, cfgs, want, cluster, groups=None, step=None, types=None):
    """``_values_forward`` in steps of ``step`` inputs (``_in_steps``; static, None: one step), each wanted tensor
    flat, (batch, elements), as the packed path returns it (``run`` reshapes both on the host; a (batch, H, W, C)
    output cost XLA a layout copy; a network whose layers have no library quirk, like Deeploy's miniMobileNetv2,
    now compiles to the packed path's very program).
    ``types`` (static): ((tensor name, bits, signed), ...), every tensor's type as constants, in place of the
    traced ``act_types``."""
    if types is not None:
        act_types = {k: (b, s) for k, b, s in types}

    def one(xs):
        out = _values_forward(xs, params, act_types, layers, cfgs, want, cluster, groups)
        return {k: v.reshape(v.shape[0], -1) for k, v in out.items()}

    return _in_steps(one, x, step)


def _value_params(net: Network, params):
    """One dict of int32 arrays per layer (the order of ``net.layers``), from ``params`` (default net.params)."""
    src = net.params if params is None else params
    return tuple({k: _to_device(v, np.int32) for k, v in src.get(lay.name, {}).items()} for lay in net.layers)


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepared(net: Network, key, build):
    """Per-network cache of device-resident prepared parameters (a ``Network`` is frozen: its params are read
    once, on the first call)."""
    per = _PREPARED.setdefault(net, {})
    if key not in per:
        with jax.ensure_compile_time_eval():  # concrete device arrays even when first called under a trace
            per[key] = build()
    return per[key]


def _acc_bounds(lay: Layer, p: dict, in_type: QType):
    """int64 (lo, hi) per output channel of a weighted layer's exact accumulator (bias included) over every input
    of ``in_type`` (zero padding is in it too): interval arithmetic on the concrete weights."""
    w = np.asarray(p["w"], np.int64)
    w = w.reshape(w.shape[0], -1)
    bias = np.asarray(p["bias"], np.int64) if lay.bias else np.zeros(len(w), np.int64)
    return (np.minimum(w * in_type.lo, w * in_type.hi).sum(axis=1) + bias,
            np.maximum(w * in_type.lo, w * in_type.hi).sum(axis=1) + bias)


def _bn64_layer(lay: Layer, p: dict, need=("w", "kappa", "lam")) -> bool:
    """Whether ``lay`` requantises in the 64-bit BN tree (``bn_bits=64``, BN mode) and ``p`` holds ``need`` (what
    a proof about that tree reads)."""
    return lay.bn_bits == 64 and quant.mode(lay.relu, lay.bn) == quant.MODE_BN and set(need) <= set(p)


def _bn_split(lay: Layer, p: dict, in_type: QType) -> tuple[int, int] | None:
    """``quant.bn64_split`` of a ``bn_bits=64`` BN-mode layer's own parameters over its accumulators' range, or
    None (not such a layer, nothing to prove from, or no split keeps every intermediate in int32)."""
    if not _bn64_layer(lay, p):
        return None
    lo, hi = _acc_bounds(lay, p, in_type)
    return quant.bn64_split(p["kappa"], p["lam"], int(p.get("out_shift", 0)), lo, hi)


def _bn_fits_int32(lay: Layer, p: dict, in_type: QType) -> bool:
    """Static proof, from the layer's own concrete parameters, that its 64-bit BN tree (``bn_bits=64``) gives
    the 32-bit tree's bits on the value path for every input of ``in_type``: with x in [lo, hi] (zero padding is
    in it too), each channel's accumulator lies in [sum min(w*lo, w*hi), sum max(w*lo, w*hi)] + bias (interval
    arithmetic, int64 on the host); if every accumulator and every ``kappa * acc + lam`` at both ends lies in
    int32 and ``out_shift & 63 < 32``, the 32-bit products and sums never wrap and both trees shift the same
    exact value by the same amount."""
    if not _bn64_layer(lay, p):
        return False
    if not 0 <= int(p.get("out_shift", 0)) & 63 < 32:
        return False
    lo_acc, hi_acc = _acc_bounds(lay, p, in_type)
    kappa = np.asarray(p["kappa"], np.int64)
    lam = np.asarray(p["lam"], np.int64)
    ends = np.stack([lo_acc, hi_acc, kappa * lo_acc + lam, kappa * hi_acc + lam])
    return bool(ends.min() >= -(2**31) and ends.max() < 2**31)


def _prepared_value_layers(net: Network) -> tuple:
    """The layers ``run(path="values")`` compiles: a layer whose 64-bit BN tree provably gives the 32-bit tree's
    bits for the network's own parameters and input types (``_bn_fits_int32``) takes the cheaper 32-bit tree
    (the 64-bit one is emulated in 16-bit pieces: DroNet's value path 20-25% faster with it, loaded machine);
    elsewhere, where ``quant.bn64_split`` proves an int32 form in pieces over the accumulators' range
    (``_bn_split``; one low piece for every bundled network), that form (``_SplitBNLayer``; paired, ratio to the
    float forward before -> after: NEMO
    Frontnet 0.94 -> 1.13 / 1.61 -> 1.97 / 3.08 -> 3.68 at batch 1 / 16 / 128, EEGNet 0.83 -> 0.91 / 1.56 -> 1.66
    / 3.77 -> 4.16)."""
    def one(lay, p, in_type):
        if _bn_fits_int32(lay, p, in_type):
            return dataclasses.replace(lay, bn_bits=32)
        r = _bn_split(lay, p, in_type)
        if r is None:
            return lay
        return _SplitBNLayer(**{f: getattr(lay, f) for f in Layer.__dataclass_fields__}, bn_split=r)

    def build():
        types = net.tensor_types()
        return tuple(one(lay, net.params.get(lay.name, {}), types[lay.inputs[0]][1]) for lay in net.layers)
    return _prepared(net, "value-layers", build)


def _prepared_packed_configs(net: Network, cluster: Cluster) -> tuple:
    """The kernel configurations ``run(path="packed")`` compiles: ``_configs`` at library semantics, with the
    32-bit BN tree for a layer on the conv kernel (im2col + matmul) without a bias pointer whose 64-bit tree
    provably gives the same bits (``_bn_fits_int32``): that kernel's accumulators are the plain correlation of
    the input image's values with the channel's own weights (none of library_defects.md's accumulation quirks --
    pointwise raw bytes, depthwise extra products, linear unpack / kappa[0], bias pointers -- reaches it). Every
    other ``bn_bits=64`` BN layer takes the int32 pieces of ``quant.bn64_split`` (``bn_split``) where they are
    proved over the whole int32 range of the accumulator (so whatever a kernel's quirks make of it), its own
    kappa / lambda pairs (the linear kernel's kappa[0] rows read lambda[0] too) and shift."""
    def build():
        types = net.tensor_types()
        out = []
        for lay, cfg in zip(net.layers, _configs(net.layers, "library", cluster), strict=True):
            p = net.params.get(lay.name, {})
            if (type(cfg) is ConvConfig and cfg.family == "conv" and not cfg.bias and cfg.bn_bits == 64
                    and _bn_fits_int32(lay, p, types[lay.inputs[0]][1])):
                cfg = cfg.replace(bn_bits=32)
            elif getattr(cfg, "bn_bits", 32) == 64 and _bn64_layer(lay, p, ("kappa", "lam")):
                # over any int32 accumulator: no weights needed, and no kernel quirk can leave that range
                cfg = cfg.replace(bn_split=quant.bn64_split(p["kappa"], p["lam"], int(p.get("out_shift", 0))))
            out.append(cfg)
        return tuple(out)
    return _prepared(net, ("packed-configs", cluster), build)


def _prepared_values(net: Network):
    """The network's own parameters for the value path, converted and moved to the device once per network; a
    conv's or linear layer's weights laid out for its accumulation form (``conv.prepare_weights``: HWIO int8 or
    float32; ``linear.prepare_weights``), else the transposition and conversion ran in every call (and every
    step: 0.25 of DroNet's 2.2 ms at batch 1)."""
    def build():
        out = []
        for lay, p in zip(net.layers, _value_params(net, None), strict=True):
            cfg = widest_acc_config(lay) if kinds.of(lay).weighted else None
            prep = {ConvConfig: conv.prepare_weights, LinearConfig: linear.prepare_weights}.get(type(cfg))
            if prep is not None and "w" in p:
                p = dict(p, w=jax.tree_util.tree_map(_to_device, prep(np.asarray(net.params[lay.name]["w"]), cfg)))
            out.append(p)
        return tuple(out)
    return _prepared(net, "values", build)


def _prepared_groups(net: Network) -> tuple:
    """The value path's weight-proved exact conv groups (``_weight_groups``), computed once per network."""
    return _prepared(net, "groups", lambda: _weight_groups(
        net, tuple(widest_acc_config(lay) if kinds.of(lay).weighted else None for lay in net.layers)))


def _prepared_packed_groups(net: Network, cluster: Cluster) -> tuple:
    """The packed path's weight-proved exact conv groups, at each layer's own input type."""
    return _prepared(net, ("packed-groups", cluster),
                     lambda: _weight_groups(net, _configs(net.layers, "library", cluster)))


def _prepared_packed(net: Network, cluster: Cluster):
    """The packed path's kernel arguments (packed weights, Params), built on the host once per network and
    cluster and kept on the device."""
    def build():
        cfgs = _configs(net.layers, "library", cluster)
        args = tuple(_layer_args(lay, net.params.get(lay.name, {}), cfg)
                     for lay, cfg in zip(net.layers, cfgs, strict=True))
        return jax.tree_util.tree_map(_to_device, args)
    return _prepared(net, ("packed", cluster), build)


def run_values(net: Network, x, *, params=None, act_types=None, keep: bool = False, cluster: Cluster = GAP8):
    """Value path (intended arithmetic) with precision as data.

    x: int (batch, H, W, C) (may be traced), or a dict by input name for several inputs. params: a pytree
    shaped like ``net.params`` (default: it; weights are taken as given, so a lower weight precision is
    expressed by the weight values themselves).
    act_types: tensor name -> (bits, signed) int32 scalars (clip bounds of that tensor's producer).
    Returns the int32 values of ``net.outputs[0]`` (batch, ...), or every tensor by name with ``keep=True``.
    Works under ``jit`` and ``vmap`` (over params / types / inputs). The arguments are checked as ``run``'s (x:
    integers of the input's shape, an (H, W, C) image taking a batch axis, concrete values in the input's type;
    act_types: tensors of ``net``, concrete pairs a type of at most 8 bits or the tensor's own; params: the
    keys and shapes of ``net.params``); traced values only by their shapes and dtypes.
    """
    _check_call(net, keep, cluster)
    _check_act_types(net, act_types)
    _check_params(net, params)
    xs = _check_inputs(net, x)
    acts = _types_of(net, act_types)
    cfgs = _configs(net.layers, "ideal", cluster)
    want = tuple(t for t in acts) if keep else net.outputs[:1]
    prm = _prepared_values(net) if params is None else _value_params(net, params)
    groups = _prepared_groups(net) if params is None else None  # traced params: worst-case chunking
    own = params is None and act_types is None  # the network's own parameters and types: its proofs hold
    out = _values_forward({k: jnp.asarray(v) for k, v in xs.items()}, prm, acts,
                          layers=_prepared_value_layers(net) if own else net.layers, cfgs=cfgs, want=want,
                          cluster=cluster, groups=groups)
    return out if keep else out[net.outputs[0]]


# ------------------------------------------------------------------------------------------------ public


def run(net: Network, x, *, path: str = "packed", keep: bool = False, cluster: Cluster = GAP8,
        step: int | None = None) -> RunResult:
    """Run a batch of inputs ``x`` (int, (batch, H, W, C) or one (H, W, C) image; a dict by input name or a
    sequence for networks with several inputs; numpy arrays, or ``jax.Array``s, which stay on their device)
    through ``net``.

    path="packed": each layer's PULP-NN kernel on packed memory images (bit-exact to the library);
    path="values": the value path (ideal semantics). ``step``: inputs per compiled step (a large batch runs as
    a sequence of such steps, which keeps each layer's tensors in the caches); None: ``auto_step(net)``.
    Compiles once per (network, batch size, path, step). Returns ``RunResult(outputs, tensors)`` with numpy int
    arrays (batch first); the results do not depend on ``step``."""
    if path not in PATHS:
        raise JaxpulpError(f"path={path!r}: expected one of {PATHS}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1):
        raise JaxpulpError(f"step={step!r}: expected None or an int >= 1 (inputs per compiled step)")
    _check_call(net, keep, cluster)
    xs = _check_inputs(net, x)
    fn, prepared, shapes = call_runner(net, path, keep, cluster, None if step is None else int(step),
                                       next(iter(xs.values())).shape[0])
    out = fn(xs, *prepared)  # host inputs in their narrow dtype: one transfer, widened on the device
    res = {k: np.asarray(v).reshape(shapes[k]) for k, v in out.items()}
    outputs = {k: res[k] for k in net.outputs}
    return RunResult(outputs, res if keep else {})


# Prepared parameters up to this size (bytes) are compiled into ``run``'s forward as constants rather than passed as
# arguments: no per-call dispatch of ~100 argument buffers, and XLA folds what depends on the weights alone.
# Measured (DroNet, batch 1, 2-core EPYC, same process): packed 2.27 -> 1.89 ms, values 2.56 -> 2.08 ms a call,
# compile 0.5-0.65 s. Larger networks keep arguments (large constants slow lowering and compiling down).
CONST_BYTES = 8 << 20


# XLA:CPU splits every elementwise fusion whose cost model says "over 100 us of work" (about 4,000 int32 elements
# and up: it counts ten cycles a byte) over its threads, and a split costs a hand-off between threads, tens of us on
# a 2-core VM: where a call's layers are all small the hand-offs outweigh the halved loops. ``serial_call`` then
# compiles ``run``'s call without that split (XLA's pass "cpu-parallel-task-assigner"; library GEMMs and
# convolutions keep their own threads): where no layer holds more than ``SERIAL_MAX_BYTES`` (``layer_bytes``: its
# inputs and output as int32, a network input in the dtype ``run`` moves it in, times the inputs in the call).
# Measured on whole networks, paired (``benchmarks/network_ab.py``, 2-core AMD EPYC with AVX2 only, values /
# packed, a call without the split against with it; its largest layer in brackets): faster: NEMO DS-CNN 1.77 /
# 1.70x at batch 1 (64 kB), 1.53 / 1.44x at 2, 1.46 / 1.37x at 4, 1.12 / 1.29x at 8 (512 kB); MLPerf-Tiny KWS 1.38
# / 1.40x at 1 (51 kB), 1.41 / 1.28x at 4, 1.26 / 1.19x at 8 (410 kB); MobileNetV1-0.25 1.08-1.22x at 1 (393 kB);
# NEMO EEGNet 1.24-1.30x at 1 (59 kB, of which its uint8 input 51 kB), 1.70 / 1.66x at 2, 1.20-1.35x at 4,
# 1.13-1.23x at 8 (475 kB); MLPerf-Tiny ResNet 1.08-1.12x at 1 (197 kB), a tie at 2; Deeploy miniMobileNetv2 1.29 /
# 1.34x at 4, 1.41 / 1.46x at 8, 1.20 / 1.22x at 16, 1.16-1.19x at 32 (393 kB); miniMobileNet 1.52 / 1.44x at 64
# (393 kB), ties at 4-32. Slower: MobileNetV1-0.25 at 2 1.07 / 1.07x (786 kB), NEMO residual net at 1 1.07 / 1.08x
# (800 kB), DroNet at 1 1.03 / 1.04x (1.6 MB), QuantLab DroNet 1.09 / 1.07x, MLPerf-Tiny ResNet at 4 1.04 / 1.03x
# (786 kB), NEMO Frontnet at 4 1.19 / 1.16x (2.5 MB), EEGNet at 16 1.09 / 1.08x (950 kB); Frontnet at 1 (614 kB)
# ties. The limit sits in the gap between 512 kB (won) and 614 kB (tied) / 786 kB (lost). Only which thread runs a
# loop changes, never what it computes. Other backends: never. On the 2-core Intel Xeon with AMX of 2026-12-05 the
# same option was neutral (EEGNet, Frontnet, DroNet, MLPerf-Tiny ResNet at batch 1, within 1%); CPUs with more
# cores: unmeasured (the hand-off and the split's gain both differ there).
SERIAL_MAX_BYTES = 512 << 10
_SERIAL_COMPILER_OPTIONS = {"xla_disable_hlo_passes": _STEP_COMPILER_OPTIONS["xla_disable_hlo_passes"]
                            + ",cpu-parallel-task-assigner"}


def serial_call(net: Network, inputs: int, backend: str | None = None) -> bool:
    """Whether ``run`` compiles a call of ``inputs`` inputs (a step of a larger batch: ``min(batch, step)``)
    without XLA:CPU's split of elementwise loops over threads (see ``SERIAL_MAX_BYTES``): on the CPU backend
    (``backend``: default ``jax.default_backend()``), where no layer of the call holds more than
    ``SERIAL_MAX_BYTES``."""
    return (backend or jax.default_backend()) == "cpu" and inputs * layer_bytes(net) <= SERIAL_MAX_BYTES


def call_runner(net: Network, path: str, keep: bool, cluster: Cluster, step: int | None, batch: int):
    """``_runner`` of ``run``'s call of ``batch`` inputs: serial or not (``serial_call``) by the inputs of one
    compiled step of it (one cache lookup a call)."""
    serial = _prepared(net, ("serial", step, batch),
                       lambda: serial_call(net, min(batch, auto_step(net) if step is None else step)))
    return _runner(net, path, keep, cluster, step, serial)


def _bind(jitted, prepared: tuple, kw: dict, serial: bool = False):
    """(jitted forward ``f(x, *args)``, args): ``jitted``'s function with its static keywords bound and, when
    ``prepared`` fits ``CONST_BYTES``, the prepared parameters as constants of the compiled forward (no args);
    ``serial``: compiled without XLA's split of loops over threads (``serial_call``)."""
    impl = jitted.__wrapped__
    opts = _SERIAL_COMPILER_OPTIONS if serial else _STEP_COMPILER_OPTIONS
    if sum(int(np.prod(v.shape)) * v.dtype.itemsize for v in jax.tree_util.tree_leaves(prepared)) <= CONST_BYTES:
        consts = jax.tree_util.tree_map(np.asarray, prepared)  # one copy to the host, only when it is used
        return jax.jit(lambda x: impl(x, *consts, **kw), compiler_options=opts), ()
    return jax.jit(lambda x, *args: impl(x, *args, **kw), compiler_options=opts), prepared


def _runner(net: Network, path: str, keep: bool, cluster: Cluster, step: int | None, serial: bool = False):
    """``run``'s jitted forward ``fn(x, *args)``, its device arguments ``args`` (the prepared weights, or nothing
    when they are compiled in as constants: ``_bind``) and the wanted tensors' output shapes ((-1, ...) per
    name), built once per network, path, ``keep``, cluster and step. The value path's types are the network's
    own there, so they are compiled in as constants too (static ``types``): as traced scalars, their clip bounds
    and int8 offsets were recomputed inside every fused element loop. ``step=None``: ``auto_step(net)``'s entry
    (one cache lookup a call). ``serial``: compiled without XLA's split of loops over threads (``serial_call``)."""
    if step is None:
        return _prepared(net, ("run", path, keep, cluster, None, serial),
                         lambda: _runner(net, path, keep, cluster, auto_step(net), serial))

    def build():
        types = net.tensor_types()
        want = tuple(types) if keep else net.outputs
        shapes = {k: (-1,) + tuple(types[k][0]) for k in want}
        if path == "values":
            own = tuple((k, int(b), int(s)) for k, (b, s) in _types_of(net, None).items())
            kw = dict(layers=_prepared_value_layers(net), cfgs=_configs(net.layers, "ideal", cluster), want=want,
                      cluster=cluster, groups=_prepared_groups(net), step=step, types=own)
            return (*_bind(_values_stepped, (_prepared_values(net), None), kw, serial), shapes)
        kw = dict(layers=net.layers, cfgs=_prepared_packed_configs(net, cluster), want=want, cluster=cluster,
                  io=_packed_io(net, want), groups=_prepared_packed_groups(net, cluster), step=step)
        return (*_bind(_packed_forward, (_prepared_packed(net, cluster),), kw, serial), shapes)
    return _prepared(net, ("run", path, keep, cluster, step, serial), build)
