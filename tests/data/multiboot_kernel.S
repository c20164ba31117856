/* The project's own Multiboot v1 test kernel (GNU as, 32-bit): checks the boot
 * state the spec promises, talks to COM1 (waiting for LSR.THRE), reads fw_cfg's
 * signature and NB_CPUS, sees one LAPIC timer interrupt pending, then exits through
 * isa-debug-exit with 0x21 (exit status (0x21 << 1) | 1). A failed check exits
 * with its own code (0x10..0x1f) instead. */
        .set COM1, 0x3f8
        .set FW_CFG_SEL, 0x510
        .set FW_CFG_DATA, 0x511
        .set LAPIC, 0xfee00000
        .set TIMER_VECTOR, 0x40

        .section .multiboot, "a"
        .align 4
        .long 0x1badb002                 /* magic */
        .long 0                          /* flags: ELF layout */
        .long -0x1badb002                /* checksum */

        .text
        .code32
        .globl _start
_start:
        cmp $0x2badb002, %eax
        jne fail_magic
        mov %ebx, %esi                   /* the information structure */
        testl $1, (%esi)                 /* flags.mem */
        jz fail_info
        lgdt gdt_desc
        ljmp $0x08, $1f
1:      mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $stack_top, %esp
        call uart_init
        mov $hello, %ebx
        call puts
        mov 16(%esi), %ebx               /* cmdline */
        call puts
        mov $newline, %ebx
        call puts

        /* fw_cfg: signature "QEMU", then the CPU count */
        mov $FW_CFG_SEL, %dx
        xor %ax, %ax
        out %ax, %dx
        mov $FW_CFG_DATA, %dx
        xor %ecx, %ecx
        mov $4, %edi
2:      in %dx, %al
        shl $8, %ecx
        mov %al, %cl
        dec %edi
        jnz 2b
        cmp $0x51454d55, %ecx            /* 'Q','E','M','U' read in order */
        jne fail_fwcfg
        mov $FW_CFG_SEL, %dx
        mov $5, %ax
        out %ax, %dx
        mov $FW_CFG_DATA, %dx
        in %dx, %al
        add $'0', %al
        mov %al, cpus_digit
        mov $cpus, %ebx
        call puts

        /* The LAPIC timer: a one-shot count with interrupts off; its interrupt
         * shows as pending in the IRR (no handler, so no IRET: this host's KVM
         * cannot emulate a 32-bit IRET). */
        movl $0x1ff, LAPIC + 0xf0        /* SVR: enable, spurious vector 0xff */
        movl $0xb, LAPIC + 0x3e0         /* divide by 1 */
        movl $TIMER_VECTOR, LAPIC + 0x320 /* LVT timer: one-shot */
        movl $100000, LAPIC + 0x380      /* initial count */
3:      testl $1 << (TIMER_VECTOR % 32), LAPIC + 0x200 + 0x10 * (TIMER_VECTOR / 32)
        jz 3b
        mov $timer_ok, %ebx
        call puts
        mov $0x21, %al
        jmp exit

fail_magic: mov $0x10, %al
        jmp exit
fail_info:  mov $0x11, %al
        jmp exit
fail_fwcfg: mov $0x12, %al
exit:   out %al, $0xf4
        hlt
        jmp exit

uart_init:
        mov $COM1 + 3, %dx
        mov $0x80, %al                   /* DLAB */
        out %al, %dx
        mov $COM1, %dx
        mov $1, %al                      /* 115200 baud */
        out %al, %dx
        mov $COM1 + 3, %dx
        mov $0x03, %al                   /* 8N1, DLAB off */
        out %al, %dx
        ret

/* puts(ebx = NUL-terminated string), each byte once LSR.THRE says the UART is ready */
puts:   mov (%ebx), %cl
        test %cl, %cl
        jz 2f
1:      mov $COM1 + 5, %dx
        in %dx, %al
        test $0x20, %al
        jz 1b
        mov $COM1, %dx
        mov %cl, %al
        out %al, %dx
        inc %ebx
        jmp puts
2:      ret

        .data
        .align 8
gdt:    .quad 0
        .quad 0x00cf9b000000ffff         /* 0x08 code32 */
        .quad 0x00cf93000000ffff         /* 0x10 data */
gdt_desc:
        .word 3 * 8 - 1
        .long gdt
hello:  .asciz "kvmtrace multiboot kernel: cmdline="
newline: .asciz "\n"
cpus:   .ascii "cpus="
cpus_digit: .asciz "?\n"
timer_ok: .asciz "lapic timer ok\n"

        .bss
        .align 16
        .skip 4096
stack_top:
