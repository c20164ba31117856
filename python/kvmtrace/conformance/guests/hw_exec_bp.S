# hw_exec_bp: one instruction-breakpoint target, reached after one instruction.
# The host restarts at _start for each slot, so a breakpoint that does not fire
# does not spoil the next slot's check (the run then stops at the SYNC).
_start:
        nop
bp_target:
        nop
        nop
        SYNC
        EXIT    0
