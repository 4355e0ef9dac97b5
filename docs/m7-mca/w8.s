# CMix-NN u8-weight 2x2 inner iteration, my Thumb-2 rendering (r0 pA, r1 pA2, r2 pB, r3 pB2, r4-r7 sums, r12 count)
ldr r8, [r2], #4
ldr r9, [r3], #4
ldr r10, [r0], #4
ldr r11, [r1], #4
uxtb16 lr, r10
uxtb16 r10, r10, ror #8
smlad r4, lr, r8, r4
smlad r5, lr, r9, r5
uxtb16 lr, r11
uxtb16 r11, r11, ror #8
smlad r6, lr, r8, r6
smlad r7, lr, r9, r7
ldr r8, [r2], #4
ldr r9, [r3], #4
smlad r4, r10, r8, r4
smlad r5, r10, r9, r5
smlad r6, r11, r8, r6
smlad r7, r11, r9, r7
subs r12, r12, #1
bne.w 0
