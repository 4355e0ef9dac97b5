"""Instruction counts of the 8-bit pulp-nn kernels DORY for GAP-8 calls where it does not call pulp-nn-mixed.

The DORY-generated 1.0-MobileNetV1-128 for GAP-8 in pulp-platform/pulp-sdk
(``applications/MobileNetV1/DORY_network/src``, read at the snapshot fetched for issue 14b) calls
``pulp_nn_depthwise_generic`` for **every** depthwise layer (stride 1 and 2; ``layerConvDWBNRelu*.c``) and its
own single-core ``pulp_nn_avgpool`` for the pooling layer (``layerAveragePoolRelu27.c``). This module counts
those two kernels per core, the way ``jaxpulp.cost.pulpnn`` counts pulp-nn-mixed (same ``Cost`` classes, the
same per-class timing of ``jaxpulp.cost.targets``: branch taken 3, jump 2, misaligned access +1, divu
clz(d)+3, load-use +1; isa_cost.md §2.1). Nothing here is fitted.

``pulp_nn_depthwise_generic`` (pulp-nn ``32bit/src/pulp_nn_depthwise_generic.c``; the pulp-sdk copy has the
same loops, without the bias add): channels split over cores in chunks of ceil(C/8); per channel and per output
column a strip buffer of Kw bytes x (pt + H + pb) rows is built by word copies (``ceil(Kw/4)`` unaligned
``lw``/``sw`` per input row: the strip cost grows with the input height, twice the output rows at stride 2);
per output row a dot product over the Kh*Kw taps (``Kh*Kw & 3`` scalar MACs then ``Kh*Kw >> 2`` ``sdotusp4``
with a load-use stall each: an ``asm volatile("":::"memory")`` sits between the loads and the dot product) and
an inlined ``pulp_nn_bn_quant_u8`` (kappa / lambda reloaded), one ``sb``. Output HWC, input CHW.

``pulp_nn_avgpool`` (pulp-sdk copy): ``if (pi_core_id()==0)`` -- one core; per channel and output a
Kh x Kw window of ``lbu`` + ``add`` (strided by C), then ``(sum * out_mult) >> out_shift``, an unsigned
division by Kh*Kw, ``clipu``, ``sb``; the other cores wait at the barrier.

Link-time specialisation (``lto=True``). DORY's GAP-8 applications are built with ``-O3 -flto`` (DORY @09b4029
``templates_MCU/Makefile_template``: ``APP_CFLAGS += ... -O3 ... -flto``, ``APP_LDFLAGS += -lm -flto``; the pulp-sdk
MobileNetV1 ``Makefile`` likewise), and every layer file passes the kernel size, stride, bias and flags as literals
(``pulp_nn_depthwise_generic(x, ..., W, y_tile_size_nof, 3, 3, p_t, p_b, p_l, p_r, 2, 2, NULL, 0, ..., 1, 1, ...)``
in ``layerConvDWBNRelu3.c``; ``${fs2}, ${fs1}, ..., ${stride}, ${stride}`` in DORY's ``layer_template.c``).
``pulp_nn_depthwise_generic`` is not ``noinline`` (pulp-nn @4b2334c and the pulp-sdk copy), so GCC specialises it
for those constants: ``colCnt = Kh*Kw >> 2`` and ``leftCnt = Kh*Kw & 3`` become constants and their loops are
peeled (no loop set-up, no counter), as is the strip's ``ceil(Kw/4)``-word copy loop; the output loop and the
strip-row loop become the innermost loops and so hardware loops (one set-up per column instead of a taken branch
per iteration); ``l * stride_y * dim_kernel_x`` is strength-reduced to an add and ``wt + i_ch_ker`` hoisted.
``pulp_nn_avgpool`` is called once per network with a literal window and stride (``layerAveragePoolRelu27.c``):
its window loops are peeled up to GCC's ``max-completely-peel-times`` (16), the division by the constant area is a
shift (power of two) or a multiply-high. What is not specialised is counted as before. No compiled binary was
inspected: this is a count of what ``-O3`` does to constant-trip-count loops, not a measurement.
"""
from __future__ import annotations

from jaxpulp.cost import pulpnn
from jaxpulp.cost.model import ClusterCost, resolve_target
from jaxpulp.cost.pulpnn import KERNEL_ENTRY, QUANT_BN64
from jaxpulp.cost.types import ZERO, Cost

__all__ = ["applies", "depthwise_generic_core", "avgpool_core", "dory_kernel_cost", "conv_ho_parallel_cost",
           "ho_parallel_applies"]


def _misaligned(offset0: int, step: int, n: int) -> int:
    """How many of the n word accesses at byte offsets offset0 + i*step are not word aligned (cross a word:
    +1 cycle each, isa_cost.md §2.1 'misaligned word')."""
    if n <= 0:
        return 0
    per = [(offset0 + i * step) % 4 != 0 for i in range(4)]
    full, rest = divmod(n, 4)
    return full * sum(per) + sum(per[:rest])


def applies(cfg) -> bool:
    """True where DORY for GAP-8 runs one of the kernels counted here: 8-bit depthwise, 8-bit average pool."""
    fam = getattr(cfg, "family", None)
    if fam == "depthwise":
        return cfg.in_type.bits == cfg.w_type.bits == cfg.out_type.bits == 8
    if fam == "avgpool":
        return cfg.in_type.bits == cfg.out_type.bits == 8
    return False


def depthwise_generic_core(cfg, core: int, ncores: int, *, lto: bool = False) -> Cost:
    """``pulp_nn_depthwise_generic`` (8 bit) on core ``core``: see the module docstring. Units: one ``Cost``
    (instructions per class + stall cycles) for this core. lto: the copy specialised for the layer's literal
    kernel size, stride and flags (module docstring, "Link-time specialisation"); bn_bits 64: the 64bit/ tree's
    epilogue (``jaxpulp.cost.pulpnn.QUANT_BN64``) in place of the inlined 32-bit one."""
    C, H, W = cfg.Co, cfg.H, cfg.W
    Ho, Wo = cfg.Ho, cfg.Wo
    Kh, Kw = cfg.Kh, cfg.Kw
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    log2 = max(ncores, 1).bit_length() - 1
    chunk = (C >> log2) + int((C & (ncores - 1)) != 0)
    c0 = min(chunk * core, C)
    c1 = min(c0 + chunk, C)
    # entry: core id, chunk, bounds, kxp, dim_incr, bufferA, colCnt/leftCnt (C lines 58-71)
    cost = KERNEL_ENTRY + Cost(alu=14, mul=2)
    if c1 <= c0:
        return cost
    ks = Kh * Kw
    kxp = (Kw >> 2) + int((Kw & 3) != 0)
    col_cnt = max(1, ks >> 2)  # do-while: at least once
    left = ks & 3
    strip_rows = pt + H + pb
    core_off = core * (Kw * strip_rows + Kw)  # bufferA offset of this core in bufferC
    # one zero row of the strip: kxp word stores (hw loop), pBuffer -= dim_incr, i_buff_y++, loop back
    zero_row = Cost(store=kxp, hwloop=1, alu=2, branch_taken=1)
    if lto:  # kxp is a constant: the word loop is unrolled, the row loop becomes the hardware loop
        zero_row = Cost(store=kxp, alu=1)
    # store offsets of the strip rows: row r starts at core_off + r*Kw (after the pt zero rows)
    st_mis_rows = _misaligned(core_off + pt * Kw, Kw, H) if kxp == 1 else H * kxp * 3 // 4

    def image_rows(x_off: int) -> Cost:
        # H rows of kxp unaligned word copies: lw, (load-use) sw, hw loop; pBuffer -=, base_ptr +=, i_buff_y++,
        # compare + back-branch (C lines ~160-170)
        ld_mis = H * _misaligned(x_off, 4, kxp) if W % 4 == 0 else _misaligned(x_off, W, H) * kxp
        if lto:  # word loop unrolled (kxp constant); the row loop is the innermost: one hw loop, pBuffer += Kw
            # and base_ptr += W per row
            return Cost(load=kxp * H, store=kxp * H, stall_load_use=kxp * H, hwloop=1, alu=2 * H,
                        stall_misaligned=ld_mis + st_mis_rows)
        return Cost(load=kxp * H, store=kxp * H, stall_load_use=kxp * H, hwloop=H, alu=4 * H, branch_taken=H,
                    stall_misaligned=ld_mis + st_mis_rows)

    # one output value: pW, sum, pBuffer = bufferA + l*sy*Kw; scalar taps; sdotp taps; bn quant; sb; l++ loop
    bn_out = Cost(load=2, mul=1, alu=2, clipu=1, stall_load_use=1)  # inlined pulp_nn_bn_quant_u8
    if getattr(cfg, "bn_bits", 32) == 64:  # pulp-nn 64bit/ tree: int64 kappa / lambda
        bn_out = QUANT_BN64 + Cost(clipu=1)
    if lto:
        # taps unrolled (leftCnt, colCnt constants: no loop set-up, no counter); pW hoisted; l * sy * Kw
        # strength-reduced to pBuffer += sy * Kw; the output loop is the innermost: a hw loop per column
        per_out = Cost(alu=2, store=1)
        per_out = per_out + Cost(load=2 * left, mul=left, stall_load_use=left)
        per_out = per_out + Cost(load=2 * col_cnt, sdotp=col_cnt, stall_load_use=col_cnt)
    else:
        per_out = Cost(alu=4, mul=1, branch_taken=1, store=1)
        if left:
            per_out = per_out + Cost(load=2 * left, mul=left, stall_load_use=left, hwloop=1)
        per_out = per_out + Cost(load=2 * col_cnt, sdotp=col_cnt, stall_load_use=col_cnt, hwloop=1)
    per_out = per_out + bn_out

    # strip reads of output row l start at core_off + l*sy*Kw + left (+4j): misaligned x loads
    mis_x = sum(_misaligned(core_off + row * sy * Kw + left, 4, col_cnt) for row in range(Ho))

    def outputs(off_w: int) -> Cost:
        mis_w = Ho * _misaligned(off_w + left, 4, col_cnt)  # weights at wt + ch*Kh*Kw + left (+4j)
        return per_out * Ho + Cost(stall_misaligned=mis_x + mis_w, macs=Ho * ks, hwloop=int(lto))

    # column phases (C: left-pad do-while, middle do-while, right for-loop)
    n_left = 0
    while pl > 0 and (n_left == 0 or n_left * sx < pl):
        n_left += 1
    n_mid = max(1, (Wo - pr) - n_left)
    col_head = Cost(alu=8, mul=1, branch_taken=1) + zero_row * pt + zero_row * pb
    cols = ZERO  # every column's strip, without its outputs
    for x in range(n_left):
        nz = max(0, pl - x * sx)
        cols = cols + col_head + image_rows(0) + Cost(store=nz * H, hwloop=H, alu=2 * H)
    for x in range(n_left, n_left + n_mid):
        cols = cols + col_head + image_rows(x * sx - pl)
    for x in range(n_left + n_mid, Wo):
        nz = max(0, -(W - x * sx - 1) + Kw // 2)
        cols = cols + col_head + image_rows(x * sx - pl) + Cost(alu=4 * H, store=nz * H)
    n_cols = n_left + n_mid + max(0, Wo - n_left - n_mid)
    total = ZERO
    for ch in range(c0, c1):
        total = total + Cost(alu=4, mul=2, branch_taken=1, branch_not_taken=3) + cols + outputs(ch * ks) * n_cols
    return cost + total


# GCC's default limit on complete peeling (``--param max-completely-peel-times=16``, GCC manual "Optimize
# Options"): loops with a constant trip count up to 16 are unrolled completely at -O3.
MAX_COMPLETE_PEEL = 16


def avgpool_core(cfg, core: int, ncores: int, *, lto: bool = False) -> Cost:
    """DORY's ``pulp_nn_avgpool`` (pulp-sdk copy, 8 bit): core 0 does everything, the others only reach the
    barrier. Per channel and output window: Kh*Kw x {``p.lbu`` with register post-increment, ``add``, load-use
    stall}; per window row a hw-loop set-up and the pointer step; per output ``mul``, ``srl``, ``divu`` by Kh*Kw
    (clz(d)+3 cycles, isa_cost.md §2.1), ``clipu``, address arithmetic and ``sb``."""
    cost = KERNEL_ENTRY + Cost(alu=4)
    if core != 0:
        return cost
    C = cfg.C
    Kh, Kw = cfg.Kh, cfg.Kw
    sy, sx = cfg.stride
    ny = len(range(0, cfg.H - Kh + 1, sy))
    nx = len(range(0, cfg.W - Kw + 1, sx))
    area = Kh * Kw
    if lto:
        # the window size is a literal of the call: window loops peeled completely (area <= 16, else the
        # Kw loop, the Kh loop then being the hardware loop), loads scheduled ahead of the adds (no load-use
        # stall), tap offsets folded into the loads' immediates; the division by the constant area is a
        # shift (power of two) or a multiply-high and a shift
        if area <= MAX_COMPLETE_PEEL:
            win = Cost(load=area, alu=area)
        elif Kw <= MAX_COMPLETE_PEEL:
            win = Cost(load=area, alu=area + Kh, hwloop=1)
        else:
            win = Cost(load=area, alu=area, stall_load_use=area) + Cost(hwloop=1, alu=3, branch_taken=1) * Kh
        div = Cost(alu=1) if area & (area - 1) == 0 else Cost(mul=1, alu=1)
        out = win + div + Cost(alu=4, mul=1, clipu=1, store=1, branch_taken=1)
        per_ch = out * (ny * nx) + Cost(alu=3, branch_taken=1, branch_not_taken=2) * ny + Cost(alu=2, branch_taken=1)
        return cost + per_ch * C
    div_stall = (32 - area.bit_length()) + 3 - 1
    taps = Cost(load=1, alu=1, stall_load_use=1) * area
    rows = Cost(hwloop=1, alu=3, branch_taken=1) * Kh
    out = taps + rows + Cost(alu=6, mul=1, div=1, stall_div=div_stall, clipu=1, store=1, branch_taken=1)
    per_ch = out * (ny * nx) + Cost(alu=3, branch_taken=1, branch_not_taken=2) * ny + Cost(alu=2, branch_taken=1)
    return cost + per_ch * C + Cost(macs=0)


def dory_kernel_cost(cfg, cluster_or_target="gap8", *, lto: bool = False) -> ClusterCost:
    """Per-core cost of the DORY-for-GAP-8 kernel of ``cfg`` (``applies(cfg)`` must hold) on a target; lto:
    the link-time specialised copy (module docstring)."""
    target = resolve_target(cluster_or_target)
    fn = {"depthwise": depthwise_generic_core, "avgpool": avgpool_core}[cfg.family]
    n = target.num_cores
    name = "pulp_nn_depthwise_generic" if cfg.family == "depthwise" else "pulp_nn_avgpool (DORY)"
    return ClusterCost(tuple(fn(cfg, c, n, lto=lto) for c in range(n)), target, kernel=name)


def conv_ho_parallel_cost(cfg, cluster_or_target="gap8", outer: str = "gcc") -> ClusterCost:
    """``pulp_nn_conv_Ho_parallel`` (8-bit pulp-nn, the kernel DORY's 8-bit flow calls for every non-1x1 or
    strided convolution: DORY @09b4029 ``templates_MCU/layer_templates/layer_template.c``; the pulp-sdk DORY
    MobileNetV1's ``layerConvBNRelu0.c``): the pulp-nn-mixed 8-bit conv count with the Ho-only split
    (``jaxpulp.cost.pulpnn.conv_core(split="ho")``)."""
    target = resolve_target(cluster_or_target)
    cg = pulpnn.Codegen(hwloops=True, outer=outer)
    n = target.num_cores
    return ClusterCost(tuple(pulpnn.conv_core(cfg, c, n, cg, split="ho") for c in range(n)), target,
                       kernel="pulp_nn_conv_Ho_parallel")


def ho_parallel_applies(cfg) -> bool:
    """True for an all-8-bit convolution (the layers DORY's 8-bit flow runs on ``pulp_nn_conv_Ho_parallel``)."""
    return getattr(cfg, "family", None) == "conv" and cfg.in_type.bits == cfg.w_type.bits == cfg.out_type.bits == 8
