# multi_bp_same_insn: several host instruction breakpoints on one instruction (DR0+DR1,
# then DR0-DR3): one exit reports every matching Bn. The host restarts at _start for each
# configuration.
_start:
        nop
m_x:    nop
        nop
        SYNC
        EXIT    0
