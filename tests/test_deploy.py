"""Deployment model (jaxpulp.deploy): L1 tiling, DMA costs, schedule bounds and monotonicity."""
import math
import os

import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp.deploy import dma, get_target, layer_latency, network_latency, tile
from jaxpulp.deploy.target import DeployTarget
from jaxpulp.deploy.tiler import pareto_tilings
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import config as kc
from jaxpulp.network import mapping, zoo

EXT = os.path.join(os.path.dirname(__file__), "data", "external")
NETS = [("dory_examples/quantlab_dronet_8bit/DRONETV3_ql_integerized.onnx"),
        ("dory_examples/nemo_residual_test_1/model_int.onnx"), ("dory_examples/nemo_nas_frontnet/Frontnet.onnx"),
        ("dory_examples/nemo_eegnet_1d_1xW/eegnet_id_8b.onnx"), ("dory_examples/nemo_dscnn_test/model_int.onnx"),
        ("deeploy/DeeployTest/Tests/Models/miniMobileNet/network.onnx")]
BOARD, GVSOC = get_target("gap8-board"), get_target("gap8-gvsoc")


def _configs(path):
    pytest.importorskip("onnx")
    from jaxpulp.network.onnx_import import load_onnx

    out = []
    for lay in load_onnx(os.path.join(EXT, path)).layers:
        try:
            out.append(mapping.kernel_config(lay))
        except UnsupportedConfig:
            pass
    return out


def _check_fits(cfg, t):
    for til in (tile(cfg, t.l1_budget, t.double_buffering, t.num_cores),
                *pareto_tilings(cfg, t.l1_budget, t.double_buffering, t.num_cores)):
        assert til.fits and til.l1_bytes <= t.l1_budget, (cfg, til)
        db = 1 if til.whole else t.double_buffering
        # recompute the L1 use from the tile sizes: never more than the budget
        need = db * (til.x_bytes + til.y_bytes + til.w_bytes) + til.c_bytes + til.im2col_bytes
        assert need <= til.l1_bytes <= t.l1_budget
        assert til.co_t * til.n_co >= (cfg.Co if hasattr(cfg, "Co") else getattr(cfg, "M", getattr(cfg, "C", 0)))


@pytest.mark.parametrize("path", NETS)
def test_tiles_fit_l1_bundled_networks(path):
    for cfg in _configs(path):
        for t in (BOARD, GVSOC):
            _check_fits(cfg, t)


def test_tiles_fit_l1_builtin_networks():
    for net in (zoo.builtin("dronet"), zoo.mobilenet_v1(alpha=1.0, resolution=128, num_classes=1000)):
        for lay in net.layers:
            _check_fits(mapping.kernel_config(lay), BOARD)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(4, 80), c=st.sampled_from([8, 16, 32, 64, 96, 256, 512]),
       co=st.sampled_from([8, 32, 64, 128, 512]),
       k=st.sampled_from([1, 3]), s=st.sampled_from([1, 2]), bits=st.sampled_from(["8", "4", "2"]),
       dw=st.booleans(), db=st.sampled_from([1, 2]))
def test_tiles_fit_l1_random_layers(h, c, co, k, s, bits, dw, db):
    pad = (1, 1, 1, 1) if k == 3 else (0, 0, 0, 0)
    a, w = "u" + bits, "i" + bits
    if dw:
        cfg = kc.DepthwiseConfig(a, a, w, H=h, W=h, Ci=c, Co=c, stride=(s, s), pad=pad)
    else:
        cfg = kc.ConvConfig(a, a, w, H=h, W=h, Ci=c, Co=co, Kh=k, Kw=k, stride=(s, s), pad=pad)
    t = BOARD.replace(double_buffering=db)
    til = tile(cfg, t.l1_budget, db, 8)
    if til.fits:
        _check_fits(cfg, t)
    else:  # flagged only when even one output row of the smallest channel tile is too large
        assert til.ho_t == 1 or (dw and h <= 32)
        assert til.l1_bytes > t.l1_budget


def test_dma_hand_computed():
    t = DeployTarget("t", dma_bytes_per_cycle=8.0, dma_latency_cycles=10, dma_cmd_cycles=10,
                     blocking_barrier_cycles=20, schedule="blocking")
    assert dma.linear(1000, t).cycles == 10 + 10 + 125  # one command, 1000 B / 8 B per cycle
    assert dma.linear(70000, t).cycles == 2 * 20 + 8750  # cut at 65,535 B per command
    assert dma.linear(0, t).cycles == 0
    # 3-D: 4 rows of 16 px x 8 of 32 channels -> 4 2-D commands of 16 rows of 8 B, programmed by 8 cores
    tr = dma.hwc_tile(4, 16, 8, 32, 8, t)
    assert tr.commands == 4 and tr.nbytes == 4 * 16 * 8
    assert tr.cycles == math.ceil(4 / 8) * (10 + 20) + 10 + 64  # 64 rows of 8 B at 1 cycle each
    # every channel: contiguous 1-D
    assert dma.hwc_tile(4, 16, 32, 32, 8, t).cycles == 20 + 4 * 16 * 32 // 8
    # HWC -> CHW: 16 channels of a 4 x 16 tile, one 2-D command per channel of 64 one-byte rows (1 B/cycle)
    tr = dma.channelwise(4, 16, 16, 8, "hwc-to-chw", t)
    assert tr.commands == 16 and tr.cycles == 2 * 30 + 10 + 16 * 64
    # byte planes: one command per channel plane of 64 B
    assert dma.channelwise(4, 16, 16, 8, "chw-planes", t).cycles == 2 * 30 + 10 + 16 * 8
    # non-blocking: no barrier per command
    assert dma.strided(8, 1, 64, t.replace(schedule="double")).cycles == 10 + 10 + 64
    t3 = t.replace(l3_bytes_per_cycle=0.5, l3_burst_cycles=100)
    assert dma.l3_read(1024, t3) == 2048 + 2 * 100


def test_untiled_layer_costs_kernel_plus_one_load_and_store():
    cfg = kc.ConvConfig("u8", "u8", "i8", H=16, W=16, Ci=16, Co=16, pad=(1, 1, 1, 1))
    for t in (BOARD, GVSOC):
        d = layer_latency(cfg, t)
        assert d.tiling.whole and d.tiling.n_tiles == 1
        load = dma.linear(16 * 16 * 16, t).cycles + dma.linear(16 * 9 * 16, t).cycles + 2 * dma.linear(16 * 4, t).cycles
        store = dma.linear(16 * 16 * 16, t).cycles
        # kernel: the flavour's count of the one tile (dory-gap8: the GCC MatMul block, below the kernel-only one)
        assert d.kernel <= d.kernel_whole
        assert d.total <= d.kernel + load + store + t.layer_overhead_cycles
        assert d.total >= d.kernel
        m = layer_latency(cfg, t, "pulp-nn-mixed")
        assert m.kernel == m.kernel_whole
        assert m.kernel_whole <= m.total <= m.kernel + load + store + t.layer_overhead_cycles


@pytest.mark.parametrize("field", ["dma_bytes_per_cycle", "l3_bytes_per_cycle"])
@pytest.mark.parametrize("schedule", ["blocking", "double"])
def test_latency_monotone_in_bandwidth(field, schedule):
    cfgs = [kc.ConvConfig("u8", "u8", "i8", H=32, W=32, Ci=32, Co=64, pad=(1, 1, 1, 1)),
            kc.DepthwiseConfig("u8", "u8", "i8", H=32, W=32, Ci=64, Co=64, pad=(1, 1, 1, 1)),
            kc.PointwiseConfig("u8", "u8", "i8", H=8, W=8, Ci=512, Co=512),
            kc.LinearConfig("u8", "u8", "i8", N=1024, M=400)]
    prev = None
    for bw in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        t = BOARD.replace(schedule=schedule, l2_budget=200_000, **{field: bw})
        lat = network_latency(cfgs, t)
        assert all(x.total >= x.kernel for x in lat.layers)
        if prev is not None:
            assert lat.total <= prev, (field, bw)
        prev = lat.total


def test_double_buffering_never_slower_than_blocking_and_l3_shows():
    cfg = kc.PointwiseConfig("u8", "u8", "i8", H=4, W=4, Ci=1024, Co=1024)
    b = layer_latency(cfg, GVSOC, schedule="blocking")
    d = layer_latency(cfg, GVSOC, schedule="double")
    assert d.total <= b.total
    assert b.l3_tiled == "weights" and b.l3 > 0
    # 4-bit weights halve the bytes: L3 traffic must drop
    assert layer_latency(cfg.replace(w_type="i4"), GVSOC).l3 < b.l3


def test_bad_arguments_named():
    with pytest.raises(JaxpulpError, match="schedule='overlap'"):
        BOARD.replace(schedule="overlap")
    with pytest.raises(JaxpulpError, match="target='nope'"):
        get_target("nope")
    with pytest.raises(JaxpulpError, match="flavour='x'"):
        layer_latency(kc.PointwiseConfig("u8", "u8", "i8", H=4, W=4, Ci=8, Co=8), flavour="x")
    with pytest.raises(JaxpulpError, match="dma_bytes_per_cycle=0"):
        BOARD.replace(dma_bytes_per_cycle=0)
    cfg = kc.PointwiseConfig("u8", "u8", "i8", H=4, W=4, Ci=8, Co=8)
    for kw, match in ((dict(l1_budget=-5), "l1_budget=-5"), (dict(l1_budget=1.5), "l1_budget=1.5"),
                      (dict(double_buffering=3), "double_buffering=3"), (dict(ncores=0), "ncores=0")):
        for fn in (tile, pareto_tilings):  # they returned a tiling for any of these
            with pytest.raises(JaxpulpError, match=match):
                fn(cfg, **kw)


def test_report_adds_deployed_columns():
    from jaxpulp.network import report

    net = zoo.builtin("dronet")
    rows = report.add_deployed(net, report.layer_rows(net))
    t = report.totals(rows)
    assert t["deployed_cycles"] == sum(r["deployed_cycles"] for r in rows) > 0
    assert all(r["bound"] in ("compute", "transfer", "L3") and r["tile"] for r in rows)
    assert "deployed" in report.as_table(net, rows) and "dma_in_cycles" in report.as_csv(rows).splitlines()[0]


def test_deployed_cost_table_shows_l3_streaming_stop():
    """A precision choice that brings a layer's weights under the L2 budget stops its L3 streaming, and the
    deployed table (the sweep objective) shows it; the kernel-only table cannot."""
    from jaxpulp import costtable
    from jaxpulp.deploy.table import deployed_table
    from jaxpulp.network.graph import Layer, Network, TensorSpec
    from jaxpulp.qtypes import QType

    u8, i8 = QType.parse("u8"), QType.parse("i8")
    fc = Layer("fc", "linear", ("x",), "fc", (1, 1, 1024), (1, 1, 512), u8, u8, i8)
    import numpy as np

    p = dict(w=np.zeros((512, 1024), np.int8), kappa=np.ones(512, np.int32), lam=np.zeros(512, np.int32),
             out_mult=np.int32(1), out_shift=np.int32(8), bias=np.zeros(512, np.int32))
    net = Network("one_fc", TensorSpec("x", (1, 1, 1024), u8), (fc,), {"fc": p}, ("fc",))
    t = get_target("gap8-gvsoc").replace(l2_budget=300_000, name="small-l2")
    dep = deployed_table(net, t)
    ker = costtable.build_table(net, t.kernel_target)
    ent = {w: dep.entry("fc", "u8", w, "u8")["cycles"] for w in ("i8", "i4", "i2")}
    kent = {w: ker.entry("fc", "u8", w, "u8")["cycles"] for w in ("i8", "i4", "i2")}
    assert dep.target == "deployed:small-l2" and dep.model == "deployed"
    d8 = layer_latency(mapping.kernel_config(fc), t)  # 512 kB of 8-bit weights: streamed from L3
    d4 = layer_latency(mapping.kernel_config(fc.with_types(w_type="i4")), t)  # 256 kB: fits L2
    assert d8.l3_tiled == "weights" and d4.l3_tiled == ""
    assert ent["i8"] - kent["i8"] > ent["i4"] - kent["i4"] >= 0
    assert ent["i8"] == d8.total


# ---- DORY-for-GAP-8 8-bit kernels (jaxpulp.deploy.dory_kernels): hand-checked counts --------------------------

def _dw8(H, s, pad, C=8):
    return kc.DepthwiseConfig("u8", "u8", "i8", H=H, W=H, Ci=C, Co=C, stride=(s, s), pad=pad)


def test_dory_depthwise_generic_counts_by_hand():
    from jaxpulp.cost.pulpnn import KERNEL_ENTRY
    from jaxpulp.deploy import dory_kernels as dk

    # 8 channels on 8 cores: one channel per core; 8x8 input, 3x3, stride 1, pad 1 -> 8x8 outputs.
    c = dk.depthwise_generic_core(_dw8(8, 1, (1, 1, 1, 1)), 0, 8)
    # loads: strip copies = 8 columns x 8 input rows x 1 word; per output 2 scalar-tap + 2x2 sdotp + 2 (kappa,
    # lambda) = 8 -> 64 + 64*8 = 576, plus the kernel entry's 12
    assert c.load == KERNEL_ENTRY.load + 64 + 64 * 8
    # stores: zero rows 8 cols x (pt + pb) = 16, strip words 64, outputs 64, left / right column zero bytes 8 + 8
    assert c.store == KERNEL_ENTRY.store + 16 + 64 + 64 + 8 + 8
    assert (c.sdotp, c.macs) == (64 * 2, 64 * 9)
    # stride 2 (pad 0,1,0,1): 16x16 input -> 8x8 outputs; the strip copies grow with the input: 8 cols x 16 rows
    c2 = dk.depthwise_generic_core(_dw8(16, 2, (0, 1, 0, 1)), 0, 8)
    assert c2.load == KERNEL_ENTRY.load + 8 * 16 + 64 * 8
    assert c2.sdotp == c.sdotp


def test_dory_depthwise_generic_channel_split():
    from jaxpulp.deploy import dory_kernels as dk

    cfg = _dw8(8, 1, (1, 1, 1, 1), C=12)  # chunk = ceil(12/8) = 2: cores 0-5 two channels, 6-7 none
    macs = [dk.depthwise_generic_core(cfg, i, 8).macs for i in range(8)]
    assert macs == [2 * 64 * 9] * 6 + [0, 0]
    assert sum(macs) == cfg.macs


def test_dory_avgpool_single_core_by_hand():
    from jaxpulp.deploy import dory_kernels as dk

    cfg = kc.AvgPoolConfig("u8", "u8", H=4, W=4, C=16, Kh=4, Kw=4, stride=(4, 4))
    cc = dk.dory_kernel_cost(cfg, "gap8")
    busy = [cc.target.core_cycles(c) for c in cc.per_core]  # instructions + stalls (TCDM contention aside)
    # core 0 does all channels; cores 1-7 only the entry. Per channel, by hand (branch taken 3 cycles, divu by 16 =
    # clz(16) + 3 = 30 cycles): 16 taps x (lbu + add + load-use) = 48; 4 window rows x (lp.setup + 3 alu + taken
    # branch 3) = 28; output: 6 alu + mul + divu 30 + clipu + sb + taken branch 3 = 42; output-row loop 3 alu + 3 +
    # 2 not-taken = 8; channel loop 2 alu + 3 = 5 -> 131 cycles.
    assert busy[0] - busy[1] == 131 * 16
    assert len(set(busy[1:])) == 1


def test_dory_flavour_uses_dory_kernels_only_where_they_apply():
    from jaxpulp.cost import kernel_cost
    from jaxpulp.deploy import dory_kernels as dk

    dw8 = _dw8(16, 1, (1, 1, 1, 1), C=32)
    dw4 = kc.DepthwiseConfig("u4", "u4", "i4", H=16, W=16, Ci=32, Co=32, pad=(1, 1, 1, 1))
    pw = kc.PointwiseConfig("u8", "u8", "i8", H=8, W=8, Ci=32, Co=32)
    assert dk.applies(dw8) and not dk.applies(dw4) and not dk.applies(pw)
    a = layer_latency(dw8, "gap8-board", "dory-gap8")
    b = layer_latency(dw8, "gap8-board", "pulp-nn-mixed")
    assert a.kernel_whole == b.kernel_whole == kernel_cost(dw8, "gap8").cycles  # kernel-only column: mixed model
    if a.tiling.whole:
        assert a.kernel == dk.dory_kernel_cost(dw8, "gap8", lto=True).cycles
    assert layer_latency(dw4, "gap8-board", "dory-gap8").kernel == layer_latency(
        dw4, "gap8-board", "pulp-nn-mixed").kernel


def test_byte_rows_limited_by_reads_in_flight_by_hand():
    # every 2-D row is one L2 read: 8 in flight, 19-cycle round trip -> 19/8 cycles per 1-byte row (not 1)
    t = DeployTarget(name="t", schedule="double", dma_row_latency_cycles=19, dma_outstanding=8)
    x = dma.channelwise(4, 8, 2, 8, "hwc-to-chw", t)  # 2 channels -> 2 commands of 32 one-byte rows
    assert x.cycles == 1 * (10) + 10 + math.ceil(64 * 19 / 8)  # ceil(2/8) x 10 programming + latency + rows
    assert dma.channelwise(4, 8, 2, 8, "hwc-to-chw", t.replace(dma_row_latency_cycles=0)).cycles == 10 + 10 + 64
    # fewer reads in flight never speeds a copy up; wide rows stay bandwidth-bound
    assert dma.channelwise(4, 8, 2, 8, "hwc-to-chw", t.replace(dma_outstanding=4)).cycles > x.cycles
    assert dma.rows_2d(3, 64, t) == 3 * 8  # 64 B at 8 B/cycle: above 19/8
    with pytest.raises(JaxpulpError, match="dma_outstanding"):
        t.replace(dma_outstanding=0)


def test_l1_accounting_matches_the_dory_generated_mobilenet_tile():
    # Fact (pulp-platform/pulp-sdk applications/MobileNetV1/DORY_network/src/layerConvBNRelu8.c, PwConv5 of
    # 1.0-MobileNetV1-128: 16x16x128 -> 256): 3 x 2 x 8 = 48 tiles of 8 rows x 2 columns x 88 output channels,
    # L1 buffers x 2048 B, W 11264 B, y 1408 B, each double-buffered, in DORY's ~35 kB GAP-8 budget.
    from jaxpulp.deploy.tiler import _sizes, geometry

    cfg = kc.PointwiseConfig("u8", "u8", "i8", H=16, W=16, Ci=128, Co=256)
    g = geometry(cfg)
    x, y, w, c, im2col = _sizes(g, "pointwise", 88, 8, 8, wo_t=2)
    assert (x, y, w, im2col) == (2048, 1408, 11264, 0)
    assert 2 * (x + y + w + c) <= 35_000  # the application's tile fits our double-buffered accounting
    x2, y2, _, _, _ = _sizes(g, "pointwise", 88, 16, 8, wo_t=2)
    assert 2 * (x2 + y2 + w + c) > 35_000  # and twice its rows would not: it is maximal in rows, as DORY's rule


def test_dory_flavour_counts_the_gcc_matmul_block():
    from jaxpulp.cost import kernel_cost
    from jaxpulp.deploy.flavour import DORY_GAP8, Flavour

    pw = kc.PointwiseConfig("u8", "u8", "i8", H=8, W=8, Ci=32, Co=32)  # fits L1 whole: one tile
    a = layer_latency(pw, "gap8-board", "dory-gap8")
    assert a.tiling.whole and a.kernel == kernel_cost(pw, "gap8-1v0", outer="gcc").cycles
    assert layer_latency(pw, "gap8-board", "pulp-nn-mixed").kernel == kernel_cost(pw, "gap8-1v0").cycles
    assert DORY_GAP8.matmul_outer == "gcc"
    with pytest.raises(JaxpulpError, match="matmul_outer"):
        Flavour("x", "hwc-to-chw", "dory", matmul_outer="clang")


# ---- issue 14: DORY's 8-bit flow (-O3 -flto, pulp_nn_conv_Ho_parallel, waited depthwise input, BN tree) --------

def test_lto_depthwise_generic_saves_the_loop_overhead_by_hand():
    from jaxpulp.deploy import dory_kernels as dk

    cfg = _dw8(8, 1, (1, 1, 1, 1))  # one channel per core: 8 columns x 8 outputs, 8 image rows + 2 zero rows per column
    a = dk.depthwise_generic_core(cfg, 0, 8)
    b = dk.depthwise_generic_core(cfg, 0, 8, lto=True)
    # per output (64): 2 tap-loop set-ups, the l-loop branch, the l*sy*Kw multiply and 2 address alu disappear;
    # per column (8) one hw loop for the outputs; per image row (64) the word-loop set-up, its branch and 2 alu;
    # per zero row (16) the set-up, the branch and 1 alu. Loads, stores, sdotp unchanged.
    assert a.hwloop - b.hwloop == 64 * 2 - 8 + 64 - 8 + 16
    assert a.alu - b.alu == 64 * 2 + 64 * 2 + 16
    assert a.mul - b.mul == 64
    assert a.branch_taken - b.branch_taken == 64 + 64 + 16
    assert (a.load, a.store, a.sdotp, a.macs) == (b.load, b.store, b.sdotp, b.macs)


def test_depthwise_generic_64bit_bn_epilogue_by_hand():
    from jaxpulp.deploy import dory_kernels as dk

    cfg = _dw8(8, 1, (1, 1, 1, 1))
    a = dk.depthwise_generic_core(cfg, 0, 8)
    b = dk.depthwise_generic_core(cfg.replace(bn_bits=64), 0, 8)
    # per output (64): int64 kappa / lambda (4 loads instead of 2), mul + mulh, the 64-bit add with carry and shift
    # (alu 14 instead of 2), the call's jumps; the inlined 32-bit epilogue's load-use stall goes
    assert (b.load - a.load, b.alu - a.alu, b.mul - a.mul, b.jump - a.jump) == (2 * 64, 12 * 64, 64, 2 * 64)
    assert a.stall_load_use - b.stall_load_use == 64


def test_lto_avgpool_by_hand():
    from jaxpulp.deploy import dory_kernels as dk

    cfg = kc.AvgPoolConfig("u8", "u8", H=4, W=4, C=16, Kh=4, Kw=4, stride=(4, 4))
    cc = dk.dory_kernel_cost(cfg, "gap8", lto=True)
    busy = [cc.target.core_cycles(c) for c in cc.per_core]
    # per channel: 16 lbu + 16 add (window peeled, loads scheduled ahead: no stall); / 16 = one shift; mul, srl,
    # 3 address alu, clipu, sb, taken branch 3 -> 16 + 16 + 1 + 1 + 4 + 1 + 1 + 3 = 43; output-row loop 8;
    # channel loop 5 -> 56 cycles (the board's DORY pool: 56,000 cycles for 1,024 channels, DMA included)
    assert busy[0] - busy[1] == 56 * 16


def test_conv_ho_parallel_split_by_hand():
    from jaxpulp.cost import pulpnn

    cfg = kc.ConvConfig("u8", "u8", "i8", H=4, W=3, Ci=8, Co=8, pad=(1, 1, 1, 1))  # 4 x 3 outputs
    K = 9 * 8
    ho = [pulpnn.conv_core(cfg, c, 8, split="ho").macs for c in range(8)]
    mixed = [pulpnn.conv_core(cfg, c, 8).macs for c in range(8)]
    # Ho_parallel: chunk = ceil(4/8) = 1 row of 3 pixels on cores 0-3 (one pair + one leftover), cores 4-7 idle
    assert ho == [3 * K * 8] * 4 + [0] * 4
    # pulp-nn-mixed: Ho % 8 != 0 -> core pairs share a row, halves of 1 and 2 pixels
    assert mixed == [1 * K * 8, 2 * K * 8] * 4
    even = kc.ConvConfig("u8", "u8", "i8", H=8, W=4, Ci=8, Co=8, pad=(1, 1, 1, 1))  # Ho % 8 == 0: same split
    assert all(pulpnn.conv_core(even, c, 8, split="ho") == pulpnn.conv_core(even, c, 8) for c in range(8))
    with pytest.raises(JaxpulpError, match="split"):
        pulpnn.conv_core(cfg, 0, 8, split="rows")


def test_flavour_bn_bits_and_waited_depthwise_input():
    import dataclasses

    from jaxpulp.deploy.flavour import DORY_GAP8, Flavour

    pw = kc.PointwiseConfig("u8", "u8", "i8", H=8, W=8, Ci=32, Co=32)
    f64 = dataclasses.replace(DORY_GAP8, bn_bits=64)
    assert layer_latency(pw, "gap8-gvsoc", f64).kernel > layer_latency(pw, "gap8-gvsoc", DORY_GAP8).kernel
    assert layer_latency(pw.replace(bn_bits=64), "gap8-gvsoc", DORY_GAP8).kernel == layer_latency(
        pw, "gap8-gvsoc", f64).kernel
    with pytest.raises(JaxpulpError, match="bn_bits"):
        Flavour("x", "hwc-to-chw", "dory", bn_bits=16)
    # a depthwise layer tiled over channels on the double-buffered target: the waited input copy stops overlapping
    dw = _dw8(64, 1, (1, 1, 1, 1), C=128)
    nowait = dataclasses.replace(DORY_GAP8, dw_input_waits=False)
    a = layer_latency(dw, "gap8-gvsoc", nowait)
    b = layer_latency(dw, "gap8-gvsoc", DORY_GAP8)
    assert a.tiling.n_tiles > 1 and b.total > a.total
    assert b.total <= a.dma_in + a.kernel + a.dma_out + a.overhead + a.exposed_l3  # never worse than blocking
    small = _dw8(8, 1, (1, 1, 1, 1))  # one tile: nothing to overlap either way
    assert layer_latency(small, "gap8-gvsoc", nowait).total == layer_latency(small, "gap8-gvsoc", DORY_GAP8).total


def test_partial_channel_tile_pixel_by_pixel_by_hand():
    t = DeployTarget(name="t", schedule="double")  # 10-cycle commands, 10-cycle first byte, 8 B/cycle, 8 cores
    # 4 rows x 8 pixels with 8 of 16 channels (8 B per pixel): 32 one-pixel commands, 4 per core -> 4 * 10 + 10
    # programming + 32 rows of one beat = 82; one 2-D command per row: ceil(4 / 8) * 10 + 10 + 32 = 52
    assert dma.hwc_tile(4, 8, 8, 16, 8, t, per_pixel=True) == dma.Transfer(256, 32, 82)
    assert dma.hwc_tile(4, 8, 8, 16, 8, t) == dma.Transfer(256, 4, 52)
    # every channel of whole rows stays one 1-D command either way
    assert dma.hwc_tile(4, 8, 16, 16, 8, t, per_pixel=True) == dma.hwc_tile(4, 8, 16, 16, 8, t)


def test_registered_dory_flavours_fix_the_bn_tree():
    from jaxpulp.deploy import FLAVOURS, get_flavour
    from jaxpulp.deploy.flavour import Flavour

    assert get_flavour("dory-gap8-bn32").bn_bits == 32 and get_flavour("dory-gap8-bn64").bn_bits == 64
    assert {"dory-gap8", "dory-gap8-bn32", "dory-gap8-bn64", "pulp-nn-mixed"} <= set(FLAVOURS)
    with pytest.raises(JaxpulpError, match="dma_3d"):
        Flavour("x", "hwc-to-chw", "dory", dma_3d="plane")
    with pytest.raises(JaxpulpError, match="conv_split"):
        Flavour("x", "hwc-to-chw", "dory", conv_split="co")
