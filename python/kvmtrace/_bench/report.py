"""``kvmtrace bench``: a compact run of every benchmark, printed as one rich table.

The long runs and the saved results (``--benchmark-compare``) are the pytest-benchmark
suite in ``benches/``; both use the same contenders and checks.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvmtrace._bench import cbaseline
from kvmtrace._bench.analysis_throughput import WIDE_PCS, analysis_missing, analysis_throughput, synthetic_step_trace
from kvmtrace._bench.dense import REGS, TARGET_RATIO, c_step_loop, kvmtrace_step_loop, py_step_loop
from kvmtrace._bench.machine_info import describe_machine, kvm_missing, machine_info
from kvmtrace._bench.measure import BenchCheckError, Measurement, cost_per_hit, interleave, summarize, user_gap
from kvmtrace._bench.memory import RSS_LIMIT_BYTES, measure_rss, parquet_missing
from kvmtrace._bench.modes import c_countdown, check_same_pcs, kvmtrace_countdown
from kvmtrace._bench.sparse import kvmtrace_hot, unicorn_hot, unicorn_missing


@dataclasses.dataclass
class Sizes:
    dense: int
    rounds: int
    modes: int
    mode_rounds: int
    hot_calls: int
    memory: int
    stream: tuple[int, int]
    sink_rows: int | None  # None: the engine's default chunk size
    analysis: int


QUICK = Sizes(dense=20_000, rounds=2, modes=20_001, mode_rounds=2, hot_calls=2_000, memory=100_000, stream=(50_000, 200_000), sink_rows=20_000,
              analysis=500_000)
FULL = Sizes(dense=200_000, rounds=3, modes=300_001, mode_rounds=10, hot_calls=20_000, memory=1_000_000, stream=(1_200_000, 2_500_000),
             sink_rows=None, analysis=5_000_000)


def _fmt_int(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def _fmt_ratio(r: float | None, target: bool = False) -> str:
    if r is None:
        return "-"
    if target:
        return f"[green]{r:.3f}[/]" if r >= TARGET_RATIO else f"[yellow]{r:.3f}[/]"
    return f"{r:.3f}"


class Report:
    """The table being filled and the failures found on the way."""

    def __init__(self, console: Any, quick: bool) -> None:
        from rich.table import Table

        self.console = console
        self.table = Table(title="kvmtrace bench" + (" (quick)" if quick else ""), title_justify="left")
        for c, j in (("benchmark", "left"), ("events", "right"), ("events/s", "right"), ("ratio to C", "right"),
                     ("notes", "left")):
            self.table.add_column(c, justify=j)  # type: ignore[arg-type]
        self.failures: list[str] = []

    def row(self, label: str, events: str = "-", rate: str = "-", ratio: str = "-", note: str = "") -> None:
        self.table.add_row(label, events, rate, ratio, note)

    def skipped(self, label: str, why: str) -> None:
        self.row(label, note=f"skipped: {why}")

    def attempt(self, label: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, or None after recording its failure (the other benchmarks still run)."""
        try:
            with self.console.status(f"[bold]bench:[/] {label} ..."):
                return fn()
        except BenchCheckError as e:
            self.failures.append(f"{label}: {e}")
            self.row(label, note=f"[red]FAILED: {e}[/]")
        except Exception as e:  # noqa: BLE001 - report and carry on with the other benchmarks
            self.failures.append(f"{label}: {type(e).__name__}: {e}")
            self.row(label, note=f"[red]error: {type(e).__name__}: {e}[/]")
        return None

    def print(self, info: dict[str, Any]) -> None:
        self.console.print(self.table)
        self.console.print(f"[dim]machine: {describe_machine(info)}[/]")
        self.console.print(f"[dim]ratio to C: median of per-round events/s ratios (target >= {TARGET_RATIO}); per "
                           "CPU-second: the same with CPU time (steadier when other processes share the CPUs); "
                           "events/s: median over rounds, run loop only[/]")
        for f in self.failures:
            self.console.print(f"[bold red]failed:[/] {f}")


def _with_cpu_ratio(note: str, d: dict[str, Any]) -> str:
    return note + (f"; per CPU-second {d['cpu_ratio']:.3f}" if d.get("cpu_ratio") is not None else "")


def _dense(report: Report, sizes: Sizes, binary: Path | None, c_note: str, tmp: Path) -> None:
    """C, kvmtrace (in memory and streaming Parquet) and pure Python, interleaved rounds."""
    n, rounds = sizes.dense, sizes.rounds
    pq_why = parquet_missing()
    dense: dict[str, Callable[[], Measurement]] = {}
    if binary is not None:
        dense["C"] = lambda: c_step_loop(binary, n)
    dense["kvmtrace"] = lambda: kvmtrace_step_loop(n)
    if pq_why is None:
        counter = iter(range(1 << 30))
        dense["kvmtrace parquet"] = lambda: kvmtrace_step_loop(
            n, sink=str(tmp / f"run{next(counter)}.parquet"), name="kvmtrace parquet")
    dense["pure Python"] = lambda: py_step_loop(n)
    runs = report.attempt(f"single-step x{n:,}", lambda: interleave(dense, rounds))
    if runs:
        s = summarize(runs, "C" if binary is not None else None)
        rows = [
            ("single-step: C KVM_RUN loop", "C", f"reference; {rounds} interleaved rounds, median"),
            ("single-step: kvmtrace Machine.trace", "kvmtrace", "pc sequence verified"),
            ("  + streaming Parquet sink", "kvmtrace parquet", "zstd, written while running; CPU incl. the writer"),
            ("single-step: pure-Python ioctl loop", "pure Python", "fcntl.ioctl + ctypes"),
        ]
        if "C" in runs:
            rows[1] = (rows[1][0], rows[1][1], rows[1][2] + "; " + _user_note(runs["kvmtrace"], runs["C"]))
        for label, key, note in rows:
            if key not in s:
                continue
            d = s[key]
            report.row(label, _fmt_int(d["events"]), _fmt_int(d["events_per_s"]),
                       _fmt_ratio(d.get("ratio") if key != "C" else 1.0, key.startswith("kvmtrace")),
                       note if key == "C" else _with_cpu_ratio(note, d))
        if pq_why is not None:
            report.skipped("  + streaming Parquet sink", pq_why)
    if binary is None:
        report.skipped("single-step: C KVM_RUN loop", c_note)


def _user_note(mine: list[Measurement], refs: list[Measurement]) -> str:
    """User CPU per exit of both loops (medians), the median per-round difference and
    its resolution (tick sampling: short runs cannot resolve tens of ns)."""
    g = user_gap(mine, refs)
    if g is None:
        return ""
    return f"user CPU {g.mine_ns:.0f} ns/exit vs C {g.ref_ns:.0f} ({g.gap_ns:+.0f} +- {g.resolution_ns:.0f})"


def _modes(report: Report, sizes: Sizes, binary: Path | None) -> None:
    """The countdown guest with BLOCKIRQ in real and long mode, with and without stop_at,
    against the C loop on the same bytes in paired rounds."""
    if binary is None:
        return
    n = sizes.modes
    for mode in ("real", "long"):
        for stop_at in (False, True):
            label = f"single-step {mode} mode, BLOCKIRQ{', stop_at' if stop_at else ''}"

            def run(mode: str = mode, stop_at: bool = stop_at) -> dict[str, list[Measurement]]:
                runs = interleave({
                    "C": lambda: c_countdown(binary, mode, n, stop_at=stop_at),
                    "kvmtrace": lambda: kvmtrace_countdown(mode, n, stop_at=stop_at),
                }, sizes.mode_rounds)
                for a, b in zip(runs["kvmtrace"], runs["C"]):
                    check_same_pcs(a, b)
                return runs

            runs = report.attempt(label, run)
            if not runs:
                continue
            s = summarize(runs, "C")["kvmtrace"]
            k = runs["kvmtrace"]
            note = "; ".join(x for x in (_user_note(k, runs["C"]),
                                         f"{k[0].extra['bytes_per_event']:.0f} B/event",
                                         f"{sizes.mode_rounds} paired rounds") if x)
            report.row(label, _fmt_int(s["events"]), _fmt_int(s["events_per_s"]), _fmt_ratio(s.get("ratio"), True),
                       note)


def _registers(report: Report, sizes: Sizes, binary: Path | None) -> None:
    """Single-step capturing rip/rsp/rax: kvmtrace against C with KVM_CAP_SYNC_REGS."""
    n = sizes.dense
    contenders: dict[str, Callable[[], Measurement]] = {}
    if binary is not None:
        contenders["C --regs"] = lambda: c_step_loop(binary, n, regs=True, name="C --regs")
    contenders["kvmtrace regs"] = lambda: kvmtrace_step_loop(n, registers=REGS, name="kvmtrace regs")
    runs = report.attempt("registers", lambda: interleave(contenders, sizes.rounds))
    if not runs:
        return
    s = summarize(runs, "C --regs" if binary is not None else None)
    if "C --regs" in s:
        d = s["C --regs"]
        report.row("single-step + rip,rsp,rax: C (sync regs)", _fmt_int(d["events"]), _fmt_int(d["events_per_s"]),
                   "1.000", "reference (KVM_CAP_SYNC_REGS)")
    d = s["kvmtrace regs"]
    report.row("single-step + rip,rsp,rax: kvmtrace", _fmt_int(d["events"]), _fmt_int(d["events_per_s"]),
               _fmt_ratio(d.get("ratio"), True), _with_cpu_ratio("rip == pc and rax checked", d))


def _sparse(report: Report, sizes: Sizes) -> None:
    """The hot guest with and without an exec breakpoint on its hot function; Unicorn alike."""
    calls = sizes.hot_calls

    def run() -> dict[str, list[Measurement]]:
        c: dict[str, Callable[[], Measurement]] = {
            "nodebug": lambda: kvmtrace_hot(calls, breakpoint=False),
            "bp": lambda: kvmtrace_hot(calls, breakpoint=True),
        }
        if unicorn_missing() is None:
            c["uc"] = lambda: unicorn_hot(calls, hook=False)
            c["uc_hook"] = lambda: unicorn_hot(calls, hook=True)
        return interleave(c, sizes.rounds)

    runs = report.attempt("sparse breakpoint", run)
    if not runs:
        return
    nd = statistics.median(m.seconds for m in runs["nodebug"])
    report.row("sparse: hot guest, kvmtrace, no debugging", note=f"{calls:,} calls in {nd * 1e3:.1f} ms")
    bp = runs["bp"]
    rf = "RF resume: 1 KVM_RUN" if bp[0].extra["rf_resume"] else "no RF resume on this host: disarm, step, re-arm"
    report.row("sparse: kvmtrace hw exec breakpoint (hits)", _fmt_int(calls),
               _fmt_int(statistics.median(m.events_per_s for m in bp)),
               note=f"cost per hit {cost_per_hit(bp, runs['nodebug']) * 1e6:.1f} us; "
                    f"{bp[0].extra['ioctls_per_hit']:.0f} ioctls per hit ({rf})")
    if "uc" in runs:
        u = statistics.median(m.seconds for m in runs["uc"])
        uh = runs["uc_hook"]
        report.row("sparse: Unicorn UC_HOOK_CODE (hits)", _fmt_int(calls),
                   _fmt_int(statistics.median(m.events_per_s for m in uh)),
                   note=f"cost per hit {cost_per_hit(uh, runs['uc']) * 1e6:.1f} us; no hook: {u * 1e3:.1f} ms")
    else:
        report.skipped("sparse: Unicorn UC_HOOK_CODE", str(unicorn_missing()))


def _memory(report: Report, sizes: Sizes) -> None:
    """Bytes per event of an in-memory trace, without and with three registers."""
    def run() -> tuple[Measurement, Measurement]:
        a = kvmtrace_step_loop(sizes.memory, check=False)
        b = kvmtrace_step_loop(sizes.memory, registers=REGS, check=False, name="kvmtrace regs")
        return a, b

    r = report.attempt("memory per event", run)
    if r:
        a, b = r
        report.row("memory: in-memory trace", _fmt_int(a.events), _fmt_int(a.events_per_s),
                   note=f"{a.extra['memory_bytes'] / a.events:.1f} B/event; "
                        f"{b.extra['memory_bytes'] / b.events:.1f} with rip,rsp,rax")


def _streaming(report: Report, sizes: Sizes, tmp: Path) -> None:
    """Peak RSS of streamed runs of two lengths: it must not grow with the event count."""
    pq_why = parquet_missing()
    kinds = ["null"] + (["parquet"] if pq_why is None else [])

    def run() -> dict[str, list[dict[str, Any]]]:
        return {kind: [measure_rss(ev, kind, tmp / f"rss-{kind}-{ev}.parquet" if kind == "parquet" else None,
                                   sink_rows=sizes.sink_rows) for ev in sizes.stream]
                for kind in kinds}

    r = report.attempt("streaming RSS", run)
    if not r:
        return
    mib = 1 << 20
    for kind, (small, large) in r.items():
        peak = large["peak_rss_bytes"]
        ok = peak < RSS_LIMIT_BYTES and small["peak_rss_bytes"] < RSS_LIMIT_BYTES
        if not ok:
            report.failures.append(f"streaming RSS ({kind}): peak {peak / mib:.0f} MiB >= {RSS_LIMIT_BYTES // mib} MiB")
        label = "null sink (engine only)" if kind == "null" else "Parquet sink"
        report.row(f"memory: streaming, {label}", _fmt_int(large["events"]), _fmt_int(large["events_per_s"]),
                   note=f"peak RSS {small['peak_rss_bytes'] / mib:.0f} MiB at {small['events']:,} -> "
                        f"{peak / mib:.0f} MiB at {large['events']:,}"
                        + (f" (sink_rows={sizes.sink_rows:,})" if sizes.sink_rows else "")
                        + ("" if ok else f" [red](over {RSS_LIMIT_BYTES // mib} MiB)[/]"))
    if pq_why is not None:
        report.skipped("memory: streaming, Parquet sink", pq_why)


def _analysis(report: Report, sizes: Sizes) -> None:
    """kvmtrace.analyze on synthetic traces with few and with many distinct pcs."""
    an_why = analysis_missing()
    if an_why is not None:
        report.skipped("analysis: kvmtrace.analyze", an_why)
        return
    for label, distinct in (("4 distinct pcs", None), (f"{WIDE_PCS:,} distinct pcs", WIDE_PCS)):
        def run(d: int | None = distinct) -> Measurement:
            return analysis_throughput(synthetic_step_trace(sizes.analysis, d))

        r = report.attempt(f"analysis ({label})", run)
        if r:
            note = f"synthetic single-step trace, {label}"
            if not r.extra["ok"]:
                note += f"; [yellow]failed rules {r.extra['failed_rules']}[/]"
            report.row("analysis: kvmtrace.analyze (all rules)", _fmt_int(r.events), _fmt_int(r.events_per_s),
                       note=note)


def main(console: Any = None, *, quick: bool = False) -> int:
    """Run a compact benchmark and print a table; 0 on success, 1 if a run failed or KVM is unusable."""
    from rich.console import Console

    console = console or Console()
    sizes = QUICK if quick else FULL
    info = machine_info()
    why = kvm_missing()
    if why:
        console.print(f"[bold red]error:[/] {why}")
        return 1
    report = Report(console, quick)
    with tempfile.TemporaryDirectory(prefix="kvmtrace-bench-") as tmp_name:
        tmp = Path(tmp_name)
        binary: Path | None = None
        c_note = ""
        try:
            with console.status("[bold]bench:[/] compiling the C baseline ..."):
                binary = cbaseline.compile_c_baseline(tmp / "c")
        except cbaseline.CBaselineError as e:
            c_note = str(e).splitlines()[0]
        _dense(report, sizes, binary, c_note, tmp)
        _modes(report, sizes, binary)
        _registers(report, sizes, binary)
        _sparse(report, sizes)
        _memory(report, sizes)
        _streaming(report, sizes, tmp)
        _analysis(report, sizes)
    report.print(info)
    return 1 if report.failures else 0
