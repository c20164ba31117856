"""``kvmtrace show``: a stored trace's run facts and first events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from kvmtrace.cli.args import read_stored_trace, symbols_arg
from kvmtrace.cli.output import console
from kvmtrace.cli.summary import facts_table

NAME = "show"


def command(
    file: Path = typer.Argument(..., help="A trace: Parquet file, dataset directory, or directory of runs."),
    rows: int = typer.Option(10, "--rows", "-n", min=0, help="How many events to print."),
    run: str | None = typer.Option(None, "--run", help="Run id in a directory of run=<id> datasets."),
    disasm: bool = typer.Option(False, "--disasm", "-d", help="Add the instruction at each pc (iced-x86)."),
    elf: Path | None = typer.Option(None, "--elf", metavar="GUEST", help="Symbols from this ELF (default: the "
                                                                         "symbols stored with the trace)."),
) -> None:
    """Print a stored trace's run facts and its first events."""
    from kvmtrace.symbols import Disassembler, resolve_program

    t = read_stored_trace(file, run)
    program = resolve_program(t, symbols_arg(elf, None, t.mode))
    dis = Disassembler.for_trace(t, program) if disasm else None
    console.print(facts_table(t, str(file)))
    if rows and len(t):
        console.print(events_table(t, rows, program, dis))


def events_table(t: Any, rows: int, program: Any, dis: Any) -> Table:
    """The first ``rows`` events, symbolised (and disassembled when ``dis`` is given)."""
    from kvmtrace.symbols import dr6_causes

    table = Table(title=f"first {min(rows, len(t))} of {len(t):,} events")
    cols = ["seq", "vcpu", "time_us", "exc", "pc", "symbol", *(["instruction"] if dis else []), "dr6", "causes",
            "dr7", *t.register_names]
    for c in cols:
        table.add_column(c)
    t0 = int(t.time_ns[0])
    for e in t.head(rows):
        table.add_row(str(e.seq), str(e.vcpu), f"{(e.time_ns - t0) / 1000:.1f}", str(e.exception), f"{e.pc:#x}",
                      Text(program.symbolize(e.pc) if program is not None else ""),
                      *([Text(dis.text(e.pc))] if dis else []), f"{e.dr6:#x}", dr6_causes(e.dr6),
                      f"{e.dr7:#x}", *(f"{e.registers[r]:#x}" for r in t.register_names))
    return table
