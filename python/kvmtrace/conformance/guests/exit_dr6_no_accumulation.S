# exit_dr6_no_accumulation: a data breakpoint, single steps, an instruction
# breakpoint, a step off it, a general-detect fault and a step after it, one
# after the other. SYNCs end each stretch, so a missing event does not run the
# guest into the next stretch.
_start:
        nop
w1:     mov     byte ptr [0x1100], al   # DR1 write breakpoint (trap)
w1_end: SYNC
s0:     nop                             # stepped twice
s1:     nop
s2:     nop
        nop
x2:     nop                             # DR2 instruction breakpoint (fault), then one step
x2_end: SYNC
.if .LBITS == 64
g:      mov     rax, dr0                # general detect (fault); the host skips it
.else
g:      mov     eax, dr0
.endif
g_end:  SYNC
g_next: nop                             # stepped once
g_next_end:
        nop
        EXIT    0
