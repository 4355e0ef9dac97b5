"""Instruction counts of CMSIS-NN-style kernels on one Cortex-M7 (ARMv7E-M + DSP), for the STM32H7 comparison.

The CF'20 paper compares the 27 PULP-NN mixed kernels with an STM32H7 (isa_cost.md §3a). The library on the
M7 side is CMix-NN (EEESlab/CMix-NN: the mixed-precision extension of CMSIS-NN by the same group), whose
convolution follows CMSIS-NN's structure (isa_cost.md §3e):

* im2col into an **int16** buffer, 2 pixels at a time (``arm_<bi>_to_int16_reordered``): 8-bit inputs take
  1 ``LDR`` + 2 ``UXTB16`` (one with a free ``ROR``) + 2 ``STR`` per 4 elements; 4-bit inputs 1 ``LDR`` +
  3 shifts + 8 ``UXTB16`` + 4 ``STR`` per 8; 2-bit inputs 1 + 7 + 16 + 8 per 16;
* a 2x2 MatMul (2 output channels x 2 pixels, ``arm_nn_mat_mult_kernel_reordered_<w>_int16_<out>``): per
  iteration the two columns' q15 pairs are loaded (S ``LDR`` for S elements), each weight row is read with one
  ``LDR`` and widened with ``UXTB16`` (8-bit: 2 per word; 4-bit: 4 x [``AND`` with a rotated operand +
  ``UXTB16``]; 2-bit: 8 x), and 2*S ``SMLAD`` (2 MACs each, one per cycle on the single MAC pipe), loop
  ``SUBS`` + ``BNE``: 20 / 44 / 84 instructions per 16 / 32 / 64 MACs;
* requantisation per output: ``SMULL`` (64-bit product), shift pair, offset add, ``USAT``/``SSAT``, ``STRB``
  (sub-byte outputs: shift + ``ORR`` per value, one ``STRB`` per byte).

Classes map as: ``SMLAD``/``MUL``/``MLA``/``SMULL`` -> ``mul``; ``UXTB16``/``SXTB16``/``SSUB16`` -> ``simd``;
``USAT`` -> ``clipu``, ``SSAT`` -> ``clip``; ``BL``/``BX LR`` -> ``jump``. Non-convolution families use simpler
first-order per-element mixes (CMSIS-NN's pooling, add and fully-connected loops), marked in their docstrings.
The cycle conversion (dual issue, memory wait states) is the ``cortex-m7`` Target's ``cpi``.
"""
from __future__ import annotations

from jaxpulp.cost.types import ZERO, Cost


def c_name(cfg) -> str:
    """Name of the comparable CMix-NN / CMSIS-NN function."""
    fam = cfg.family
    if fam in ("conv", "pointwise"):
        return f"arm_convolve_HWC_{cfg.in_type}_{cfg.out_type}_{cfg.w_type} (CMix-NN)"
    if fam == "depthwise":
        return f"arm_depthwise_separable_conv_HWC_{cfg.in_type}_{cfg.out_type}_{cfg.w_type} (CMix-NN)"
    if fam == "linear":
        return f"arm_fully_connected_{cfg.in_type}_{cfg.w_type} (CMSIS-NN style)"
    return f"arm_{fam} (CMSIS-NN style)"


STEP = {8: 4, 4: 8, 2: 16}


def _widen_weights(bw: int) -> Cost:
    """One weight word of one row widened to q15 pairs (read_and_pad_reordered_<w>)."""
    if bw == 8:
        return Cost(load=1, simd=2)
    if bw == 4:
        return Cost(load=1, alu=4, simd=4)
    return Cost(load=1, alu=8, simd=8)


def mm_iteration(bw: int) -> Cost:
    """One inner iteration of the 2x2 q15 MatMul (S = 4, 8, 16 elements per row)."""
    S = STEP[bw]
    return Cost(load=S, mul=2 * S, alu=1, branch_taken=1) + _widen_weights(bw) * 2


def im2col_q15(n: int, bi: int) -> Cost:
    """``arm_<bi>_to_int16_reordered(src, dst, n)``: call + widening of n elements to int16."""
    c = Cost(alu=4, jump=2, branch_not_taken=2)
    if bi == 8:
        blk, body = n >> 2, Cost(load=1, simd=2, store=2, alu=1, branch_taken=1)
        rem = n & 3
    elif bi == 4:
        blk, body = n >> 3, Cost(load=1, alu=4, simd=8, store=4, branch_taken=1)
        rem = n & 7
    else:
        blk, body = n >> 4, Cost(load=1, alu=8, simd=16, store=8, branch_taken=1)
        rem = n & 15
    return c + body * blk + Cost(load=1, alu=2, store=1, branch_taken=1) * rem


def requant(n: int, bo: int, signed: bool) -> Cost:
    """n outputs: SMULL, 2 shifts, offset add, saturation, packing and byte stores."""
    c = Cost(mul=n, alu=3 * n) + (Cost(clip=n) if signed else Cost(clipu=n))
    if bo == 8:
        return c + Cost(store=n)
    per = 8 // bo
    return c + Cost(alu=2 * n, store=max(1, n // per))


def conv_cost(cfg) -> Cost:
    """CMix-NN ``arm_convolve_HWC_*`` on the whole layer (one core): q15 im2col per pixel pair, 2x2 MatMul,
    scalar leftover pixel if the pixel count is odd."""
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    Ho, Wo, Kh, Kw, Ci, Co = cfg.Ho, cfg.Wo, cfg.Kh, cfg.Kw, cfg.Ci, cfg.Co
    K = Ci * Kh * Kw
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    H, W = cfg.H, cfg.W
    cost = Cost(alu=20, load=10, store=10, jump=2)
    # im2col: per pixel, one call per kernel row in the interior, per kernel position at the borders
    interior_x = max(0, Wo - pl - pr)
    interior_y = max(0, Ho - pt - pb)
    interior = interior_x * interior_y
    border = Ho * Wo - interior
    if Kh * Kw == 1:
        cost = cost + im2col_q15(Ci, bi) * (Ho * Wo)
    else:
        cost = cost + im2col_q15(Ci * Kw, bi) * (interior * Kh)
        # border pixels: about a fraction of the positions are padding (memset of the q15 buffer)
        inb = 0
        for y in range(Ho):
            ry = sum(1 for ky in range(Kh) if 0 <= y * sy - pt + ky < H)
            for x in (range(Wo) if (y < pt or y >= Ho - pb) else
                      [*range(min(pl, Wo)), *range(max(pl, Wo - pr), Wo)]):
                rx = sum(1 for kx in range(Kw) if 0 <= x * sx - pl + kx < W)
                inb += ry * rx
        pad_pos = border * Kh * Kw - inb
        cost = cost + im2col_q15(Ci, bi) * inb
        cost = cost + Cost(alu=4, jump=2, store=(Ci + 1) // 2) * pad_pos
        cost = cost + Cost(alu=6, branch_taken=1, branch_not_taken=2) * (border * Kh * Kw)
    cost = cost + Cost(alu=6, branch_taken=1, branch_not_taken=2) * (Ho * Wo)
    pairs, left = divmod(Ho * Wo, 2)
    # one MatMul call per pair: per 2 output channels
    S = STEP[bw]
    rowpair = Cost(alu=6, load=2, branch_taken=1) + mm_iteration(bw) * (K // S)
    rowpair = rowpair + Cost(load=4, mul=4, alu=2 * int(bw < 8), branch_taken=1) * (K % S)
    rowpair = rowpair + requant(4, bo, cfg.out_type.signed)
    mm = Cost(alu=10, load=4, store=4, jump=2) + rowpair * (Co // 2)
    if Co % 2:
        mm = mm + rowpair  # leftover channel handled by a half-used row pair
    cost = cost + mm * pairs
    if left:
        # scalar leftover pixel: per MAC a q15 load, a weight load (+ unpack), MLA
        per_mac = Cost(load=2, mul=1, alu=1 + int(bw < 8))
        cost = cost + per_mac * (K * Co) + requant(Co, bo, cfg.out_type.signed)
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
