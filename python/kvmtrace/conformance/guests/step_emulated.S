# step_emulated: host single-step, with the in-kernel irqchip, over instructions KVM
# emulates without a userspace exit: CPUID, RDMSR of IA32_APIC_BASE, WRMSR of
# IA32_TSC_DEADLINE (handled on KVM's fastpath, which must still exit for the step:
# selftests x86/debug_regs.c, commit f7f39c50edb9), IN/OUT of the in-kernel PIC's
# mask register and IN of the in-kernel PIT's speaker port.
_start:
        mov     al, 0xff
        out     0x21, al                # mask the PIC (in the kernel: no exit)
        out     0xa1, al
        PSYNC
e0:     nop
e1:     xor     eax, eax
e2:     cpuid
e3:     mov     ecx, 0x1b               # IA32_APIC_BASE
e4:     rdmsr
e5:     mov     ecx, 0x6e0              # IA32_TSC_DEADLINE
e6:     xor     eax, eax
e7:     xor     edx, edx
e8:     wrmsr                           # 0: disarm (the timer is not in deadline mode: ignored)
e9:     in      al, 0x21
e10:    out     0x21, al
e11:    in      al, 0x61
e12:    nop
e13:    PSYNC
        EXIT    0
