"""The kvmtrace command line (typer + rich).

::

    kvmtrace demo [--out FILE] [--events N]
    kvmtrace trace GUEST [--asm | --elf | --raw] [--mode M] [--single-step] [--break ADDR[:kind[:len]]]...
                   [--sw-break ADDR]... [--max-events N] [--stop-at ADDR|SYMBOL] [--timeout S]
                   [--registers rip,rsp] [--out DIR.parquet] [--force]
    kvmtrace show FILE [--rows N] [--disasm] [--elf GUEST] [--run ID]
    kvmtrace analyze FILE [--json] [--run ID]
    kvmtrace export FILE (--perfetto OUT.json | --parquet OUT.parquet) [--elf GUEST | --asm GUEST] [--run ID]
    kvmtrace conformance [--scenario X]... [--mode M]... [--json FILE]
    kvmtrace bench

Exit codes: 0 success, 1 a run failed (guest fault, KVM error, sink error, failed
analysis rules), 2 a usage error (bad arguments, missing or unreadable files),
130 interrupted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kvmtrace.exceptions import InvalidConfigError, KvmTraceError, TraceFileError

app = typer.Typer(
    help="kvmtrace: vCPU debug tracing on Linux KVM (single-step, breakpoints, DR6 conformance).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)

MODES = ("real", "protected", "long")
BP_KINDS = ("exec", "write", "rw", "io")
BP_LENGTHS = (1, 2, 4, 8)
PROGRESS_ROWS = 1 << 15  # rows per engine chunk: the live line updates about every 0.25 s
ANALYZE_LIMIT = 20_000_000  # events read back for the end-of-run summary of a streamed trace


class UsageProblem(Exception):
    """A usage error found by a command (exit code 2)."""


@app.callback()
def _root() -> None:
    """kvmtrace: vCPU debug tracing on Linux KVM."""
    import os

    for c in (console, err_console):  # pipes and files get whole tables, not 80 columns of ellipses
        if not c.is_terminal and "COLUMNS" not in os.environ:
            c.width = 160


def fail(msg: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("error: ", "bold red"), msg), soft_wrap=True)
    raise typer.Exit(code)


def usage(msg: str) -> NoReturn:
    raise UsageProblem(msg)


# --------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------


def _int(text: str, what: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        usage(f"{what}: {text!r} is not a number (use e.g. 0x8000 or 32768)")


def _addr(text: str, program: Any, what: str) -> int:
    """A number, a symbol, or symbol+offset."""
    text = text.strip()
    try:
        v = int(text.replace("_", ""), 0)
    except ValueError:
        pass
    else:
        if v < 0:
            usage(f"{what}: address {text!r} is negative")
        return v
    if text[:1].isdigit() or text[:1] == "-":
        usage(f"{what}: {text!r} is not a number (use e.g. 0x8000) or a symbol")
    name, _, off = text.partition("+")
    if program is None or not program.symbols:
        usage(f"{what}: {text!r} is not a number and the guest has no symbols (use e.g. 0x8000)")
    if name not in program.symbols:
        near = ", ".join(sorted(program.symbols)[:10])
        usage(f"{what}: unknown symbol {name!r} (known: {near})")
    return program.symbol(name) + (_int(off, what) if off else 0)


def _parse_break(spec: str, program: Any) -> Any:
    from kvmtrace import HwBreakpoint

    parts = spec.split(":")
    if len(parts) > 3:
        usage(f"--break {spec!r}: use ADDR[:kind[:len]] with kind exec|write|rw|io and len 1|2|4|8")
    addr = _addr(parts[0], program, f"--break {spec!r}")
    kind = parts[1] if len(parts) > 1 and parts[1] else "exec"
    if kind not in BP_KINDS:
        usage(f"--break {spec!r}: kind {kind!r} is not one of {', '.join(BP_KINDS)}")
    length = _int(parts[2], f"--break {spec!r}") if len(parts) > 2 and parts[2] else 1
    if length not in BP_LENGTHS:
        usage(f"--break {spec!r}: length {length} is not 1, 2, 4 or 8")
    try:
        return HwBreakpoint(addr, kind, length)
    except InvalidConfigError as e:
        usage(f"--break {spec!r}: {e}")


def _guest_kind(guest: str, asm: bool, elf: bool, raw: bool) -> tuple[str, Path | None]:
    from kvmtrace import guests

    if sum((asm, elf, raw)) > 1:
        usage("pass at most one of --asm, --elf and --raw")
    path = Path(guest)
    if not path.exists():
        if not (asm or elf or raw) and guest in guests.names():
            return "bundled", None
        usage(f"guest file {guest!r} not found: pass an ELF, assembly or raw code file, or a bundled guest "
              f"({', '.join(guests.names())})")
    if path.is_dir():
        usage(f"guest {guest!r} is a directory: pass a file")
    if asm:
        return "asm", path
    if elf:
        return "elf", path
    if raw:
        return "raw", path
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        usage(f"cannot read guest file {guest!r}: {e.strerror}")
    if magic == b"\x7fELF":
        return "elf", path
    if path.suffix.lower() in (".s", ".asm"):
        return "asm", path
    if path.suffix.lower() in (".bin", ".raw", ".img", ".com"):
        return "raw", path
    usage(f"cannot tell what {guest!r} is: pass --elf, --asm (GNU as source) or --raw (code bytes)")


def _guest_mode(kind: str, path: Path | None, mode: str | None) -> str:
    if mode is not None:
        if mode not in MODES:
            usage(f"--mode {mode!r}: use real, protected or long")
        return mode
    if kind == "elf" and path is not None:
        with open(path, "rb") as f:
            head = f.read(5)
        return "protected" if len(head) == 5 and head[4] == 1 else "long"
    return "long"


def _load_guest(m: Any, kind: str, guest: str, path: Path | None, load_addr: int) -> Any:
    from kvmtrace import guests

    if kind == "bundled":
        return m.load_asm(guests.source(guest))
    assert path is not None
    try:
        if kind == "asm":
            return m.load_asm(path.read_text())
        if kind == "elf":
            return m.load_elf(path)
        return m.load_program(path.read_bytes(), addr=load_addr)
    except UnicodeDecodeError:
        usage(f"{guest!r} is not a text file: is it an ELF (--elf) or raw code (--raw)?")
    except OSError as e:
        usage(f"cannot read guest file {guest!r}: {e.strerror}")


def _read(file: Path, run: str | None) -> Any:
    from kvmtrace.export import read_trace

    return read_trace(file, run=run)


def _program_arg(elf: Path | None, asm: Path | None, mode: str) -> Any:
    from kvmtrace.program import assemble, load_elf

    if elf is not None and asm is not None:
        usage("pass --elf or --asm, not both")
    if elf is not None:
        if not elf.is_file():
            usage(f"ELF file {str(elf)!r} not found")
        return load_elf(elf, mode)
    if asm is not None:
        if not asm.is_file():
            usage(f"assembly file {str(asm)!r} not found")
        return assemble(asm.read_text(), mode)
    return None


# --------------------------------------------------------------------------
# Progress and summaries
# --------------------------------------------------------------------------


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


def _debug_text(d: Any) -> str:
    if d is None:
        return "-"
    bits = []
    if d.single_step:
        bits.append("single-step")
    for a, kind, ln in d.to_dict().get("hw_breakpoints") or []:
        bits.append(f"hw {kind}@{a:#x}/{ln}")
    for a in d.to_dict().get("sw_breakpoints") or []:
        bits.append(f"sw@{a:#x}")
    for k in ("inject_db", "inject_bp", "general_detect", "block_irq"):
        if getattr(d, k, False):
            bits.append(k)
    return ", ".join(bits) or "none"


class _Grid:
    """A two-column grid whose values are plain text (never rich markup: guest output may hold brackets)."""

    def __init__(self) -> None:
        self.table = Table.grid(padding=(0, 2))
        self.table.add_column(style="bold")
        self.table.add_column(overflow="fold")

    def add_row(self, key: str, value: str) -> None:
        self.table.add_row(key, Text(value))


def _facts(t: Any, title: str) -> Table:
    g = _Grid()
    detail = {k: v for k, v in t.stop_detail.items() if k not in ("exit_code",)}
    stop = t.stop_reason.value + (f" {detail}" if detail else "")
    if t.exit_code is not None:
        stop += f" (exit code {t.exit_code})"
    g.add_row("trace", title)
    g.add_row("stop reason", stop)
    g.add_row("events", f"{len(t):,}" + (f" in this file of {t.event_count:,} recorded" if t.event_count != len(t) else ""))
    if t.elapsed_s:
        g.add_row("time", f"{t.elapsed_s:.3f} s, {t.events_per_s:,.0f} events/s")
    g.add_row("guest", f"{t.mode} mode, {t.vcpus} vCPU{'s' if t.vcpus != 1 else ''}")
    g.add_row("debug", _debug_text(t.debug))
    if t.register_names:
        g.add_row("registers", ", ".join(t.register_names))
    md = t.metadata
    host = md.get("host")
    if host:
        g.add_row("host", f"{host.get('os', '')} {host.get('kernel', '')}, {host.get('cpu') or '?'}")
    if md.get("kvmtrace_version"):
        g.add_row("kvmtrace", str(md["kvmtrace_version"]))
    src = md.get("source")
    if src:
        g.add_row("file", f"{src['parts']} part(s), {'complete' if src['complete'] else 'INCOMPLETE'}"
                  + (f", missing parts {src['missing_parts']}" if src.get("missing_parts") else ""))
    if t.console:
        g.add_row("console", t.console_text.rstrip())
    return g.table


def _hot_table(t: Any, program: Any, top: int) -> Table:
    from kvmtrace.symbols import hottest

    table = Table(title=f"hottest pcs (top {top})")
    for c, j in (("pc", "left"), ("symbol", "left"), ("events", "right"), ("share", "right"), ("instruction", "left")):
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    for h in hottest(t, program, top, disassemble=True):
        table.add_row(f"{h.pc:#x}", Text(h.symbol), f"{h.count:,}", f"{h.share:.1%}", Text(h.instruction or ""))
    return table


def _dr6_table(t: Any) -> Table:
    from kvmtrace.symbols import dr6_causes

    table = Table(title="DR6 values")
    for c in ("dr6", "causes", "events"):
        table.add_column(c)
    for v, n in sorted(t.dr6_summary().items(), key=lambda kv: -kv[1]):
        table.add_row(f"{v:#x}", dr6_causes(v), f"{n:,}")
    return table


def _analysis(t: Any) -> Any:
    try:
        from kvmtrace.analysis import analyze
    except ImportError:
        return None
    return analyze(t)


def _verdict_table(report: Any) -> Table:
    table = Table(title="DR6/DR7 verdicts (kvmtrace.analysis)")
    for c, j in (("rule", "left"), ("verdict", "left"), ("checked", "right"), ("violations", "right")):
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    styles = {"pass": "green", "fail": "bold red", "info": "cyan", "skipped": "yellow"}
    for r in report.rules:
        # status_text: "info (N)" for an informational rule with violations (it never fails the run)
        table.add_row(r.id, Text(r.status_text, style=styles.get(r.status, "")), f"{r.checked:,}", f"{r.violations:,}")
    return table


def _summary(t: Any, program: Any, title: str, top: int, analysis: bool = True) -> None:
    console.print(_facts(t, title))
    if len(t):
        console.print(_hot_table(t, program, top))
        console.print(_dr6_table(t))
        if analysis:
            report = _analysis(t)
            if report is None:
                console.print("[dim]DR6 verdicts: kvmtrace.analysis is not available in this install[/]")
            else:
                console.print(_verdict_table(report))
                console.print(report.summary(), highlight=False)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


@app.command()
def demo(
    out: Path = typer.Option(Path("kvmtrace-demo.parquet"), "--out", "-o",
                             help="Where to write the trace (.parquet, or .npz without pyarrow)."),
    events: int = typer.Option(10, "--events", "-n", help="How many events to print."),
) -> None:
    """Single-step the bundled demo guest: print events, events/s, a DR6 summary; save the trace."""
    from kvmtrace.demo import run_demo

    run_demo(out=out, show=events, console=console)


@app.command("trace")
def trace_cmd(
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

    kind, path = _guest_kind(guest, asm, elf, raw)
    mode_s = _guest_mode(kind, path, mode)
    la = _int(load_addr, "--load-addr")
    regs = [r.strip() for r in registers.split(",") if r.strip()]
    if out is not None and out.exists() and not force:
        usage(f"--out {str(out)!r} exists: pass --force to replace it or choose a new name")
    with Machine(memory_size=memory << 20, mode=mode_s, vcpus=vcpus) as m:
        program = _load_guest(m, kind, guest, path, la)
        hw = [_parse_break(b, program) for b in breaks or []]
        sw = [_addr(a, program, f"--sw-break {a!r}") for a in sw_breaks or []]
        stop = _addr(stop_at, program, "--stop-at") if stop_at is not None else None
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
                t, failure, code = getattr(e, "trace", None), e, 130
            except (GuestFaultError, SinkError) as e:
                t, failure, code = getattr(e, "trace", None), e, 1
    if failure is not None:
        if code == 130:
            err_console.print(Text("interrupted: summary of the events so far", style="yellow"))
        else:
            _err(f"{failure}")
    if t is None:
        raise typer.Exit(code or 1)
    full = sink.full if inner is None and sink.full is not None else t
    title = f"{guest} ({kind}, {mode_s} mode)"
    if inner is not None:
        if t.event_count <= ANALYZE_LIMIT:
            try:
                full = _read(out, None)  # type: ignore[arg-type]
            except (TraceFileError, ImportError) as e:
                err_console.print(Text(f"warning: cannot read back {out}: {e}", style="yellow"), soft_wrap=True)
        else:
            full = None
    if full is None:
        console.print(f"{t.event_count:,} events streamed to {escape(str(out))}, stop reason "
                      f"{t.stop_reason.value}; run `kvmtrace show {escape(str(out))}` and `kvmtrace analyze "
                      f"{escape(str(out))}`")
    else:
        _summary(full, program, title, top, analysis=not no_analysis)
    if inner is not None:
        console.print(f"trace written to [bold]{escape(str(inner.path))}[/] "
                      f"({inner.parts} part(s), {inner.rows:,} rows)")
    raise typer.Exit(code)


@app.command()
def show(
    file: Path = typer.Argument(..., help="A trace: Parquet file, dataset directory, or directory of runs."),
    rows: int = typer.Option(10, "--rows", "-n", min=0, help="How many events to print."),
    run: str | None = typer.Option(None, "--run", help="Run id in a directory of run=<id> datasets."),
    disasm: bool = typer.Option(False, "--disasm", "-d", help="Add the instruction at each pc (iced-x86)."),
    elf: Path | None = typer.Option(None, "--elf", metavar="GUEST", help="Symbols from this ELF (default: the "
                                                                         "symbols stored with the trace)."),
) -> None:
    """Print a stored trace's run facts and its first events."""
    from kvmtrace.symbols import Disassembler, dr6_causes, resolve_program

    t = _read(file, run)
    program = resolve_program(t, _program_arg(elf, None, t.mode))
    dis = Disassembler.for_trace(t, program) if disasm else None
    console.print(_facts(t, str(file)))
    if rows and len(t):
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
        console.print(table)


@app.command()
def analyze(
    file: Path = typer.Argument(..., help="A stored trace (Parquet file or dataset directory)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    run: str | None = typer.Option(None, "--run", help="Run id in a directory of run=<id> datasets."),
) -> None:
    """Check a stored trace's DR6/DR7 against the x86 architecture (exit code 1 if a non-informational rule fails)."""
    t = _read(file, run)
    try:
        from kvmtrace.analysis import analyze as _analyze
    except ImportError:
        fail("kvmtrace.analysis is not available in this install")
    report = _analyze(t)
    if as_json:
        typer.echo(report.to_json())
    else:
        console.print(report.to_rich_table())
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def export(
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
    t = _read(file, run)
    program = _program_arg(elf, asm, t.mode)
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


def _optional(module: str, attr: str) -> Any:
    """Import a module another part of kvmtrace provides, or fail saying it is absent."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        fail(f"{module} is not available in this install")
    if not callable(getattr(mod, attr, None)):
        fail(f"{module} has no {attr}() in this install")
    return mod


@app.command()
def conformance(
    scenario: list[str] | None = typer.Option(None, "--scenario", help="Run only this scenario (repeatable)."),
    mode: list[str] | None = typer.Option(None, "--mode", help="Run only in this mode: real, protected, long "
                                                               "(repeatable)."),
    json_path: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the report as JSON."),
    markdown_path: Path | None = typer.Option(None, "--markdown", metavar="FILE",
                                              help="Also write the report as Markdown (verdict table + every difference)."),
) -> None:
    """Run the KVM guest-debug conformance scenarios and report PASS/FAIL against the x86 architecture."""
    for mo in mode or []:
        if mo not in MODES:
            usage(f"--mode {mo!r}: use real, protected or long")
    conf = _optional("kvmtrace.conformance", "main")
    raise typer.Exit(int(conf.main(list(scenario or []), list(mode or []), json_path, console, markdown_path) or 0))


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", "-q", help="Fewer events and rounds (about 15 s instead of 100 s)."),
) -> None:
    """Measure events/s against a C KVM_RUN loop, a Python ioctl loop and Unicorn; print the table."""
    b = _optional("kvmtrace.bench", "main")
    raise typer.Exit(int(b.main(console, quick=quick) or 0))


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def _err(msg: str) -> None:
    err_console.print(Text.assemble(("error: ", "bold red"), msg), soft_wrap=True)


def _click_module() -> Any:
    # typer >= 0.2x vendors click as typer._click; older typer uses click itself.
    mod = getattr(typer.core, "_click", None)
    if mod is None:
        import click as mod
    return mod


_click = _click_module()
_NO_ARGS: Any = getattr(_click.exceptions, "NoArgsIsHelpError", ())
_ABORT: Any = getattr(_click.exceptions, "Abort", ())


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]) and return the exit code."""
    try:
        rv = app(args=argv, prog_name="kvmtrace", standalone_mode=False)
    except _NO_ARGS as e:
        typer.echo(e.format_message())
        return 0
    except _click.exceptions.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "kvmtrace"
        _err(f"{e.format_message()} (see `{cmd} --help`)")
        return 2
    except _ABORT:
        return 130
    except UsageProblem as e:
        _err(str(e))
        return 2
    except (InvalidConfigError, TraceFileError) as e:
        _err(str(e).replace("\n", " | ") if isinstance(e, TraceFileError) else str(e))
        return 2
    except KvmTraceError as e:
        _err(str(e))
        return 1
    except ImportError as e:
        _err(f"{e}")
        return 1
    return int(rv or 0)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
