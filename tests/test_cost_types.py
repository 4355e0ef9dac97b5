"""The Cost value type and the targets that turn it into cycles and energy."""
import pytest

from jaxpulp.cluster.config import GAP8, GAP8_1CORE, Cluster
from jaxpulp.cost import TARGETS, Cost, Target, get_target, kernel_cost, resolve_target
from jaxpulp.cost.types import FIELDS, INSTRUCTION_CLASSES, total
from jaxpulp.errors import JaxpulpError
from jaxpulp.kernels.config import ConvConfig


def test_cost_add_scale_and_views():
    a = Cost(load=2, sdotp=8, branch_taken=1, stall_load_use=1, macs=32)
    b = Cost(load=1, pack=4, barrier=1)
    s = a + b
    assert (s.load, s.sdotp, s.pack, s.barrier, s.macs) == (3, 8, 4, 1, 32)
    assert 3 * a == a * 3 == a.scale(3) == a + a + a
    assert 0 * a == Cost()
    assert s.instructions == 3 + 8 + 4 + 1  # barrier, stalls and macs are not instructions
    assert s.stalls == 1
    assert sum([a, b]) == s == total([a, b])
    assert s.builtins()["pack4"] == 2
    assert hash(a) == hash(Cost(load=2, sdotp=8, branch_taken=1, stall_load_use=1, macs=32))
    assert set(s.as_dict(nonzero=True)) == {"load", "sdotp", "pack", "branch_taken", "stall_load_use", "barrier",
                                            "macs"}
    assert set(FIELDS) >= set(INSTRUCTION_CLASSES)
    with pytest.raises(ValueError):
        a * -1
    with pytest.raises(TypeError):
        a * 1.5


def test_cv32e40p_timing_rule():
    # cycles = instr + ld_stall + 2*branch_taken + jumps (cycles/README.md)
    c = Cost(alu=10, load=4, branch_taken=2, branch_not_taken=1, jump=3, stall_load_use=2)
    t = get_target("gap8-1core")
    assert t.core_cycles(c) == c.instructions + 2 + 2 * 2 + 3


def test_contention_and_sync():
    t = get_target("gap8")
    busy = Cost(load=6, sdotp=8) * 1000
    assert t.contention([busy]) == (0,)
    con = t.contention([busy] * 8)
    assert len(set(con)) == 1 and 0 < con[0] < 0.1 * t.core_cycles(busy)
    more_banks = Target(**{**t.__dict__, "tcdm_banks": 64})
    assert more_banks.contention([busy] * 8)[0] < con[0]
    assert t.sync_cycles([Cost(barrier=2), Cost(barrier=1)]) == t.fork_cycles + 2 * t.barrier_cycles


def test_targets_registry_and_resolution():
    assert {"gap8", "gap8-1core", "cortex-m7"} <= set(TARGETS)
    assert get_target("gap8").num_cores == 8 and get_target("gap8-1core").num_cores == 1
    assert resolve_target(GAP8).name == "gap8" and resolve_target(GAP8_1CORE).name == "gap8-1core"
    four = resolve_target(Cluster(num_cores=4, freq_hz=100e6))
    assert four.num_cores == 4 and four.freq_hz == 100e6
    with pytest.raises(JaxpulpError, match="cortex-m7"):
        get_target("gap9")
    with pytest.raises(JaxpulpError):
        Target(name="x", num_cores=3, freq_hz=1e6)


def test_cluster_cost_helpers():
    cfg = ConvConfig("u8", "u8", "i8", H=14, W=9, Ci=8, Co=12, pad=(1, 1, 1, 1))  # Ho = 14: 4 row groups x halves
    cc = kernel_cost(cfg, GAP8)
    assert len(cc.per_core) == 8
    assert cc.macs == cfg.macs  # every output channel and pixel computed once
    assert cc.cycles == max(cc.core_cycles) + cc.sync_cycles
    assert cc.bottleneck_core == cc.core_cycles.index(max(cc.core_cycles))
    assert 0 < cc.balance < 1  # Ho = 14 on 4 row groups: imbalance is visible
    assert cc.energy_pj > 0 and cc.seconds > 0
    text = cc.explain()
    assert "MAC/cycle" in text and f"core {cc.bottleneck_core}" in text
    assert "sdotp" in cc.table()
    with pytest.raises(JaxpulpError, match="outer"):
        kernel_cost(cfg, GAP8, outer="icc")
    with pytest.raises(JaxpulpError, match="family"):
        kernel_cost(object(), GAP8)


def test_energy_per_mac_better_on_8_cores():
    cfg = ConvConfig("u8", "u8", "i8", H=16, W=16, Ci=32, Co=64, pad=(1, 1, 1, 1))
    e8 = kernel_cost(cfg, "gap8").pj_per_mac
    e1 = kernel_cost(cfg, "gap8-1core").pj_per_mac
    assert e8 < e1  # the always-on power is shared by 8 busy cores
    assert 20 < kernel_cost(cfg, "gap8-1v0").pj_per_mac < 60  # isa_cost §2.4: 30-40 pJ/MAC bracket at 1.0 V


def test_with_cost_and_docstring_example():
    import doctest

    import jaxpulp.cost as cost_pkg

    cfg = ConvConfig("u8", "u8", "i8", H=8, W=8, Ci=4, Co=4, pad=(1, 1, 1, 1))
    r = cost_pkg.with_cost("y", cfg, GAP8)
    assert r.output == "y" and r.cost.macs == cfg.macs
    assert doctest.testmod(cost_pkg).failed == 0
