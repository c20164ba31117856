# sw_bp_int3: an INT3 the host owns (KVM_GUESTDBG_USE_SW_BP).
_start:
        nop
sw_bp:  int3
sw_bp_end:
        nop
        EXIT    0
