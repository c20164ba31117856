# sti_shadow: STI's interrupt shadow does not hold back #DB: the single-step trap after
# STI is reported at the next instruction, under host single-step (part a) and under the
# guest's own TF (part b, as kvm-unit-tests x86/debug.c singlestep_with_sti_blocking).
# No interrupt source exists here.
_start:
        cli
        SYNC
a_cli:  cli                             # part a: the host single-steps
a_sti:  sti
a_1:    nop                             # in STI's shadow
a_2:    nop
a_3:    SYNC
part_b:                                 # part b: the guest's own TF, its handler logs 3 #DB
        RESET_COUNTERS 3
        SET_DR6 0xffff0ff0
        cli
        TF_ON                           # POPF sets TF: no trap after the POPF itself
b_sti:  sti
b_1:    nop
b_2:    nop
b_3:    nop                             # the handler clears TF after the third #DB
        SYNC
        EXIT    0
        DB_RECORDER db_recorder
