"""`kvmtrace demo`: single-step the bundled demo guest and summarise the trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from kvmtrace import guests
from kvmtrace._core import GuestDebug
from kvmtrace.machine import Machine
from kvmtrace.trace import Trace

DR6_CLEAN = 0xFFFF0FF0


def dr6_causes(v: int) -> str:
    names = [n for bit, n in ((0, "B0"), (1, "B1"), (2, "B2"), (3, "B3"), (13, "BD"), (14, "BS"), (15, "BT")) if v >> bit & 1]
    if not v >> 16 & 1:
        names.append("RTM=0")
    return "|".join(names) or "-"


def save(trace: Trace, out: Path) -> Path:
    """Write the trace: Parquet when pyarrow is installed, else .npz."""
    try:
        from kvmtrace.export import write_parquet
    except ImportError:
        write_parquet = None  # type: ignore[assignment]
    if write_parquet is not None and out.suffix == ".parquet":
        try:
            write_parquet(trace, out)
            return out
        except ImportError:
            pass
    out = out.with_suffix(".npz")
    np.savez(out, **trace.to_numpy())
    return out


def run_demo(out: Path, show: int = 10, console: Console | None = None) -> Trace:
    console = console or Console()
    with Machine(mode="long", memory_size=16 << 20) as m:
        prog = m.load_asm(guests.source("demo"))
        trace = m.trace(GuestDebug(single_step=True), registers=("rip", "rsp", "rax"), timeout=60)
    console.print(f"[bold]guest console:[/] {trace.console_text.rstrip()}")
    table = Table(title=f"first {min(show, len(trace))} of {len(trace):,} events")
    for col in ("seq", "vcpu", "exc", "pc", "symbol", "dr6", "causes", "dr7", "rsp", "rax"):
        table.add_column(col)
    for e in trace.head(show):
        table.add_row(str(e.seq), str(e.vcpu), str(e.exception), f"{e.pc:#x}", prog.symbolize(e.pc),
                      f"{e.dr6:#x}", dr6_causes(e.dr6), f"{e.dr7:#x}", f"{e.registers['rsp']:#x}",
                      f"{e.registers['rax']:#x}")
    console.print(table)
    console.print(
        f"stop reason: [bold]{trace.stop_reason.value}[/] (exit code {trace.exit_code}), "
        f"{trace.event_count:,} events in {trace.elapsed_s:.3f} s = [bold]{trace.events_per_s:,.0f} events/s[/], "
        f"{trace.bytes_per_event:.1f} bytes/event in memory"
    )
    summary = Table(title="DR6 values")
    for col in ("dr6", "causes", "events", "architectural for a single-step trap?"):
        summary.add_column(col)
    for v, n in sorted(trace.dr6_summary().items(), key=lambda kv: -kv[1]):
        ok = v == (DR6_CLEAN | 1 << 14)
        summary.add_row(f"{v:#x}", dr6_causes(v), f"{n:,}", "[green]yes[/]" if ok else "[red]no[/] (expected 0xffff4ff0)")
    console.print(summary)
    path = save(trace, out)
    console.print(f"trace written to [bold]{path}[/]")
    return trace
