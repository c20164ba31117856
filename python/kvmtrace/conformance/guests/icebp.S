# icebp: INT1 (opcode 0xF1) delivered to the guest's own #DB handler (part a,
# no host debugging) and under host debugging (part b).
_start:
        SET_DR6 0xffff0ff0
ice1:   .byte   0xf1
ice1_end:
        nop
        SYNC
part_b:
        nop
ice2:   .byte   0xf1
ice2_end:
        nop
        SYNC
        EXIT    0

# The guest's #DB handler: record the vector, DR6 and return address, then return.
db_handler:
        mov     byte ptr [0x1010], 1
        STORE_DR6 0x1018
        STORE_STACK 0x1020
.if .LBITS == 64
        iretq
.else
        iret
.endif
