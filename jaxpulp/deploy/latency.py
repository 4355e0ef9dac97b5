"""Deployed latency of a layer and of a network: tiles, DMA, L3 streaming and the schedule.

Per layer (cycles of the cluster clock)::

    tile i:   in_i  = input tile (+ weights and constants when the channel tile changes; dma §5.6-5.7)
              k_i   = kernel cost of the tile's own config (jaxpulp.cost; per call: fork + barriers included)
              out_i = output tile
    blocking: T_L2 = sum_i (in_i + k_i + out_i)                                   (DORY GAP8 board, dma §5.12)
    double:   T_L2 = in_0 + sum_i max(k_i, in_{i+1} + out_{i-1}) + out_last       (DORY PULP_gvsoc, dma §5.13)
    one tile: T_L2 = in + k + out in both schedules (nothing to overlap)
    L3:       weights (and/or activations) that do not fit the L2 budget stream from L3 in tiles read while the
              layer runs (dma §6.10-6.15): T = first L3 tile + max(T_L2, rest of the L3 reads)
    T = T + layer_overhead_cycles (+ the L3 -> L2 weight copy when the target counts it, dma §6.16-6.17)

The network's deployed latency is the sum over layers (DORY runs layers one after the other).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable

from jaxpulp.cost import kernel_cost
from jaxpulp.deploy import dma, dory_kernels, mixed_noinline
from jaxpulp.deploy.flavour import Flavour, get_flavour
from jaxpulp.deploy.target import DeployTarget, get_target
from jaxpulp.deploy.tiler import Tiling, check_config, geometry, pareto_tilings, tile, tile_config, tile_sequence
from jaxpulp.errors import JaxpulpError


@dataclasses.dataclass(frozen=True)
class LayerLatency:
    """Deployed cost of one layer (cycles).

    kernel_whole: kernel-only cost of the untiled layer (what the kernel-only model reports); kernel: sum of the
    tiles' kernel costs; dma_in / dma_out: transfer cycles of inputs (+ weights) / outputs; l3: L3 -> L2 cycles;
    exposed_l3: the part of them not hidden behind the layer; overhead: per-layer call; total: deployed latency;
    tiling: the ``Tiling``; l3_tiled: weights / activations streamed from L3; bound: "compute", "transfer"
    or "L3" (what the layer waits on most); macs. ``fits``: False when even the smallest tile exceeds the
    target's L1 budget (the figures are then those of that smallest tile, which cannot run as modelled).
    """

    kernel_whole: int
    kernel: int
    dma_in: int
    dma_out: int
    l3: int
    exposed_l3: int
    overhead: int
    total: int
    tiling: Tiling
    l3_tiled: str
    bound: str
    macs: int

    @property
    def fits(self) -> bool:
        return self.tiling.fits


@functools.lru_cache(maxsize=65536)
def _kcycles(cfg, target: str, dory: bool = False, outer: str = "measured", lto: bool = False,
             conv_split: str = "mixed", mixed_sw: bool = False, spills: bool = True) -> int:
    """Kernel cycles of one call; dory: the flavour runs DORY's 8-bit pulp-nn kernel where one applies; outer:
    the MatMul block code of conv / pointwise kernels (``jaxpulp.cost.pulpnn.Codegen``); lto / conv_split: the
    ``Flavour`` fields of those names; mixed_sw: DORY's mixed-sw kernels (pulp-nn-mixed 7e9c4b0b,
    ``jaxpulp.deploy.mixed_noinline``) where they apply, with or without the MatMul loop's stack spills."""
    if mixed_sw and mixed_noinline.applies(cfg):
        return mixed_noinline.mixed_sw_kernel_cost(cfg, target, outer=outer, spills=spills).cycles
    if dory and dory_kernels.applies(cfg):
        return dory_kernels.dory_kernel_cost(cfg, target, lto=lto).cycles
    if conv_split == "ho" and dory_kernels.ho_parallel_applies(cfg):
        return dory_kernels.conv_ho_parallel_cost(cfg, target, outer).cycles
    if getattr(cfg, "family", None) in ("conv", "pointwise"):
        return kernel_cost(cfg, target, outer=outer).cycles
    return kernel_cost(cfg, target).cycles


def _tile_transfers(cfg, g, fam, ci, rows, cols, co, ho, wo, t: DeployTarget, fl: Flavour):
    """(input, weights + constants, output) transfer cycles of one tile."""
    if fam == "depthwise":
        x = dma.channelwise(rows, cols, ci, g["bi"], fl.dw_input, t).cycles
    else:
        x = g["n_in"] * dma.hwc_tile(rows, cols, ci, g["Ci"], g["bi"], t, full_width=cols >= g["W"],
                                     per_pixel=fl.dma_3d == "pixel").cycles
    kk = g["Kh"] * g["Kw"]
    taps = {"conv": kk * g["Ci"], "pointwise": g["Ci"], "depthwise": kk, "linear": g["Ci"]}.get(fam, 0)
    w = dma.linear(math.ceil(co * taps * g["bw"] / 8), t).cycles if taps else 0
    per_ch = g["consts"] // max(g["Co"], 1)
    if per_ch:  # k and lambda: one command each
        w += 2 * dma.linear(co * per_ch // 2, t).cycles
    if g["bias"]:
        w += dma.linear(4 * co, t).cycles
    y = dma.hwc_tile(ho, wo, co, g["Co"], g["bo"], t, full_width=wo >= g["Wo"], per_pixel=fl.dma_3d == "pixel").cycles
    return x, w, y


def layer_latency(cfg, target: str | DeployTarget = "gap8-board", flavour: str | Flavour = "dory-gap8",
                  *, schedule: str | None = None, prev_l3: bool = False) -> LayerLatency:
    """Deployed latency of one layer given as its kernel config (``jaxpulp.network.mapping.kernel_config``).
    schedule: override the target's ("blocking" or "double"); prev_l3: the previous layer streamed from L3 (no
    prefetch of this layer's weights, ``DeployTarget.l3_prefetch_next``)."""
    check_config(cfg)
    if not isinstance(prev_l3, bool):
        raise JaxpulpError(f"prev_l3={prev_l3!r}: expected True or False")
    t = get_target(target)
    if schedule is not None:
        t = t.replace(schedule=schedule)
    fl = get_flavour(flavour)
    return _layer(with_bn_bits(cfg, fl), t, fl, prev_l3)


def with_bn_bits(cfg, fl: Flavour):
    """``cfg`` with the flavour's network-wide BN tree (``Flavour.bn_bits``) where the layer has a BN epilogue."""
    if fl.bn_bits is None or not getattr(cfg, "bn", 0) or getattr(cfg, "bn_bits", fl.bn_bits) == fl.bn_bits:
        return cfg
    return cfg.replace(bn_bits=fl.bn_bits)


@functools.lru_cache(maxsize=16384)
def _layer(cfg, t: DeployTarget, fl: Flavour, prev_l3: bool = False) -> LayerLatency:
    if t.tiler == "dory":
        return _layer_tiled(cfg, t, fl, tile(cfg, t.l1_budget, t.double_buffering, t.num_cores), prev_l3)
    cands = pareto_tilings(cfg, t.l1_budget, t.double_buffering, t.num_cores, t.tiler_candidates)
    return min((_layer_tiled(cfg, t, fl, c, prev_l3) for c in cands), key=lambda r: r.total)


def _layer_tiled(cfg, t: DeployTarget, fl: Flavour, til: Tiling, prev_l3: bool = False) -> LayerLatency:
    fam = cfg.family
    g = geometry(cfg)
    whole_k = kernel_cost(cfg, t.kernel_target).cycles
    ordered = []  # (in, kernel, out) per tile in DORY's order
    waited = []  # input transfer cycles the cores wait for (not overlapped), per tile
    for first, key in tile_sequence(cfg, til):
        ci, rows, pt, pb, co, ho, cols, pl, pr, wo = key
        k = _kcycles(cfg if til.whole else tile_config(cfg, *key), t.kernel_target, fl.dory_kernels,
                     fl.matmul_outer, fl.lto, fl.conv_split, fl.mixed_sw, fl.mixed_sw_spills)
        x, w, y = _tile_transfers(cfg, g, fam, ci, rows, cols, co, ho, wo, t, fl)
        ordered.append((x + (w if first else 0), k, y))
        waited.append(x if fam == "depthwise" and fl.dw_input_waits else 0)
    dma_in = sum(s[0] for s in ordered)
    dma_out = sum(s[2] for s in ordered)
    kern = sum(s[1] for s in ordered)
    if len(ordered) == 1 or t.schedule == "blocking":
        t_l2 = dma_in + kern + dma_out
    else:
        # a waited input copy (Flavour.dw_input_waits) keeps the cores busy: it does not overlap the kernel
        ordered = [(a - wx, k + wx, y) for (a, k, y), wx in zip(ordered, waited, strict=True)]
        t_l2 = ordered[0][0] + ordered[-1][2]
        for i, (_, k, _) in enumerate(ordered):
            nxt = ordered[i + 1][0] if i + 1 < len(ordered) else 0
            prv = ordered[i - 1][2] if i > 0 else 0
            t_l2 += max(k, nxt + prv)
    # L3 (dma §6.10-6.15)
    x_all = g["n_in"] * math.ceil(g["H"] * g["W"] * g["Ci"] * g["bi"] / 8)
    y_all = math.ceil(g["Ho"] * g["Wo"] * g["Co"] * g["bo"] / 8)
    w_all = til.w_bytes * til.n_co + til.c_bytes * (til.n_co if not til.whole else 1)
    l3 = exposed = 0
    l3_tiled = ""
    if x_all + y_all + w_all > t.l2_budget:
        if x_all + y_all < t.l2_budget and w_all > 0:
            l3_tiled = "weights"
            buf = max(1, (t.l2_budget - x_all - y_all) // 2)
            n3 = max(1, math.ceil(w_all / buf))
            pre = min(w_all, t.l2_budget // 2) if t.l3_prefetch_next and not prev_l3 else 0
            l3 = dma.l3_read(w_all - pre, t)
        else:
            l3_tiled = "activations"
            n3 = max(2, math.ceil((x_all + y_all) / max(1, t.l2_budget // 2)))
            l3 = dma.l3_read(x_all + y_all, t)
        if t.l3_overlap:
            first = math.ceil(l3 / n3)
            total = first + max(t_l2, l3 - first)
        else:
            total = t_l2 + l3
        exposed = total - t_l2
    else:
        total = t_l2
        if t.count_weight_preload:
            exposed = l3 = dma.l3_read(w_all, t)
            total += l3
    total += t.layer_overhead_cycles
    transfer = dma_in + dma_out
    bound = "L3" if exposed > max(kern, transfer) * 0.5 and exposed > 0 else (
        "compute" if kern >= transfer else "transfer")
    return LayerLatency(whole_k, kern, dma_in, dma_out, l3, exposed, t.layer_overhead_cycles, int(total), til,
                        l3_tiled, bound, cfg.macs if hasattr(cfg, "macs") else 0)


@dataclasses.dataclass(frozen=True)
class NetworkLatency:
    """Deployed latency of a network: per-layer ``LayerLatency`` and the totals (cycles, MACs). ``not_fitting``:
    the indices of the layers whose smallest tile exceeds the L1 budget (``Tiling.fits`` False): the total counts
    them as if they ran, so it holds only when ``fits`` is True."""

    layers: tuple
    target: str
    flavour: str
    schedule: str

    @property
    def kernel_only(self) -> int:
        return sum(x.kernel_whole for x in self.layers)

    @property
    def total(self) -> int:
        return sum(x.total for x in self.layers)

    @property
    def macs(self) -> int:
        return sum(x.macs for x in self.layers)

    @property
    def not_fitting(self) -> tuple:
        return tuple(i for i, x in enumerate(self.layers) if not x.tiling.fits)

    @property
    def fits(self) -> bool:
        return not self.not_fitting


def network_latency(cfgs, target: str | DeployTarget = "gap8-board", flavour: str | Flavour = "dory-gap8",
                    *, schedule: str | None = None) -> NetworkLatency:
    """Deployed latency of a sequence of layer kernel configs (layers run one after the other); layers that do not
    fit the L1 budget are listed in ``NetworkLatency.not_fitting``."""
    if hasattr(cfgs, "layers"):  # a Network (not imported here: jaxpulp.network needs jax)
        raise JaxpulpError(f"cfgs={type(cfgs).__name__} {getattr(cfgs, 'name', '')!r}: expected its layers' "
                           "kernel configs, "
                           "[jaxpulp.network.mapping.kernel_config(layer) for layer in net.layers]")
    if isinstance(cfgs, (str, bytes)) or not isinstance(cfgs, Iterable):
        raise JaxpulpError(f"cfgs={cfgs!r}: expected a sequence of kernel configs "
                           "(jaxpulp.network.mapping.kernel_config(layer) per layer)")
    cfgs = list(cfgs)
    for i, c in enumerate(cfgs):
        check_config(c, f"cfgs[{i}]")
    t = get_target(target)
    if schedule is not None:
        t = t.replace(schedule=schedule)
    fl = get_flavour(flavour)
    out, prev = [], False
    for c in cfgs:
        d = _layer(with_bn_bits(c, fl), t, fl, prev)
        out.append(d)
        prev = bool(d.l3_tiled)
    return NetworkLatency(tuple(out), t.name, fl.name, t.schedule)
