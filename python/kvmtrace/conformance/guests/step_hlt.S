# step_hlt: single-step across HLT (no interrupt controller: nothing wakes it).
_start:
        nop
h:      hlt
h_end:  nop
h_next: nop
        EXIT    0
