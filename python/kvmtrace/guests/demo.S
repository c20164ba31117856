# The demo guest (long mode): prints a greeting on the debug console (port 0xE9),
# computes fib(12) recursively and a checksum over a buffer, prints the results and
# exits through the debug-exit port 0xF4 with fib(12) & 0xff.
# Functions carry .type/.size so single-step traces turn into function slices.

        .intel_syntax noprefix
        .text
        .globl _start
_start:
        lea     rsi, [rip + greeting]
        call    puts
        mov     edi, 12
        call    fib
        mov     r12, rax
        call    checksum
        mov     r13, rax
        lea     rsi, [rip + done_msg]
        call    puts
        mov     rax, r12
        out     0xf4, al
        hlt

        .type   puts, @function
puts:                               # rsi = NUL-terminated string
        mov     al, [rsi]
        test    al, al
        jz      1f
        out     0xe9, al
        inc     rsi
        jmp     puts
1:      ret
        .size   puts, . - puts

        .type   fib, @function
fib:                                # rax = fib(rdi), recursively
        cmp     rdi, 2
        jb      2f
        push    rdi
        dec     rdi
        call    fib
        pop     rdi
        push    rax
        sub     rdi, 2
        call    fib
        pop     rcx
        add     rax, rcx
        ret
2:      mov     rax, rdi
        ret
        .size   fib, . - fib

        .type   checksum, @function
checksum:                           # rax = sum of 64 bytes at buffer, rotated
        lea     rsi, [rip + buffer]
        xor     eax, eax
        mov     ecx, 64
3:      movzx   edx, byte ptr [rsi]
        add     rax, rdx
        rol     rax, 3
        inc     rsi
        dec     ecx
        jnz     3b
        ret
        .size   checksum, . - checksum

greeting:  .asciz "hello from the kvmtrace demo guest\n"
done_msg:  .asciz "fib(12) and checksum done\n"
buffer:    .fill 64, 1, 0x5a
