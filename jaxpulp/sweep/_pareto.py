"""The Pareto front of sweep results (cycles, memory, metric) and its plot."""
from __future__ import annotations

from typing import Any

import numpy as np

from jaxpulp.errors import JaxpulpError

MAXIMISE = ("agreement", "accuracy")
METRIC_LABELS = {"error": "error = ||y - y_8bit||_2 / ||y_8bit||_2 (0 = exact)",
                 "agreement": "agreement: fraction of inputs with the 8-bit network's class",
                 "accuracy": "accuracy: fraction of inputs with the label's class"}


def reference_row(rows):
    """The supported row whose every variable is 8-bit (the all-8-bit network; an int32 output, which has no
    8-bit choice, counts as such), or None."""
    for r in rows:
        conf = r.get("config") or {}
        if conf and r.get("supported", True) and all(str(v)[1:] in ("8", "32") for v in conf.values()):
            return r
    return None


def reference_from_spec(spec: dict) -> dict:
    """The all-8-bit configuration's exact cost (``costtable.reference_cost``: cycles, memory_bytes, ...) in the
    space of the sweep ``spec`` (its ``.meta.json``), with ``error`` 0 by definition: the reference point of a
    sampled sweep, whose rows rarely hold it. A variable without an 8-bit choice keeps its first choice."""
    from jaxpulp import costtable
    from jaxpulp.sweep._driver import SweepSpec, prepare

    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()
              if k in SweepSpec.__dataclass_fields__}
    _, _, space, _, _ = prepare(SweepSpec(**fields))
    types = {v.name: next((str(c) for c in v.choices if str(c)[1:] == "8"), str(v.choices[0]))
             for v in space.variables}
    out = costtable.reference_cost(space, space.config_of(types))
    return dict(out, error=0.0, config=types)


BOOKKEEPING = ("index", "seed")  # result columns that number or reproduce a row, not measure it


def parse_objectives(spec, rows=None) -> list:
    """``"cycles,memory_bytes,error:min"`` -> [(name, +1 minimise / -1 maximise)]. Default (None): cycles,
    memory_bytes and the first metric the rows carry (error, else accuracy)."""
    if spec is not None and not isinstance(spec, str):
        raise JaxpulpError(f"objectives={spec!r:.80}: expected None (the default) or a comma-separated string such "
                           "as 'cycles,memory_bytes,error:min'")
    if spec is None:
        names = ["cycles", "memory_bytes"]
        if rows:
            for m in ("error", "accuracy"):
                if any(r.get(m) is not None for r in rows):
                    names.append(m)
                    break
        spec = ",".join(names)
    out: list[tuple[str, int]] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, d = item.partition(":")
        if d not in ("", "min", "max"):
            raise JaxpulpError(f"objectives: {item!r}: expected NAME, NAME:min or NAME:max")
        sign = -1 if d == "max" or (not d and name in MAXIMISE) else 1
        if name in (n for n, _ in out):
            raise JaxpulpError(f"objectives={spec!r}: column {name!r} given twice")
        if name in BOOKKEEPING:
            raise JaxpulpError(f"objectives={spec!r}: {name!r} is the sweep's bookkeeping (row number / sampling "
                               "seed), not a quantity to optimise; expected e.g. cycles, memory_bytes, error")
        out.append((name, sign))
    if not out:
        raise JaxpulpError(f"objectives={spec!r}: expected at least one column name")
    return out


def objective_matrix(rows, objectives) -> tuple:
    """(points [N, k] to minimise, indices of the rows used): supported rows with every objective present and
    not NaN (a NaN is comparable with nothing: such a row was on every front)."""
    keep, pts = [], []
    for i, r in enumerate(rows):
        if not r.get("supported", True):
            continue
        vals = [r.get(name) for name, _ in objectives]
        if any(v is None for v in vals):
            continue
        for v, (name, _) in zip(vals, objectives, strict=True):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise JaxpulpError(f"objectives: column {name!r} of row {r.get('index', i)} is {v!r}, expected a "
                                   "number")
        if any(v != v for v in vals):  # NaN
            continue
        keep.append(i)
        pts.append([s * float(v) for v, (_, s) in zip(vals, objectives, strict=True)])
    if rows and not keep:
        missing = [name for name, _ in objectives if all(r.get(name) is None for r in rows)]
        if missing:
            raise JaxpulpError(f"objectives: {missing} not in the results (columns: {sorted(rows[0])})")
    return np.asarray(pts, np.float64).reshape(-1, len(objectives)), np.asarray(keep, np.int64)


def pareto_front(points) -> np.ndarray:
    """Indices (ascending) of the non-dominated rows of ``points`` [N, k] (all objectives minimised): row i
    is dominated when some row is <= in every objective and < in one. Equal rows are all kept. A row with a NaN
    is comparable with nothing and is never on the front (as ``front_rows`` leaves such rows out)."""
    try:
        P = np.asarray(points, np.float64)
    except (ValueError, TypeError) as e:
        raise JaxpulpError(f"points={points!r:.80}: expected a numeric (N, k) array of objective values "
                           f"({e})") from None
    if P.ndim != 2 or P.shape[1] < 1:
        raise JaxpulpError(f"points: shape {P.shape}, expected (N, k) with k >= 1 objectives")
    finite = ~np.isnan(P).any(axis=1)
    if not finite.all():
        rows = np.flatnonzero(finite)
        return rows[_front(P[rows])]
    return _front(P)


def _front(P: np.ndarray) -> np.ndarray:
    """``pareto_front`` of a (N, k >= 1) float64 array without NaN."""
    N, k = P.shape
    if N == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort(P.T[::-1])  # by the first objective, then the next...
    S = P[order]
    if k == 1:
        keep = S[:, 0] == S[0, 0]
        return np.sort(order[keep])
    if k == 2:
        # sorted by (x, y): a row is on the front iff its y is below every y of a strictly smaller x, and
        # equal to the first y of its own x group (same x, larger y is dominated)
        x, y = S[:, 0], S[:, 1]
        first = np.r_[True, x[1:] != x[:-1]]
        gstart = np.maximum.accumulate(np.where(first, np.arange(N), 0))
        ymin_group = y[gstart]
        prev_best = np.full(N, np.inf)
        best = np.minimum.accumulate(y)
        prev_best[1:] = best[:-1]
        prev_best = prev_best[gstart]  # best y over rows of strictly smaller x
        keep = (y == ymin_group) & (y < prev_best)
        return np.sort(order[keep])
    front = []
    F = np.empty((0, k))
    for i in range(N):
        p = S[i]
        if len(F) and np.any(np.all(F <= p, axis=1) & np.any(F < p, axis=1)):
            continue
        front.append(i)
        F = S[front]
    return np.sort(order[np.asarray(front, np.int64)])


def front_rows(rows, objectives) -> list:
    """The rows on the front of ``objectives`` (see ``parse_objectives``), sorted by the first objective."""
    pts, keep = objective_matrix(rows, objectives)
    idx = keep[pareto_front(pts)]
    name = objectives[0][0]
    return sorted((rows[i] for i in idx), key=lambda r: objectives[0][1] * r[name])


def plot_front(rows, front, png: str, *, x: str = "cycles", y: str = "memory_bytes", color: str | None = None,
               title: str | None = None, staircase: bool = True, reference: dict | None = None) -> str:
    """Scatter of every supported row (``x`` vs ``y``), the front highlighted, coloured by ``color`` (e.g. the
    metric) when given; ``staircase`` joins a two-objective front. Written to ``png``; needs matplotlib."""
    import os

    from jaxpulp._io import check_output_path

    check_output_path(os.fspath(png) if isinstance(png, os.PathLike) else png, "png=")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise JaxpulpError("plotting needs matplotlib (pip install 'jaxpulp[plot]')") from None
    ok = [r for r in rows if r.get("supported", True) and r.get(x) is not None and r.get(y) is not None]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    X = np.array([r[x] for r in ok], float)
    Y = np.array([r[y] for r in ok], float)
    fx = np.array([r[x] for r in front], float)
    fy = np.array([r[y] for r in front], float)
    if color and all(r.get(color) is not None for r in ok) and ok:
        c = np.array([r[color] for r in ok], float)
        fc = np.array([r[color] for r in front], float)
        sc = ax.scatter(X, Y, c=c, s=6, cmap="viridis", alpha=0.6, linewidths=0)
        fig.colorbar(sc, ax=ax, label=METRIC_LABELS.get(color, color))
        # filled with their metric colour, ringed in crimson: the colour stays visible
        ax.scatter(fx, fy, c=fc, cmap="viridis", vmin=c.min(), vmax=c.max(), s=30, edgecolors="crimson",
                   linewidths=1.0, label=f"Pareto front ({len(front)})", zorder=3)
    else:
        ax.scatter(X, Y, s=6, color="0.6", alpha=0.5, linewidths=0, label="configurations")
        ax.scatter(fx, fy, s=28, color="crimson", label=f"Pareto front ({len(front)})", zorder=3)
    ref = reference_row(rows) or reference
    if ref is not None and ref.get(x) is not None and ref.get(y) is not None:
        ax.scatter([ref[x]], [ref[y]], marker="*", s=160, color="black", label="all 8-bit", zorder=4)
    if staircase and len(fx):
        o = np.argsort(fx)
        ax.step(fx[o], fy[o], where="post", color="crimson", lw=0.8, alpha=0.7)
    labels = {"cycles": "cycles per inference", "memory_bytes": "memory: weights + peak activations (bytes)",
              **METRIC_LABELS}
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(labels.get(y, y))
    ax.set_title(title or f"{len(ok):,} configurations")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
