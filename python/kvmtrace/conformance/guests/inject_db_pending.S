# inject_db_pending: KVM_GUESTDBG_INJECT_BP queues a #BP; a second request, INJECT_DB,
# while that exception is still pending must be refused (-EBUSY) or lead to a correct
# delivery - never a double fault (the catch-all stub of vector 8 would report it). The
# handlers record the vector, DR6 and return address and end the run (no IRET).
_start:
        SET_DR6 0xffff0ff0
        SYNC
inj_point:
        nop
        nop
        EXIT    0
        RECORDING_HANDLER db_handler, 1
        RECORDING_HANDLER bp_handler, 3
