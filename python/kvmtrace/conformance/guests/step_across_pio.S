# step_across_pio: single-step OUT and IN instructions that exit to userspace.
_start:
        nop
pio_out:
        out     0x80, al
pio_out_end:
        in      al, 0x80
pio_in_end:
        mov     dx, 0x82
pio_dx:
        out     dx, ax
pio_dx_end:
        nop
        EXIT    0
