# single_step_cpl3: ring-3 code with IOPL 3 (protected and long mode), host single-step:
# plain instructions, CPUID (emulated by KVM) and an IN that exits to userspace, as the
# usermode runs of kvm-unit-tests x86/debug.c. Ring 3 syncs through the sync port (HLT
# would #GP); the step expectations end before the final sync OUT.
_start:
        ENTER_USER user
user:
        USER_PROLOGUE
        PSYNC                           # the host turns single-step on here
u0:     nop
u1:     xor     eax, eax
u2:     cpuid
u3:     mov     dx, 0x3fd
u4:     in      al, dx                  # no device: exits to userspace
u5:     cli                             # IOPL 3 allows CLI/STI in ring 3
u6:     sti
u7:     nop
u8:     PSYNC
        EXIT    0
