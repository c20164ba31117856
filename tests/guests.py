"""Small guest programs shared by the tests (same source in every mode)."""

from __future__ import annotations

MODES = ("real", "protected", "long")

# A counted loop with a label on every instruction, so the architectural pc
# sequence can be computed from the symbols. Exits through port 0xF4.
LOOP = """
_start:
i_mov:  mov $%(n)d, %%ecx
loop:   inc %%eax
i_dec:  dec %%ecx
i_jnz:  jnz loop
after:  mov $0x2a, %%al
i_out:  out %%al, $0xf4
"""


def loop_source(n: int = 5) -> str:
    return LOOP % {"n": n}


def loop_step_pcs(prog, n: int) -> list[int]:
    """The pcs a single-step trace of LOOP reports: the address after each instruction."""
    s = prog.symbol
    pcs = [s("loop")]
    for i in range(n):
        pcs += [s("i_dec"), s("i_jnz"), s("loop") if i < n - 1 else s("after")]
    pcs.append(s("i_out"))
    return pcs


# Four exec breakpoint targets hit in order, the loop running `n` times.
FOUR_TARGETS = """
_start: mov $%(n)d, %%ecx
top:
t0:     inc %%eax
t1:     inc %%ebx
t2:     inc %%edx
t3:     dec %%ecx
        jnz top
        mov $0, %%al
        out %%al, $0xf4
"""


def four_targets(n: int = 3) -> str:
    return FOUR_TARGETS % {"n": n}


CONSOLE = """
_start: mov $'o', %al
        out %al, $0xe9
        mov $'k', %al
        out %al, $0xe9
        mov $'\\n', %al
        out %al, $0xe9
        mov $7, %al
        out %al, $0xf4
"""

# main calls f, f calls g: single-step slices must nest _start > main > f > g.
NESTED = """
    .text
    .globl _start
_start:
    call main
    out %al, $0xf4
    hlt
    .type main, @function
main:
    nop
    call f
    nop
    ret
    .size main, .-main
    .type f, @function
f:
    nop
    call g
    nop
    ret
    .size f, .-f
    .type g, @function
g:
    nop
    nop
    ret
    .size g, .-g
"""
