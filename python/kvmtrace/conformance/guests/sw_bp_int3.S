# sw_bp_int3: an INT3 the host owns (KVM_GUESTDBG_USE_SW_BP). Should it reach the guest
# anyway, the guest's #BP handler records it and ends the run.
_start:
        nop
sw_bp:  int3
sw_bp_end:
        nop
        EXIT    0
        RECORDING_HANDLER bp_handler, 3
