# gd_bit: MOV from and to a debug register with DR7.GD set by the host. Each
# probe is followed by a SYNC, so a missing fault stops the run there.
_start:
        nop
.if .LBITS == 64
gd_read:
        mov     rax, dr0
        SYNC
gd_write:
        mov     dr1, rax
        SYNC
.else
gd_read:
        mov     eax, dr0
        SYNC
gd_write:
        mov     dr1, eax
        SYNC
.endif
gd_done:
        EXIT    0
