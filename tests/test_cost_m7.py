"""Cortex-M7 (STM32H7) model and the CF'20 comparison (jaxpulp.cost.cmsis, jaxpulp.cost.compare_m7).

Expected instruction counts are hand-derived from the CMix-NN sources (EEESlab/CMix-NN v1.0.0) rendered in
Thumb-2; each derivation is written next to its number.
"""
import json

import pytest

from jaxpulp import cli
from jaxpulp.cost import cmsis, compare_m7, kernel_cost
from jaxpulp.cost.report import BENCHMARK_LAYER
from jaxpulp.cost.types import INSTRUCTION_CLASSES
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels.config import ConvConfig


def _n(cost):
    return sum(getattr(cost, c) for c in INSTRUCTION_CLASSES)


def test_inner_loop_8bit_weights():
    # arm_nn_mat_mult_kernel_reordered_u8_int16_*: 4 LDR of q15 pairs (2 per column, 2 columns)
    # + 2 LDR of weight words + 2 x 2 UXTB16 + 8 SMLAD (2 rows x 2 cols x 2 pairs) + SUBS + BNE = 20, 16 MACs
    c = cmsis.mm_iteration(8)
    assert (c.load, c.simd, c.mul, c.alu, c.branch_taken) == (6, 4, 8, 1, 1)
    assert _n(c) == 20


def test_inner_loop_4bit_weights():
    # u4: 8 LDR q15 (4 per column) + 2 weight LDR + 2 words x 4 x (AND with ROR, UXTB16) + 16 SMLAD + 2 = 44,
    # 32 MACs (2 rows x 2 cols x 8 columns)
    c = cmsis.mm_iteration(4)
    assert (c.load, c.alu, c.simd, c.mul) == (10, 9, 8, 16)
    assert _n(c) == 44


def test_inner_loop_2bit_weights():
    # u2: 16 LDR q15 + 2 weight LDR + 2 x 8 x (AND, UXTB16) + 32 SMLAD + 2 = 84, 64 MACs
    c = cmsis.mm_iteration(2)
    assert (c.load, c.alu, c.simd, c.mul) == (18, 17, 16, 32)
    assert _n(c) == 84


def test_im2col_blocks():
    # u8 to int16, 4 elements: LDR, UXTB16, UXTB16 ROR #8, STR, STR, SUBS, BNE = 7
    # u4, 8 elements: LDR; 3 shifts (<<4, >>4, >>8); 4 UXTB16; 4 ROR #4; 4 UXTB16; 4 STR; SUBS, BNE = 22
    # u2, 16 elements: LDR; 7 shifts; 8 UXTB16; 8 ROR #6; 8 UXTB16; 8 STR; SUBS, BNE = 42
    assert {b: (n, _n(c)) for b, (n, c) in cmsis.IM2COL_BLOCK.items()} == {8: (4, 7), 4: (8, 22), 2: (16, 42)}


def test_u2_im2col_leftover_defect():
    # arm_u2_to_int16_reordered computes blockSize % 0x16u (= % 22): 96 elements (32 ch x 3) are 6 blocks of
    # 16 and then 96 % 22 = 8 extra single-element iterations although nothing is left over
    assert cmsis.im2col_leftover(96, 2) == 8
    assert cmsis.im2col_leftover(96, 4) == 0 and cmsis.im2col_leftover(99, 8) == 3
    full = cmsis.im2col_q15(96, 2)
    assert _n(full) == _n(cmsis.im2col_q15(0, 2)) + 6 * 42 + 8 * 8  # 8 instructions per leftover element


def test_library_choice_and_names():
    c888 = ConvConfig("u8", "u8", "i8", **BENCHMARK_LAYER)
    c844 = ConvConfig("u8", "u4", "i4", **BENCHMARK_LAYER)
    assert cmsis.library(c888) == "cmsis-nn" and cmsis.library(c844) == "cmix-nn"
    assert "q7_fast" in cmsis.c_name(c888) and "u8_u4_i4" in cmsis.c_name(c844)
    # CMix-NN's u8_u8_u8 adds the weight-offset pre-pass and SMULL requant: more instructions than CMSIS-NN
    assert _n(cmsis.conv_cost(c888, lib="cmix-nn")) > _n(cmsis.conv_cost(c888))
    with pytest.raises(JaxpulpError, match="lib='tflm'"):
        cmsis.conv_cost(c888, lib="tflm")


def test_m7_subbyte_penalty_is_small():
    """The M7's cost per MAC barely moves with the weight width (why the ratio halves for sub-byte weights)."""
    ipm = {bw: _n(cmsis.conv_cost(ConvConfig("u8", "u8", f"i{bw}", **BENCHMARK_LAYER), lib="cmix-nn"))
           / (4718592) for bw in (8, 4, 2)}
    assert 1.0 < ipm[4] / ipm[8] < 1.15 and 1.0 < ipm[2] / ipm[8] < 1.1


@pytest.fixture(scope="module")
def comp():
    return compare_m7.compare_m7()


def test_comparison_rows_and_causes(comp):
    assert len(comp.rows) == 27
    for r in comp.rows:
        assert r.speedup == pytest.approx(r.m7_cycles / r.gap8_cycles)
        assert r.speedup_time == pytest.approx(r.speedup * comp.gap8_freq_mhz / comp.m7_freq_mhz)
        # every ratio outside the paper's range carries a named cause, every in-range one none
        assert bool(r.speedup_causes) != r.speedup_in_range
        assert bool(r.energy_causes) != r.energy_in_range
        assert all(k in compare_m7.CAUSES for k in r.speedup_causes + r.energy_causes)
    r = comp.row(8, 8, 8)
    assert r.m7_cycles == kernel_cost(ConvConfig("u8", "u8", "i8", **BENCHMARK_LAYER), "cortex-m7").cycles


def test_energy_scales_with_power(comp):
    half = compare_m7.compare_m7(m7_power_mw=comp.m7_pj_per_cycle * 0.4 / 2)  # pJ * 400 MHz / 2, in mW
    for a, b in zip(comp.rows, half.rows, strict=True):
        assert b.energy_ratio == pytest.approx(a.energy_ratio / 2) and b.speedup == a.speedup
    sens = compare_m7.energy_sensitivity(comp, m7_power_mw=(comp.m7_pj_per_cycle * 0.4,))
    assert sens[0][2] == pytest.approx(comp.ranges()["energy_ratio"]["w8"][0])


def test_bad_arguments():
    with pytest.raises(JaxpulpError, match="m7_power_mw=-1"):
        compare_m7.compare_m7(m7_power_mw=-1)
    with pytest.raises(JaxpulpError, match="m7='gap8'"):
        compare_m7.compare_m7(m7="gap8")


def test_cli_compare_m7(tmp_path, capsys):
    js, png = tmp_path / "m7.json", tmp_path / "m7.png"
    assert cli.main(["compare-m7", "--json", str(js), "--png", str(png), "--m7-freq-mhz", "480"]) == 0
    out = capsys.readouterr().out
    assert "21-25x" in out and "[subbyte-unpack]" in out
    d = json.loads(js.read_text())
    assert len(d["rows"]) == 27 and d["m7_freq_mhz"] == 480
    pytest.importorskip("matplotlib")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_power_is_one_line(capsys):
    assert cli.main(["compare-m7", "--m7-power-mw", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: m7_power_mw=0") and "Traceback" not in err


def test_heatmap_skipped_without_matplotlib(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "m7.png"
    assert cli.main(["compare-m7", "--png", str(png)]) == 0
    cap = capsys.readouterr()
    assert "heat map skipped" in cap.err and "jaxpulp[plot]" in cap.err and not png.exists()
    assert "21-25x" in cap.out  # the table is still printed


def test_gap8_operating_point_scales_energy_only(comp):
    # gap8-1v0: same cluster, 100 MHz, 1.0 V: energy per busy cycle (183 + 8 x 37.6) pJ instead of 1.44x that
    eff = compare_m7.compare_m7(gap8="gap8-1v0")
    assert eff.gap8_pj_per_cycle == pytest.approx(183.0 + 8 * 37.6)
    for a, b in zip(comp.rows, eff.rows, strict=True):
        assert b.gap8_cycles == a.gap8_cycles
        assert b.energy_ratio == pytest.approx(a.energy_ratio * 1.2 ** 2, rel=1e-6)


def test_every_cause_is_sourced():
    for k, c in compare_m7.CAUSES.items():
        assert c.key == k and len(c.text) > 40 and len(c.source) > 10


def test_cli_unwritable_json_is_one_line(tmp_path, capsys):
    bad = tmp_path / "no-such-dir" / "m7.json"
    assert cli.main(["compare-m7", "--json", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --json") and "Traceback" not in err
