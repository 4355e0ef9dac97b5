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
[--lambda-mem 1] [--out PATH]``
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


def jax_block(tree):
    import jax

    jax.tree_util.tree_map(lambda v: v.block_until_ready() if hasattr(v, "block_until_ready") else v, tree)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="small")
    ap.add_argument("--lambdas", default="0,1e-5,1e-4")
    ap.add_argument("--float-epochs", type=int, default=30)
    ap.add_argument("--search-epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-kb", type=float, default=512.0, help="memory budget (default GAP-8 L2, 512 kB)")
    ap.add_argument("--lambda-mem", type=float, default=1.0, help="weight of the memory-budget term")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "search.json"))
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    ds = data.digits(args.seed)
    model = M.named(args.net, ds.shape, ds.num_classes)
    cfg = S.SearchConfig(float_epochs=args.float_epochs, search_epochs=args.search_epochs,
                         finetune_epochs=args.finetune_epochs, seed=args.seed,
                         budget_bytes=int(args.budget_kb * 1024), lambda_mem=args.lambda_mem)
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
