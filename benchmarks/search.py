"""Mixed-precision search on scikit-learn's digits: accuracy and cost of the searched front, and what QAT costs.

Prints and writes ``benchmarks/results/search.json``:

1. float test accuracy of the model;
2. all-8-bit QAT: bit-exact test accuracy (the packed path of the integerised network) and whether it equals the
   QAT evaluation forward on every test image;
3. the searched front: per cycle weight lambda the configuration, float / fake-quant / bit-exact accuracy,
   exact cycles and bytes from the cost tables;
4. contrast: the same choice made by the sweep's rule-based metric (``jaxpulp/sweep/_metric.py``) instead of
   training: every configuration of the space re-derived from the all-8-bit QAT network by the rule (no
   retraining), scored by its value-path accuracy on the validation split; for each searched point the
   rule's best configuration with no more cycles and no more memory, measured bit-exact (packed path) on the
   test set;
5. time of one QAT epoch (integer forward + straight-through) against one float epoch of the same model, measured
   in the same run, interleaved (ratio reported; absolute times depend on the machine and its load).

Usage: ``python benchmarks/search.py [--net small] [--lambdas 0,1e-5,1e-4] [--float-epochs 30] [--budget-kb 512]
[--lambda-mem 1] [--budget-on all|weights] [--hard-budget] [--out PATH]``

``--goal`` runs the issue's goal experiment instead ("a point with at least 2x less weight memory than all-8-bit
within 1 accuracy point of it") on ``--seeds`` (data split and initialisation), default model ``wide``: per seed
float training, the all-8-bit QAT network (bit-exact test accuracy), then one search at the first lambda with a
hard weight budget of half the all-8-bit weight bytes (``--budget-on weights --hard-budget``), and prints the
all-8 bit-exact accuracy, the searched point's weight-byte ratio, accuracy delta, cycles ratio and whether the
packed path equals the QAT evaluation on every test image; plus the QAT / float epoch time ratio (first seed).
Writes ``benchmarks/results/search_goal_<net>.json``. Usage: ``python benchmarks/search.py --goal [--net wide]
[--seeds 0,1,2,3,4]``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

from jaxpulp.train import (  # noqa: E402
    data,
    model as M,  # noqa: E402
    qat,
    search as S,  # noqa: E402
)


def _epoch_times(model, params, ds, layers, cfg, repeats: int):
    """Seconds of one float epoch and one QAT epoch, compiled first, interleaved ``repeats`` times (medians)."""
    one = S.SearchConfig(**{**cfg.__dict__, "float_epochs": 1, "finetune_epochs": 1})
    S.train_float(model, ds, one, params=params)  # compile
    S.finetune(model, params, ds, layers, one, epochs=1)
    tf, tq = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = S.train_float(model, ds, one, params=params)
        jax_block(p)
        tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        p = S.finetune(model, params, ds, layers, one, epochs=1)
        jax_block(p)
        tq.append(time.perf_counter() - t0)
    return float(np.median(tf)), float(np.median(tq))


def rule_contrast(sp, net8, ds, front, log) -> list:
    """For each front row: the configuration the sweep's rule-based metric would pick (best validation accuracy
    of the re-derived all-8-bit network among configurations with cycles <= and memory <= the row's), and its
    bit-exact test accuracy. No training: the rule re-derives weights and requantisation of ``net8``."""
    import itertools

    import jax.numpy as jnp

    from jaxpulp import costtable
    from jaxpulp.network import execute as netrun
    from jaxpulp.network.graph import Network
    from jaxpulp.sweep import _metric

    space = sp.space
    configs = np.array(list(itertools.product(*[range(len(v.choices)) for v in space.variables])), np.int32)
    cost = {k: np.asarray(v) for k, v in costtable.evaluate(space, jnp.asarray(configs)).items()}
    t0 = time.perf_counter()
    x_val = np.asarray(ds.x_val, np.int32)
    ref = _metric.reference_outputs(net8, x_val)
    f = _metric.make_metric_fn(net8, space)
    m = f(jnp.asarray(configs), jnp.asarray(x_val), jnp.asarray(ref), jnp.asarray(ds.y_val, jnp.int32))
    val_acc = np.asarray(m["accuracy"])
    log(f"rule metric: {len(configs)} configurations x {len(x_val)} validation images in "
        f"{time.perf_counter() - t0:.1f} s")
    der = _metric.Deriver(space, net8.outputs[0])
    out = []
    for row in front:
        ok = cost["supported"] & (cost["cycles"] <= row["cycles"]) & (cost["memory_bytes"] <= row["memory_bytes"])
        if not ok.any():
            out.append(dict(lambda_cycles=row["lambda_cycles"], config=None))
            continue
        idx = np.flatnonzero(ok)
        idx = idx[np.argsort(-val_acc[idx], kind="stable")]
        # skip configurations that would run a defective kernel (the search steers around them too)
        k = int(next((i for i in idx if not any(S.defective(lay) for lay in space.layers_of(configs[i]))), idx[0]))
        params, _, _, _, _ = der.derive(net8.params, jnp.asarray(configs[k]))
        params = {n: {a: np.asarray(v) for a, v in d.items()} for n, d in params.items()}
        net = Network(name=net8.name + "_rule", inputs=net8.inputs, layers=space.layers_of(configs[k]),
                      params=params, outputs=net8.outputs, dialect=net8.dialect)
        be = S.bit_exact_logits(net, ds.x_test)
        vp = np.asarray(netrun.run_values(net, jnp.asarray(ds.x_test, jnp.int32)))
        out.append(dict(lambda_cycles=row["lambda_cycles"], config=space.types_of(configs[k]),
                        rule_val_acc=float(val_acc[k]), bitexact_acc=S.accuracy(be, ds.y_test),
                        cycles=int(cost["cycles"][k]), weight_bytes=int(cost["weight_bytes"][k]),
                        memory_bytes=int(cost["memory_bytes"][k]), searched_bitexact_acc=row["bitexact_acc"],
                        bitexact_equals_value_path=bool(np.array_equal(be, vp.reshape(be.shape)))))
    return out


def goal(args, log) -> int:
    """The goal experiment (module docstring, ``--goal``)."""
    net_name = args.net if args.net_given else "wide"
    seeds = [int(v) for v in args.seeds.split(",")]
    lam = float(args.lambdas.split(",")[0]) if args.lambdas_given else 0.0
    rows, ratio_t = [], None
    for seed in seeds:
        t0 = time.perf_counter()
        ds = data.digits(seed)
        model = M.named(net_name, ds.shape, ds.num_classes)
        sp = S.make_space(model)
        layers8 = qat.layers_at(model, {})
        cost8 = S.exact_cost(sp, sp.space.config_of({k: v for k, v in S._precisions_of(model, layers8).items()
                                                      if k in sp.space.names}))
        w8 = int(cost8["weight_bytes"])
        cfg = S.SearchConfig(float_epochs=args.float_epochs, search_epochs=args.search_epochs,
                             finetune_epochs=args.finetune_epochs, seed=seed, budget_bytes=w8 // 2,
                             budget_on="weights", hard_budget=True, lambda_mem=args.lambda_mem)
        fparams = S.train_float(model, ds, cfg)
        float_acc = S.accuracy(S._float_logits(model, fparams, ds.x_test), ds.y_test)
        p8 = S.finetune(model, fparams, ds, layers8, cfg)
        acc8, _ = S.evaluate(model, p8, layers8, ds.x_test, ds.y_test)
        row, _ = S.search_one(sp, fparams, ds, lam, cfg)
        if ratio_t is None:
            tf, tq = _epoch_times(model, fparams, ds, layers8, cfg, args.repeats)
            ratio_t = dict(float=tf, qat=tq, ratio=tq / tf, repeats=args.repeats)
        r = dict(seed=seed, float_acc=float_acc, all8_bitexact_acc=acc8["bitexact_acc"],
                 all8_packed_equals_qat_eval=acc8["bitexact_equals_qat_eval"], all8_cycles=int(cost8["cycles"]),
                 all8_weight_bytes=w8, weight_ratio=w8 / row["weight_bytes"],
                 delta_points=100 * (row["bitexact_acc"] - acc8["bitexact_acc"]),
                 cycles_ratio=row["cycles"] / int(cost8["cycles"]), searched=row,
                 seconds=round(time.perf_counter() - t0, 1))
        r["goal_met"] = bool(r["weight_ratio"] >= 2 and r["delta_points"] >= -1 and row["bitexact_equals_qat_eval"])
        rows.append(r)
        cfg_s = " ".join(f"{k}={v}" for k, v in row["config"].items() if k != "input" and v != "i32")
        print(f"seed {seed}: all-8 bit-exact {r['all8_bitexact_acc']:.4f} (float {float_acc:.4f}); searched "
              f"{row['bitexact_acc']:.4f}, weight bytes {row['weight_bytes']} vs {w8} ({r['weight_ratio']:.2f}x "
              f"less), delta {r['delta_points']:+.2f} pt, cycles {r['cycles_ratio']:.2f}x all-8, packed == QAT "
              f"eval: all-8 {r['all8_packed_equals_qat_eval']}, searched {row['bitexact_equals_qat_eval']}; "
              f"argmax repaired to meet the budget: {row['repaired']}; goal {'met' if r['goal_met'] else 'NOT met'} "
              f"({r['seconds']:.0f} s)  [{cfg_s}]", flush=True)
    d = np.array([r["delta_points"] for r in rows])
    wr = np.array([r["weight_ratio"] for r in rows])
    cr = np.array([r["cycles_ratio"] for r in rows])
    summary = dict(seeds=seeds, goal_met=sum(r["goal_met"] for r in rows), delta_mean=float(d.mean()),
                   delta_std=float(d.std()), delta_worst=float(d.min()), weight_ratio_min=float(wr.min()),
                   weight_ratio_max=float(wr.max()), cycles_ratio_min=float(cr.min()),
                   cycles_ratio_max=float(cr.max()),
                   packed_equals_qat_eval_all=all(r["searched"]["bitexact_equals_qat_eval"] and
                                                  r["all8_packed_equals_qat_eval"] for r in rows))
    print(f"{net_name}, {len(seeds)} seeds: goal met on {summary['goal_met']}/{len(seeds)}; weight memory "
          f"{wr.min():.2f}-{wr.max():.2f}x less than all-8; accuracy delta {d.mean():+.2f} +- {d.std():.2f} pt "
          f"(worst {d.min():+.2f}); cycles {cr.min():.2f}-{cr.max():.2f}x all-8; packed == QAT eval everywhere: "
          f"{summary['packed_equals_qat_eval_all']}; QAT epoch {ratio_t['ratio']:.2f}x a float epoch (median of "
          f"{ratio_t['repeats']}, loaded machine)")
    out = args.out if args.out_given else os.path.join(HERE, "results", f"search_goal_{net_name}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(dict(net=net_name, dataset="digits", lambda_cycles=lam, float_epochs=args.float_epochs,
                       search_epochs=args.search_epochs, finetune_epochs=args.finetune_epochs,
                       lambda_mem=args.lambda_mem, budget="half the all-8-bit weight bytes, --budget-on weights "
                       "--hard-budget", summary=summary, epoch_seconds=ratio_t, seeds=rows), f, indent=1)
    print(f"wrote {out}")
    return 0


def jax_block(tree):
    import jax

    jax.tree_util.tree_map(lambda v: v.block_until_ready() if hasattr(v, "block_until_ready") else v, tree)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default=None, help="model (default small; wide with --goal)")
    ap.add_argument("--lambdas", default=None, help="cycle weights (default 0,1e-5,1e-4; --goal: the first, 0)")
    ap.add_argument("--float-epochs", type=int, default=30)
    ap.add_argument("--search-epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-kb", type=float, default=512.0, help="memory budget (default GAP-8 L2, 512 kB)")
    ap.add_argument("--lambda-mem", type=float, default=1.0, help="weight of the memory-budget term")
    ap.add_argument("--budget-on", dest="budget_on", choices=("all", "weights"), default="all")
    ap.add_argument("--hard-budget", dest="hard_budget", action="store_true")
    ap.add_argument("--goal", action="store_true", help="the goal experiment on several seeds (module docstring)")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="--goal: comma-separated seeds")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    args.net_given, args.lambdas_given, args.out_given = args.net is not None, args.lambdas is not None, \
        args.out is not None
    args.net = args.net or "small"
    args.lambdas = args.lambdas or "0,1e-5,1e-4"
    args.out = args.out or os.path.join(HERE, "results", "search.json")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.goal:
        return goal(args, log)
    ds = data.digits(args.seed)
    model = M.named(args.net, ds.shape, ds.num_classes)
    cfg = S.SearchConfig(float_epochs=args.float_epochs, search_epochs=args.search_epochs,
                         finetune_epochs=args.finetune_epochs, seed=args.seed,
                         budget_bytes=int(args.budget_kb * 1024), lambda_mem=args.lambda_mem,
                         budget_on=args.budget_on, hard_budget=args.hard_budget)
    t0 = time.perf_counter()
    fparams = S.train_float(model, ds, cfg)
    t_float = time.perf_counter() - t0
    float_acc = S.accuracy(S._float_logits(model, fparams, ds.x_test), ds.y_test)
    print(f"{model.name} on digits: float test accuracy {float_acc:.4f} ({args.float_epochs} epochs, {t_float:.1f} s)")

    layers8 = qat.layers_at(model, {})
    p8 = S.finetune(model, fparams, ds, layers8, cfg)
    acc8, net8 = S.evaluate(model, p8, layers8, ds.x_test, ds.y_test)
    sp = S.make_space(model)
    cost8 = S.exact_cost(sp, sp.space.config_of({k: v for k, v in S._precisions_of(model, layers8).items()
                                                  if k in sp.space.names}))
    print(f"all 8-bit QAT: bit-exact {acc8['bitexact_acc']:.4f} (fake-quant {acc8['fakequant_acc']:.4f}), packed "
          f"path == QAT eval on all {len(ds.y_test)} test images: {acc8['bitexact_equals_qat_eval']}, "
          f"{int(cost8['cycles'])} cycles, {int(cost8['weight_bytes'])} weight B")

    front = []
    for lam in [float(v) for v in args.lambdas.split(",")]:
        row, _ = S.search_one(sp, fparams, ds, lam, cfg, progress=None)
        front.append(row)
        cfg_s = " ".join(f"{k}={v}" for k, v in row["config"].items() if k != "input" and v != "i32")
        print(f"lambda={lam:g}: bit-exact {row['bitexact_acc']:.4f} (float {row['float_acc']:.4f}, fake-quant "
              f"{row['fakequant_acc']:.4f}) {row['cycles']} cycles ({row['cycles'] / cost8['cycles']:.2f}x all-8), "
              f"{row['weight_bytes']} weight B ({cost8['weight_bytes'] / row['weight_bytes']:.2f}x less than all-8), "
              f"{row['activation_bytes']} act B, budget fit {row['budget_fit']}, "
              f"== {row['bitexact_equals_qat_eval']}"
              f"  [{cfg_s}]")

    rule = rule_contrast(sp, net8, ds, front, log)
    for r in rule:
        if r["config"] is None:
            print(f"rule metric at lambda={r['lambda_cycles']:g}: no configuration within its cycles and memory")
            continue
        cfg_s = " ".join(f"{k}={v}" for k, v in r["config"].items() if k != "input" and v != "i32")
        print(f"rule metric at lambda={r['lambda_cycles']:g}'s cycles/memory: bit-exact {r['bitexact_acc']:.4f} "
              f"(searched {r['searched_bitexact_acc']:.4f}; rule val acc {r['rule_val_acc']:.4f}) {r['cycles']} "
              f"cycles, {r['weight_bytes']} weight B, {r['memory_bytes']} B, packed == value path "
              f"{r['bitexact_equals_value_path']}  [{cfg_s}]")

    tf, tq = _epoch_times(model, fparams, ds, layers8, cfg, args.repeats)
    print(f"epoch time (median of {args.repeats}, interleaved): float {tf:.3f} s, QAT {tq:.3f} s, ratio "
          f"{tq / tf:.2f}x (machine load makes absolute times noisy)")
    out = dict(net=args.net, dataset="digits", seed=args.seed, budget_kb=args.budget_kb, lambda_mem=args.lambda_mem,
               n_train=len(ds.y_train), n_test=len(ds.y_test),
               float_epochs=args.float_epochs, search_epochs=args.search_epochs,
               finetune_epochs=args.finetune_epochs, float_acc=float_acc, all8=dict(**acc8, **{
                   k: (v if isinstance(v, (bool, str)) else float(v)) for k, v in cost8.items()}),
               front=front, rule_metric=rule, epoch_seconds=dict(float=tf, qat=tq, ratio=tq / tf, repeats=args.repeats))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
