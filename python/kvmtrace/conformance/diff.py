"""What changed between two JSON reports: verdicts, findings appeared or gone, host facts.

:func:`diff_reports` compares two loaded documents (pure, so it is tested on
synthetic ones); :func:`compare_reports` is the ``kvmtrace conformance --compare A B``
entry: it prints the changes and returns 0 when nothing changed, 1 otherwise, 2 when
a report cannot be read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from kvmtrace.exceptions import InvalidConfigError

#: Host entries that describe the run or the tool, not the host: never a change.
NOT_HOST_FACTS = frozenset({"date", "python", "kvmtrace_version"})


@dataclass
class ReportDiff:
    #: (scenario, mode, verdict in A or None, verdict in B or None), for every run that differs.
    verdicts: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    appeared: list[dict[str, Any]] = field(default_factory=list)
    gone: list[dict[str, Any]] = field(default_factory=list)
    #: (finding id, title, runs in A, runs in B) for findings in both whose runs differ.
    runs_changed: list[tuple[str, str, int, int]] = field(default_factory=list)
    #: (fact, value in A, value in B).
    host: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.verdicts or self.appeared or self.gone or self.runs_changed or self.host)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON report written by ``--json``; InvalidConfigError (naming the file) when it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise InvalidConfigError(f"invalid report: cannot read {os.fspath(path)}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InvalidConfigError(f"invalid report: {os.fspath(path)} is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) or "host" not in doc:
        raise InvalidConfigError(f"invalid report: {os.fspath(path)} is not a kvmtrace conformance report "
                                 "(written by kvmtrace conformance --json)")
    return doc


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not prefix and k in NOT_HOST_FACTS:
            continue
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = ", ".join(map(str, v)) if isinstance(v, list) else v
    return out


def diff_reports(a: dict[str, Any], b: dict[str, Any]) -> ReportDiff:
    """The differences between report ``a`` (before) and ``b`` (after)."""
    out = ReportDiff()
    va = {(r["scenario"], r["mode"]): r["verdict"] for r in a.get("results", [])}
    vb = {(r["scenario"], r["mode"]): r["verdict"] for r in b.get("results", [])}
    for key in [*va, *(k for k in vb if k not in va)]:
        if va.get(key) != vb.get(key):
            out.verdicts.append((key[0], key[1], va.get(key), vb.get(key)))
    fa = {f["id"]: f for f in a.get("findings", [])}
    fb = {f["id"]: f for f in b.get("findings", [])}
    out.appeared = [f for i, f in fb.items() if i not in fa]
    out.gone = [f for i, f in fa.items() if i not in fb]

    def runs(f: dict[str, Any]) -> set[tuple[str, str]]:
        return {(s["scenario"], s["mode"]) for s in f.get("scenarios", [])}

    out.runs_changed = [(i, fb[i]["title"], len(runs(fa[i])), len(runs(fb[i])))
                        for i in fa if i in fb and runs(fa[i]) != runs(fb[i])]
    ha, hb = _flatten(a.get("host", {})), _flatten(b.get("host", {}))
    out.host = [(k, ha.get(k), hb.get(k)) for k in sorted(set(ha) | set(hb)) if ha.get(k) != hb.get(k)]
    return out


def print_diff(d: ReportDiff, console: Console, a_name: str, b_name: str) -> None:
    if not d.changed:
        console.print(f"no change between {a_name} and {b_name}: same verdicts, findings and host facts")
        return
    console.print(f"[bold]changes from {a_name} to {b_name}[/]")
    lines = [f"  verdict  {scenario} [{mode}]: {va or 'not run'} -> {vb or 'not run'}"
             for scenario, mode, va, vb in d.verdicts]
    def finding(f: dict[str, Any]) -> str:
        return f"{f['title']} ({f['aspect']}, {len(f.get('scenarios', []))} runs)"

    lines += [f"  finding appeared: {finding(f)}" for f in d.appeared]
    lines += [f"  finding gone: {finding(f)}" for f in d.gone]
    lines += [f"  finding {title}: explains {na} -> {nb} runs" for _, title, na, nb in d.runs_changed]
    lines += [f"  host {k}: {x!r} -> {y!r}" for k, x, y in d.host]
    for line in lines:
        console.print(line, markup=False, highlight=False)


def compare_reports(a_path: str | os.PathLike[str], b_path: str | os.PathLike[str],
                    console: Console | None = None) -> int:
    """Print what changed from report A to report B; 0 nothing changed, 1 changed, 2 unreadable."""
    console = console or Console()
    try:
        a, b = load_report(a_path), load_report(b_path)
    except InvalidConfigError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    d = diff_reports(a, b)
    print_diff(d, console, os.fspath(a_path), os.fspath(b_path))
    return 1 if d.changed else 0
