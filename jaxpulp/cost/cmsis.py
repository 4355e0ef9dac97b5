"""Instruction counts of CMSIS-NN-style kernels on one Cortex-M7 (ARMv7E-M + DSP), for the STM32H7 comparison.

The CF'20 paper compares the 27 PULP-NN mixed kernels with an STM32H7 (isa_cost.md §3a). The library on the
M7 side is CMix-NN (EEESlab/CMix-NN: the mixed-precision extension of CMSIS-NN by the same group), whose
convolution follows CMSIS-NN's structure (isa_cost.md §3e):

* im2col into an **int16** buffer, 2 pixels at a time (``arm_<bi>_to_int16_reordered``): 8-bit inputs take
  1 ``LDR`` + 2 ``UXTB16`` (one with a free ``ROR #8``) + 2 ``STR`` per 4 elements; 4-bit inputs 1 ``LDR`` +
  3 shifts + 4 ``ROR #4`` + 8 ``UXTB16`` + 4 ``STR`` per 8; 2-bit inputs 1 + 7 shifts + 8 ``ROR #6`` + 16 + 8
  per 16 (plus the loop ``SUBS``/``BNE``);
* a 2x2 MatMul (2 output channels x 2 pixels, ``arm_nn_mat_mult_kernel_reordered_<w>_int16_<out>``): per
  iteration the two columns' q15 pairs are loaded (S ``LDR`` for S elements), each weight row is read with one
  ``LDR`` and widened with ``UXTB16`` (8-bit: 2 per word; 4-bit: 4 x [``AND`` with a rotated operand +
  ``UXTB16``]; 2-bit: 8 x), and 2*S ``SMLAD`` (2 MACs each, one per cycle on the single MAC pipe), loop
  ``SUBS`` + ``BNE``: 20 / 44 / 84 instructions per 16 / 32 / 64 MACs; before the row loop CMix-NN folds the
  weight zero-point into a pre-pass over the two columns (K/2 x [2 ``LDR`` + 2 ``SMLAD``]);
* requantisation per output: ``LSL``, ``SMULL`` (``__HI_SMULL``), ``ASR``, offset ``ADD``, ``USAT``, ``STRB``
  (sub-byte outputs: ``AND`` + ``ORR`` per packed pair, one ``STRB`` per byte). The all-8-bit permutation runs
  CMSIS-NN's ``arm_convolve_HWC_q7_fast`` instead (same 2x2 structure, no pre-pass, ``ASR`` + ``SSAT``).

Classes map as: ``SMLAD``/``MUL``/``MLA``/``SMULL`` -> ``mul``; ``UXTB16``/``SXTB16``/``SSUB16`` -> ``simd``;
``USAT`` -> ``clipu``, ``SSAT`` -> ``clip``; ``BL``/``BX LR`` -> ``jump``. Non-convolution families use simpler
first-order per-element mixes (CMSIS-NN's pooling, add and fully-connected loops), marked in their docstrings.
The cycle conversion (issue rate checked with llvm-mca, memory wait states) is the ``cortex-m7`` Target's
``cpi`` (targets.py); the GAP-8 comparison is ``jaxpulp.cost.compare_m7`` (docs/m7-comparison.md).
"""
from __future__ import annotations

from jaxpulp.cost.types import ZERO, Cost
from jaxpulp.errors import JaxpulpError


def c_name(cfg) -> str:
    """Name of the comparable CMix-NN / CMSIS-NN function."""
    fam = cfg.family
    if fam in ("conv", "pointwise"):
        if library(cfg) == "cmsis-nn":
            return "arm_convolve_HWC_q7_fast (CMSIS-NN)"
        return f"arm_convolve_HWC_{cfg.in_type}_{cfg.out_type}_{cfg.w_type} (CMix-NN)"
    if fam == "depthwise":
        return f"arm_depthwise_separable_conv_HWC_{cfg.in_type}_{cfg.out_type}_{cfg.w_type} (CMix-NN)"
    if fam == "linear":
        return f"arm_fully_connected_{cfg.in_type}_{cfg.w_type} (CMSIS-NN style)"
    return f"arm_{fam} (CMSIS-NN style)"


STEP = {8: 4, 4: 8, 2: 16}  # im2col columns per inner iteration (one 32-bit weight word per row)

# Sources for the counts below (read, not copied): EEESlab/CMix-NN @a97415f (v1.0.0, 2020-02-10)
#   src/ConvolutionFunctions/arm_convolve_HWC_<in>_<out>_<w>.c            the layer loop (im2col + MatMul calls)
#   src/ConvolutionFunctions/arm_nn_mat_mult_kernel_reordered_<w>_int16_<out>.c   the 2x2 MatMul
#   src/NNSupportFunctions/arm_<in>_to_int16_reordered.c                    the im2col widening
#   inc/arm_cmixnn_support.h  read_and_pad_reordered_<w>, __HI_SMULL
# and, for the all-8-bit permutation, CMSIS-NN's legacy arm_convolve_HWC_q7_fast (same 2x2 q15 structure,
# arm_nn_mat_mult_kernel_q7_q15_reordered, read_and_pad_reordered = 2 SXTB16, shift-and-saturate requant).
# Thumb-2 renderings [DERIVED]: ``x & 0x000F000F`` of a rotated word is one ``AND Rd, Rmask, Rn, ROR #k``
# (shifted register operand); ``__UXTB16(__ROR(x, 8))`` is one ``UXTB16 Rd, Rn, ROR #8``; ``__ROR(x, 4)``
# (not a multiple of 8) is a separate ``ROR``; ``__USAT``/``__UXTB16`` are opaque inline asm in CMSIS-Core for
# GCC, so the compiler keeps a ``UXTB16`` after an ``AND`` that already cleared the odd bytes.


def library(cfg) -> str:
    """Which M7 library runs ``cfg``: CMSIS-NN for the all-8-bit permutation, CMix-NN otherwise."""
    bits = (cfg.in_type.bits, cfg.out_type.bits, cfg.w_type.bits)
    return "cmsis-nn" if bits == (8, 8, 8) else "cmix-nn"


def _widen_weights(bw: int) -> Cost:
    """One weight word of one row widened to q15 pairs (``read_and_pad_reordered_<w>``).

    8 bit: LDR + 2 UXTB16/SXTB16 (one with ROR #8). 4 bit: LDR + 4 x (AND with a rotated operand, UXTB16).
    2 bit: LDR + 8 x (AND, UXTB16). The first AND of a word has no rotation (same instruction count)."""
    if bw == 8:
        return Cost(load=1, simd=2)
    if bw == 4:
        return Cost(load=1, alu=4, simd=4)
    return Cost(load=1, alu=8, simd=8)


def mm_iteration(bw: int) -> Cost:
    """One inner iteration of the 2x2 q15 MatMul: S = 4, 8, 16 im2col columns; S ``LDR`` of q15 pairs (S/2
    per column, 2 columns), 2 weight words widened, 2*S ``SMLAD`` (2 rows x 2 columns x S/2), ``SUBS`` + ``BNE``.
    Totals: 20 / 44 / 84 instructions for 16 / 32 / 64 MACs."""
    S = STEP[bw]
    return Cost(load=S, mul=2 * S, alu=1, branch_taken=1) + _widen_weights(bw) * 2


IM2COL_BLOCK = {
    # per block of 8 / 4 / 2-bit elements: (elements, Cost)
    # 8 bit, 4 elements: LDR, UXTB16 x2 (ROR #8 folded), STR x2, SUBS, BNE = 7
    8: (4, Cost(load=1, simd=2, store=2, alu=1, branch_taken=1)),
    # 4 bit, 8 elements: LDR; LSL, LSR, LSR (x<<4, x>>4, x>>8); 4 inner UXTB16; 4 ROR #4; 4 outer UXTB16;
    # 4 STR; SUBS, BNE = 22
    4: (8, Cost(load=1, alu=3 + 4 + 1, simd=8, store=4, branch_taken=1)),
    # 2 bit, 16 elements: LDR; 7 shifts (x<<6,<<4,<<2, x>>2,>>4,>>6,>>8); 8 inner UXTB16; 8 ROR #6;
    # 8 outer UXTB16; 8 STR; SUBS, BNE = 42
    2: (16, Cost(load=1, alu=7 + 8 + 1, simd=16, store=8, branch_taken=1)),
}
# Leftover elements (one per iteration). 8 bit: LDRB, SUB offset, STRH, SUBS, BNE. 4/2 bit: LSL, UXTB16,
# ROR, UXTB16, STRH, ROR of the word, SUBS, BNE.
IM2COL_LEFTOVER = {8: Cost(load=1, alu=2, store=1, branch_taken=1),
                   4: Cost(alu=4, simd=2, store=1, branch_taken=1),
                   2: Cost(alu=4, simd=2, store=1, branch_taken=1)}


def im2col_leftover(n: int, bi: int) -> int:
    """Leftover-loop trip count of ``arm_<bi>_to_int16_reordered(.., n, ..)``. The 2-bit version computes
    ``blockSize % 0x16u`` (= n % 22, not n % 16: a library defect) and so runs (n % 22) single-element
    iterations after its 16-element blocks, writing past the n elements it was asked for."""
    if bi == 8:
        return n & 3
    if bi == 4:
        return n & 7
    return n % 22


def im2col_q15(n: int, bi: int) -> Cost:
    """``arm_<bi>_to_int16_reordered(src, dst, n, offset=0)``: call, offset vector, blocks and leftovers."""
    c = Cost(alu=4, jump=2, branch_not_taken=2, store=2, load=1)  # call, {offset, offset} built on the stack
    if bi < 8:
        c = c + Cost(load=1)  # the unconditional ``in_32 = *(int32_t *)pIn`` before the leftover loop
    per, body = IM2COL_BLOCK[bi]
    return c + body * (n // per) + IM2COL_LEFTOVER[bi] * im2col_leftover(n, bi)


def requant_rowpair(bo: int, lib: str) -> Cost:
    """The 4 outputs of one row pair (2 channels x 2 pixels).

    CMix-NN: per output ``LSL`` (n_zero1), ``SMULL`` (``__HI_SMULL``), ``ASR`` (n_zero2), ``ADD`` z_out,
    ``USAT``; 8-bit outputs 1 ``STRB`` each; 4-bit: 2 bytes of ``USAT | (USAT << 4) & 0xF0`` (AND + ORR each);
    2-bit: 2 bytes per row pair, each 2 x (shift, AND) + ORR, every other row pair a read-modify-write of the
    byte (LDRB + ORR), and the ``i & 2`` test. CMSIS-NN q7: per output ``ASR`` + ``SSAT`` + ``STRB``."""
    if lib == "cmsis-nn":
        return Cost(alu=4, clip=4, store=4)
    c = Cost(alu=12, mul=4, clipu=4)
    if bo == 8:
        return c + Cost(store=4)
    if bo == 4:
        return c + Cost(alu=4, store=2)
    return c + Cost(alu=8, load=1, store=2, branch_not_taken=1)


def matmul_call(K: int, Co: int, bw: int, bo: int, lib: str) -> Cost:
    """One call of the 2x2 MatMul on a pixel pair: prologue/epilogue, CMix-NN's weight-offset pre-pass
    (``z_a_offset``: K/2 iterations of 2 ``LDR`` + 2 ``SMLAD`` + loop), Co/2 row pairs."""
    S = STEP[bw]
    c = Cost(alu=10, load=9, store=9, jump=2)  # push/pop of the callee-saved registers, pointer set-up
    if lib == "cmix-nn":
        c = c + Cost(alu=7, store=2, load=1, branch_taken=1)  # n_zero split, {z_a, z_a} vector
        c = c + Cost(load=2, mul=2, alu=1, branch_taken=1) * (K // 2)
        c = c + Cost(load=2, mul=2, alu=1) * (K & 1)
    # row pair: pB/pB2/pA2 set-up (3), 2 bias loads, 4 accumulator inits, colCnt, pA += K step, loop (2)
    rowpair = Cost(alu=11, load=2, branch_taken=1) + mm_iteration(bw) * (K // S) + requant_rowpair(bo, lib)
    if lib == "cmsis-nn":
        # q7_q15 kernel: scalar leftover columns (K % 4): 2 LDRSB/LDRSH + 4 MLA per column
        rowpair = rowpair + Cost(load=4, mul=4, alu=1, branch_taken=1) * (K % S)
    # CMix-NN compiles its leftover-column loop out (#if 0): K % S columns are silently dropped.
    return c + rowpair * ((Co + 1) // 2)


def requant(n: int, bo: int, signed: bool) -> Cost:
    """n outputs of the first-order families (depthwise, linear): SMULL, 2 shifts, offset add, saturation,
    packing and byte stores."""
    c = Cost(mul=n, alu=3 * n) + (Cost(clip=n) if signed else Cost(clipu=n))
    if bo == 8:
        return c + Cost(store=n)
    per = 8 // bo
    return c + Cost(alu=2 * n, store=max(1, n // per))


def conv_cost(cfg, lib: str | None = None) -> Cost:
    """CMix-NN ``arm_convolve_HWC_<in>_<out>_<w>`` (CMSIS-NN ``arm_convolve_HWC_q7_fast`` for 8/8/8) on the
    whole layer (one core): q15 im2col per pixel (one call per kernel row in the interior, per kernel position
    at the borders, ``memset`` for padding positions), one 2x2 MatMul call per pixel pair, scalar leftover
    pixel if the pixel count is odd. ``lib`` overrides the library choice ("cmix-nn" or "cmsis-nn")."""
    lib = lib or library(cfg)
    if lib not in ("cmix-nn", "cmsis-nn"):
        raise JaxpulpError(f"lib={lib!r}: expected 'cmix-nn' or 'cmsis-nn'")
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    Ho, Wo, Kh, Kw, Ci, Co = cfg.Ho, cfg.Wo, cfg.Kh, cfg.Kw, cfg.Ci, cfg.Co
    K = Ci * Kh * Kw
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    H, W = cfg.H, cfg.W
    cost = Cost(alu=20, load=10, store=10, jump=2)
    interior_x = max(0, Wo - pl - pr)
    interior_y = max(0, Ho - pt - pb)
    interior = interior_x * interior_y
    border = Ho * Wo - interior
    if Kh * Kw == 1:
        cost = cost + im2col_q15(Ci, bi) * (Ho * Wo)
    else:
        cost = cost + im2col_q15(Ci * Kw, bi) * (interior * Kh)
        inb = 0
        for y in range(Ho):
            for x in (range(Wo) if (y < pt or y >= Ho - pb) else
                      [*range(min(pl, Wo)), *range(max(pl, Wo - pr), Wo)]):
                ry = sum(1 for ky in range(Kh) if 0 <= y * sy - pt + ky < H)
                rx = sum(1 for kx in range(Kw) if 0 <= x * sx - pl + kx < W)
                inb += ry * rx
        pad_pos = border * Kh * Kw - inb
        cost = cost + im2col_q15(Ci, bi) * inb
        cost = cost + Cost(alu=4, jump=2, store=(Ci + 1) // 2) * pad_pos  # memset of Ci q15 values
        cost = cost + Cost(alu=6, branch_taken=1, branch_not_taken=2) * (border * Kh * Kw)
    cost = cost + Cost(alu=6, branch_taken=1, branch_not_taken=2) * (Ho * Wo)
    pairs, left = divmod(Ho * Wo, 2)
    cost = cost + matmul_call(K, Co, bw, bo, lib) * pairs
    if left:
        # leftover pixel (in the convolution function): per output channel K / S iterations of one widened
        # weight word + S/2 LDR + S/2 SMLAD, then the requantisation of one output
        S = STEP[bw]
        # (CMix-NN subtracts the weight offset here with one SSUB16 per widened pair)
        ssub = S // 2 if lib == "cmix-nn" else 0
        it = _widen_weights(bw) + Cost(load=S // 2, mul=S // 2, simd=ssub, alu=1, branch_taken=1)
        per_row = Cost(alu=4, load=1, branch_taken=1) + it * (K // S)
        cost = cost + per_row * Co + Cost(alu=4, mul=Co, clipu=Co, store=max(1, Co * bo // 8))
    return cost + Cost(macs=Ho * Wo * Co * K)


def depthwise_cost(cfg) -> Cost:
    """CMix-NN depthwise (first order): per MAC a widened activation, a widened weight and an ``SMLAD`` over
    channel pairs; requantisation per output."""
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    n_out = cfg.Ho * cfg.Wo * cfg.Co
    taps = cfg.Kh * cfg.Kw
    per_pair_tap = Cost(load=2, simd=2 + int(bi < 8) + int(bw < 8), alu=2, mul=1)
    c = per_pair_tap * ((n_out // 2) * taps) + requant(n_out, bo, cfg.out_type.signed)
    c = c + Cost(alu=8, branch_taken=2) * (cfg.Ho * cfg.Wo)
    return c + Cost(macs=n_out * taps)


def linear_cost(cfg) -> Cost:
    """CMSIS-NN-style fully connected: input widened to q15 once, then per row and 4 weights: a weight word
    widened (+ unpack for sub-byte), 2 activation words, 2 ``SMLAD``."""
    bi, bw = cfg.in_type.bits, cfg.w_type.bits
    N, M = cfg.N, cfg.M
    c = im2col_q15(N, bi)
    per4 = Cost(load=3, mul=2, simd=2, alu=1, branch_taken=1) + Cost(alu=2 * int(bw < 8), simd=2 * int(bw < 8))
    row = Cost(alu=4, load=1, branch_taken=1) + per4 * (N // 4) + Cost(load=2, mul=1, alu=1) * (N % 4)
    if cfg.out_type.bits != 32:
        row = row + requant(1, cfg.out_type.bits, cfg.out_type.signed)
    else:
        row = row + Cost(store=1)
    return c + row * M + Cost(macs=N * M)


def pool_cost(cfg) -> Cost:
    """CMSIS-NN-style pooling (first order): per output element and window tap a byte load and a
    compare/accumulate; average pooling adds a division-free scaling per output."""
    taps = cfg.Kh * cfg.Kw
    n_out = cfg.Ho * cfg.Wo * cfg.C
    unpack = int(cfg.in_type.bits < 8)
    c = Cost(load=1, alu=1 + unpack, branch_taken=0) * (n_out * taps) + Cost(store=1, alu=2) * n_out
    if cfg.family == "avgpool":
        c = c + Cost(mul=1, alu=2, clipu=1) * n_out
    return c + Cost(alu=6, branch_taken=1) * (cfg.Ho * cfg.Wo)


def add_cost(cfg) -> Cost:
    """CMSIS-NN-style element-wise add (first order): per element 2 loads, 2 multiply-adds, shifts,
    saturation, store."""
    n = cfg.H * cfg.W * cfg.C
    return Cost(load=2, mul=2, alu=5, clipu=1, store=1) * n + Cost(alu=2, branch_taken=1) * (n // 4)


def kernel_cost(cfg) -> Cost:
    """The M7 cost of the kernel described by ``cfg`` (one core)."""
    fam = cfg.family
    if fam in ("conv", "pointwise"):
        return conv_cost(cfg)
    if fam == "depthwise":
        return depthwise_cost(cfg)
    if fam == "linear":
        return linear_cost(cfg)
    if fam in ("maxpool", "avgpool"):
        return pool_cost(cfg)
    if fam in ("add", "add_legacy"):
        return add_cost(cfg)
    return ZERO
