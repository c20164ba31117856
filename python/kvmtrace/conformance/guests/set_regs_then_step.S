# set_regs_then_step: the host moves rip with KVM_SET_REGS between single-steps
# (forward over c..d, then back to b); stepping follows the new rip.
_start:
a:      nop
b:      nop
c:      nop
d:      nop
e:      nop
f:      nop
g_:     nop
h:      SYNC
        EXIT    0
