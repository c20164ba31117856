# Multi-vCPU stress guest, real mode (tests/test_multivcpu.py): the loop of
# mv_long.S with 16-bit registers. di holds the vCPU index, ss:sp its own stack.
_start:
    mov %di, %bx
    xor %ax, %ax
outer:
    mov $7, %cx
inner:
    push %bx
    add %cx, %ax
    pop %dx
    cmp %bx, %dx
    jne broken
    dec %cx
    jnz inner
    jmp outer
broken:
    out %al, $0xf4
