# guest_owned_drs: the guest programs DR0-DR3, DR6 and DR7 itself and takes its own #DB
# while the host is not debugging; the host then switches debugging on (single-step, then
# a breakpoint of its own) and off again: the guest's registers survive and its own
# breakpoint works again. (KVM lets a guest that writes DRs run without MOV-DR exits,
# KVM_DEBUGREG_WONT_EXIT, and must sync its registers when the host takes over.)
_start:
        RESET_COUNTERS 16, 1            # the handler disarms DR7 after each #DB; the guest re-arms
        SET_DR 0, "OFFSET x"
        SET_DR 1, 0x5550
        SET_DR 2, 0x6660
        SET_DR 3, 0x7770
        SET_DR6 0xffff0ff0
        SET_DR 7, 0x401                 # L0, execute at x
        call    xsub                    # its own #DB 1, at x
        SET_DR 7, 0x401                 # re-arm
        SET_DR6 0xffff0ffa              # a DR6 of its own: B1|B3
        SYNC                            # the host reads the registers, then debugs
h_0:    nop
h_1:    nop
h_2:    nop
h_y:    nop
h_end:  nop
        SYNC                            # the host stopped debugging
        STORE_DR 0, 0x1400
        STORE_DR 1, 0x1408
        STORE_DR 2, 0x1410
        STORE_DR 3, 0x1418
        STORE_DR 6, 0x1420
        STORE_DR 7, 0x1428
        SYNC
        call    xsub                    # its own #DB 2, at x
        SYNC
        EXIT    0
xsub:
x:      nop
        ret
        DB_RECORDER db_recorder
