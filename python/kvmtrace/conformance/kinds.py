"""The kinds of expected event, with what they are and where the expectation comes from.

A scenario tags each expectation with a kind (``Expect(kind=...)``); a finding groups
the differences of every run by aspect, kind and the pattern of what was observed
instead (:mod:`kvmtrace.conformance.findings`). ``titles`` gives a finding's title
for a known pattern; any other pattern gets a title made from ``what``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    what: str
    cite: str
    #: pattern -> finding title (patterns: see findings.pattern_of).
    titles: dict[str, str] = field(default_factory=dict)
    #: A kind whose event is a special case of another's: when it is never reported at all,
    #: the more general kind's finding explains it (a deferred data breakpoint that never
    #: comes is a data breakpoint that never fires).
    missing_as: str | None = None


STEP_CITE = ("SDM §18.3.1.4 (single-step trap after every instruction, DR6.BS); APM §13.1.1.3; KVM api.rst "
             "KVM_GUESTDBG_SINGLESTEP")
EXEC_CITE = "SDM §18.3.1.1 (instruction breakpoint: fault, pc at the instruction, DR6.Bn); APM §13.1.1.3"
DATA_CITE = "SDM §18.3.1.2 (data breakpoint: trap, pc after the access, DR6.Bn), §18.2.5; APM §13.1.1.4"

KINDS: dict[str, Kind] = {
    "step": Kind("the single-step trap after an instruction", STEP_CITE,
                 {"missing": "single-step traps are lost", "extra_debug": "extra single-step exits"}),
    "step_emulated": Kind("the single-step trap after an instruction KVM emulates in the kernel (CPUID, RDMSR, "
                          "WRMSR incl. TSC_DEADLINE, in-kernel port I/O)",
                          STEP_CITE + "; KVM commit f7f39c50edb9 and selftests x86/debug_regs.c (fastpath WRMSR)",
                          {"missing": "the single-step trap after an in-kernel emulated instruction is lost"}),
    "step_cpl3": Kind("the single-step trap after a ring-3 instruction (IOPL 3)",
                      STEP_CITE + "; kvm-unit-tests x86/debug.c (usermode single-step)",
                      {"missing": "single-step traps are lost in ring 3"}),
    "cpl3_entry": Kind("entering ring 3 with IRET (CPL 3, IOPL 3, IF 0 from the frame)",
                       "SDM Vol.2A IRET (from CPL 0 IRET loads IOPL and IF from the frame), Vol.1 §3.4.3.3",
                       {"guest.flags": "ring 3 does not run with the IOPL and IF its IRET frame gave"}),
    "step_after_pio_out": Kind("the single-step trap after an OUT that exits to userspace",
                               STEP_CITE + "; KVM api.rst KVM_EXIT_IO",
                               {"missing": "the single-step trap after an OUT that exits to userspace is lost"}),
    "step_after_pio_in": Kind("the single-step trap after an IN that exits to userspace",
                              STEP_CITE + "; KVM api.rst KVM_EXIT_IO",
                              {"missing": "the single-step trap after an IN that exits to userspace is lost"}),
    "step_after_mmio_store": Kind("the single-step trap after an MMIO store", STEP_CITE + "; KVM api.rst KVM_EXIT_MMIO",
                                  {"missing": "the single-step trap after an MMIO store is lost"}),
    "step_after_mmio_load": Kind("the single-step trap after an MMIO load", STEP_CITE + "; KVM api.rst KVM_EXIT_MMIO",
                                 {"missing": "the single-step trap after an MMIO load is lost"}),
    "step_after_hlt": Kind("the single-step trap after HLT", STEP_CITE + "; SDM Vol.2A HLT"),
    "step_set_regs": Kind("stepping from a rip set with KVM_SET_REGS", STEP_CITE + "; KVM api.rst KVM_SET_REGS",
                          {"missing": "single-step does not follow a rip changed with KVM_SET_REGS"}),
    "mov_ss_step": Kind("the single-step trap MOV SS / POP SS defers past the next instruction",
                        "SDM Vol.3A §6.8.3; APM §8.2.2; kvm-unit-tests x86/debug.c (MOVSS blocking)",
                        {"extra_debug": "MOV SS / POP SS do not suppress the single-step trap"}),
    "mov_ss_data_bp": Kind("the data breakpoint of a MOV SS load, deferred past the next instruction",
                           "SDM Vol.3A §6.8.3, §18.3.1.2; APM §8.2.2", missing_as="data_bp"),
    "mov_ss_guest": Kind("the guest's #DB around MOV SS (watchpoint with ICEBP, INT 1, INT3; general detect)",
                         "SDM Vol.3A §6.8.3, §18.3.1.3; kvm-unit-tests x86/debug.c (MOV SS + watchpoint, "
                         "MOVSS blocking and DR7.GD); CVE-2018-1087, CVE-2018-8897"),
    "code_bp_after_mov_ss": Kind("an instruction breakpoint on the instruction after MOV SS / POP SS "
                                 "(Intel: suppressed, AMD: reported)",
                                 "SDM Vol.3A §6.8.3; APM §8.2.2; kvm-unit-tests x86/emulator.c "
                                 "test_mov_pop_ss_code_db"),
    "exec_bp": Kind("an instruction breakpoint", EXEC_CITE + "; KVM api.rst KVM_GUESTDBG_USE_HW_BP"),
    "multi_bp": Kind("several instruction breakpoints on one instruction, reported together",
                     EXEC_CITE + ", §18.2.3 (every matching Bn is set)"),
    "bp_and_step": Kind("a single-step trap and an instruction breakpoint on the same instruction, in order",
                        STEP_CITE + "; " + EXEC_CITE + "; SDM Vol.3A §6.9 (priority among simultaneous events)"),
    "rf_resume": Kind("resuming with RFLAGS.RF over an instruction breakpoint",
                      "SDM §18.3.1.1 (RF suppresses the instruction breakpoint for one instruction), Vol.1 §3.4.3.3",
                      {"guest.iteration": "RFLAGS.RF set with KVM_SET_REGS does not suppress the instruction "
                                          "breakpoint: it is reported again at once"}),
    "data_bp": Kind("a data breakpoint (write or read/write)", DATA_CITE + "; KVM api.rst KVM_GUESTDBG_USE_HW_BP",
                    {"missing": "data breakpoints never fire"}),
    "io_bp": Kind("an I/O breakpoint (CR4.DE)", "SDM §18.2.4 (R/W=10 with CR4.DE), §18.3.1.2; APM §13.1.1.4",
                  {"missing": "I/O breakpoints never fire"}),
    "guest_data_bp": Kind("a data breakpoint the guest programs itself", DATA_CITE + "; kvm-unit-tests x86/debug.c "
                          "(hw watchpoint)", {"guest.count_db": "data breakpoints the guest programs never fire"}),
    "sw_bp": Kind("the KVM_EXIT_DEBUG of an INT3 with KVM_GUESTDBG_USE_SW_BP",
                  "KVM api.rst KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_USE_SW_BP); selftests x86/debug_regs.c; SDM §18.3.2",
                  {"missing": "INT3 with KVM_GUESTDBG_USE_SW_BP is not intercepted: it reaches the guest's #BP "
                              "handler"}),
    "soft_int": Kind("a software interrupt (INT n, INT3, INT1) delivered to the guest's handler",
                     "SDM Vol.2B INT n/INTO/INT3/INT1, Vol.3A §6.4.2; APM §8.2.2, §8.2.4"),
    "gd": Kind("the general-detect fault of a MOV DRn with DR7.GD", "SDM §18.3.1.3 (fault, pc at the MOV, DR6.BD); "
               "APM §13.1.1.4; selftests x86/debug_regs.c", {"missing": "DR7.GD never faults"}),
    "icebp": Kind("the #DB trap of INT1 (ICEBP)", "SDM Vol.2B INT1, §18.3.1 Table 18-2; APM §8.2.2; "
                  "kvm-unit-tests x86/debug.c (icebp: DR6 = 0xffff0ff0)"),
    "guest_dr6": Kind("the guest's own DR6 across host debug exits", "SDM §18.2.3; APM §13.1.1.3; KVM api.rst "
                      "KVM_SET_GUEST_DEBUG (host events do not reach the guest)"),
    "guest_drs": Kind("the guest's own DR0-DR3/DR6/DR7 and #DB, with host debugging off, on and off again",
                      "SDM §18.2, §18.3.1.1; KVM api.rst KVM_SET_GUEST_DEBUG, KVM_GET_DEBUGREGS; KVM x86.c "
                      "KVM_DEBUGREG_WONT_EXIT"),
    "guest_gd": Kind("the guest's own general detect (DR7.GD: MOV DRn faults, pc at it, DR6.BD)",
                     "SDM §18.3.1.3; APM §13.1.1.4; kvm-unit-tests x86/debug.c",
                     {"guest.dr6": "DR7.GD set by the guest never faults"}),
    "guest_db": Kind("a #DB the guest takes with its own debug registers or TF", "SDM §18.3.1; APM §13.1.1; "
                     "kvm-unit-tests x86/debug.c"),
    "dr6_exit": Kind("the dr6 of an exit: only that exit's cause", "SDM §18.2.3, §18.3.1; KVM api.rst KVM_EXIT_DEBUG"),
    "inject": Kind("an exception injected with KVM_GUESTDBG_INJECT_DB/BP", "KVM api.rst KVM_SET_GUEST_DEBUG; SDM "
                   "Vol.3A §6.12"),
    "inject_pending": Kind("KVM_GUESTDBG_INJECT_DB while an exception is pending (-EBUSY or one correct delivery, "
                           "never #DF)", "KVM api.rst KVM_SET_GUEST_DEBUG; KVM x86.c "
                           "kvm_arch_vcpu_ioctl_set_guest_debug (-EBUSY); SDM Vol.3A §6.15 Table 6-5"),
    "irq_blockirq": Kind("no interrupt handler entered while stepping with KVM_GUESTDBG_BLOCKIRQ",
                         "KVM api.rst KVM_GUESTDBG_BLOCKIRQ; selftests x86/debug_regs.c"),
    "irq_step": Kind("stepping into a pending interrupt's handler without BLOCKIRQ, and back",
                     "SDM Vol.3A §6.8.3 (STI shadow), §6.9 (priority); KVM api.rst KVM_GUESTDBG_BLOCKIRQ"),
    "sti_hlt": Kind("stepping over STI; HLT woken by the LAPIC timer, through its handler and back",
                    "SDM Vol.2A HLT, STI; kvm-unit-tests x86/debug.c singlestep_with_sti_hlt",
                    {"timeout": "single-stepping STI; HLT with a LAPIC timer: no progress after the handler"}),
    "sti_hlt_wake": Kind("HLT waiting for the interrupt that wakes it while single-stepped",
                         "SDM Vol.2A HLT ('the processor ... stops instruction execution' until an interrupt), "
                         "§18.3.1.4; KVM x86.c kvm_emulate_halt",
                         {"pc": "a single-stepped HLT does not wait for the interrupt: the code after it runs first",
                          "timeout": "single-stepping HLT woken by the LAPIC timer makes no progress"}),
    "bus_lock": Kind("a split-lock atomic access with no bus-lock features on: no #AC, no #DB, DR6 bit 11 reads 1",
                     "SDM §18.2.3 (DR6.BLD, bit 11, active low), Vol.3A §8.1.2.2; kvm-unit-tests x86/debug.c "
                     "bus_lock_test"),
    "dr4_alias": Kind("DR4/DR5 alias DR6/DR7 with CR4.DE=0 and #UD with CR4.DE=1",
                      "SDM §18.2.2; APM §13.1.1.2; kvm-unit-tests x86/debug.c"),
    "progress": Kind("the guest running on to its next sync point", "the scenario's guest program",
                     {"timeout": "the guest stops making progress (no exit, nothing to wait for)"}),
}


def kind(name: str | None) -> Kind | None:
    return KINDS.get(name or "")
