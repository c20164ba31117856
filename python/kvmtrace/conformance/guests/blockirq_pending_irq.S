# blockirq_pending_irq: a pending LAPIC self-IPI (vector 0x40, x2APIC) while the host
# single-steps STI and the instructions after it. Part a, with KVM_GUESTDBG_BLOCKIRQ: no
# step enters the handler; when the host stops stepping the interrupt is taken. Part b,
# without BLOCKIRQ: the step after STI and the one after the shadowed instruction come
# first, then the next step lands in the handler, and stepping returns to the code.
_start:
        X2APIC_ON
        RESET_COUNTERS
        cli
        SELF_IPI                        # pending while IF=0
        PSYNC
a_sti:  sti
a_1:    nop
a_2:    nop
a_3:    nop
a_4:    PSYNC                           # BLOCKIRQ off: the interrupt is taken before this OUT
        cli
        SELF_IPI
        PSYNC
b_sti:  sti
b_1:    nop                             # in STI's shadow
b_2:    nop                             # the interrupt is taken after this one
b_3:    nop
b_4:    nop
b_5:    PSYNC
        EXIT    0
        IRQ_HANDLER irq
