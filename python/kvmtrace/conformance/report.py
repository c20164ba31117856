"""The suite's report: host facts, a rich table, JSON (schema.json) and the CLI entry point."""

from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kvmtrace.conformance.model import Result, Verdict

SCHEMA_VERSION = 1
VERDICT_STYLE = {"pass": "green", "fail": "bold red", "unsupported": "yellow", "error": "bold magenta"}


def _cpuinfo() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    first = text.split("\n\n", 1)[0]
    for line in first.splitlines():
        if ":" not in line:
            continue
        k, v = (x.strip() for x in line.split(":", 1))
        if k in ("vendor_id", "model name", "cpu family", "model", "stepping", "microcode"):
            info[k] = v
        elif k == "flags":
            flags = set(v.split())
            info["hypervisor"] = "hypervisor" in flags
            info["virtualization"] = sorted(flags & {"vmx", "svm"})
    return info


def _kvm_modules() -> list[str]:
    """The KVM modules loaded (kvm_intel, kvm_amd, kvm_pvm, ...): which implementation answers /dev/kvm."""
    try:
        return sorted(n for n in os.listdir("/sys/module") if n.startswith("kvm_"))
    except OSError:
        return []


def host_info() -> dict[str, Any]:
    """Kernel, CPU and KVM facts of this host (KVM capabilities from a throwaway Machine)."""
    from kvmtrace import __version__
    from kvmtrace.conformance.runner import GUESTDBG_FLAGS

    cpu = _cpuinfo()
    uname = platform.uname()
    host: dict[str, Any] = {
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "cpu": {
            "vendor": cpu.get("vendor_id"),
            "model": cpu.get("model name"),
            "family": cpu.get("cpu family"),
            "model_number": cpu.get("model"),
            "stepping": cpu.get("stepping"),
            "microcode": cpu.get("microcode"),
            "hypervisor": cpu.get("hypervisor"),
        },
        "kvm": {},
        "kvmtrace_version": __version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        from kvmtrace.machine import Machine

        with Machine(memory_size=1 << 20, mode="real") as m:
            caps = dict(m.host_caps)
        flags = int(caps.get("guest_debug_flags", 0))
        caps["guest_debug_flags"] = f"{flags:#x}"
        caps["guest_debug_flag_names"] = [n for bit, n in GUESTDBG_FLAGS.items() if flags & bit] + [
            f"{1 << b:#x}" for b in range(32) if flags >> b & 1 and (1 << b) not in GUESTDBG_FLAGS
        ]
        host["kvm"] = caps
        host["kvm"]["vendor_modules"] = _kvm_modules()
    except Exception as e:  # no usable /dev/kvm: every scenario reports it as an error too
        host["kvm"] = {"error": f"{type(e).__name__}: {e}"}
    return host


@dataclass
class SuiteRun:
    """The outcome of one suite run."""

    host: dict[str, Any]
    results: list[Result]
    requested: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for r in self.results:
            out[r.verdict.value] += 1
        return out

    @property
    def exit_code(self) -> int:
        """0 when every result passed or is unsupported; 1 on any fail or error; 130 if interrupted."""
        if self.interrupted:
            return 130
        return 1 if any(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.results) else 0

    def to_dict(self) -> dict[str, Any]:
        done = {(r.scenario, r.mode) for r in self.results}
        return {
            "schema_version": SCHEMA_VERSION,
            "host": self.host,
            "summary": {
                **self.counts(),
                "total": len(self.results),
                "elapsed_s": round(self.elapsed_s, 3),
                "interrupted": self.interrupted,
                "not_run": [{"scenario": s, "mode": m} for s, m in self.requested if (s, m) not in done],
                "notes": list(self.notes),
            },
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text (validated by schema.json); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def table(self) -> Table:
        return results_table(self.results, title=self.title())

    def title(self) -> str:
        c = self.counts()
        cpu = self.host.get("cpu", {})
        mods = ", ".join(self.host.get("kvm", {}).get("vendor_modules") or [])
        parts = ", ".join(f"{n} {k}" for k, n in c.items() if n)
        return (f"KVM debug conformance: {parts or 'no results'} - kernel {self.host.get('kernel')}"
                + (f" ({mods})" if mods else "") + f", {cpu.get('vendor')} {cpu.get('model')}"
                + (" (interrupted)" if self.interrupted else ""))

    def markdown(self) -> str:
        """The verdicts as Markdown (for a README's host findings): a scenario x mode grid, then
        expected vs observed for every failing check."""
        modes = ("real", "protected", "long")
        grid: dict[str, dict[str, Result]] = {}
        for r in self.results:
            grid.setdefault(r.scenario, {})[r.mode] = r
        out = ["| scenario | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
        for sc, by_mode in grid.items():
            cells = []
            for m in modes:
                r = by_mode.get(m)
                cells.append("-" if r is None else
                             f"{r.verdict.value} ({sum(c.ok for c in r.checks)}/{len(r.checks)})")
            out.append(f"| {sc} | " + " | ".join(cells) + " |")
        for r in self.results:
            if r.verdict is Verdict.PASS:
                continue
            out += ["", f"**{r.scenario}** [{r.mode}]: {r.verdict.value} - {r.reason}"]
            for c in r.failed_checks:
                out.append(f"- {c.label}: expected `{c.expected.brief()}`, observed `{c.observed.brief()}`"
                           + (f" ({c.observed.note})" if c.observed.note and c.observed.note not in
                              c.observed.brief() else ""))
            out += [f"- note: {n}" for n in r.notes]
        return "\n".join(out) + "\n"


def schema() -> dict[str, Any]:
    """The JSON schema of :meth:`SuiteRun.to_json`."""
    return json.loads(files(__package__).joinpath("schema.json").read_text())


def _observed_cell(r: Result) -> Text:
    d = r.decisive
    ok = sum(c.ok for c in r.checks)
    if r.verdict is Verdict.PASS:
        return Text(f"{ok}/{len(r.checks)} checks matched", style="green")
    if r.verdict in (Verdict.UNSUPPORTED, Verdict.ERROR) or d is None:
        return Text("\n".join([r.reason, *r.notes[:1]]))
    lines = [f"{d.label} [{ok}/{len(r.checks)} checks ok]",
             f"expected: {d.expected.brief()}",
             f"observed: {d.observed.brief()}"]
    if d.observed.note and d.observed.note != d.expected.note and not (
            d.observed.pc is not None and d.observed.note in lines[2]):
        lines.append(f"          {d.observed.note}")
    return Text("\n".join(lines))


def results_table(results: list[Result], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("expected -> observed (first difference) / why")
    for r in results:
        table.add_row(r.scenario, r.mode, Text(r.verdict.value, style=VERDICT_STYLE[r.verdict.value]),
                      _observed_cell(r))
    return table


def main(scenarios: list[str] | None, modes: list[str] | None, json_path: str | os.PathLike[str] | None,
         console: Console | None = None, markdown_path: str | os.PathLike[str] | None = None) -> int:
    """``kvmtrace conformance``: run, print the table, write JSON; return the exit code.

    ``scenarios`` / ``modes``: ids to select (None or empty: all). Exit codes: 0
    every selected scenario passed (or is unsupported on this host); 1 any
    ``fail`` or ``error``; 2 an unknown scenario id or mode; 130 interrupted by
    Ctrl-C (the results so far are printed, and written to ``json_path``).
    ``markdown_path`` also writes the Markdown report (verdict table and every
    expected/observed difference), as kept in docs/host-findings.md.
    """
    from kvmtrace.conformance.runner import run_suite
    from kvmtrace.exceptions import InvalidConfigError

    console = console or Console()
    try:
        with console.status("running KVM debug conformance scenarios...") as status:

            def progress(r: Result) -> None:
                status.update(f"{r.scenario} [{r.mode}]: {r.verdict.value}")

            run = run_suite(scenarios or None, modes or None, on_result=progress)
    except InvalidConfigError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:  # before any scenario ran (e.g. while probing the host)
        console.print("interrupted")
        return 130
    try:
        console.print(run.table())
        c = run.counts()
        console.print(
            f"{len(run.results)} results in {run.elapsed_s:.2f} s: "
            + ", ".join(f"[{VERDICT_STYLE[k]}]{n} {k}[/]" for k, n in c.items())
            + (" - [bold]interrupted[/]: partial results" if run.interrupted else "")
        )
        for note in run.notes:
            console.print(f"note: {note}")
    finally:
        if json_path:
            run.to_json(json_path)
            console.print(f"JSON report written to [bold]{json_path}[/]")
        if markdown_path:
            Path(markdown_path).write_text(run.markdown() + "\n")
            console.print(f"Markdown report written to [bold]{markdown_path}[/]")
    return run.exit_code
