"""Average pooling ``pulp_nn_avgpool_<in>_<out>`` (semantics.md §10.2): the bucketed path (configuration as
data), the static path (``_fast_avg``) and the reference twin. Public API and the library behaviour modelled:
``jaxpulp.kernels.pool``."""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels._engine import IntArrayLike
from jaxpulp.kernels._pool_common import (
    Bucket,
    Geometry,
    _pack_out,
    _pack_rows,
    _rows_covered,
    _static_rows,
    _u32,
    _unpack,
    _unpack_image,
    _window_reduce,
    geometry,
)
from jaxpulp.kernels.config import AvgPoolConfig


class AvgPoolParams(NamedTuple):
    """Average pooling call data (read only when ``cfg.requant``): ``lam`` (the int32 ``lambda`` argument,
    divided by Kh*Kw inside the kernel), ``out_shift`` (bits, uint16 argument), ``out_add`` (int32)."""

    lam: IntArrayLike = 1
    out_shift: IntArrayLike = 0
    out_add: IntArrayLike = 0


Params = AvgPoolParams


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


def _avg_packed(g: Geometry, x_words, p: AvgPoolParams, bk: Bucket):
    out, written = _avg_values(g, _unpack(g, x_words, bk), p, bk)
    return _pack_out(g, out, written, bk, g.bo)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_packed_batch(g, x_words, p, bk):
    return jax.vmap(_avg_packed, in_axes=(None, 0, None, None))(g, x_words, p, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_packed_cases(g, x_words, p, bk):
    return jax.vmap(_avg_packed, in_axes=(0, 0, 0, None))(g, x_words, p, bk)


def _avg_only(g, X, p, bk):
    return _avg_values(g, X, p, bk)[0]


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_values_batch(g, X, p, bk):
    return jax.vmap(_avg_only, in_axes=(None, 0, None, None))(g, X, p, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _avg_values_cases(g, X, p, bk):
    return jax.vmap(_avg_only, in_axes=(0, 0, 0, None))(g, X, p, bk)


def _avg_static(X, p: AvgPoolParams, cfg: AvgPoolConfig, cluster: Cluster):
    """Average pooling on values X (B, H, W, C) for a static configuration -> out (B, Ho, Wo, C)."""
    lib = cfg.semantics == "library"
    t, b, left, r = cfg.pad
    sy, sx = cfg.stride
    # library rows [yo*sy - pb, yo*sy - pt + Kh) and columns [xo*sx - pl, xo*sx - pr + Kw), clipped (§10.2)
    row0, rows = (-b, cfg.Kh - t + b) if lib else (-t, cfg.Kh)
    col0, cols = (-left, cfg.Kw - r + left) if lib else (-left, cfg.Kw)
    S = _window_reduce(X, 1, row0, rows, sy, cfg.Ho, jnp.add, 0)
    S = _window_reduce(S, 2, col0, cols, sx, cfg.Wo, jnp.add, 0)
    return _avg_finish(geometry(cfg, cluster), S, p)


@functools.partial(jax.jit, static_argnames=("cfg", "cluster"))
def _fast_avg(x_words, p: AvgPoolParams, cfg: AvgPoolConfig, cluster: Cluster):
    """Average pooling packed path for one static configuration (batch axis kept)."""
    xb = x_words if x_words.ndim == 2 else x_words[None]
    out = _avg_static(_unpack_image(xb, cfg.in_type, cfg), p, cfg, cluster)
    written = _static_rows(lambda c, n: split.avgpool_split(c, cfg.Ho, n), cfg.Ho, cluster)
    res = _pack_rows(out, written, cfg.out_type.bits)
    return res if x_words.ndim == 2 else res[0]


def _avg_lanes(x, p: AvgPoolParams, cfg: AvgPoolConfig, cluster: Cluster):
    """The packed path on lanes: x (batch, H*W*C) int32, the input image's elements -> the output image's
    elements (batch, Ho, Wo, C) int32, rows no core writes 0 (as ``_fast_avg`` leaves their bits)."""
    B = x.shape[0]
    out = _avg_static(x.reshape(B, cfg.H, cfg.W, cfg.C), p, cfg, cluster)
    written = _static_rows(lambda c, n: split.avgpool_split(c, cfg.Ho, n), cfg.Ho, cluster)
    if not written.all():
        out = jnp.where(written.reshape((1, -1) + (1,) * (out.ndim - 2)), out, 0)
    return out


def _ref_avg(x, params, cfg: AvgPoolConfig, cluster: Cluster) -> np.ndarray:
    lib = cfg.semantics == "library"
    p = params if isinstance(params, AvgPoolParams) else AvgPoolParams(*params)
    x = np.asarray(x, np.int64)
    t, b, left, r = cfg.pad
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
                x0 = max(0, xo * sx - left)
                x1 = min(xo * sx - (r if lib else left) + cfg.Kw, cfg.W)
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
