"""The ``kvmtrace diff`` and ``kvmtrace fuzz`` commands (typer).

``register(app)`` adds both to a typer app (the kvmtrace CLI wires it in). Exit codes:
0 the run agreed / the campaign ran, 1 a divergence (diff) or a failed run, 2 a usage
error, 130 interrupted (fuzz still writes the report of what finished).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import kvmtrace._core as _core
from kvmtrace.exceptions import InvalidConfigError, KvmTraceError

console = Console()
err_console = Console(stderr=True)


def _fail(msg: str, code: int) -> NoReturn:
    err_console.print(Text.assemble(("error: ", "bold red"), msg), soft_wrap=True)
    raise typer.Exit(code)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    except OSError as e:
        _fail(f"cannot write {path}: {e.strerror}", 2)


def _hex(v: Any) -> str:
    return f"{v:#x}" if isinstance(v, int) else escape(str(v))


def _state(d: dict[str, Any]) -> str:
    # registers and addresses in hex, counts in decimal
    return ", ".join(f"{k}={_hex(v) if k in _core.GP_REGISTERS or k.startswith('0x') else escape(str(v))}"
                     for k, v in d.items())


def diff_command(
    guest: Path = typer.Argument(..., help="Assembly source, an ELF, or a reproducer written by `kvmtrace fuzz`."),
    mode: str | None = typer.Option(None, "--mode", "-m", help="real | protected | long (default: the "
                                    "reproducer's mode, else long)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the DiffReport as JSON."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N steps (default 1,000,000)."),
    memory_size: int | None = typer.Option(None, "--memory-size", help="Guest memory in bytes (default 16 MiB; "
                                           "a reproducer's own size)."),
) -> None:
    """Run GUEST on KVM and on the reference model (Unicorn) and report where they first differ."""
    from kvmtrace.oracle.differ import DEFAULT_MEMORY_SIZE, diff, guest_mode

    if not guest.is_file():
        _fail(f"{guest}: no such file", 2)
    try:
        mode = mode or guest_mode(guest) or "long"
        report = diff(guest, mode=mode, max_steps=max_steps,
                      memory_size=memory_size or _reproducer_memory(guest) or DEFAULT_MEMORY_SIZE)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except InvalidConfigError as e:
        _fail(str(e), 2)
    except KvmTraceError as e:
        _fail(str(e), 1)
    if json_out is not None:
        _write_json(json_out, report.to_dict())
    _print_diff(report)
    raise typer.Exit(0 if report.agree else 1)


def _reproducer_memory(guest: Path) -> int | None:
    import re

    head = guest.read_bytes()[:4096].decode(errors="replace")
    m = re.search(r"^#.*\bmemory_size=(0x[0-9a-fA-F]+)", head, re.MULTILINE)
    return int(m.group(1), 16) if m else None


def _print_diff(report: Any) -> None:
    verdict = "[bold green]agree[/]" if report.agree else "[bold red]diverge[/]"
    console.print(f"{verdict}: {report.steps} steps compared in {report.mode} mode; KVM reported "
                  f"{report.kvm_rows} steps and stopped with {report.kvm_stop}"
                  + ("" if report.complete else " (comparison incomplete)"))
    if report.agree:
        return
    t = Table(title=f"{report.divergence_count} divergence(s)")
    for col in ("kind", "step", "pc", "instruction", "reference (expected)", "KVM (observed)"):
        t.add_column(col)
    for d in report.divergences[:50]:
        t.add_row(d.kind, str(d.step), _hex(d.pc) if d.pc is not None else "-", escape(d.instruction),
                  _state(d.expected), _state(d.observed))
    console.print(t)


def fuzz_command(
    programs: int = typer.Option(..., "--programs", "-n", help="Programs to generate and diff."),
    seed: int = typer.Option(0, "--seed", "-s", help="Campaign seed (the programs are a function of it)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Local worker processes (one VM each)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. "
                                         "tcp://host:8786 (needs kvmtrace[cluster])."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the campaign report as JSON."),
    corpus: Path | None = typer.Option(None, "--corpus", help="Write one reproducer per divergence class here."),
    modes: list[str] = typer.Option(list(_core.MODES), "--mode", "-m", help="Modes to draw programs from."),
    length: int = typer.Option(16, "--length", help="Blocks per program body."),
    families: list[str] = typer.Option([], "--family", "-f", help="Restrict the pool to these families."),
    shrink: bool = typer.Option(True, "--shrink/--no-shrink", help="Shrink each class's example."),
) -> None:
    """Diff random programs from the instruction pool; group divergences by cause and shrink them."""
    from kvmtrace.oracle.campaign import fuzz, write_corpus

    done = {"n": 0}

    def progress(_: dict[str, Any]) -> None:
        done["n"] += 1
        if err_console.is_terminal:
            err_console.print(f"\r{done['n']}/{programs} programs", end="")

    try:
        report = fuzz(programs, seed, workers=workers, scheduler=scheduler, modes=modes, length=length,
                      families=families, shrink=shrink, on_result=progress)
    except InvalidConfigError as e:
        _fail(str(e), 2)
    except KvmTraceError as e:
        _fail(str(e), 1)
    if err_console.is_terminal:
        err_console.print()
    if corpus is not None:
        write_corpus(report, corpus)
    if json_out is not None:
        _write_json(json_out, report.to_dict())
    _print_campaign(report, corpus)
    raise typer.Exit(130 if report.interrupted else 0)


def _print_campaign(report: Any, corpus: Path | None) -> None:
    tm = report.timings
    console.print(f"{report.completed}/{report.programs} programs, {report.steps} steps compared "
                  f"({tm.get('programs_per_s', 0):.1f} programs/s, {tm.get('steps_per_s', 0):,.0f} steps/s, "
                  f"{report.backend}, {report.workers} worker(s)); {report.agreed} agreed, "
                  f"{len(report.classes)} divergence class(es), {len(report.lost)} lost, {len(report.errors)} failed"
                  + (" [bold yellow](interrupted)[/]" if report.interrupted else ""))
    if not report.classes:
        return
    t = Table(title="divergence classes")
    for col in ("kind", "mnemonic", "count", "programs", "example"):
        t.add_column(col)
    for c in report.classes:
        ex = c["example"]
        d = ex.get("divergence") or {}
        where = ex.get("file") or f"seed={ex['spec']['seed']} index={ex['spec']['index']}"
        t.add_row(c["kind"], c["mnemonic"], str(c["count"]), str(c["programs"]),
                  escape(f"{d.get('instruction', '')} ({ex['spec']['mode']}, {ex.get('blocks', '?')} blocks) {where}"))
    console.print(t)
    if corpus is None:
        console.print("reproducers: add --corpus DIR to write them, then `kvmtrace diff DIR/FILE.S`")


def register(app: typer.Typer) -> None:
    """Add ``diff`` and ``fuzz`` to a typer app."""
    app.command("diff")(diff_command)
    app.command("fuzz")(fuzz_command)
