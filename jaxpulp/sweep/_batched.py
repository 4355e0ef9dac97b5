"""The metric sweep's forward pass: many precision configurations of one network at once, on the value path.

``run_values(net, x, params=derived)`` per configuration (``Deriver.derive`` then the network) is the
definition; this module computes the same int32 outputs for a batch of configurations ``[B, V]`` and inputs
``[N, ...]`` with fewer and larger GEMMs. What the profile of the per-configuration loop showed and what this
does about it (MobileNetV1-0.25-128, numbers in ``benchmarks/sweep.py``):

* A configuration's weights are not free data: layer ``l``'s weights are one of ``C_w`` (<= 3) concrete tensors,
  ``clip(round(w / 2**d))`` of its weight choice; ``Plan`` derives them once on the host. A configuration picks its
  tensors by a one-hot reduction over the ``C_w`` (``_pick_weights``, all layers in one reduction per dtype), which XLA
  computes into its own buffer: derived in the graph (``Deriver.derive``'s float32 scale / round / clip), or picked by a
  gather or select chain, the weights were fused into the depthwise layers' element loops and recomputed for every
  output element (MobileNetV1's dw1: 14 ms derived in the loop vs 2.2 ms picked, 4 configurations x 8 inputs; the whole
  8 x 8 metric about 1.8x faster with the next point, same run).
* 1x1 convolutions with more than 8 input channels run as exact int8 x int8 -> int32 GEMMs (``int8_matmul``:
  u8 inputs shifted by -128, ``128 * sum(w)`` added back; where the plan proves every type the input may take
  and every weight variant fit int8, ``Plan.int8``), handed by XLA:CPU to YNNPACK's VNNI kernels; those with at
  most 8 a sum of broadcast products on a materialised input (XLA had fused the depthwise layer before into
  that sum, recomputing it for each output channel).
* Every tensor computed before the first choice (the network input, unless it is a free variable) is the same
  for every configuration: those layers run once per input, not once per pair. A weighted layer whose input is
  such a tensor (the first 3x3 convolution, the most expensive layer of the per-configuration loop on this CPU)
  runs once per input with its ``C_w`` weight tensors stacked along the output channels (one convolution of
  ``C_w * Co`` channels), and each configuration selects its slice.
* Configurations are folded into the batch: the other layers run on ``[b, N, ...]`` under ``vmap`` over a
  chunk of ``b`` configurations, so 1x1 convolutions and linear layers become one batched GEMM (``[b] x
  (N*pixels, Ci) @ (Ci, Co)``, each configuration's own weights, no wasted work), depthwise layers broadcast
  per-configuration weights, the requantisation per-configuration parameters. KxK convolutions on
  per-configuration inputs run with the stacked weights too (one ordinary convolution over all rows, ``C_w``
  times the MACs) rather than as the grouped convolution ``vmap`` would make of per-configuration weights
  (several times slower on CPU).
* Exactness: the float32 convolutions sum input-channel groups proved exact from the concrete stacked weights
  (``_engine.weight_bound_groups`` at the widest input, |x| <= 255; worst-case groups otherwise), the float32
  GEMMs chunk their reduction by the worst-case product of <= 8-bit types, as the value path does; every partial
  sum is an integer below 2**24; int8 GEMMs multiply int8 values exactly and add in int32 (exact modulo 2**32 in
  any order), so the int32 results are those of the definition exactly (``==``; the property
  test ``tests/test_sweep_batched.py`` checks it against ``run_values`` per configuration).
* Chunks: ``lax.map`` over chunks of about ``rows`` configuration x input pairs, ``vmap`` over the chunk's
  configurations inside (measured on MobileNetV1-0.25, process CPU time: 8 x 8, chunks of 16-32 pairs beat 8
  and 64; 8 configurations x 64 inputs, chunks of 32 inputs beat 64 by 1.2x and 128 by 1.4x: larger chunks
  fall out of the caches; a per-layer chunk size, small for the 64x64 layers and large for the 8x8 ones, was
  slower than one size).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import quant
from jaxpulp.kernels import _engine, conv, depthwise, linear
from jaxpulp.kernels.config import ConvConfig
from jaxpulp.network import execute, kinds

_MAX_X = 255  # largest |x| of a <= 8-bit activation (u8)


def _requantise_np(w, bits: int, d: int) -> np.ndarray:
    """``_metric._requantise_values`` of concrete signed weights in numpy (the same float32 steps: the scaling by
    a power of two is exact, round half to even, clip to the ``bits``-bit signed range)."""
    v = np.asarray(w, np.float32) * np.exp2(np.float32(-d))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.round(v), np.float32(lo), np.float32(hi)).astype(np.int32)


def _is_kxk_conv(lay) -> bool:
    k = kinds.of(lay)
    return k.weighted and not k.flat and not k.channelwise and tuple(lay.kernel) != (1, 1)


def _is_int8_gemm(lay) -> bool:
    """Whether ``_own_acc`` runs the layer as an int8 GEMM when the plan allows it (``Plan.int8``): a 1x1
    convolution with more than ``_SMALL_K`` input channels, on a backend whose value path takes the int8 GEMM
    (``conv.int8_gemm_1x1``: the CPU; off it the float32 GEMM, as the value path)."""
    k = kinds.of(lay)
    if not (k.weighted and not k.flat and not k.channelwise and tuple(lay.kernel) == (1, 1)):
        return False
    cfg = execute.widest_acc_config(lay)
    return cfg.Ci > _SMALL_K and conv.int8_gemm_1x1(cfg.Ci, cfg.Co)  # and the backend's rule (the CPU)


def _bounds_np(bits: int, signed: int) -> tuple[int, int]:
    """``quant.type_bounds`` of a concrete type on the host (the same int32 wrap-around: u32 gives (0, -1))."""
    half = quant.wrap32(1 << (bits - 1))
    if signed:
        return quant.wrap32(-half), quant.wrap32(half - 1)
    return 0, quant.wrap32((1 << bits) - 1)


def _pick_tables(weights: dict, gemm8: set, stacked: set):
    """Host buffers of every weight variant a configuration picks (``_pick_weights``): ``pick`` dtype ->
    (stack ``[C, T]``, variable index ``[T]`` of each column), ``slots`` key -> (dtype, offset, shape). Keys: a
    layer's name (its weights: int8 for the layers in ``gemm8``, the int8 GEMMs, else int32) and ``name +
    "/sum"`` (an int8 layer's per-output-channel weight sums, int32). Stacked (KxK) layers take no slot."""
    C = max((wv.w.shape[0] for wv in weights.values()), default=1)
    cols: dict = {np.dtype(np.int32): [], np.dtype(np.int8): []}
    slots = {}

    def put(key, var, stack, dtype):
        flat = stack.reshape(stack.shape[0], -1)
        flat = np.concatenate([flat, np.zeros((C - flat.shape[0], flat.shape[1]), flat.dtype)])
        dt = np.dtype(dtype)
        slots[key] = (dt, sum(c.shape[1] for c, _ in cols[dt]), stack.shape[1:])
        cols[dt].append((flat.astype(dt), np.full(flat.shape[1], var, np.int32)))

    for name, wv in weights.items():
        if name in stacked:
            continue
        if name in gemm8:
            put(name, wv.var, wv.w.reshape(wv.w.shape[0], wv.w.shape[1], -1), np.int8)
            put(name + "/sum", wv.var, wv.w.reshape(wv.w.shape[0], wv.w.shape[1], -1).sum(-1), np.int32)
        else:
            put(name, wv.var, wv.w, np.int32)
    pick = {dt: (np.concatenate([c for c, _ in v], axis=1), np.concatenate([i for _, i in v]))
            for dt, v in cols.items() if v}
    return pick, slots


@dataclasses.dataclass(frozen=True)
class _Weights:
    """One weighted layer's weight variants: ``var`` the weight variable, ``w`` int32 ``[C, *w.shape]`` (one
    tensor per choice of ``var``), ``groups`` the exact input-channel groups of the stacked KxK convolution."""

    var: int
    w: np.ndarray
    groups: tuple | None


class Plan:
    """Static facts of a (network, space) for the batched forward (host side, built once)."""

    def __init__(self, net, der):
        self.net, self.der = net, der
        space = der.space
        n_choices = [len(v.choices) for v in space.variables]
        self.weights = {}
        for lay in net.layers:
            if not kinds.of(lay).weighted:
                continue
            kw = der.weight_var[lay.name]
            w = np.asarray(net.params[lay.name]["w"], np.int32)
            stack = np.stack([_requantise_np(w, int(der.bits[kw, c]), int(der.d[kw, c]))
                              for c in range(n_choices[kw])])
            groups = None
            if _is_kxk_conv(lay):
                flat = stack.reshape((-1,) + stack.shape[2:])  # (C * Co, Kh, Kw, Ci)
                g = _engine.weight_bound_groups(flat, _MAX_X)
                worst = conv.worst_case_groups(execute.widest_acc_config(lay, flat.shape[0]))
                groups = g if g is not None and len(g) < len(worst) else None
            self.weights[lay.name] = _Weights(kw, stack, groups)
        # 1x1 convolutions that may run as int8 GEMMs: every weight variant and every type their input may take
        # (each choice of its variable, else its fixed type) fit int8 after the type's offset
        types = {i.name: [i.qtype] for i in net.inputs}
        for lay in net.layers:
            types[lay.output] = [lay.out_type]
        for t, k in der.tensor_var.items():
            types[t] = list(space.variables[k].choices)
        self.int8 = {lay.name for lay in net.layers if lay.name in self.weights
                     and int(self.weights[lay.name].w.min()) >= -128 and int(self.weights[lay.name].w.max()) <= 127
                     and all(t.bits <= 8 for t in types[lay.inputs[0]])}
        # KxK convolutions: every weight variant at once (stacked along the output channels)
        self.stacked = {lay.name for lay in net.layers if _is_kxk_conv(lay)}
        # the layers that run as int8 GEMMs (``_own_acc``): their weights are picked as int8, with their sums
        gemm8 = {lay.name for lay in net.layers if lay.name in self.int8 and _is_int8_gemm(lay)}
        self.pick, self.slots = _pick_tables(self.weights, gemm8, self.stacked)
        # per variable and choice: the type's clip bounds (lo, hi), as ``quant.type_bounds`` computes them
        C = max(n_choices)
        self.bounds = np.zeros((len(n_choices), C, 2), np.int32)
        for k, v in enumerate(space.variables):
            for c, t in enumerate(v.choices):
                self.bounds[k, c] = _bounds_np(t.bits, int(t.signed))
        # tensors equal for every configuration: every variable they depend on has a single choice
        single = {t for t, k in der.tensor_var.items() if n_choices[k] == 1}
        inp = net.input.name
        self.shared = {inp} if (inp not in der.tensor_var or inp in single) else set()
        for lay in net.layers:
            wv = der.weight_var.get(lay.name)
            if (all(i in self.shared for i in lay.inputs) and (lay.output not in der.tensor_var or lay.output in single)
                    and (wv is None or n_choices[wv] == 1)):
                self.shared.add(lay.output)


def _types(net, act_types) -> dict:
    """tensor name -> (bits, signed): the layers' own types, overridden by ``act_types``."""
    acts = {i.name: (i.qtype.bits, int(i.qtype.signed)) for i in net.inputs}
    for lay in net.layers:
        acts[lay.output] = (lay.out_type.bits, int(lay.out_type.signed))
    acts.update(act_types)
    return acts


def _stacked_acc(lay, x, wv: _Weights):
    """Accumulators (no bias) of a conv layer with all weight variants stacked along the output channels:
    ``[..., Ho, Wo, C, Co]`` (exact: weight-proved or worst-case groups)."""
    C, Co = wv.w.shape[0], wv.w.shape[1]
    flat = jnp.asarray(wv.w.reshape((C * Co,) + wv.w.shape[2:]))
    acc = conv.accumulate(x, flat, None, execute.widest_acc_config(lay, C * Co), wv.groups)
    return acc.reshape(acc.shape[:-1] + (C, Co))


def _select(acc, c):
    """``acc[..., c, :]`` for a traced choice ``c``: a chain of selects (fused, vectorised; XLA's CPU gather on
    that axis was several times slower, measured)."""
    out = acc[..., 0, :]
    for j in range(1, acc.shape[-2]):
        out = jnp.where(c == j, acc[..., j, :], out)
    return out


def _pick_weights(plan: Plan, config) -> dict:
    """Every weight tensor a configuration ``[V]`` picks from the host variants (``Plan.pick``): key (a layer's
    name, or ``name + "/sum"``, see ``_pick_tables``) -> its array. One reduction per dtype over the ``C``
    variants of all layers at once, ``sum_c where(config[var] == c, stack[c], 0)``: XLA computes a reduction into
    its own buffer, while a gather, a select chain or the in-graph derivation (``Deriver.derive``'s float32 scale
    / round / clip) is fused into the consumer's loop and recomputed for every output element (a depthwise layer
    on 64x64x8: 2.2 ms vs 9 ms select chain, 14 ms derived; measured, XLA:CPU); one reduction for all layers
    instead of one per layer: about 60 fewer kernels to compile on MobileNetV1 (``benchmarks/sweep.py``)."""
    config = jnp.asarray(config, jnp.int32)
    bufs = {}
    for dt, (stack, var) in plan.pick.items():
        c = config[jnp.asarray(var)]
        hot = c[None, :] == jnp.arange(stack.shape[0], dtype=jnp.int32)[:, None]
        bufs[dt] = jnp.sum(jnp.where(hot, jnp.asarray(stack), jnp.zeros((), stack.dtype)), axis=0, dtype=stack.dtype)
    out = {}
    for key, (dt, off, shape) in plan.slots.items():
        out[key] = bufs[dt][off:off + int(np.prod(shape))].reshape(shape)
    return out


def _own_acc(lay, x, w, x_off=None, w_sum=None):
    """Accumulators (no bias) of a weighted layer with one weight tensor (batched GEMM / broadcast under vmap).
    ``x_off``: the int8 offset of x's type (``_engine.int8_offset``) where the plan proved every type x may take and
    every weight fits int8 (``Plan.int8``), else None; ``w_sum``: then optionally the weights' per-output-channel
    sums (``int8_matmul``)."""
    k = kinds.of(lay)
    cfg = execute.widest_acc_config(lay)
    if k.flat:
        return linear.accumulate(x.reshape(x.shape[0], -1), w, None, cfg)
    if k.channelwise:
        return depthwise.accumulate(x, w, None, cfg)
    if tuple(lay.kernel) == (1, 1) and cfg.Ci <= _SMALL_K:
        return _small_pointwise(x, w, cfg)
    if x_off is not None and _is_int8_gemm(lay):
        return _int8_pointwise(x, w, cfg, x_off, w_sum)
    return conv.accumulate(x, w, None, cfg)


# Accumulators (batch, Ho, Wo, Co) of a 1x1 convolution as one int8 x int8 -> int32 GEMM over batch * pixels, x
# moved into int8 by ``x_off`` (the value path's form for such layers too). Measured (4 configurations x (8192 rows,
# K) @ (K, 32), ms, loaded machine): K = 32 int8 0.57 vs float32 1.42; (512, 128) @ (128, 128): 0.52 vs 0.87; K = 16:
# a tie.
_int8_pointwise = conv.int8_pointwise


# int32 (rows, Co) = x (rows, K) @ w (Co, K).T as one exact int8 x int8 -> int32 GEMM plus the offset's share
# (YNNPACK's VNNI kernels on the CPU); ``w_sum`` (the host-computed sum of each row of w) may be passed.
int8_matmul = _engine.int8_matmul


# 1x1 convolutions with at most this many input channels: a sum of Ci broadcast products on a materialised
# input, not a GEMM (4 configurations x (32768 rows, 8) @ (8, 16), MobileNetV1's pw1: 0.45 ms vs 2.2 int8 GEMM,
# 1.6 float32 GEMM; at Ci = 16 the sum lost, 3.4 vs 1.3 ms; measured, loaded machine)
_SMALL_K = 8


def _small_pointwise(x, w, cfg: ConvConfig):
    """Accumulators (batch, Ho, Wo, Co) of a 1x1 convolution as ``sum_c x[..., c] * w[:, c]`` in float32: exact,
    every partial sum is at most Ci * 255 * 128 < 2**24 for Ci <= 16. x is materialised first: otherwise XLA
    fuses x's producer (a depthwise layer and its requantisation) into the sum and recomputes it for each of the
    Co output channels (MobileNetV1's dw1 16 times)."""
    x = conv.pointwise_pixels(_materialise(x), cfg).astype(jnp.float32)
    wf = jnp.asarray(w, jnp.float32).reshape(cfg.Co, cfg.Ci)
    acc = x[..., 0:1] * wf[:, 0]
    for c in range(1, cfg.Ci):
        acc = acc + x[..., c:c + 1] * wf[:, c]
    return acc.astype(jnp.int32)


def _finish(lay, acc, p, bounds):
    """Bias and requantisation of accumulators (the value path's, ``execute._weighted_values``); ``bounds`` the
    output type's (lo, hi)."""
    if lay.bias:
        acc = acc + p["bias"]
    flat = kinds.of(lay).flat
    if not (flat and lay.out_type.bits == 32):
        acc = quant.requant(acc, relu=lay.relu, bn=lay.bn, kappa=p["kappa"], lam=p["lam"], out_mult=p["out_mult"],
                            out_shift=p["out_shift"], lo=bounds[0], hi=bounds[1], bn_bits=lay.bn_bits)
    return acc.reshape((-1, 1, 1, acc.shape[-1])) if flat else acc


def _config_data(plan: Plan, config, layers=None) -> dict:
    """Everything a configuration ``[V]`` contributes to the forward besides the shared tensors: re-derived
    parameters (``Deriver.derive``, without the weights), the weights of the layers that run with their own
    (``_pick_weights``), tensor types, their clip bounds (``Plan.bounds``, one gather) and int8 offsets, the
    input's scale exponent. ``layers``: the layers to derive parameters for (default all). (Putting each derived
    quantity in its own buffer too (``_materialise``), as the weights, made the forward slower: the version
    without ran 1.25x faster at 8 x 8 and 1.18x at 32 x 64, same run, and compiled 5 s faster.)"""
    net, der = plan.net, plan.der
    config = jnp.asarray(config, jnp.int32)
    params, act_types, _, d_in, _ = der.derive(net.params, config, weights=False, layers=layers)
    acts = _types(net, act_types)
    bounds = {i.name: (i.qtype.lo, i.qtype.hi) for i in net.inputs}
    bounds.update({lay.output: _bounds_np(lay.out_type.bits, int(lay.out_type.signed)) for lay in net.layers})
    if der.tensor_var:
        lohi = jnp.asarray(plan.bounds)[jnp.arange(plan.bounds.shape[0]), config]  # [V, 2]
        bounds.update({t: (lohi[k, 0], lohi[k, 1]) for t, k in der.tensor_var.items()})
    picked = _pick_weights(plan, config)
    for name, w in picked.items():
        if "/" not in name and name in params:
            params[name]["w"] = w
    return dict(params=params, acts={k: tuple(jnp.asarray(a, jnp.int32) for a in v) for k, v in acts.items()},
                bounds=bounds, sums={k[:-4]: v for k, v in picked.items() if k.endswith("/sum")},
                off={lay.inputs[0]: _engine.int8_offset(acts[lay.inputs[0]]) for lay in net.layers
                     if lay.name in plan.int8},
                choice={name: config[wv.var] for name, wv in plan.weights.items()},
                d_in=d_in)


_materialise = _engine.materialise  # v itself, in its own buffer (a reduction XLA does not fuse into readers)


def _input(plan: Plan, x, cd):
    """The network input at a configuration's type (``make_metric_fn``'s rule)."""
    net = plan.net
    if net.input.name not in plan.der.tensor_var:
        return x
    from jaxpulp.sweep._metric import _requantise_values

    lo, hi = cd["bounds"][net.input.name]
    return _requantise_values(x, lo, hi, cd["d_in"])


def _layer(plan: Plan, lay, env, pre, cd, cluster):
    """One layer of one configuration (under vmap: of all): env holds its inputs, ``pre`` the stacked
    accumulators of weighted layers whose input is shared; ``cd`` the configuration's ``_config_data``."""
    p = cd["params"].get(lay.name, {})
    k = kinds.of(lay)
    if k.weighted:
        if lay.name in pre:
            acc = _select(pre[lay.name], cd["choice"][lay.name])
        elif lay.name in plan.stacked:
            acc = _select(_stacked_acc(lay, env[lay.inputs[0]], plan.weights[lay.name]), cd["choice"][lay.name])
        else:
            x_off = cd["off"][lay.inputs[0]] if lay.name in plan.int8 else None
            acc = _own_acc(lay, env[lay.inputs[0]], p["w"], x_off, cd["sums"].get(lay.name))
        return _finish(lay, acc, p, cd["bounds"][lay.output])
    from jaxpulp.network import mapping

    acts = cd["acts"]
    cfg = mapping.kernel_config(lay, "ideal", cluster)
    return k.hook("values")(lay, cfg, p, [env[i] for i in lay.inputs], [acts[i] for i in lay.inputs],
                            acts[lay.output], cluster)


def forward(plan: Plan, configs, x, *, rows: int = 32, cluster=None):
    """int32 outputs ``[B, N, ...]`` of ``net.outputs[0]`` and the output scale exponents ``[B]`` of configurations
    ``configs`` ``[B, V]`` on inputs ``x`` ``[N, H, W, C]`` (the definition: per configuration, ``Deriver.derive``
    then ``run_values``). ``rows`` (static): configuration x input pairs per chunk: several configurations when
    ``N <= rows``, else one configuration and a divisor of ``N`` inputs."""
    from jaxpulp.cluster.config import GAP8

    cluster = cluster or GAP8
    net = plan.net
    configs = jnp.asarray(configs, jnp.int32)
    B, N = configs.shape[0], x.shape[0]
    x = jnp.asarray(x, jnp.int32)
    # shared prefix: once, with the first configuration (every variable it depends on has a single choice)
    cd0 = _config_data(plan, configs[0], layers={lay.name for lay in net.layers if lay.output in plan.shared})
    env0 = {net.input.name: _input(plan, x, cd0)} if net.input.name in plan.shared else {}
    pre = {}
    for lay in net.layers:
        if lay.output in plan.shared:
            env0[lay.output] = _layer(plan, lay, env0, {}, cd0, cluster)
        elif lay.name in plan.stacked and lay.inputs[0] in plan.shared:
            pre[lay.name] = _stacked_acc(lay, env0[lay.inputs[0]], plan.weights[lay.name])
        elif kinds.of(lay).weighted and lay.inputs[0] in plan.shared and not kinds.of(lay).channelwise:
            # 1x1 conv / linear on a shared input: the variants' GEMMs once, each configuration picks its slice
            wv = plan.weights[lay.name]
            pre[lay.name] = jnp.stack([_own_acc(lay, env0[lay.inputs[0]], jnp.asarray(w)) for w in wv.w], axis=-2)
    per = max(1, min(B, rows // max(N, 1)))
    n = -(-B // per)
    cfgs = configs if n * per == B else jnp.concatenate([configs, jnp.broadcast_to(configs[-1:], (n * per - B,
                                                                                              configs.shape[1]))])
    out = net.outputs[0]
    # more inputs than a chunk holds: the inputs go in chunks of ``ni`` (a divisor of N) too, with the shared
    # tensors cut alike (one configuration per chunk then)
    ni = max(d for d in range(1, min(N, max(rows, 1)) + 1) if N % d == 0) if per == 1 else N

    def one(config, xs, shared, pre_s):
        cd = _config_data(plan, config)
        env = dict(shared)
        if net.input.name not in env:
            env[net.input.name] = _input(plan, xs, cd)
        for lay in net.layers:
            if lay.output not in env:
                with jax.named_scope(lay.name):
                    env[lay.output] = _layer(plan, lay, env, pre_s, cd, cluster)
        return env[out]

    if out in env0:
        y = jnp.broadcast_to(env0[out], (B,) + env0[out].shape)
    elif ni == N:
        y = jax.lax.map(jax.vmap(lambda c: one(c, x, env0, pre)), cfgs.reshape(n, per, -1))
        y = y.reshape((n * per,) + y.shape[2:])[:B]
    else:
        # one loop over (configuration, input chunk) pairs, not a loop over input chunks inside a loop over
        # configurations: XLA hoisted every configuration-only quantity out of the inner loop into its own small
        # kernel (32 x 64 on MobileNetV1: 183 -> 75 kernels, XLA compile about 1.5 s shorter; measured)
        m = N // ni

        def cut(v):
            return v.reshape((m, ni) + v.shape[1:])

        parts = (cut(x), {k: cut(v) for k, v in env0.items()}, {k: cut(v) for k, v in pre.items()})

        def step(a):
            config, j = a
            xs, shared, pre_s = jax.tree.map(lambda v: jax.lax.dynamic_index_in_dim(v, j, keepdims=False), parts)
            return one(config, xs, shared, pre_s)

        y = jax.lax.map(step, (jnp.repeat(configs, m, axis=0), jnp.tile(jnp.arange(m, dtype=jnp.int32), B)))
        y = y.reshape((B, N) + y.shape[2:])
    s = jax.vmap(plan.der.out_scale)(configs)
    return y, s
