"""The live progress line of a running trace.

The engine counts events and exits into a ``kvmtrace._core.Progress`` from its vCPU
threads; rich's ``Live`` refresh thread renders :class:`ProgressLine` from those
counters a few times a second. Nothing runs in Python per chunk or per event, and
the rows never pass through Python on their way to a sink.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.live import Live
from rich.text import Text

from kvmtrace._core import Progress
from kvmtrace.cli.output import err_console

REFRESH_PER_S = 8


class ProgressLine:
    """``tracing: N events  R events/s  S s  [E exits]  [-> dir (P parts)]`` from a Progress counter."""

    def __init__(self, progress: Progress, sink: Any = None) -> None:
        self.progress = progress
        self.sink = sink  # a ParquetSink: its path and parts written so far
        self.started = time.monotonic()

    def text(self) -> str:
        elapsed = time.monotonic() - self.started
        events, exits = self.progress.events, self.progress.exits
        rate = events / elapsed if elapsed > 0 else 0.0
        s = f"tracing: {events:,} events  {rate:,.0f} events/s  {elapsed:,.1f} s"
        if exits != events:  # breakpoint traces: the exits the guest ran between hits
            s += f"  {exits:,} exits"
        if self.sink is not None:
            s += f"  -> {self.sink.path} ({self.sink.parts} parts)"
        return s

    def __rich__(self) -> Text:
        return Text(self.text(), style="cyan")


@contextmanager
def live_progress(sink: Any = None) -> Iterator[Progress]:
    """A fresh Progress to pass as ``trace(progress=...)``, shown on stderr while the block runs."""
    progress = Progress()
    with Live(ProgressLine(progress, sink), console=err_console, refresh_per_second=REFRESH_PER_S, transient=True):
        yield progress
