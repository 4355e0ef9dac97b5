"""Differentiable cost: the expected network cost under per-layer softmax distributions over precisions, and a
smooth closed-form model of the same counts for layer shapes that are not tabulated.

Legend: V configuration variables (one per activation tensor, one per weighted layer; see
``jaxpulp.costtable.config_space``), C choices per variable, L layers, N = 7 type slots per table axis.

* ``surrogate_tables(space)`` -> ``SurrogateTables`` (a pytree of float32 arrays).
* ``expected_cost(st, probs)``: probs ``[V, C]`` (rows sum to 1 over each variable's choices) ->
  expected cycles, energy_pj, weight_bytes (exact expectations: every layer's cost is a function of its
  input, weight / second input and output variables, and a tensor's variable is *shared* by its producer and
  its consumers, so layer i's output precision is layer i+1's input precision), per-layer expected
  activation bytes, a smooth peak (``peak_act_bytes``, a log-sum-exp over layers) and ``unsupported``
  (expected number of layers at a precision the library does not run; their table entries cost
  ``penalty`` times the layer's dearest supported entry). At one-hot ``probs`` the additive costs equal
  ``costtable.evaluate`` exactly.
* ``softmax_probs(st, logits, temperature)``: the per-variable softmax over valid choices.
* ``smooth_table(net, target)``: a ``CostTable`` whose cycles / energy come from the closed-form model
  ``smooth_layer_cost`` (fitted once to the exact model by ``fit_smooth_model``; bytes are exact), for
  shapes that are too many or too large to tabulate; differentiable in the layer shape as well.

Everything is ``jnp``: works under ``jit``, ``vmap`` and ``jax.grad``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import costtable
from jaxpulp._checks import is_int
from jaxpulp.costtable import N
from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.qtypes import QType

ADDITIVE = ("cycles", "energy_pj", "weight_bytes")
# full float32 contractions: a GPU's default (TF32, 10-bit mantissa) put the expected cycles ~1e-3 off the exact
# cost and broke the one-hot == exact-cost and gradient == finite-difference checks on an H200
_HIGHEST = jax.lax.Precision.HIGHEST


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SurrogateTables:
    """Arrays of the surrogate (a pytree).

    cost [4, L, N, N, N] float32: cycles, energy_pj, weight_bytes, act_bytes per layer and type triple
    (unsupported entries: penalty); unsupported [L, N, N, N] float32 (0 / 1); slot_vars [L, 3] int32 (V for an
    unused slot); choice_index [V, C] int32: the universal-axis slot of each choice; valid [V, C] bool.
    """

    cost: jax.Array
    unsupported: jax.Array
    slot_vars: jax.Array
    choice_index: jax.Array
    valid: jax.Array


def _concrete(x):
    """``x`` as a numpy array, or None where it is traced (under ``jit`` / ``grad``: no value to check)."""
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, jax.Array):
        return np.asarray(x)
    return x


def _positive(name: str, value, *, zero_ok: bool = False):
    """Check a scalar hyper-parameter (Python, numpy or 0-d array; traced: shape only): finite and > 0 (>= 0
    with ``zero_ok``). Returns it unchanged."""
    what = "a finite number >= 0" if zero_ok else "a finite number > 0"
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
        raise JaxpulpError(f"{name}={value!r}: expected {what}")
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise JaxpulpError(f"{name}: shape {jnp.shape(value)}, expected a scalar")
        return value
    try:
        a = np.asarray(_concrete(value))
    except (TypeError, ValueError):
        raise JaxpulpError(f"{name}={value!r}: expected {what}") from None
    if a.ndim != 0 or a.dtype.kind not in "iuf":
        raise JaxpulpError(f"{name}={value!r}: expected {what} (a scalar)")
    v = float(a)
    if not (np.isfinite(v) and (v >= 0 if zero_ok else v > 0)):
        raise JaxpulpError(f"{name}={value!r}: expected {what}")
    return value


def surrogate_tables(space, penalty: float = 2.0) -> SurrogateTables:
    """The surrogate's arrays for ``space`` (a ``ConfigSpace``). penalty: an unsupported entry costs
    ``penalty`` x the layer's largest supported cost (cycles and energy; bytes stay exact)."""
    if not isinstance(space, costtable.ConfigSpace):
        raise JaxpulpError(f"space={type(space).__name__}: expected a costtable.ConfigSpace "
                           "(costtable.config_space(table))")
    _positive("penalty", penalty, zero_ok=True)
    t = space.table
    sup = t.supported
    fields = [t.cycles.astype(np.float64), t.energy_pj, t.weight_bytes.astype(np.float64),
              t.act_bytes.astype(np.float64)]
    cost = np.stack(fields).astype(np.float64)
    for f in range(2):
        worst = np.where(sup, cost[f], 0).reshape(len(t.layers), -1).max(axis=1)
        cost[f] = np.where(sup, cost[f], penalty * worst[:, None, None, None])
    V = len(space.variables)
    C = max(len(v.choices) for v in space.variables)
    ci = np.zeros((V, C), np.int32)
    valid = np.zeros((V, C), bool)
    kind_of: dict = {}
    for li, lay in enumerate(t.layers):
        for s in range(3):
            kind_of.setdefault(int(np.asarray(space.arrays.slot_vars)[li, s]), (lay.kind, s))
    for k, v in enumerate(space.variables):
        kind, s = kind_of.get(k, ("conv", 0))
        for c, typ in enumerate(v.choices):
            ci[k, c] = costtable.axis_index(kind, s, typ)
            valid[k, c] = True
    return SurrogateTables(jnp.asarray(cost, jnp.float32), jnp.asarray(~sup, jnp.float32),
                           jnp.asarray(space.arrays.slot_vars), jnp.asarray(ci), jnp.asarray(valid))


def softmax_probs(st: SurrogateTables, logits, temperature=1.0):
    """Per-variable softmax ``[V, C]`` of ``logits / temperature`` over each variable's valid choices."""
    try:
        _positive("temperature", temperature)  # traced: the caller's
    except JaxpulpError as e:
        raise JaxpulpError(f"{e} (0 gives NaN probabilities)") from None
    logits = _check_vc(st, logits, "logits")
    z = jnp.where(st.valid, logits / temperature, -jnp.inf)
    return jax.nn.softmax(z, axis=-1)


def one_hot_probs(st: SurrogateTables, config):
    """The one-hot ``[V, C]`` distribution of configuration ``config`` ``[V]``."""
    V, C = st.valid.shape
    try:
        cfg = jnp.asarray(config)
    except (TypeError, ValueError):
        raise JaxpulpError(f"config={config!r}: expected [{V}] integer choice indices") from None
    if cfg.shape != (V,) or not jnp.issubdtype(cfg.dtype, jnp.integer):
        raise JaxpulpError(f"config: shape {cfg.shape} dtype {cfg.dtype}, expected [{V}] integer choice indices")
    c = _concrete(cfg)
    if c is not None:
        n = np.asarray(st.valid).sum(axis=1)
        bad = np.flatnonzero((c < 0) | (c >= n))
        if bad.size:
            k = int(bad[0])
            raise JaxpulpError(f"config[{k}]={int(c[k])}: expected a choice index in 0..{int(n[k]) - 1}")
    return jax.nn.one_hot(cfg, C, dtype=jnp.float32)


def _check_vc(st: SurrogateTables, x, name: str):
    """``x`` as a float ``[V, C]`` array (shape and dtype checked; never broadcast)."""
    V, C = st.valid.shape
    try:
        a = jnp.asarray(x)
    except (TypeError, ValueError):
        raise JaxpulpError(f"{name}={x!r}: expected a float array [{V}, {C}]") from None
    if a.shape != (V, C) or not (jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.integer)):
        raise JaxpulpError(f"{name}: shape {a.shape} dtype {a.dtype}, expected a float array [{V}, {C}] "
                           "(one row per configuration variable)")
    return a


def check_probs(st: SurrogateTables, probs, tol: float = 1e-5):
    """``probs`` as a ``[V, C]`` array; where it is concrete, also check every row is a distribution over the
    variable's valid choices: finite, >= 0, summing to 1 (within ``tol``), no mass on invalid (padding)
    choices (``st.valid`` false)."""
    p = _check_vc(st, probs, "probs")
    c = _concrete(p)
    if c is None:
        return p
    c = np.asarray(c, np.float64)
    valid = np.asarray(st.valid)
    checks = ((~np.isfinite(c), "is not finite"), (c < 0, "is negative"),
              ((~valid) & (c != 0), "puts mass on an invalid choice (past the variable's choices)"))
    for mask, what in checks:
        if mask.any():
            k, j = (int(i) for i in np.argwhere(mask)[0])
            raise JaxpulpError(f"probs[{k}, {j}]={c[k, j]!r} {what}; expected per-variable probabilities "
                               f"over the valid choices (st.valid)")
    s = c.sum(axis=1)
    bad = np.flatnonzero(np.abs(s - 1) > tol)
    if bad.size:
        k = int(bad[0])
        raise JaxpulpError(f"probs[{k}] sums to {s[k]!r}: expected each row to sum to 1 (within {tol})")
    return p


def _universal(st: SurrogateTables, probs):
    V = st.valid.shape[0]
    p = jnp.where(st.valid, probs, 0.0)
    uni = jnp.zeros((V + 1, N), p.dtype).at[jnp.arange(V)[:, None], st.choice_index].add(p)
    return uni.at[V, 0].set(1.0)  # the unused slot of pools: always entry 0


def layer_weights(st: SurrogateTables, probs):
    """``[L, N, N, N]``: the probability of each table entry of each layer. Independent variables multiply;
    a variable in two slots of one layer (a pool whose output keeps its input's type, ``add(x, x)``) puts
    its mass on the diagonal."""
    uni = _universal(st, probs)
    sv = st.slot_vars
    pa, pb, pc = (uni[sv[:, s]] for s in range(3))  # [L, N] each
    eye = jnp.eye(N, dtype=uni.dtype)
    e01, e02, e12 = sv[:, 0] == sv[:, 1], sv[:, 0] == sv[:, 2], sv[:, 1] == sv[:, 2]
    w = jnp.einsum("la,lb,lc->labc", pa, pb, pc, precision=_HIGHEST)
    w = jnp.where(e02[:, None, None, None], jnp.einsum("la,lb,ac->labc", pa, pb, eye, precision=_HIGHEST), w)
    w = jnp.where(e01[:, None, None, None], jnp.einsum("la,ab,lc->labc", pa, eye, pc, precision=_HIGHEST), w)
    w = jnp.where(e12[:, None, None, None], jnp.einsum("la,lb,bc->labc", pa, pb, eye, precision=_HIGHEST), w)
    all3 = (e01 & e02)[:, None, None, None]
    return jnp.where(all3, jnp.einsum("la,ab,bc->labc", pa, eye, eye, precision=_HIGHEST), w)


def layer_expectations(st: SurrogateTables, probs):
    """Expected cost of every layer: ``[5, L]`` (cycles, energy_pj, weight_bytes, act_bytes, unsupported)."""
    w = layer_weights(st, probs)
    tabs = jnp.concatenate([st.cost, st.unsupported[None]], axis=0).astype(w.dtype)
    return jnp.einsum("labc,flabc->fl", w, tabs, precision=_HIGHEST)


def expected_cost(st: SurrogateTables, probs, peak_temperature: float = 1024.0) -> dict:
    """Expected network cost under independent per-variable distributions ``probs`` ``[V, C]``.

    Returns scalars cycles (cycles), energy_pj (pJ), weight_bytes, peak_act_bytes (bytes; smooth maximum
    ``t * logsumexp(act_l / t)`` of the per-layer expected activation bytes, ``t = peak_temperature`` bytes:
    within ``t * log L`` above the true maximum of the expectations), unsupported (expected number of layers
    the library does not run), and act_bytes ``[L]``.
    """
    probs = check_probs(st, probs)
    _positive("peak_temperature", peak_temperature)
    e = layer_expectations(st, probs)
    act = e[3]
    peak = peak_temperature * jax.nn.logsumexp(act / peak_temperature)
    return {"cycles": jnp.sum(e[0]), "energy_pj": jnp.sum(e[1]), "weight_bytes": jnp.sum(e[2]),
            "peak_act_bytes": peak, "unsupported": jnp.sum(e[4]), "act_bytes": act}


def expected_cost_from_logits(st: SurrogateTables, logits, temperature=1.0, **kw) -> dict:
    """``expected_cost(st, softmax_probs(st, logits, temperature))``."""
    return expected_cost(st, softmax_probs(st, logits, temperature), **kw)


# ------------------------------------------------------------------------------------ smooth closed form

FAMILIES = ("conv", "pointwise", "depthwise", "linear", "maxpool", "avgpool", "add")
# r = output rows per core, p = output pixel pairs per core (the conv split gives a core whole rows or half
# rows, so about Ho*Wo/(2n) pairs), c = depthwise channel groups per core, m = neurons per core: smooth
# versions of the library's ceil(work / cores) splits (``smax(x, 1)``: a core that works does one unit).
FEATURES = {
    "conv": ("1", "r", "p", "p*K", "p*Co", "p*Co*K"),
    "pointwise": ("1", "r", "p", "p*K", "p*Co", "p*Co*K"),
    "depthwise": ("1", "c", "c*Wo", "c*Wo*H", "c*Wo*Ho", "c*Wo*Ho*K"),
    "linear": ("1", "m", "N", "N*m"),
    "maxpool": ("1", "r", "r*Wo*C", "r*Wo*C*K", "H*W*C/n"),
    "avgpool": ("1", "r", "r*Wo*C", "r*Wo*C*K", "H*W*C/n"),
    "add": ("1", "H/n", "H*W*C/n"),
}


def smax1(x, sharpness: float = 0.1):
    """Smooth max(x, 1): 0.5 * (x + 1 + sqrt((x - 1)**2 + sharpness))."""
    return 0.5 * (x + 1.0 + jnp.sqrt((x - 1.0) ** 2 + sharpness))


def geometry(lay) -> dict:
    """A layer's shape as floats (the smooth model's inputs): H, W, Ci, Ho, Wo, Co, Kh, Kw."""
    from jaxpulp.network.graph import Layer

    if not isinstance(lay, Layer):
        raise JaxpulpError(f"lay={type(lay).__name__}: expected a jaxpulp Layer")
    H, W, C = lay.in_shape
    Ho, Wo, Co = lay.out_shape
    return dict(H=float(H), W=float(W), Ci=float(C), Ho=float(Ho), Wo=float(Wo), Co=float(Co),
                Kh=float(lay.kernel[0]), Kw=float(lay.kernel[1]))


def features(family: str, g: dict, num_cores: int, group: int = 1):
    """The smooth model's features ``[F]`` (``FEATURES``) of family ``family`` at geometry ``g`` (``geometry``;
    values may be traced floats: the features are smooth, so the model is differentiable in the shape too).
    group: channels per depthwise group, 8 / min(bits)."""
    n = float(_check_cores(num_cores))
    H, W, Ci, Ho, Wo, Co, Kh, Kw = (jnp.asarray(g[k], jnp.float32) for k in ("H", "W", "Ci", "Ho", "Wo", "Co",
                                                                             "Kh", "Kw"))
    one = jnp.ones_like(H)
    if family in ("conv", "pointwise"):
        K = Ci * Kh * Kw
        r = smax1(Ho / n)
        p = smax1(Ho * Wo / (2 * n))
        f = [one, r, p, p * K, p * Co, p * Co * K]
    elif family == "depthwise":
        c = smax1(Co / (group * n))
        f = [one, c, c * Wo, c * Wo * H, c * Wo * Ho, c * Wo * Ho * Kh * Kw]
    elif family == "linear":
        Nn = H * W * Ci
        m = smax1(Co / n)
        f = [one, m, Nn, Nn * m]
    elif family in ("maxpool", "avgpool"):
        r = smax1(Ho / n)
        f = [one, r, r * Wo * Co, r * Wo * Co * Kh * Kw, H * W * Ci / n]
    elif family == "add":
        f = [one, H / n, H * W * Ci / n]
    else:
        raise JaxpulpError(f"family={family!r}: expected one of {FAMILIES}")
    return jnp.stack(f)


def _check_cores(num_cores) -> int:
    if not is_int(num_cores) or num_cores < 1:
        raise JaxpulpError(f"num_cores={num_cores!r}: expected an int >= 1 (cores the layer is split over)")
    return int(num_cores)


def _check_geometry(g) -> None:
    keys = ("H", "W", "Ci", "Ho", "Wo", "Co", "Kh", "Kw")
    if not isinstance(g, dict) or any(k not in g for k in keys):
        got = sorted(g) if isinstance(g, dict) else type(g).__name__
        raise JaxpulpError(f"g={got}: expected a geometry dict with keys {keys} (surrogate.geometry(layer))")


def _group(family: str, a, b, c) -> int:
    if family != "depthwise":
        return 1
    return 8 // min(a.bits, b.bits, c.bits)


def _fit_grid(family: str) -> list:
    """Layer shapes the smooth model is fitted on (channel counts multiples of 8, 2 to 128 pixels a side)."""
    from jaxpulp.network.graph import Layer

    U8, I8 = QType.parse("u8"), QType.parse("i8")

    out = []
    if family in ("conv", "pointwise"):
        k = 3 if family == "conv" else 1
        for H, C, Co, s in itertools.product((4, 8, 16, 32, 64), (8, 32, 128), (8, 32, 128), (1, 2)):
            if family == "pointwise" and s == 2:
                continue
            p = k // 2
            Ho = (H + 2 * p - k) // s + 1
            out.append(Layer("l", "conv", ("x",), "y", (H, H, C), (Ho, Ho, Co), U8, U8, I8, kernel=(k, k),
                             stride=(s, s), pad=(p,) * 4))
    elif family == "depthwise":
        for H, C, s in itertools.product((4, 8, 16, 32, 64, 128), (8, 16, 64, 256), (1, 2)):
            Ho = (H + 2 - 3) // s + 1
            out.append(Layer("l", "depthwise", ("x",), "y", (H, H, C), (Ho, Ho, C), U8, U8, I8,
                             kernel=(3, 3), stride=(s, s), pad=(1, 1, 1, 1)))
    elif family == "linear":
        for Nn, M in itertools.product((64, 256, 1024), (8, 10, 16, 64, 128)):
            out.append(Layer("l", "linear", ("x",), "y", (1, 1, Nn), (1, 1, M), U8, U8, I8))
    elif family in ("maxpool", "avgpool"):
        for H, C, glob in itertools.product((2, 4, 8, 16, 32), (16, 64, 256), (False, True)):
            k = H if glob else 2
            out.append(Layer("l", family, ("x",), "y", (H, H, C), (H // k, H // k, C), U8, U8, kernel=(k, k),
                             stride=(k, k), requant=0))
    elif family == "add":
        for H, C in itertools.product((4, 8, 16, 32, 64), (16, 64, 256)):
            out.append(Layer("l", "add", ("x", "z"), "y", (H, H, C), (H, H, C), U8, U8, in2_type=U8))
    return out


def fit_smooth_model(target="gap8", families=FAMILIES, log=None) -> dict:
    """Fit the closed-form model to the exact cost model: per family and type triple, non-negative least
    squares of relative error over ``_fit_grid``. Returns {family: {"in,mid,out": {"cycles": [F], "energy_pj":
    [F]}}} (the content of ``jaxpulp.smooth_fit.COEFFS``, stored as ``jaxpulp/data/smooth_fit.json``)."""
    from scipy.optimize import nnls

    from jaxpulp.cost import kernel_cost

    tgt, cluster = costtable.target_and_cluster(target)
    out = {}
    for fam in families:
        grid = _fit_grid(fam)
        kind = grid[0].kind
        rows: dict = {}
        for lay in grid:
            feats = {G: np.asarray(features(fam, geometry(lay), tgt.num_cores, G), np.float64) for G in (1, 2, 4)}
            for a, b, c in itertools.product(*(costtable.axis_types(kind, s) for s in range(3))):
                if a.bits == 32 or (c.bits == 32 and not kinds.of(kind).int32_out):
                    continue
                try:
                    cfg = costtable.check_layer(costtable.layer_at(lay, a, b, c), cluster)
                except JaxpulpError:
                    continue
                if cfg.family != fam:
                    continue
                cc = kernel_cost(cfg, tgt)
                key = f"{a},{b or '-'},{c}"
                rows.setdefault(key, []).append((feats[_group(fam, a, b, c)], cc.cycles, cc.energy_pj))
        coeffs = {}
        for key, data in rows.items():
            A = np.stack([d[0] for d in data])
            res = {}
            for j, name in ((1, "cycles"), (2, "energy_pj")):
                y = np.array([d[j] for d in data], np.float64)
                scale = A.max(axis=0)
                scale[scale == 0] = 1
                theta, _ = nnls((A / scale) / y[:, None], np.ones(len(y)))
                res[name] = [float(f"{v:.6g}") for v in theta / scale]
            coeffs[key] = res
        out[fam] = coeffs
        if log:
            log(f"{fam}: {len(coeffs)} type triples on {len(grid)} shapes")
    return out


@functools.cache
def _coeff_arrays(family: str):
    """([2, N, N, N, F] float32 coefficients (cycles, energy) on the universal axes, [N, N, N] index of each
    triple's depthwise group size in (1, 2, 4))."""
    from jaxpulp.smooth_fit import COEFFS

    if family not in COEFFS:
        raise JaxpulpError(f"family={family!r}: the smooth model has no fit for it; expected one of {sorted(COEFFS)}")
    F = len(FEATURES[family])
    th = np.zeros((2, N, N, N, F), np.float32)
    gidx = np.zeros((N, N, N), np.int32)
    kind = kinds.FAMILY_KIND[family]
    for (ia, a), (ib, b), (ic, c) in itertools.product(*(enumerate(costtable.axis_types(kind, s)) for s in range(3))):
        key = f"{a},{b or '-'},{c}"
        if key in COEFFS[family]:
            th[0, ia, ib, ic] = COEFFS[family][key]["cycles"]
            th[1, ia, ib, ic] = COEFFS[family][key]["energy_pj"]
            gidx[ia, ib, ic] = (1, 2, 4).index(_group(family, a, b, c))  # 0 (group 1) but for depthwise
    return jnp.asarray(th), jnp.asarray(gidx)


def smooth_layer_cost(family: str, g: dict, num_cores: int = 8):
    """Closed-form (cycles, energy_pj) ``[2, N, N, N]`` of a layer of ``family`` at geometry ``g`` for every
    type triple (``jnp``, differentiable in ``g``'s values); zero where the fit has no such kernel."""
    _check_cores(num_cores)
    _check_geometry(g)
    th, gidx = _coeff_arrays(family)
    feats = jnp.stack([features(family, g, num_cores, G) for G in (1, 2, 4)])  # [3, F]
    return jnp.einsum("xabcf,abcf->xabc", th, feats[gidx], precision=_HIGHEST)


# Target fields the smooth fit does not depend on: cycles scale with num_cores through the features, energy is
# per cycle (not per second)
_FIT_FREE = ("name", "num_cores", "freq_hz", "voltage", "description")


def _fit_covers(tgt) -> bool:
    from jaxpulp.cost import resolve_target
    from jaxpulp.smooth_fit import TARGET

    fit = resolve_target(TARGET)
    return all(getattr(tgt, f.name) == getattr(fit, f.name) for f in dataclasses.fields(fit)
               if f.name not in _FIT_FREE)


def check_fit_target(tgt) -> None:
    """Raise unless the smooth fit (fitted on ``jaxpulp.smooth_fit.TARGET``) models target ``tgt``: the same ISA,
    cycle and energy constants; only the core count and clock may differ."""
    if not _fit_covers(tgt):
        from jaxpulp.cost.targets import TARGETS

        ok = [n for n, t in TARGETS.items() if _fit_covers(t)]
        raise JaxpulpError(f"target={tgt.name!r}: the smooth cost model is fitted for a different machine; expected "
                           f"one of {ok} (or build_table(net, {tgt.name!r}) for the exact costs)")


def smooth_table(net, target="gap8") -> costtable.CostTable:
    """A ``CostTable`` with the same layout as ``build_table`` but cycles / energy from the closed-form model
    (bytes exact; ``supported`` and each entry's kernel family from the library's rules, which are cheap). For
    shapes not worth tabulating."""
    from jaxpulp.network.graph import Network

    if not isinstance(net, Network):
        raise JaxpulpError(f"net={type(net).__name__}: expected a jaxpulp Network")
    tgt, cluster = costtable.target_and_cluster(target)
    check_fit_target(tgt)
    L = len(net.layers)
    shape = (L, N, N, N)
    cyc, en = np.zeros(shape, np.int64), np.zeros(shape)
    wb, ab = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    sup = np.zeros(shape, bool)
    kern = np.full(shape, "unsupported: not a kernel", dtype=object)
    for li, lay in enumerate(net.layers):
        smooth = {}
        for (ia, a), (ib, b), (ic, c) in itertools.product(
                *(enumerate(costtable.axis_types(lay.kind, s)) for s in range(3))):
            if a.bits == 32:
                continue
            try:
                cfg = costtable.check_layer(costtable.layer_at(lay, a, b, c), cluster)
            except JaxpulpError as e:
                if hasattr(e, "rule"):
                    kern[li, ia, ib, ic] = f"unsupported: {e.rule}"
                continue
            fam = cfg.family
            if fam not in smooth:
                smooth[fam] = np.asarray(smooth_layer_cost(fam, geometry(lay), tgt.num_cores))
            cyc[li, ia, ib, ic] = int(np.rint(smooth[fam][0, ia, ib, ic]))
            en[li, ia, ib, ic] = smooth[fam][1, ia, ib, ic]
            sup[li, ia, ib, ic] = True
            kern[li, ia, ib, ic] = cfg.c_name
            wb[li, ia, ib, ic], ab[li, ia, ib, ic] = costtable.entry_bytes(lay, a, b, c)
    return costtable.CostTable(net.name, tgt.name, tuple(net.layers), net.input.name, net.input.qtype, cyc, en,
                               wb, ab, ab + wb, sup, kern, model="smooth")


def write_fit(path: str, coeffs: dict) -> None:
    """Write ``coeffs`` (``fit_smooth_model``) as the JSON package data read by ``jaxpulp.smooth_fit``."""
    import jaxpulp
    from jaxpulp import smooth_fit

    smooth_fit.dump(coeffs, path, fitted_with=f"jaxpulp {jaxpulp.__version__}", target="gap8")


def _main(argv=None) -> int:
    import argparse
    import os
    import sys

    p = argparse.ArgumentParser(prog="python -m jaxpulp.surrogate", description="refit the smooth cost model")
    p.add_argument("command", choices=["fit"])
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data", "smooth_fit.json"))
    args = p.parse_args(argv)
    coeffs = fit_smooth_model(log=lambda m: print(m, file=sys.stderr, flush=True))
    write_fit(args.out, coeffs)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
