# code_bp_after_mov_ss: an instruction breakpoint on the instruction right after MOV SS
# (and after POP SS outside long mode). Intel inhibits it while the MOV SS shadow is
# active, AMD reports it (kvm-unit-tests x86/emulator.c test_mov_pop_ss_code_db: 0 #DB on
# Intel, 1 on AMD). Part a: the guest's own DR0/DR7; part b: the host's breakpoint.
_start:
        RESET_COUNTERS 16, 1            # the handler disarms DR7 after it logs the #DB
        SET_DR6 0xffff0ff0
        SET_DR 0, "OFFSET g_after"
        SET_DR 7, 0x402                 # G0, execute
        mov     ax, ss
        mov     ss, ax
g_after:
        xor     eax, eax
        SYNC
.if .LBITS != 64
        RESET_COUNTERS 16, 1
        SET_DR 0, "OFFSET p_after"
        SET_DR 7, 0x402
        push    ss
        pop     ss
p_after:
        xor     eax, eax
        SYNC
.endif
        SET_DR 7, 0x400
        mov     ax, ss
        SYNC                            # part b: the host arms DR0 at h_after
h_mss:  mov     ss, ax
h_after:
        xor     eax, eax
        nop
        SYNC
        EXIT    0
        DB_RECORDER db_recorder
