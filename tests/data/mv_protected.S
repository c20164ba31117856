# Multi-vCPU stress guest, protected mode (tests/test_multivcpu.py): the loop of
# mv_long.S with 32-bit registers. edi holds the vCPU index, esp its own stack.
_start:
    mov %edi, %ebx
    xor %eax, %eax
outer:
    mov $7, %ecx
inner:
    push %ebx
    add %ecx, %eax
    pop %edx
    cmp %ebx, %edx
    jne broken
    dec %ecx
    jnz inner
    jmp outer
broken:
    out %al, $0xf4
