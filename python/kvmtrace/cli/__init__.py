"""The kvmtrace command line (typer + rich).

::

    kvmtrace demo [--out FILE] [--events N]
    kvmtrace trace GUEST [--asm | --elf | --raw] [--mode M] [--single-step] [--break ADDR[:kind[:len]]]...
                   [--sw-break ADDR]... [--max-events N] [--stop-at ADDR|SYMBOL] [--timeout S]
                   [--registers rip,rsp] [--out DIR.parquet] [--part-rows N] [--force]
    kvmtrace show FILE [--rows N] [--disasm] [--elf GUEST] [--run ID]
    kvmtrace analyze FILE [--json] [--run ID]
    kvmtrace export FILE (--perfetto OUT.json | --parquet OUT.parquet) [--elf GUEST | --asm GUEST] [--run ID]
    kvmtrace conformance [--scenario X]... [--mode M]... [--json FILE] [--markdown FILE]
    kvmtrace bench [--quick]

Layout: :mod:`.app` (the typer app, ``run``/``main``, exit codes), :mod:`.output`
(consoles, errors), :mod:`.args` (argument parsing), :mod:`.summary` (tables),
:mod:`.commands` (one module per command).
"""

from __future__ import annotations

from kvmtrace.cli.app import app, main, run

__all__ = ["app", "main", "run"]
