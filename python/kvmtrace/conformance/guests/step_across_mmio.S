# step_across_mmio: single-step a store to and a load from unbacked guest-physical
# memory (MMIO exits). Real mode uses the VGA window 0xA0000 (the Machine is made
# smaller than that); the other modes use 0xC0000000 (above the 16 MiB of RAM).
_start:
.if .LBITS == 16
        mov     ax, 0xa000
        mov     es, ax
        SYNC
        nop
mmio_w: mov     byte ptr es:[0], al
mmio_w_end:
        mov     al, byte ptr es:[0]
mmio_r_end:
.elseif .LBITS == 32
        mov     ebx, 0xc0000000
        SYNC
        nop
mmio_w: mov     byte ptr [ebx], al
mmio_w_end:
        mov     al, byte ptr [ebx]
mmio_r_end:
.else
        mov     ebx, 0xc0000000
        SYNC
        nop
mmio_w: mov     byte ptr [rbx], al
mmio_w_end:
        mov     al, byte ptr [rbx]
mmio_r_end:
.endif
        nop
        EXIT    0
