"""Instruction counts of the PULP-NN mixed XpulpV2 kernels, per core, from static information only.

Each family function walks the control structure of the C kernel (pulp-nn-mixed ``generators/templates``,
semantics.md §5-§11) for one core id, with the work split of ``jaxpulp.cluster.split``, and adds up the
instruction mix of every code fragment. Loop trip counts are exact; what a fragment costs is the code PULP
GCC emits for RV32IMCXpulpV2 (hardware loops, post-increment loads/stores, one instruction per built-in
except ``pack4`` = 2), following semantics.md §12 and isa_cost.md §4.

Built-in counts (``sdotp``, ``extract``, ``insert``, ``pack``, ``clip``/``clipu``, ``simd``, ``minmax``,
``bitcount``, ``csr``, ``barrier``) are exact and are checked against the golden vectors' per-core counters.
The remaining classes (loads, stores, ALU, branches, calls) are a model of the compiled code:

* the 4x2 MatMul inner loop (14 / 72 / 140 instructions for 8 / 4 / 2-bit weights) and its per-block
  overhead are calibrated on ``shared/cycles/pulpnn_cv32e40p_runs.csv`` (real CV32E40P RTL runs of the
  library's matmul with a hardware-loop, post-increment inner loop): see ``MM_BLOCK`` and ``QUANT``;
* everything else is counted from the C source: every ``noinline`` helper is a call (``jal`` + ``ret``),
  argument moves, address arithmetic and loop control are first-order estimates documented next to each
  constant.

``hwloops=False`` models a toolchain without hardware loops (the ``clang_O3_library_C`` rows of the CSV):
every loop pays a counter update and a taken branch per iteration, and sub-byte inner loops two pointer
updates that clang did not fold into post-increments. It does not capture register spills (the 2-bit-weight
clang inner loop spills: 200 instructions + 20 load-use stalls per iteration instead of 142).
"""
from __future__ import annotations

import dataclasses

from jaxpulp.cluster import split as _split
from jaxpulp.cost.types import ZERO, Cost
from jaxpulp.errors import JaxpulpError

# ------------------------------------------------------------------------------------------------------------
# Code-generation options
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Codegen:
    """How the C code is compiled.

    hwloops: innermost loops become zero-overhead hardware loops with post-increment addressing (PULP GCC for
    XpulpV2); False models a compiler without them (clang 19, the CSV's ``clang_O3_library_C`` rows).
    outer: the MatMul code around the inner loop. "measured" (default): the per-block overhead measured on the
    CV32E40P RTL (``MM_BLOCK``; that code is clang's, with the PULP-GCC-style inner loop); "gcc": a
    first-principles count of what GCC needs there (``MM_BLOCK_GCC``, 40 instructions fewer per block), a
    sensitivity option (the DORY board data of small-K pointwise layers is closer to it).
    """

    hwloops: bool = True
    outer: str = "measured"

    def __post_init__(self):
        if self.outer not in ("measured", "gcc"):
            raise JaxpulpError(f"outer={self.outer!r}: expected 'measured' or 'gcc'")


PULP_GCC = Codegen(hwloops=True)
NO_HWLOOPS = Codegen(hwloops=False)


def inner_loop(body: Cost, n: int, cg: Codegen, extra_sw: Cost = ZERO) -> Cost:
    """``n`` iterations of an innermost loop. Hardware loop: one ``lp.setup`` (isa_cost §1.7, zero overhead per
    iteration). Software loop: per iteration a counter update + a taken branch, last one not taken
    (isa_cost §1.7: ~4 cycles per iteration on RI5CY), plus ``extra_sw`` (pointer updates not folded)."""
    if n <= 0:
        return ZERO
    if cg.hwloops:
        return body * n + Cost(hwloop=1)
    return (body + extra_sw) * n + Cost(alu=n, branch_taken=n - 1, branch_not_taken=1)


def outer_loop(body: Cost, n: int) -> Cost:
    """``n`` iterations of a non-innermost loop (software loop in both tool chains): counter/compare ``alu``
    and a taken back-branch per iteration, a not-taken exit test."""
    if n <= 0:
        return Cost(alu=1, branch_not_taken=1)
    return body * n + Cost(alu=n, branch_taken=n, branch_not_taken=1)


def mode_of(relu: int, bn: int, bn_bits: int = 32) -> str:
    """Requantisation mode chosen by the flags (semantics.md §4.1): 'bn' ('bn64' in the 64bit/ tree), 'mult' or
    'shift'."""
    if bn and relu:
        return "bn64" if bn_bits == 64 else "bn"
    if relu == 1:
        return "mult"
    return "shift"


# ------------------------------------------------------------------------------------------------------------
# Shared fragments
# ------------------------------------------------------------------------------------------------------------

# Requantisation of one output value (semantics.md §4.1, §12.3; isa_cost.md §4.4).
#  shift: inline ``sra`` + ``p.clipur/p.clipr`` (the bound is hoisted in a register).
#  mult : noinline ``pulp_nn_quant_*``: 3 argument moves, jal, mul, sra, clip, result extension, ret.
#  bn   : noinline ``pulp_nn_bn_quant_*``: kappa and lambda loads (reloaded for every call: the callee may
#         write memory), 2 argument moves, jal, mul, add, sra, clip, result extension, ret, kappa/lambda pointer
#         bumps amortised. ``stall_other``: the ``ret`` (jalr) right after the value it returns is computed
#         (+1 cycle, isa_cost §2.1). Calibration: BN minus SHIFT-CLIP in the CSV's 4x2 blocks is 74-80
#         instructions and 95-109 cycles per 8 outputs (13.9-15.6 cycles per BN output); this gives 15.
QUANT_SHIFT = Cost(alu=1)
QUANT_MULT = Cost(alu=5, mul=1, jump=2, stall_other=1)
QUANT_BN = Cost(load=2, alu=6, mul=1, jump=2, stall_other=1)
#  bn64 : the ``64bit/`` tree (semantics.md §4.3): int64 kappa and lambda (4 loads), the 64-bit product (mul +
#         mulh), the 64-bit add with carry (add, sltu, add) and a variable 64-bit arithmetic shift (a branch on
#         shift >= 32 and 5 shift/or instructions), then the same clip and return. First-order count from the
#         operations the C code needs; not calibrated (the RTL measurements cover the 32-bit tree only).
QUANT_BN64 = Cost(load=4, alu=14, mul=2, branch_not_taken=1, jump=2, stall_other=1)


def quant(mode: str, signed_clip: bool) -> Cost:
    """One output value requantised in ``mode`` with the signed (``p.clipr``) or unsigned clip."""
    base = {"shift": QUANT_SHIFT, "mult": QUANT_MULT, "bn": QUANT_BN, "bn64": QUANT_BN64}[mode]
    return base + (Cost(clip=1) if signed_clip else Cost(clipu=1))


def pack_outputs(n: int, bo: int) -> Cost:
    """Storing ``n`` requantised values of ``bo`` bits (semantics.md §4.5, §12.3): one ``sb`` per value (8 bit),
    ``p.insert`` + ``sb`` per 2 values (4 bit), 3 ``p.insert`` + ``sb`` per 4 values (2 bit)."""
    if bo == 8:
        return Cost(store=n)
    if bo == 4:
        return Cost(insert=n // 2, store=n // 2)
    return Cost(insert=3 * (n // 4), store=n // 4)


def pack_via_array(n: int, bo: int) -> Cost:
    """Packing through a small ``out[]`` stack array (leftover paths): each value stored to the array, and per
    output byte the values reloaded, inserted and stored."""
    if bo == 8:
        return Cost(store=n)
    e = 8 // bo
    groups = n // e
    return Cost(store=n + groups, load=groups * e, insert=groups * (e - 1))


# Function-call skeleton of a ``noinline`` helper with a short body: argument moves, jal, ret.
CALL = Cost(alu=3, jump=2)

# Per-kernel entry: ``pi_core_id()`` (csrr mhartid + mask), ``log2(NUM_CORES)`` (p.fl1), partition arithmetic
# (about 25 ALU ops and 4 branches in the C source), callee-saved register saves/restores (12 sw + 12 lw),
# the final ``pi_cl_team_barrier()`` call.
KERNEL_ENTRY = Cost(csr=1, alu=26, bitcount=1, store=12, load=12, branch_taken=2, branch_not_taken=2, jump=4,
                    barrier=1)


def unpack_word(bits: int) -> Cost:
    """Inline ``pulp_nn_{i,u}{4,2}_to_{i,u}8`` of one 32-bit word: 1 ``lw``, 8 or 16 ``p.extract``, 2 or 4
    ``pack4`` (each ``pv.packlo.b`` + ``pv.packhi.b``), semantics.md §3.1, §12.1."""
    if bits == 4:
        return Cost(load=1, extract=8, pack=4)
    if bits == 2:
        return Cost(load=1, extract=16, pack=8)
    raise JaxpulpError(f"bits={bits}: only 4 and 2-bit words are unpacked")


# ------------------------------------------------------------------------------------------------------------
# The 4x2 MatMul (semantics.md §6, §12.1)
# ------------------------------------------------------------------------------------------------------------

STEP = {8: 4, 4: 8, 2: 16}  # K elements per inner-loop iteration

# One inner-loop iteration (4 output channels x 2 pixels). 8-bit: 2 act + 4 weight ``p.lw`` + 8 sdotp = 14;
# 4-bit: 4 act + 4 weight loads, 4 unpacks (32 extract, 8 pack4 = 16 pack instructions), 16 sdotp = 72;
# 2-bit: 8 + 4 loads, 64 extract, 32 pack, 32 sdotp = 140. Measured on the CV32E40P RTL: exactly 14, 72, 140
# instructions and cycles per iteration, no stall (cycles/README.md, innerloop.csv).
MM_INNER = {
    8: Cost(load=6, sdotp=8),
    4: Cost(load=8, extract=32, pack=16, sdotp=16),
    2: Cost(load=12, extract=64, pack=32, sdotp=32),
}
# Without hardware loops clang did not fold two pointer updates into post-increments for sub-byte weights
# (76 instructions per 4-bit iteration measured, 14 + 2 for 8-bit): see inner_loop(extra_sw=...).
MM_INNER_SW_EXTRA = {8: ZERO, 4: Cost(alu=2), 2: Cost(alu=2)}

# Per 4x2 block, everything but the inner loop and the requantisation epilogue: pointer set-up (pB2, pA2..pA4),
# 8 accumulator initialisations, ``lp.setup`` of the inner and tail loops, the tail-count test, pA += 3*Kw,
# the block loop control, and the register traffic around the inner loop. Calibrated on the SHIFT-CLIP rows
# of pulpnn_cv32e40p_runs.csv (per-block intercept 98.0 / 102.1 / 103.1 cycles at K = 288 including 24
# instructions of epilogue): loads, stores, branches and stalls are the measured per-block counts.
MM_BLOCK = {
    8: Cost(load=15, store=5, alu=29, hwloop=2, branch_taken=4, branch_not_taken=2, jump=1, stall_load_use=6),
    4: Cost(load=17, store=6, alu=30, hwloop=2, branch_taken=4, branch_not_taken=2, jump=1, stall_load_use=7),
    2: Cost(load=19, store=7, alu=31, hwloop=2, branch_taken=3, branch_not_taken=3, jump=1, stall_load_use=6),
}
# First-principles GCC count of the same code: pB/pB2/pA2..pA4 (5 ALU), 8 accumulator initialisations, tail
# count and test (1 ALU + 1 branch), pA += 3*Kw, block loop control (1 ALU + taken branch), one load-use
# stall; the ``lp.setup`` of the inner loop is counted by inner_loop().
MM_BLOCK_GCC = Cost(alu=16, branch_taken=1, branch_not_taken=1, stall_load_use=1)
# Function entry/exit of ``pulp_nn_matmul_*`` (register saves/restores, the ``ret``) and the caller's
# argument set-up (8 register arguments, 5 on the stack), ``jal``.
MM_CALL = Cost(alu=10, load=4, store=9, jump=2, branch_not_taken=2, stall_load_use=1)
# Bias present: 4 ``lw`` per block (the copies for the second pixel are the same ``mv`` as the zero init).
MM_BIAS = Cost(load=4)


def _e(bits: int) -> int:
    return 8 // bits


def mm_tail_iter(bw: int, rows: int) -> Cost:
    """One iteration of the scalar K-tail (one weight byte = 8/bw elements) for ``rows`` weight rows and 2
    pixels: a weight byte per row, 2 activation bytes per element, sign extraction of sub-byte weights,
    ``p.mac`` per product, one load-use stall."""
    e = _e(bw)
    return Cost(load=rows + 2 * e, extract=(rows * e if bw < 8 else 0), mul=2 * rows * e, stall_load_use=1)


def matmul_call(K: int, Co: int, bw: int, bo: int, mode: str, out_signed: bool, bias: bool,
                cg: Codegen) -> Cost:
    """One ``pulp_nn_matmul_<s>8_<out>_i<bw>`` call: 2 pixels x all computed output channels (incl. the call)."""
    S = STEP[bw]
    iters = K // S
    tail_iters = (K % S) // _e(bw)
    nb = Co // 4
    # main 4x2 blocks
    overhead = MM_BLOCK[bw] if cg.outer == "measured" else MM_BLOCK_GCC
    if not cg.hwloops:  # the measured block's lp.setup instructions become loop-counter set-ups
        overhead = dataclasses.replace(overhead, hwloop=0, alu=overhead.alu + overhead.hwloop)
    block = overhead + inner_loop(MM_INNER[bw], iters, cg, MM_INNER_SW_EXTRA[bw])
    block = block + inner_loop(mm_tail_iter(bw, 4), tail_iters, cg)
    if bias:
        block = block + MM_BIAS
    # 8 outputs: SHIFT-CLIP of the main block always uses the unsigned clip (semantics.md §4.4)
    qsigned = out_signed and mode != "shift"
    block = block + quant(mode, qsigned) * 8 + pack_outputs(4, bo) * 2
    block = block + Cost(macs=8 * K)
    cost = MM_CALL + block * nb
    # channel leftovers (semantics.md §6.2): bo = 8 and bo = 4 only; bo = 2 has no leftover code
    left = Co % 4 if bo in (8, 4) else 0
    if left:
        per = Cost(alu=4, branch_taken=1, branch_not_taken=2) + (Cost(load=1) if bias else ZERO)
        per = per + inner_loop(_left_inner(bw), iters, cg, MM_INNER_SW_EXTRA[bw])
        per = per + inner_loop(mm_tail_iter(bw, 1), tail_iters, cg)
        per = per + quant(mode, out_signed) * 2 + Cost(macs=2 * K)
        if bo == 8:
            per = per + Cost(store=2)
        else:  # out[]/out2[] arrays, packed when the channel index is odd
            per = per + Cost(store=2)
        cost = cost + per * left
        if bo == 4:
            cost = cost + Cost(load=4, insert=2, store=2) * (left // 2)
    return cost


def _left_inner(bw: int) -> Cost:
    """Inner iteration of a matmul leftover channel (1 weight row x 2 pixels)."""
    if bw == 8:
        return Cost(load=3, sdotp=2)
    if bw == 4:
        return Cost(load=4, sdotp=4) + unpack_word(4)
    return Cost(load=8, sdotp=8) + unpack_word(2)


# ------------------------------------------------------------------------------------------------------------
# im2col helpers (semantics.md §5.4, §12.2)
# ------------------------------------------------------------------------------------------------------------

# Call skeleton of the noinline ``pulp_nn_im2col_*`` / ``pulp_zero_mem``: 3 argument moves, jal, ret, block
# and tail counts (2 ALU), two loop-entry tests.
IM2COL_CALL = Cost(alu=5, jump=2, branch_not_taken=2)


def im2col_call(n: int, bi: int, cg: Codegen) -> Cost:
    """``pulp_nn_im2col_<s><bi>_to_<s>8(src, dst, n)``: n elements unpacked to bytes."""
    c = IM2COL_CALL
    if bi == 8:
        # word copy: lw + sw, the store waits for the load (1 stall); tail: lbu + sb
        c = c + inner_loop(Cost(load=1, store=1, stall_load_use=1), n >> 2, cg)
        c = c + inner_loop(Cost(load=1, store=1, stall_load_use=1), n & 3, cg)
    elif bi == 4:
        # 1 lw -> 8 extractu, 2 pack4, 2 sw (semantics.md §12.2: 1.875 instr/element); tail per byte
        c = c + inner_loop(unpack_word(4) + Cost(store=2, stall_load_use=1), n >> 3, cg)
        c = c + inner_loop(Cost(load=1, extract=2, store=2, stall_load_use=1), (n & 7) // 2, cg)
    else:
        c = c + inner_loop(unpack_word(2) + Cost(store=4, stall_load_use=1), n >> 4, cg)
        c = c + inner_loop(Cost(load=1, extract=4, store=4, stall_load_use=1), (n & 15) // 4, cg)
    return c


def zero_mem_call(n: int, cg: Codegen) -> Cost:
    """``pulp_zero_mem(dst, n)``: word stores, then byte stores."""
    return IM2COL_CALL + inner_loop(Cost(store=1), n >> 2, cg) + inner_loop(Cost(store=1), n & 3, cg)


# ------------------------------------------------------------------------------------------------------------
# Convolution and pointwise (semantics.md §5, §7)
# ------------------------------------------------------------------------------------------------------------

# Per output row of a core: loop control, pOutBuffer skip, the leftover test.
CONV_ROW = Cost(alu=6, branch_taken=1, branch_not_taken=2)
# Per output pixel: region tests (2-4 compares), x-loop control, the "im2col buffer full" test.
CONV_PIXEL = Cost(alu=5, branch_taken=2, branch_not_taken=2)
# Per kernel position of a border pixel: loop control, bounds tests, address (i_ker_y*W + i_ker_x)*Ci.
CONV_POSITION = Cost(alu=7, mul=1, branch_taken=1, branch_not_taken=2)
# Per kernel row of an interior pixel: loop control, address arithmetic.
CONV_KROW = Cost(alu=5, mul=1, branch_taken=1)


def _in_range(start: int, length: int, size: int) -> int:
    """How many of the positions start, start+1, ..., start+length-1 lie in [0, size)."""
    lo = max(start, 0)
    hi = min(start + length, size)
    return max(0, hi - lo)


def conv_im2col_counts(cfg, rng) -> tuple[dict, int, int, int]:
    """For one core's pixel range ``rng`` of a conv ``cfg``: ({call length in elements: number of im2col copy
    calls}, zero_mem calls, border kernel positions, interior kernel rows). Public because the deployment
    flavours (``jaxpulp.deploy.mixed_noinline``) re-cost the same im2col walk with other per-call counts."""
    H, W, Ci, Kh, Kw = cfg.H, cfg.W, cfg.Ci, cfg.Kh, cfg.Kw
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    Ho, Wo = cfg.Ho, cfg.Wo
    calls = {Ci: 0, Ci * Kw: 0}
    zero = 0
    positions = 0
    krows = 0
    if rng.empty:
        return calls, 0, 0, 0
    xs = range(rng.col0, rng.col1)
    colsin = {x: _in_range(x * sx - pl, Kw, W) for x in xs}
    for y in range(rng.row0, rng.row1):
        if y < pt or y >= Ho - pb:  # generic path: every (ky, kx) checked in both directions
            rows_in = _in_range(y * sy - pt, Kh, H)
            for x in xs:
                n_in = rows_in * colsin[x]
                calls[Ci] += n_in
                zero += Kh * Kw - n_in
            positions += Kh * Kw * len(xs)
            continue
        for x in xs:
            if x < pl or x >= Wo - pr:  # left / right border: x checked only
                n_in = Kh * colsin[x]
                calls[Ci] += n_in
                zero += Kh * Kw - n_in
                positions += Kh * Kw
            else:  # interior: one call per kernel row
                calls[Ci * Kw] += Kh
                krows += Kh
    return calls, zero, positions, krows


def leftover_pixel(cfg, K: int, cg: Codegen, pointwise: bool) -> Cost:
    """The scalar per-channel loop of a row's last (odd) pixel (semantics.md §5.5, §7)."""
    bw, bo = cfg.w_type.bits, cfg.out_type.bits
    mode = mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32))
    S = STEP[bw]
    if bw == 8:
        it = Cost(load=2, sdotp=1)
    elif bw == 4:
        it = Cost(load=2, sdotp=2) + unpack_word(4)
    else:
        it = Cost(load=4, sdotp=4) + unpack_word(2)
    e = _e(bw)
    tail = Cost(load=1 + e, extract=(e if bw < 8 else 0), mul=e, stall_load_use=1)
    per = Cost(alu=3, branch_taken=1, branch_not_taken=2)
    if pointwise:
        per = per + Cost(alu=3, mul=1)  # pB recomputed from pIn for every channel
    if cfg.bias:
        per = per + Cost(load=1)
    per = per + inner_loop(it, K // S, cg, MM_INNER_SW_EXTRA[bw]) + inner_loop(tail, (K % S) // e, cg)
    per = per + quant(mode, cfg.out_type.signed) + Cost(macs=K)
    return Cost(alu=10) + per * cfg.Co + pack_via_array(cfg.Co, bo)


def conv_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC, *, split: str = "mixed") -> Cost:
    """``pulp_nn_conv_<in>_<out>_<w>`` on core ``core`` of ``ncores`` (semantics.md §5).

    split="ho": the work split of the 8-bit pulp-nn ``pulp_nn_conv_Ho_parallel`` (pulp-platform/pulp-nn
    @4b2334c ``32bit/src/pulp_nn_conv_Ho_parallel.c``, the kernel DORY's 8-bit flow calls for non-1x1 or strided
    convolutions): ceil(Ho / ncores) whole output rows per core, never half rows, and the im2col buffer fills
    pixel pairs across row ends, so a core's rows * Wo pixels make (rows * Wo) // 2 pairs and at most one
    leftover pixel. Same im2col, MatMul and leftover code as the pulp-nn-mixed 8-bit kernel."""
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    mode = mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32))
    K = cfg.K
    if split == "ho":
        chunk = -(-cfg.Ho // ncores)
        start = min(core * chunk, cfg.Ho)
        rng = _split.PixelRange(start, min(start + chunk, cfg.Ho), 0, cfg.Wo)
    elif split == "mixed":
        rng = _split.conv_split(core, cfg.Ho, cfg.Wo, ncores)
    else:
        raise JaxpulpError(f"split={split!r}: expected 'mixed' or 'ho'")
    cost = KERNEL_ENTRY
    if rng.empty:
        return cost
    rows, width = rng.rows, rng.width
    pairs = rows * rng.pairs_per_row
    lefts = rows * int(rng.leftover)
    if split == "ho":
        pairs, lefts = (rows * width) // 2, (rows * width) % 2
    cost = cost + CONV_ROW * rows + CONV_PIXEL * (rows * width)
    calls, zero, positions, krows = conv_im2col_counts(cfg, rng)
    for n, k in calls.items():
        if k:
            cost = cost + im2col_call(n, bi, cg) * k
    if zero:
        cost = cost + zero_mem_call(cfg.Ci, cg) * zero
    cost = cost + CONV_POSITION * positions + CONV_KROW * krows
    mm = matmul_call(K, cfg.Co, bw, bo, mode, cfg.out_type.signed, cfg.bias, cg)
    cost = cost + mm * pairs
    if lefts:
        cost = cost + leftover_pixel(cfg, K, cg, pointwise=False) * lefts
    return cost


def pointwise_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """``pulp_nn_pointwise_<in>_<out>_<w>`` on core ``core`` (semantics.md §7): no im2col for 8-bit inputs,
    one unpack call of 2*Ci elements per pixel pair otherwise."""
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    mode = mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32))
    K = cfg.Ci * cfg.Kh * cfg.Kw  # the kernel passes ch_in * dim_kernel_x * dim_kernel_y
    rng = _split.conv_split(core, cfg.Ho, cfg.Wo, ncores)
    cost = KERNEL_ENTRY
    if rng.empty:
        return cost
    rows = rng.rows
    pairs = rows * rng.pairs_per_row
    lefts = rows * int(rng.leftover)
    per_pair = Cost(alu=5, mul=2, branch_taken=1)  # pointer arithmetic + pair-loop control
    if bi < 8:
        per_pair = per_pair + im2col_call(2 * cfg.Ci, bi, cg)
    per_pair = per_pair + matmul_call(K, cfg.Co, bw, bo, mode, cfg.out_type.signed, cfg.bias, cg)
    cost = cost + CONV_ROW * rows + per_pair * pairs
    if lefts:
        cost = cost + leftover_pixel(cfg, K, cg, pointwise=True) * lefts
    return cost


# ------------------------------------------------------------------------------------------------------------
# Depthwise (semantics.md §8)
# ------------------------------------------------------------------------------------------------------------


def depthwise_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """``pulp_nn_depthwise_<in>_<out>_<w>`` on core ``core`` (semantics.md §8): per channel group of
    G = 8/min(bi, bw, bo) channels, a strip im2col per output column and a dot product per output row."""
    bi, bw, bo = cfg.in_type.bits, cfg.w_type.bits, cfg.out_type.bits
    mode = mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32))
    lp = min(bi, bw, bo)
    G = 8 // lp
    H, Kh, Kw = cfg.H, cfg.Kh, cfg.Kw
    Ho, Wo = cfg.Ho, cfg.Wo
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    ks = Kh * Kw
    kxp = (Kw >> 2) + int((Kw & 3) != 0)
    c0, c1 = _split.depthwise_split(core, cfg.Co, G, ncores)
    groups = (c1 - c0) // G
    cost = KERNEL_ENTRY + Cost(alu=12)
    if groups <= 0:
        return cost
    # --- per group: weight unpack (sub-byte weights), once
    wunpack = ZERO
    if bw < 8:
        # G/(8/bw) loops over the taps, each: lb, 8/bw extracts, 8/bw sb (semantics.md §8.3 step 1)
        per_tap = Cost(load=G // _e(bw), extract=G, store=G, stall_load_use=1)
        wunpack = inner_loop(per_tap, ks, cg)
    # --- strip construction, per strip row
    zero_row = inner_loop(Cost(store=G), kxp, cg) + Cost(alu=G + 1, branch_taken=1)
    if bi == 8:
        img_it = Cost(load=G, store=G, stall_load_use=1)
    else:
        words = G // _e(bi)  # input words holding 4 pixels of the group's channels
        img_it = Cost(load=words, extract=4 * G, store=4 * G, stall_load_use=1)
    img_row = inner_loop(img_it, kxp, cg) + Cost(alu=G + 2, branch_taken=1)
    # --- dot product per output row
    col_cnt = max(1, ks >> 2)  # do-while: at least once (semantics.md §8.3)
    dot = inner_loop(Cost(load=2 * G, sdotp=G), col_cnt, cg)
    dot = dot + inner_loop(Cost(load=2 * G, mul=G, stall_load_use=1), ks & 3, cg)
    qsigned = cfg.out_type.signed
    out_row = Cost(alu=4 + 2 * G, branch_taken=1, branch_not_taken=2) + dot
    out_row = out_row + quant(mode, qsigned) * G + pack_outputs(G, bo) + Cost(macs=G * ks)
    if cfg.bias:
        out_row = out_row + Cost(load=G)
    col_outputs = out_row * Ho
    per_group = Cost(alu=10, branch_taken=1) + wunpack
    for phase, x in _split.depthwise_columns(Wo, sx, pl, pr):
        col = Cost(alu=8, branch_taken=1, branch_not_taken=2)
        col = col + zero_row * (pt + pb) + img_row * H + col_outputs
        if phase == "L":
            nz = max(0, pl - x * sx)  # zero bytes written left of the image, per strip row and channel
            if nz:
                col = col + Cost(store=G * nz, alu=nz, branch_taken=nz) * H
        elif phase == "R":
            nz = max(0, 1 + x * sx - Wo * sx + pr)
            if nz:
                col = col + Cost(store=G * nz, alu=nz, branch_taken=nz) * H
        per_group = per_group + col
    return cost + per_group * groups


# ------------------------------------------------------------------------------------------------------------
# Linear (semantics.md §9)
# ------------------------------------------------------------------------------------------------------------

def _linear_groups(N: int, ncores: int, core: int, bo: int | None) -> tuple[int, int, int]:
    """(neuron groups, neurons per group, leftover neurons) of ``core``: its range from
    ``cluster.split.linear_split`` walked as the C loops do (semantics.md §9.2): pairs (bo = 8, 4, int32) or
    quads (bo = 2); for bo = 8 / int32 an odd ``chunk`` leaves the range's last neuron to a single-neuron pass,
    and a range of odd length with an even ``chunk`` runs one pair past N."""
    start, stop = _split.linear_split(core, N, ncores, bo)
    if stop <= start:
        return 0, (4 if bo == 2 else 2), 0
    if bo == 4:
        return -(-(stop - start) // 2), 2, 0
    if bo == 2:
        return -(-(stop - start) // 4), 4, 0
    chunk = N // ncores + int(N % ncores != 0)
    lft = chunk & 1
    stop_even = stop - lft
    pairs = -(-(stop_even - start) // 2) if stop_even > start else 0
    return pairs, 2, int(bool(lft))


def _linear_step(bi: int, bw: int, nn: int, wt_in_loop: bool = True) -> Cost:
    """One vector step (S = 32/min(bi, bw) elements) for ``nn`` neurons: activations loaded/unpacked once,
    weights per neuron, S/4 sdotp per neuron (``wt_in_loop=False``: activations only)."""
    lp = min(bi, bw)
    S = 32 // lp
    c = Cost(sdotp=nn * S // 4) if wt_in_loop else ZERO
    # activations
    if bi == 8:
        c = c + Cost(load=S // 4)
    elif bi == 4:
        c = c + unpack_word(4) * (S // 8)
    else:
        c = c + unpack_word(2)
    if wt_in_loop:
        if bw == 8:
            c = c + Cost(load=nn * S // 4)
        elif bw == 4:
            c = c + unpack_word(4) * (nn * S // 8)
        else:
            c = c + unpack_word(2) * nn
    return c


def _linear_tail(bi: int, bw: int, nn: int) -> Cost:
    """One iteration of the scalar tail loop (consumes 32/(8*...) elements, semantics.md §9.3)."""
    lp = min(bi, bw)
    per = 8 // lp  # elements consumed per iteration (1, 2 or 4)
    c = Cost(mul=nn * per, stall_load_use=1)
    # activations
    if bi == 8:
        c = c + Cost(load=per)
    else:
        c = c + Cost(load=per // _e(bi), extract=per)
    # weights per neuron
    if bw == 8:
        c = c + Cost(load=nn * per)
    else:
        c = c + Cost(load=nn * (per // _e(bw)), extract=nn * per)
    return c


def linear_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """``pulp_nn_linear_<in>_<out>_<w>`` (quantised) and ``pulp_nn_linear_<in>_i32_<w>`` on core ``core``."""
    bi, bw = cfg.in_type.bits, cfg.w_type.bits
    quantized = cfg.out_type.bits != 32
    bo = cfg.out_type.bits if quantized else None
    N = cfg.N
    groups, nn, left = _linear_groups(cfg.M, ncores, core, bo)
    lp = min(bi, bw)
    S = 32 // lp
    cost = KERNEL_ENTRY + Cost(alu=10)
    mode = mode_of(cfg.relu, cfg.bn, getattr(cfg, "bn_bits", 32)) if quantized else None

    def group_cost(nn_, wt_in_loop=True):
        g = Cost(alu=6 + nn_, branch_taken=1) + (Cost(load=nn_) if cfg.bias else ZERO)
        g = g + inner_loop(_linear_step(bi, bw, nn_, wt_in_loop), N // S, cg)
        g = g + inner_loop(_linear_tail(bi, bw, nn_), N % S, cg)
        if quantized:
            g = g + quant(mode, cfg.out_type.signed) * nn_ + pack_outputs(nn_, bo)
        else:
            g = g + Cost(store=nn_)
        return g + Cost(macs=nn_ * N)

    cost = cost + group_cost(nn) * groups
    if left:
        # quantised kernels: for 2-bit steps with 8/4-bit inputs the leftover neuron's vector loop only loads
        # activations: no weight loads, no dot products (template nesting defect, semantics.md §9.2 b)
        wt = not (quantized and lp == 2 and bi in (8, 4))
        cost = cost + group_cost(1, wt) + Cost(branch_not_taken=1)
    return cost


# ------------------------------------------------------------------------------------------------------------
# Pooling (semantics.md §10)
# ------------------------------------------------------------------------------------------------------------

def _compare_and_replace(length: int, bits: int, cg: Codegen) -> Cost:
    """``pulp_nn_compare_and_replace_if_larger_<t>(base, target, length)`` (noinline helper in pulp_nn_utils.h):
    per 4 bytes, 8-bit: 2 ``lw``, ``pv.max(u).b``, ``sw``; sub-byte: both words unpacked to a stack array,
    ``pv.max(u).b`` per 4 lanes through a scratch word, repacked with ``p.insert``; byte tail with scalar
    compares (8-bit) or extract/insert (sub-byte)."""
    c = CALL + Cost(alu=2, branch_not_taken=2)
    n4, rem = length >> 2, length & 3
    if bits == 8:
        c = c + inner_loop(Cost(load=2, simd=1, store=1, stall_load_use=1), n4, cg)
        c = c + inner_loop(Cost(load=2, alu=1, branch_not_taken=1, store=1), rem, cg)
    elif bits == 4:
        body = (unpack_word(4) + Cost(store=2)) * 2 + Cost(load=12, simd=2, store=6, insert=4)
        c = c + inner_loop(body, n4, cg)
        c = c + inner_loop(Cost(load=2, extract=4, alu=2, branch_not_taken=2, insert=1, store=1), rem, cg)
    else:
        body = (unpack_word(2) + Cost(store=4)) * 2 + Cost(load=24, simd=4, store=8, insert=12)
        c = c + inner_loop(body, n4, cg)
        c = c + inner_loop(Cost(load=6, extract=8, pack=4, simd=1, store=2, insert=3), rem, cg)
    return c


def maxpool_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """``pulp_nn_maxpool_<t>`` (semantics.md §10.1): horizontal pass over input rows, barrier, vertical pass
    over output rows, barrier; the window maxima are calls of the compare-and-replace helper."""
    b = cfg.in_type.bits
    H, W, C = cfg.H, cfg.W, cfg.C
    Ho, Wo = cfg.Ho, cfg.Wo
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    Kh, Kw = cfg.Kh, cfg.Kw
    chr_ = C * b // 8
    cost = KERNEL_ENTRY + Cost(bitcount=1, barrier=1, jump=2, alu=10)
    # pass 1: input rows
    r0, r1 = _split.row_split(core, H, ncores)
    row = ZERO
    for x in range(Wo):
        s = x * sx - pl
        start = x if s < 0 else s
        stop = W if s + Kw >= W else s + Kw
        px = Cost(alu=10, mul=2, branch_taken=1, branch_not_taken=2)
        px = px + inner_loop(Cost(load=1, store=1, stall_load_use=1), chr_, cg)
        n = max(0, stop - start - 1)
        px = px + (_compare_and_replace(chr_, b, cg) + Cost(alu=1, branch_taken=1)) * n
        row = row + px
    cost = cost + outer_loop(row, r1 - r0)
    # pass 2: output rows, same chunk formula (the C start is not clamped, which selects the same rows)
    s2, e2 = _split.row_split(core, Ho, ncores)
    for y in range(s2, e2):
        s = y * sy - pt
        start = 0 if s < 0 else s
        stop = H if s + Kh >= H else s + Kh
        r = Cost(alu=10, mul=2, branch_taken=1, branch_not_taken=2)
        r = r + inner_loop(Cost(load=1, store=1, stall_load_use=1), Wo * chr_, cg)
        n = max(0, stop - start - 1)
        r = r + (_compare_and_replace(Wo * chr_, b, cg) + Cost(alu=1, branch_taken=1)) * n
        cost = cost + r
    return cost


def avgpool_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """``pulp_nn_avgpool_<in>_<out>`` (semantics.md §10.2): scalar per channel byte and window tap, a division
    (no requant) or multiply-add-shift (requant) per element, packing with ``p.insert``."""
    bi, bo = cfg.in_type.bits, cfg.out_type.bits
    H, W, C = cfg.H, cfg.W, cfg.C
    Ho, Wo = cfg.Ho, cfg.Wo
    sy, sx = cfg.stride
    pt, pb, pl, pr = cfg.pad
    Kh, Kw = cfg.Kh, cfg.Kw
    ein, eout = _e(bi), _e(bo)
    chr_ = C // ein
    area = Kh * Kw
    div_stall = (32 - area.bit_length()) + 3 - 1  # CV32E40P divu: clz(divisor) + 3 cycles (isa_cost §2.1)
    cost = KERNEL_ENTRY + Cost(alu=12, div=1, stall_div=div_stall)
    r0, r1 = _split.avgpool_split(core, Ho, ncores)
    if r1 <= r0:
        return cost
    wr_not = bi > bo
    # per element of a channel byte, after the window sum
    if cfg.requant:
        elem = Cost(mul=1, alu=2)
    else:
        elem = Cost(div=1, stall_div=div_stall)
    elem = elem + (Cost(clip=1) if cfg.out_type.signed else Cost(clipu=1))
    if wr_not:
        # out_el |= (clip(v) [& mask]) << (in_iter_cnt * k + c * bo): shift amount, sll, or (+ and if signed)
        elem = elem + Cost(alu=4 + int(cfg.out_type.signed))
        byte_tail = Cost(alu=2, branch_not_taken=1)  # in_iter_cnt test; the store is counted below
    else:
        if eout == 1:
            n_ins = 0
        elif cfg.requant:
            n_ins = ein - 1
        else:
            n_ins = sum(1 for c in range(ein) if c % eout != 0)
        byte_tail = Cost(insert=n_ins, store=ein // eout)
    per_byte_fixed = Cost(alu=ein + 3, branch_taken=1, branch_not_taken=2) + elem * ein + byte_tail
    tap = Cost(load=1, extract=ein, alu=ein + 2, mul=1, stall_load_use=1)
    total_taps = 0
    pix = 0
    for y in range(r0, r1):
        ky0 = max(0, y * sy - pb)
        ky1 = min(y * sy - pt + Kh, H)
        ny = max(0, ky1 - ky0)
        for x in range(Wo):
            kx0 = max(0, x * sx - pl)
            kx1 = min(x * sx - pr + Kw, W)
            nx = max(0, kx1 - kx0)
            total_taps += ny * nx
            pix += 1
    cost = cost + Cost(minmax=4, alu=12, mul=2, branch_taken=1, branch_not_taken=2) * pix
    cost = cost + per_byte_fixed * (pix * chr_) + tap * (total_taps * chr_)
    if wr_not:
        # one output byte every bi/bo input bytes
        cost = cost + Cost(store=1, alu=2) * (pix * chr_ * bo // bi)
    cost = cost + Cost(alu=2, branch_taken=1) * (r1 - r0)
    return cost


# ------------------------------------------------------------------------------------------------------------
# Element-wise add (semantics.md §11)
# ------------------------------------------------------------------------------------------------------------

def add_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """``pulp_nn_add_<in1>_<in2>_<out>`` (semantics.md §11.1): groups of 4 elements, each input requantised
    (mul, add, sra, 8-bit clip), summed, optionally requantised, clipped and packed."""
    b1, b2, bo = cfg.in1_type.bits, cfg.in2_type.bits, cfg.out_type.bits
    r0, r1 = _split.row_split(core, cfg.H, ncores)
    cost = KERNEL_ENTRY + Cost(alu=14)
    elems = (r1 - r0) * cfg.W * cfg.C
    it = ZERO
    for b, s in ((b1, cfg.in1_type.signed), (b2, cfg.in2_type.signed)):
        if b < 8:  # noinline pulp_nn_<s><b>_to_<s>8_r: 1 load, 4 extract, 1 pack4; result stored then read
            it = it + CALL + Cost(load=1, extract=4, pack=2, store=1)
        it = it + Cost(load=4, mul=4, alu=8) + (Cost(clip=4) if s else Cost(clipu=4))
    it = it + Cost(alu=4)  # the four sums
    if cfg.requant:
        it = it + Cost(mul=4, alu=8)
    it = it + (Cost(clip=4) if cfg.out_type.signed else Cost(clipu=4)) + pack_outputs(4, bo)
    it = it + Cost(alu=3)
    groups = elems >> 2
    if b1 == 8 and b2 == 8:  # no call in the body: a hardware loop
        cost = cost + inner_loop(it, groups, cg)
    else:
        cost = cost + outer_loop(it, groups)
    if b1 == 8 and b2 == 8 and bo == 8:
        rem = elems & 3
        one = Cost(load=2, mul=2, alu=4 + 3, store=1) + (Cost(clip=1) if cfg.in1_type.signed else Cost(clipu=1))
        one = one + (Cost(clip=1) if cfg.in2_type.signed else Cost(clipu=1))
        if cfg.requant:
            one = one + Cost(mul=1, alu=2)
        one = one + (Cost(clip=1) if cfg.out_type.signed else Cost(clipu=1))
        cost = cost + outer_loop(one, rem)
    return cost


def add_legacy_core(cfg, core: int, ncores: int, cg: Codegen = PULP_GCC) -> Cost:
    """Legacy ``pulp_nn_add_u<b1>_u<b2>`` (semantics.md §11.2): the loop bound mixes units, so core c runs
    ``(stop * out_bytes_per_pixel * W >> s) - start`` iterations; each: unpack calls, 4 noinline
    ``pulp_nn_add_quant_u<bo>`` calls (2 mul, add, shift, clip), packing."""
    b1, b2 = cfg.in1_type.bits, cfg.in2_type.bits
    bo = max(b1, b2)
    r0, r1 = _split.row_split(core, cfg.H, ncores)
    ch_out = cfg.C * bo // 8
    sh = {8: 2, 4: 1, 2: 0}[bo]
    n_it = max(0, ((r1 * ch_out * cfg.W) >> sh) - r0)
    cost = KERNEL_ENTRY + Cost(alu=14)
    it = ZERO
    for b in (b1, b2):
        if b < 8:
            it = it + CALL + Cost(load=1, extract=4, pack=2, store=1)
    it = it + (CALL + Cost(load=2, mul=2, alu=2, clipu=1)) * 4 + pack_outputs(4, bo)
    cost = cost + outer_loop(it, n_it)
    return cost
