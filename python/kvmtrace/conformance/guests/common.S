# Support code shared by every conformance guest (GNU as, Intel syntax).
#
# The runner prepends ".intel_syntax noprefix" and ".set .LBITS, 16|32|64" (the
# bitness of the mode) and appends the exception stubs exc_0 .. exc_31, which it
# installs in the IVT/IDT so that an exception the host should have intercepted
# ends the run visibly instead of running off into zeroed memory.
#
# DATA page (guest-physical = linear in every mode):
#   0x1000 .. 0x10ff  values the guest records for the runner (RESULT_* below)
#   0x1100 .. 0x11ff  data-breakpoint targets
#   0x1f00 .. 0x1f17  the exception stubs' record: vector, top two stack slots
#
# Ports: 0xF4 ends the run with the byte written (0x00 done, 0x41 a scenario's
# own handler ran, 0x80|vector an unexpected guest exception). HLT is the sync
# point between the host's steps: it completes before KVM exits, so the host can
# reprogram KVM_SET_GUEST_DEBUG with no half-finished instruction pending.

.macro EXIT code
        mov     al, \code
        out     0xf4, al
        hlt
.endm

.macro SYNC
        hlt
.endm

# The guest's own DR6 -> [off] (4 bytes outside long mode, 8 in long mode).
.macro STORE_DR6 off
.if .LBITS == 64
        mov     rax, dr6
        mov     qword ptr [\off], rax
.else
        mov     eax, dr6
        mov     dword ptr [\off], eax
.endif
.endm

# DR6 <- value (a 32-bit immediate; zero-extended in long mode).
.macro SET_DR6 value
        mov     eax, \value
.if .LBITS == 64
        mov     dr6, rax
.else
        mov     dr6, eax
.endif
.endm

# The two slots at the top of the stack -> [off], [off+8] (slot-sized stores).
.macro STORE_STACK off
.if .LBITS == 16
        mov     bp, sp
        mov     ax, word ptr [bp]
        mov     word ptr [\off], ax
        mov     ax, word ptr [bp+2]
        mov     word ptr [\off+8], ax
.elseif .LBITS == 32
        mov     eax, dword ptr [esp]
        mov     dword ptr [\off], eax
        mov     eax, dword ptr [esp+4]
        mov     dword ptr [\off+8], eax
.else
        mov     rax, qword ptr [rsp]
        mov     qword ptr [\off], rax
        mov     rax, qword ptr [rsp+8]
        mov     qword ptr [\off+8], rax
.endif
.endm

# A handler the scenario installs for an exception it expects the guest to take:
# record the vector, the guest's DR6 and the return address, then exit with 0x41.
.macro RECORDING_HANDLER name, vector
\name:
        mov     byte ptr [0x1010], \vector
        STORE_DR6 0x1018
        STORE_STACK 0x1020
        EXIT    0x41
.endm

# ---------------------------------------------------------------------------
# Sync port, IRET, the guest's own handlers, ring 3 and the x2APIC.
#
# More of the DATA page:
#   0x1200 .. 0x120f  counters: 0x1200 #DB, 0x1201 #BP, 0x1202 #UD, 0x1204 interrupts;
#                     0x1205 DB_LIMIT (clear TF after this many #DB), 0x1206 DB_DISARM
#                     (DR7 <- 0x400 in the #DB handler), 0x1208 a scenario's own counter
#   0x1210 .. 0x123f  scenario values (0x1210 the CPL, 0x1218 #BP return, 0x1220 #UD return)
#   0x1280            a GDTR image for ENTER_USER
#   0x1300 .. 0x13ff  the #DB log: 16 entries of [return address, DR6] (8 bytes each)
#   0x1400 .. 0x14ff  debug registers the guest reads back
# ---------------------------------------------------------------------------

# An OUT to the sync port: a sync point where HLT cannot be one (in-kernel irqchip, ring 3).
.macro PSYNC
        out     0xe6, al
.endm

.macro IRET_
.if .LBITS == 64
        iretq
.else
        iret
.endif
.endm

# DRn <- value (a 32-bit immediate, zero-extended in long mode).
.macro SET_DR n, value
        mov     eax, \value
.if .LBITS == 64
        mov     dr\n, rax
.else
        mov     dr\n, eax
.endif
.endm

# DRn -> [off] (4 bytes, 8 in long mode).
.macro STORE_DR n, off
.if .LBITS == 64
        mov     rax, dr\n
        mov     qword ptr [\off], rax
.else
        mov     eax, dr\n
        mov     dword ptr [\off], eax
.endif
.endm

# The guest's own #DB handler: log [return address, DR6] at 0x1300 + 16*n, count the #DB
# at 0x1200, reset DR6 to 0xffff0ff0 (so each entry holds one event's conditions),
# disarm DR7 if DB_DISARM is set (a real-mode IRET cannot restore RF, so an
# instruction breakpoint at the return address would fire again), and clear TF in the
# saved flags once DB_LIMIT #DBs were logged. The log holds the first 16.
.macro DB_RECORDER name
\name:
.if .LBITS == 64
        push    rax
        push    rcx
        movzx   ecx, byte ptr [0x1200]
        and     ecx, 15
        shl     ecx, 4
        mov     rax, qword ptr [rsp+16]
        mov     qword ptr [0x1300+rcx], rax
        mov     rax, dr6
        mov     qword ptr [0x1308+rcx], rax
        mov     eax, 0xffff0ff0
        mov     dr6, rax
        inc     byte ptr [0x1200]
        mov     al, byte ptr [0x1200]
        cmp     al, byte ptr [0x1205]
        jb      1f
        and     qword ptr [rsp+32], ~0x100
1:      cmp     byte ptr [0x1206], 0
        je      2f
        mov     eax, 0x400
        mov     dr7, rax
2:      pop     rcx
        pop     rax
        iretq
.elseif .LBITS == 32
        push    eax
        push    ecx
        movzx   ecx, byte ptr [0x1200]
        and     ecx, 15
        shl     ecx, 4
        mov     eax, dword ptr [esp+8]
        mov     dword ptr [0x1300+ecx], eax
        mov     eax, dr6
        mov     dword ptr [0x1308+ecx], eax
        mov     eax, 0xffff0ff0
        mov     dr6, eax
        inc     byte ptr [0x1200]
        mov     al, byte ptr [0x1200]
        cmp     al, byte ptr [0x1205]
        jb      1f
        and     dword ptr [esp+16], ~0x100
1:      cmp     byte ptr [0x1206], 0
        je      2f
        mov     eax, 0x400
        mov     dr7, eax
2:      pop     ecx
        pop     eax
        iret
.else
        push    eax
        push    bx
        push    bp
        mov     bp, sp
        movzx   bx, byte ptr [0x1200]
        and     bx, 15
        shl     bx, 4
        mov     ax, word ptr [bp+8]
        mov     word ptr [0x1300+bx], ax
        mov     eax, dr6
        mov     dword ptr [0x1308+bx], eax
        mov     eax, 0xffff0ff0
        mov     dr6, eax
        inc     byte ptr [0x1200]
        mov     al, byte ptr [0x1200]
        cmp     al, byte ptr [0x1205]
        jb      1f
        and     word ptr [bp+12], ~0x100
1:      cmp     byte ptr [0x1206], 0
        je      2f
        mov     eax, 0x400
        mov     dr7, eax
2:      pop     bp
        pop     bx
        pop     eax
        iret
.endif
.endm

# The guest's own #BP handler: count at 0x1201, the return address -> 0x1218.
.macro BP_RECORDER name
\name:
        inc     byte ptr [0x1201]
        STORE_STACK 0x1218
        IRET_
.endm

# Reset the handlers' counters and log; DB_LIMIT and DB_DISARM as given.
.macro RESET_COUNTERS limit=16, disarm=0
        mov     dword ptr [0x1200], 0
        mov     byte ptr [0x1205], \limit
        mov     byte ptr [0x1206], \disarm
.endm

# TF on / off through the flags on the stack (POPF sets TF: the first trap follows the
# instruction after the POPF, SDM §18.3.1.4).
.macro TF_ON
.if .LBITS == 64
        pushfq
        or      qword ptr [rsp], 0x100
        popfq
.elseif .LBITS == 32
        pushfd
        or      dword ptr [esp], 0x100
        popfd
.else
        pushf
        mov     bp, sp
        or      word ptr [bp], 0x100
        popf
.endif
.endm

# x2APIC on (IA32_APIC_BASE.EN|EXTD), software-enabled (SVR 0x1ff), TPR 0; the legacy
# PIC masked (its ports are handled in the kernel: no exits), so only the LAPIC interrupts.
.macro X2APIC_ON
        mov     al, 0xff
        out     0x21, al
        out     0xa1, al
        mov     ecx, 0x1b
        rdmsr
        or      eax, 0xc00
        wrmsr
        mov     ecx, 0x80f
        mov     eax, 0x1ff
        xor     edx, edx
        wrmsr
        mov     ecx, 0x808
        xor     eax, eax
        wrmsr
.endm

# A fixed self-IPI of vector 0x40 through the x2APIC ICR (pending until IF=1).
.macro SELF_IPI
        mov     ecx, 0x830
        mov     eax, 0x40040
        xor     edx, edx
        wrmsr
.endm

# The interrupt handler of vector 0x40: count at 0x1204, x2APIC EOI, return.
.macro IRQ_HANDLER name
\name:
.if .LBITS == 64
        push    rax
        push    rcx
        push    rdx
.else
        push    eax
        push    ecx
        push    edx
.endif
        inc     byte ptr [0x1204]
        mov     ecx, 0x80b
        xor     eax, eax
        xor     edx, edx
        wrmsr
.if .LBITS == 64
        pop     rdx
        pop     rcx
        pop     rax
.else
        pop     edx
        pop     ecx
        pop     eax
.endif
\name\()_end:
        IRET_
.endm

# Enter ring 3 at \target with IOPL 3 (protected and long mode): add DPL-3 code and data
# descriptors (0x28 code32, 0x30 data, 0x38 code64) and a TSS (0x40, at 0x1800, ring-0
# stack 0x7800) to the GDT at 0x10000 and load them, so an exception in ring 3 reaches
# the catch-all stubs instead of shutting the guest down. The TSS's I/O bitmap allows
# ports 0-0x407 (the bitmap decides only where CPL > IOPL; IOPL itself is checked from
# the flags ring 3 reads, see USER_PROLOGUE). In long mode also set U/S in the
# page-table entries that map the first 2 MiB.
.macro ENTER_USER target
        mov     dword ptr [0x10028], 0x0000ffff
        mov     dword ptr [0x1002c], 0x00cffa00
        mov     dword ptr [0x10030], 0x0000ffff
        mov     dword ptr [0x10034], 0x00cff200
        mov     dword ptr [0x10038], 0x0000ffff
        mov     dword ptr [0x1003c], 0x00affa00
        mov     dword ptr [0x10040], 0x180000e9
        mov     dword ptr [0x10044], 0x00008900
        mov     dword ptr [0x10048], 0
        mov     dword ptr [0x1004c], 0
        mov     dword ptr [0x1804], 0x7800
        mov     dword ptr [0x1808], 0x10
        mov     word ptr [0x1866], 0x68
        mov     byte ptr [0x18e9], 0xff
        mov     word ptr [0x1280], 0x4f
        mov     dword ptr [0x1282], 0x10000
        mov     dword ptr [0x1286], 0
        lgdt    [0x1280]
        mov     ax, 0x40
        ltr     ax
.if .LBITS == 64
        mov     dword ptr [0x1808], 0
        or      dword ptr [0x12000], 4
        or      dword ptr [0x13000], 4
        or      dword ptr [0x14000], 4
        mov     rax, cr3
        mov     cr3, rax
        push    0x33
        push    0x7000
        push    0x3002
        push    0x3b
        push    OFFSET \target
        iretq
.else
        push    0x33
        push    0x7000
        push    0x3002
        push    0x2b
        push    OFFSET \target
        iret
.endif
.endm

# First thing in ring 3: the DPL-3 data segment (IRET to an outer ring nulls DS/ES), the
# CPL -> 0x1210 and the flags ring 3 runs with -> 0x1214 (IRET loaded IOPL 3, IF 0).
.macro USER_PROLOGUE
        mov     ax, 0x33
        mov     ds, ax
        mov     es, ax
        mov     ax, cs
        and     al, 3
        mov     byte ptr [0x1210], al
.if .LBITS == 64
        pushfq
        pop     rax
.else
        pushfd
        pop     eax
.endif
        mov     dword ptr [0x1214], eax
.endm
