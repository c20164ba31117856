"""``kvmtrace export``: a stored trace as Perfetto/Chrome trace JSON or one Parquet file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from kvmtrace.cli.args import read_stored_trace, symbols_arg
from kvmtrace.cli.output import console, usage

NAME = "export"


def command(
    file: Path = typer.Argument(..., help="A stored trace (Parquet file or dataset directory)."),
    perfetto: Path | None = typer.Option(None, "--perfetto", metavar="OUT.json",
                                         help="Write Chrome trace JSON for ui.perfetto.dev (.gz: compressed)."),
    parquet: Path | None = typer.Option(None, "--parquet", metavar="OUT.parquet",
                                        help="Write the trace as one Parquet file."),
    elf: Path | None = typer.Option(None, "--elf", metavar="GUEST", help="Symbols from this ELF (default: the "
                                                                         "symbols stored with the trace)."),
    asm: Path | None = typer.Option(None, "--asm", metavar="GUEST", help="Symbols from this GNU as source."),
    run: str | None = typer.Option(None, "--run", help="Run id in a directory of run=<id> datasets."),
) -> None:
    """Convert a stored trace: Perfetto/Chrome trace JSON (function slices per vCPU) or one Parquet file."""
    if perfetto is None and parquet is None:
        usage("nothing to export: pass --perfetto OUT.json and/or --parquet OUT.parquet")
    t = read_stored_trace(file, run)
    program = symbols_arg(elf, asm, t.mode)
    if perfetto is not None:
        from kvmtrace.perfetto import to_perfetto

        s = to_perfetto(t, perfetto, program)
        console.print(f"wrote [bold]{escape(str(perfetto))}[/]: {s['slices']:,} function slices, "
                      f"{s['instants']:,} breakpoint instants on {s['vcpus']} vCPU track(s); "
                      f"open it in https://ui.perfetto.dev")
    if parquet is not None:
        from kvmtrace.export import write_parquet

        p = write_parquet(t, parquet, program=program)
        console.print(f"wrote [bold]{escape(str(p))}[/] ({len(t):,} rows)")
