"""The kvmtrace command line (typer + rich)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kvmtrace.exceptions import KvmTraceError

app = typer.Typer(
    help="kvmtrace: vCPU debug tracing on Linux KVM (single-step, breakpoints, DR6 conformance).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """kvmtrace: vCPU debug tracing on Linux KVM."""


def fail(msg: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


@app.command()
def demo(
    out: Path = typer.Option(Path("kvmtrace-demo.parquet"), "--out", "-o", help="Where to write the trace (.parquet, or .npz without pyarrow)."),
    events: int = typer.Option(10, "--events", "-n", help="How many events to print."),
) -> None:
    """Single-step the bundled demo guest: print events, events/s, a DR6 summary; save the trace."""
    from kvmtrace.demo import run_demo

    run_demo(out=out, show=events, console=console)


def main() -> None:
    try:
        app()
    except KvmTraceError as e:
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
