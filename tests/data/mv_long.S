# Multi-vCPU stress guest, long mode (tests/test_multivcpu.py).
# Every vCPU runs this same loop on its own stack; rdi holds the vCPU index at
# reset. Control flow does not depend on the index, so each vCPU's pc sequence
# equals a single-vCPU run's. A vCPU whose stack were shared or clobbered would
# pop another value than it pushed and leave through `broken` (port 0xF4 write,
# which ends the whole run), so the pc sequences would differ.
_start:
    mov %rdi, %rbx
    xor %eax, %eax
outer:
    mov $7, %ecx
inner:
    push %rbx
    add %rcx, %rax
    pop %rdx
    cmp %rbx, %rdx
    jne broken
    dec %ecx
    jnz inner
    jmp outer
broken:
    out %al, $0xf4
