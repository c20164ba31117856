"""``kvmtrace demo``: single-step the bundled demo guest."""

from __future__ import annotations

from pathlib import Path

import typer

from kvmtrace.cli.output import console

NAME = "demo"


def command(
    out: Path = typer.Option(Path("kvmtrace-demo.parquet"), "--out", "-o",
                             help="Where to write the trace (.parquet, or .npz without pyarrow)."),
    events: int = typer.Option(10, "--events", "-n", help="How many events to print."),
) -> None:
    """Single-step the bundled demo guest: print events, events/s, a DR6 summary; save the trace."""
    from kvmtrace.demo import run_demo

    run_demo(out=out, show=events, console=console)
