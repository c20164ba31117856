# mov_ss_shadow: MOV SS / POP SS inhibit the single-step trap and data
# breakpoints until the instruction after them has completed.
_start:
        mov     ax, ss
        mov     word ptr [0x1100], ax
        SYNC
part_a:                                 # host single-steps
        nop
mss:    mov     ss, ax
mss_end:
        nop                             # no trap may be reported before this one completes
mss_next:
        nop
mss_next2:
        SYNC
part_b:
.if .LBITS != 64                        # POP SS does not exist in 64-bit mode
        nop
pss_push:
        push    ss
pss:    pop     ss
pss_end:
        nop
pss_next:
        nop
pss_next2:
.endif
        SYNC
part_c:                                 # host data breakpoint on [0x1100]
        nop
mssm:   mov     ss, word ptr [0x1100]
mssm_end:
        nop
mssm_next:
        nop
        SYNC
        EXIT    0
