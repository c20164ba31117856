"""The tables the commands print about a trace: run facts, hottest pcs, DR6 values,
DR6/DR7 verdicts, and the end-of-run summary that combines them."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from kvmtrace.cli.output import console

VERDICT_STYLES = {"pass": "green", "fail": "bold red", "info": "cyan", "skipped": "yellow"}


def debug_text(d: Any) -> str:
    """The guest-debug configuration in a few words: ``single-step, hw exec@0x8000/1``."""
    if d is None:
        return "-"
    bits = []
    if d.single_step:
        bits.append("single-step")
    config = d.to_dict()
    for a, kind, ln in config.get("hw_breakpoints") or []:
        bits.append(f"hw {kind}@{a:#x}/{ln}")
    for a in config.get("sw_breakpoints") or []:
        bits.append(f"sw@{a:#x}")
    for k in ("inject_db", "inject_bp", "general_detect", "block_irq"):
        if getattr(d, k, False):
            bits.append(k)
    return ", ".join(bits) or "none"


class FactGrid:
    """A two-column grid whose values are plain text (never rich markup: guest output may hold brackets)."""

    def __init__(self) -> None:
        self.table = Table.grid(padding=(0, 2))
        self.table.add_column(style="bold")
        self.table.add_column(overflow="fold")

    def add_row(self, key: str, value: str) -> None:
        self.table.add_row(key, Text(value))


def _stop_text(t: Any) -> str:
    detail = {k: v for k, v in t.stop_detail.items() if k != "exit_code"}
    stop = str(t.stop_reason.value) + (f" {detail}" if detail else "")
    if t.exit_code is not None:
        stop += f" (exit code {t.exit_code})"
    return stop


def _stored_facts(g: FactGrid, md: dict[str, Any]) -> None:
    host = md.get("host")
    if host:
        g.add_row("host", f"{host.get('os', '')} {host.get('kernel', '')}, {host.get('cpu') or '?'}")
    if md.get("kvmtrace_version"):
        g.add_row("kvmtrace", str(md["kvmtrace_version"]))
    src = md.get("source")
    if src:
        g.add_row("file", f"{src['parts']} part(s), {'complete' if src['complete'] else 'INCOMPLETE'}"
                  + (f", missing parts {src['missing_parts']}" if src.get("missing_parts") else ""))


def facts_table(t: Any, title: str) -> Table:
    """How the run went: stop reason, event count and rate, guest, debug setup, host, file."""
    g = FactGrid()
    g.add_row("trace", title)
    g.add_row("stop reason", _stop_text(t))
    g.add_row("events", f"{len(t):,}" + (f" in this file of {t.event_count:,} recorded" if t.event_count != len(t) else ""))
    if t.elapsed_s:
        g.add_row("time", f"{t.elapsed_s:.3f} s, {t.events_per_s:,.0f} events/s")
    g.add_row("guest", f"{t.mode} mode, {t.vcpus} vCPU{'s' if t.vcpus != 1 else ''}")
    g.add_row("debug", debug_text(t.debug))
    if t.register_names:
        g.add_row("registers", ", ".join(t.register_names))
    w = getattr(t, "window_spec", None)
    if w is not None:
        g.add_row("windows", f"{t.windows:,} opened ({w!r})")
    if getattr(t, "dropped_events", 0):
        g.add_row("ring", f"the last {len(t):,} events kept, {t.dropped_events:,} before them dropped")
    hits = [h for h in (getattr(t, "hits", None) or []) if h["kind"] != "window"]
    if hits:
        g.add_row("hits", ", ".join(f"{h['kind']}@{h['addr']:#x}: {h['count']:,}" for h in hits))
    _stored_facts(g, t.metadata)
    if t.console:
        g.add_row("console", t.console_text.rstrip())
    return g.table


def hot_table(t: Any, program: Any, top: int) -> Table:
    from kvmtrace.symbols import hottest

    table = Table(title=f"hottest pcs (top {top})")
    for c, j in (("pc", "left"), ("symbol", "left"), ("events", "right"), ("share", "right"), ("instruction", "left")):
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    for h in hottest(t, program, top, disassemble=True):
        table.add_row(f"{h.pc:#x}", Text(h.symbol), f"{h.count:,}", f"{h.share:.1%}", Text(h.instruction or ""))
    return table


def dr6_table(t: Any) -> Table:
    from kvmtrace.symbols import dr6_causes

    table = Table(title="DR6 values")
    for c in ("dr6", "causes", "events"):
        table.add_column(c)
    for v, n in sorted(t.dr6_summary().items(), key=lambda kv: -kv[1]):
        table.add_row(f"{v:#x}", dr6_causes(v), f"{n:,}")
    return table


def analysis_report(t: Any) -> Any:
    """kvmtrace.analysis's report on ``t``, or None when that module is not installed."""
    try:
        from kvmtrace.analysis import analyze
    except ImportError:
        return None
    return analyze(t)


def verdict_table(report: Any) -> Table:
    table = Table(title="DR6/DR7 verdicts (kvmtrace.analysis)")
    for c, j in (("rule", "left"), ("verdict", "left"), ("checked", "right"), ("violations", "right")):
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    for r in report.rules:
        # status_text: "info (N)" for an informational rule with violations (it never fails the run)
        table.add_row(r.id, Text(r.status_text, style=VERDICT_STYLES.get(r.status, "")), f"{r.checked:,}",
                      f"{r.violations:,}")
    return table


def print_summary(t: Any, program: Any, title: str, top: int, analysis: bool = True) -> None:
    """Facts, then (for a non-empty trace) hottest pcs, DR6 values and the verdicts."""
    console.print(facts_table(t, title))
    if not len(t):
        return
    console.print(hot_table(t, program, top))
    console.print(dr6_table(t))
    if not analysis:
        return
    report = analysis_report(t)
    if report is None:
        console.print("[dim]DR6 verdicts: kvmtrace.analysis is not available in this install[/]")
    else:
        console.print(verdict_table(report))
        console.print(report.summary(), highlight=False)
