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

Layout: ``kernels/_maxpool.py`` and ``kernels/_avgpool.py`` hold each family's traced paths and twin,
``kernels/_pool_common.py`` what they share; this module is the public API and re-exports their names.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _engine

# The family modules' names, re-exported so ``pool.<name>`` keeps working (``X as X``: an explicit re-export).
from jaxpulp.kernels._avgpool import (
    AvgPoolParams as AvgPoolParams,
    Params as Params,
    _avg_finish,
    _avg_lanes as _avg_lanes,
    _avg_only as _avg_only,
    _avg_packed_batch,
    _avg_values_batch,
    _fast_avg as _fast_avg,
    _ref_avg,
)
from jaxpulp.kernels._maxpool import (
    MaxPoolResult as MaxPoolResult,
    _fast_max as _fast_max,
    _max_lanes as _max_lanes,
    _max_only as _max_only,
    _max_packed_batch,
    _max_static,
    _max_values_batch,
    _ref_max,
    _swar_max as _swar_max,
)
from jaxpulp.kernels._pool_common import (
    _NEG,
    Bucket as Bucket,
    Config as Config,
    Geometry as Geometry,
    _family,
    _window_reduce,
    exact_bucket as exact_bucket,
    geometry,
    shared_bucket,
)
from jaxpulp.kernels.config import AvgPoolConfig as AvgPoolConfig, MaxPoolConfig as MaxPoolConfig, PoolConfig


def check(cfg: PoolConfig, cluster: Cluster = GAP8) -> None:
    """Raise ``UnsupportedConfig`` naming the rule if the library does not define this call."""
    fam = _family(cfg)
    _engine.check_whole_byte_pixels(cfg, ("in_type", "out_type"), "addresses pixels as C*bits/8 bytes (rounded "
                                    "down), so channels are lost or misplaced")
    if max(cfg.H, cfg.W, cfg.C, cfg.Ho, cfg.Wo, cfg.Kh, cfg.Kw, *cfg.stride, *cfg.pad) >= 1 << 16:
        raise UnsupportedConfig("uint16-extent", f"cfg={cfg}: every dimension, kernel size, stride and padding "
                                "is a uint16 argument and must be < 65536")
    if fam == "avgpool":
        return  # every window is clipped to the image: all reads in bounds, every output written
    t, _, left, _ = cfg.pad
    sy, sx = cfg.stride
    if cfg.semantics == "library":
        if cfg.Wo > cfg.W:
            raise UnsupportedConfig(
                "maxpool-output-width",
                f"Wo={cfg.Wo} > W={cfg.W}: pass 1 overwrites input pixel xo of each row in place, so columns "
                f"xo >= W land in the next row (or past the buffer) (semantics.md §10.1). Use Wo <= W or "
                "semantics='ideal'")
        if (cfg.Wo - 1) * sx - left >= cfg.W or (cfg.Ho - 1) * sy - t >= cfg.H:
            raise UnsupportedConfig(
                "maxpool-window-start",
                f"Ho={cfg.Ho}, Wo={cfg.Wo} with stride={cfg.stride}, pad={cfg.pad} on {cfg.H}x{cfg.W}: the last "
                "window starts past the image, so the kernel reads outside the input buffer. Expected "
                "(Wo-1)*sx - pl < W and (Ho-1)*sy - pt < H")
        return
    for n, size, k, s, p, name in ((cfg.Ho, cfg.H, cfg.Kh, sy, t, "rows"), (cfg.Wo, cfg.W, cfg.Kw, sx, left, "cols")):
        for o in (0, n - 1):  # windows move monotonically: an empty one implies an empty first or last one
            if max(0, o * s - p) >= min(o * s - p + k, size):
                raise UnsupportedConfig(
                    "maxpool-empty-window",
                    f"output {name[:-1]} {o}: its window {name} [{o * s - p}, {o * s - p + k}) miss the image "
                    f"(size {size}); the max over an empty window is undefined. Reduce the padding")


def _as_params(params, cfg: PoolConfig):
    if _family(cfg) == "maxpool":
        if params is not None:
            raise JaxpulpError(f"params={params!r}: max pooling takes no parameters, expected None")
        return None
    if params is None:
        params = AvgPoolParams()
    params = _engine.as_params(params, AvgPoolParams)
    i32 = _engine.INT32_RANGE
    scalar = _engine.int_scalar
    return AvgPoolParams(scalar(params.lam, "lam", *i32, "int32 lambda argument"),
                         scalar(params.out_shift, "out_shift", 0, 0xFFFF, "uint16 out_shift argument, bits"),
                         scalar(params.out_add, "out_add", *i32, "int32 out_add argument"))


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
    x = _engine.packed_words(x_words, nx, "x_words")
    batched = x.ndim == 2
    if static is None:
        static = (x.shape[0] if batched else 1) * cfg.H * cfg.W * cfg.C >= STATIC_MIN_ELEMENTS
    if static:
        res = _fast_max(x, cfg, cluster) if fam == "maxpool" else _fast_avg(x, p, cfg, cluster)
        return _engine.costed(res, cfg, cluster, return_cost)
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
    return _engine.costed(res, cfg, cluster, return_cost)


def run_lanes(x, params=None, *, cfg: PoolConfig, cluster: Cluster = GAP8):
    """``run``'s output image on lanes (see ``conv.run_lanes``): x (batch, H*W*C) int32, the input image's
    elements -> (batch, Ho, Wo, C) int32, the output image's elements (the static path; max pooling's in-place
    input buffer is not returned)."""
    _family(cfg)
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = jnp.asarray(_engine.lanes(x, cfg.H * cfg.W * cfg.C, "x", cfg.in_type, "the input image's elements"))
    if isinstance(cfg, MaxPoolConfig):
        return _max_lanes(x, cfg, cluster)
    assert isinstance(cfg, AvgPoolConfig)  # _family refused anything else
    return _avg_lanes(x, p, cfg, cluster)


def run_values(x, params=None, *, cfg: PoolConfig, cluster: Cluster = GAP8):
    """Value path: int tensor ``x`` (H, W, C) or (batch, H, W, C) -> int32 outputs (Ho, Wo, C), the intended
    arithmetic (``semantics="ideal"``; max pooling leaves the input untouched there)."""
    fam = _family(cfg)
    cfg = cfg.replace(semantics="ideal")
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = jnp.asarray(_engine.value_ints(x, "x", cfg.in_type))
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


def reference(x, params, cfg: PoolConfig, cluster: Cluster = GAP8):
    """Plain numpy model that follows the C kernels core by core (semantics.md §10), quirks included when
    ``cfg.semantics == "library"``. ``x`` (H, W, C) int values. Max pooling (``params`` None) returns
    ``MaxPoolResult(out, x_after)``; average pooling returns out. int32 arrays (Ho, Wo, C)."""
    fam = _family(cfg)
    check(cfg, cluster)
    p = _as_params(params, cfg)
    x = np.asarray(_engine.value_ints(x, "x", cfg.in_type), np.int64)
    if x.shape != (cfg.H, cfg.W, cfg.C):
        raise JaxpulpError(f"x: shape {x.shape}, expected ({cfg.H}, {cfg.W}, {cfg.C})")
    if fam == "maxpool":
        assert isinstance(cfg, MaxPoolConfig)  # _family said so
        return _ref_max(x, cfg, cluster)
    assert isinstance(cfg, AvgPoolConfig) and p is not None  # _family said so; _as_params made the defaults
    return _ref_avg(x, p, cfg, cluster)


def values(x, params=None, *, cfg: PoolConfig, in_type=None, out_type=None, cluster: Cluster = GAP8):
    """Value-path pooling, public entry: x (batch, H, W, C) int -> int32 (batch, Ho, Wo, C), the ideal
    arithmetic of ``cfg`` (its semantics is taken as "ideal"). ``in_type`` / ``out_type``: (bits, signed),
    which may be traced (precision as data), default the configuration's types; max pooling ignores them
    (windows are clipped to the image). Static windows: strided slices / ``reduce_window``, no scan, no
    bucket. Traceable (``jit`` / ``vmap``)."""
    _family(cfg)
    cfg = cfg.replace(semantics="ideal")
    in_type, out_type = _engine.type_pair(in_type, "in_type"), _engine.type_pair(out_type, "out_type")
    x = _engine.values_ints(x, "x", _engine.pair_qtype(in_type, cfg.in_type))
    if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.H, cfg.W, cfg.C):
        raise JaxpulpError(f"x: shape {x.shape}, expected (batch, {cfg.H}, {cfg.W}, {cfg.C})")
    x = jnp.asarray(x, jnp.int32)
    if isinstance(cfg, MaxPoolConfig):  # as _family(cfg) == "maxpool"
        if params is not None:
            raise JaxpulpError(f"params={params!r}: max pooling takes no parameters, expected None")
        return _max_static(x, cfg, cluster, neg=_NEG)[0]
    params = _as_params(params, cfg)
    g = geometry(cfg, cluster)
    types: dict = {}
    if in_type is not None:
        types.update(bi=jnp.asarray(in_type[0], jnp.int32), si=jnp.asarray(in_type[1], jnp.int32))
    if out_type is not None:
        types.update(bo=jnp.asarray(out_type[0], jnp.int32), so=jnp.asarray(out_type[1], jnp.int32))
    p = AvgPoolParams(*(jnp.asarray(v, jnp.int32) for v in (params or AvgPoolParams())))
    t, _, left, _ = cfg.pad
    S = _window_reduce(x, 1, -t, cfg.Kh, cfg.stride[0], cfg.Ho, jnp.add, 0)
    S = _window_reduce(S, 2, -left, cfg.Kw, cfg.stride[1], cfg.Wo, jnp.add, 0)
    return _avg_finish(g._replace(**types), S, p)
