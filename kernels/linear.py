"""Linear layers: ``pulp_nn_linear_<in>_<out>_<w>`` (108 quantised variants) and ``pulp_nn_linear_<in>_i32_<w>``
(18 int32-output variants), split over output neurons per output width (semantics.md §9).

Naming follows the golden vectors: ``N`` = input length (elements), ``M`` = output neurons; weights (M, N)
row-major, one packed stream; bias int32 per neuron; ``out_type == "i32"`` selects the no-quant kernels.

Three ways to run one configuration (``cfg``: a frozen ``LinearConfig``, a static jit argument):

* ``run(x_words, w_words, params, cfg=..)``  packed path: uint32 memory images in and out, the library's
  deterministic quirks included;
* ``run_values(x, w, params, cfg=..)``      value path: int tensors in and out, the intended arithmetic;
* ``reference(x, w, params, cfg)``          numpy loops that follow the C kernels core by core (the twin).

Library quirks reproduced (each through the real per-core split, §9.2):

* 8-bit output: the leftover neuron of an odd per-core chunk is requantised with ``kappa[0]`` / ``lambda[0]``;
* 8-bit output, 2-bit weights, 8- or 4-bit input: that leftover neuron's vector loop never loads its weights,
  so its accumulator is the bias plus the scalar tail only (§9.2 b; the tail is empty wherever ``check``
  passes, so it is the bias);
* ``linear_{u2,i2}_{u2,i2}_i4``: in every 16-element step, elements 8..15 of the 3rd / 4th neuron of a quad
  are multiplied with the weights of the 1st / 2nd (wrong row pointers, §9.4);
* floor shifts, int16 ``out_mult``, ``out_shift`` mod 32, int32 wrap (§4.1).

Refused by ``check`` (library semantics; ``semantics="ideal"`` lifts all but the uint16 extents): the
reduction-tail over-read (§9.3), a short last chunk that computes neuron ``M`` (§9.2 c; it stores past the
output), 4-bit output chunks that start at odd neurons (racing, mispaired nibbles), 2-bit output chunks that leave
neurons uncomputed. Accepted: sub-byte outputs whose last byte is partial (M odd for 4 bits, not a multiple of 4
for 2 bits): the last pair / quad computes phantom neurons from memory past the weight / bias / kappa arrays and
writes them only into the unused high bits of the last output byte; every real neuron is exact, and
``defined_mask`` marks the phantom bits undefined (``run`` writes 0 there).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing, quant
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _engine
from jaxpulp.kernels._engine import IntArrayLike, Scalar32
from jaxpulp.kernels.config import LinearConfig

Config = LinearConfig


class Params(NamedTuple):
    """Per-call data: kappa / lam (int32, one per output neuron; quantised kernels only, read in BN mode),
    out_mult (uint16 argument, used as int16 in MULT mode), out_shift (bits), bias (int32 per neuron or None)."""

    kappa: IntArrayLike | None = None
    lam: IntArrayLike | None = None
    out_mult: IntArrayLike = 0
    out_shift: IntArrayLike = 0
    bias: IntArrayLike | None = None


class Geometry(NamedTuple):
    """A configuration as int32 data (one compiled function serves many). bo = 32 for int32 output."""

    N: Scalar32
    M: Scalar32
    bi: Scalar32
    si: Scalar32
    bo: Scalar32
    so: Scalar32
    bw: Scalar32
    relu: Scalar32
    bn: Scalar32
    ncores: Scalar32
    library: Scalar32


class Bucket(NamedTuple):
    """Static extents (elements) the compiled function is traced for; cores = core ids the work split is
    evaluated for (at least the cluster's core count)."""

    N: int
    M: int
    cores: int = cluster_run.MAX_CORES

    @property
    def x_words(self):
        return _engine.words_for(self.N, 8)

    @property
    def w_words(self):
        return _engine.words_for(self.M * self.N, 8)

    @property
    def out_words(self):
        return self.M  # enough for int32 outputs


def geometry(cfg: LinearConfig, cluster: Cluster = GAP8) -> Geometry:
    vals = (cfg.N, cfg.M, cfg.in_type.bits, int(cfg.in_type.signed), cfg.out_type.bits, int(cfg.out_type.signed),
            cfg.w_type.bits, cfg.relu, cfg.bn, cluster.num_cores, int(cfg.semantics == "library"))
    return Geometry(*(np.int32(v) for v in vals))


def _cores(clusters) -> int:
    return max([cluster_run.MAX_CORES] + [c.num_cores for c in clusters])


def exact_bucket(cfg: LinearConfig, cluster: Cluster = GAP8) -> Bucket:
    return Bucket(cfg.N, cfg.M, _cores([cluster]))


def shared_bucket(cfgs, clusters=()) -> Bucket:
    """One bucket that fits every configuration in ``cfgs`` run on ``clusters`` (extents rounded up to powers
    of two)."""
    return Bucket(_engine.round_up(max(c.N for c in cfgs)), _engine.round_up(max(c.M for c in cfgs)),
                  _cores(clusters))


def _split_bits(cfg: LinearConfig):
    """``out_bits`` argument of ``split.linear_split`` (None for the int32-output kernels)."""
    return cfg.out_type.bits if cfg.quantized else None


def _step(cfg: LinearConfig) -> int:
    """Elements per vector step of the inner loop: 32 / min(bi, bw) (4, 8 or 16)."""
    return 32 // min(cfg.in_type.bits, cfg.w_type.bits)


# ----------------------------------------------------------------------------------------------- check


def check(cfg: LinearConfig, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule if the library does not define this call."""
    _engine.check_config(cfg, LinearConfig, "linear")
    if max(cfg.N, cfg.M) >= 1 << 16:
        raise UnsupportedConfig("uint16-extent", f"N={cfg.N}, M={cfg.M}: dim_vec and num_o_neurons are uint16 "
                                "arguments, both must be < 65536")
    if cfg.semantics != "library":
        return
    step = _step(cfg)
    if step > 4 and cfg.N % step:
        raise UnsupportedConfig(
            "linear-reduction-tail",
            f"N={cfg.N} with {cfg.in_type} input and {cfg.w_type} weights: the scalar tail runs N mod {step} = "
            f"{cfg.N % step} times but consumes {step // 4} elements per iteration, so it reads past the input "
            f"vector and into the next weight row (semantics.md §9.3). Use N a multiple of {step}, or "
            "semantics='ideal'")
    nc, M = cluster.num_cores, cfg.M
    bo = cfg.out_type.bits
    # M not a multiple of the elements per byte (sub-byte output): the last pair / quad also computes phantom
    # neurons M.. from rows, bias and kappa / lambda past their arrays, but stores them only into the unused high
    # bits of the last output byte, inside the buffer: every real output is defined (``defined_mask``).
    ranges = [split.linear_split(core, M, nc, _split_bits(cfg)) for core in range(nc)]
    width = ranges[0][1] - ranges[0][0]  # the per-core chunk (core 0 always gets a full one)
    if bo in (8, 32):
        for core, (s, e) in enumerate(ranges):
            if e > s and (e - s) % 2 != width % 2:
                raise UnsupportedConfig(
                    "linear-short-last-chunk",
                    f"M={M} on {nc} cores: chunk ceil(M/{nc})={width} but core {core} gets neurons [{s}, {e}) "
                    f"({e - s}, the other parity): its {'pair loop' if width % 2 == 0 else 'leftover neuron'} "
                    f"computes neuron {M}, storing one element past the output and reading weight row / bias "
                    f"{M} past their ends (semantics.md §9.2 c). Use M with ceil(M/{nc}) and the last core's "
                    "share of the same parity (e.g. M a multiple of the core count), or semantics='ideal'")
    elif bo == 4:
        for core, (s, e) in enumerate(ranges):
            if e > s and s % 2:
                raise UnsupportedConfig(
                    "linear-nibble-race",
                    f"M={M} on {nc} cores with 4-bit output: per-core chunk {width} is odd, so core {core} starts "
                    f"at neuron {s} and stores nibble pairs ({s}, {s + 1}), ... into bytes that start at "
                    f"neuron {s - 1}: cores overwrite each other's bytes (a race) with mispaired nibbles "
                    f"(semantics.md §9.2). Use ceil(M/{nc}) equal to 1 or even, or semantics='ideal'")
    else:
        covered = max(e for _, e in ranges)
        if covered < M:
            raise UnsupportedConfig(
                "linear-uncomputed-neurons",
                f"M={M} on {nc} cores with 2-bit output: chunk ceil(M/{nc})={-(-M // nc)} is rounded to "
                f"{width} per core (4 - chunk mod 8 goes negative), so neurons [{covered}, {M}) are never "
                f"computed (semantics.md §9.2). Use ceil(M/{nc}) mod 8 not in {{5, 6, 7}}, or semantics='ideal'")


def defined_mask(cfg: LinearConfig) -> np.ndarray:
    """uint32 words, the shape of ``run``'s output image: 1-bits where the library's output is defined. Bits past
    neuron M of the last byte hold phantom neurons computed from memory past the parameter arrays (sub-byte
    output, M not a multiple of the elements per byte), and the rest of the last word is not written: both are
    0 here. For int32 outputs and full last bytes every bit of the M elements is defined."""
    bits = 32 if not cfg.quantized else cfg.out_type.bits
    n = _engine.words_for(cfg.M, bits)
    total = cfg.M * bits
    mask = np.zeros(n, np.uint32)
    full, rest = divmod(total, 32)
    mask[:full] = 0xFFFFFFFF
    if rest:
        mask[full] = (1 << rest) - 1
    return mask


# ---------------------------------------------------------------------------------------- fast paths


def _neuron_roles(g: Geometry, Mb: int, max_cores: int = cluster_run.MAX_CORES):
    """Per output neuron (``Mb`` lanes), from the real per-core split (vmap over core ids, §9.2):
    leftover = computed by the single-neuron path after the pairs (8-bit / int32 output, odd chunk);
    quad_pos = position inside its 4-neuron group (2-bit output), 0 elsewhere."""
    n = jnp.arange(Mb, dtype=jnp.int32)
    s0, e0 = cluster_run.linear_split(0, g.M, g.ncores, g.bo)
    width = e0 - s0

    def per_core(core):
        s, e = cluster_run.linear_split(core, g.M, g.ncores, g.bo)
        lft = jnp.where((g.bo == 8) | (g.bo == 32), width & 1, 0)
        pairs = jnp.maximum(e - lft - s + 1, 0) // 2
        left_at = s + 2 * pairs
        leftover = (lft == 1) & (e > s) & (n == left_at)
        mine = (n >= s) & (n < e)
        return leftover, jnp.where(mine, (n - s) & 3, 0)

    leftover, pos = cluster_run.over_cores(per_core, max_cores)
    return leftover.any(0), pos.sum(0)


def _unpack_inputs(g: Geometry, x_words, w_words, bk: Bucket):
    """X8 (N,) and W8 (M, N) as the 8-bit values the loads / unpack helpers produce (zero outside N x M)."""
    k = jnp.arange(bk.N)
    xv = k < g.N
    x8 = jnp.where(xv, packing.extract_elements(x_words, jnp.where(xv, k, 0), g.bi, g.si), 0)
    n, k2 = jnp.meshgrid(jnp.arange(bk.M), k, indexing="ij")
    wv = (n < g.M) & (k2 < g.N)
    w8 = jnp.where(wv, packing.extract_elements(w_words, jnp.where(wv, n * g.N + k2, 0), g.bw, 1), 0)
    return x8, w8


def _quirk_masks(g: Geometry, leftover, quad_pos):
    """Per neuron (numpy for a static configuration, traced otherwise): (lost, wrong, kappa_row0).

    lost (§9.2 b): quantised 8-bit output, 2-bit weights, 8/4-bit input: the leftover neuron never uses its
    weights (its accumulator is the bias plus the scalar tail); wrong (§9.4): 2-bit in, 2-bit out, 4-bit
    weights: elements 8..15 of each 16-element step of neurons 3, 4 of a quad use the weight rows of neurons
    1, 2; kappa_row0 (§9.2 a): the leftover neuron reads kappa[0] / lambda[0]."""
    library = g.library != 0
    quantized = g.bo != 32
    lost = library & quantized & leftover & (g.bw == 2) & (g.bi != 2)
    wrong = library & (g.bo == 2) & (g.bi == 2) & (g.bw == 4) & (quad_pos >= 2)
    return lost, wrong, library & quantized & leftover


def _requant_neurons(g: Geometry, acc, p: Params, kidx, bn_bits: int, bn_split=None):
    """Quantised outputs of the int32 accumulators ``acc`` (..., M) with the kappa / lambda rows ``kidx``
    (``bn_split``: ``LinearConfig.bn_split``)."""
    bits = jnp.where(g.bo != 32, g.bo, 8)
    lo_b, hi_b = quant.type_bounds(bits, g.so)
    kappa, lam = (p.kappa, p.lam) if kidx is None else (jnp.asarray(p.kappa)[kidx], jnp.asarray(p.lam)[kidx])
    return quant.requant(acc, relu=g.relu, bn=g.bn, kappa=kappa, lam=lam, out_mult=p.out_mult,
                         out_shift=p.out_shift, lo=lo_b, hi=hi_b, bn_bits=bn_bits, bn_split=bn_split)


def _values(g: Geometry, x8, w8, p: Params, bk: Bucket, bn_bits: int = 32):
    """Output values (M,) for one input vector x8 (N,), weights w8 (M, N); int32 accumulators for bo = 32."""
    quantized = g.bo != 32
    k = jnp.arange(bk.N)
    n = jnp.arange(bk.M)
    vec_end = (g.N // 16) * 16  # vector part of the 16-element-step kernels (both quirks have min(bi,bw) = 2)
    hi = (k < vec_end) & ((k & 15) >= 8)
    lo = (k < vec_end) & ~hi
    tail = k >= vec_end
    parts = jnp.stack([jnp.where(lo, x8, 0), jnp.where(hi, x8, 0), jnp.where(tail, x8, 0)])
    acc_lo, acc_hi, acc_tail = _engine.exact_int_matmul(parts, w8.T)  # (3, M)
    lost, wrong, row0 = _quirk_masks(g, *_neuron_roles(g, bk.M, bk.cores))
    hi_part = jnp.where(wrong, acc_hi[jnp.maximum(n - 2, 0)], acc_hi)
    assert p.bias is not None  # the packed path always passes a bias vector (zeros without one)
    acc = jnp.where(lost, acc_tail, acc_lo + hi_part + acc_tail) + p.bias
    q = _requant_neurons(g, acc, p, jnp.where(row0, 0, n), bn_bits)
    return jnp.where(quantized, q, acc)


def _pack_output(g: Geometry, vals, bk: Bucket):
    n = jnp.arange(bk.M)
    return _engine.scatter_pack(vals, n, n < g.M, g.bo, bk.out_words)


def _packed(g: Geometry, x_words, w_words, p: Params, bk: Bucket):
    x8, w8 = _unpack_inputs(g, x_words, w_words, bk)
    return _pack_output(g, _values(g, x8, w8, p, bk), bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _packed_cases(g, x_words, w_words, p, bk):
    """Every argument batched: one call per configuration (the golden runner's shared compiled function)."""
    return jax.vmap(_packed, in_axes=(0, 0, 0, 0, None))(g, x_words, w_words, p, bk)


@functools.partial(jax.jit, static_argnames=("bk", "bn_bits"))
def _values_batch(g, x, w, p, bk, bn_bits=32):
    return jax.vmap(_values, in_axes=(None, 0, None, None, None, None))(g, x, w, p, bk, bn_bits)


@functools.partial(jax.jit, static_argnames=("bk",))
def _values_cases(g, x, w, p, bk):
    return jax.vmap(_values, in_axes=(0, 0, 0, 0, None))(g, x, w, p, bk)


def _static_roles(cfg: LinearConfig, cluster: Cluster):
    """numpy twin of ``_neuron_roles`` for a static configuration, over every core of ``cluster``:
    (leftover (M,) bool, quad_pos (M,) int)."""
    M, nc = cfg.M, cluster.num_cores
    sb = _split_bits(cfg)
    s0, e0 = split.linear_split(0, M, nc, sb)
    lft = (e0 - s0) & 1 if cfg.out_type.bits in (8, 32) else 0
    leftover = np.zeros(M, bool)
    quad_pos = np.zeros(M, np.int32)
    for core in range(nc):
        s, e = split.linear_split(core, M, nc, sb)
        left_at = s + 2 * (max(e - lft - s + 1, 0) // 2)
        if lft and e > s and left_at < M:
            leftover[left_at] = True
        quad_pos[s:e] = (np.arange(s, e) - s) & 3
    return leftover, quad_pos


def _fast_accumulate(x8, w8, p: Params, cfg: LinearConfig, lost, wrong):
    """int32 accumulators (B, M) for a static configuration: one exact GEMM (chunked by the operands' product
    bound) where no quirk applies; the §9.4 split of each 16-element step and the §9.2 b tail only for the
    variants and neurons they affect (``lost`` / ``wrong`` static masks)."""
    N, M = cfg.N, cfg.M
    mp = _engine.max_abs_product(cfg.in_type.bits, cfg.in_type.signed, cfg.w_type.bits, True)
    prepared = w8 if isinstance(w8, Weights) else None
    w8 = jnp.asarray(prepared.w, jnp.int32) if prepared is not None else w8

    def dot(a, w):
        return _engine.exact_int_matmul_bounded(a, w.T, mp)

    vec_end = (N // 16) * 16
    if not wrong.any() and int8_form():  # x lies within cfg.in_type (<= 8 bits): one exact int8 GEMM
        it = cfg.in_type
        acc = _engine.int8_matmul(x8, w8 if prepared is None else prepared.w, _engine.int8_offset((it.bits, it.signed)),
                                  None if prepared is None else prepared.total)
    elif wrong.any():  # elements 8..15 of every 16-element step apart: they use another row for some neurons
        B, steps = x8.shape[0], vec_end // 16
        xs = x8[:, :vec_end].reshape(B, steps, 2, 8)
        ws = w8[:, :vec_end].reshape(M, steps, 2, 8)
        acc = dot(jnp.concatenate([xs[:, :, 0].reshape(B, steps * 8), x8[:, vec_end:]], axis=1),
                  jnp.concatenate([ws[:, :, 0].reshape(M, steps * 8), w8[:, vec_end:]], axis=1))
        acc_hi = dot(xs[:, :, 1].reshape(B, steps * 8), ws[:, :, 1].reshape(M, steps * 8))
        n = np.arange(M)
        acc = acc + acc_hi[:, np.where(wrong, np.maximum(n - 2, 0), n)]
    else:
        acc = dot(x8, w8)
    if lost.any():
        tail = dot(x8[:, vec_end:], w8[:, vec_end:]) if vec_end < N else jnp.zeros_like(acc)
        acc = jnp.where(lost, tail, acc)
    return acc + p.bias if cfg.bias else acc


class Weights(NamedTuple):
    """A linear layer's weights prepared once (per network, on the host: ``prepare_weights``): ``w`` (M, N) int8
    (the int8 form) or int32 (elsewhere), ``total`` int32 (M,): each neuron's sum of weights (the int8 form's
    offset share)."""

    w: Any
    total: Any


def int8_form() -> bool:
    """Whether the value path's accumulators come from one int8 x int8 -> int32 GEMM (``_engine.int8_matmul``):
    on the CPU backend, whose YNNPACK VNNI kernels take it. Measured (2-core AVX-512 VNNI EPYC, same run, jax
    0.10.2), against the chunked float32 GEMMs: DroNet's 6272 -> 2 classifier 0.108 vs 0.229 ms at batch 16
    (0.095 vs 0.149 at 4), 1024 -> 1000 at batch 4 0.81 vs 5.65 ms; in the network the chunks' padding and
    transposition also took the fused producers (the residual sum and two requantisations) with them."""
    return jax.default_backend() == "cpu"


def prepare_weights(w, cfg: LinearConfig) -> Weights:
    """The weights ``w`` (M, N) ints (host, numpy) prepared once for ``accumulate``: int8 where ``int8_form``,
    else int32, plus each neuron's weight sum. Raises for a wrong shape or weights outside int8."""
    w = _engine.int8_weights(w, (cfg.M, cfg.N), "(M, N)", cfg.w_type)
    return Weights(w.astype(np.int8 if int8_form() else np.int32), w.sum(axis=1).astype(np.int32))


def accumulate(x, w, bias, cfg: LinearConfig, x_type=None):
    """Value-path accumulators, public entry: int32 (batch, M) = x (batch, N) @ w (M, N).T + bias (M,) or None,
    wrap-around int32 (the ideal arithmetic, no library quirks). Traceable (``jit`` / ``vmap``).

    ``x_type``: the (bits, signed) pair (ints or traced int32 scalars) of the <= 8-bit type x's values lie in
    (the value path): then, where ``int8_form``, one int8 GEMM of ``x - offset`` (``_engine.int8_offset``: 128 for
    u8, else 0) plus the offset's share. None (or off the CPU): one exact float32 GEMM per reduction chunk sized
    by the product bound of ``cfg.in_type`` x ``cfg.w_type`` (pass the widest types the values may take).
    ``w`` may also be ``prepare_weights(w, cfg)``."""
    x = jnp.asarray(x, jnp.int32)
    if x_type is not None and int8_form():
        w8, total = (w.w, w.total) if isinstance(w, Weights) else (jnp.asarray(w, jnp.int32), None)
        acc = _engine.int8_matmul(x, w8, _engine.int8_offset(x_type), total)
    else:
        wi = w.w if isinstance(w, Weights) else w
        mp = _engine.max_abs_product(cfg.in_type.bits, cfg.in_type.signed, cfg.w_type.bits, True)
        acc = _engine.exact_int_matmul_bounded(x, jnp.asarray(wi, jnp.int32).T, mp)
    return acc if bias is None else acc + jnp.asarray(bias, jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_packed(x_words, w_words, p: Params, cfg: LinearConfig, cluster: Cluster):
    """Packed path for one static configuration (``x_words`` with or without a batch axis, kept): lanes
    unpacked with static shifts, ``_fast_lanes``, output packed with static shifts (int32 outputs: their bits)."""
    it, ot = cfg.in_type, cfg.out_type
    x8 = _engine.unpack_static(x_words if x_words.ndim == 2 else x_words[None], it.bits, it.signed, cfg.N)
    vals = _fast_lanes(x8, w_words, p, cfg, cluster)
    out = jax.lax.bitcast_convert_type(vals, jnp.uint32) if ot.bits == 32 else _engine.pack_static(vals, ot.bits)
    return out if x_words.ndim == 2 else out[0]


def _fast_lanes(x8, w_words, p: Params, cfg: LinearConfig, cluster: Cluster):
    """The packed path on lanes: x8 (batch, N) int32, the input's elements as the kernel reads them -> the M
    output elements (batch, M) int32 (the int32 accumulators for ``i32`` outputs). The quirk masks of the
    bucketed path evaluated for the real split in numpy (no work for variants they cannot affect)."""
    wt = cfg.w_type
    if isinstance(w_words, Weights):  # unpacked once (``prepare_weights`` of the image's values)
        w8 = w_words
    else:
        w8 = _engine.unpack_static(w_words, wt.bits, True, cfg.M * cfg.N).reshape(cfg.M, cfg.N)
    g = geometry(cfg, cluster)
    lost, wrong, row0 = _quirk_masks(g, *_static_roles(cfg, cluster))
    acc = _fast_accumulate(x8, w8, p, cfg, lost, wrong)
    if cfg.out_type.bits == 32:
        return acc
    kidx = np.where(row0, 0, np.arange(cfg.M)) if row0.any() else None
    return _requant_neurons(g, acc, p, kidx, cfg.bn_bits, cfg.bn_split)


# -------------------------------------------------------------------------------------- public API


def _as_params(params, cfg: LinearConfig) -> Params:
    """Validated parameters as int32 arrays (zeros where the kernel reads nothing: no bias, int32 output)."""
    params = _engine.as_params(params, Params)
    m = cfg.M

    def vec(name, v):  # host values stay numpy: validating them dispatches nothing
        a = v if isinstance(v, jax.Array) else np.asarray(v)
        if a.shape != (m,) or not jnp.issubdtype(a.dtype, jnp.integer):
            raise JaxpulpError(f"params.{name}: shape {a.shape} dtype {a.dtype}, expected int32 of shape ({m},)")
        _engine.check_int32_values(a, name)
        return _engine.host_int32(a)

    zeros = np.zeros((m,), np.int32)
    if cfg.quantized:
        for name in ("kappa", "lam"):
            if getattr(params, name) is None:
                raise JaxpulpError(f"params.{name}=None: expected an int32 array of shape ({m},) (the quantised "
                                   "kernels always receive kappa and lambda pointers)")
        kappa, lam = vec("kappa", params.kappa), vec("lam", params.lam)
    else:
        for name in ("kappa", "lam"):
            if getattr(params, name) is not None:
                raise JaxpulpError(f"params.{name} is given but cfg.out_type=i32: the int32-output kernels take "
                                   "no kappa / lambda; pass None")
        kappa = lam = zeros
    _engine.check_bias_flag(cfg.bias, params.bias, m)
    bias = vec("bias", params.bias) if cfg.bias else zeros
    return Params(kappa, lam, *_engine.requant_scalars(params), bias)


def run(x_words, w_words, params, *, cfg: LinearConfig, cluster: Cluster = GAP8):
    """Packed path. ``x_words``: the input vector (N elements packed, uint32 words, optionally a leading batch
    axis); ``w_words``: weights [M][N] packed as one stream; returns the packed output (M elements of the
    output type; int32 words for ``i32``), batch kept. Bits past neuron M of the last word are 0 (the library
    leaves phantom neurons there, see ``defined_mask``)."""
    check(cfg, cluster)
    p = _as_params(params, cfg)
    nx = _engine.words_for(cfg.N, cfg.in_type.bits)
    nw = _engine.words_for(cfg.M * cfg.N, cfg.w_type.bits)
    x = _engine.packed_words(x_words, nx, "x_words")
    w = _engine.packed_words(w_words, nw, "w_words", batch=False)
    return _fast_packed(x, w, p, cfg, cluster)  # static-shift packing: exactly words_for(M, out bits) words


def run_lanes(x, w_words, params, *, cfg: LinearConfig, cluster: Cluster = GAP8):
    """``run`` on lanes (see ``conv.run_lanes``): x (batch, N) int32 -> (batch, M) int32, the output elements
    (the int32 results themselves for ``i32`` outputs). ``w_words``: the weight image, or ``prepare_weights``
    of its values (``packing.unpack`` at ``cfg.w_type``, reshaped (M, N)): unpacked once, not on every call."""
    check(cfg, cluster)
    if isinstance(w_words, Weights):
        dt = jnp.int8 if int8_form() else jnp.int32
        if tuple(w_words.w.shape) != (cfg.M, cfg.N) or w_words.w.dtype != dt or tuple(w_words.total.shape) != (
                cfg.M,):
            raise JaxpulpError(f"w: prepared weights w {tuple(w_words.w.shape)} {w_words.w.dtype}, total "
                               f"{tuple(w_words.total.shape)}; expected w ({cfg.M}, {cfg.N}) {jnp.dtype(dt)} and "
                               f"total ({cfg.M},) (linear.prepare_weights for this configuration on this backend)")
        w = w_words
    else:
        w = _engine.packed_words(w_words, _engine.words_for(cfg.M * cfg.N, cfg.w_type.bits), "w_words", batch=False)
    x = jnp.asarray(_engine.lanes(x, cfg.N, "x", cfg.in_type, "the input vector's elements"))
    return _fast_lanes(x.reshape(x.shape[0], -1), w, _as_params(params, cfg), cfg, cluster)


def run_values(x, w, params, *, cfg: LinearConfig, cluster: Cluster = GAP8):
    """Value path: int tensors ``x`` (N,) or (batch, N) and ``w`` (M, N) -> int32 outputs (M,) or (batch, M);
    the intended arithmetic (``semantics="ideal"``)."""
    _engine.check_config(cfg, LinearConfig, "linear")
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = jnp.asarray(_engine.value_ints(x, "x", cfg.in_type))
    w = jnp.asarray(_engine.value_ints(w, "w", cfg.w_type))
    if x.ndim not in (1, 2) or x.shape[-1] != cfg.N:
        raise JaxpulpError(f"x: shape {x.shape}, expected ([batch,] {cfg.N})")
    if w.shape != (cfg.M, cfg.N):
        raise JaxpulpError(f"w: shape {w.shape}, expected ({cfg.M}, {cfg.N})")
    batched = x.ndim == 2
    xb = (x if batched else x[None]).astype(jnp.int32)
    out = _values_batch(geometry(cfg, cluster), xb, w.astype(jnp.int32), p, exact_bucket(cfg, cluster), cfg.bn_bits)
    return out if batched else out[0]


def cost(cfg: LinearConfig, cluster: Cluster = GAP8):
    """Per-core instruction counts and cycles (see ``jaxpulp.cost``)."""
    from jaxpulp.cost import kernel_cost

    return kernel_cost(cfg, cluster)


# ------------------------------------------------------------------------------------ reference twin


def reference(x, w, params, cfg: LinearConfig, cluster: Cluster = GAP8) -> np.ndarray:
    """Plain numpy model that follows the C kernels core by core (semantics.md §9): split per output width,
    neuron pairs (8/4-bit, int32 output) or quads (2-bit output), the odd chunk's leftover neuron, vector steps
    of 32/min(bi, bw) elements then the scalar tail, requant (§4). ``x`` (N,), ``w`` (M, N) int arrays;
    returns int32 (M,)."""
    check(cfg, cluster)
    _as_params(params, cfg)
    params = _engine.as_params(params, Params)
    x = np.asarray(_engine.value_ints(x, "x", cfg.in_type), np.int64)
    w = np.asarray(_engine.value_ints(w, "w", cfg.w_type), np.int64)
    if x.shape != (cfg.N,) or w.size != cfg.M * cfg.N:
        raise JaxpulpError(f"x, w: shapes {x.shape}, {w.shape}, expected ({cfg.N},) and ({cfg.M}, {cfg.N})")
    w = w.reshape(cfg.M, cfg.N)
    N, M = cfg.N, cfg.M
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    bias = None if params.bias is None else np.asarray(params.bias, np.int64)
    kappa = None if params.kappa is None else np.asarray(params.kappa, np.int64)
    lam = None if params.lam is None else np.asarray(params.lam, np.int64)
    library = cfg.semantics == "library"
    step = _step(cfg)
    vec_end = (N // step) * step
    out = np.zeros(M, np.int32)

    def dot(row, ks):
        return int(x[ks] @ w[row, ks]) if len(ks) else 0

    def neuron(n, leftover=False, wrong_row=None):
        """Compute neuron n (n >= M: the value lands outside the array and is dropped)."""
        if n >= M:
            return
        acc = 0 if bias is None else int(bias[n])
        lost = library and cfg.quantized and leftover and bw == 2 and bi in (8, 4)
        for k0 in range(0, vec_end, step):  # vector steps
            if lost:
                continue
            if wrong_row is None:
                acc += dot(n, np.arange(k0, k0 + step))
            else:  # 16-element step: the second half uses the weights of row ``wrong_row``
                acc += dot(n, np.arange(k0, k0 + 8)) + dot(wrong_row, np.arange(k0 + 8, k0 + 16))
        acc += dot(n, np.arange(vec_end, N))  # scalar tail
        acc = quant.wrap32(acc)
        if not cfg.quantized:
            out[n] = acc
            return
        kn = 0 if (library and leftover) else n
        out[n] = quant.requant_int(acc, relu=cfg.relu, bn=cfg.bn, kappa=kappa[kn], lam=lam[kn],
                                   out_mult=params.out_mult, out_shift=params.out_shift,
                                   lo=cfg.out_type.lo, hi=cfg.out_type.hi, bn_bits=cfg.bn_bits)

    if not library:
        for n in range(M):
            neuron(n)
        return out
    nc = cluster.num_cores
    width = None
    for core in range(nc):
        s, e = split.linear_split(core, M, nc, _split_bits(cfg))
        width = e - s if width is None else width
        if bo in (8, 32):  # pairs, then the leftover neuron of an odd chunk
            lft = width & 1
            i = s
            while i < e - lft:
                neuron(i)
                neuron(i + 1)
                i += 2
            if lft and e > s:
                neuron(i, leftover=True)
        elif bo == 4:  # pairs of nibbles
            for i in range(s, e, 2):
                neuron(i)
                neuron(i + 1)
        else:  # quads of crumbs
            wrong = bi == 2 and bw == 4
            for i in range(s, e, 4):
                neuron(i)
                neuron(i + 1)
                neuron(i + 2, wrong_row=i if wrong else None)
                neuron(i + 3, wrong_row=i + 1 if wrong else None)
    return out
