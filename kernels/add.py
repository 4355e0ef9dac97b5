"""Element-wise add: the requantising ``pulp_nn_add_<in1>_<in2>_<out>`` (216 variants, golden family ``add``)
and the legacy unsigned ``pulp_nn_add_u<b1>_u<b2>`` (6 variants, golden family ``add_legacy``), over two
H x W x C (HWC) tensors with their own element types (semantics.md §11).

Three ways to run one configuration (``cfg``: a frozen ``AddConfig`` or ``AddLegacyConfig``, static):

* ``run(x1_words, x2_words, params, cfg=..)``  packed path: uint32 memory images in and out, quirks included
  (large calls: ``_fast_packed``, one compile per configuration with static shifts; small calls: the bucketed
  path the golden runner uses, configuration as data; ``run(..., static=)`` chooses, same bits either way);
* ``run_values(x1, x2, params, cfg=..)``       value path: int tensors in and out, the intended arithmetic;
* ``reference(x1, x2, params, cfg)``           numpy loops that follow the C kernels core by core (the twin).

Arithmetic (int32, wrap-around, shifts by the low 5 bits of the uint16 amount, floor shifts):

* add: ``r_k = clip8_{s_k}((x_k*in_k_mul + in_k_add) >> in_k_shift)``, where ``clip8_s`` saturates to the
  **8-bit** range of the operand's signedness ([0, 255] or [-128, 127]) whatever its bit width
  (library_defects.md 14; the golden README's model keeps this clip, so ``semantics="ideal"`` keeps it too);
  ``s = r_1 + r_2``; with ``requant``: ``s = (s*out_mul + out_add) >> out_shift``; ``out = clip_out(s)``.
* legacy add: ``clipU((x1*int16(out_mult1) + x2*int16(out_mult2)) >> out_shift, bo)`` with the sum read as
  uint32 and a logical shift, ``bo = max(b1, b2)`` (the result is read back as int32 by ``p.clipur``).

Work split (through ``split.row_split``, traced twin ``cluster.run.row_split``): core c owns input rows
[r0, r1) and starts at element ``r0*W*C``.

* add: each core runs ``floor(rows*W*C / 4)`` steps of 4 elements; the 8/8/8 variants finish the remaining
  ``rows*W*C mod 4`` elements in a cleanup loop, every other variant leaves them **unwritten** (defect 14).
* legacy add: the loop runs from the core's first *row index* to ``floor(r1*W*C / 4)`` steps (rows and
  element groups mixed, defect 15): with several cores, cores after the first write 4*(floor(r1*W*C/4) - r0)
  elements from ``r0*W*C`` on, far past their rows and past the output buffer; with one core the last
  ``H*W*C mod 4`` elements stay unwritten.

Refused by ``check`` (``semantics="library"``; the ideal semantics computes every element, and lifts these):
``add-subbyte-tail`` (some core's element count is not a multiple of 4 in a variant with a sub-byte tensor:
elements never written), ``add-legacy-overrun`` (a core writes past the output buffer; in practice any call
with more than one busy core) and ``add-legacy-tail`` (elements never written). Always refused: channel
counts whose pixels are not whole bytes (``channel-multiple``) and uint16 extents.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing
from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _engine
from jaxpulp.kernels._engine import IntArrayLike, Scalar32
from jaxpulp.kernels.config import AddConfig, AddLegacyConfig

Config = AddConfig

_I32 = (-(1 << 31), (1 << 31) - 1, "int32 argument")
_U16 = (0, 0xFFFF, "uint16 argument, bits")
_M16 = (-(1 << 15), 0xFFFF, "uint16 argument used as int16")


class Params(NamedTuple):
    """Requantising add call data: per-input multiplier / offset (int32) and shift (bits, uint16 argument),
    and the output requantisation (read only with ``cfg.requant``)."""

    in1_mul: IntArrayLike = 1
    in1_add: IntArrayLike = 0
    in1_shift: IntArrayLike = 0
    in2_mul: IntArrayLike = 1
    in2_add: IntArrayLike = 0
    in2_shift: IntArrayLike = 0
    out_mul: IntArrayLike = 1
    out_add: IntArrayLike = 0
    out_shift: IntArrayLike = 0


class LegacyParams(NamedTuple):
    """Legacy add call data: ``out_mult1`` / ``out_mult2`` (uint16 arguments, used as int16), ``out_shift``
    (bits, uint16 argument)."""

    out_mult1: IntArrayLike = 1
    out_mult2: IntArrayLike = 1
    out_shift: IntArrayLike = 0


_RANGES = {
    Params: dict(in1_mul=_I32, in1_add=_I32, in1_shift=_U16, in2_mul=_I32, in2_add=_I32, in2_shift=_U16,
                 out_mul=_I32, out_add=_I32, out_shift=_U16),
    LegacyParams: dict(out_mult1=_M16, out_mult2=_M16, out_shift=_U16),
}


class Geometry(NamedTuple):
    """A configuration as int32 data (one compiled function serves many).

    Legend: ``H, W, C`` rows, columns, channels (elements) shared by the three tensors; ``b1, s1`` / ``b2, s2`` /
    ``bo, so`` bits and signedness (1 = signed) of input 1, input 2 and the output; ``requant`` out_requant_flag
    (0 for the legacy add); ``ncores`` cluster cores; ``library`` 1 = library quirks, 0 = ``semantics="ideal"``.
    """

    H: Scalar32
    W: Scalar32
    C: Scalar32
    b1: Scalar32
    s1: Scalar32
    b2: Scalar32
    s2: Scalar32
    bo: Scalar32
    so: Scalar32
    requant: Scalar32
    ncores: Scalar32
    library: Scalar32


class Bucket(NamedTuple):
    """Static extents: N elements per tensor; cores = core ids the work split is evaluated for."""

    N: int
    cores: int = cluster_run.MAX_CORES

    @property
    def words(self):
        return _engine.words_for(self.N, 8)


def _family(cfg) -> str:
    if isinstance(cfg, AddConfig):
        return "add"
    if isinstance(cfg, AddLegacyConfig):
        return "add_legacy"
    raise JaxpulpError(f"cfg={cfg!r}: expected an AddConfig or an AddLegacyConfig")


def _n(cfg) -> int:
    return cfg.H * cfg.W * cfg.C


def geometry(cfg, cluster: Cluster = GAP8) -> Geometry:
    t1, t2, to = cfg.in1_type, cfg.in2_type, cfg.out_type
    vals = (cfg.H, cfg.W, cfg.C, t1.bits, int(t1.signed), t2.bits, int(t2.signed), to.bits, int(to.signed),
            int(getattr(cfg, "requant", 0) != 0), cluster.num_cores, int(cfg.semantics == "library"))
    return Geometry(*(np.int32(v) for v in vals))


def _cores(clusters) -> int:
    return max([cluster_run.MAX_CORES] + [c.num_cores for c in clusters])


def exact_bucket(cfg, cluster: Cluster = GAP8) -> Bucket:
    return Bucket(_n(cfg), _cores([cluster]))


def shared_bucket(cfgs, clusters=()) -> Bucket:
    """One bucket that fits every configuration in ``cfgs`` run on ``clusters`` (N rounded up)."""
    return Bucket(_engine.round_up(max(_n(c) for c in cfgs)), _cores(clusters))


# ----------------------------------------------------------------------------------------------- check


def core_ranges(cfg, cluster: Cluster = GAP8) -> list[tuple[int, int]]:
    """The element range [e0, e1) each core writes under library semantics (e1 may pass H*W*C for the
    legacy add: out-of-bounds writes). Elements, in HWC stream order."""
    wc = cfg.W * cfg.C
    all8 = all(t.bits == 8 for t in (cfg.in1_type, cfg.in2_type, cfg.out_type))
    out = []
    for core in range(cluster.num_cores):
        r0, r1 = split.row_split(core, cfg.H, cluster.num_cores)
        if _family(cfg) == "add":
            cnt = (r1 - r0) * wc
            out.append((r0 * wc, r0 * wc + (cnt if all8 else cnt & ~3)))
        else:
            out.append((r0 * wc, r0 * wc + 4 * max(0, (r1 * wc) // 4 - r0)))
    return out


def written_mask(cfg, cluster: Cluster = GAP8) -> np.ndarray:
    """bool (H, W, C): the output elements the library writes (``semantics="library"``); False elements are
    never written (undefined). All True under ``semantics="ideal"``."""
    n = _n(cfg)
    m = np.zeros(n, bool)
    if cfg.semantics != "library":
        m[:] = True
    else:
        for e0, e1 in core_ranges(cfg, cluster):
            m[e0:min(e1, n)] = True
    return m.reshape(cfg.H, cfg.W, cfg.C)


def check(cfg, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule if the library does not define this call."""
    fam = _family(cfg)
    _engine.check_whole_byte_pixels(cfg, ("in1_type", "in2_type", "out_type"),
                                    "offsets each core by r0*W*(C*bits/8 rounded down) bytes, so tensors misalign")
    if max(cfg.H, cfg.W, cfg.C) >= 1 << 16:
        raise UnsupportedConfig("uint16-extent", f"H={cfg.H}, W={cfg.W}, C={cfg.C}: uint16 arguments, each must "
                                "be < 65536")
    if cfg.semantics != "library":
        return
    n = _n(cfg)
    ranges = core_ranges(cfg, cluster)
    if fam == "add":
        for core, (e0, e1) in enumerate(ranges):
            r0, r1 = split.row_split(core, cfg.H, cluster.num_cores)
            cnt = (r1 - r0) * cfg.W * cfg.C
            if e1 - e0 != cnt:
                raise UnsupportedConfig(
                    "add-subbyte-tail",
                    f"core {core} owns rows [{r0}, {r1}) = {cnt} elements, not a multiple of 4: {cfg.c_name} works "
                    f"in steps of 4 elements with no cleanup loop for sub-byte tensors, so the last {cnt - (e1 - e0)} "
                    "of them are never written (semantics.md §11.1, library_defects.md 14). Use H*W*C per core a "
                    "multiple of 4, 8-bit tensors, or semantics='ideal'")
        return
    for core, (e0, e1) in enumerate(ranges):
        if e1 > n:
            raise UnsupportedConfig(
                "add-legacy-overrun",
                f"core {core} of {cluster.num_cores} writes elements [{e0}, {e1}) of a {n}-element output: the loop "
                "runs from the core's first row index to floor(stop_row*W*C/4) steps of 4 (rows and element groups "
                "mixed), so it writes past the output buffer (semantics.md §11.2, library_defects.md 15). Run it "
                "on one core (Cluster(num_cores=1)) or use semantics='ideal'")
    covered = written_mask(cfg, cluster)
    if not covered.all():
        k = int(np.argmin(covered.reshape(-1)))
        raise UnsupportedConfig(
            "add-legacy-tail",
            f"{int((~covered).sum())} of {n} output elements (the first at element {k}) are never written: each "
            "core writes whole steps of 4 elements up to floor(stop_row*W*C/4) (semantics.md §11.2). Use H*W*C a "
            "multiple of 4 on one core, or semantics='ideal'")


# ---------------------------------------------------------------------------------------- fast paths


def _written(g: Geometry, bk: Bucket, legacy: bool):
    """bool (Nb,): elements the library writes (per-core ranges from the traced row split); all < n if ideal."""
    e = jnp.arange(bk.N, dtype=jnp.int32)
    n = g.H * g.W * g.C
    wc = g.W * g.C
    all8 = (g.b1 == 8) & (g.b2 == 8) & (g.bo == 8)

    def per_core(core):
        r0, r1 = cluster_run.row_split(core, g.H, g.ncores)
        e0 = r0 * wc
        if legacy:
            cnt = 4 * jnp.maximum(0, jnp.right_shift(r1 * wc, 2) - r0)
        else:
            cnt = (r1 - r0) * wc
            cnt = jnp.where(all8, cnt, cnt & ~3)
        return (e >= e0) & (e < e0 + cnt)

    mine = cluster_run.over_cores(per_core, bk.cores).any(0)
    return jnp.where(g.library != 0, mine, True) & (e < n)


def _clip(v, bits, signed):
    half = jnp.left_shift(jnp.int32(1), bits - 1)
    return jnp.clip(v, jnp.where(signed != 0, -half, 0), jnp.where(signed != 0, half - 1, 2 * half - 1))


def _sh(v):
    return jnp.asarray(v, jnp.int32) & 31


def _add_arith(g: Geometry, x1, x2, p: Params):
    """The requantising add's arithmetic on values (element-wise; ``g`` traced or numpy scalars)."""
    r1 = _clip(jnp.right_shift(x1 * p.in1_mul + p.in1_add, _sh(p.in1_shift)), 8, g.s1)
    r2 = _clip(jnp.right_shift(x2 * p.in2_mul + p.in2_add, _sh(p.in2_shift)), 8, g.s2)
    s = r1 + r2
    if isinstance(g.requant, np.integer):  # static configuration: only the requant the kernel does
        s = jnp.right_shift(s * p.out_mul + p.out_add, _sh(p.out_shift)) if g.requant else s
    else:
        s = jnp.where(g.requant != 0, jnp.right_shift(s * p.out_mul + p.out_add, _sh(p.out_shift)), s)
    return _clip(s, g.bo, g.so)


def _add_values(g: Geometry, x1, x2, p: Params, bk: Bucket):
    """Requantising add on values (Nb,) -> (out (Nb,), written (Nb,))."""
    return _add_arith(g, x1, x2, p), _written(g, bk, False)


def _int16(v):
    v = jnp.asarray(v, jnp.int32) & 0xFFFF
    return jnp.where(v >= 0x8000, v - 0x10000, v)


def _legacy_arith(g: Geometry, x1, x2, p: LegacyParams):
    """The legacy add's arithmetic on values: uint32 sum, logical shift, unsigned clip."""
    img = x1 * _int16(p.out_mult1) + x2 * _int16(p.out_mult2)
    u = jax.lax.bitcast_convert_type(img, jnp.uint32) >> _sh(p.out_shift).astype(jnp.uint32)
    v = jax.lax.bitcast_convert_type(u, jnp.int32)
    return _clip(v, g.bo, 0)


def _legacy_values(g: Geometry, x1, x2, p: LegacyParams, bk: Bucket):
    """Legacy add on values (Nb,) -> (out (Nb,), written (Nb,))."""
    return _legacy_arith(g, x1, x2, p), _written(g, bk, True)


def _unpack(g: Geometry, words, bits, signed, bk: Bucket):
    e = jnp.arange(bk.N, dtype=jnp.int32)
    valid = e < g.H * g.W * g.C
    return jnp.where(valid, packing.extract_elements(words, jnp.where(valid, e, 0), bits, signed), 0)


def _packed(g: Geometry, x1w, x2w, p, bk: Bucket):
    x1 = _unpack(g, x1w, g.b1, g.s1, bk)
    x2 = _unpack(g, x2w, g.b2, g.s2, bk)
    legacy = isinstance(p, LegacyParams)
    vals, written = (_legacy_values if legacy else _add_values)(g, x1, x2, p, bk)
    return _engine.scatter_pack(vals, jnp.arange(bk.N, dtype=jnp.int32), written, g.bo, bk.words)


def _values(g: Geometry, x1, x2, p, bk: Bucket):
    return (_legacy_values if isinstance(p, LegacyParams) else _add_values)(g, x1, x2, p, bk)[0]


@functools.partial(jax.jit, static_argnames=("bk", "axes"))
def _packed_batch(g, x1w, x2w, p, bk, axes):
    return jax.vmap(_packed, in_axes=(None, axes[0], axes[1], None, None))(g, x1w, x2w, p, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _packed_cases(g, x1w, x2w, p, bk):
    return jax.vmap(_packed, in_axes=(0, 0, 0, 0, None))(g, x1w, x2w, p, bk)


@functools.partial(jax.jit, static_argnames=("bk", "axes"))
def _values_batch(g, x1, x2, p, bk, axes):
    return jax.vmap(_values, in_axes=(None, axes[0], axes[1], None, None))(g, x1, x2, p, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _values_cases(g, x1, x2, p, bk):
    return jax.vmap(_values, in_axes=(0, 0, 0, 0, None))(g, x1, x2, p, bk)


def values(x1, x2, params, *, cfg, in1_type=None, in2_type=None, out_type=None, cluster: Cluster = GAP8):
    """Value-path add, public entry: element-wise on int tensors of any (equal or broadcasting) shape -> int32, the
    ideal arithmetic of ``cfg`` (every element computed). ``in1_type`` / ``in2_type`` / ``out_type``: (bits,
    signed), which may be traced (precision as data), default the configuration's types. ``params``: ``Params``
    (requantising add) or ``LegacyParams``. Traceable (``jit`` / ``vmap``)."""
    _family(cfg)
    in1_type, in2_type = _engine.type_pair(in1_type, "in1_type"), _engine.type_pair(in2_type, "in2_type")
    out_type = _engine.type_pair(out_type, "out_type")
    x1 = _engine.values_ints(x1, "x1", _engine.pair_qtype(in1_type, cfg.in1_type))
    x2 = _engine.values_ints(x2, "x2", _engine.pair_qtype(in2_type, cfg.in2_type))
    params = _as_params(params, cfg)
    g = geometry(cfg, cluster)
    types = {}
    for (bits_f, sign_f), t in ((("b1", "s1"), in1_type), (("b2", "s2"), in2_type), (("bo", "so"), out_type)):
        if t is not None:
            types.update({bits_f: jnp.asarray(t[0], jnp.int32), sign_f: jnp.asarray(t[1], jnp.int32)})
    g = g._replace(**types)
    a, b = jnp.asarray(x1, jnp.int32), jnp.asarray(x2, jnp.int32)
    if isinstance(params, LegacyParams):
        return _legacy_arith(g, a, b, LegacyParams(*(jnp.asarray(v, jnp.int32) for v in params)))
    return _add_arith(g, a, b, Params(*(jnp.asarray(v, jnp.int32) for v in params)))


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_packed(x1w, x2w, p, cfg, cluster: Cluster):
    """Packed path for one static configuration (``run`` on large calls): both images unpacked with static
    shifts (each keeps its own batch axis, or none), ``_fast_lanes``, output packed with static shifts."""
    n = _n(cfg)
    t1, t2 = cfg.in1_type, cfg.in2_type
    x1 = _engine.unpack_static(x1w, t1.bits, t1.signed, n)
    x2 = _engine.unpack_static(x2w, t2.bits, t2.signed, n)
    return _engine.pack_static(_fast_lanes(x1, x2, p, cfg, cluster), cfg.out_type.bits)


def _fast_lanes(x1, x2, p, cfg, cluster: Cluster):
    """The packed path on lanes: the two inputs' elements ((batch,) n or (batch, H, W, C) int32 each) -> the
    output elements in the same shape: the
    same arithmetic as the bucketed path, the elements the library never writes (``written_mask``) as 0 like
    there."""
    g = geometry(cfg, cluster)
    vals = (_legacy_arith if isinstance(p, LegacyParams) else _add_arith)(g, x1, x2, p)
    written = written_mask(cfg, cluster).reshape(vals.shape[1:] if vals.ndim == 4 else -1)
    if not written.all():
        vals = jnp.where(written, vals, 0)
    return vals


# -------------------------------------------------------------------------------------- public API


def _as_params(params, cfg):
    cls = Params if _family(cfg) == "add" else LegacyParams
    if params is None:
        raise JaxpulpError(f"params=None: expected a {cls.__name__}")
    if not isinstance(params, (Params, LegacyParams)):
        params = _engine.as_params(params, cls)
    if not isinstance(params, cls):
        raise JaxpulpError(f"params: a {type(params).__name__}, expected a {cls.__name__} for {cfg.c_name}")
    return cls(*(_engine.int_scalar(v, k, *_RANGES[cls][k]) for k, v in params._asdict().items()))


def _batch_axes(a, b, name_a, name_b):
    if a.ndim == 2 and b.ndim == 2 and a.shape[0] != b.shape[0]:
        raise JaxpulpError(f"{name_a} batch {a.shape[0]} != {name_b} batch {b.shape[0]}: expected equal batch sizes "
                           "(or one operand without a batch axis)")
    return (0 if a.ndim == 2 else None, 0 if b.ndim == 2 else None)


STATIC_MIN_ELEMENTS = 1 << 14
"""``run`` takes the static path (one compile per configuration) when the call computes at least this many
output elements (batch included), the bucketed path (one compile per rounded element count) below it."""


def run(x1_words, x2_words, params, *, cfg, cluster: Cluster = GAP8, return_cost: bool = False,
        static: bool | None = None):
    """Packed path. ``x1_words`` / ``x2_words``: the two HWC input images (uint32 words, each optionally with a
    leading batch axis); ``params``: ``Params`` (add) or ``LegacyParams`` (legacy add). Returns the packed HWC
    output image (batched if either input is). With ``return_cost=True``: ``Costed(output, cost)``.

    ``static``: True compiles one function for this configuration (static shifts: the fast path), False one per
    rounded element count where precisions, flags and core count are data (``shared_bucket``: many small
    configurations share a compile); None (default) picks the static path when the call computes at least
    ``STATIC_MIN_ELEMENTS`` elements. Both return the same bits."""
    check(cfg, cluster)
    p = _as_params(params, cfg)
    n = _n(cfg)
    x1 = _engine.packed_words(x1_words, _engine.words_for(n, cfg.in1_type.bits), "x1_words")
    x2 = _engine.packed_words(x2_words, _engine.words_for(n, cfg.in2_type.bits), "x2_words")
    axes = _batch_axes(x1, x2, "x1_words", "x2_words")
    batch = max(x1.shape[0] if x1.ndim == 2 else 1, x2.shape[0] if x2.ndim == 2 else 1)
    if static is None:
        static = batch * n >= STATIC_MIN_ELEMENTS
    if static:
        out = _fast_packed(x1, x2, p, cfg, cluster)
        return _engine.costed(out, cfg, cluster, return_cost)
    bk = shared_bucket([cfg], [cluster])  # rounded extent: nearby shapes share one compiled function
    x1 = jnp.pad(x1, [(0, 0)] * (x1.ndim - 1) + [(0, bk.words - x1.shape[-1])])
    x2 = jnp.pad(x2, [(0, 0)] * (x2.ndim - 1) + [(0, bk.words - x2.shape[-1])])
    batched = axes != (None, None)
    if not batched:
        x1, axes = x1[None], (0, None)
    out = _packed_batch(geometry(cfg, cluster), x1, x2, p, bk, axes)[:, :_engine.words_for(n, cfg.out_type.bits)]
    out = out if batched else out[0]
    return _engine.costed(out, cfg, cluster, return_cost)


def run_lanes(x1, x2, params, *, cfg, cluster: Cluster = GAP8):
    """``run`` on lanes (see ``conv.run_lanes``): the two inputs' elements ((batch, H*W*C) or (batch, H, W, C)
    int32 each) -> the output image's elements, int32 (batch, H, W, C)."""
    check(cfg, cluster)
    n = _n(cfg)
    x1, x2 = (jnp.asarray(_engine.lanes(v, n, name, q, f"{name}'s image elements"))
              for v, name, q in ((x1, "x1", cfg.in1_type), (x2, "x2", cfg.in2_type)))
    x1, x2 = (v.reshape(v.shape[0], cfg.H, cfg.W, cfg.C) for v in (x1, x2))
    return _fast_lanes(x1, x2, _as_params(params, cfg), cfg, cluster)


def run_values(x1, x2, params, *, cfg, cluster: Cluster = GAP8):
    """Value path: int tensors ``x1``, ``x2`` (H, W, C) or (batch, H, W, C) -> int32 (H, W, C) outputs, the
    intended arithmetic (``semantics="ideal"``: every element computed)."""
    _family(cfg)
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    p = _as_params(params, cfg)
    shape = (cfg.H, cfg.W, cfg.C)
    xs = []
    for name, x, q in (("x1", x1, cfg.in1_type), ("x2", x2, cfg.in2_type)):
        x = jnp.asarray(_engine.value_ints(x, name, q))
        if x.shape[-3:] != shape or x.ndim not in (3, 4) or not jnp.issubdtype(x.dtype, jnp.integer):
            raise JaxpulpError(f"{name}: shape {x.shape} dtype {x.dtype}, expected integers of shape "
                               f"([batch,] {cfg.H}, {cfg.W}, {cfg.C})")
        xs.append(x.reshape(x.shape[:-3] + (-1,)).astype(jnp.int32))
    axes = _batch_axes(xs[0], xs[1], "x1", "x2")
    batched = axes != (None, None)
    a, b = xs
    if not batched:
        a, axes = a[None], (0, None)
    bk = shared_bucket([cfg], [cluster])  # rounded extent: nearby shapes share one compiled function
    n = _n(cfg)
    a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, bk.N - n)])
    b = jnp.pad(b, [(0, 0)] * (b.ndim - 1) + [(0, bk.N - n)])
    out = _values_batch(geometry(cfg, cluster), a, b, p, bk, axes)
    out = out[:, :n].reshape(out.shape[:1] + shape)
    return out if batched else out[0]


def cost(cfg, cluster: Cluster = GAP8):
    """Per-core instruction counts and cycles (see ``jaxpulp.cost``)."""
    from jaxpulp.cost import kernel_cost

    return kernel_cost(cfg, cluster)


# ------------------------------------------------------------------------------------ reference twin


def _wrap(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _clip_int(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def reference(x1, x2, params, cfg, cluster: Cluster = GAP8) -> np.ndarray:
    """Plain numpy model that follows the C kernels core by core (semantics.md §11): each core's steps of 4
    elements from ``r0*W*C`` (plus the 8/8/8 cleanup loop), the legacy loop bound included. ``x1``, ``x2``
    (H, W, C) int values; returns int32 (H, W, C)."""
    fam = _family(cfg)
    check(cfg, cluster)
    p = _as_params(params, cfg)
    p = type(p)(*(int(v) for v in p))
    n = _n(cfg)
    xs = []
    for name, x, q in (("x1", x1, cfg.in1_type), ("x2", x2, cfg.in2_type)):
        x = np.asarray(_engine.value_ints(x, name, q), np.int64)
        if x.shape != (cfg.H, cfg.W, cfg.C):
            raise JaxpulpError(f"{name}: shape {x.shape}, expected ({cfg.H}, {cfg.W}, {cfg.C})")
        xs.append(x.reshape(-1))
    a, b = xs
    ot = cfg.out_type

    def element(e):
        if fam == "add":
            r1 = _wrap(_wrap(int(a[e]) * p.in1_mul) + p.in1_add) >> (p.in1_shift & 31)
            r2 = _wrap(_wrap(int(b[e]) * p.in2_mul) + p.in2_add) >> (p.in2_shift & 31)
            s = (_clip_int(r1, *((-128, 127) if cfg.in1_type.signed else (0, 255)))
                 + _clip_int(r2, *((-128, 127) if cfg.in2_type.signed else (0, 255))))
            if cfg.requant:
                s = _wrap(_wrap(s * p.out_mul) + p.out_add) >> (p.out_shift & 31)
            return _clip_int(s, ot.lo, ot.hi)

        def i16(v):
            v &= 0xFFFF
            return v - 0x10000 if v >= 0x8000 else v

        img = (int(a[e]) * i16(p.out_mult1) + int(b[e]) * i16(p.out_mult2)) & 0xFFFFFFFF
        return _clip_int(_wrap(img >> (p.out_shift & 31)), ot.lo, ot.hi)

    out = np.zeros(n, np.int64)
    if cfg.semantics != "library":
        for e in range(n):
            out[e] = element(e)
    else:
        for e0, e1 in core_ranges(cfg, cluster):
            for e in range(e0, min(e1, n)):  # check() guarantees e1 <= n here
                out[e] = element(e)
    return out.reshape(cfg.H, cfg.W, cfg.C).astype(np.int32)
