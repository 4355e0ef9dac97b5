"""Per-layer reports of a network: kernel, shapes, precisions, MACs, cycles and MAC/cycle from the cost model
(8-core GAP-8 by default), the bottleneck core, memory (weights, activations, im2col buffer, bytes) and whether
the layer fits L1 (64 kB) / L2 (512 kB). Terminal table, CSV and JSON share the same columns (DORY's names where
DORY has one: ``MACs``, ``cycles``, ``MAC/cycle``, ``n_cores``); ``bar_chart_png`` draws cycles per layer.

Memory model (bytes, first order): weights = packed weights + bias + kappa/lambda (4 B each per channel;
``kinds.weight_bytes`` + ``kinds.param_bytes``, the cost table counts the first only); in/out =
packed activation tensors; im2col = the kernel's scratch buffer (conv: 2*K*NC, pointwise with sub-byte input:
2*Ci*NC, depthwise: NC*G*(Kw*(H+pt+pb)+Kw) + NC*G*Kh*Kw). ``l1_fit``: the whole layer fits L1 untiled;
``l1_tiled_bytes``: the smallest DORY-style tile (one output row, the smallest output-channel group the kernel
accepts, the input rows it needs, all weights of that group, double-buffered) and whether it fits L1 —
a layer that cannot fit even so is flagged with the reason. DMA and tiling overheads are not in the cycles.
"""
from __future__ import annotations

import csv
import io
import json
import math
from typing import NamedTuple

from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.network import kinds, mapping
from jaxpulp.network.graph import Layer, Network

COLUMNS = ("layer", "name", "kernel", "in_shape", "out_shape", "in_type", "out_type", "w_type", "MACs", "cycles",
           "MAC/cycle", "bottleneck_core", "n_cores", "weights_bytes", "in_bytes", "out_bytes", "im2col_bytes",
           "l1_bytes", "l1_fit", "l1_tiled_bytes", "l1_tiled_fit", "l2_fit", "note")


DEPLOY_COLUMNS = ("deploy_kernel_cycles", "dma_in_cycles", "dma_out_cycles", "l3_cycles", "deployed_cycles",
                  "tile", "bound", "deployment", "tile_fits")


def _check_net(net) -> None:
    if not isinstance(net, Network):
        raise JaxpulpError(f"net={net!r}: expected a jaxpulp Network (e.g. jaxpulp.network.zoo.builtin('dronet'))")


def _check_rows(rows, net: Network | None = None) -> None:
    """Raise unless ``rows`` are ``layer_rows`` rows (all with the deployed columns or none), one per layer of
    ``net`` when given."""
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, dict) for r in rows):
        raise JaxpulpError(f"rows={rows!r}: expected the list of dicts from report.layer_rows(net)")
    if net is not None and len(rows) != len(net.layers):
        raise JaxpulpError(f"rows: {len(rows)} rows for network {net.name!r} of {len(net.layers)} layers; expected "
                           "one row per layer (report.layer_rows(net))")
    deployed = bool(rows) and "deployed_cycles" in rows[0]
    for i, r in enumerate(rows):
        missing = [c for c in COLUMNS + (DEPLOY_COLUMNS if deployed else ()) if c not in r]
        if missing:
            raise JaxpulpError(f"rows[{i}]: missing column(s) {missing}; expected rows from report.layer_rows(net)"
                               + (" all passed through report.add_deployed" if deployed else ""))


class Memory(NamedTuple):
    weights: int
    inputs: int
    output: int
    im2col: int
    l1_untiled: int
    l1_tiled: int
    l1_fit: bool
    l1_tiled_fit: bool
    l2_fit: bool
    reason: str


def _tensor_bytes(shape, qt) -> int:
    return math.ceil(math.prod(shape) * qt.bits / 8)


def _im2col_bytes(lay: Layer, cfg, ncores: int) -> int:
    H, W, C = lay.in_shape
    Kh, Kw = lay.kernel
    fam = getattr(cfg, "family", "")
    if fam == "conv":
        return 2 * C * Kh * Kw * ncores
    if fam == "pointwise":
        return 2 * C * ncores if lay.in_type.bits < 8 else 0
    if fam == "depthwise":
        assert lay.w_type is not None  # weighted kinds: checked by Layer
        G = 8 // min(lay.in_type.bits, lay.out_type.bits, lay.w_type.bits)
        t, b, _, _ = lay.pad
        return ncores * G * (Kw * (H + t + b) + Kw) + ncores * G * Kh * Kw
    return 0


def memory(lay: Layer, cluster: Cluster = GAP8) -> Memory:
    """The layer's memory footprint (bytes) and its L1 / L2 fit (see the module docstring)."""
    try:
        cfg = mapping.kernel_config(lay, cluster=cluster)
    except UnsupportedConfig:
        cfg = None
    Ho, Wo, Co = lay.out_shape
    H, W, C = lay.in_shape
    Kh, Kw = lay.kernel
    k = kinds.of(lay)
    weights = kinds.weight_bytes(lay) + kinds.param_bytes(lay)
    ins = sum(_tensor_bytes(lay.in_shape, t) for t in ([lay.in_type] + ([lay.in2_type] if lay.in2_type else [])))
    out = _tensor_bytes(lay.out_shape, lay.out_type)
    im2col = _im2col_bytes(lay, cfg, cluster.num_cores) if cfg is not None else 0
    untiled = weights + ins + out + im2col
    # smallest tile: one output row, the smallest channel group, the input rows it needs (double-buffered)
    if k.channelwise:
        assert lay.w_type is not None  # weighted kinds: checked by Layer
        group = 8 // min(lay.in_type.bits, lay.out_type.bits, lay.w_type.bits)
    else:
        group = 4 if k.weighted else max(1, 8 // lay.out_type.bits)
    co_t = min(Co, group)
    rows_in = 1 if k.flat else min(H, Kh)
    c_in_t = co_t if k.channelwise else C
    in_t = ins if k.flat else k.n_inputs * math.ceil(rows_in * W * c_in_t * lay.in_type.bits / 8)
    out_t = math.ceil((1 if k.flat else Wo) * co_t * lay.out_type.bits / 8)
    w_t = kinds.weight_bytes(lay, channels=co_t) + kinds.param_bytes(lay, channels=co_t)
    tiled = 2 * (in_t + out_t + w_t) + im2col
    reasons = []
    if untiled > cluster.l1_bytes and tiled > cluster.l1_bytes:
        reasons.append(f"even the smallest tile ({tiled} B: {rows_in} input rows x {W} x {c_in_t} ch, {co_t} output "
                       f"channels, double-buffered) exceeds L1 ({cluster.l1_bytes} B)")
    l2_need = weights + ins + out
    if l2_need > cluster.l2_bytes:
        reasons.append(f"weights + activations ({l2_need} B) exceed L2 ({cluster.l2_bytes} B): needs L3 streaming")
    return Memory(weights, ins, out, im2col, untiled, tiled, untiled <= cluster.l1_bytes, tiled <= cluster.l1_bytes,
                  l2_need <= cluster.l2_bytes, "; ".join(reasons))


def layer_rows(net: Network, cluster: Cluster = GAP8) -> list[dict]:
    """One dict per layer with the ``COLUMNS`` keys."""
    from jaxpulp.cost import kernel_cost

    rows = []
    for i, lay in enumerate(net.layers):
        mem = memory(lay, cluster)
        note = mem.reason
        try:
            choice = mapping.kernel_choice(lay, cluster=cluster)
            cc = kernel_cost(choice.cfg, cluster)
            kernel, cycles, mpc, bott = choice.cfg.c_name, cc.cycles, cc.macs_per_cycle, cc.bottleneck_core
            if "instead" in choice.reason:
                note = "; ".join(x for x in (choice.reason, note) if x)
        except UnsupportedConfig as e:
            kernel, cycles, mpc, bott = "(unsupported)", 0, 0.0, -1
            note = "; ".join(x for x in (str(e), note) if x)
        rows.append({
            "layer": i, "name": lay.name, "kernel": kernel, "in_shape": "x".join(map(str, lay.in_shape)),
            "out_shape": "x".join(map(str, lay.out_shape)), "in_type": str(lay.in_type), "out_type": str(lay.out_type),
            "w_type": str(lay.w_type) if lay.w_type else "", "MACs": lay.macs, "cycles": cycles,
            "MAC/cycle": round(mpc, 3), "bottleneck_core": bott, "n_cores": cluster.num_cores,
            "weights_bytes": mem.weights, "in_bytes": mem.inputs, "out_bytes": mem.output, "im2col_bytes": mem.im2col,
            "l1_bytes": mem.l1_untiled, "l1_fit": mem.l1_fit, "l1_tiled_bytes": mem.l1_tiled,
            "l1_tiled_fit": mem.l1_tiled_fit, "l2_fit": mem.l2_fit, "note": note,
        })
    return rows


def add_deployed(net: Network, rows: list[dict], target="gap8-board", flavour="dory-gap8",
                 schedule: str | None = None, tiler_candidates: int = 4) -> list[dict]:
    """Add the deployed figures of ``jaxpulp.deploy`` to ``layer_rows`` rows (in place; returned): per layer the
    tiles' kernel cycles, DMA-in / DMA-out cycles, exposed L3 cycles, deployed cycles, the tile shape and whether
    the layer is compute-, transfer- or L3-bound (``DEPLOY_COLUMNS``); unsupported layers get zeros.
    tiler_candidates: tiles the latency tiler tries per layer (4 keeps the report quick; DroNet's total moves
    0.2% against 16)."""
    from jaxpulp.deploy import get_flavour, get_target, layer_latency

    _check_net(net)
    _check_rows(rows, net)
    target = get_target(target).replace(tiler_candidates=tiler_candidates)
    flavour = get_flavour(flavour)
    how = f"{target.name} ({schedule or target.schedule}), flavour {flavour.name}"
    prev = False
    for r, lay in zip(rows, net.layers, strict=True):
        try:
            d = layer_latency(mapping.kernel_config(lay), target, flavour, schedule=schedule, prev_l3=prev)
            prev = bool(d.l3_tiled)
            vals = (d.kernel, d.dma_in, d.dma_out, d.exposed_l3, d.total, d.tiling.shape() + f" x{d.tiling.n_tiles}",
                    d.bound, how, d.tiling.fits)
            if not d.tiling.fits:
                miss = (f"does not fit L1: even its smallest deployed tile needs {d.tiling.l1_bytes} B, over "
                        f"{target.name}'s L1 budget of {target.l1_budget} B (its deployed cycles are not achievable)")
                r["note"] = "; ".join(x for x in (r["note"], miss) if x)
        except UnsupportedConfig:
            vals = (0, 0, 0, 0, 0, "", "", how, True)
        r.update(zip(DEPLOY_COLUMNS, vals, strict=True))
    return rows


def totals(rows: list[dict], cluster: Cluster = GAP8) -> dict:
    """Network totals of ``layer_rows`` rows; with the deployed columns, ``layers_not_fitting_deployed_l1`` lists
    the layers whose deployed tile does not fit the target's L1 budget (their deployed cycles are not achievable)."""
    _check_rows(rows)
    cyc = sum(r["cycles"] for r in rows)
    macs = sum(r["MACs"] for r in rows)
    return {"layers": len(rows), "MACs": macs, "cycles": cyc, "MAC/cycle": round(macs / cyc, 3) if cyc else 0.0,
            "ms": round(1e3 * cyc / cluster.freq_hz, 4), "freq_hz": cluster.freq_hz,
            "weights_bytes": sum(r["weights_bytes"] for r in rows),
            "peak_activation_bytes": max((r["in_bytes"] + r["out_bytes"] for r in rows), default=0),
            "layers_not_fitting_l1_tiled": [r["name"] for r in rows if not r["l1_tiled_fit"]],
            "layers_not_fitting_l2": [r["name"] for r in rows if not r["l2_fit"]],
            **({"deployed_cycles": sum(r["deployed_cycles"] for r in rows),
                "deployed_MAC/cycle": round(macs / max(1, sum(r["deployed_cycles"] for r in rows)), 3),
                "layers_not_fitting_deployed_l1": [r["name"] for r in rows if not r["tile_fits"]]}
               if rows and "deployed_cycles" in rows[0] else {})}


def as_table(net: Network, rows: list[dict], cluster: Cluster = GAP8) -> str:
    """Fixed-width terminal table (a subset of the columns) with the network totals and notes."""
    _check_net(net)
    _check_rows(rows, net)
    cols = [("layer", 3), ("name", 18), ("kernel", 30), ("out_shape", 12), ("MACs", 11), ("cycles", 10),
            ("MAC/cycle", 9), ("bottleneck_core", 4), ("weights_bytes", 9), ("l1_bytes", 9), ("l1_tiled_fit", 5),
            ("l2_fit", 5)]
    heads = {"bottleneck_core": "core", "weights_bytes": "w bytes", "l1_bytes": "L1 need", "l1_tiled_fit": "L1ok",
             "l2_fit": "L2ok", "MAC/cycle": "MAC/cyc"}
    line = " ".join(f"{heads.get(c, c):>{w}}" if c not in ("name", "kernel") else f"{heads.get(c, c):<{w}}"
                    for c, w in cols)
    out = [f"{net.name}: {len(rows)} layers ({net.dialect}), GAP-8 {cluster.num_cores} cores @ "
           f"{cluster.freq_hz / 1e6:g} MHz", line, "-" * len(line)]
    for r in rows:
        cells = []
        for c, w in cols:
            v = r[c]
            if isinstance(v, bool):
                v = "yes" if v else "NO"
            elif isinstance(v, int) and c not in ("layer", "bottleneck_core"):
                v = f"{v:,}"
            v = str(v)
            if c in ("name", "kernel"):
                cells.append(f"{v[:w]:<{w}}")
            else:
                cells.append(f"{v:>{w}}")
        out.append(" ".join(cells))
    t = totals(rows, cluster)
    out.append("-" * len(line))
    out.append(f"total: {t['MACs']:,} MACs, {t['cycles']:,} cycles = {t['MAC/cycle']} MAC/cycle, {t['ms']} ms; "
               f"weights {t['weights_bytes']:,} B, peak activations {t['peak_activation_bytes']:,} B")
    if "deployed_cycles" in t:
        out.append(f"deployed (jaxpulp.deploy: {rows[0]['deployment']}): layer  kernel  DMA-in  DMA-out  L3  "
                   "deployed  tile  bound")
        for r in rows:
            out.append(f"  {r['layer']:>3} {r['name'][:18]:<18} {r['deploy_kernel_cycles']:>10,} "
                       f"{r['dma_in_cycles']:>9,} {r['dma_out_cycles']:>8,} {r['l3_cycles']:>9,} "
                       f"{r['deployed_cycles']:>10,}  {r['tile']}  "
                       f"{r['bound']}" + ("  DOES NOT FIT L1" if not r["tile_fits"] else ""))
        out.append(f"whole network: kernel-only {t['cycles']:,} cycles ({t['MAC/cycle']} MAC/cycle); deployed "
                   f"{t['deployed_cycles']:,} cycles ({t['deployed_MAC/cycle']} MAC/cycle)")
        miss = t["layers_not_fitting_deployed_l1"]
        if miss:
            out.append(f"WARNING: {len(miss)} layer(s) do not fit the target's L1 budget, so the deployed total is "
                       f"not achievable: {', '.join(miss)}")
    notes = [f"  layer {r['layer']} {r['name']}: {r['note']}" for r in rows if r["note"]]
    if notes or net.notes:
        out.append("notes:")
        out.extend(notes)
        out.extend(f"  {n}" for n in net.notes)
    return "\n".join(out)


def as_csv(rows: list[dict]) -> str:
    _check_rows(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS + (DEPLOY_COLUMNS if rows and "deployed_cycles" in rows[0] else ()))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def as_json(net: Network, rows: list[dict], cluster: Cluster = GAP8) -> str:
    from jaxpulp import __version__

    _check_net(net)
    _check_rows(rows, net)
    return json.dumps({"network": net.name, "dialect": net.dialect, "jaxpulp": __version__, "columns": COLUMNS,
                       "layers": rows, "totals": totals(rows, cluster), "notes": list(net.notes)}, indent=1)


def bar_chart_png(net: Network, rows: list[dict], path: str) -> str:
    """Cycles per layer (bars coloured by kernel family) with MAC/cycle annotated; needs matplotlib."""
    from jaxpulp._io import IMAGE_SUFFIXES, check_output_path, check_suffix

    check_output_path(path, "path")
    check_suffix(path, "path", IMAGE_SUFFIXES)
    _check_net(net)
    _check_rows(rows, net)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as e:
        raise JaxpulpError("the bar chart needs matplotlib: pip install 'jaxpulp[plot]'") from e
    fams = [r["kernel"].split("_")[2] if r["kernel"].startswith("pulp_nn_") else "?" for r in rows]
    palette = {"conv": "tab:blue", "pointwise": "tab:cyan", "depthwise": "tab:orange", "linear": "tab:green",
               "maxpool": "tab:gray", "avgpool": "tab:brown", "add": "tab:purple"}
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 2), 4.2))
    xs = range(len(rows))
    ax.bar(xs, [r["cycles"] for r in rows], color=[palette.get(f, "tab:red") for f in fams])
    for x, r in zip(xs, rows, strict=True):
        if r["MACs"]:
            ax.text(x, r["cycles"], f"{r['MAC/cycle']:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{r['layer']}" for r in rows], fontsize=7)
    ax.set_xlabel("layer (label: MAC/cycle)")
    ax.set_ylabel("cycles (8-core GAP-8 cost model)")
    t = totals(rows)
    ax.set_title(f"{net.name}: {t['cycles']:,} cycles, {t['MAC/cycle']} MAC/cycle", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for f, c in palette.items() if f in fams]
    ax.legend(handles, [f for f in palette if f in fams], fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
