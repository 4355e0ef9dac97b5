"""Max pooling ``pulp_nn_maxpool_<t>`` (semantics.md §10.1): the bucketed path (configuration as data), the
static path (``_fast_max``, lane-wise max on packed words where pixels are whole words) and the reference
twin. Public API and the library behaviour modelled: ``jaxpulp.kernels.pool``."""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp.cluster import run as cluster_run, split
from jaxpulp.cluster.config import Cluster
from jaxpulp.kernels import _engine
from jaxpulp.kernels._pool_common import (
    _NEG,
    Bucket,
    Geometry,
    _keep_rows,
    _needs_scan,
    _pack_out,
    _pack_rows,
    _pack_x,
    _rows_covered,
    _static_rows,
    _unpack,
    _unpack_image,
    _window_reduce,
)
from jaxpulp.kernels.config import MaxPoolConfig


class MaxPoolResult(NamedTuple):
    """Max pooling result: ``out`` (the output) and ``x`` (the final content of the input buffer, which the
    kernel overwrites in place; unchanged under ``semantics="ideal"``). Packed words or values."""

    out: jax.Array | np.ndarray
    x: jax.Array | np.ndarray


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


def _max_packed(g: Geometry, x_words, bk: Bucket):
    X = _unpack(g, x_words, bk)
    out, written, X1 = _max_values(g, X, bk)
    return _pack_out(g, out, written, bk, g.bi), _pack_x(g, X1, x_words, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_packed_batch(g, x_words, bk):
    return jax.vmap(_max_packed, in_axes=(None, 0, None))(g, x_words, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_packed_cases(g, x_words, bk):
    return jax.vmap(_max_packed, in_axes=(0, 0, None))(g, x_words, bk)


def _max_only(g, X, bk):
    return _max_values(g, X, bk)[0]


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_values_batch(g, X, bk):
    return jax.vmap(_max_only, in_axes=(None, 0, None))(g, X, bk)


@functools.partial(jax.jit, static_argnames=("bk",))
def _max_values_cases(g, X, bk):
    return jax.vmap(_max_only, in_axes=(0, 0, None))(g, X, bk)


def _static_neg(bits: int, signed: bool) -> int:
    """Smallest value of the type: the identity of max over lanes of that type (pads windows)."""
    return -(1 << (bits - 1)) if signed else 0


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
    W, Kw, sx, left = cfg.W, cfg.Kw, cfg.stride[1], cfg.pad[2]
    xo = np.arange(cfg.Wo)
    s = xo * sx - left
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
    t, _, left, _ = cfg.pad
    sy, sx = cfg.stride
    if neg is None:
        neg = _static_neg(cfg.in_type.bits, cfg.in_type.signed)
    done = _static_rows(lambda c, n: split.row_split(c, cfg.H, n), cfg.H, cluster)
    if _needs_scan(cfg):
        buf = _keep_rows(_max_pass1_scan(X, cfg, op, neg), X, done)
        X1 = buf[:, :, :cfg.Wo]
    else:  # every window reads original columns: a clipped window [xo*sx - pl, +Kw) (see _needs_scan)
        X1 = _window_reduce(X, 2, -left, cfg.Kw, sx, cfg.Wo, op, neg)
        if lib and cfg.Kw <= left:  # xo = 0 starts at column 0 itself, which it copies before an empty loop
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


def _max_lanes(x, cfg: MaxPoolConfig, cluster: Cluster):
    """The packed path's output on lanes: x (batch, H*W*C) int32, the input image's elements -> the output
    image's elements (batch, Ho, Wo, C) int32, rows no core writes 0 (as ``_fast_max`` leaves their bits). The
    input buffer's in-place update is not returned."""
    B = x.shape[0]
    written = _static_rows(lambda c, n: split.maxpool_out_split(c, cfg.H, cfg.Ho, n), cfg.Ho, cluster)
    out, _, _ = _max_static(x.reshape(B, cfg.H, cfg.W, cfg.C), cfg, cluster)
    if not written.all():
        out = jnp.where(written[None, :, None, None], out, 0)
    return out


def _ref_max(x, cfg: MaxPoolConfig, cluster: Cluster) -> MaxPoolResult:
    lib = cfg.semantics == "library"
    H, W = cfg.H, cfg.W
    sy, sx = cfg.stride
    t, _, left, _ = cfg.pad
    orig = np.asarray(x, np.int64)
    buf = np.zeros((H, max(W, cfg.Wo), cfg.C), np.int64)  # ideal: Wo may exceed W (no in-place pass there)
    buf[:, :W] = orig
    for core in range(cluster.num_cores):  # pass 1: x, in place, over input rows
        r0, r1 = split.row_split(core, H, cluster.num_cores)
        for y in range(r0, r1):
            for xo in range(cfg.Wo):
                s = xo * sx - left
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
