# dr4_alias: with CR4.DE = 0, DR4 and DR5 are aliases of DR6 and DR7; with CR4.DE = 1 a MOV
# from DR4 raises #UD (kvm-unit-tests x86/debug.c; SDM §18.2.2). Part c reads DR4 under host
# single-step: the guest sees its own DR6, not the host's BS.
.macro CR4_DE on
.if .LBITS == 64
        mov     rax, cr4
.if \on
        or      rax, 8
.else
        and     rax, ~8
.endif
        mov     cr4, rax
.else
        mov     eax, cr4
.if \on
        or      eax, 8
.else
        and     eax, ~8
.endif
        mov     cr4, eax
.endif
.endm
_start:
        RESET_COUNTERS
        SET_DR 4, 0                     # DR6 <- 0 through the alias (reads back as 0xffff0ff0)
        STORE_DR 6, 0x1400
        SET_DR6 0xffff4ff2              # BS|B1
        STORE_DR 4, 0x1408
        STORE_DR 5, 0x1410
        SYNC
        CR4_DE 1
ud_at:  STORE_DR 4, 0x1418              # #UD; the handler clears CR4.DE and the MOV runs again
        SYNC
        SET_DR6 0xffff0ff2              # B1
        SYNC                            # part c: the host single-steps from here
p_0:    nop
.if .LBITS == 64
p_rd:   mov     rax, dr4
p_st:   mov     qword ptr [0x1420], rax
.else
p_rd:   mov     eax, dr4
p_st:   mov     dword ptr [0x1420], eax
.endif
p_end:  nop
        SYNC
        EXIT    0
ud_handler:
        inc     byte ptr [0x1202]
        STORE_STACK 0x1220
        CR4_DE 0
        IRET_
