# guest_dr6_preserved: the guest keeps its own DR6 value (B1|B3 set: unusual but
# writable) while the host single-steps it (part a), while a host data breakpoint
# fires (part b) and while a host instruction breakpoint fires (part c).
        .set    GUEST_DR6, 0xffff0ffa
_start:
        SET_DR6 GUEST_DR6
        nop
        nop
        STORE_DR6 0x1000
a_sync: SYNC
part_b:
        SET_DR6 GUEST_DR6
wr:     mov     byte ptr [0x1100], al
wr_end: nop
        STORE_DR6 0x1008
        SYNC
part_c:
        SET_DR6 GUEST_DR6
        nop
xbp:    nop
        nop
        STORE_DR6 0x1010
        SYNC
        EXIT    0
