# int_variants: INT 1 (CD 01), INT 3 (CD 03), INT3 (CC) and INT1 (F1) under host software
# breakpoints (part a: only the INT3 the host owns exits, the others reach the guest's
# handlers) and under host single-step (part b). GNU as turns "int 3" into CC: the CD
# forms are spelled as bytes.
_start:
        RESET_COUNTERS
        SET_DR6 0xffff0ff0
        SYNC
a_i1:   .byte   0xcd, 0x01
a_i1e:  nop
a_i3:   .byte   0xcd, 0x03
a_i3e:  nop
a_cc:   int3
a_cce:  nop
        SYNC
a_f1:   .byte   0xf1
a_f1e:  nop
        SYNC
        RESET_COUNTERS
        SET_DR6 0xffff0ff0
        SYNC                            # part b: the host single-steps from here
b_i1:   .byte   0xcd, 0x01
b_i1e:  nop
b_i3:   .byte   0xcd, 0x03
b_i3e:  nop
b_cc:   int3
b_cce:  nop
b_f1:   .byte   0xf1
b_f1e:  nop
b_end:  SYNC
        EXIT    0
        DB_RECORDER db_recorder
        BP_RECORDER bp_recorder
