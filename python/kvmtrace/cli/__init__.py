"""The kvmtrace command line (typer + rich).

::

    kvmtrace demo [--out FILE] [--events N]
    kvmtrace trace GUEST [--asm | --elf | --raw] [--mode M] [--single-step] [--break ADDR[:kind[:len]]]...
                   [--sw-break ADDR]... [--max-events N] [--stop-at ADDR|SYMBOL] [--timeout S]
                   [--registers rip,rsp] [--out DIR.parquet] [--part-rows N] [--force]
                   [--window SYM[:N|:until=SYM2][:repeat=K][:irq]] [--ring N]
    kvmtrace boot KERNEL [--multiboot] [--initrd F] [--cmdline S] [--memory 512M] [--break SYM]...
                  [--steps N] [--window SPEC] [--ring N] [--out DIR.parquet] [--timeout S] [--irqchip]
    kvmtrace show FILE [--rows N] [--disasm] [--elf GUEST] [--run ID]
    kvmtrace analyze FILE [--json] [--run ID]
    kvmtrace export FILE (--perfetto OUT.json | --parquet OUT.parquet) [--elf GUEST | --asm GUEST] [--run ID]
    kvmtrace conformance [--scenario X]... [--mode M]... [--json F] [--markdown F] [--junit F] [--verbose]
                         [--compare A.json B.json]
    kvmtrace diff GUEST [--mode M] [--max-steps N] [--json F]
    kvmtrace fuzz --programs N [--seed S] [--workers W | --scheduler ADDR] [--corpus DIR] [--json F]
    kvmtrace bench [--quick]

Layout: :mod:`.app` (the typer app, ``run``/``main``, exit codes), :mod:`.output`
(consoles, errors), :mod:`.args` (argument parsing), :mod:`.summary` (tables),
:mod:`.commands` (one module per command).
"""

from __future__ import annotations

from kvmtrace.cli.app import app, main, run

__all__ = ["app", "main", "run"]
