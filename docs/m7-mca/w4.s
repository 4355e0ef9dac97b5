# CMix-NN u4-weight 2x2 inner iteration, my Thumb-2 rendering; r12 holds the 0x000F000F mask, loop ends on pB == sp (stand-in end register)
ldr r10, [r0], #4
ldr r11, [r1], #4
ldr r8, [r2], #4
ldr r9, [r3], #4
and r4, r10, #0x000F000F
uxtb16 r4, r4
smlad r5, r4, r8, r5
smlad r6, r4, r9, r6
and r4, r11, #0x000F000F
uxtb16 r4, r4
smlad r7, r4, r8, r7
smlad lr, r4, r9, lr
ldr r8, [r2], #4
ldr r9, [r3], #4
and r4, r12, r10, ror #4
uxtb16 r4, r4
smlad r5, r4, r8, r5
smlad r6, r4, r9, r6
and r4, r12, r11, ror #4
uxtb16 r4, r4
smlad r7, r4, r8, r7
smlad lr, r4, r9, lr
ldr r8, [r2], #4
ldr r9, [r3], #4
and r4, r12, r10, ror #8
uxtb16 r4, r4
smlad r5, r4, r8, r5
smlad r6, r4, r9, r6
and r4, r12, r11, ror #8
uxtb16 r4, r4
smlad r7, r4, r8, r7
smlad lr, r4, r9, lr
ldr r8, [r2], #4
ldr r9, [r3], #4
and r4, r12, r10, ror #12
uxtb16 r4, r4
smlad r5, r4, r8, r5
smlad r6, r4, r9, r6
and r4, r12, r11, ror #12
uxtb16 r4, r4
smlad r7, r4, r8, r7
smlad lr, r4, r9, lr
cmp r2, sp
bne.w 0
