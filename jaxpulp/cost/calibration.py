"""Predictions for the measured single-core MatMul runs (shared/cycles/pulpnn_cv32e40p_runs.csv).

Each CSV row is one call of ``pulp_nn_matmul_u8_<out>_i<w>`` (2 pixels x ``ch_out`` channels, ``K`` =
num_col_im2col) on one CV32E40P core with zero-wait-state memory. ``predict_row`` gives the model's cycles for
it on the ``gap8-1core`` target (the per-core part, no fork or barrier, as measured).

Rows the model reproduces: every ``hwloop_postinc_asm_innerloop`` row (within 0.5 %). ``clang_O3_library_C``
rows are predicted with ``hwloops=False``: 8-bit and 4-bit weights with 8-bit output within ~5 %, but not the
2-bit-weight rows (clang's inner loop spills registers: 200 instructions and 20 load-use stalls per
iteration instead of 142) nor, fully, ``u8_u4_i4`` (77 instructions + 1 stall instead of 76, other register
allocation); the ``clang19_O3`` build (no loop alignment) pays one more cycle per taken branch to a
misaligned target, which the model leaves out.
"""
from __future__ import annotations

from jaxpulp.cost.pulpnn import Codegen, matmul_call, mode_of
from jaxpulp.cost.targets import GAP8_1CORE_TARGET
from jaxpulp.cost.types import Cost


def parse_kernel(name: str) -> tuple[int, bool, int]:
    """``matmul_u8_u4_i2`` -> (output bits, output signed, weight bits)."""
    parts = name.split("_")
    out, wt = parts[-2], parts[-1]
    return int(out[1:]), out[0] == "i", int(wt[1:])


def row_cost(row: dict, *, hwloops: bool | None = None) -> Cost:
    """``Cost`` of the call described by a CSV row (``hwloops`` defaults from the row's variant)."""
    if hwloops is None:
        hwloops = row["variant"].startswith("hwloop")
    bo, so, bw = parse_kernel(row["kernel"])
    mode = mode_of(int(row["relu"]), int(row["bn"]))
    return matmul_call(int(row["K"]), int(row["ch_out"]), bw, bo, mode, so, False, Codegen(hwloops=hwloops))


def predict_row(row: dict, *, hwloops: bool | None = None) -> int:
    """Predicted cycles of one CSV row on one CV32E40P core."""
    return GAP8_1CORE_TARGET.core_cycles(row_cost(row, hwloops=hwloops))


def row_error(row: dict, **kw) -> float:
    """Relative error (predicted - measured) / measured of one row."""
    meas = int(row["cycles"])
    return (predict_row(row, **kw) - meas) / meas
