"""What max and average pooling share (``jaxpulp.kernels.pool`` is the public module): the configuration as
int32 data (``Geometry``) and the static extents it is traced for (``Bucket``), image unpacking and output
packing for the bucketed path, and the static-path helpers (strided window reductions, the rows the core
split covers).

The static path (``run`` on a large input) compiles one function per configuration (``cfg`` a static jit
argument, like ``conv._fast_packed``): lanes unpacked with static shifts, windows as strided slices of the
(padded) image, output packed with static shifts. The quirks are the same rules as the bucketed path, their
extents evaluated in Python."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import packing
from jaxpulp.cluster import run as cluster_run
from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import _engine
from jaxpulp.kernels._engine import Scalar32
from jaxpulp.kernels.config import AvgPoolConfig, MaxPoolConfig, PoolConfig

Config = PoolConfig


_NEG = np.int32(-(1 << 31))


class Geometry(NamedTuple):
    """A configuration as int32 data (one compiled function serves many).

    Legend: ``H, W, C`` input rows, columns, channels; ``Kh, Kw`` window rows, columns; ``sy, sx`` strides;
    ``pt, pb, pl, pr`` top, bottom, left, right padding; ``Ho, Wo`` output rows, columns (all in elements);
    ``bi, si`` / ``bo, so`` input / output bits and signedness (1 = signed); ``requant`` avgpool's flag_requant;
    ``ncores`` cluster cores; ``library`` 1 = library quirks, 0 = ``semantics="ideal"``.
    """

    H: Scalar32
    W: Scalar32
    C: Scalar32
    Kh: Scalar32
    Kw: Scalar32
    sy: Scalar32
    sx: Scalar32
    pt: Scalar32
    pb: Scalar32
    pl: Scalar32
    pr: Scalar32
    Ho: Scalar32
    Wo: Scalar32
    bi: Scalar32
    si: Scalar32
    bo: Scalar32
    so: Scalar32
    requant: Scalar32
    ncores: Scalar32
    library: Scalar32


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
    t, b, left, r = cfg.pad
    vals = (cfg.H, cfg.W, cfg.C, cfg.Kh, cfg.Kw, cfg.stride[0], cfg.stride[1], t, b, left, r, cfg.Ho, cfg.Wo,
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


def _u32(v):
    return jax.lax.bitcast_convert_type(jnp.asarray(v, jnp.int32), jnp.uint32)


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


def _unpack_image(x_words, qt, cfg: PoolConfig):
    return _engine.unpack_static(x_words, qt.bits, qt.signed, cfg.H * cfg.W * cfg.C).reshape(
        x_words.shape[0], cfg.H, cfg.W, cfg.C)


def _pack_rows(vals, rows: np.ndarray, bits: int):
    """Packed (B, words) of vals (B, rows, ...); rows the kernel never writes (static mask) are 0 bits."""
    if not rows.all():
        vals = jnp.where(rows.reshape((1, -1) + (1,) * (vals.ndim - 2)), vals, 0)
    return _engine.pack_static(vals.reshape(vals.shape[0], -1), bits)
