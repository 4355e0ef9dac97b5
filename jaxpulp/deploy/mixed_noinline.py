"""Instruction counts of the convolution kernels DORY's mixed-precision software flow runs (pulp-nn-mixed 7e9c4b0b).

DORY d046edd (``Model_deployment_MCU.copy_backend``) switches to ``optional = 'mixed-sw'`` as soon as one
convolution has fewer than 8 bits of input, output or weights, and then copies
``pulp-nn-mixed/XpulpV2/<BNRelu_bits>bit/`` of the pulp-nn-mixed commit it pins as a submodule (7e9c4b0b). Its
``templates_MCU/layer_templates/layer_template.c`` calls ``pulp_nn_conv_u<in>_u<out>_i<w>`` for every
non-depthwise convolution, **pointwise layers included** (the ``pulp_nn_pointwise_*`` kernels are not used),
``pulp_nn_depthwise_u<in>_u<out>_i<w>`` for depthwise layers and ``pulp_nn_linear_*`` / ``pulp_nn_avgpool_u*``
for the rest.

At that commit the sub-byte unpack helpers of ``XpulpV2/64bit/include/pulp_nn_utils.h`` are **noinline**
functions that unpack one 32-bit word per call and hand the bytes back through memory:

* ``pulp_nn_i4_to_i8(pSrc, pDst)`` (weights) and ``pulp_nn_u4_to_u8(pSrc, pDst)`` (activations): ``lw`` of the
  packed word, 8 ``p.extract[u]``, two ``pack4`` (``pv.packlo.b`` + ``pv.packhi.b`` each), two ``sw`` to
  ``pDst``, ``pSrc += 4``, ``ret``; ``pulp_nn_u2_to_u8``: 16 extracts, 4 ``pack4``, 4 ``sw``.
* ``pulp_nn_matmul_u4_i4`` (``src/MatrixMultiplication``) calls ``pulp_nn_i4_to_i8`` four times per inner
  iteration (one per weight row, into the stack arrays ``vecA..vecA4``) and reads the two words back before its
  four ``SumDotp4``; the loop holds a call, so it is a software loop, not a hardware loop.
* ``pulp_nn_im2col_u4_to_u8`` (``pulp_nn_utils.h``) calls ``pulp_nn_u4_to_u8`` once per 8 elements.

The current pulp-nn-mixed (what ``jaxpulp.cost.pulpnn`` counts and the RTL runs measured) inlines the same
extracts into the MatMul loop: 72 instructions per 4x2 iteration with 4-bit weights. Here the same iteration
costs 48 caller instructions + 4 calls of 17 = 116 without spills (see ``MM_ITER_CALLER``), 128 with the stack
traffic of the values that do not fit the callee-saved registers (``MM_SPILL``). The depthwise kernel of that
commit unpacks inline (``bitext`` / ``bitextu`` in the kernel body), with the same loop structure as the
current one: it keeps the ``jaxpulp.cost.pulpnn`` count, as do linear and pooling.

Counts are per core, in the ``Cost`` classes of ``jaxpulp.cost`` and timed by the same target (branch taken 3,
jump 2, load-use +1, isa_cost.md §2.1). The derivations are in docs/deploy.md ("4-bit networks: DORY's
mixed-sw flavour"). Nothing here is fitted.
"""
from __future__ import annotations

import dataclasses

from jaxpulp.cluster import split as _split
from jaxpulp.cost import pulpnn as pn
from jaxpulp.cost.model import ClusterCost, resolve_target
from jaxpulp.cost.types import ZERO, Cost
from jaxpulp.errors import JaxpulpError

__all__ = ["UNPACK_CALLEE", "MM_ITER_CALLER", "MM_SPILL", "applies", "unpack_callee", "im2col_call",
           "matmul_call", "conv_core", "as_conv", "mixed_sw_kernel_cost"]

# ------------------------------------------------------------------------------------------------------------
# The noinline unpack helpers (pulp-nn-mixed 7e9c4b0b, XpulpV2/64bit/include/pulp_nn_utils.h)
# ------------------------------------------------------------------------------------------------------------


def unpack_callee(bits: int) -> Cost:
    """Body of ``pulp_nn_{i,u}4_to_{i,u}8`` (bits=4) or ``pulp_nn_u2_to_u8`` (bits=2), one call: ``lw`` of the
    packed word (the first extract uses it at once: 1 load-use stall), 8 / 16 ``p.extract[u]``, 2 / 4 ``pack4``
    (2 ``pack`` instructions each, as ``jaxpulp.cost.pulpnn.unpack_word``), 2 / 4 ``sw`` to ``pDst``,
    ``addi`` (``pSrc += 4``, the return value), ``ret`` (a jump)."""
    if bits == 4:
        return Cost(load=1, extract=8, pack=4, store=2, alu=1, jump=1, stall_load_use=1)
    if bits == 2:
        return Cost(load=1, extract=16, pack=8, store=4, alu=1, jump=1, stall_load_use=1)
    raise JaxpulpError(f"bits={bits}: the noinline unpack helpers exist for 4 and 2-bit words")


UNPACK_CALLEE = unpack_callee(4)  # 17 instructions, 19 cycles (ret +1, load-use +1)

# One call of ``pulp_nn_i4_to_i8(pA, vecA)`` seen from the MatMul loop: ``mv a0, pA`` (pA lives in a
# callee-saved register), ``addi a1, sp, off`` (&vecA), ``jal``, ``mv pA, a0`` (the returned pointer), then the
# two words ``vecA[0]``, ``vecA[1]`` read back from the stack (the callee wrote them; the reads are two
# instructions ahead of their first ``SumDotp4``: no stall).
CALL_FROM_MATMUL = Cost(alu=3, jump=1, load=2)

# One 4x2 iteration of ``pulp_nn_matmul_u4_i4`` (8 input bytes x 2 pixels, 4 weight rows), caller side, no
# spill: 4 ``lw`` (vecB..vecB4), ``pB += 8``, ``pB2 += 8`` (2 ``addi``), 4 calls as above, 16 ``SumDotp4``,
# loop counter ``addi`` + taken ``bne`` = 12 loads + 15 ALU + 4 jumps + 16 sdotp + 1 branch = 48 instructions.
# (the taken ``bne`` is added by ``_software_loop``).
MM_ITER_CALLER = Cost(load=4, alu=2 + 1, sdotp=16) + CALL_FROM_MATMUL * 4

# Register pressure of that loop: across each call 18 values referenced in the loop are live (8 accumulators,
# vecB..vecB4, 3 of the 4 weight pointers + the returned one, pB, pB2, the loop counter; &vecA is sp + constant)
# and RV32 has 12 callee-saved registers (s0-s11; every a/t register may be clobbered by the call): 6 values live
# in the stack frame, each reloaded once and stored once per iteration (an allocator that loads the 4 weight
# pointers straight into a0 would need only 2 + 2; GCC 12.2 on this loop needs 17 more instructions than the
# spill-free 48, see docs/deploy.md).
MM_SPILL = Cost(load=6, store=6)

# The 1 x 2 iteration of a leftover output channel (``chan_left`` loop, 8 input bytes x 2 pixels, 1 weight
# row): 4 ``lw`` vecB..vecB4, 2 pointer ``addi``, one call, 4 ``SumDotp4``, loop control (fewer live values: no
# spill).
MM_LEFT_ITER = Cost(load=4, alu=2 + 1, sdotp=4) + CALL_FROM_MATMUL


def _software_loop(body: Cost, n: int) -> Cost:
    """n iterations of a loop that contains a call (PULP GCC makes no hardware loop of it): ``body`` holds the
    counter update; the back-branch is taken n - 1 times and falls through once."""
    if n <= 0:
        return ZERO
    return body * n + Cost(branch_taken=n - 1, branch_not_taken=1)


def matmul_call(K: int, Co: int, bo: int, mode: str, out_signed: bool, bias: bool, cg: pn.Codegen,
                spills: bool = True) -> Cost:
    """One ``pulp_nn_matmul_u<bo>_i4`` call of pulp-nn-mixed 7e9c4b0b (2 pixels x Co output channels),
    including the call. Block overhead, K tail, bias, requantisation and packing as
    ``jaxpulp.cost.pulpnn.matmul_call`` (same C there); the inner loop as ``MM_ITER_CALLER`` + 4 x
    ``UNPACK_CALLEE`` (+ ``MM_SPILL`` when ``spills``)."""
    iters = K // 8
    tail_iters = (K % 8) // 2
    nb = Co // 4
    overhead = pn.MM_BLOCK[4] if cg.outer == "measured" else pn.MM_BLOCK_GCC
    it = MM_ITER_CALLER + UNPACK_CALLEE * 4 + (MM_SPILL if spills else ZERO)
    block = overhead + _software_loop(it, iters) + pn.inner_loop(pn.mm_tail_iter(4, 4), tail_iters, cg)
    if bias:
        block = block + pn.MM_BIAS
    qsigned = out_signed and mode != "shift"
    block = block + pn.quant(mode, qsigned) * 8 + pn.pack_outputs(4, bo) * 2 + Cost(macs=8 * K)
    cost = pn.MM_CALL + block * nb
    left = Co % 4 if bo in (8, 4) else 0
    if left:
        per = Cost(alu=4, branch_taken=1, branch_not_taken=2) + (Cost(load=1) if bias else ZERO)
        per = per + _software_loop(MM_LEFT_ITER + UNPACK_CALLEE, iters)
        per = per + pn.inner_loop(pn.mm_tail_iter(4, 1), tail_iters, cg)
        per = per + pn.quant(mode, out_signed) * 2 + Cost(macs=2 * K, store=2)
        cost = cost + per * left
        if bo == 4:
            cost = cost + Cost(load=4, insert=2, store=2) * (left // 2)
    return cost


# ``pulp_nn_im2col_u<bi>_to_u8`` with the noinline ``pulp_nn_u<bi>_to_u8``: the caller's 3 argument moves and
# ``jal``; entry (s0-s2 and ra saved: 4 sw, restored: 4 lw; sp adjusted twice; ``mv s1, pOutput``; blkCnt
# ``srli``, lfover ``andi``, end pointer ``slli`` + ``add``; the blkCnt == 0 test; ``ret``): 10 ALU, and per
# 8 (bi=4) or 16 (bi=2) elements ``mv a1, pOut``; ``jal``; ``pOut += 8``; ``bne`` (pInput stays in a0: it is the
# helper's argument and its return value). The lfover == 0 test is taken when there is no leftover.
IM2COL_ENTRY = Cost(store=4, load=4, alu=10, branch_not_taken=1, jump=2)
IM2COL_ITER = Cost(alu=2, jump=1)


def im2col_call(n: int, bi: int, cg: pn.Codegen) -> Cost:
    """``pulp_nn_im2col_u<bi>_to_u8(src, dst, n)`` of 7e9c4b0b: n elements unpacked to bytes. 8-bit inputs are
    a word copy with no helper (``jaxpulp.cost.pulpnn.im2col_call``, same C)."""
    if bi == 8:
        return pn.im2col_call(n, 8, cg)
    per = 8 if bi == 4 else 16
    c = IM2COL_ENTRY + _software_loop(IM2COL_ITER + unpack_callee(bi), n // per)
    c = c + (Cost(branch_not_taken=1) if n % per else Cost(branch_taken=1))
    # leftover: per input byte lbu, 2 (bi=4) / 4 (bi=2) extracts and sb, as the current library
    e = 8 // bi
    return c + pn.inner_loop(Cost(load=1, extract=e, store=e, stall_load_use=1), (n % per) // e, cg)


# ------------------------------------------------------------------------------------------------------------
# pulp_nn_conv_u<in>_u<out>_i<w> of 7e9c4b0b (also run for pointwise layers)
# ------------------------------------------------------------------------------------------------------------

# Leftover pixel (odd row width), per output channel and 8 input bytes: ``lw`` inB, one call (as in the
# MatMul), 2 ``SumDotp4``, second ``lw`` inB, pB += 8, loop control.
LEFT_PIXEL_ITER = Cost(load=2, alu=1 + 1, sdotp=2) + CALL_FROM_MATMUL


def leftover_pixel(cfg, K: int, cg: pn.Codegen) -> Cost:
    """The scalar per-channel loop of a core's last odd pixel (``if(pIm2Col != pIm2ColBase)`` block)."""
    mode = pn.mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32))
    per = Cost(alu=3, branch_taken=1, branch_not_taken=2)
    per = per + _software_loop(LEFT_PIXEL_ITER + UNPACK_CALLEE, K // 8)
    per = per + pn.inner_loop(Cost(load=2, extract=1, mul=1, stall_load_use=1) * 2, (K % 8) // 2, cg)
    per = per + pn.quant(mode, cfg.out_type.signed) + Cost(macs=K)
    return Cost(alu=10) + per * cfg.Co + pn.pack_via_array(cfg.Co, cfg.out_type.bits)


def as_conv(cfg):
    """The ``ConvConfig`` DORY's mixed-sw template calls ``pulp_nn_conv_*`` with for a conv or pointwise layer."""
    from jaxpulp.kernels import config as kc

    if type(cfg) is kc.ConvConfig:
        return cfg
    f = {x.name: getattr(cfg, x.name) for x in dataclasses.fields(kc.ConvConfig)}
    return kc.ConvConfig(**f)


def conv_core(cfg, core: int, ncores: int, cg: pn.Codegen = pn.PULP_GCC, spills: bool = True) -> Cost:
    """``pulp_nn_conv_u<in>_u<out>_i4`` of 7e9c4b0b on core ``core`` of ``ncores``: the same work split, pixel
    loop and im2col bookkeeping as ``jaxpulp.cost.pulpnn.conv_core`` (the loop structure is unchanged in the
    current library), with the noinline im2col / MatMul counts of this module."""
    bi, bo = cfg.in_type.bits, cfg.out_type.bits
    mode = pn.mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32))
    K = cfg.K
    rng = _split.conv_split(core, cfg.Ho, cfg.Wo, ncores)
    cost = pn.KERNEL_ENTRY
    if rng.empty:
        return cost
    rows, width = rng.rows, rng.width
    pairs = rows * rng.pairs_per_row
    lefts = rows * int(rng.leftover)
    cost = cost + pn.CONV_ROW * rows + pn.CONV_PIXEL * (rows * width)
    calls, zero, positions, krows = pn.conv_im2col_counts(cfg, rng)
    for n, k in calls.items():
        if k:
            cost = cost + im2col_call(n, bi, cg) * k
    if zero:
        cost = cost + pn.zero_mem_call(cfg.Ci, cg) * zero
    cost = cost + pn.CONV_POSITION * positions + pn.CONV_KROW * krows
    cost = cost + matmul_call(K, cfg.Co, bo, mode, cfg.out_type.signed, cfg.bias, cg, spills) * pairs
    if lefts:
        cost = cost + leftover_pixel(cfg, K, cg) * lefts
    return cost


def applies(cfg) -> bool:
    """True where DORY's mixed-sw flavour runs a kernel whose count differs from ``jaxpulp.cost.pulpnn``: a conv
    or pointwise layer with 4-bit weights (``pulp_nn_conv_*_i4`` and ``pulp_nn_matmul_*_i4``). 8-bit weights
    have no unpack; ``pulp_nn_i2_to_i8`` is ``always_inline`` at 7e9c4b0b (2-bit weights keep the current
    count)."""
    return getattr(cfg, "family", None) in ("conv", "pointwise") and cfg.w_type.bits == 4 and \
        cfg.out_type.bits in (8, 4, 2)


def mixed_sw_kernel_cost(cfg, cluster_or_target="gap8", *, outer: str = "gcc", spills: bool = True) -> ClusterCost:
    """Per-core cost of the kernel DORY's mixed-sw flavour runs for ``cfg`` (``applies(cfg)`` must hold).
    outer: the MatMul block code (``jaxpulp.cost.pulpnn.Codegen``; DORY builds with PULP GCC: "gcc");
    spills: count ``MM_SPILL`` (False: the spill-free lower bound)."""
    if not applies(cfg):
        raise JaxpulpError(f"cfg={cfg!r}: expected a conv or pointwise layer with 4-bit weights")
    target = resolve_target(cluster_or_target)
    cg = pn.Codegen(hwloops=True, outer=outer)
    conv = as_conv(cfg)
    n = target.num_cores
    per = tuple(conv_core(conv, c, n, cg, spills) for c in range(n))
    name = f"pulp_nn_conv_{cfg.in_type}_{cfg.out_type}_{cfg.w_type} (pulp-nn-mixed 7e9c4b0b, noinline unpack)"
    return ClusterCost(per, target, kernel=name)
