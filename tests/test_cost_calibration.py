"""Fidelity anchors of the cost model: RTL cycle counts, the PULP-NN benchmark layer, the M7 anchor, and the
shape of the 27-permutation table."""
import csv
import os

import pytest

from jaxpulp.cost import calibration, kernel_cost, pulpnn
from jaxpulp.cost.report import BENCHMARK_LAYER, compare_targets, heatmap_png, permutation_table
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels.config import ConvConfig

CYCLES_CSV = os.path.join(os.path.dirname(__file__), "data", "cycles", "pulpnn_cv32e40p_runs.csv")


def _rows():
    with open(CYCLES_CSV) as f:
        return list(csv.DictReader(f))


ROWS = _rows()
HW_ROWS = [r for r in ROWS if r["variant"] == "hwloop_postinc_asm_innerloop"]


def test_every_hwloop_row_within_2_percent():
    assert len(HW_ROWS) == 54
    bad = []
    for r in HW_ROWS:
        e = calibration.row_error(r)
        if abs(e) > 0.02:
            bad.append(f"{r['build']} {r['kernel']} K={r['K']} bn={r['bn']}: {100 * e:+.2f}%")
    assert not bad, bad


def test_inner_loop_slope_matches_rtl_exactly():
    """Cycles added by doubling K (576 -> 1152) are the inner loop alone: 14 / 72 / 140 cycles per iteration."""
    main = [r for r in HW_ROWS if r["build"] == "clang19_O3_alignloops4"]
    by = {(r["kernel"], r["bn"], int(r["K"])): r for r in main}
    for (kernel, bn, K), r in by.items():
        if K != 576:
            continue
        r2 = by[(kernel, bn, 1152)]
        meas = int(r2["cycles"]) - int(r["cycles"])
        pred = calibration.predict_row(r2) - calibration.predict_row(r)
        assert pred == meas, (kernel, bn, pred, meas)


def test_clang_rows_without_hwloops_for_8_and_4_bit_weights():
    """hwloops=False reproduces the clang library-C rows of the main build whose inner loop does not spill
    (u8 output, 8- and 4-bit weights) within 2 %."""
    rows = [r for r in ROWS if r["variant"] == "clang_O3_library_C" and r["build"] == "clang19_O3_alignloops4"
            and r["kernel"] in ("matmul_u8_u8_i8", "matmul_u8_u8_i4")]
    assert rows
    for r in rows:
        assert abs(calibration.row_error(r, hwloops=False)) < 0.02, r["kernel"]


def _bench(relu=0, bn=0, **types):
    t = dict(in_type="u8", out_type="u8", w_type="i8")
    t.update(types)
    return ConvConfig(**t, **{**BENCHMARK_LAYER, "relu": relu, "bn": bn})


def test_benchmark_layer_8_cores():
    """PULP-NN benchmark layer, 8-bit, shift-clip requantisation: 15-16.5 MAC/cycle (published 15.5)."""
    cc = kernel_cost(_bench(), "gap8")
    assert 15.0 <= cc.macs_per_cycle <= 16.5
    one = kernel_cost(_bench(), "gap8-1core")
    assert 1.9 <= one.macs_per_cycle <= 2.1  # isa_cost §4.6: derived single core 2.03
    speedup = one.cycles / cc.cycles
    assert 7.3 <= speedup <= 7.9  # GAP SDK: 7.47-7.8x on 8 cores (isa_cost §3h)
    assert cc.balance > 0.99  # 16 rows on 8 cores: balanced


def test_cortex_m7_anchor_and_comparison():
    m7 = kernel_cost(_bench(), "cortex-m7")
    assert m7.macs_per_cycle == pytest.approx(0.6, abs=0.01)  # isa_cost §4.6 anchor
    comp = compare_targets("gap8", "cortex-m7")
    rg = comp.ranges()
    lo, hi = rg["speedup_cycles"]["w8"]
    assert 21 <= lo and hi <= 27  # CF'20: 21-25x (8-bit-weight kernels)
    assert rg["speedup_cycles"]["w4_w2"][1] < lo  # sub-byte weights: XpulpV2 unpacks per pixel pair


def test_permutation_table_shape():
    t8 = permutation_table("gap8")
    t1 = permutation_table("gap8-1core")
    assert len(t8.rows) == len(t1.rows) == 27
    w8 = [r.macs_per_cycle for r in t8.rows if r.w_bits == 8]
    sub = [r.macs_per_cycle for r in t8.rows if r.w_bits != 8]
    assert min(w8) > 2 * max(sub)  # weight precision dominates (cycles/README.md)
    for bi in (8, 4, 2):
        for bw in (8, 4, 2):
            vals = [t8.value(bi, bo, bw) for bo in (8, 4, 2)]
            assert max(vals) / min(vals) < 1.01  # output precision barely matters
    assert max(r.macs_per_cycle for r in t1.rows) < 2.29  # 14 instr / 32 MAC ideal (isa_cost §4.1)
    assert "w8" in t8.as_text() and t8.as_dict()["rows"][0]["kernel"] == "pulp_nn_conv_u8_u8_i8"


def test_outer_gcc_option_is_cheaper():
    m = kernel_cost(_bench(), "gap8-1core")
    g = kernel_cost(_bench(), "gap8-1core", outer="gcc")
    assert g.cycles < m.cycles
    assert g.per_core[0].sdotp == m.per_core[0].sdotp


def test_hwloops_false_is_slower():
    a = kernel_cost(_bench(w_type="i4"), "gap8-1core")
    b = kernel_cost(_bench(w_type="i4"), "gap8-1core", hwloops=False)
    assert b.cycles > a.cycles and b.per_core[0].hwloop == 0


def test_heatmap_png(tmp_path, monkeypatch):
    t = permutation_table("gap8")
    pytest.importorskip("matplotlib")
    p = heatmap_png(t, str(tmp_path / "h.png"))
    with open(p, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the optional extra were missing
    with pytest.raises(JaxpulpError, match="matplotlib"):
        heatmap_png(t, str(tmp_path / "g.png"))


def test_mode_of():
    assert pulpnn.mode_of(1, 1) == "bn" and pulpnn.mode_of(1, 0) == "mult"
    assert pulpnn.mode_of(0, 1) == "shift" and pulpnn.mode_of(2, 0) == "shift"
