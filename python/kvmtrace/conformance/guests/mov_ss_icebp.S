# mov_ss_icebp: MOV SS, then INT1 (ICEBP) twice, with TF set. Part a: the guest's own TF
# and #DB handler (kvm-unit-tests x86/debug.c singlestep_with_movss_blocking_and_icebp):
# the shadowed MOV SS reports no step, each INT1 is a #DB trap with DR6 = 0xffff0ff0 (no
# BS), then single-steps follow. Part b: the same under host single-step.
_start:
        RESET_COUNTERS 5
        SET_DR6 0xffff0ff0
        mov     ax, ss
        TF_ON
        mov     ss, ax
a_ice1: .byte   0xf1
a_ice2: .byte   0xf1
a_1:    nop
a_2:    nop
a_3:    nop
a_4:    nop                             # the handler clears TF after the fifth #DB
        SYNC
        mov     ax, ss
        SYNC                            # part b: the host single-steps from here
b_mss:  mov     ss, ax
b_ice:  .byte   0xf1
b_1:    nop
b_2:    nop
        SYNC
        EXIT    0
        DB_RECORDER db_recorder
