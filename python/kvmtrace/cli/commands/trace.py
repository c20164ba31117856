"""``kvmtrace trace``: run a guest under KVM guest debugging, record every debug exit,
print a summary; ``--out`` streams the trace to a Parquet dataset while it runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.text import Text

from kvmtrace.cli.args import (
    guest_kind,
    guest_mode,
    load_guest,
    parse_addr,
    parse_break,
    parse_int,
    parse_registers,
    read_stored_trace,
)
from kvmtrace.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    console,
    err_console,
    print_error,
    print_warning,
    usage,
)
from kvmtrace.cli.summary import print_summary
from kvmtrace.exceptions import InvalidConfigError, TraceFileError

NAME = "trace"

PROGRESS_ROWS = 1 << 15  # rows per engine chunk: the live line updates about every 0.25 s
ANALYZE_LIMIT = 20_000_000  # events read back for the end-of-run summary of a streamed trace


class _ProgressSink:
    """The sink the CLI gives the engine: counts rows for the live line; keeps them, or
    streams them to a ParquetSink in parts of ``part_rows`` rows."""

    def __init__(self, inner: Any = None, part_rows: int = 1 << 18) -> None:
        self.inner = inner
        self.part_rows = part_rows
        self.events = 0
        self.chunks: list[Any] = []
        self.buffered = 0
        self.t0 = time.monotonic()
        self.full: Any = None

    def write(self, chunk: Any) -> None:
        self.events += len(chunk)
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        if self.inner is not None and self.buffered >= self.part_rows:
            from kvmtrace.export import concat_traces

            try:
                self.inner.write(concat_traces(self.chunks))
            except BaseException:
                self.chunks.pop()  # the engine keeps the chunk that failed (in .trace); close() adds the rest
                raise
            self.chunks, self.buffered = [], 0

    def close(self, trace: Any) -> None:
        from kvmtrace.export import concat_traces

        tail = concat_traces(self.chunks, trace) if self.chunks else trace
        self.chunks, self.buffered = [], 0
        if self.inner is not None:
            self.inner.close(tail)
        else:
            self.full = tail

    def __rich__(self) -> Text:
        el = time.monotonic() - self.t0
        rate = self.events / el if el > 0 else 0.0
        s = f"tracing: {self.events:,} events  {rate:,.0f} events/s  {el:,.1f} s elapsed"
        if self.inner is not None:
            s += f"  -> {self.inner.path} ({self.inner.parts} parts)"
        return Text(s, style="cyan")


def command(
    guest: str = typer.Argument(..., help="Guest: an ELF executable, GNU as source, raw code, or a bundled "
                                          "guest name (demo)."),
    asm: bool = typer.Option(False, "--asm", help="GUEST is GNU as source (AT&T unless .intel_syntax)."),
    elf: bool = typer.Option(False, "--elf", help="GUEST is a static ELF executable."),
    raw: bool = typer.Option(False, "--raw", help="GUEST is raw code bytes, loaded and entered at --load-addr."),
    mode: str | None = typer.Option(None, "--mode", "-m",
                                    help="CPU mode: real, protected or long [default: long; ELF32: protected]."),
    single_step: bool = typer.Option(False, "--single-step", "-s",
                                     help="Trap after every instruction (the default when no breakpoint is given)."),
    breaks: list[str] | None = typer.Option(None, "--break", "-b", metavar="ADDR[:KIND[:LEN]]",
                                            help="Hardware breakpoint; ADDR is a number or symbol[+off], KIND "
                                                 "exec|write|rw|io, LEN 1|2|4|8. Up to 4."),
    sw_breaks: list[str] | None = typer.Option(None, "--sw-break", metavar="ADDR",
                                               help="Software (INT3) breakpoint at ADDR."),
    max_events: int | None = typer.Option(None, "--max-events", "-n", min=1, help="Stop after N events per vCPU."),
    stop_at: str | None = typer.Option(None, "--stop-at", metavar="ADDR|SYMBOL", help="Stop at a debug exit here."),
    timeout: float | None = typer.Option(None, "--timeout", "-t", min=0.0, help="Stop after S seconds."),
    registers: str = typer.Option("", "--registers", "-r", metavar="REGS",
                                  help="Registers captured per event, comma-separated, e.g. rip,rsp,rax."),
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR.parquet",
                                    help="Stream the trace to this Parquet dataset directory while it runs."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing --out."),
    memory: int = typer.Option(16, "--memory", min=1, help="Guest memory in MiB."),
    vcpus: int = typer.Option(1, "--vcpus", min=1, help="Number of vCPUs."),
    load_addr: str = typer.Option("0x8000", "--load-addr", help="Load and entry address of --raw code."),
    top: int = typer.Option(10, "--top", min=0, help="Rows in the hottest-pcs table."),
    part_rows: int = typer.Option(1 << 18, "--part-rows", min=1, help="Rows per Parquet part of --out."),
    no_analysis: bool = typer.Option(False, "--no-analysis", help="Skip the DR6 conformance summary."),
) -> None:
    """Run GUEST under KVM guest debugging and record every debug exit; print a summary."""
    from kvmtrace import GuestDebug, Machine, SinkError
    from kvmtrace.exceptions import GuestFaultError

    kind, path = guest_kind(guest, asm, elf, raw)
    mode_s = guest_mode(kind, path, mode)
    la = parse_int(load_addr, "--load-addr")
    regs = parse_registers(registers)
    if out is not None and out.exists() and not force:
        usage(f"--out {str(out)!r} exists: pass --force to replace it or choose a new name")
    with Machine(memory_size=memory << 20, mode=mode_s, vcpus=vcpus) as m:
        program = load_guest(m, kind, guest, path, la)
        hw = [parse_break(b, program) for b in breaks or []]
        sw = [parse_addr(a, program, f"--sw-break {a!r}") for a in sw_breaks or []]
        stop = parse_addr(stop_at, program, "--stop-at") if stop_at is not None else None
        try:
            debug = GuestDebug(single_step=single_step or not (hw or sw), hw_breakpoints=hw, sw_breakpoints=sw)
        except InvalidConfigError as e:
            usage(str(e))
        inner = None
        if out is not None:
            from kvmtrace.export import ParquetSink

            try:
                inner = ParquetSink(out, m, debug, overwrite=force, program=program)
            except SinkError as e:
                usage(f"--out: {e}")
        sink = _ProgressSink(inner, part_rows)
        rows = min(part_rows, PROGRESS_ROWS)
        failure: BaseException | None = None
        code = 0
        from rich.live import Live

        t = None
        with Live(sink, console=err_console, refresh_per_second=8, transient=True):
            try:
                t = m.trace(debug, max_events=max_events, stop_at=stop, timeout=timeout, registers=regs,
                            sink=sink, sink_rows=rows)
            except KeyboardInterrupt as e:
                t, failure, code = getattr(e, "trace", None), e, EXIT_INTERRUPTED
            except (GuestFaultError, SinkError) as e:
                t, failure, code = getattr(e, "trace", None), e, EXIT_FAILED
    if failure is not None:
        if code == EXIT_INTERRUPTED:
            err_console.print(Text("interrupted: summary of the events so far", style="yellow"))
        else:
            print_error(f"{failure}")
    if t is None:
        raise typer.Exit(code or EXIT_FAILED)
    full = sink.full if inner is None and sink.full is not None else t
    title = f"{guest} ({kind}, {mode_s} mode)"
    if inner is not None:
        if t.event_count <= ANALYZE_LIMIT:
            try:
                full = read_stored_trace(out, None)  # type: ignore[arg-type]
            except (TraceFileError, ImportError) as e:
                print_warning(f"cannot read back {out}: {e}")
        else:
            full = None
    if full is None:
        console.print(f"{t.event_count:,} events streamed to {escape(str(out))}, stop reason "
                      f"{t.stop_reason.value}; run `kvmtrace show {escape(str(out))}` and `kvmtrace analyze "
                      f"{escape(str(out))}`")
    else:
        print_summary(full, program, title, top, analysis=not no_analysis)
    if inner is not None:
        console.print(f"trace written to [bold]{escape(str(inner.path))}[/] "
                      f"({inner.parts} part(s), {inner.rows:,} rows)")
    raise typer.Exit(code)
