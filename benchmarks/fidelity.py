"""Fidelity of the cost model against everything measured we have.

Prints tables and writes ``benchmarks/results/fidelity.json``:

1. single-core MatMul calls measured on the CV32E40P RTL (tests/data/cycles/pulpnn_cv32e40p_runs.csv): error
   of every row; the ``hwloop_postinc_asm_innerloop`` rows must be within 2 %;
2. the golden vectors' per-core built-in counters (tests/golden): cases whose every per-core count matches;
3. the PULP-NN benchmark layer (16x16x32 -> 64, 3x3, pad 1) on 8 cores and 1 core (published: 15.5 MAC/cycle
   on 8 cores, 16 peak);
4. the 27 permutations on 8 cores / 1 core / Cortex-M7, and the GAP-8 vs STM32H7 ratios (CF'20: 21-25x
   faster, 15-21x more energy efficient);
5. external data (tests/data/external, a copy of shared/external_testcases): per-layer 1.0-MobileNetV1-128 on a GAP-8
   board (DORY, 100 MHz)
   and whole-network MAC/cycle on GVSoC (dory_examples), with the error per row and the MAPE. Those
   measurements include DMA transfers and tiling (L3 -> L2 -> L1), which the model leaves out: for layers
   whose tiles stream from L3 the model must be optimistic.

6. the same external data with the deployment model (jaxpulp.deploy: tiling, DMA, L3, schedule) beside the
   kernel-only figures: the board rows on ``gap8-board`` (blocking DMA), the GVSoC networks on ``gap8-gvsoc``
   (double-buffered); the one fitted board constant (the HyperRAM rate) with leave-one-out errors.

External data is read from the bundled copy tests/data/external unless ``--external DIR`` is given.

Usage: ``python benchmarks/fidelity.py [--external tests/data/external] [--out benchmarks/results/fidelity.json]
    [--png]``
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXTERNAL = os.path.join(ROOT, "tests", "data", "external")  # the bundled copy of the external test cases

from jaxpulp.cost import (  # noqa: E402
    calibration,
    kernel_cost,  # noqa: E402
    )
from jaxpulp.cost.report import BENCHMARK_LAYER, compare_targets, heatmap_png, permutation_table  # noqa: E402
from jaxpulp.kernels import _golden, config as kc  # noqa: E402


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


# ------------------------------------------------------------------------------------------------------------
# 1. RTL cycle counts
# ------------------------------------------------------------------------------------------------------------

def cycles_csv(path):
    rows = _read_csv(path)
    out = []
    for r in rows:
        hw = r["variant"].startswith("hwloop")
        pred = calibration.predict_row(r, hwloops=hw)
        meas = int(r["cycles"])
        out.append({"build": r["build"], "variant": r["variant"], "kernel": r["kernel"], "K": int(r["K"]),
                    "bn_relu": int(r["bn"]), "measured": meas, "predicted": pred,
                    "error_pct": 100.0 * (pred - meas) / meas})
    return out


def print_cycles(rows):
    print("\n== 1. Single-core MatMul calls on the CV32E40P RTL (pulpnn_cv32e40p_runs.csv) ==")
    print("   (hwloop rows: PULP-GCC-style inner loop, model with hardware loops; clang rows: hwloops=False)")
    groups = {}
    for r in rows:
        groups.setdefault((r["variant"], r["kernel"]), []).append(r)
    print(f"{'variant':30s} {'kernel':17s} {'rows':>4} {'max|err|%':>9} {'mean err%':>9}")
    for (v, k), rs in sorted(groups.items()):
        errs = [r["error_pct"] for r in rs]
        print(f"{v:30s} {k:17s} {len(rs):>4} {max(abs(e) for e in errs):9.2f} {statistics.mean(errs):+9.2f}")
    hw = [r for r in rows if r["variant"].startswith("hwloop")]
    worst = max(hw, key=lambda r: abs(r["error_pct"]))
    print(f"hwloop rows: {len(hw)}, all within 2%: {all(abs(r['error_pct']) <= 2 for r in hw)} "
          f"(worst {worst['error_pct']:+.2f}% {worst['kernel']} K={worst['K']} bn={worst['bn_relu']} "
          f"{worst['build']})")
    print("Main build (clang19_O3_alignloops4), K = 288:")
    print(f"  {'variant':8s} {'kernel':17s} {'BN':>2} {'measured':>9} {'model':>9} {'err%':>7}")
    for r in rows:
        if r["build"] == "clang19_O3_alignloops4" and r["K"] == 288:
            print(f"  {r['variant'][:8]:8s} {r['kernel']:17s} {r['bn_relu']:>2} {r['measured']:>9} "
                  f"{r['predicted']:>9} {r['error_pct']:+7.2f}")


# ------------------------------------------------------------------------------------------------------------
# 2. Golden built-in counters
# ------------------------------------------------------------------------------------------------------------

_COUNTERS = {"sdotp": ("sdotusp4", "sdotsp4"), "extract": ("bextract", "bextractu"), "insert": ("binsert",),
             "pack4": ("pack4",), "clip": ("clip_r",), "clipu": ("clipu_r",),
             "simd": ("max4", "maxu4", "min4", "minu4", "avgu4"), "minmax": ("maxsi", "minsi", "maxusi", "minusi"),
             "bitcount": ("fl1",), "barrier": ("barrier",), "core_id": ("core_id",)}


def golden_counters(golden_dir):
    families = ("conv", "pointwise", "depthwise", "linear_quant", "linear_noquant", "maxpool", "avgpool", "add")
    out = {}
    for fam in families:
        with open(os.path.join(golden_dir, fam + ".json")) as f:
            meta = json.load(f)
        arrays = np.load(os.path.join(golden_dir, fam + ".npz"))
        idx = {n: i for i, n in enumerate(meta["counter_names"])}
        per_family = {}
        for c in meta["cases"]:
            cfg = _golden.config_of(c)  # the one record -> config table (kernels/_golden)
            gold = arrays[c["id"] + "/counters_per_core"]
            cc = kernel_cost(cfg, _cluster(c["ncores"]))
            ok = True
            for core in range(c["ncores"]):
                b = cc.per_core[core].builtins()
                for k, names in _COUNTERS.items():
                    if b[k] != sum(int(gold[core, idx[n]]) for n in names if n in idx):
                        ok = False
            key = c["family"]
            n_ok, n = per_family.get(key, (0, 0))
            per_family[key] = (n_ok + ok, n + 1)
        out.update(per_family)
    return out


def _cluster(n):
    from jaxpulp.cluster.config import Cluster

    return Cluster(num_cores=n)


# ------------------------------------------------------------------------------------------------------------
# 3./4. Benchmark layer, 27 permutations, Cortex-M7
# ------------------------------------------------------------------------------------------------------------

def benchmark_layer():
    res = {}
    for mode, (relu, bn) in (("shift-clip", (0, 0)), ("bn", (1, 1))):
        cfg = kc.ConvConfig("u8", "u8", "i8", **{**BENCHMARK_LAYER, "relu": relu, "bn": bn})
        for outer in ("measured", "gcc"):
            g8 = kernel_cost(cfg, "gap8", outer=outer)
            g1 = kernel_cost(cfg, "gap8-1core", outer=outer)
            res[f"{mode}/{outer}"] = {"macs": g8.macs, "cycles_8core": g8.cycles, "mpc_8core": g8.macs_per_cycle,
                                      "cycles_1core": g1.cycles, "mpc_1core": g1.macs_per_cycle,
                                      "speedup": g1.cycles / g8.cycles,
                                      "tcdm_contention_pct": 100.0 * max(g8.contention_cycles) / g8.cycles,
                                      "pj_per_mac_8core": g8.pj_per_mac}
    return res


# ------------------------------------------------------------------------------------------------------------
# 5. External data
# ------------------------------------------------------------------------------------------------------------

def mobilenet_v1_128(bits=8):
    """1.0-MobileNetV1 at 128x128 (DORY's layer names), BN+ReLU requantisation. bits=4: 4-bit activations and
    weights except the 8-bit image input."""
    a, w = f"u{bits}", f"i{bits}"
    L = {"Conv1": kc.ConvConfig("u8", a, w, H=128, W=128, Ci=3, Co=32, stride=(2, 2), pad=(0, 1, 0, 1))}
    blocks = [(64, 32, 64, 1), (64, 64, 128, 2), (32, 128, 128, 1), (32, 128, 256, 2), (16, 256, 256, 1),
              (16, 256, 512, 2), (8, 512, 512, 1), (8, 512, 1024, 2), (4, 1024, 1024, 1)]
    names = [("DwConv1", "PwConv2"), ("DwConv2", "PwConv3"), ("DwConv3", "PwConv4"), ("DwConv4", "PwConv5"),
             ("DwConv5", "PwConv6"), ("DwConv6", "PwConv7"), ("DwConv7-11", "PwConv8-12"), ("DwConv12", "PwConv13"),
             ("DwConv13", "PwConv14")]
    for (h, ci, co, s), (dn, pn) in zip(blocks, names, strict=True):
        pad = (1, 1, 1, 1) if s == 1 else (0, 1, 0, 1)
        dw = kc.DepthwiseConfig(a, a, w, H=h, W=h, Ci=ci, Co=ci, stride=(s, s), pad=pad)
        L[dn] = dw
        L[pn] = kc.PointwiseConfig(a, a, w, H=dw.Ho, W=dw.Wo, Ci=ci, Co=co)
    L["Pool"] = kc.AvgPoolConfig(a, "u8", H=4, W=4, C=1024, Kh=4, Kw=4, stride=(4, 4))
    L["FC"] = kc.LinearConfig("u8", "u8", w, N=1024, M=1000)
    return L


def _bytes(cfg):
    """Input + output + weight bytes a layer moves (what DORY's DMA must bring into L1), bytes."""
    f = cfg.family
    if f in ("conv", "pointwise", "depthwise"):
        wt = (cfg.Co * cfg.K * cfg.w_type.bits) // 8
        return (cfg.H * cfg.W * cfg.Ci * cfg.in_type.bits + cfg.Ho * cfg.Wo * cfg.Co * cfg.out_type.bits) // 8 + wt
    if f == "linear":
        return cfg.N * cfg.M * cfg.w_type.bits // 8 + cfg.N + cfg.M
    return cfg.H * cfg.W * cfg.C * 2


def dory_layers(path):
    rows = _read_csv(path)
    layers = mobilenet_v1_128(8)
    out = []
    for r in rows:
        cfg = layers[r["layer"]]
        cc = kernel_cost(cfg, "gap8-1v0")
        cc_gcc = kernel_cost(cfg, "gap8-1v0", outer="gcc")
        meas = int(r["cycles"])
        notes = []
        if cfg.family == "depthwise":
            notes.append("DORY runs pulp-nn's HWC depthwise; the model is pulp-nn-mixed's CHW kernel")
        if cfg.family in ("avgpool", "linear"):
            notes.append("DORY's kernel differs (pulp-nn 8-bit)")
        wbytes = 0
        if cfg.family in ("conv", "pointwise", "depthwise"):
            wbytes = cfg.Co * cfg.K * cfg.w_type.bits // 8
        elif cfg.family == "linear":
            wbytes = cfg.N * cfg.M * cfg.w_type.bits // 8
        if wbytes >= 256 * 1024:
            notes.append(f"weights {wbytes // 1024} kB stream from L3 HyperRAM (DMA-bound)")
        out.append({"layer": r["layer"], "family": cfg.family, "macs": cc.macs, "measured_cycles": meas,
                    "predicted_cycles": cc.cycles, "predicted_cycles_outer_gcc": cc_gcc.cycles,
                    "measured_mpc": float(r["mac_per_cycle"]), "predicted_mpc": cc.macs_per_cycle,
                    "error_pct": 100.0 * (cc.cycles - meas) / meas,
                    "error_pct_outer_gcc": 100.0 * (cc_gcc.cycles - meas) / meas,
                    "bytes_per_mac": _bytes(cfg) / max(cc.macs, 1), "notes": "; ".join(notes),
                    "repeat": int(r["repeat"])})
    return out


# --- whole networks: the kernels the network importer maps each layer to ------------------------------------

def onnx_layers(path):
    """Kernel configs of a DORY/NEMO integer ONNX graph, layer by layer, as ``jaxpulp.network`` imports and maps
    it (requantisation folded into BN mode; the 64-bit BN tree where int32 could wrap, as DORY's BNRelu_bits)."""
    from jaxpulp.network import mapping
    from jaxpulp.network.onnx_import import load_onnx

    return [mapping.kernel_config(lay) for lay in load_onnx(path).layers]


def network_mpc(layers, target="gap8"):
    macs = cycles = 0
    for cfg in layers:
        cc = kernel_cost(cfg, target)
        macs += cc.macs
        cycles += cc.cycles
    return macs, cycles


def _read_network_csv(path):
    """network,mac_per_cycle,precision,in_pack; a network name may contain an unquoted comma, so the last three
    fields are split off from the right."""
    rows = []
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    head = lines[0].split(",")
    for ln in lines[1:]:
        name, *rest = ln.rsplit(",", len(head) - 1)
        rows.append(dict(zip(head, [name, *rest], strict=True)))
    return rows


# --Bn_Relu_Bits of each network in dory_examples' regression_test_TO_UPDATE.sh (@60dd66b; MobileNetV1 takes
# network_generate.py's default, 32): DORY's 8-bit flow copies pulp-nn/32bit or pulp-nn/64bit for the whole network
BN_RELU_BITS = {"MobilenetV1 (NEMO MV1-128)": 32, "Residual_connection_test_1": 32, "dscnn_test": 64,
                "MobilenetV1_4bits (Quantlab mnv1_4b4b_fixed, BNRelu 64-bit)": 64}


def gvsoc_flavour(name, flavour="dory-gap8"):
    """The deployment flavour of one dory_examples GVSoC network: ``flavour`` with the network's BN tree (the
    registered ``dory-gap8-bn32`` / ``-bn64`` when ``flavour`` is ``dory-gap8``)."""
    import dataclasses

    from jaxpulp.deploy import get_flavour

    bits = BN_RELU_BITS.get(name)
    if flavour == "dory-gap8" and bits:
        return get_flavour(f"dory-gap8-bn{bits}")
    return dataclasses.replace(get_flavour(flavour), bn_bits=bits)


def dory_networks(path, ext, deploy_target=None, flavour="dory-gap8"):
    rows = _read_network_csv(path)
    ex = os.path.join(ext, "dory_examples")
    nets = {
        "MobilenetV1 (NEMO MV1-128)": lambda: list(mobilenet_v1_128(8).values()),
        MV1_4BIT: lambda: mobilenet_v1_075_224_4bit(),  # j14b: the network the row measured
        "Residual_connection_test_1": lambda: onnx_layers(os.path.join(ex, "nemo_residual_test_1", "model_int.onnx")),
        "dscnn_test": lambda: onnx_layers(os.path.join(ex, "nemo_dscnn_test", "model_int.onnx")),
    }
    notes = {
        "MobilenetV1 (NEMO MV1-128)": "architecture assumed = 1.0-MobileNetV1-128 (7 x DwConv/PwConv 8-12 "
                                      "repeats: 5); incl. L3 weight streaming",
        MV1_4BIT: MV1_4BIT_NOTE,
        "Residual_connection_test_1": "layers imported from model_int.onnx (jaxpulp.network)",
        "dscnn_test": "layers imported from model_int.onnx (jaxpulp.network)",
    }
    out = []
    for r in rows:
        name = r["network"]
        meas = float(r["mac_per_cycle"])
        if name not in nets:
            out.append({"network": name, "measured_mpc": meas, "predicted_mpc": None, "error_pct": None,
                        "notes": "no network definition in the pack"})
            continue
        layers = nets[name]()
        if name == "MobilenetV1 (NEMO MV1-128)":  # DwConv7-11 / PwConv8-12 are 5 layers each
            layers = layers + [layers[13], layers[14]] * 4
        macs, cycles = network_mpc(layers)
        pred = macs / cycles
        dep = {}
        if deploy_target is not None:
            from jaxpulp.deploy import get_flavour, network_latency

            # the 4-bit row runs DORY's mixed-sw flavour (ROW_FLAVOUR); every other row dory-gap8 with its BN tree
            fl = get_flavour(ROW_FLAVOUR[name]) if name in ROW_FLAVOUR else gvsoc_flavour(name, flavour)
            nl = network_latency(layers, deploy_target, fl)
            dpred = nl.macs / nl.total
            dep = {"deployed_mpc": dpred, "deployed_error_pct": 100.0 * (dpred - meas) / meas,
                   "flavour": fl.name, "bn_bits": fl.bn_bits,
                   "deployed_cycles": nl.total, "kernel_cycles_deploy_target": nl.kernel_only,
                   "bound": {b: sum(1 for x in nl.layers if x.bound == b) for b in ("compute", "transfer", "L3")}}
        out.append({"network": name, "measured_mpc": meas, "predicted_mpc": pred, **dep,
                    "error_pct": 100.0 * (pred - meas) / meas, "macs": macs, "layers": len(layers),
                    "notes": notes[name] + "; GVSoC end-to-end incl. DMA/tiling (no TCDM conflicts in GVSoC)"})
    return out


def board_deployed(path, target, flavour="dory-gap8"):
    """Deployed latency of every board row on ``target`` (a DeployTarget): [(row, LayerLatency)]."""
    from jaxpulp.deploy import network_latency

    layers = mobilenet_v1_128(8)
    rows = _read_csv(path)  # in network order, so each layer knows whether the previous one streamed from L3
    return list(zip(rows, network_latency([layers[r["layer"]] for r in rows], target, flavour).layers, strict=True))


def _errors(pairs):
    return [100.0 * (d.total - int(r["cycles"])) / int(r["cycles"]) for r, d in pairs]


def _whole_err(pairs, attr="total"):
    m = sum(int(r["cycles"]) * int(r["repeat"]) for r, _ in pairs)
    p = sum(getattr(d, attr) * int(r["repeat"]) for r, d in pairs)
    return 100.0 * (p - m) / m


L3_GRID = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.3)  # B/cycle; 3.3 = the HyperBus bound at 100 MHz (dma §3.13)


def deployed_section(ext):
    """Section 6: the deployment model against the board rows and the GVSoC networks."""
    import dataclasses

    from jaxpulp.deploy import get_target
    from jaxpulp.deploy.flavour import DORY_GAP8

    path = os.path.join(ext, "dory_gap8_mobilenetv1_128_8bit_per_layer.csv")
    board = get_target("gap8-board")
    out = {}
    print("\n== 6a. 1.0-MobileNetV1-128 on the GAP-8 board: deployed (gap8-board: blocking DMA, DORY GAP8 "
          "tiling budget) vs kernel-only ==")
    # leave-one-out fit of the one free board constant, the HyperRAM rate (unknown, dma §3.5)
    grid = {bw: _errors(board_deployed(path, board.replace(l3_bytes_per_cycle=bw))) for bw in L3_GRID}
    n = len(next(iter(grid.values())))
    loo = []
    for i in range(n):
        bw = min(L3_GRID, key=lambda b: mape([e for j, e in enumerate(grid[b]) if j != i]))
        loo.append({"held_out": i, "l3_bytes_per_cycle": bw, "error_pct": grid[bw][i]})
    fit_bw = min(L3_GRID, key=lambda b: mape(grid[b]))
    pairs = board_deployed(path, board)
    print(f"  {'layer':11s} {'meas':>9} {'kernel':>9} {'err%':>7} {'deployed':>9} {'err%':>7} {'LOO%':>7} "
          f"{'DMA in':>8} {'DMA out':>8} {'L3':>8}  tile / bound")
    rows = []
    for (r, d), lo in zip(pairs, loo, strict=True):
        m = int(r["cycles"])
        ek, ed = 100.0 * (d.kernel_whole - m) / m, 100.0 * (d.total - m) / m
        print(f"  {r['layer']:11s} {m:>9} {d.kernel_whole:>9} {ek:+7.1f} {d.total:>9} {ed:+7.1f} "
              f"{lo['error_pct']:+7.1f} {d.dma_in:>8} {d.dma_out:>8} {d.exposed_l3:>8}  "
              f"{d.tiling.shape()} x{d.tiling.n_tiles} / {d.bound}")
        rows.append({"layer": r["layer"], "measured": m, "kernel_only": d.kernel_whole, "kernel_err_pct": ek,
                     "deployed": d.total, "deployed_err_pct": ed, "loo_err_pct": lo["error_pct"],
                     "dma_in": d.dma_in, "dma_out": d.dma_out, "l3_exposed": d.exposed_l3,
                     "tile": d.tiling.shape(), "tiles": d.tiling.n_tiles, "bound": d.bound})
    mk, md, ml = (mape([r[k] for r in rows]) for k in ("kernel_err_pct", "deployed_err_pct", "loo_err_pct"))
    wk, wd = _whole_err(pairs, "kernel_whole"), _whole_err(pairs)
    print(f"  per-layer MAPE (21 rows): kernel-only {mk:.1f}% | deployed {md:.1f}% (L3 rate {board.l3_bytes_per_cycle}"
          f" B/cycle) | leave-one-out {ml:.1f}% (best rate on all rows: {fit_bw} B/cycle)")
    print(f"  whole network (repeats counted): kernel-only {wk:+.1f}% | deployed {wd:+.1f}% cycles vs board")
    fl = board_deployed(path, board, "pulp-nn-mixed")
    print(f"  flavour pulp-nn-mixed (byte-plane depthwise input): per-layer MAPE {mape(_errors(fl)):.1f}%, whole "
          f"{_whole_err(fl):+.1f}%")
    dory_t = board_deployed(path, board.replace(tiler="dory"))
    print(f"  DORY's tiling heuristic instead of ours: per-layer MAPE {mape(_errors(dory_t)):.1f}%, whole "
          f"{_whole_err(dory_t):+.1f}%")
    no_rows = board_deployed(path, board.replace(dma_row_latency_cycles=0))
    print(f"  without the L2-read limit on 2-D rows (1-byte rows at 1/cycle): per-layer MAPE "
          f"{mape(_errors(no_rows)):.1f}%, whole {_whole_err(no_rows):+.1f}%")
    mixed_k = board_deployed(path, board, dataclasses.replace(DORY_GAP8, dory_kernels=False))
    print(f"  dory-gap8 with pulp-nn-mixed depthwise / avgpool counts instead of pulp-nn's: per-layer MAPE "
          f"{mape(_errors(mixed_k)):.1f}%, whole {_whole_err(mixed_k):+.1f}%")
    switches = {"lto": False, "conv_split": "mixed", "dw_input_waits": False, "dma_3d": "row"}
    sens = {}
    for k, v in switches.items():
        pr = board_deployed(path, board, dataclasses.replace(DORY_GAP8, **{k: v}))
        sens[k] = (mape(_errors(pr)), _whole_err(pr))
        print(f"  dory-gap8 with {k}={v!r}: per-layer MAPE {sens[k][0]:.1f}%, whole {sens[k][1]:+.1f}%")
    out["board_switches_off"] = {k: {"mape": m, "whole_pct": w, "value": switches[k]} for k, (m, w) in sens.items()}
    out["board_sensitivity"] = {"mape_no_row_limit": mape(_errors(no_rows)), "whole_no_row_limit_pct":
                                _whole_err(no_rows), "mape_mixed_kernel_counts": mape(_errors(mixed_k)),
                                "whole_mixed_kernel_counts_pct": _whole_err(mixed_k)}
    out["board"] = {"rows": rows, "mape_kernel": mk, "mape_deployed": md, "mape_loo": ml, "whole_kernel_pct": wk,
                    "whole_deployed_pct": wd, "l3_rate_used": board.l3_bytes_per_cycle, "l3_rate_best_all": fit_bw,
                    "loo": loo, "mape_flavour_pulp_nn_mixed": mape(_errors(fl)),
                    "mape_dory_tiler": mape(_errors(dory_t)), "whole_dory_tiler_pct": _whole_err(dory_t)}
    print(f"  flavour: {DORY_GAP8.name} ({DORY_GAP8.description})")
    print("\n== 6b. Whole networks on GAP-8 GVSoC: deployed (gap8-gvsoc: double-buffered, documented constants, "
          "nothing fitted; flavour dory-gap8 with each network's --Bn_Relu_Bits) vs kernel-only ==")
    nets = dory_networks(os.path.join(ext, "dory_examples_gvsoc_network_mac_per_cycle.csv"), ext,
                         get_target("gap8-gvsoc"))
    print(f"  {'network':58s} {'meas':>6} {'kernel':>6} {'err%':>7} {'deploy':>6} {'err%':>7}  flavour")
    for r in nets:
        if r["predicted_mpc"] is None:
            continue
        print(f"  {r['network'][:58]:58s} {r['measured_mpc']:6.2f} {r['predicted_mpc']:6.2f} {r['error_pct']:+7.1f} "
              f"{r['deployed_mpc']:6.2f} {r['deployed_error_pct']:+7.1f}  {r['flavour']}")
    e8 = [r for r in nets if r["predicted_mpc"] is not None and "4bits" not in r["network"]]
    m8k, m8d = mape([r["error_pct"] for r in e8]), mape([r["deployed_error_pct"] for r in e8])
    r4 = [r for r in nets if "4bits" in r["network"]]
    r8 = [r for r in nets if r["network"].startswith("MobilenetV1 (")]
    order = bool(r4 and r8 and (r8[0]["deployed_mpc"] > r4[0]["deployed_mpc"]) == (
        r8[0]["measured_mpc"] > r4[0]["measured_mpc"]))
    print(f"  8-bit networks MAPE: kernel-only {m8k:.1f}% | deployed {m8d:.1f}%; 4-bit MobileNetV1: kernel-only "
          f"{r4[0]['error_pct']:+.1f}% | deployed {r4[0]['deployed_error_pct']:+.1f}%; 8 vs 4-bit ordering right: "
          f"{order}")
    gsens = {}
    for k, v in switches.items():
        alt = dataclasses.replace(DORY_GAP8, name=f"dory-gap8 {k}={v}", **{k: v})
        ns = [r for r in dory_networks(os.path.join(ext, "dory_examples_gvsoc_network_mac_per_cycle.csv"), ext,
                                       get_target("gap8-gvsoc"), alt)
              if r["predicted_mpc"] is not None and "4bits" not in r["network"]]
        gsens[k] = mape([r["deployed_error_pct"] for r in ns])
        print(f"  dory-gap8 with {k}={v!r}: 8-bit MAPE {gsens[k]:.1f}% ("
              + " / ".join(f"{r['deployed_error_pct']:+.1f}" for r in ns) + ")")
    out["gvsoc_switches_off"] = gsens
    mv1_4bit = mv1_4bit_section(r4[0])
    out["gvsoc"] = {"rows": nets, "mape8_kernel": m8k, "mape8_deployed": m8d, "mv1_4bit": mv1_4bit,
                    "mv1_4bit_kernel_pct": r4[0]["error_pct"], "mv1_4bit_deployed_pct": r4[0]["deployed_error_pct"],
                    "ordering_8_vs_4_right": order}
    return out


# --- issue 14, the 4-bit GVSoC row (j14b): the network DORY built and DORY's mixed-sw flavour ---------------------
# The regression line of the row (dory_examples 60dd66b regression_test_TO_UPDATE.sh) builds
# examples/Quantlab_examples/mnv1_4b4b_fixed; that folder was added in dory_examples ec6ef07 (the commit DORY
# d046edd pins). Its golden activations give the topology: input [224, 224, 4] (8 bit), "pilot" conv 24 ch at
# 112x112, then features.0-12 = 13 depthwise / pointwise pairs 24-48-96-96-192-192-384 (x6)-768-768 at 112, 56,
# 28, 14, 7 (a 0.75-MobileNetV1-224), 4-bit activations (0..15), then the average pool and a 1000-way FC with
# int32 output: 29 layers. Weights 4 bit ("4b4b"), BNRelu 64 bit (the regression's --Bn_Relu_Bits 64).
MV1_4BIT = "MobilenetV1_4bits (Quantlab mnv1_4b4b_fixed, BNRelu 64-bit)"
MV1_4BIT_NOTE = ("0.75-MobileNetV1-224, 4-bit weights / activations, 8-bit 4-channel image, 64-bit BN "
                 "(dory_examples ec6ef07 mnv1_4b4b_fixed goldens); deployed with DORY's mixed-sw flavour "
                 "(pulp-nn-mixed 7e9c4b0b, noinline unpack calls)")
ROW_FLAVOUR = {MV1_4BIT: "dory-mixed-sw"}  # every other row: dory-gap8


def mobilenet_v1_075_224_4bit():
    """The 29 layers of the 4-bit GVSoC row (see above): PyTorch padding 1 on every 3x3 layer."""
    a, w = "u4", "i4"
    layers = [kc.ConvConfig("u8", a, w, H=224, W=224, Ci=4, Co=24, stride=(2, 2), pad=(1, 1, 1, 1), bn_bits=64)]
    h, ci = 112, 24
    for co, s in [(48, 1), (96, 2), (96, 1), (192, 2), (192, 1), (384, 2)] + [(384, 1)] * 5 + [(768, 2), (768, 1)]:
        dw = kc.DepthwiseConfig(a, a, w, H=h, W=h, Ci=ci, Co=ci, stride=(s, s), pad=(1, 1, 1, 1), bn_bits=64)
        layers += [dw, kc.PointwiseConfig(a, a, w, H=dw.Ho, W=dw.Wo, Ci=ci, Co=co, bn_bits=64)]
        h, ci = dw.Ho, co
    layers.append(kc.AvgPoolConfig(a, a, H=7, W=7, C=768, Kh=7, Kw=7, stride=(7, 7)))
    layers.append(kc.LinearConfig(a, "i32", w, N=768, M=1000, relu=0, bn=0))
    return layers


def mv1_4bit_section(row):
    """The 4-bit row in detail: the mixed-sw flavour with and without its MatMul spills, the dory-gap8 flavour
    on the same network, and where the cycles go."""
    import dataclasses

    from jaxpulp.deploy import get_target, network_latency
    from jaxpulp.deploy.flavour import DORY_MIXED_SW

    meas = row["measured_mpc"]
    layers = mobilenet_v1_075_224_4bit()
    t = get_target("gap8-gvsoc")
    err = {}
    for label, fl in (("dory-mixed-sw", DORY_MIXED_SW),
                      ("dory-mixed-sw, spill-free", dataclasses.replace(DORY_MIXED_SW, mixed_sw_spills=False)),
                      ("dory-gap8 (current pulp-nn-mixed counts)", "dory-gap8")):
        nl = network_latency(layers, t, fl)
        err[label] = 100.0 * (nl.macs / nl.total - meas) / meas
        if label == "dory-mixed-sw":
            fam = {}
            for c, d in zip(layers, nl.layers, strict=True):
                fam[c.family] = fam.get(c.family, 0) + d.total
    print(f"  4-bit row ({MV1_4BIT_NOTE}):")
    print("   " + "; ".join(f"{k}: {v:+.1f}%" for k, v in err.items()))
    print("   deployed cycles by family (dory-mixed-sw): " + ", ".join(
        f"{k} {100.0 * v / sum(fam.values()):.0f}%" for k, v in fam.items()))
    return {"errors_pct": err, "cycles_by_family": fam}


def mape(errors):
    vals = [abs(e) for e in errors if e is not None]
    return sum(vals) / len(vals) if vals else float("nan")


# ------------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--external", default=EXTERNAL, help="external test cases (default: the bundled copy, "
                    "tests/data/external)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "fidelity.json"))
    ap.add_argument("--png", action="store_true", help="also write heat maps (needs matplotlib)")
    args = ap.parse_args(argv)
    t0 = time.time()
    result = {}

    cyc = cycles_csv(os.path.join(ROOT, "tests", "data", "cycles", "pulpnn_cv32e40p_runs.csv"))
    print_cycles(cyc)
    result["rtl_cycles"] = cyc

    gdir = os.path.join(ROOT, "tests", "golden")
    if not os.path.exists(os.path.join(gdir, "conv.json")):
        raise SystemExit(f"no golden vectors in {gdir}")
    gold = golden_counters(gdir)
    print("\n== 2. Golden per-core built-in counters (sdotp, extract, insert, pack4, clip/clipu, simd, minmax, "
          "fl1, barrier, core_id) ==")
    for fam, (ok, n) in gold.items():
        print(f"  {fam:15s} {ok:4d} / {n:4d} cases match on every core")
    result["golden_counters"] = {k: {"match": v[0], "cases": v[1]} for k, v in gold.items()}

    bl = benchmark_layer()
    print("\n== 3. PULP-NN benchmark layer u8/u8/i8, 16x16x32 -> 64, 3x3, pad 1 (published 15.5 MAC/cycle, "
          "peak 16) ==")
    print(f"  {'requant/outer code':22s} {'8 cores':>8} {'1 core':>7} {'speed-up':>8} {'TCDM %':>7} {'pJ/MAC':>7}")
    for k, v in bl.items():
        print(f"  {k:22s} {v['mpc_8core']:8.2f} {v['mpc_1core']:7.3f} {v['speedup']:8.2f} "
              f"{v['tcdm_contention_pct']:7.1f} {v['pj_per_mac_8core']:7.1f}")
    result["benchmark_layer"] = bl

    print("\n== 4. The 27 permutations (benchmark layer, shift-clip requant) ==")
    t8 = permutation_table("gap8")
    t1 = permutation_table("gap8-1core")
    tm = permutation_table("cortex-m7")
    print(t8.as_text())
    print(t1.as_text())
    print(tm.as_text())
    comp = compare_targets("gap8", "cortex-m7")
    print(comp.as_text())
    rg = comp.ranges()
    for key, label in (("speedup_cycles", "speed-up (cycles)"), ("speedup_time", "speed-up (time, 175 vs 400 MHz)"),
                       ("energy_ratio", "energy efficiency")):
        r = rg[key]
        print(f"  {label:32s} all {r['all'][0]:5.1f}-{r['all'][1]:5.1f}x | 8-bit weights "
              f"{r['w8'][0]:5.1f}-{r['w8'][1]:5.1f}x | 4/2-bit weights {r['w4_w2'][0]:5.1f}-{r['w4_w2'][1]:5.1f}x")
    print("  CF'20 abstract: 21-25x faster, 15-21x more energy efficient (8 cores vs STM32H7).")
    result["permutations"] = {"gap8": t8.as_dict(), "gap8-1core": t1.as_dict(), "cortex-m7": tm.as_dict(),
                              "comparison": comp.as_dict()}
    if args.png:
        try:
            heatmap_png(t8, os.path.join(HERE, "results", "permutations_gap8.png"))
            heatmap_png(t1, os.path.join(HERE, "results", "permutations_gap8_1core.png"))
            print("  heat maps written to benchmarks/results/")
        except Exception as e:  # matplotlib missing: report, do not fail
            print(f"  (no heat map: {e})")

    ext = args.external
    print("\n== 5a. 1.0-MobileNetV1-128, 8 bit, per layer on a GAP-8 board (DORY, 100 MHz, incl. DMA) ==")
    dl = dory_layers(os.path.join(ext, "dory_gap8_mobilenetv1_128_8bit_per_layer.csv"))
    print(f"  {'layer':11s} {'meas cyc':>9} {'model':>9} {'err%':>7} {'gcc-outer err%':>14} {'meas MAC/c':>10} "
          f"{'model':>6} {'B/MAC':>6}  notes")
    for r in dl:
        print(f"  {r['layer']:11s} {r['measured_cycles']:>9} {r['predicted_cycles']:>9} {r['error_pct']:+7.1f} "
              f"{r['error_pct_outer_gcc']:+14.1f} {r['measured_mpc']:10.2f} {r['predicted_mpc']:6.2f} "
              f"{r['bytes_per_mac'] if r['macs'] else float('nan'):6.2f}  {r['notes']}")
    conv_like = [r for r in dl if not r["notes"]]
    print(f"  MAPE all rows {mape([r['error_pct'] for r in dl]):.1f}% | rows without a noted effect "
          f"({len(conv_like)}: conv/pointwise kernels fed from L2) {mape([r['error_pct'] for r in conv_like]):.1f}%"
          f" | same with outer=gcc {mape([r['error_pct_outer_gcc'] for r in conv_like]):.1f}%")
    tot_m = sum(r["measured_cycles"] * r["repeat"] for r in dl)
    tot_p = sum(r["predicted_cycles"] * r["repeat"] for r in dl)
    macs = sum(r["macs"] * r["repeat"] for r in dl)
    print(f"  whole network: measured {macs / tot_m:.2f} MAC/cycle, model {macs / tot_p:.2f} "
          f"({100 * (tot_p - tot_m) / tot_m:+.1f}% cycles)")
    result["dory_mobilenet_layers"] = {"rows": dl, "mape_all": mape([r["error_pct"] for r in dl]),
                                       "mape_conv_from_l2": mape([r["error_pct"] for r in conv_like])}

    print("\n== 5b. Whole networks, GAP-8 GVSoC 8 cores (dory_examples, incl. DMA/tiling) ==")
    nets = dory_networks(os.path.join(ext, "dory_examples_gvsoc_network_mac_per_cycle.csv"), ext)
    print(f"  {'network':58s} {'meas':>6} {'model':>6} {'err%':>7}  notes")
    for r in nets:
        p = "-" if r["predicted_mpc"] is None else f"{r['predicted_mpc']:6.2f}"
        e = "-" if r["error_pct"] is None else f"{r['error_pct']:+7.1f}"
        print(f"  {r['network'][:58]:58s} {r['measured_mpc']:6.2f} {p:>6} {e:>7}  {r['notes']}")
    m_all = mape([r["error_pct"] for r in nets])
    m_8 = mape([r["error_pct"] for r in nets if "4bits" not in r["network"]])
    print(f"  MAPE over predicted networks: {m_all:.1f}% (8-bit networks only: {m_8:.1f}%)")
    result["dory_networks"] = {"rows": nets, "mape": m_all, "mape_8bit": m_8}

    result["deployed"] = deployed_section(ext)

    result["seconds"] = time.time() - t0
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, default=float)
    print(f"\nwrote {os.path.relpath(args.out, ROOT)} ({result['seconds']:.1f} s)")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
