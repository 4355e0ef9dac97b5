"""Run a per-core function over the cluster: ``jax.vmap`` over core ids, then merge per-core results.

The split functions here are the traced twins of ``jaxpulp.cluster.split`` (same integer arithmetic on
int32 scalars, so the core count and the shapes may be data); a test checks both agree.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

MAX_CORES = 8


def over_cores(fn, num_cores: int = MAX_CORES):
    """``jax.vmap(fn)`` over ``core_id = arange(num_cores)``; ``fn(core_id)`` returns a pytree."""
    return jax.vmap(fn)(jnp.arange(num_cores, dtype=jnp.int32))


def _fl1(x):
    """p.fl1 on a positive int32 scalar: floor(log2 x)."""
    return 31 - jax.lax.clz(jnp.asarray(x, jnp.int32))


def conv_split(core, Ho, Wo, ncores):
    """Traced twin of ``split.conv_split``: (row0, row1, col0, col1) of ``core``; empty for core >= ncores."""
    core, Ho, Wo, ncores = (jnp.asarray(v, jnp.int32) for v in (core, Ho, Wo, ncores))
    extra = (Ho % ncores != 0).astype(jnp.int32)
    half_mode = (extra == 1) & (Wo > 1)
    half = jnp.maximum(ncores // 2, 1)
    # half-width sections
    chunk_h = Ho // half + (Ho % half != 0).astype(jnp.int32)
    start_h = jnp.minimum((core >> 1) * chunk_h, Ho)
    stop_h = jnp.minimum(start_h + chunk_h, Ho)
    wh = Wo // 2
    sec = core & 1
    c0_h = jnp.where(sec == 0, 0, wh)
    c1_h = jnp.where(sec == 0, wh, Wo)
    # whole rows
    chunk_r = Ho // ncores + extra
    start_r = jnp.minimum(core * chunk_r, Ho)
    stop_r = jnp.minimum(start_r + chunk_r, Ho)
    row0 = jnp.where(half_mode, start_h, start_r)
    row1 = jnp.where(half_mode, stop_h, stop_r)
    col0 = jnp.where(half_mode, c0_h, 0)
    col1 = jnp.where(half_mode, c1_h, Wo)
    active = core < ncores
    return (jnp.where(active, row0, 0), jnp.where(active, row1, 0),
            jnp.where(active, col0, 0), jnp.where(active, col1, 0))


def conv_pixel_roles(Ho, Wo, ncores, shape, max_cores: int = MAX_CORES):
    """Per output pixel of a ``shape`` = (Hb, Wb) grid, from the conv/pointwise split (semantics.md §5.3):

    owner: the core that computes the pixel (-1 outside Ho x Wo);
    pair: True if the pixel goes through the 4x2 matmul (a pixel pair), False for a row's leftover pixel;
    row_in_core: j, the index of the pixel's row among its core's rows (0 for the first row).
    """
    Hb, Wb = shape
    y = jnp.arange(Hb, dtype=jnp.int32)[:, None]
    x = jnp.arange(Wb, dtype=jnp.int32)[None, :]

    def per_core(core):
        r0, r1, c0, c1 = conv_split(core, Ho, Wo, ncores)
        mine = (y >= r0) & (y < r1) & (x >= c0) & (x < c1)
        pair = mine & ((x - c0) < ((c1 - c0) // 2) * 2)
        return mine, pair, y - r0

    mine, pair, j = over_cores(per_core, max_cores)
    owner = jnp.where(mine.any(0), jnp.argmax(mine, axis=0), -1)
    return owner, pair.any(0), jnp.sum(jnp.where(mine, j, 0), axis=0)


def linear_split(core, M, ncores, out_bits):
    """Traced twin of ``split.linear_split`` (§9.2): (n0, n1), the output neurons of ``core`` out of ``M``;
    ``out_bits`` = 8, 4, 2, or 32 for the int32-output kernels (split like 8). Empty for core >= ncores."""
    core, M, ncores, out_bits = (jnp.asarray(v, jnp.int32) for v in (core, M, ncores, out_bits))
    chunk = jnp.right_shift(M, _fl1(ncores)) + ((M & (ncores - 1)) != 0).astype(jnp.int32)
    chunk4 = jnp.left_shift(chunk, (chunk == 1).astype(jnp.int32))
    chunk2 = chunk + jnp.where((chunk & 3) != 0, 4 - (chunk & 7), 0)
    chunk = jnp.where(out_bits == 4, chunk4, jnp.where(out_bits == 2, chunk2, chunk))
    start = jnp.minimum(core * chunk, M)
    stop = jnp.minimum(start + chunk, M)
    active = core < ncores
    return jnp.where(active, start, 0), jnp.where(active, stop, 0)


def row_split(core, rows, ncores):
    """Traced twin of ``split.row_split`` (max pooling pass 1, add; §10.1, §11.1): (r0, r1) of ``core``;
    empty for core >= ncores."""
    core, rows, ncores = (jnp.asarray(v, jnp.int32) for v in (core, rows, ncores))
    n = jnp.minimum(ncores, rows)
    chunk = jnp.right_shift(rows, _fl1(jnp.maximum(n, 1))) + ((rows & (ncores - 1)) != 0).astype(jnp.int32)
    start = jnp.minimum(core * chunk, rows)
    stop = jnp.minimum(start + chunk, rows)
    active = core < ncores
    return jnp.where(active, start, 0), jnp.where(active, stop, 0)


def avgpool_split(core, Ho, ncores):
    """Traced twin of ``split.avgpool_split`` (§10.2): (r0, r1) output rows of ``core`` (start not clamped,
    r1 >= r0); empty (0, 0) for core >= ncores."""
    core, Ho, ncores = (jnp.asarray(v, jnp.int32) for v in (core, Ho, ncores))
    n = jnp.maximum(jnp.minimum(ncores, Ho), 1)
    chunk = jnp.right_shift(Ho, _fl1(n)) + ((Ho & (n - 1)) != 0).astype(jnp.int32)
    start = core * chunk
    stop = jnp.maximum(start, jnp.minimum(start + chunk, Ho))
    active = core < ncores
    return jnp.where(active, start, 0), jnp.where(active, stop, 0)


def maxpool_out_split(core, H, Ho, ncores):
    """Traced twin of ``split.maxpool_out_split`` (max pooling pass 2, §10.1): (r0, r1) output rows of
    ``core``; empty (0, 0) for core >= ncores."""
    core, H, Ho, ncores = (jnp.asarray(v, jnp.int32) for v in (core, H, Ho, ncores))
    n = jnp.maximum(jnp.where(Ho < ncores, Ho, jnp.minimum(ncores, H)), 1)
    chunk = jnp.right_shift(Ho, _fl1(n)) + ((Ho & (ncores - 1)) != 0).astype(jnp.int32)
    start = core * chunk
    stop = jnp.maximum(start, jnp.minimum(start + chunk, Ho))
    active = core < ncores
    return jnp.where(active, start, 0), jnp.where(active, stop, 0)
