# sti_hlt_timer: host single-step over STI; HLT with the LAPIC timer (one-shot, vector
# 0x40, x2APIC), through the handler and back (kvm-unit-tests x86/debug.c
# singlestep_with_sti_hlt, here with the host's single-step). Part a: the timer's
# interrupt is already pending at STI (HLT ends at once); part b: it fires while HLT
# waits (2M ticks at divide-by-1). With the in-kernel irqchip HLT waits in the kernel.
.macro TIMER_START count
        mov     ecx, 0x838              # initial count: the timer starts
        mov     eax, \count
        xor     edx, edx
        wrmsr
.endm
_start:
        X2APIC_ON
        RESET_COUNTERS
        mov     ecx, 0x832              # LVT timer: vector 0x40, one-shot
        mov     eax, 0x40
        xor     edx, edx
        wrmsr
        mov     ecx, 0x83e              # divide by 1
        mov     eax, 0xb
        wrmsr
        cli
        TIMER_START 1000
poll:   mov     ecx, 0x822              # IRR bits 64-95: wait until vector 0x40 is pending
        rdmsr
        test    eax, 1
        jz      poll
        PSYNC                           # part a: the host single-steps
a_sti:  sti
a_hlt:  hlt
a_end:  nop
        nop
a_done: PSYNC
        cli
        TIMER_START 2000000
        PSYNC                           # part b: the host single-steps
b_sti:  sti
b_hlt:  hlt
b_end:  nop
        nop
b_done: PSYNC
        EXIT    0
        IRQ_HANDLER irq
