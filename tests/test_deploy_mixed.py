"""DORY's mixed-sw flavour (jaxpulp.deploy.mixed_noinline): hand-counted instructions of pulp-nn-mixed 7e9c4b0b.

The expected numbers below are counted by hand from the C (XpulpV2/64bit at 7e9c4b0b; derivation in
docs/deploy.md, "4-bit networks: DORY's mixed-sw flavour"), instruction by instruction, not read back from the
module's constants.
"""
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp.cost import kernel_cost
from jaxpulp.cost.model import resolve_target
from jaxpulp.cost.pulpnn import PULP_GCC, Codegen
from jaxpulp.deploy import get_flavour, layer_latency, mixed_noinline as mn
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels import config as kc

T1 = resolve_target("gap8-1core")
GCC = Codegen(hwloops=True, outer="gcc")


def _cyc(cost):
    return T1.core_cycles(cost)


def test_one_unpack_call_inside_the_matmul_loop():
    # pulp_nn_i4_to_i8 body: lw; 8 p.extract; pv.packlo.b + pv.packhi.b twice; 2 sw; addi pSrc; ret = 17
    # caller: mv a0,pA; addi a1,sp,&vecA; jal; mv pA,a0; lw vecA[0]; lw vecA[1] = 6
    call = mn.UNPACK_CALLEE + mn.CALL_FROM_MATMUL
    assert call.instructions == 17 + 6
    # cycles: 23 instructions, jal and ret one extra cycle each, the load-use stall of lw -> p.extract
    assert _cyc(call) == 23 + 2 + 1


def test_one_more_matmul_iteration_costs_the_hand_count():
    # K = 16 vs K = 8, 4 output channels (one 4x2 block): one more inner iteration.
    # Spill-free iteration: 4 lw vecB..vecB4 + 2 addi (pB, pB2) + 16 pv.sdotusp.b + 1 counter addi
    #   + 4 x (6 caller + 17 callee) = 23 + 92 = 115, + the taken back-branch = 116.
    # Spilled: 6 values of the 18 live across each call do not fit s0-s11: 6 lw + 6 sw more = 128.
    for spills, instr in ((False, 116), (True, 128)):
        a = mn.matmul_call(8, 4, 4, "bn64", False, False, GCC, spills)
        b = mn.matmul_call(16, 4, 4, "bn64", False, False, GCC, spills)
        assert b.instructions - a.instructions == instr
        # + 8 jumps (4 jal, 4 ret) + 2 for the taken branch + 4 load-use stalls (one per callee)
        assert _cyc(b) - _cyc(a) == instr + 8 + 2 + 4
        assert b.macs - a.macs == 4 * 2 * 8


def test_one_more_im2col_block_costs_a_call():
    # pulp_nn_im2col_u4_to_u8: per 8 elements mv a1,pOut; jal pulp_nn_u4_to_u8 (17); addi pOut,8; bne = 21
    a, b = mn.im2col_call(8, 4, PULP_GCC), mn.im2col_call(16, 4, PULP_GCC)
    assert b.instructions - a.instructions == 21
    assert _cyc(b) - _cyc(a) == 21 + 2 + 2 + 1
    # 2-bit input: pulp_nn_u2_to_u8 per 16 elements: 16 extracts, 4 pack4 (8 instructions), 4 sw: 27 + 4
    a2, b2 = mn.im2col_call(16, 2, PULP_GCC), mn.im2col_call(32, 2, PULP_GCC)
    assert b2.instructions - a2.instructions == 1 + 16 + 8 + 4 + 1 + 1 + 4


def test_im2col_of_8_bit_input_is_the_library_word_copy():
    from jaxpulp.cost import pulpnn

    assert mn.im2col_call(36, 8, PULP_GCC) == pulpnn.im2col_call(36, 8, PULP_GCC)


def _pw(ci, co, h, w, bi="u4"):
    return kc.PointwiseConfig(bi, "u4", "i4", H=h, W=w, Ci=ci, Co=co, bn_bits=64)


def test_pointwise_layers_run_the_conv_kernel():
    # DORY's mixed-sw template calls pulp_nn_conv_* for 1x1 layers: an im2col call per pixel (u4 input), the
    # 4x2 matmul per pixel pair; the same count as the 1x1 ConvConfig
    pw = _pw(16, 8, 2, 2)
    conv = kc.ConvConfig("u4", "u4", "i4", H=2, W=2, Ci=16, Co=8, Kh=1, Kw=1, bn_bits=64)
    a = mn.mixed_sw_kernel_cost(pw, "gap8")
    assert a.per_core == mn.mixed_sw_kernel_cost(conv, "gap8").per_core
    assert "pulp_nn_conv_u4_u4_i4" in a.kernel


@settings(max_examples=25, deadline=None)
@given(ci=st.sampled_from([8, 16, 24, 32, 64]), co=st.sampled_from([4, 8, 12, 16, 32]),
       h=st.integers(1, 6), w=st.integers(1, 6), k=st.sampled_from([1, 3]), bi=st.sampled_from(["u8", "u4"]))
def test_same_macs_more_cycles_than_the_inlined_library(ci, co, h, w, k, bi):
    cfg = kc.ConvConfig(bi, "u4", "i4", H=h, W=w, Ci=ci, Co=co, Kh=k, Kw=k, pad=(k // 2,) * 4, bn_bits=64)
    old = mn.mixed_sw_kernel_cost(cfg, "gap8")
    new = kernel_cost(cfg, "gap8", outer="gcc")
    assert old.macs == new.macs
    assert old.cycles > new.cycles
    lower = mn.mixed_sw_kernel_cost(cfg, "gap8", spills=False)
    assert new.cycles < lower.cycles <= old.cycles


def test_flavour_is_selectable_and_only_changes_4_bit_weight_convolutions():
    fl = get_flavour("dory-mixed-sw")
    assert fl.mixed_sw and fl.mixed_sw_spills
    pw4 = _pw(64, 64, 8, 8)
    assert layer_latency(pw4, "gap8-gvsoc", fl).kernel > layer_latency(pw4, "gap8-gvsoc", "dory-gap8").kernel
    pw8 = kc.PointwiseConfig("u8", "u8", "i8", H=8, W=8, Ci=64, Co=64)
    assert layer_latency(pw8, "gap8-gvsoc", fl).total == layer_latency(pw8, "gap8-gvsoc", "dory-gap8").total
    dw4 = kc.DepthwiseConfig("u4", "u4", "i4", H=8, W=8, Ci=16, Co=16, pad=(1, 1, 1, 1), bn_bits=64)
    assert not mn.applies(dw4)  # the 7e9c4b0b depthwise unpacks inline: the library count stands
    assert layer_latency(dw4, "gap8-gvsoc", fl).total == layer_latency(dw4, "gap8-gvsoc", "dory-gap8").total


def test_refuses_layers_it_does_not_model():
    cfg = kc.ConvConfig("u8", "u8", "i8", H=4, W=4, Ci=8, Co=8)
    with pytest.raises(JaxpulpError, match="4-bit weights"):
        mn.mixed_sw_kernel_cost(cfg)
    with pytest.raises(JaxpulpError, match="bits=8"):
        mn.unpack_callee(8)


def test_report_says_which_flavour(capsys):
    from jaxpulp.cli import main

    assert main(["report", "dronet", "--deploy", "gap8-gvsoc", "--flavour", "dory-mixed-sw"]) == 0
    out = capsys.readouterr().out
    assert "deployment: target gap8-gvsoc, flavour dory-mixed-sw (DORY mixed-sw" in out


# Output shapes (H, W, C) in the headers of dory_examples ec6ef07 examples/Quantlab_examples/mnv1_4b4b_fixed/
# out_layer0..28.txt (the network of the 4-bit GVSoC row): the pilot conv, 13 depthwise / pointwise pairs, the
# pool (its golden repeats the 7x7x768 input), the 1000-way FC.
MNV1_4B_SHAPES = [(112, 112, 24), (112, 112, 24), (112, 112, 48), (56, 56, 48), (56, 56, 96), (56, 56, 96),
                  (56, 56, 96), (28, 28, 96), (28, 28, 192), (28, 28, 192), (28, 28, 192), (14, 14, 192),
                  (14, 14, 384)] + [(14, 14, 384)] * 10 + [(7, 7, 384), (7, 7, 768), (7, 7, 768), (7, 7, 768)]


def test_the_4_bit_row_network_has_the_golden_shapes():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "fidelity.py")
    spec = importlib.util.spec_from_file_location("_fidelity", path)
    fid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fid)
    layers = fid.mobilenet_v1_075_224_4bit()
    assert len(layers) == 29
    convs = layers[:27]
    assert [(c.Ho, c.Wo, c.Co) for c in convs] == MNV1_4B_SHAPES[:27]
    assert (layers[0].H, layers[0].W, layers[0].Ci, layers[0].in_type.bits) == (224, 224, 4, 8)  # input.txt
    assert all(c.w_type.bits == 4 and c.out_type.bits == 4 and c.bn_bits == 64 for c in convs)
    assert (layers[28].N, layers[28].M, layers[28].out_type.bits) == (768, 1000, 32)
    assert fid.ROW_FLAVOUR[fid.MV1_4BIT] == "dory-mixed-sw"
