"""Results files: JSONL rows (one configuration per line, written a chunk at a time), a ``.meta.json`` sidecar
that identifies the sweep, the scan that makes a restarted sweep resume, and the Parquet copy.

Row keys: ``index`` (position in the sweep's enumeration or random stream), ``key`` (hash of the
configuration), ``seed``, ``version`` (jaxpulp), ``config`` (variable -> type), ``supported``, ``cycles``,
``energy_pj``, ``weight_bytes``, ``peak_act_bytes``, ``memory_bytes``, ``l1_bytes``, ``l1_fit``, ``l2_fit``
(costs null when unsupported) and, for metric sweeps, ``error``, ``agreement`` (and ``accuracy``).
"""
from __future__ import annotations

import glob
import json
import os

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
    while writing) is cut off the file, so the restarted sweep rewrites that row exactly once."""
    done = np.zeros(n_local, bool)
    if not os.path.exists(path):
        return done, 0
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            f.truncate(end)
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
    return done, rows


def _row_index(line: bytes):
    head = b'{"index": '
    if line.startswith(head):
        j = line.find(b",", len(head))
        try:
            return int(line[len(head):j])
        except ValueError:
            pass
    try:
        obj = json.loads(line)
        return int(obj["index"])
    except (ValueError, KeyError, TypeError):
        return None


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
        for j, (i, c) in enumerate(zip(np.asarray(index).tolist(), cfg.tolist())):
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
        if p.endswith(".parquet"):
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise JaxpulpError(f"results={p!r}: reading Parquet needs pyarrow (pip install pyarrow)") from None
            rows.extend(pq.read_table(p).to_pylist())
            continue
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
