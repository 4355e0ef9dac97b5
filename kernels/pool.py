"""Pooling: max pooling ``pulp_nn_maxpool_<t>`` (6 variants) and average pooling ``pulp_nn_avgpool_<in>_<out>``
(36 variants) over an H x W x C (HWC) image (semantics.md §10). Golden families ``maxpool`` and ``avgpool``.

Three ways to run one configuration (``cfg``: a frozen ``MaxPoolConfig`` or ``AvgPoolConfig``, static):

* ``run(x_words, params, cfg=..)``   packed path: uint32 memory images in and out, the library's deterministic
  quirks included. Max pooling works **in place**: it returns ``MaxPoolResult(out, x)``, the output image and
  the final content of the input buffer (the kernel overwrites it; golden vectors declare ``x`` ``inout``).
  Large calls take the static path (``_fast_max`` / ``_fast_avg``: one compile per configuration, static
  shifts and strided window slices), small ones the bucketed path the golden runner uses (configuration as
  data, one compile per rounded shape); ``run(..., static=)`` chooses explicitly, both return the same bits;
* ``run_values(x, params, cfg=..)``  value path: int tensors in and out, the intended arithmetic;
* ``reference(x, params, cfg)``      numpy loops that follow the C kernels core by core (the twin).

Library behaviour reproduced (``semantics="library"``):

* max pooling (library_defects.md 1, 13): pass 1 (x, parallel over input rows, ``split.row_split``) overwrites
  pixel ``xo`` of every input row with the max over its window, in increasing ``xo``; a window whose start
  ``xo*sx - pl`` is negative starts at column ``xo`` itself (not at 0), and windows reaching left of ``xo``
  read columns this pass already overwrote. After the barrier pass 2 (y, output rows,
  ``split.maxpool_out_split``) takes the max over rows ``[max(0, yo*sy - pt), min(yo*sy - pt + Kh, H))`` of
  the first ``Wo`` columns. The sub-byte compare helpers store through an uninitialised pointer; the golden
  vectors aimed it at a scratch word, and jaxpulp models the intended element-wise max of the fields.
* average pooling (defects 2, 12): output rows split by ``split.avgpool_split``; window rows
  ``[max(0, yo*sy - pb), min(yo*sy - pt + Kh, H))`` and columns ``[max(0, xo*sx - pl), min(xo*sx - pr + Kw,
  W))`` (bottom / right padding where top / left are meant); the sum is uint32 for unsigned input and int32
  for signed input; without requant ``sum / (Kh*Kw)`` is an *unsigned* division by the full kernel area
  (negative sums give huge quotients); with requant ``lambda' = lambda / (Kh*Kw)`` is unsigned too, and for
  unsigned input ``(sum*lambda' + out_add) >> out_shift`` is evaluated in uint32 with a logical shift (int32
  and arithmetic shift for signed input); the result is read as int32 and clipped to the output type. The
  unsigned kernels call ``bitext_u``, which the library never defines; like the golden vectors, jaxpulp takes
  it as the zero-extending bit extract (``p.extractu``). Shift amounts are taken mod 32.

``semantics="ideal"``: max over the clipped window, input left untouched; average with the symmetric window,
signed truncating divisions and an arithmetic shift (the golden README's model behind ``matches_ideal``).

Refused by ``check`` (``UnsupportedConfig``): channel counts whose pixels are not whole bytes, uint16 extents;
max pooling (library) with ``Wo > W`` (pass 1 writes into the next row) or a window starting past the image;
max pooling (ideal) with an empty window.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing
from jaxpulp.cluster import run as cluster_run
from jaxpulp.cluster import split
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _engine, _golden
from jaxpulp.kernels.config import AvgPoolConfig, MaxPoolConfig, PoolConfig

Config = PoolConfig
CONFIGS = {"maxpool": MaxPoolConfig, "avgpool": AvgPoolConfig}
GOLDEN_FAMILIES = tuple(CONFIGS)

_NEG = np.int32(-(1 << 31))


class AvgPoolParams(NamedTuple):
    """Average pooling call data (read only when ``cfg.requant``): ``lam`` (the int32 ``lambda`` argument,
    divided by Kh*Kw inside the kernel), ``out_shift`` (bits, uint16 argument), ``out_add`` (int32)."""

    lam: int | jax.Array = 1
    out_shift: int | jax.Array = 0
    out_add: int | jax.Array = 0


Params = AvgPoolParams


class MaxPoolResult(NamedTuple):
    """Max pooling result: ``out`` (the output) and ``x`` (the final content of the input buffer, which the
    kernel overwrites in place; unchanged under ``semantics="ideal"``). Packed words or values."""

    out: jax.Array
    x: jax.Array


class Geometry(NamedTuple):
    """A configuration as int32 data (one compiled function serves many)."""

    H: jax.Array
    W: jax.Array
    C: jax.Array
    Kh: jax.Array
    Kw: jax.Array
    sy: jax.Array
    sx: jax.Array
    pt: jax.Array
    pb: jax.Array
    pl: jax.Array
    pr: jax.Array
    Ho: jax.Array
    Wo: jax.Array
    bi: jax.Array
    si: jax.Array
    bo: jax.Array
    so: jax.Array
    requant: jax.Array
    ncores: jax.Array
    library: jax.Array


class Bucket(NamedTuple):
    """Static extents (elements) the compiled function is traced for (W covers Wo as well); cores = core ids
    the work split is evaluated for (at least the cluster's core count)."""

    H: int
    W: int
    C: int
    Ho: int
    Wo: int
    cores: int = cluster_run.MAX_CORES
    K: int = 0  # window extent bound (max Kh, Kw); 0 = unknown (the image extents)
    scan: bool = True  # max pooling pass 1 must replay the in-place column updates in order (see _needs_scan)

    @property
    def x_words(self):
        return _engine.words_for(self.H * self.W * self.C, 8)

    @property
    def out_words(self):
        return _engine.words_for(self.Ho * self.Wo * self.C, 8)


def _family(cfg) -> str:
    if isinstance(cfg, MaxPoolConfig):
        return "maxpool"
    if isinstance(cfg, AvgPoolConfig):
        return "avgpool"
    raise JaxpulpError(f"cfg={cfg!r}: expected a MaxPoolConfig or an AvgPoolConfig")


def geometry(cfg: PoolConfig, cluster: Cluster = GAP8) -> Geometry:
    t, b, l, r = cfg.pad
    vals = (cfg.H, cfg.W, cfg.C, cfg.Kh, cfg.Kw, cfg.stride[0], cfg.stride[1], t, b, l, r, cfg.Ho, cfg.Wo,
            cfg.in_type.bits, int(cfg.in_type.signed), cfg.out_type.bits, int(cfg.out_type.signed),
            int(getattr(cfg, "requant", 0) != 0), cluster.num_cores, int(cfg.semantics == "library"))
    return Geometry(*(np.int32(v) for v in vals))


def _cores(clusters) -> int:
    return max([cluster_run.MAX_CORES] + [c.num_cores for c in clusters])


def _needs_scan(cfg: PoolConfig) -> bool:
    """Max pooling pass 1 overwrites column xo of each row in place, left to right (§10.1). A window reads an
    already overwritten column only if it starts left of its own output column: xo*sx - pl < xo for some
    xo >= 1, i.e. sx - 1 < pl (library semantics, Wo >= 2). Otherwise every window sees the original row."""
    return (_family(cfg) == "maxpool" and cfg.semantics == "library" and cfg.Wo >= 2
            and cfg.stride[1] - 1 < cfg.pad[2])


def exact_bucket(cfg: PoolConfig, cluster: Cluster = GAP8) -> Bucket:
    return Bucket(cfg.H, max(cfg.W, cfg.Wo), cfg.C, cfg.Ho, cfg.Wo, _cores([cluster]), max(cfg.Kh, cfg.Kw),
                  _needs_scan(cfg))


def shared_bucket(cfgs, clusters=()) -> Bucket:
    """One bucket that fits every configuration in ``cfgs`` run on ``clusters`` (extents rounded up to powers
    of two)."""
    r = _engine.round_up
    return Bucket(r(max(c.H for c in cfgs)), r(max(max(c.W, c.Wo) for c in cfgs)), r(max(c.C for c in cfgs)),
                  r(max(c.Ho for c in cfgs)), r(max(c.Wo for c in cfgs)), _cores(clusters),
                  r(max(max(c.Kh, c.Kw) for c in cfgs)), any(_needs_scan(c) for c in cfgs))


# ----------------------------------------------------------------------------------------------- check


def check(cfg: PoolConfig, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule if the library does not define this call."""
    fam = _family(cfg)
    for name in ("in_type", "out_type"):
        t = getattr(cfg, name)
        if (cfg.C * t.bits) % 8:
            raise UnsupportedConfig(
                "channel-multiple",
                f"C={cfg.C} with {name}={t}: a pixel must be whole bytes (C a multiple of {8 // t.bits}); the "
                "kernel addresses pixels as C*bits/8 bytes (rounded down), so channels are lost or misplaced "
                "(library_defects.md 16)")
    if max(cfg.H, cfg.W, cfg.C, cfg.Ho, cfg.Wo, cfg.Kh, cfg.Kw, *cfg.stride, *cfg.pad) >= 1 << 16:
        raise UnsupportedConfig("uint16-extent", f"cfg={cfg}: every dimension, kernel size, stride and padding "
                                "is a uint16 argument and must be < 65536")
    if fam == "avgpool":
        return  # every window is clipped to the image: all reads in bounds, every output written
    t, _, l, _ = cfg.pad
    sy, sx = cfg.stride
    if cfg.semantics == "library":
        if cfg.Wo > cfg.W:
            raise UnsupportedConfig(
                "maxpool-output-width",
                f"Wo={cfg.Wo} > W={cfg.W}: pass 1 overwrites input pixel xo of each row in place, so columns "
                f"xo >= W land in the next row (or past the buffer) (semantics.md §10.1). Use Wo <= W or "
                "semantics='ideal'")
        if (cfg.Wo - 1) * sx - l >= cfg.W or (cfg.Ho - 1) * sy - t >= cfg.H:
            raise UnsupportedConfig(
                "maxpool-window-start",
                f"Ho={cfg.Ho}, Wo={cfg.Wo} with stride={cfg.stride}, pad={cfg.pad} on {cfg.H}x{cfg.W}: the last "
                "window starts past the image, so the kernel reads outside the input buffer. Expected "
                "(Wo-1)*sx - pl < W and (Ho-1)*sy - pt < H")
        return
    for n, size, k, s, p, name in ((cfg.Ho, cfg.H, cfg.Kh, sy, t, "rows"), (cfg.Wo, cfg.W, cfg.Kw, sx, l, "cols")):
        for o in (0, n - 1):  # windows move monotonically: an empty one implies an empty first or last one
            if max(0, o * s - p) >= min(o * s - p + k, size):
                raise UnsupportedConfig(
                    "maxpool-empty-window",
                    f"output {name[:-1]} {o}: its window {name} [{o * s - p}, {o * s - p + k}) miss the image "
                    f"(size {size}); the max over an empty window is undefined. Reduce the padding")


# ---------------------------------------------------------------------------------------- fast paths


def _unpack(g: Geometry, words, bk: Bucket):
    """Input values X (Hb, Wb, Cb) as ``p.extract`` / ``p.extractu`` read them (0 outside the image)."""
    y, x, c = jnp.meshgrid(jnp.arange(bk.H), jnp.arange(bk.W), jnp.arange(bk.C), indexing="ij")
    valid = (y < g.H) & (x < g.W) & (c < g.C)
    idx = (y * g.W + x) * g.C + c
    return jnp.where(valid, packing.extract_elements(words, jnp.where(valid, idx, 0), g.bi, g.si), 0)


def _rows_covered(split_fn, n_rows: int, max_cores: int):
    """bool (n_rows,): rows some core's range [r0, r1) contains (``split_fn(core) -> (r0, r1)``)."""
    rows = jnp.arange(n_rows, dtype=jnp.int32)

    def per_core(core):
        r0, r1 = split_fn(core)
        return (rows >= r0) & (rows < r1)

    return cluster_run.over_cores(per_core, max_cores).any(0)


def _max_values(g: Geometry, X, bk: Bucket):
    """Max pooling on values: (out (Hob, Wob, Cb), written rows (Hob,), X after pass 1 (Hb, Wb, Cb))."""
    lib = g.library != 0
    cols = jnp.arange(bk.W, dtype=jnp.int32)
    done = _rows_covered(lambda core: cluster_run.row_split(core, g.H, g.ncores), bk.H, bk.cores)

    def x_step(Xc, xo):
        s = xo * g.sx - g.pl
        e = s + g.Kw
        start = jnp.where(lib, jnp.where(s < 0, xo, s), jnp.maximum(s, 0))
        stop = jnp.where(lib, jnp.where(e >= g.W, g.W, e), jnp.minimum(e, g.W))
        # library: copy column `start` (current content), then max in columns start+1 .. stop-1 as they are
        # now (columns < xo already overwritten; column xo is the target itself, a no-op)
        m = jnp.where(lib, (cols > start) & (cols < stop) & (cols != xo), (cols >= start) & (cols < stop))
        src = jnp.where(lib, Xc, X)
        first = jnp.where(lib, Xc[:, jnp.clip(start, 0, bk.W - 1), :], _NEG)
        acc = jnp.maximum(first, jnp.max(jnp.where(m[None, :, None], src, _NEG), axis=1))
        upd = (xo < g.Wo) & done[:, None]
        return Xc.at[:, xo, :].set(jnp.where(upd, acc, Xc[:, xo, :])), None

    K = bk.K or max(bk.H, bk.W)
    taps = jnp.arange(K, dtype=jnp.int32)
    if bk.scan:
        X1, _ = jax.lax.scan(x_step, X, cols)
    else:  # no window reads an overwritten column (_needs_scan): one vectorised windowed max over the original
        xo = jnp.arange(bk.Wo, dtype=jnp.int32)
        s = xo * g.sx - g.pl
        e = s + g.Kw
        start = jnp.where(lib, jnp.where(s < 0, xo, s), jnp.maximum(s, 0))
        stop = jnp.where(lib, jnp.where(e >= g.W, g.W, e), jnp.minimum(e, g.W))
        ci = start[:, None] + taps[None, :]
        # library: column `start` is copied first even when the loop after it is empty (pad >= Kw at xo = 0)
        taken = ((ci < stop[:, None]) & (taps[None, :] < g.Kw)) | (lib & (taps[None, :] == 0))
        win = jnp.where(taken[None, :, :, None], X[:, jnp.clip(ci, 0, bk.W - 1), :], _NEG)
        upd = (xo[None, :] < g.Wo) & done[:, None]
        X1 = X.at[:, :bk.Wo, :].set(jnp.where(upd[..., None], jnp.max(win, axis=2), X[:, :bk.Wo, :]))
    s = jnp.arange(bk.Ho, dtype=jnp.int32) * g.sy - g.pt
    e = s + g.Kh
    r0 = jnp.maximum(s, 0)
    r1 = jnp.where(e >= g.H, g.H, e)
    ri = r0[:, None] + taps[None, :]
    m = (taps[None, :] == 0) | (ri < r1[:, None])  # row r0 always, then rows up to r1 (exclusive)
    out = jnp.max(jnp.where(m[:, :, None, None], X1[jnp.clip(ri, 0, bk.H - 1), :bk.Wo, :], _NEG), axis=1)
    written = _rows_covered(lambda core: cluster_run.maxpool_out_split(core, g.H, g.Ho, g.ncores), bk.Ho, bk.cores)
    return out, written, jnp.where(lib, X1, X)


def _window_sums(g: Geometry, X, bk: Bucket):
    """int32 window sums (Hob, Wob, Cb) of average pooling, the library's or the symmetric windows (wrap)."""
    lib = g.library != 0
    P = jnp.zeros((bk.H + 1, bk.W + 1, bk.C), jnp.int32)
    P = P.at[1:, 1:].set(jnp.cumsum(jnp.cumsum(X, axis=0, dtype=jnp.int32), axis=1, dtype=jnp.int32))
    sy = jnp.arange(bk.Ho, dtype=jnp.int32) * g.sy
    sx = jnp.arange(bk.Wo, dtype=jnp.int32) * g.sx
    y0 = jnp.maximum(0, sy - jnp.where(lib, g.pb, g.pt))
    y1 = jnp.minimum(sy - g.pt + g.Kh, g.H)
    x0 = jnp.maximum(0, sx - g.pl)
    x1 = jnp.minimum(sx - jnp.where(lib, g.pr, g.pl) + g.Kw, g.W)
    nonempty = (y1 > y0)[:, None] & (x1 > x0)[None, :]
    y0, y1 = jnp.clip(y0, 0, bk.H)[:, None], jnp.clip(y1, 0, bk.H)[:, None]
    x0, x1 = jnp.clip(x0, 0, bk.W)[None, :], jnp.clip(x1, 0, bk.W)[None, :]
    S = P[y1, x1] - P[y0, x1] - P[y1, x0] + P[y0, x0]
    return jnp.where(nonempty[..., None], S, 0)


def _u32(v):
    return jax.lax.bitcast_convert_type(jnp.asarray(v, jnp.int32), jnp.uint32)


def _i32(v):
    return jax.lax.bitcast_convert_type(v, jnp.int32)


def _pick(cond, a, b):
    """``where(cond, a(), b())``; only the chosen branch is built when ``cond`` is static (numpy / Python bool)."""
    if isinstance(cond, (bool, np.bool_)):
        return a() if cond else b()
    return jnp.where(cond, a(), b())


def _tdiv(a, d):
    """int32 division truncating toward zero (C ``/`` on ints), d > 0."""
    q = a // d
    return jnp.where((a < 0) & (q * d != a), q + 1, q)


def _avg_values(g: Geometry, X, p: AvgPoolParams, bk: Bucket):
    """Average pooling on values: (out (Hob, Wob, Cb), written rows (Hob,))."""
    written = _rows_covered(lambda core: cluster_run.avgpool_split(core, g.Ho, g.ncores), bk.Ho, bk.cores)
    return _avg_finish(g, _window_sums(g, X, bk), p), written


def _avg_finish(g: Geometry, S, p: AvgPoolParams):
    """Output values from the int32 window sums ``S`` (§10.2): the unsigned / truncating divisions, the requant
    (logical shift for unsigned input in the library), the clip to the output type. ``g`` may be traced (the
    bucketed path) or hold numpy scalars (the static path)."""
    lib = g.library != 0
    kk = g.Kh * g.Kw
    ukk = _u32(kk)

    def quotient():
        return _pick(lib, lambda: _i32(_u32(S) // ukk), lambda: _tdiv(S, kk))

    def requantised():
        lam = jnp.asarray(p.lam, jnp.int32)
        lam_p = _pick(lib, lambda: _i32(_u32(lam) // ukk), lambda: _tdiv(lam, kk))
        t = S * lam_p + jnp.asarray(p.out_add, jnp.int32)
        sh = jnp.asarray(p.out_shift, jnp.int32) & 31
        return _pick(lib & (g.si == 0), lambda: _i32(jnp.right_shift(_u32(t), _u32(sh))),
                     lambda: jnp.right_shift(t, sh))

    v = _pick(g.requant != 0, requantised, quotient)
    half = jnp.left_shift(jnp.int32(1), g.bo - 1)
    lo = jnp.where(g.so != 0, -half, 0)
    hi = jnp.where(g.so != 0, half - 1, 2 * half - 1)
    return jnp.clip(v, lo, hi)


def _pack_out(g: Geometry, vals, written, bk: Bucket, bits):
    y, x, c = jnp.meshgrid(jnp.arange(bk.Ho), jnp.arange(bk.Wo), jnp.arange(bk.C), indexing="ij")
    valid = (y < g.Ho) & (x < g.Wo) & (c < g.C) & written[:, None, None]
    return _engine.scatter_pack(vals, (y * g.Wo + x) * g.C + c, valid, bits, bk.out_words)


def _pack_x(g: Geometry, X1, x_words, bk: Bucket):
    """The input buffer after the call: X1 repacked; bits past the image's last element kept from x_words."""
    y, x, c = jnp.meshgrid(jnp.arange(bk.H), jnp.arange(bk.W), jnp.arange(bk.C), indexing="ij")
    valid = (y < g.H) & (x < g.W) & (c < g.C)
    words = _engine.scatter_pack(X1, (y * g.W + x) * g.C + c, valid, g.bi, bk.x_words)
    nbits = g.H * g.W * g.C * g.bi
    lo = jnp.arange(bk.x_words, dtype=jnp.int32) * 32
    keep_bits = jnp.clip(nbits - lo, 0, 32)  # low bits of each word that belong to the image
    low = jnp.where(keep_bits >= 32, jnp.uint32(0xFFFFFFFF),
                    jnp.left_shift(jnp.uint32(1), _u32(keep_bits)) - jnp.uint32(1))
    return words | (x_words & ~low)


def _max_packed(g: Geometry, x_words, bk: Bucket):
    X = _unpack(g, x_words, bk)
    out, written, X1 = _max_values(g, X, bk)
    return _pack_out(g, out, written, bk, g.bi), _pack_x(g, X1, x_words, bk)


def _avg_packed(g: Geometry, x_words, p: AvgPoolParams, bk: Bucket):
    out, written = _avg_values(g, _unpack(g, x_words, bk), p, bk)
    return _pack_out(g, out, written, bk, g.bo)


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_packed_batch(g, x_words, bk):
    return jax.vmap(_max_packed, in_axes=(None, 0, None))(g, x_words, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_packed_cases(g, x_words, bk):
    return jax.vmap(_max_packed, in_axes=(0, 0, None))(g, x_words, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_packed_batch(g, x_words, p, bk):
    return jax.vmap(_avg_packed, in_axes=(None, 0, None, None))(g, x_words, p, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_packed_cases(g, x_words, p, bk):
    return jax.vmap(_avg_packed, in_axes=(0, 0, 0, None))(g, x_words, p, bk)


def _max_only(g, X, bk):
    return _max_values(g, X, bk)[0]


def _avg_only(g, X, p, bk):
    return _avg_values(g, X, p, bk)[0]


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_values_batch(g, X, bk):
    return jax.vmap(_max_only, in_axes=(None, 0, None))(g, X, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_values_cases(g, X, bk):
    return jax.vmap(_max_only, in_axes=(0, 0, None))(g, X, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_values_batch(g, X, p, bk):
    return jax.vmap(_avg_only, in_axes=(None, 0, None, None))(g, X, p, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_values_cases(g, X, p, bk):
    return jax.vmap(_avg_only, in_axes=(0, 0, 0, None))(g, X, p, bk)


# ------------------------------------------------------------------------------- static path (run)
#
# ``run`` on a large input compiles one function per configuration (``cfg`` a static jit argument, like
# ``conv._fast_packed``): lanes unpacked with static shifts, windows as strided slices of the (padded) image,
# output packed with static shifts. The quirks are the same rules as above, their extents evaluated in Python:
# every library window is a clipped regular window except the ones named where they are handled.


def _static_neg(bits: int, signed: bool) -> int:
    """Smallest value of the type: the identity of max over lanes of that type (pads windows)."""
    return -(1 << (bits - 1)) if signed else 0


def _window_reduce(x, axis: int, start: int, length: int, stride: int, count: int, op, init: int):
    """``out[o] = op(x[start + o*stride + t] for t < length)`` along ``axis`` for o < ``count``; positions outside
    the axis read ``init`` (windows clipped to the image). Static extents: strided slices (reduce_window for
    long windows)."""
    shape = list(x.shape)
    if length <= 0 or count <= 0:
        shape[axis] = max(count, 0)
        return jnp.full(shape, init, x.dtype)
    n = shape[axis]
    span = (count - 1) * stride + length
    lo, hi = max(0, -start), max(0, start + span - n)
    if lo or hi:
        cfg = [(0, 0, 0)] * x.ndim
        cfg[axis] = (lo, hi, 0)
        x = jax.lax.pad(x, jnp.asarray(init, x.dtype), cfg)
    off = start + lo
    if off or x.shape[axis] != span:
        x = jax.lax.slice_in_dim(x, off, off + span, axis=axis)
    lax_op = {jnp.maximum: jax.lax.max, jnp.add: jax.lax.add}.get(op)
    if length > 8 and lax_op is not None:
        dims = [1] * x.ndim
        dims[axis] = length
        strides = [1] * x.ndim
        strides[axis] = stride
        return jax.lax.reduce_window(x, np.asarray(init, x.dtype), lax_op, dims, strides, "VALID")
    acc = None
    for t in range(length):
        part = jax.lax.slice_in_dim(x, t, t + (count - 1) * stride + 1, stride, axis=axis)
        acc = part if acc is None else op(acc, part)
    return acc


def _static_rows(split_fn, n_rows: int, cluster: Cluster) -> np.ndarray:
    """bool (n_rows,): rows some core's range [r0, r1) of ``split_fn(core, ncores)`` contains."""
    rows = np.zeros(n_rows, bool)
    for core in range(cluster.num_cores):
        r0, r1 = split_fn(core, cluster.num_cores)
        rows[max(r0, 0):max(r1, 0)] = True
    return rows


def _keep_rows(new, old, rows: np.ndarray, axis: int = 1):
    """``new`` where ``rows`` (static bool along ``axis``), else ``old`` (rows a core never processes)."""
    if rows.all():
        return new
    shape = [1] * new.ndim
    shape[axis] = rows.size
    return jnp.where(rows.reshape(shape), new, old)


def _lane_masks(bits: int):
    """(high bit of every ``bits``-bit lane of a uint32 word, the other bits)."""
    high = sum(1 << (k * bits + bits - 1) for k in range(32 // bits))
    return np.uint32(high), np.uint32(~high & 0xFFFFFFFF)


def _swar_max(bits: int, signed: bool):
    """Lane-wise max of uint32 words holding 32/bits lanes of ``bits``-bit integers (two's complement if
    ``signed``), without unpacking: per lane, ``(a | H) - (b & ~H)`` compares the low bits (no borrow leaves a
    lane), the high bits decide the rest, and the lane mask selects a or b. Signed lanes are compared as offset
    binary (high bit flipped)."""
    high, low = _lane_masks(bits)

    def op(a, b):
        if signed:
            a, b = a ^ high, b ^ high
        t = (a | high) - (b & low)
        g = ((a & ~b) | (~(a ^ b) & t)) & high  # high bit set where a >= b
        m = (g - (g >> np.uint32(bits - 1))) | g
        r = (a & m) | (b & ~m)
        return r ^ high if signed else r

    return op


def _max_pass1_scan(X, cfg: MaxPoolConfig, op, neg):
    """Library pass 1 when windows read overwritten columns (``_needs_scan``): the in-place updates replayed in
    order of xo, each a (first column, then columns start+1 .. stop-1 but xo) max over at most Kw columns of
    the buffer as it is then. X (B, H, W, ...) -> the buffer after pass 1."""
    W, Kw, sx, l = cfg.W, cfg.Kw, cfg.stride[1], cfg.pad[2]
    xo = np.arange(cfg.Wo)
    s = xo * sx - l
    start = np.where(s < 0, xo, s)
    stop = np.where(s + Kw >= W, W, s + Kw)
    neg = jnp.asarray(neg, X.dtype)
    Xp = jnp.pad(X, [(0, 0), (0, 0), (0, Kw)] + [(0, 0)] * (X.ndim - 3), constant_values=neg)  # never clamps

    def step(Xc, xs):
        x_o, st, sp = xs
        win = jax.lax.dynamic_slice_in_dim(Xc, st, Kw, axis=2)
        acc = win[:, :, :1]
        for t in range(1, Kw):
            col = st + t
            acc = op(acc, jnp.where((col < sp) & (col != x_o), win[:, :, t:t + 1], neg))
        return jax.lax.dynamic_update_slice_in_dim(Xc, acc, x_o, axis=2), None

    xs = tuple(jnp.asarray(a, jnp.int32) for a in (xo, start, stop))
    X1, _ = jax.lax.scan(step, Xp, xs)
    return X1[:, :, :W]


def _max_static(X, cfg: MaxPoolConfig, cluster: Cluster, op=jnp.maximum, neg=None):
    """Max pooling for a static configuration on X (B, H, W, C) values, or on (B, H, W, C*bits/32) packed words
    with ``op`` = ``_swar_max`` and ``neg`` its identity: (out (B, Ho, Wo, ..), pass-1 columns (B, H, Wo, ..),
    buffer after the call (B, H, W, ..) or None when it is the input)."""
    lib = cfg.semantics == "library"
    t, _, l, _ = cfg.pad
    sy, sx = cfg.stride
    if neg is None:
        neg = _static_neg(cfg.in_type.bits, cfg.in_type.signed)
    done = _static_rows(lambda c, n: split.row_split(c, cfg.H, n), cfg.H, cluster)
    if _needs_scan(cfg):
        buf = _keep_rows(_max_pass1_scan(X, cfg, op, neg), X, done)
        X1 = buf[:, :, :cfg.Wo]
    else:  # every window reads original columns: a clipped window [xo*sx - pl, +Kw) (see _needs_scan)
        X1 = _window_reduce(X, 2, -l, cfg.Kw, sx, cfg.Wo, op, neg)
        if lib and cfg.Kw <= l:  # xo = 0 starts at column 0 itself, which it copies before an empty loop
            X1 = X1.at[:, :, 0].set(X[:, :, 0])
        if not done.all():  # rows no core processes keep their input (never the case for row_split)
            Xw = jnp.pad(X, [(0, 0), (0, 0), (0, max(0, cfg.Wo - cfg.W))] + [(0, 0)] * (X.ndim - 3))
            X1 = _keep_rows(X1, Xw[:, :, :cfg.Wo], done)
        buf = jnp.concatenate([X1, X[:, :, cfg.Wo:]], axis=2) if lib else None
    out = _window_reduce(X1, 1, -t, cfg.Kh, sy, cfg.Ho, op, neg)
    first_only = np.arange(cfg.Ho) * sy - t + cfg.Kh <= 0  # empty row range: the copy of row 0 only
    if first_only.any():
        out = jnp.where(first_only.reshape((1, -1) + (1,) * (out.ndim - 2)), X1[:, :1], out)
    return out, X1, buf


def _avg_static(X, p: AvgPoolParams, cfg: AvgPoolConfig, cluster: Cluster):
    """Average pooling on values X (B, H, W, C) for a static configuration -> out (B, Ho, Wo, C)."""
    lib = cfg.semantics == "library"
    t, b, l, r = cfg.pad
    sy, sx = cfg.stride
    # library rows [yo*sy - pb, yo*sy - pt + Kh) and columns [xo*sx - pl, xo*sx - pr + Kw), clipped (§10.2)
    row0, rows = (-b, cfg.Kh - t + b) if lib else (-t, cfg.Kh)
    col0, cols = (-l, cfg.Kw - r + l) if lib else (-l, cfg.Kw)
    S = _window_reduce(X, 1, row0, rows, sy, cfg.Ho, jnp.add, 0)
    S = _window_reduce(S, 2, col0, cols, sx, cfg.Wo, jnp.add, 0)
    return _avg_finish(geometry(cfg, cluster), S, p)


def _unpack_image(x_words, qt, cfg: PoolConfig):
    return _engine.unpack_static(x_words, qt.bits, qt.signed, cfg.H * cfg.W * cfg.C).reshape(
        x_words.shape[0], cfg.H, cfg.W, cfg.C)


def _pack_rows(vals, rows: np.ndarray, bits: int):
    """Packed (B, words) of vals (B, rows, ...); rows the kernel never writes (static mask) are 0 bits."""
    if not rows.all():
        vals = jnp.where(rows.reshape((1, -1) + (1,) * (vals.ndim - 2)), vals, 0)
    return _engine.pack_static(vals.reshape(vals.shape[0], -1), bits)


def _pack_buffer(buf, X1, x_words, cfg: MaxPoolConfig):
    """The input buffer after the call (uint32 words): only the first Wo pixels of each row change; the bits past
    the image's last element are kept from ``x_words``."""
    bits = cfg.in_type.bits
    row_bits, new_bits = cfg.W * cfg.C * bits, cfg.Wo * cfg.C * bits
    B = x_words.shape[0]
    if row_bits % 32 == 0 and new_bits % 32 == 0:  # rows are whole words: repack the changed words only
        new = _engine.pack_static(X1.reshape(B, cfg.H, -1), bits)
        old = x_words.reshape(B, cfg.H, row_bits // 32)[:, :, new_bits // 32:]
        return jnp.concatenate([new, old], axis=2).reshape(B, -1)
    words = _engine.pack_static(buf.reshape(B, -1), bits)
    keep = np.zeros(words.shape[-1], np.uint32)
    tail = (cfg.H * cfg.W * cfg.C * bits) % 32
    if tail:
        keep[-1] = np.uint32(0xFFFFFFFF) << np.uint32(tail)
    return words | (x_words & keep) if tail else words


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_max(x_words, cfg: MaxPoolConfig, cluster: Cluster):
    """Max pooling packed path for one static configuration: ``MaxPoolResult(out, x)`` (batch axis kept)."""
    xb = x_words if x_words.ndim == 2 else x_words[None]
    B, it = xb.shape[0], cfg.in_type
    written = _static_rows(lambda c, n: split.maxpool_out_split(c, cfg.H, cfg.Ho, n), cfg.Ho, cluster)
    if (cfg.C * it.bits) % 32 == 0:  # pixels are whole words: lane-wise max on the packed words themselves
        high, _ = _lane_masks(it.bits)
        words = xb.reshape(B, cfg.H, cfg.W, -1)
        out, X1, buf = _max_static(words, cfg, cluster, _swar_max(it.bits, it.signed),
                                   high if it.signed else np.uint32(0))
        if not written.all():
            out = jnp.where(written[None, :, None, None], out, jnp.uint32(0))
        res = MaxPoolResult(out.reshape(B, -1), xb if buf is None else buf.reshape(B, -1))
    else:
        out, X1, buf = _max_static(_unpack_image(xb, it, cfg), cfg, cluster)
        res = MaxPoolResult(_pack_rows(out, written, cfg.out_type.bits),
                            xb if buf is None else _pack_buffer(buf, X1, xb, cfg))
    return res if x_words.ndim == 2 else MaxPoolResult(res.out[0], res.x[0])


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_avg(x_words, p: AvgPoolParams, cfg: AvgPoolConfig, cluster: Cluster):
    """Average pooling packed path for one static configuration (batch axis kept)."""
    xb = x_words if x_words.ndim == 2 else x_words[None]
    out = _avg_static(_unpack_image(xb, cfg.in_type, cfg), p, cfg, cluster)
    written = _static_rows(lambda c, n: split.avgpool_split(c, cfg.Ho, n), cfg.Ho, cluster)
    res = _pack_rows(out, written, cfg.out_type.bits)
    return res if x_words.ndim == 2 else res[0]


def values(x, params=None, *, cfg: PoolConfig, in_type=None, out_type=None, cluster: Cluster = GAP8):
    """Value-path pooling, public entry: x (batch, H, W, C) int -> int32 (batch, Ho, Wo, C), the ideal
    arithmetic of ``cfg`` (its semantics is taken as "ideal"). ``in_type`` / ``out_type``: (bits, signed),
    which may be traced (precision as data), default the configuration's types; max pooling ignores them
    (windows are clipped to the image). Static windows: strided slices / ``reduce_window``, no scan, no
    bucket. Traceable (``jit`` / ``vmap``)."""
    cfg = cfg.replace(semantics="ideal")
    x = jnp.asarray(x, jnp.int32)
    if _family(cfg) == "maxpool":
        return _max_static(x, cfg, cluster, neg=_NEG)[0]
    g = geometry(cfg, cluster)
    types = {}
    if in_type is not None:
        types.update(bi=jnp.asarray(in_type[0], jnp.int32), si=jnp.asarray(in_type[1], jnp.int32))
    if out_type is not None:
        types.update(bo=jnp.asarray(out_type[0], jnp.int32), so=jnp.asarray(out_type[1], jnp.int32))
    p = AvgPoolParams(*(jnp.asarray(v, jnp.int32) for v in (params or AvgPoolParams())))
    t, _, l, _ = cfg.pad
    S = _window_reduce(x, 1, -t, cfg.Kh, cfg.stride[0], cfg.Ho, jnp.add, 0)
    S = _window_reduce(S, 2, -l, cfg.Kw, cfg.stride[1], cfg.Wo, jnp.add, 0)
    return _avg_finish(g._replace(**types), S, p)


# -------------------------------------------------------------------------------------- public API


def _as_params(params, cfg: PoolConfig):
    if _family(cfg) == "maxpool":
        if params is not None:
            raise JaxpulpError(f"params={params!r}: max pooling takes no parameters, expected None")
        return None
    if params is None:
        params = AvgPoolParams()
    if not isinstance(params, AvgPoolParams):
        params = AvgPoolParams(**params) if isinstance(params, dict) else AvgPoolParams(*params)
    i32 = (-(1 << 31), (1 << 31) - 1)
    scalar = _engine.int_scalar
    return AvgPoolParams(scalar(params.lam, "lam", *i32, "int32 lambda argument"),
                         scalar(params.out_shift, "out_shift", 0, 0xFFFF, "uint16 out_shift argument, bits"),
                         scalar(params.out_add, "out_add", *i32, "int32 out_add argument"))


def _as_words(a, n_words: int, name: str):
    a = a if isinstance(a, jax.Array) else np.asarray(a)
    if a.dtype != jnp.uint32:
        raise JaxpulpError(f"{name}: dtype {a.dtype}, expected a uint32 memory image (see jaxpulp.packing)")
    if a.ndim not in (1, 2) or a.shape[-1] < n_words:
        raise JaxpulpError(f"{name}: shape {a.shape}, expected ([batch,] >= {n_words}) uint32 words")
    return a if a.shape[-1] == n_words else a[..., :n_words]


STATIC_MIN_ELEMENTS = 1 << 14
"""``run`` takes the static path (one compile per configuration) when the call reads at least this many input
elements (batch included), the bucketed path (one compile per rounded shape) below it."""


def run(x_words, params=None, *, cfg: PoolConfig, cluster: Cluster = GAP8, return_cost: bool = False,
        static: bool | None = None):
    """Packed path. ``x_words``: the HWC input image (uint32 words, optionally a leading batch axis);
    ``params``: ``AvgPoolParams`` for average pooling, None for max pooling.

    Returns the packed HWC output image; for max pooling ``MaxPoolResult(out, x)`` where ``x`` is the input
    buffer after the call (the kernel works in place). With ``return_cost=True``: ``Costed(result, cost)``.

    ``static``: True compiles one function for this configuration (static shifts and slices: the fast path),
    False one per rounded shape where precision, window, padding and core count are data (``shared_bucket``:
    many small configurations share a compile); None (default) picks the static path when the call reads at
    least ``STATIC_MIN_ELEMENTS`` input elements. Both return the same bits."""
    fam = _family(cfg)
    check(cfg, cluster)
    p = _as_params(params, cfg)
    nx = _engine.words_for(cfg.H * cfg.W * cfg.C, cfg.in_type.bits)
    no = _engine.words_for(cfg.Ho * cfg.Wo * cfg.C, cfg.out_type.bits)
    x = _as_words(x_words, nx, "x_words")
    batched = x.ndim == 2
    if static is None:
        static = (x.shape[0] if batched else 1) * cfg.H * cfg.W * cfg.C >= STATIC_MIN_ELEMENTS
    if static:
        res = _fast_max(x, cfg, cluster) if fam == "maxpool" else _fast_avg(x, p, cfg, cluster)
        if return_cost:
            from jaxpulp.cost import with_cost

            return with_cost(res, cfg, cluster)
        return res
    xb = x if batched else x[None]
    bk = shared_bucket([cfg], [cluster])  # rounded extents: nearby shapes share one compiled function
    xb = jnp.pad(xb, ((0, 0), (0, bk.x_words - nx)))
    g = geometry(cfg, cluster)
    if fam == "maxpool":
        out, xa = _max_packed_batch(g, xb, bk)
        res = MaxPoolResult(out[:, :no], xa[:, :nx])
        res = res if batched else MaxPoolResult(res.out[0], res.x[0])
    else:
        out = _avg_packed_batch(g, xb, p, bk)[:, :no]
        res = out if batched else out[0]
    if return_cost:
        from jaxpulp.cost import with_cost

        return with_cost(res, cfg, cluster)
    return res


def run_values(x, params=None, *, cfg: PoolConfig, cluster: Cluster = GAP8):
    """Value path: int tensor ``x`` (H, W, C) or (batch, H, W, C) -> int32 outputs (Ho, Wo, C), the intended
    arithmetic (``semantics="ideal"``; max pooling leaves the input untouched there)."""
    fam = _family(cfg)
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = jnp.asarray(x)
    if x.shape[-3:] != (cfg.H, cfg.W, cfg.C) or x.ndim not in (3, 4) or not jnp.issubdtype(x.dtype, jnp.integer):
        raise JaxpulpError(f"x: shape {x.shape} dtype {x.dtype}, expected integers of shape "
                           f"([batch,] {cfg.H}, {cfg.W}, {cfg.C})")
    batched = x.ndim == 4
    bk = shared_bucket([cfg], [cluster])  # rounded extents: nearby shapes share one compiled function
    xb = (x if batched else x[None]).astype(jnp.int32)
    xb = jnp.pad(xb, ((0, 0), (0, bk.H - cfg.H), (0, bk.W - cfg.W), (0, bk.C - cfg.C)))
    g = geometry(cfg, cluster)
    out = _max_values_batch(g, xb, bk) if fam == "maxpool" else _avg_values_batch(g, xb, p, bk)
    out = out[:, :cfg.Ho, :cfg.Wo, :cfg.C]
    return out if batched else out[0]


def cost(cfg: PoolConfig, cluster: Cluster = GAP8):
    """Per-core instruction counts and cycles (see ``jaxpulp.cost``)."""
    from jaxpulp.cost import kernel_cost

    return kernel_cost(cfg, cluster)


# ------------------------------------------------------------------------------------ reference twin


def _ref_max(x, cfg: MaxPoolConfig, cluster: Cluster) -> MaxPoolResult:
    lib = cfg.semantics == "library"
    H, W = cfg.H, cfg.W
    sy, sx = cfg.stride
    t, _, l, _ = cfg.pad
    orig = np.asarray(x, np.int64)
    buf = np.zeros((H, max(W, cfg.Wo), cfg.C), np.int64)  # ideal: Wo may exceed W (no in-place pass there)
    buf[:, :W] = orig
    for core in range(cluster.num_cores):  # pass 1: x, in place, over input rows
        r0, r1 = split.row_split(core, H, cluster.num_cores)
        for y in range(r0, r1):
            for xo in range(cfg.Wo):
                s = xo * sx - l
                if lib:
                    start = xo if s < 0 else s
                    stop = W if s + cfg.Kw >= W else s + cfg.Kw
                    acc = buf[y, start].copy()            # copy the first window pixel over the target
                    for c in range(start + 1, stop):      # then compare-and-replace, pixels as they are now
                        acc = np.maximum(acc, acc if c == xo else buf[y, c])
                else:
                    acc = orig[y, max(s, 0):min(s + cfg.Kw, W)].max(axis=0)
                buf[y, xo] = acc
    out = np.zeros((cfg.Ho, cfg.Wo, cfg.C), np.int64)
    for core in range(cluster.num_cores):  # barrier, then pass 2: y, over output rows
        r0, r1 = split.maxpool_out_split(core, H, cfg.Ho, cluster.num_cores)
        for yo in range(r0, r1):
            s = yo * sy - t
            start = max(s, 0)
            stop = H if s + cfg.Kh >= H else s + cfg.Kh
            acc = buf[start, :cfg.Wo].copy()
            for r in range(start + 1, stop):
                acc = np.maximum(acc, buf[r, :cfg.Wo])
            out[yo] = acc
    return MaxPoolResult(out.astype(np.int32), (buf[:, :W] if lib else orig).astype(np.int32))


def _ref_avg(x, params, cfg: AvgPoolConfig, cluster: Cluster) -> np.ndarray:
    lib = cfg.semantics == "library"
    p = params if isinstance(params, AvgPoolParams) else AvgPoolParams(*params)
    x = np.asarray(x, np.int64)
    t, b, l, r = cfg.pad
    sy, sx = cfg.stride
    kk = cfg.Kh * cfg.Kw
    lam = int(p.lam)
    lam_p = _wrap((lam & 0xFFFFFFFF) // kk) if lib else _tdiv_int(lam, kk)
    shift = int(p.out_shift) & 31
    ot = cfg.out_type
    out = np.zeros((cfg.Ho, cfg.Wo, cfg.C), np.int64)
    for core in range(cluster.num_cores):
        r0, r1 = split.avgpool_split(core, cfg.Ho, cluster.num_cores)
        for yo in range(r0, r1):
            for xo in range(cfg.Wo):
                y0 = max(0, yo * sy - (b if lib else t))
                y1 = min(yo * sy - t + cfg.Kh, cfg.H)
                x0 = max(0, xo * sx - l)
                x1 = min(xo * sx - (r if lib else l) + cfg.Kw, cfg.W)
                for c in range(cfg.C):
                    s = int(x[y0:y1, x0:x1, c].sum()) if y1 > y0 and x1 > x0 else 0
                    if cfg.requant:
                        v = _wrap(s * lam_p + int(p.out_add))
                        if lib and not cfg.in_type.signed:   # uint32 arithmetic, logical shift
                            v = _wrap((v & 0xFFFFFFFF) >> shift)
                        else:
                            v = v >> shift
                    else:
                        v = _wrap((s & 0xFFFFFFFF) // kk) if lib else _tdiv_int(s, kk)
                    out[yo, xo, c] = min(max(v, ot.lo), ot.hi)
    return out.astype(np.int32)


def _tdiv_int(a: int, d: int) -> int:
    """C integer division (truncates toward zero) of Python ints, d > 0."""
    q = abs(a) // d
    return -q if a < 0 else q


def _wrap(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def reference(x, params, cfg: PoolConfig, cluster: Cluster = GAP8):
    """Plain numpy model that follows the C kernels core by core (semantics.md §10), quirks included when
    ``cfg.semantics == "library"``. ``x`` (H, W, C) int values. Max pooling (``params`` None) returns
    ``MaxPoolResult(out, x_after)``; average pooling returns out. int32 arrays (Ho, Wo, C)."""
    fam = _family(cfg)
    check(cfg, cluster)
    if fam == "maxpool":
        if params is not None:
            raise JaxpulpError(f"params={params!r}: max pooling takes no parameters, expected None")
        return _ref_max(x, cfg, cluster)
    return _ref_avg(x, AvgPoolParams() if params is None else params, cfg, cluster)


# ------------------------------------------------------------------------------------- golden vectors


def config_from_golden(meta: dict) -> PoolConfig:
    """The configuration of a golden case record (family ``maxpool`` or ``avgpool``)."""
    fam = meta.get("family")
    if fam not in CONFIGS:
        raise JaxpulpError(f"meta['family']={fam!r}: expected one of {GOLDEN_FAMILIES}")
    kw = dict(in_type=meta["in_type"], out_type=meta["out_type"], H=meta["H"], W=meta["W"], C=meta["Ci"],
              Kh=meta["K"][0], Kw=meta["K"][1], stride=tuple(meta["stride"]), pad=tuple(meta["pad"]),
              Ho=meta["Ho"], Wo=meta["Wo"])
    if fam == "avgpool":
        kw["requant"] = int(meta["requant"])
    return CONFIGS[fam](**kw)


def params_from_golden(meta: dict, arrays: dict):
    if meta["family"] == "maxpool":
        return None
    return AvgPoolParams(np.int32(meta["lambda"]), np.int32(meta["out_shift"]), np.int32(meta["out_add"]))


def from_golden(meta: dict, arrays: dict) -> "_golden.GoldenCall":
    cfg = config_from_golden(meta)
    cluster = _golden.cluster_of(meta)
    check(cfg, cluster)
    x_words = packing.pack_hwc(arrays["x"], cfg.in_type)
    return _golden.GoldenCall(meta, cfg, cluster, (x_words, params_from_golden(meta, arrays)))


def _scalars(p: AvgPoolParams) -> AvgPoolParams:
    return AvgPoolParams(*(np.int32(v) for v in p))


def _by_family(calls):
    """Indices of the calls by family, max pooling split by whether pass 1 needs the in-place scan (so each
    compiled function takes one code path, and the golden cases exercise both)."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(calls):
        groups.setdefault((_family(c.cfg), _needs_scan(c.cfg)), []).append(i)
    return groups


def run_golden_batch_full(calls) -> list:
    """Packed path for many golden calls, one compiled function per family: a list of unpacked results
    (max pooling: ``MaxPoolResult(out, x_after)``; average pooling: out)."""
    results: list = [None] * len(calls)
    for (fam, _), idx in _by_family(calls).items():
        part = [calls[i] for i in idx]
        bk = shared_bucket([c.cfg for c in part], [c.cluster for c in part])
        pad = [np.pad(c.args[0], (0, bk.x_words - len(c.args[0]))) for c in part]
        if fam == "maxpool":
            items = [(geometry(c.cfg, c.cluster), xw) for c, xw in zip(part, pad)]
            outs = []
            for n, (g, xw) in _golden.stack_chunks(items):
                o, xa = _max_packed_cases(g, xw, bk)
                outs.extend(zip(np.asarray(o)[:n], np.asarray(xa)[:n]))
            for i, c, (o, xa) in zip(idx, part, outs):
                cfg = c.cfg
                results[i] = MaxPoolResult(
                    packing.unpack(o, cfg.out_type, cfg.Ho * cfg.Wo * cfg.C).reshape(cfg.Ho, cfg.Wo, cfg.C),
                    packing.unpack(xa, cfg.in_type, cfg.H * cfg.W * cfg.C).reshape(cfg.H, cfg.W, cfg.C))
        else:
            items = [(geometry(c.cfg, c.cluster), xw, _scalars(c.args[1])) for c, xw in zip(part, pad)]
            outs = []
            for n, (g, xw, p) in _golden.stack_chunks(items):
                outs.extend(np.asarray(_avg_packed_cases(g, xw, p, bk))[:n])
            for i, c, o in zip(idx, part, outs):
                cfg = c.cfg
                results[i] = packing.unpack(o, cfg.out_type, cfg.Ho * cfg.Wo * cfg.C).reshape(cfg.Ho, cfg.Wo, cfg.C)
    return results


def run_golden_batch(calls) -> list:
    """Packed path for many golden calls (both pooling families): unpacked outputs (Ho, Wo, C)."""
    return [r.out if isinstance(r, MaxPoolResult) else r for r in run_golden_batch_full(calls)]


def run_values_golden_batch(calls, arrays_list) -> list:
    """Value path (ideal semantics, precision as data) for many golden calls, one compiled function per family."""
    results: list = [None] * len(calls)
    for (fam, _), idx in _by_family(calls).items():
        part = [calls[i] for i in idx]
        bk = shared_bucket([c.cfg for c in part], [c.cluster for c in part])
        items = []
        for i, c in zip(idx, part):
            cfg = c.cfg
            x = np.zeros((bk.H, bk.W, bk.C), np.int32)
            x[:cfg.H, :cfg.W, :cfg.C] = arrays_list[i]["x"]
            g = geometry(cfg.replace(semantics="ideal"), c.cluster)
            items.append((g, x) if fam == "maxpool" else (g, x, _scalars(c.args[1])))
        outs = []
        for n, item in _golden.stack_chunks(items):
            fn = _max_values_cases if fam == "maxpool" else _avg_values_cases
            outs.extend(np.asarray(fn(*item, bk))[:n])
        for i, c, o in zip(idx, part, outs):
            results[i] = o[:c.cfg.Ho, :c.cfg.Wo, :c.cfg.C]
    return results
