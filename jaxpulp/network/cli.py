"""``jaxpulp run | report | check``: whole networks from the command line.

    jaxpulp run [MODEL] [--input FILE] [--batch N] [--path packed|values] [--out FILE.npz]
    jaxpulp report [MODEL] [--csv F] [--json F] [--png F] [--cores N]
    jaxpulp check MODEL --golden DIR [--path packed|values] [--order hwc|chw|auto]

MODEL: an ``.onnx`` file (DORY/QuantLab, NEMO or Deeploy dialect), a jaxpulp network ``.npz``
(``jaxpulp.network.store``), or a built-in name (``dronet``, the default; ``mobilenet_v1``).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from jaxpulp._io import atomic_path, int_arg, write_text
from jaxpulp.errors import JaxpulpError
from jaxpulp.qtypes import QType

# host memory one call may use for activations (bytes); larger batches run in chunks of this size
CHUNK_BYTES = 1 << 30


def load_model(model: str | None, args=None):
    """A ``Network`` from a path or a built-in name (default: DroNet)."""
    from jaxpulp.network import store, zoo

    if args is not None and not is_onnx(model):
        _refuse_import_options(model, args)
    if model is None:
        return zoo.dronet()
    if os.path.exists(model):
        if model.endswith(".npz"):
            return store.load(model)
        from jaxpulp.network.onnx_import import load_onnx

        kw = {}
        if args is not None:
            kw = dict(dialect=args.dialect, input_type=_input_type(model, args),
                      bn_bits=args.bn_bits if args.bn_bits == "auto" else int(args.bn_bits))
        return load_onnx(model, **kw)
    if model.endswith((".onnx", ".npz")):
        raise JaxpulpError(f"model={model!r}: no such file")
    return zoo.builtin(model)


def is_onnx(model: str | None) -> bool:
    """Whether ``load_model`` imports ``model`` from ONNX (an existing file that is not a saved .npz)."""
    return model is not None and os.path.exists(model) and not model.endswith(".npz")


def _refuse_import_options(model: str | None, args) -> None:
    """--dialect / --input-type / --bn-bits set for a model that is not imported from ONNX (a built-in network or
    a saved .npz carries its own types and BN tree): refused, not ignored."""
    given = [f"--{k.replace('_', '-')} {getattr(args, k)!r}" for k, default in
             (("dialect", "auto"), ("input_type", None), ("bn_bits", "auto")) if getattr(args, k, default) != default]
    if given:
        raise JaxpulpError(f"{', '.join(given)}: options of the ONNX import; model {model or 'dronet'!r} is not an "
                           ".onnx file (a built-in or saved network has its own input type and BN tree)")


def _input_type(model: str, args) -> str:
    """--input-type, else the DORY config's input_bits / input_signed (next to the model or in --golden), else u8."""
    from jaxpulp.network import goldens

    if getattr(args, "input_type", None) is not None:
        try:
            QType.parse(args.input_type)
        except JaxpulpError as e:
            raise JaxpulpError(f"--input-type {args.input_type!r}: {e}") from None
        return args.input_type
    for d in (os.path.dirname(os.path.abspath(model)), getattr(args, "golden", None)):
        t = goldens.dory_input_type(d) if d and os.path.isdir(d) else None
        if t is not None:
            print(f"(input type {t} from the DORY config's input_bits / input_signed in {d})")
            return t
    return "u8"


def read_input(path: str, net, hint: bool = True) -> dict:
    """Inputs by name, (batch, H, W, C), from ``.npy`` (one input), ``.npz`` (by input name, extra arrays ignored;
    or one array per input, in order) or a DORY ``.txt`` dump (one HWC image). Arrays whose trailing axes are
    (H, W, C) are HWC; else (C, H, W) / (C, L) arrays are NCHW, as Deeploy's ``inputs.npz`` stores them (and
    every array of a Deeploy network's npz is read as NCHW, as ``jaxpulp check`` does). ``hint``: values outside
    the input type suggest an ``--input-type`` (only for networks imported from ONNX, where that option
    exists)."""
    from jaxpulp.network import goldens


    if not os.path.isfile(path):
        raise JaxpulpError(f"--input {path!r}: " + ("a folder, expected a .npy, .npz or DORY .txt file"
                                                     if os.path.isdir(path) else "no such file"))
    if path.endswith(".txt"):
        out = {net.input.name: goldens.hwc_values(path, net.input.shape)[None]}
    elif path.endswith(".npy"):
        try:
            arrays = {net.input.name: np.load(path, allow_pickle=False)}
        except Exception as e:  # noqa: BLE001 - numpy raises several types for corrupt files
            raise JaxpulpError(f"--input {path!r}: not a readable .npy file ({type(e).__name__}: {e})") from e
        _check_int_arrays(path, arrays)
        out = {k: goldens.to_hwc(a, net.input.shape, "auto", f"--input {path!r}") for k, a in arrays.items()}
    elif path.endswith(".npz"):
        arrays, names = goldens.read_npz_arrays(path), [s.name for s in net.inputs]
        picked, extra = goldens.pick_inputs(arrays, names, f"--input {path!r}")
        if extra and not all(n in arrays for n in names):  # paired in order, with arrays to spare: which ones?
            raise JaxpulpError(f"--input {path!r}: arrays {list(arrays)} for the network inputs {names}: none is "
                               f"named after an input and there are more than {len(names)}, so which to take is a "
                               "guess; name the arrays after the inputs, or keep one array per input")
        _check_int_arrays(path, picked)
        if extra:
            print(f"(--input: arrays {extra} are not network inputs; ignored)")
        layout = "nchw" if net.dialect == "deeploy" else "auto"
        out = {s.name: goldens.to_hwc(picked[s.name], s.shape, layout, f"--input {path!r}: array for {s.name!r}")
               for s in net.inputs}
    else:
        raise JaxpulpError(f"--input {path!r}: expected a .npy, .npz or DORY .txt file")
    for s in net.inputs:
        goldens.check_range(out[s.name], s.qtype, f"--input {path!r}" + (f" ({s.name!r})" if len(net.inputs) > 1
                                                                          else ""), hint)
    return out


def _check_int_arrays(path: str, arrays: dict) -> None:
    """Non-empty arrays of integers: an integer dtype, or floats that all hold whole numbers (Deeploy stores its
    inputs as float32)."""
    for k, v in arrays.items():
        whole = v.dtype.kind in "iub" or (v.dtype.kind == "f" and bool(np.all(np.isfinite(v) & (v == np.round(v)))))
        if not whole or v.size == 0:
            raise JaxpulpError(f"--input {path!r}: array {k!r} has shape {v.shape} / dtype {v.dtype}, expected a "
                               "non-empty array of integers (batch, H, W, C) or (H, W, C)")


def run_chunk(net, batch: int, keep: bool = False, budget: int = CHUNK_BYTES) -> int:
    """Inputs per call so that one call's activations (int32 on the device, x4 for temporaries) stay within
    ``budget`` bytes. The whole batch's inputs and outputs are held on the host (int64 at most), with ``keep``
    every activation too: raise when that alone exceeds half the machine's memory, saying how much is needed."""
    per_input = sum(int(np.prod(s)) for s in [x.shape for x in net.inputs] + [lay.out_shape for lay in net.layers])
    types = net.tensor_types()
    in_out = sum(int(np.prod(x.shape)) for x in net.inputs) + sum(int(np.prod(types[k][0])) for k in net.outputs)
    need = (per_input if keep else in_out) * 8 * batch
    try:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        avail = None
    if avail and need > avail // 2:
        what = "keeping every activation" if keep else "the batch's inputs and outputs on the host"
        raise JaxpulpError(f"--batch {batch}{' with --out' if keep else ''}: {what} need {need / 2**30:.1f} GiB of "
                           f"memory ({avail / 2**30:.1f} GiB here); use a smaller --batch")
    return max(1, min(batch, budget // (16 * per_input)))


def run_chunked(net, xs: dict, chunk: int, **kw):
    """``execute.run`` over the batch ``chunk`` inputs at a time (the last chunk padded, so one compile)."""
    from jaxpulp.network.execute import RunResult, run

    batch = len(next(iter(xs.values())))
    if chunk >= batch:
        return run(net, xs, **kw)
    parts = []
    for a in range(0, batch, chunk):
        part = {k: v[a:a + chunk] for k, v in xs.items()}
        m = len(next(iter(part.values())))
        if m < chunk:
            part = {k: np.concatenate([v, np.repeat(v[-1:], chunk - m, axis=0)]) for k, v in part.items()}
        r = run(net, part, **kw)
        parts.append((m, r))
    cat = lambda dicts: {k: np.concatenate([d[k][:m] for m, d in dicts]) for k in dicts[0][1]}  # noqa: E731
    return RunResult(cat([(m, r.outputs) for m, r in parts]), cat([(m, r.tensors) for m, r in parts]) if
                     parts[0][1].tensors else {})


def _add_model_options(p, model_required=False):
    if model_required:
        p.add_argument("model", help="an .onnx file, a jaxpulp network .npz, or a built-in name (dronet, mobilenet_v1)")
    else:
        p.add_argument("model", nargs="?", default=None,
                       help="an .onnx file, a jaxpulp network .npz, or a built-in name (default: dronet)")
    p.add_argument("--dialect", default="auto",
                   help="ONNX dialect: auto (default: detected), dory, nemo, deeploy or integer; a name the graph "
                        "contradicts is refused")
    p.add_argument("--input-type", default=None,
                   help="type of the network input, e.g. i8 (default: the DORY config's input_bits / input_signed "
                        "next to the model, else u8)")
    p.add_argument("--bn-bits", default="auto", choices=("auto", "32", "64"),
                   help="PULP-NN library tree for batch-norm requantisation (DORY BNRelu_bits; default auto)")
    p.add_argument("--cores", type=int, default=8, choices=(1, 2, 4, 8, 16), help="cluster cores (default 8)")


def _cluster(args):
    from jaxpulp.cluster.config import Cluster

    return Cluster(num_cores=args.cores)


def _cmd_run(args) -> int:
    from jaxpulp.network import report, zoo
    from jaxpulp.network.execute import run

    if args.seed is not None and (args.input or args.model in (None, "dronet")):  # it was ignored
        raise JaxpulpError(f"--seed {args.seed}: seeds the random input of a network run without --input; "
                           + ("--input gives the input" if args.input else "dronet runs its bundled example image"))
    net = load_model(args.model, args)
    cl = _cluster(args)
    if args.input:
        xs = read_input(args.input, net, hint=is_onnx(args.model))
    elif args.model in (None, "dronet"):
        xs = {net.input.name: zoo.dronet_input()[None]}
    else:
        seed = 0 if args.seed is None else args.seed
        rng = np.random.default_rng(seed)
        xs = {s.name: rng.integers(s.qtype.lo, s.qtype.hi + 1, (1,) + s.shape) for s in net.inputs}
        print(f"(no --input: random {', '.join(str(s.qtype) for s in net.inputs)} input, seed {seed})")
    xs = {k: np.asarray(v) if np.ndim(v) == 4 else np.asarray(v)[None] for k, v in xs.items()}
    batch = len(next(iter(xs.values()))) if args.batch is None else args.batch
    chunk = run_chunk(net, batch, keep=bool(args.out))  # refuses a batch the host cannot hold, before making it
    if args.batch is not None:
        xs = {k: np.concatenate([v] * -(-args.batch // len(v)))[:args.batch] for k, v in xs.items()}
    print(f"{net.name}: {len(net.layers)} layers, {net.macs:,} MACs/input, batch {batch}, {args.path} path, "
          f"{cl.num_cores} cores")
    rows = report.layer_rows(net, cl)  # memory checks before running
    bad = [r for r in rows if not (r["l1_tiled_fit"] and r["l2_fit"])]
    if bad:
        for r in bad:
            print(f"memory: layer {r['layer']} {r['name']}: {r['note']}")
    else:
        print(f"memory: every layer fits L1 ({cl.l1_bytes // 1024} kB, tiled where needed) and L2 "
              f"({cl.l2_bytes // 1024} kB); weights {sum(r['weights_bytes'] for r in rows):,} B")
    if chunk < batch:
        print(f"batch {batch} runs in {-(-batch // chunk)} chunks of {chunk} (about {CHUNK_BYTES >> 20} MiB of "
              "activations each)")
    print(f"compiling {net.name} for batch {chunk} ({args.path} path; the first call takes a while) ...",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    run(net, {k: v[:chunk] for k, v in xs.items()}, path=args.path, cluster=cl, keep=bool(args.out))
    t1 = time.perf_counter()
    res = run_chunked(net, xs, chunk, path=args.path, cluster=cl, keep=bool(args.out))
    t2 = time.perf_counter()
    for name, v in res.outputs.items():
        flat = v.reshape(len(v), -1)
        shown = np.array2string(flat[0][:16], separator=", ")
        print(f"output {name!r} {tuple(v.shape[1:])}: input 0 -> {shown}{' ...' if flat.shape[1] > 16 else ''}")
    print(f"first call (compile + run of {chunk}) {t1 - t0:.2f} s; steady state {1e3 * (t2 - t1):.1f} ms/batch = "
          f"{batch / (t2 - t1):.1f} inputs/s")
    t = report.totals(rows, cl)
    print(f"on GAP-8 ({cl.num_cores} cores @ {cl.freq_hz / 1e6:g} MHz, cost model): {t['cycles']:,} cycles/input = "
          f"{t['MAC/cycle']} MAC/cycle, {t['ms']} ms/input (jaxpulp report for the per-layer table)")
    if args.out:
        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **{k.replace("/", "_"): v for k, v in res.tensors.items()})
        print(f"wrote every activation to {args.out}")
    return 0


def _cmd_report(args) -> int:
    from jaxpulp.network import report

    given = [f"--{k} {getattr(args, k)!r}" for k in ("flavour", "schedule") if getattr(args, k) is not None]
    if args.deploy == "none" and given:  # they were ignored
        raise JaxpulpError(f"{', '.join(given)} with --deploy none: they choose how the network is deployed; drop "
                           "them, or pass a deployment target (--deploy gap8-board / gap8-gvsoc)")
    flavour = args.flavour or "dory-gap8"
    net = load_model(args.model, args)
    cl = _cluster(args)
    rows = report.layer_rows(net, cl)
    if args.deploy != "none":
        report.add_deployed(net, rows, args.deploy, flavour, schedule=args.schedule)
    print(report.as_table(net, rows, cl))
    if args.deploy != "none":
        from jaxpulp.deploy import get_flavour

        fl = get_flavour(flavour)
        print(f"deployment: target {args.deploy}, flavour {fl.name} ({fl.description})")
    for path, fn in ((args.csv, lambda: report.as_csv(rows)), (args.json, lambda: report.as_json(net, rows, cl))):
        if path:
            write_text(path, fn())
            print(f"wrote {path}")
    if args.png:
        with atomic_path(args.png) as tmp:
            report.bar_chart_png(net, rows, tmp)
        print(f"wrote {args.png}")
    return 0


def _cmd_check(args) -> int:
    from jaxpulp.network import conformance

    if args.order != "auto" and os.path.isdir(args.golden) and conformance.golden_format(args.golden) == "deeploy":
        raise JaxpulpError(f"--order {args.order}: the element order of DORY text dumps; {args.golden!r} is a Deeploy "
                           "folder (NCHW .npz arrays): drop --order")  # it was ignored
    net = load_model(args.model, args)
    checks = conformance.check(net, args.golden, path=args.path, order=args.order)
    for c in checks:
        status = "ok  " if c.ok else ("MISS" if c.note == "missing" else "FAIL")
        extra = f" ({c.note})" if c.note and c.note != "missing" else ""
        detail = "" if c.ok else f": {c.n_diff} differ; {c.first}"
        print(f"{status} {c.what} -> {c.tensor or '?'}{extra}{detail}")
    bad = sum(1 for c in checks if not c.ok)
    miss = [c.what for c in checks if c.note == "missing"]
    tail = f", of which {len(miss)} without a golden file ({', '.join(miss)})" if miss else ""
    skipped = conformance.skipped_goldens(args.golden)
    if skipped:
        print(f"skip {len(skipped)} raw accumulator arrays (*_pact_*: PULP-NN kernels never store them), not "
              f"compared: {', '.join(skipped)}")
        tail += f", {len(skipped)} skipped"
    print(f"{len(checks) - bad} passed, {bad} failed{tail} ({args.path} path)")
    if args.json:
        write_text(args.json, json.dumps([c._asdict() for c in checks], indent=1))
    return 1 if bad else 0


def add_subcommands(sub) -> None:
    """Register ``run``, ``report`` and ``check`` on the ``jaxpulp`` parser."""
    r = sub.add_parser("run", help="run a network (bit-exact packed path by default) on a batch of inputs")
    _add_model_options(r)
    r.add_argument("--input", default=None, help="input file: .npy (batch, H, W, C), .npz by input name, DORY .txt")
    r.add_argument("--batch", type=int_arg(1), default=None, help="repeat the input(s) to this batch size "
                   "(large batches run in chunks)")
    r.add_argument("--path", default="packed", choices=("packed", "values"), help="packed (default) or values")
    r.add_argument("--out", default=None, help="write every activation tensor to this .npz")
    r.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=None,
                   help="seed of the random input when no --input is given (default 0; not for dronet, which runs "
                   "its bundled example image)")
    r.set_defaults(fn=_cmd_run, outputs=("out",), output_suffixes={"out": (".npz",)})
    from jaxpulp.deploy.flavour import FLAVOURS  # a small module (no jax): the registered flavours

    p = sub.add_parser("report", help="per-layer kernel, cycles, MAC/cycle, memory and L1/L2 fit")
    _add_model_options(p)
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    p.add_argument("--json", default=None, help="also write the table and totals as JSON")
    p.add_argument("--png", default=None, help="also write a per-layer cycles bar chart (needs matplotlib)")
    p.add_argument("--deploy", default="gap8-board", choices=("gap8-board", "gap8-gvsoc", "none"),
                   help="deployment target of the deployed columns (jaxpulp.deploy; default gap8-board)")
    p.add_argument("--flavour", default=None, choices=sorted(FLAVOURS),
                   help="deployment flavour (jaxpulp.deploy.FLAVOURS: which kernels and build; default dory-gap8; "
                   "dory-mixed-sw: DORY mixed-sw, sub-byte nets)")
    p.add_argument("--schedule", default=None, choices=("blocking", "double"), help="override the target's")
    p.set_defaults(fn=_cmd_report, outputs=("csv", "json", "png"),
                   output_suffixes={"csv": (".csv",), "json": (".json",)})
    c = sub.add_parser("check", help="compare every layer with golden activations (DORY txt or Deeploy npz folder)")
    _add_model_options(c, model_required=True)
    c.add_argument("--golden", required=True, help="folder with input.txt + out_layerN.txt, or inputs/outputs.npz")
    c.add_argument("--path", default="packed", choices=("packed", "values"))
    c.add_argument("--order", default="auto", choices=("hwc", "chw", "auto"),
                   help="element order of DORY dumps (default auto: HWC, else CHW per file, reported)")
    c.add_argument("--json", default=None, help="also write the comparisons as JSON")
    c.set_defaults(fn=_cmd_check, outputs=("json",), output_suffixes={"json": (".json",)})


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the jaxpulp command")
