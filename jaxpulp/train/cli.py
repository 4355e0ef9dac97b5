"""``jaxpulp search``: mixed-precision search on real data, one JSONL row per cycle weight, resumable.

    jaxpulp search --data digits --net tiny --lambdas 0,1e-5 --budget-kb 512 --out DIR

DIR/run.json: the run's settings (a resumed run must match them); DIR/float_params.npz: the shared float model;
DIR/results.jsonl: one row per lambda (configuration; float, fake-quant, integer and bit-exact test accuracy;
cycles, energy, weight / activation bytes, L1 / L2 fit); DIR/lambda_<x>/: the integerised network (network.npz,
which ``jaxpulp run`` reads; network.onnx in the DORY dialect; input.txt / out_layerN.txt goldens of the first
test image, which ``jaxpulp check`` reads); DIR/pareto.png: bit-exact accuracy against cycles (needs
matplotlib). Lambdas already in results.jsonl are skipped.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import jax
import numpy as np

from jaxpulp._io import atomic_path, check_output_path, int_arg, write_text
from jaxpulp.errors import JaxpulpError

_SETTINGS = ("data", "net", "seed", "budget_kb", "float_epochs", "search_epochs", "finetune_epochs", "batch",
             "gumbel", "lambda_mem", "budget_on", "hard_budget")
_DEFAULTS = {"budget_on": "all", "hard_budget": False}  # settings older runs did not record


def _lambdas(s: str) -> list:
    try:
        out = [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise JaxpulpError(f"--lambdas {s!r}: expected comma-separated numbers such as 0,1e-6,1e-5") from None
    if not out or any(not np.isfinite(v) or v < 0 for v in out):
        raise JaxpulpError(f"--lambdas {s!r}: expected comma-separated numbers >= 0")
    twice = sorted({v for v in out if out.count(v) > 1})
    if twice:
        raise JaxpulpError(f"--lambdas {s!r}: {', '.join(f'{v:g}' for v in twice)} given twice (each lambda is one "
                           "search; a repeat would only write the same row again)")
    return out


def _save_tree(path, tree):
    leaves, _ = jax.tree_util.tree_flatten(tree)
    with atomic_path(path) as tmp:  # an interrupted run leaves no half-written parameters
        np.savez(tmp, *[np.asarray(v) for v in leaves])


def _load_tree(path, like):
    leaves, treedef = jax.tree_util.tree_flatten(like)
    try:
        with np.load(path) as z:
            got = [z[f"arr_{i}"] for i in range(len(z.files))]
    except Exception as e:  # noqa: BLE001 - numpy raises several types for a damaged file
        raise JaxpulpError(f"{path}: saved float parameters are not readable ({type(e).__name__}: {e}); delete it "
                           "to train the float model again, or use another --out") from None
    if len(got) != len(leaves) or any(a.shape != np.shape(b) for a, b in zip(got, leaves, strict=True)):
        raise JaxpulpError(f"{path}: saved float parameters do not fit this model; delete it or use another --out")
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for a in got])


def read_rows(path: str, repair: bool = False) -> list:
    """The rows of a results.jsonl (one JSON object with a number ``lambda_cycles`` per line). A last line without
    its newline that does not parse is a row whose write was interrupted: dropped (``repair``: cut from the file,
    so that the next row is appended after the last whole one; its lambda is then searched again). Any other bad
    line raises, naming file and line."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    rows, partial = [], False
    for k, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if k == len(lines):  # no newline after it: the interrupted last write
                partial = True
                if repair:
                    with open(path, "r+") as f:
                        f.truncate(len(text[:len(text) - len(line)].encode()))
                break
            raise JaxpulpError(f"{path}:{k}: not a JSON row ({e}); fix or remove that line to resume") from None
        if not isinstance(row, dict) or isinstance(row.get("lambda_cycles"), bool) or not isinstance(
                row.get("lambda_cycles"), (int, float)):
            raise JaxpulpError(f"{path}:{k}: expected a result row with a number 'lambda_cycles'; fix or remove that "
                               "line to resume")
        rows.append(row)
    if repair and text.strip() and not text.endswith("\n") and not partial:
        with open(path, "a") as f:  # a whole last row without its newline: the next row goes on its own line
            f.write("\n")
    return rows


def plot_pareto(rows: list, path: str) -> str | None:
    """Bit-exact accuracy against cycles, one point per lambda. Returns the path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in rows:
        ax.scatter(r["cycles"], r["bitexact_acc"], c="C0" if r["l2_fit"] else "C3")
        ax.annotate(f"λ={r['lambda_cycles']:g}", (r["cycles"], r["bitexact_acc"]), fontsize=7)
    ax.set_xlabel("cycles (GAP-8 cost model)")
    ax.set_ylabel("bit-exact test accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cmd_search(args) -> int:
    from jaxpulp.network import store
    from jaxpulp.train import data, model as M, search as S

    lambdas = _lambdas(args.lambdas)
    if not 1 <= args.budget_kb * 1024 < math.inf:
        raise JaxpulpError(f"--budget-kb {args.budget_kb!r}: expected a finite number of KiB, at least 1/1024 (1 B)")
    if not 0 <= args.lambda_mem < math.inf:
        raise JaxpulpError(f"--lambda-mem {args.lambda_mem!r}: expected a finite number >= 0")
    if args.search_epochs == 0 and (len(lambdas) > 1 or args.gumbel):
        what = "--gumbel" if args.gumbel else f"--lambdas {args.lambdas!r}"
        raise JaxpulpError(f"{what} with --search-epochs 0: no search step runs, so it could not change the result "
                           "(every lambda would give the same row); drop it or search for at least one epoch")
    if args.net not in M.NETS:
        raise JaxpulpError(f"--net {args.net!r}: no such model; expected one of {sorted(M.NETS)}")
    if args.data != "digits" and not (args.data.endswith(".npz") and os.path.exists(args.data)):
        raise JaxpulpError(f"--data {args.data!r}: expected 'digits' or an existing .npz with x (N, H, W, C), y (N,)")
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise JaxpulpError(f"--out {args.out!r}: exists and is not a folder")
    if os.path.isdir(args.out) and os.listdir(args.out) and not os.path.exists(os.path.join(args.out, "run.json")):
        raise JaxpulpError(f"--out {args.out!r}: a folder with other files and no search run in it (no run.json); "
                           "a search writes run.json, results.jsonl, float_params.npz, pareto.png ... there: give a "
                           "new or empty folder, or the folder of the run to resume")
    ds = data.load(args.data, seed=args.seed)  # bad data fails here, before anything is written
    try:
        os.makedirs(args.out, exist_ok=True)
        check_output_path(os.path.join(args.out, "run.json"), "--out")  # a folder no file can be made in (/proc)
    except OSError as e:
        raise JaxpulpError(f"--out {args.out!r}: cannot create this folder ({e.strerror})") from None
    settings = {k: getattr(args, k) for k in _SETTINGS}
    run_json = os.path.join(args.out, "run.json")
    if os.path.exists(run_json):
        try:
            with open(run_json) as f:
                old = json.load(f)
            if not isinstance(old, dict):
                raise ValueError(f"a JSON {type(old).__name__}, expected an object")
        except ValueError as e:  # JSONDecodeError too
            raise JaxpulpError(f"--out {args.out!r}: {run_json} holds this run's settings but is not readable ({e}); "
                               "fix it (the other files are kept) or use another --out") from None
        diff = {k: (old.get(k, _DEFAULTS.get(k)), v) for k, v in settings.items()
                if old.get(k, _DEFAULTS.get(k)) != v}
        if diff:
            raise JaxpulpError(f"--out {args.out!r}: holds a run with other settings {diff} (saved, given); use "
                               "another --out to start a new run")
    else:
        write_text(run_json, json.dumps(settings, indent=1))
    rows_path = os.path.join(args.out, "results.jsonl")
    done = {r["lambda_cycles"] for r in read_rows(rows_path, repair=True)}
    todo = [lam for lam in lambdas if lam not in done]
    if done & set(lambdas):
        log(f"resuming: {len(done & set(lambdas))} lambda(s) already in {rows_path}")
    if todo:
        model = M.named(args.net, ds.shape, ds.num_classes)
        cfg = S.SearchConfig(float_epochs=args.float_epochs, search_epochs=args.search_epochs,
                             finetune_epochs=args.finetune_epochs, batch=args.batch, gumbel=args.gumbel,
                             lambda_mem=args.lambda_mem, budget_bytes=int(args.budget_kb * 1024), seed=args.seed,
                             budget_on=args.budget_on, hard_budget=args.hard_budget)
        log(f"data {ds.name}: {len(ds.y_train)} train / {len(ds.y_val)} val / {len(ds.y_test)} test, "
            f"{ds.shape}, {ds.num_classes} classes; model {model.name}: {len(model.layers)} layers")
        sp = S.make_space(model)
        fp = os.path.join(args.out, "float_params.npz")
        if os.path.exists(fp):
            params = _load_tree(fp, M.init_params(model, cfg.seed))
            log(f"float model loaded from {fp}")
        else:
            t0 = time.perf_counter()
            params = S.train_float(model, ds, cfg, progress=log)
            _save_tree(fp, params)
            log(f"float training {time.perf_counter() - t0:.1f} s")
        for k, lam in enumerate(todo, 1):
            log(f"[{k}/{len(todo)}] lambda_cycles={lam:g}")
            row, net = S.search_one(sp, params, ds, lam, cfg, progress=log)
            sub = os.path.join(args.out, f"lambda_{lam:g}")
            os.makedirs(sub, exist_ok=True)
            row["network"] = os.path.relpath(store.save(net, os.path.join(sub, "network.npz")), args.out)
            try:
                from jaxpulp.train import export

                export.export_all(net, sub, ds.x_test[0])  # network.onnx (DORY dialect) + DORY goldens
                row["onnx"] = os.path.relpath(os.path.join(sub, "network.onnx"), args.out)
            except JaxpulpError as e:
                log(f"no ONNX export: {e}")
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"lambda={lam:g}: bit-exact acc {row['bitexact_acc']:.4f} (float {row['float_acc']:.4f}, "
                  f"fake-quant {row['fakequant_acc']:.4f}), {row['cycles']} cycles, {row['memory_bytes']} B, "
                  f"L2 fit {row['l2_fit']}", flush=True)
    rows = [r for r in read_rows(rows_path)]
    png = plot_pareto(rows, os.path.join(args.out, "pareto.png"))
    print(f"{len(rows)} rows in {rows_path}" + (f"; {png}" if png else " (no matplotlib: no pareto.png)"))
    return 0


def add_subcommands(sub) -> None:
    """Register ``jaxpulp search`` on an argparse sub-parser set."""
    s = sub.add_parser("search", help="mixed-precision search on real data (QAT, cost surrogate, bit-exact eval)")
    s.add_argument("--data", default="digits", help="'digits' (scikit-learn, bundled) or FILE.npz with x, y")
    s.add_argument("--net", default="tiny", help="model: tiny, small, dscnn, wide, res (default tiny)")
    s.add_argument("--lambdas", default="0,1e-5", help="cycle weights, comma-separated (default 0,1e-5)")
    s.add_argument("--budget-kb", dest="budget_kb", type=float, default=512.0,
                   help="memory budget in kB (default GAP-8 L2, 512; what it bounds: --budget-on)")
    s.add_argument("--budget-on", dest="budget_on", choices=("all", "weights"), default="all",
                   help="the budget bounds weight + peak activation bytes (all, default) or weight bytes only")
    s.add_argument("--hard-budget", dest="hard_budget", action="store_true",
                   help="the chosen configuration must meet the budget: if the argmax does not, lower the "
                        "precision of the largest layers (weights first) until it does")
    s.add_argument("--out", required=True, help="output folder (resumable)")
    s.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0)
    s.add_argument("--float-epochs", dest="float_epochs", type=int_arg(0), default=30)
    s.add_argument("--search-epochs", dest="search_epochs", type=int_arg(0), default=10)
    s.add_argument("--finetune-epochs", dest="finetune_epochs", type=int_arg(0), default=5)
    s.add_argument("--batch", type=int_arg(1), default=64)
    s.add_argument("--lambda-mem", dest="lambda_mem", type=float, default=1.0,
                   help="weight of the over-budget memory term (default 1)")
    s.add_argument("--gumbel", action="store_true", help="Gumbel-softmax instead of softmax during the search")
    s.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s.set_defaults(fn=cmd_search)
