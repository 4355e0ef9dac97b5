"""Results files: JSONL rows (one configuration per line, written a chunk at a time), a ``.meta.json`` sidecar
that identifies the sweep, the scan that makes a restarted sweep resume, and the Parquet copy.

Row keys: ``index`` (position in the sweep's enumeration or random stream), ``key`` (hash of the
configuration), ``seed``, ``version`` (jaxpulp), ``config`` (variable -> type), ``supported``, ``cycles``,
``energy_pj``, ``weight_bytes``, ``peak_act_bytes``, ``memory_bytes``, ``l1_bytes``, ``l1_fit``, ``l2_fit``
(costs null when unsupported) and, for metric sweeps, ``error``, ``agreement`` (and ``accuracy``).
"""
from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import types
from typing import NamedTuple

import numpy as np

from jaxpulp.errors import JaxpulpError

COST_FIELDS = ("cycles", "energy_pj", "weight_bytes", "peak_act_bytes", "memory_bytes", "l1_bytes", "l1_fit",
               "l2_fit")
METRIC_FIELDS = ("error", "agreement", "accuracy")


def meta_path(path: str) -> str:
    return path + ".meta.json"


def shard_path(path: str, shard: int, num_shards: int) -> str:
    """``runs/x.jsonl`` -> ``runs/x.shard3of8.jsonl`` (unchanged for a single shard)."""
    if num_shards == 1:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.shard{shard}of{num_shards}{ext or '.jsonl'}"


def expand_paths(paths) -> list:
    """Results files named by ``paths``: files, globs, and ``x.jsonl`` standing for its shard files."""
    out = []
    for p in ([paths] if isinstance(paths, str) else paths):
        hits = sorted(glob.glob(p))
        if not hits and not os.path.exists(p):
            stem, ext = os.path.splitext(p)
            hits = sorted(glob.glob(f"{stem}.shard*of*{ext}"))
        if not hits:
            raise JaxpulpError(f"results={p!r}: no such file (nor shard files {os.path.splitext(p)[0]}.shard*of*)")
        out.extend(hits)
    return out


def scan_done(path: str, index_to_pos, n_local: int) -> tuple:
    """(done [n_local] bool, rows) of an existing results file. A last line without its newline (a sweep killed
    while writing) is cut off the file, so the restarted sweep rewrites that row exactly once; only after every
    complete line proved a row of this sweep (a file that is no results file is refused untouched)."""
    done = np.zeros(n_local, bool)
    if not os.path.exists(path):
        return done, 0
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    frag, head = data[end:].lstrip(), b'{"index"'
    if frag and not (frag.startswith(head) or head.startswith(frag)):  # not even the beginning of a row
        at = data[:end].count(b"\n") + 1
        raise JaxpulpError(f"{path}:{at}: not a results row (expected a JSON object with an 'index')")
    rows = 0
    for ln, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        idx = _row_index(line)
        if idx is None:
            raise JaxpulpError(f"{path}:{ln}: not a results row (expected a JSON object with an 'index')")
        pos = index_to_pos(idx)
        if not 0 <= pos < n_local:
            raise JaxpulpError(f"{path}:{ln}: index {idx} does not belong to this sweep / shard")
        if done[pos]:
            raise JaxpulpError(f"{path}:{ln}: index {idx} appears twice")
        done[pos] = True
        rows += 1
    if end != len(data):
        with open(path, "rb+") as f:
            f.truncate(end)
    return done, rows


def _row_index(line: bytes):
    """The ``index`` of a results row, or None unless the whole line is a JSON object with an int ``index`` (a
    corrupted line that merely starts like a row is not one)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    idx = obj.get("index")
    return idx if isinstance(idx, int) and not isinstance(idx, bool) else None


class _Lock(NamedTuple):
    file: io.BufferedWriter


@contextlib.contextmanager
def locked(path: str):
    """Open ``path`` for appending under an exclusive OS lock (``flock``; where unavailable, no lock): a second
    process on the same results file is refused instead of duplicating rows. A file this call created and left
    empty is removed on exit."""
    created = not os.path.exists(path)
    f = open(path, "ab")
    try:
        fcntl: types.ModuleType | None
        try:
            import fcntl as fcntl_posix
            fcntl = fcntl_posix
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise JaxpulpError(f"out={path!r}: another process is writing this results file; give each job "
                                   "its own --out or --shard K/N") from None
        yield _Lock(f)
    finally:
        try:
            if created and os.path.exists(path) and os.path.getsize(path) == 0:
                os.remove(path)
        finally:
            f.close()


def write_json_atomic(path: str, obj) -> None:
    """``obj`` as JSON at ``path``, written to a temporary file and renamed (never half-written)."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


class RowFormatter:
    """Turns evaluated chunks into JSONL text quickly (per-variable JSON fragments prepared once)."""

    def __init__(self, space, seed: int, version: str):
        self.frags = [[f"{json.dumps(v.name)}: \"{t}\"" for t in v.choices] for v in space.variables]
        self.tail = f'"seed": {int(seed)}, "version": {json.dumps(version)}'

    def lines(self, index, configs, res: dict) -> list:
        import hashlib

        cfg = np.asarray(configs)
        keys = [hashlib.blake2b(r.tobytes(), digest_size=8).hexdigest() for r in cfg.astype(np.int8)]
        cols = {k: np.asarray(v).tolist() for k, v in res.items()}
        metrics = [k for k in METRIC_FIELDS if k in cols]
        sup = cols["supported"]
        out = []
        frags = self.frags
        for j, (i, c) in enumerate(zip(np.asarray(index).tolist(), cfg.tolist(), strict=True)):
            conf = ", ".join([frags[v][x] for v, x in enumerate(c)])
            if sup[j]:
                costs = (f'"cycles": {cols["cycles"][j]}, "energy_pj": {cols["energy_pj"][j]:.1f}, '
                         f'"weight_bytes": {cols["weight_bytes"][j]}, "peak_act_bytes": {cols["peak_act_bytes"][j]}, '
                         f'"memory_bytes": {cols["memory_bytes"][j]}, "l1_bytes": {cols["l1_bytes"][j]}, '
                         f'"l1_fit": {"true" if cols["l1_fit"][j] else "false"}, '
                         f'"l2_fit": {"true" if cols["l2_fit"][j] else "false"}')
                for m in metrics:
                    v = cols[m][j]
                    costs += f', "{m}": {v:.6g}' if v == v else f', "{m}": null'
            else:
                costs = ", ".join(f'"{k}": null' for k in COST_FIELDS + tuple(metrics))
            out.append(f'{{"index": {i}, "key": "{keys[j]}", {self.tail}, "config": {{{conf}}}, '
                       f'"supported": {"true" if sup[j] else "false"}, {costs}}}\n')
        return out


def append_lines(f, lines) -> None:
    """One write per chunk, then flush and fsync: a kill leaves whole rows plus at most one partial line."""
    if not lines:
        return
    f.write("".join(lines).encode())
    f.flush()
    os.fsync(f.fileno())


def read_rows(paths) -> list:
    """Every row of the results files ``paths`` (JSONL, or Parquet when pyarrow is installed) as dicts."""
    rows = []
    for p in expand_paths(paths):
        rows.extend(_read_file(p))
    return rows


def _read_file(p: str) -> list:
    if os.path.isdir(p):
        raise JaxpulpError(f"results={p!r}: is a folder, expected a results file (.jsonl / .parquet)")
    if p.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise JaxpulpError(f"results={p!r}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        try:
            return pq.read_table(p).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds on a damaged file
            raise JaxpulpError(f"results={p!r}: not a readable Parquet file ({type(e).__name__}: "
                               f"{' '.join(str(e).split())[:200]})") from None
    rows = []
    with open(p, "rb") as f:
        for ln, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break  # a sweep is still writing (or was killed): its last line is not a row yet
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise JaxpulpError(f"{p}:{ln}: not a JSON row ({e})") from None
            if not isinstance(row, dict):
                raise JaxpulpError(f"{p}:{ln}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def sweep_meta_path(p: str) -> str:
    """The ``.meta.json`` of a results file (a Parquet copy ``x.parquet`` has ``x.jsonl``'s)."""
    if p.endswith(".parquet"):
        return os.path.splitext(p)[0] + ".jsonl.meta.json"
    return meta_path(p)


_IDENTITY = ("format", "version", "mode", "total", "table_digest", "data_digest", "variables", "spec")


class SweepRows(NamedTuple):
    """Rows read for ``jaxpulp pareto`` and what is known about their completeness: ``total`` configurations
    of the sweep (None without a ``.meta.json``), ``missing_shards`` (shard files of the sweep that were not
    given), ``notes`` (one line each)."""

    rows: list
    total: int | None
    missing_shards: list
    notes: list
    spec: dict | None = None  # the sweep's ``SweepSpec`` fields, from its ``.meta.json``


def read_sweep(paths) -> SweepRows:
    """The rows of one sweep's results files, checked against their ``.meta.json``: files of different sweeps
    are refused, as are shards of two different shard counts and rows present twice (e.g. ``x.jsonl`` and its
    Parquet copy); shard files of the sweep that are missing are listed. Files without a ``.meta.json`` are
    read unchecked (noted)."""
    files = expand_paths(paths)
    rows, notes, metas, per_file = [], [], {}, []
    seen: dict = {}
    for p in files:
        got = _read_file(p)
        mp = sweep_meta_path(p)
        meta = None
        if os.path.exists(mp):
            try:
                with open(mp) as f:
                    meta = json.load(f)
                if not isinstance(meta, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                raise JaxpulpError(f"{mp}: not a sweep's .meta.json ({e})") from None
            metas[p] = meta
        else:
            notes.append(f"{p}: no {os.path.basename(mp)}; its rows are not checked against the others")
        per_file.append((p, meta, got))
        rows.extend(got)
    if not rows:
        raise JaxpulpError(f"results={list(paths) if not isinstance(paths, str) else paths!r}: no complete rows "
                           f"in {', '.join(files)} (empty or truncated)")
    total, missing = None, []
    if metas:
        (p0, m0), *rest = metas.items()
        for p, m in rest:
            diff = [k for k in _IDENTITY if m.get(k) != m0.get(k)]
            if diff:
                raise JaxpulpError(f"results: {p!r} and {p0!r} are different sweeps (differ in {', '.join(diff)}); "
                                   "a front mixes one sweep's rows only")
        counts = {tuple(m.get("shard", (0, 1)))[1] for m in metas.values()}
        if len(counts) > 1:
            raise JaxpulpError(f"results: shards of {sorted(counts)} different shard counts N (K/N) of the same "
                               "sweep; their rows overlap, pass the files of one N")
        n = counts.pop()
    for p, meta, got in per_file:  # after the sweep checks, which name the cause better
        for r in got:
            key = (meta is None, r.get("index"))
            if r.get("index") is not None and key in seen:
                raise JaxpulpError(f"results: row index {r.get('index')} is in both {seen[key]!r} and {p!r} (the "
                                   "same rows given twice, e.g. a .jsonl and its .parquet); pass each sweep's rows "
                                   "once")
            seen[key] = p
    if metas:
        total_v = m0.get("total")
        total = int(total_v) if total_v is not None else None
        have = {tuple(m.get("shard", (0, 1)))[0] for m in metas.values()}
        base = [p for p in metas if not p.endswith(".parquet")]
        if n > 1 and base:
            stem = base[0]
            import re

            stem = re.sub(r"\.shard\d+of\d+(\.[^.]*)$", r"\1", stem)
            missing = [shard_path(stem, k, n) for k in range(n) if k not in have]
    spec = m0.get("spec") if metas and isinstance(m0.get("spec"), dict) else None
    return SweepRows(rows, total, missing, notes, spec)


def write_parquet(jsonl: str) -> str | None:
    """A Parquet copy of a complete JSONL results file (``x.jsonl`` -> ``x.parquet``); None without pyarrow."""
    try:
        import pyarrow.json as pj
        import pyarrow.parquet as pq
    except ImportError:
        return None
    import pyarrow as pa

    out = os.path.splitext(jsonl)[0] + ".parquet"
    with open(jsonl, "rb") as f:
        first = f.readline()
    if not first.strip():
        return None
    names = list(json.loads(first)["config"])
    fields = [("index", pa.int64()), ("key", pa.string()), ("seed", pa.int64()), ("version", pa.string()),
              ("config", pa.struct([(n, pa.string()) for n in names])), ("supported", pa.bool_()),
              ("cycles", pa.int64()), ("energy_pj", pa.float64()), ("weight_bytes", pa.int64()),
              ("peak_act_bytes", pa.int64()), ("memory_bytes", pa.int64()), ("l1_bytes", pa.int64()),
              ("l1_fit", pa.bool_()), ("l2_fit", pa.bool_())] + [(m, pa.float64()) for m in METRIC_FIELDS]
    opts = pj.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="infer")
    table = pj.read_json(jsonl, parse_options=opts)
    table = table.select([n for n in table.column_names if n not in METRIC_FIELDS or table[n].null_count < len(table)])
    tmp = out + ".tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return out
