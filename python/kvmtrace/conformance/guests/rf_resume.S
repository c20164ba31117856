# rf_resume: a host instruction breakpoint on an instruction of a loop that runs twice.
# Resumed with RFLAGS.RF set (KVM_SET_REGS), the instruction runs without a second report;
# the next report is its next execution, one iteration later ([0x1208] counts them).
_start:
        mov     byte ptr [0x1208], 0
        mov     ecx, 2
        SYNC
r_loop: nop
r_x:    inc     byte ptr [0x1208]
        dec     ecx
        jnz     r_loop
        SYNC
        EXIT    0
