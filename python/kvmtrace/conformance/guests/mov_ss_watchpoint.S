# mov_ss_watchpoint: the guest's own read/write watchpoint on the word MOV SS loads, and
# right after the MOV SS an INT1 (ICEBP), an INT 1 or an INT3 (kvm-unit-tests x86/debug.c
# "MOV SS + watchpoint + ICEBP / int $1 / INT3"; the KVM CVE-2018-1087 family): the data
# breakpoint's #DB is held back by the shadow and then delivered exactly once.
_start:
        mov     ax, ss
        mov     word ptr [0x1100], ax
        SET_DR 0, 0x1100
        SET_DR 7, 0x000f0401            # L0, R/W0 = 11 (read or write), LEN0 = 11 (4 bytes)
        RESET_COUNTERS
        SET_DR6 0xffff0ff0
w_a:    mov     ss, word ptr [0x1100]
        .byte   0x2e, 0x2e, 0xf1        # INT1 with two CS prefixes: one #DB for both
w_a_end:
        SYNC
        RESET_COUNTERS
        SET_DR6 0xffff0ff0
w_b:    mov     ss, word ptr [0x1100]
        .byte   0xcd, 0x01              # INT 1, a software interrupt: the #DB handler runs twice
w_b_end:
        SYNC
        RESET_COUNTERS
        SET_DR6 0xffff0ff0
w_c:    mov     ss, word ptr [0x1100]
        .byte   0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0xcc
w_c_end:                                # INT3 with 11 prefixes: one #DB and one #BP
        SYNC
        SET_DR 7, 0x400
        EXIT    0
        DB_RECORDER db_recorder
        BP_RECORDER bp_recorder
