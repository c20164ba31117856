# bus_lock: a locked read-modify-write that splits a cache line (0x103c..0x1043 across
# 0x1040), with no split-lock or bus-lock detection enabled: no #AC, no #DB, the value
# is written (kvm-unit-tests x86/debug.c bus_lock_test). Part b repeats it under host
# single-step: the step trap's DR6 is BS only, bit 11 (BLD, active low) still 1.
# Part c (protected, long) does it again in ring 3 (Bus Lock Detect is a CPL-3 feature).
.macro SPLIT_LOCK value
.if .LBITS == 64
        mov     qword ptr [0x103c], 0
        xor     eax, eax
        mov     rcx, \value
        lock cmpxchg qword ptr [0x103c], rcx
.else
        mov     dword ptr [0x103e], 0
        xor     eax, eax
        mov     ecx, \value
        lock cmpxchg dword ptr [0x103e], ecx
.endif
.endm
_start:
        SPLIT_LOCK 0x12345678
        SYNC
part_b:
        mov     dword ptr [0x103c], 0
        mov     dword ptr [0x1040], 0
        xor     eax, eax
        mov     ecx, 0x2468ace0
        SYNC                            # the host single-steps from here
.if .LBITS == 64
        nop
b_lock: lock cmpxchg qword ptr [0x103c], rcx
.else
        nop
b_lock: lock cmpxchg dword ptr [0x103e], ecx
.endif
b_end:  nop
        SYNC
part_c:
.if .LBITS == 16
        EXIT    0
.else
        ENTER_USER user
user:
        USER_PROLOGUE
        SPLIT_LOCK 0x13579bdf
        PSYNC
        EXIT    0
.endif
