# dr6_guest_preset: the guest presets DR6 bits (B1, B3, BD, BS, BT: all writable) before a
# host instruction breakpoint (part a) and host single-steps (part b): each exit reports
# only its own cause, and the guest reads its preset back.
        .set    PRESET, 0xffffeffa
_start:
        SET_DR6 PRESET
        nop
x:      nop
        STORE_DR6 0x1000
        SYNC
        SET_DR6 PRESET
        SYNC                            # part b: the host single-steps from here
s_0:    nop
s_1:    nop
s_2:    SYNC
        STORE_DR6 0x1008
        SYNC
        EXIT    0
