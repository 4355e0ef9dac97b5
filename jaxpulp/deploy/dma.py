"""Cluster DMA (mchan) L2 <-> L1 and micro-DMA L3 -> L2 transfer costs, in cluster cycles.

Mechanism (dma §2, §5): a transfer is one or more commands. Each command costs the core-side programming /
wait / free cycles (``dma_cmd_cycles``) and the first-byte latency (``dma_latency_cycles``); its payload then moves
at ``dma_bytes_per_cycle``, and a 2-D command moves row by row, each row at least one TCDM beat
(dma §2.7). Transfer kinds (DORY's choice, dma §5.10-5.11):

* 1-D: contiguous bytes (a tile with every channel and whole rows, weights, constants): one command;
* 3-D: a tile of some channels of an HWC tensor: one 2-D command per image row (rows of ``W`` pixels of
  ``c`` channels), the commands split over the cores (dma §2.12, §5.9), so their programming overhead is divided
  by the core count while the payload shares the one DMA engine;
* channel-by-channel: ``hwc-to-chw``: one 2-D command per channel whose rows are single elements (byte-granular,
  dma §5.11); ``chw-planes``: one command per channel plane (whole rows);
* blocking targets add a barrier after each pushed command of a 3-D / channel-by-channel copy (dma §5.4).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from jaxpulp.deploy.target import DeployTarget


class Transfer(NamedTuple):
    """One tensor tile's transfer: bytes moved, commands issued, cycles (core-visible)."""

    nbytes: int
    commands: int
    cycles: int


def _payload(nbytes: int, bw: float) -> int:
    return math.ceil(nbytes / bw)


def linear(nbytes: int, t: DeployTarget) -> Transfer:
    """A contiguous 1-D transfer of ``nbytes`` (commands are cut at 65,535 B, dma §2.10)."""
    if nbytes <= 0:
        return Transfer(0, 0, 0)
    n = math.ceil(nbytes / 65535)
    return Transfer(nbytes, n, n * (t.dma_cmd_cycles + t.dma_latency_cycles) + _payload(nbytes, t.dma_bytes_per_cycle))


def rows_2d(n_rows: int, row_bytes: int, t: DeployTarget) -> int:
    """Payload cycles of ``n_rows`` rows of ``row_bytes`` each: a row moves at the DMA rate but takes at least one
    cycle (one TCDM beat per port, dma §2.7), so 1-byte rows move at 1 B/cycle (MATCH's HWC->CHW rate, dma §7.5)."""
    row = max(1.0, row_bytes / t.dma_bytes_per_cycle, t.dma_row_latency_cycles / t.dma_outstanding)
    return math.ceil(n_rows * row)


def strided(n_cmds: int, rows_per_cmd: int, row_bytes: int, t: DeployTarget, *, parallel: bool = True) -> Transfer:
    """``n_cmds`` 2-D commands of ``rows_per_cmd`` rows of ``row_bytes`` (a 3-D or channel-by-channel copy).
    parallel: the commands are programmed by all cores (DORY splits 3-D copies over the cores, dma §5.9)."""
    if n_cmds <= 0 or rows_per_cmd <= 0 or row_bytes <= 0:
        return Transfer(0, 0, 0)
    per_cmd = t.dma_cmd_cycles + (t.blocking_barrier_cycles if t.schedule == "blocking" else 0)
    share = t.num_cores if parallel else 1
    prog = math.ceil(n_cmds / share) * per_cmd + t.dma_latency_cycles
    return Transfer(n_cmds * rows_per_cmd * row_bytes, n_cmds,
                    prog + rows_2d(n_cmds * rows_per_cmd, row_bytes, t))


def hwc_tile(rows: int, W: int, c_t: int, C: int, bits: int, t: DeployTarget, *, full_width: bool = True,
             per_pixel: bool = False) -> Transfer:
    """A tile of ``rows`` rows of ``W`` pixels with ``c_t`` of ``C`` channels of an HWC tensor of ``bits``-bit
    elements: 1-D when it has every channel of whole rows (contiguous), one command per row segment when it has
    every channel of part of the rows, else 3-D (one 2-D command per row; per_pixel: one 1-D command per pixel,
    as DORY's ``dory_dma_memcpy_3d_custom_out`` / ``_blocking`` and ``dory_dma_memcpy_async`` issue it)."""
    if c_t >= C:
        if full_width:
            return linear(math.ceil(rows * W * C * bits / 8), t)
        return strided(rows, 1, math.ceil(W * C * bits / 8), t)
    if per_pixel:
        return strided(rows * W, 1, math.ceil(c_t * bits / 8), t)
    return strided(rows, W, math.ceil(c_t * bits / 8), t)


def channelwise(rows: int, W: int, c_t: int, bits: int, layout: str, t: DeployTarget) -> Transfer:
    """A depthwise input tile copied channel by channel: ``hwc-to-chw`` (one 2-D command per channel, one element
    per row; sub-byte channels move as the bytes that hold them) or ``chw-planes`` (one command per plane)."""
    per_byte = max(1, 8 // bits)
    n_cmds = math.ceil(c_t / per_byte)
    if layout == "hwc-to-chw":
        return strided(n_cmds, rows * W, 1, t)
    return strided(n_cmds, 1, rows * W, t)


def l3_read(nbytes: int, t: DeployTarget) -> int:
    """Cycles to read ``nbytes`` from L3 into L2 (micro-DMA bursts of ``l3_burst_bytes``, dma §3.6)."""
    if nbytes <= 0:
        return 0
    return math.ceil(nbytes / t.l3_bytes_per_cycle) + math.ceil(nbytes / t.l3_burst_bytes) * t.l3_burst_cycles
