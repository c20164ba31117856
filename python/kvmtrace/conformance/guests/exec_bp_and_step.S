# exec_bp_and_step: host single-step onto an instruction that has a host instruction
# breakpoint: the step trap lands at it (BS), then the breakpoint faults there (B0), then,
# stepped with the breakpoint removed, the trap after it (BS): never merged bits.
_start:
s_0:    nop
s_1:    nop
s_x:    nop
s_end:  nop
        SYNC
        EXIT    0
