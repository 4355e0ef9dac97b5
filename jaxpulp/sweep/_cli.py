"""``jaxpulp sweep``, ``jaxpulp pareto`` and ``jaxpulp cost-lut``."""
from __future__ import annotations

import json
import os
import sys

from jaxpulp._io import atomic_path, int_arg, write_text
from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import QType


def _types(s, arg="--act-types"):
    """The types of a comma-separated ``s`` (None: the default), each one an activation type (``--act-types``)
    or a weight type (``--weight-types``) of the sweep's space, without repeats."""
    if s is None:
        return None
    from jaxpulp.costtable import ALL_ACT_TYPES, W_AXIS

    out = tuple(t.strip() for t in s.split(",") if t.strip())
    if not out:
        raise JaxpulpError(f"{arg} {s!r}: expected a comma-separated list of types, e.g. u8,u4,u2")
    allowed = W_AXIS if arg == "--weight-types" else ALL_ACT_TYPES
    seen = set()
    for t in out:
        try:
            q = QType.parse(t)
        except JaxpulpError as e:
            raise JaxpulpError(f"{arg} {s!r}: {t!r} is not a type ({e})") from None
        if q not in allowed:
            kind = "weight" if arg == "--weight-types" else "activation"
            raise JaxpulpError(f"{arg} {s!r}: {t!r} is not one of the sweep's {kind} types "
                               f"{[str(x) for x in allowed]}")
        if q in seen:
            raise JaxpulpError(f"{arg} {s!r}: a type is given twice")
        seen.add(q)
    return out


def _shard(s: str):
    k_s, sep, n_s = s.partition("/")
    try:
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise JaxpulpError(f"--shard {s!r}: expected K/N, e.g. 0/4") from None
    if not sep or not (n >= 1 and 0 <= k < n):
        raise JaxpulpError(f"--shard {s!r}: expected K/N with 0 <= K < N")
    return k, n


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _resume_hint(args) -> str:
    return (f"the rows written so far are kept in {args.out}; run the same command again to resume (without "
            "--overwrite)")


def _cmd_sweep(args) -> int:
    from jaxpulp.sweep._driver import SweepSpec, run_sweep

    enum = True if args.enumerate else (False if args.sample else None)
    if args.enumerate and args.samples is not None:  # it was ignored
        raise JaxpulpError(f"--samples {args.samples} with --enumerate: an enumeration evaluates every "
                           "configuration; drop one of them")
    if args.inputs is not None and not (args.metric or args.data):  # it was ignored
        raise JaxpulpError(f"--inputs {args.inputs}: inputs per configuration of the quality metric; only with "
                           "--metric (or --data)")
    if not args.distributed and (args.coordinator or args.num_processes is not None or args.process_id is not None):
        raise JaxpulpError("--coordinator / --num-processes / --process-id: only with --distributed")
    if args.coordinator and (args.num_processes is None or args.process_id is None):
        raise JaxpulpError(f"--coordinator {args.coordinator!r}: also needs --num-processes and --process-id")
    given = {k: getattr(args, k) for k in ("samples", "inputs") if getattr(args, k) is not None}  # else SweepSpec's
    spec = SweepSpec(net=args.net, target=args.target, enumerate=enum, seed=args.seed,
                     act_types=_types(args.act_types), weight_types=_types(args.weight_types, "--weight-types"),
                     free_input=args.free_input, metric=args.metric or bool(args.data), data=args.data, **given)
    k, n = _shard(args.shard)
    if args.distributed:
        import jax

        kw = {}
        if args.coordinator:
            kw = dict(coordinator_address=args.coordinator, num_processes=args.num_processes,
                      process_id=args.process_id)
        try:
            jax.distributed.initialize(**kw)
        except Exception as e:  # noqa: BLE001 - jax raises ValueError / RuntimeError without a cluster
            raise JaxpulpError(f"--distributed: jax.distributed.initialize() failed ({' '.join(str(e).split())}); "
                               "run under a cluster scheduler (SLURM, ...) or pass --coordinator host:port "
                               "--num-processes N --process-id K") from None
        P, p = jax.process_count(), jax.process_index()
        k, n = k * P + p, n * P
        _log(f"process {p} of {P}: shard {k}/{n} on {len(jax.local_devices())} local device(s)")
    if args.parquet:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise JaxpulpError("--parquet: needs pyarrow (pip install 'jaxpulp[parquet]')") from None
    s = run_sweep(spec, args.out, shard=(k, n), chunk=args.chunk, overwrite=args.overwrite,
                  progress=False if args.no_progress else (True if args.progress else None),
                  parquet=False if args.no_parquet else (True if args.parquet else None), log=_log)
    rate = s.written / s.seconds if s.seconds else 0.0
    how = f"all {s.total:,}" if s.mode == "enumerate" else f"{s.total:,} sampled (seed {spec.seed})"
    print(f"{s.path}: {s.written:,} rows written, {s.resumed:,} already there ({s.local:,} in this shard); "
          f"space {s.space_size:.3g} configurations, {how}; {s.seconds:.1f} s, {rate:,.0f} configs/s")
    return 0


def _cmd_pareto(args) -> int:
    from jaxpulp.sweep import _pareto, _results

    sw = _results.read_sweep(args.results)
    rows = sw.rows
    for note in sw.notes:
        _log(f"note: {note}")
    objectives = _pareto.parse_objectives(args.objectives, rows)
    front = _pareto.front_rows(rows, objectives)
    names = [n for n, _ in objectives]
    if not front:
        raise JaxpulpError(f"results: none of the {len(rows):,} rows is supported with every objective "
                           f"({', '.join(names)}) present and not NaN; no front")
    if sw.total:
        pct = 100 * len(rows) / sw.total
        print(f"complete: {len(rows):,} of the sweep's {sw.total:,} configurations ({pct:.1f}%)" +
              ("" if len(rows) >= sw.total else "; the front may change when the rest is in"))
    if sw.missing_shards:
        print(f"missing shards: {', '.join(sw.missing_shards)}")
    print(f"{len(front)} of {len(rows):,} rows on the front of ({', '.join(names)})")
    for r in front[: args.show]:
        vals = "  ".join(f"{n}={r[n]:,}" if isinstance(r[n], int) else f"{n}={r[n]:.4g}" for n in names)
        conf = " ".join(f"{k}={v}" for k, v in (r.get("config") or {}).items())
        print(f"  #{r.get('index')}  {vals}  {conf}")
    if args.out:
        write_text(args.out, "".join(json.dumps(r) + "\n" for r in front))
        print(f"wrote {args.out}")
    if args.png:
        x, y = (names[0], names[1]) if len(names) >= 2 else (names[0], "memory_bytes")
        color = names[2] if len(names) >= 3 else None
        title = f"{os.path.basename(args.results[0])}: {len(rows):,} configurations, {len(front)} on the front"
        ref = None
        if _pareto.reference_row(rows) is None and sw.spec:
            try:  # the sweep's own cost table gives the all-8-bit point; the plot does without it otherwise
                ref = _pareto.reference_from_spec(sw.spec)
                print(f"all-8-bit reference (not among the rows; from the sweep's cost table): "
                      f"{ref['cycles']:,} cycles, {ref['memory_bytes']:,} bytes")
            except Exception as e:  # noqa: BLE001 - e.g. the network file has moved: say so, plot the rest
                _log(f"note: no all-8-bit reference point ({type(e).__name__}: {' '.join(str(e).split())[:160]})")
        with atomic_path(args.png) as tmp:
            _pareto.plot_front(rows, front, tmp, x=x, y=y, color=color, title=title, staircase=len(names) <= 2,
                               reference=ref)
        print(f"wrote {args.png}")
    return 0


def _cmd_lut(args) -> int:
    from jaxpulp import costtable
    from jaxpulp.sweep._nets import load_network

    net = load_network(args.net)
    table = costtable.build_table(net, args.target, log=_log)
    costtable.save_lut(table, args.out)  # atomically
    n = int(table.supported.sum())
    print(f"wrote {args.out}: {len(table.layers)} layers, {n:,} supported precision triples ({table.target})")
    return 0


def add_subcommands(sub) -> None:
    """Register ``sweep``, ``pareto`` and ``cost-lut`` on the ``jaxpulp`` command's subparsers."""
    s = sub.add_parser("sweep", help="precision sweep: cost and memory (and a quality metric) of many "
                       "configurations, streamed to JSONL, resumable",
                       description="Enumerate (small spaces) or sample precision configurations of a network, "
                       "evaluate cost and memory from exact per-layer cost tables (and optionally a quality "
                       "metric on the value path), and append them to a JSONL file. Re-running the same "
                       "command resumes. Example: jaxpulp sweep --net mobilenet_v1 --samples 100000 --out "
                       "runs/mbv1.jsonl")
    s.add_argument("--net", required=True, help="toy[:size=16], mobilenet_v1[:alpha=0.25,resolution=128] or "
                   "an .onnx file")
    s.add_argument("--out", required=True, help="results JSONL file (appended to; its .meta.json identifies "
                   "the sweep)")
    s.add_argument("--samples", type=int_arg(1, 2**31 - 1), default=None,
                   help="configurations to draw when the space is larger (a space of at most this many is "
                   "enumerated); default 10000")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--enumerate", action="store_true", help="enumerate the whole space (< 2**31)")
    g.add_argument("--sample", action="store_true", help="sample even a small space")
    s.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0,
                   help="random stream of the samples and inputs (default 0)")
    s.add_argument("--target", default="gap8", help="cost target: gap8 (default), gap8-1core, cortex-m7; "
                   "deployed:gap8-board / deployed:gap8-gvsoc for the deployed latency (jaxpulp.deploy)")
    s.add_argument("--act-types", default=None, help="allowed activation types, e.g. u8,u4,u2 (default: 8, 4, "
                   "2 bits with each tensor's signedness)")
    s.add_argument("--weight-types", default=None, help="allowed weight types (default i8,i4,i2)")
    s.add_argument("--free-input", action="store_true", help="let the network input's precision vary too")
    s.add_argument("--metric", action="store_true", help="also run the value path: output error and arg-max "
                   "agreement against the given network (accuracy with --data labels)")
    s.add_argument("--inputs", type=int_arg(1), default=None, help="inputs per configuration for --metric (default 16)")
    s.add_argument("--data", default=None, help=".npz with x [N,H,W,C] (and labels y [N]) for --metric")
    s.add_argument("--chunk", type=int_arg(1), default=None, help="configurations per device call")
    s.add_argument("--shard", default="0/1", help="K/N: this run evaluates configurations i with i %% N == K "
                   "(for job arrays); writes <out stem>.shardKofN.jsonl")
    s.add_argument("--distributed", action="store_true", help="multi-host: jax.distributed.initialize(), then "
                   "each process takes its own shard on its local devices")
    s.add_argument("--coordinator", default=None, help="with --distributed: host:port of process 0 (otherwise "
                   "auto-detected from the cluster environment)")
    s.add_argument("--num-processes", type=int_arg(1), default=None, help="with --coordinator")
    s.add_argument("--process-id", type=int_arg(0), default=None, help="with --coordinator")
    s.add_argument("--overwrite", action="store_true", help="discard existing results at --out")
    p = s.add_mutually_exclusive_group()
    p.add_argument("--progress", action="store_true", help="always draw the progress bar")
    p.add_argument("--no-progress", action="store_true", help="never draw it (default: on a terminal)")
    q = s.add_mutually_exclusive_group()
    q.add_argument("--parquet", action="store_true", help="require the Parquet copy (needs pyarrow)")
    q.add_argument("--no-parquet", action="store_true", help="no Parquet copy (default: one when pyarrow is "
                   "installed)")
    # .jsonl only: the Parquet copy is named after the stem (a.parquet), which "--out a.parquet" would be, and
    # "a.json" would share with "a.jsonl"
    s.set_defaults(fn=_cmd_sweep, outputs=("out",), output_suffixes={"out": (".jsonl",)}, on_interrupt=_resume_hint)

    r = sub.add_parser("pareto", help="Pareto front of sweep results (and a PNG plot)",
                       description="Extract the non-dominated configurations of sweep results. Example: jaxpulp "
                       "pareto runs/mbv1.jsonl --png front.png")
    r.add_argument("results", nargs="+", help="results files (JSONL / Parquet; globs; x.jsonl stands for its "
                   "shard files)")
    r.add_argument("--objectives", default=None, help="columns, e.g. cycles,memory_bytes,error (NAME:max to "
                   "maximise; default cycles, memory_bytes and the metric if present)")
    r.add_argument("--png", default=None, help="write a plot of the first two objectives here (matplotlib)")
    r.add_argument("--out", default=None, help="write the front's rows as JSONL here")
    r.add_argument("--show", type=int_arg(0), default=10, help="front rows to print (default 10)")
    r.set_defaults(fn=_cmd_pareto, outputs=("png", "out"), output_suffixes={"out": (".jsonl",)})

    c = sub.add_parser("cost-lut", help="per-layer cost look-up tables of every precision triple (PLiNIO-style "
                       "JSON)")
    c.add_argument("--net", required=True, help="as for sweep")
    c.add_argument("--target", default="gap8", help="cost target (default gap8)")
    c.add_argument("--out", required=True, help="JSON file to write")
    c.set_defaults(fn=_cmd_lut, outputs=("out",), output_suffixes={"out": (".json",)})
