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
