# single_step: a mix of plain and KVM-emulated instructions, stepped one by one.
# CPUID and RDMSR exit to KVM, which emulates them and must still report the
# single-step trap (KVM's skip-instruction path); STI opens an interrupt window
# (harmless here: there is no interrupt controller, and BLOCKIRQ asks KVM not to
# inject anything while stepping).
_start:
ss_start:
        sti
ss_1:   xor     eax, eax
ss_2:   cpuid
ss_3:   mov     ecx, 0x1b               # IA32_APIC_BASE: an MSR KVM emulates
ss_4:   rdmsr
ss_5:   cli
ss_6:   nop
ss_end: EXIT    0
