"""The sweep loop: configurations by index, sharded over devices, streamed to JSONL, resumable.

Configuration ``i`` of a sweep is a pure function of (space, mode, seed, i): number i in mixed-radix order
(``enumerate``) or the i-th draw of a counter-based hash stream (``sample``). So a shard is just a set of
indices (``i % num_shards == shard``), a chunk any subset of them, and a restarted sweep recomputes exactly the
indices its results file lacks: nothing is lost or written twice.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
import zipfile
from typing import IO, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import costtable
from jaxpulp._checks import is_int
from jaxpulp._io import check_output_path
from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import QType
from jaxpulp.sweep import _results
from jaxpulp.sweep._progress import Progress

FORMAT = "jaxpulp-sweep"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """Everything that determines a sweep's rows (saved in the results' ``.meta.json``).

    net: a ``load_network`` spec (``toy``, ``mobilenet_v1:alpha=0.25,resolution=128``, ``model.onnx``);
    target: cost target ("gap8", "gap8-1core", "cortex-m7"); samples: configurations to draw when the space
    is larger (all of a space of at most ``samples`` are enumerated); enumerate: True forces enumeration,
    False sampling, None decides by size; seed: the random stream (and the metric's random inputs);
    act_types / weight_types / free_input: ``config_space`` choices; metric: also run the value path and
    record ``error`` / ``agreement`` (/ ``accuracy``); inputs: random inputs per configuration for the metric;
    data: an ``.npz`` with ``x`` [N, H, W, C] (and labels ``y`` [N]) instead of random inputs.
    """

    net: str
    target: str = "gap8"
    samples: int = 10_000
    enumerate: bool | None = None
    seed: int = 0
    act_types: tuple | None = None
    weight_types: tuple | None = None
    free_input: bool = False
    metric: bool = False
    inputs: int = 16
    data: str | None = None

    def __post_init__(self):
        from jaxpulp.cost import resolve_target

        if not isinstance(self.net, str) or not self.net.strip():
            raise JaxpulpError(f"net={self.net!r:.80}: expected a network spec string such as 'toy', "
                               "'mobilenet_v1:alpha=0.25,resolution=128' or 'model.onnx'")
        if not is_int(self.samples) or self.samples < 1:
            raise JaxpulpError(f"samples={self.samples!r}: expected an int >= 1")
        if not is_int(self.inputs) or self.inputs < 1:
            raise JaxpulpError(f"inputs={self.inputs!r}: expected an int >= 1")
        if not is_int(self.seed) or not 0 <= self.seed < 2**32:
            raise JaxpulpError(f"seed={self.seed!r}: expected an int in [0, 2**32)")
        for name in ("samples", "inputs", "seed"):  # numpy ints as plain ints (the spec is saved as JSON)
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.enumerate is not None and not isinstance(self.enumerate, bool):
            raise JaxpulpError(f"enumerate={self.enumerate!r}: expected None (by the space's size), True or False")
        for name in ("free_input", "metric"):
            if not isinstance(getattr(self, name), bool):
                raise JaxpulpError(f"{name}={getattr(self, name)!r}: expected True or False")
        if self.data is not None:
            if isinstance(self.data, os.PathLike):
                object.__setattr__(self, "data", os.fspath(self.data))
            if not isinstance(self.data, str) or not self.data:
                raise JaxpulpError(f"data={self.data!r:.80}: expected None or the path of an .npz file")
        if isinstance(self.target, str) and self.target.startswith("deployed:"):  # jaxpulp.deploy objective
            from jaxpulp.deploy import get_target

            get_target(self.target[len("deployed:"):])
        else:
            resolve_target(self.target)
        for name in ("act_types", "weight_types"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list)):
                raise JaxpulpError(f"{name}={v!r:.80}: expected None or a sequence of type names, e.g. "
                                   "('u8', 'u4')")
            parsed = tuple(str(QType.parse(t)) for t in v)
            repeated = sorted({t for t in parsed if parsed.count(t) > 1})
            if repeated:
                raise JaxpulpError(f"{name}={v!r}: {', '.join(repeated)} given more than once; expected each type "
                                   "once (a repeat would count its configurations twice)")
            object.__setattr__(self, name, parsed)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("act_types", "weight_types"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)


class SweepSummary(NamedTuple):
    """path: the results file; mode: "enumerate" / "sample"; total: configurations of the whole sweep;
    local: of this shard; written / resumed: rows written now / found already there; seconds: wall time."""

    path: str
    mode: str
    space_size: int
    total: int
    local: int
    written: int
    resumed: int
    seconds: float


def prepare(spec: SweepSpec, log=None):
    """(network, cost table, config space, mode, total) of a sweep; ``log`` hears of each cost-table layer."""
    global _TABLE_LOG
    _TABLE_LOG = log
    try:
        net, table = _network_and_table(spec.net, spec.target)
    finally:
        _TABLE_LOG = None
    space = costtable.config_space(table, act_types=spec.act_types, weight_types=spec.weight_types,
                                   free_input=spec.free_input)
    if spec.enumerate is True and space.size >= 2**31:
        raise JaxpulpError(f"enumerate=True: the space has {space.size:.3g} configurations, expected < 2**31; "
                           "sample it instead")
    if spec.enumerate is False and spec.samples >= 2**31:
        raise JaxpulpError(f"samples={spec.samples}: expected < 2**31")
    enum = spec.enumerate if spec.enumerate is not None else space.size <= spec.samples
    mode = "enumerate" if enum else "sample"
    total = space.size if enum else spec.samples
    return net, table, space, mode, total


@functools.lru_cache(maxsize=8)
def _network_and_table(net_spec: str, target: str):
    """Loaded network and its exact cost table (both pure functions of their arguments: cached per process)."""
    from jaxpulp.sweep._nets import load_network

    net = load_network(net_spec)
    return net, costtable.build_table(net, target, log=_TABLE_LOG)


_TABLE_LOG = None  # the log of the prepare() call in progress (the cached function's arguments stay the key)


def _shard_map(f, mesh, in_specs, out_specs):
    sm = getattr(jax, "shard_map", None)
    if sm is None:  # pragma: no cover - older JAX
        from jax.experimental.shard_map import shard_map as sm
    return sm(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs)


def make_mesh(devices=None):
    """A 1-D mesh ``("cfg",)`` over ``devices`` (default: this process's local devices)."""
    from jax.sharding import Mesh

    devs = list(devices) if devices is not None else jax.local_devices()
    return Mesh(np.array(devs), ("cfg",))


def make_cost_fn(space, mode: str, seed: int, mesh):
    """jit ``f(arrays, index [B]) -> (configs [B, V], results)``, B sharded over the mesh's devices."""
    from jax.sharding import PartitionSpec as P

    l1, l2 = space.cluster.l1_bytes, space.cluster.l2_bytes

    def local(arrays, index):
        if mode == "enumerate":
            cfg = costtable.decode_enumerated(arrays, index)
        else:
            cfg = costtable.decode_sampled(arrays, index, seed)
        return cfg, costtable.evaluate_blocked(arrays, cfg, l1, l2)

    return jax.jit(_shard_map(local, mesh, (P(), P("cfg")), P("cfg")))


def make_metric_fn(net, space, mesh, with_labels: bool):
    """jit ``f(configs [B, V], x, y_ref, labels) -> metrics [B]``, configurations sharded over the mesh."""
    from jax.sharding import PartitionSpec as P

    from jaxpulp.sweep import _metric

    inner = _metric.make_metric_fn(net, space)

    def local(configs, x, y_ref, labels):
        return inner(configs, x, y_ref, labels if with_labels else None)

    return jax.jit(_shard_map(local, mesh, (P("cfg"), P(), P(), P()), P("cfg")))


def _metric_data(net, spec: SweepSpec):
    from jaxpulp.sweep import _metric

    if spec.data:
        try:
            d = np.load(spec.data)
            x = np.asarray(d["x"])
            y = np.asarray(d["y"]) if "y" in d.files else None
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise JaxpulpError(f"data={spec.data!r}: expected an .npz with 'x' [N, H, W, C] (and labels 'y' [N]) "
                               f"({e})") from None
        t = net.input.qtype
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(net.input.shape) or x.dtype.kind not in "iu":
            raise JaxpulpError(f"data={spec.data!r}: x has shape {x.shape} / dtype {x.dtype}, expected integers "
                               f"(N, {', '.join(map(str, net.input.shape))})")
        if not len(x):
            raise JaxpulpError(f"data={spec.data!r}: x holds no inputs (shape {x.shape}), expected N >= 1")
        if y is not None and (y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu"):
            raise JaxpulpError(f"data={spec.data!r}: labels y have shape {y.shape} / dtype {y.dtype}, expected "
                               f"{len(x)} integer labels (one per input of x)")
        if x.size and (x.min() < t.lo or x.max() > t.hi):
            raise JaxpulpError(f"data={spec.data!r}: x spans [{x.min()}, {x.max()}], outside {t}")
        classes = int(np.prod(net.tensor_types()[net.outputs[0]][0]))  # accuracy: arg-max over the output
        if y is not None and len(y) and (y.min() < 0 or y.max() >= classes):
            raise JaxpulpError(f"data={spec.data!r}: labels y span [{y.min()}, {y.max()}], expected classes in "
                               f"[0, {classes - 1}] (the network's output {net.outputs[0]!r} has {classes} values)")
        if spec.inputs > len(x):
            raise JaxpulpError(f"inputs={spec.inputs} (--inputs; default 16): data={spec.data!r} holds only "
                               f"{len(x)} inputs; ask for {len(x)} or fewer")
        x = x[: spec.inputs].astype(np.int32)
        y = None if y is None else y[: spec.inputs].astype(np.int32).reshape(-1)
        digest = hashlib.blake2b(x.tobytes() + (b"" if y is None else y.tobytes()), digest_size=8).hexdigest()
    else:
        x, y = _metric.random_inputs(net, spec.inputs, spec.seed), None
        digest = "random"
    return x, y, _metric.reference_outputs(net, x), digest


def _default_chunk(spec: SweepSpec, n_dev: int) -> int:
    base = 32 if spec.metric else 1 << 16
    return max(n_dev, base // n_dev * n_dev)


def _meta(spec, table, space, mode, total, shard, data_digest) -> dict:
    import jaxpulp

    return {"format": FORMAT, "format_version": 1, "version": jaxpulp.__version__, "spec": spec.to_dict(),
            "shard": list(shard), "mode": mode, "total": total, "space_size": str(space.size),
            "table_digest": table.digest, "data_digest": data_digest, "network": table.network,
            "target": table.target,
            "variables": [{"name": v.name, "kind": v.kind, "choices": [str(c) for c in v.choices]}
                          for v in space.variables]}


def _check_meta(path: str, old: dict, new: dict) -> None:
    diffs = []
    for k in ("format", "version", "shard", "mode", "total", "table_digest", "data_digest", "variables"):
        if old.get(k) != new.get(k):
            diffs.append(k)
    for k, v in new["spec"].items():
        if old.get("spec", {}).get(k) != v:
            diffs.append(f"spec.{k} ({old.get('spec', {}).get(k)!r} there, {v!r} now)")
    if diffs:
        raise JaxpulpError(f"out={path!r} holds another sweep's results (differs in: {', '.join(diffs)}); "
                           "run the same command to resume it, or pass overwrite (--overwrite) / another --out")


def run_sweep(spec: SweepSpec, out: str, *, shard=(0, 1), chunk: int | None = None, overwrite: bool = False,
              progress=None, parquet=None, devices=None, log=None) -> SweepSummary:
    """Evaluate the configurations of ``spec`` that belong to ``shard`` = (k, n) and append them to ``out``
    (``out`` itself for n = 1, else ``<stem>.shard<k>of<n>.jsonl``; its folder must exist), resuming whatever is
    already there.

    chunk: configurations per device call (a multiple of the device count); progress: True / False / None
    (when stderr is a terminal); parquet: also write ``<stem>.parquet`` when the shard is complete (None: when
    pyarrow is installed); devices: the devices to shard over (default: all local devices); log: a
    ``print``-like function for one-line status messages.
    """
    t0 = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        raise JaxpulpError(f"spec={spec!r:.80}: expected a SweepSpec")
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2 or not all(is_int(v) for v in shard)
            or not (shard[1] >= 1 and 0 <= shard[0] < shard[1])):
        raise JaxpulpError(f"shard={shard!r:.80}: expected a pair of ints (k, n) with 0 <= k < n")
    k, n = int(shard[0]), int(shard[1])
    if chunk is not None and (not is_int(chunk) or chunk < 1):
        raise JaxpulpError(f"chunk={chunk!r}: expected an int >= 1")
    if isinstance(out, os.PathLike):
        out = os.fspath(out)
    if not isinstance(out, str) or not out.strip():
        raise JaxpulpError(f"out={out!r:.80}: expected a JSONL results path (e.g. runs/x.jsonl)")
    for name, flag in (("overwrite", overwrite), ("parquet", parquet), ("progress", progress)):
        if not (flag is None and name != "overwrite") and not isinstance(flag, bool):
            raise JaxpulpError(f"{name}={flag!r:.80}: expected " + ("True or False" if name == "overwrite" else
                                                                  "True, False or None"))
    if str(out).lower().endswith(".parquet"):  # its Parquet copy (the stem + .parquet) would replace the results
        raise JaxpulpError(f"out={out!r}: expected a JSONL results path (e.g. runs/x.jsonl); the Parquet copy is "
                           "written next to it")
    path = _results.shard_path(out, k, n)
    check_output_path(os.fspath(path), "out=")
    # everything that can fail on bad arguments happens before any file is touched
    if log:
        log(f"sweep {spec.net}: loading the network and building its cost table ({spec.target}) ...")
    net, table, space, mode, total = prepare(spec, log)
    mesh = make_mesh(devices)
    n_dev = mesh.devices.size
    chunk = chunk or _default_chunk(spec, n_dev)
    n_local = len(range(k, total, n))
    chunk = -(-min(chunk, max(n_local, 1)) // n_dev) * n_dev
    if log and spec.metric:
        log(f"sweep {spec.net}: reference outputs of {spec.inputs} inputs for the metric ...")
    data = _metric_data(net, spec) if spec.metric else None
    meta = _meta(spec, table, space, mode, total, (k, n), data[3] if data else None)
    with _results.locked(path) as lock:
        # overwrite: the new rows go to a temporary file that replaces the old results only once it holds rows
        target = path + ".overwrite" if overwrite else path
        mp = _results.meta_path(target)
        if overwrite:
            for p in (target, mp):
                if os.path.exists(p):
                    os.remove(p)
        elif os.path.exists(mp) and os.path.exists(path) and os.path.getsize(path):
            with open(mp) as mf:
                try:
                    old = json.load(mf)
                except ValueError as e:
                    raise JaxpulpError(f"{mp}: not JSON ({e}); pass overwrite (--overwrite) or another "
                                       "--out") from None
            _check_meta(path, old, meta)
        elif os.path.exists(path) and os.path.getsize(path):
            raise JaxpulpError(f"out={path!r} exists without its {mp}; pass overwrite (--overwrite) or another --out")
        # (a .meta.json without rows, left by a sweep that failed before its first row, is replaced)
        done, resumed = _results.scan_done(target, lambda i: (i - k) // n if (i - k) % n == 0 else -1, n_local)
        if log and resumed:
            log(f"resuming {path}: {resumed:,} of {n_local:,} rows already there")
        from jax.sharding import NamedSharding, PartitionSpec as P

        import jaxpulp

        fmt = _results.RowFormatter(space, spec.seed, jaxpulp.__version__)
        cost_fn = make_cost_fn(space, mode, spec.seed, mesh)
        arrays = jax.device_put(space.arrays, NamedSharding(mesh, P()))
        if data is not None:
            x, y, y_ref, _ = data
            rep = NamedSharding(mesh, P())
            xd, yd = jax.device_put(jnp.asarray(x), rep), jax.device_put(jnp.asarray(y_ref), rep)
            ld = jax.device_put(jnp.asarray(y if y is not None else np.zeros(len(x), np.int32)), rep)
            metric_fn = make_metric_fn(net, space, mesh, y is not None)
        bar = Progress(n_local, f"sweep {table.network}", done=resumed, enabled=progress, log=log)
        written = 0
        shard_in = NamedSharding(mesh, P("cfg"))
        if log and resumed < n_local:
            log(f"sweep {table.network}: compiling the evaluation of {chunk:,} configurations per call ...")
        f: IO[bytes] = lock.file if target == path else open(target, "ab")
        try:
            for a in range(0, n_local, chunk):
                pos = np.arange(a, min(a + chunk, n_local))
                pos = pos[~done[pos]]
                m = len(pos)
                if not m:
                    continue
                idx = (k + n * np.concatenate([pos, np.full(chunk - m, pos[-1])])).astype(np.int32)
                cfg, res = cost_fn(arrays, jax.device_put(idx, shard_in))
                if data is not None:
                    res = dict(res, **metric_fn(cfg, xd, yd, ld))
                res = {key: np.asarray(v)[:m] for key, v in res.items()}
                lines = fmt.lines(idx[:m], np.asarray(cfg)[:m], res)
                if not resumed and not written:  # the sweep's identity, written with its first row
                    _results.write_json_atomic(mp, meta)
                _results.append_lines(f, lines)
                written += m
                bar.update(m)
        finally:
            bar.close()
            if f is not lock.file:
                f.close()
            if target != path and (written or resumed):
                # the new results replace the old (also when interrupted: then they resume as usual)
                for p in (path, _results.meta_path(path), os.path.splitext(path)[0] + ".parquet"):
                    if os.path.exists(p) and p != path:
                        os.remove(p)
                os.replace(mp, _results.meta_path(path))
                os.replace(target, path)
            elif target != path:
                for p in (target, mp):
                    if os.path.exists(p):
                        os.remove(p)
    if written + resumed == n_local and (parquet or (parquet is None and _has_pyarrow())):
        pq = _results.write_parquet(path)
        if log and pq:
            log(f"wrote {pq}")
    return SweepSummary(path, mode, space.size, total, n_local, written, resumed, time.perf_counter() - t0)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
