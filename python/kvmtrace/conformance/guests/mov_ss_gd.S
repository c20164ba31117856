# mov_ss_gd: MOV SS, then a MOV to DR6 with DR7.GD set and TF set. Part a: the guest's own
# (kvm-unit-tests x86/debug.c singlestep_with_movss_blocking_and_dr7_gd): the
# general-detect fault is not held back by the MOV SS shadow (pc at the MOV, DR6.BD), the
# CPU clears GD when it delivers it, the MOV then runs and single-steps follow. Part b: the
# host's DR7.GD and single-step over the same.
.macro MOV_TO_DR6
.if .LBITS == 64
        mov     dr6, rcx
.else
        mov     dr6, ecx
.endif
.endm
_start:
        RESET_COUNTERS 5
        SET_DR6 0xffff0ff0
        xor     ecx, ecx
        mov     ax, ss
        SET_DR 7, 0x2400                # GD: every MOV DRn faults from here on
        TF_ON
        mov     ss, ax
a_gd:   MOV_TO_DR6
a_1:    nop
a_2:    nop
a_3:    nop
a_4:    nop                             # the handler clears TF after the fifth #DB
        SYNC
        xor     ecx, ecx
        mov     ax, ss
        SYNC                            # part b: the host's GD and single-step
b_mss:  mov     ss, ax
b_gd:   MOV_TO_DR6
b_1:    nop
b_2:    nop
        SYNC
        EXIT    0
        DB_RECORDER db_recorder
