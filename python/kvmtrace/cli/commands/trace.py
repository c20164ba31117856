"""``kvmtrace trace``: run a guest under KVM guest debugging, record every debug exit,
print a summary; ``--out`` streams the trace to a Parquet dataset while it runs."""

from __future__ import annotations

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
    parse_window,
    read_stored_trace,
    ring_option,
    window_option,
)
from kvmtrace.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    console,
    err_console,
    print_error,
    print_warning,
    usage,
)
from kvmtrace.cli.progress import live_progress
from kvmtrace.cli.summary import print_summary
from kvmtrace.exceptions import GuestFaultError, InvalidConfigError, SinkError, TraceFileError

NAME = "trace"

ANALYZE_LIMIT = 20_000_000  # events read back for the end-of-run summary of a streamed trace


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
    part_rows: int = typer.Option(1 << 18, "--part-rows", min=1, help="Rows per Parquet part of --out (one vCPU's rows "
                                   "per part; the last part holds the rest of every vCPU)."),
    no_analysis: bool = typer.Option(False, "--no-analysis", help="Skip the DR6 conformance summary."),
    window: str | None = window_option(),
    ring: int | None = ring_option(),
) -> None:
    """Run GUEST under KVM guest debugging and record every debug exit; print a summary."""
    from kvmtrace._core import GuestDebug
    from kvmtrace.machine import Machine

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
        win = parse_window(window, program) if window is not None else None
        try:
            stepping = single_step or not (hw or sw or win)
            debug = GuestDebug(single_step=stepping, hw_breakpoints=hw, sw_breakpoints=sw)
        except InvalidConfigError as e:
            usage(str(e))
        limits: dict[str, Any] = dict(max_events=max_events, stop_at=stop, timeout=timeout, registers=regs,
                                      window=win)
        sink = None
        if ring is not None:
            # The ring stays in memory; --out receives it only when the run faults.
            limits.update(ring=ring, ring_sink=out)
        else:
            sink = _parquet_sink(out, m, debug, force, program)
        t, code = _run(m, debug, sink, part_rows, **limits)
    if t is None:
        raise typer.Exit(code or EXIT_FAILED)
    _report(t, sink, program, f"{guest} ({kind}, {mode_s} mode)", top, analysis=not no_analysis)
    raise typer.Exit(code)


def _parquet_sink(out: Path | None, m: Any, debug: Any, force: bool, program: Any) -> Any:
    """The ParquetSink of ``--out`` (None without it): the engine writes its chunks straight to it."""
    if out is None:
        return None
    from kvmtrace.export import ParquetSink

    try:
        return ParquetSink(out, m, debug, overwrite=force, program=program)
    except SinkError as e:
        usage(f"--out: {e}")


def _run(m: Any, debug: Any, sink: Any, part_rows: int, **limits: Any) -> tuple[Any, int]:
    """Trace with the live progress line; (the trace or the rows so far, the exit code).

    A guest fault, a sink failure or Ctrl-C still yields the rows recorded before it
    (the exception's ``.trace``), so the summary covers them.
    """
    failure: BaseException | None = None
    code = EXIT_OK
    with live_progress(sink) as progress:
        try:
            t = m.trace(debug, sink=sink, sink_rows=part_rows if sink is not None else None, progress=progress,
                        **limits)
        except KeyboardInterrupt as e:
            t, failure, code = getattr(e, "trace", None), e, EXIT_INTERRUPTED
        except (GuestFaultError, SinkError) as e:
            t, failure, code = getattr(e, "trace", None), e, EXIT_FAILED
    if code == EXIT_INTERRUPTED:
        err_console.print(Text("interrupted: summary of the events so far", style="yellow"))
    elif failure is not None:
        print_error(f"{failure}")
    return t, code


def _report(t: Any, sink: Any, program: Any, title: str, top: int, analysis: bool) -> None:
    """The end-of-run summary: of the trace in memory, or of the dataset read back from disk."""
    if sink is None:
        print_summary(t, program, title, top, analysis=analysis)
        return
    full = _read_back(t, sink)
    if full is None:
        where = escape(str(sink.path))
        console.print(f"{t.event_count:,} events streamed to {where}, stop reason {t.stop_reason.value}; "
                      f"run `kvmtrace show {where}` and `kvmtrace analyze {where}`")
    else:
        print_summary(full, program, title, top, analysis=analysis)
    console.print(f"trace written to [bold]{escape(str(sink.path))}[/] ({sink.parts} part(s), {sink.rows:,} rows)")
    if sink.rows < t.event_count:  # a part write failed (disk full, or Ctrl-C while writing it)
        print_warning(f"{t.event_count - sink.rows:,} of the {t.event_count:,} events recorded are not in "
                      f"{sink.path}: the dataset ends at its last complete part")


def _read_back(t: Any, sink: Any) -> Any | None:
    """The streamed dataset read back for the summary: None when it is too large to analyse
    in memory, the trace in memory when the dataset cannot be read."""
    if t.event_count > ANALYZE_LIMIT:
        return None
    try:
        return read_stored_trace(sink.path, None)
    except (TraceFileError, ImportError) as e:
        print_warning(f"cannot read back {sink.path}: {e}")
        return t
