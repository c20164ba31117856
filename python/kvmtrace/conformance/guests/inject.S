# inject_db / inject_bp: the host injects the exception at inj_point; the guest's
# handler records the vector, its DR6 and the return address.
_start:
        SET_DR6 0xffff0ff0
        SYNC
inj_point:
        nop
        nop
        EXIT    0
        RECORDING_HANDLER db_handler, 1
        RECORDING_HANDLER bp_handler, 3
