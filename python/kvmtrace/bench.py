"""``kvmtrace bench``: kvmtrace against a plain C KVM_RUN loop, a pure-Python loop and Unicorn.

The measurement functions here are shared by the CLI (:func:`main`, a compact run
printed as a rich table) and the pytest-benchmark suite in ``benches/`` (the long
runs and the saved results used for ``--benchmark-compare``).

Contenders, all running the same real-mode guest bytes (:mod:`kvmtrace._bench.guests`):

* **C**: ``kvm_step.c`` (shipped in ``kvmtrace/_bench/``), compiled with ``cc -O2``
  at benchmark time: a bare ``KVM_RUN`` loop storing pc/dr6/dr7/exception per exit
  into pre-faulted arrays (``--regs``: plus rip/rsp/rax from ``kvm_run->s.regs``);
* **kvmtrace**: ``Machine.trace(GuestDebug(single_step=True), max_events=N)`` from
  Python, timed by the engine (``Trace.elapsed_s``: thread start to join);
* **pure Python**: the same ioctl loop written with ``fcntl.ioctl`` + ctypes;
* **Unicorn** (if installed): ``UC_HOOK_CODE`` on the hot function of the sparse guest.

Every loop times only its run loop (setup excluded), so events/s compare the
per-exit cost. Rounds are interleaved (order reversed every other round) and the
ratio to C is the median of the per-round ratios, because this class of machine
(a VM, KVM inside it) drifts by 10-40 % between consecutive runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kvmtrace._bench import cbaseline
from kvmtrace._bench.guests import (
    HOT_FUNC_OFFSET,
    LOAD_ADDR,
    STEP_LOOP,
    STEP_LOOP_INSN_OFFSETS,
    make_hot_guest,
)
from kvmtrace.host import kvm_problem

TARGET_RATIO = 0.97
"""kvmtrace's single-step events/s must be at least this fraction of the C loop's."""

RSS_LIMIT_BYTES = 300 << 20
"""Peak process RSS allowed while streaming a trace to a sink, whatever the event count."""

DR6_BS = 1 << 14
DB_VECTOR = 1
REGS = ("rip", "rsp", "rax")
HOT_ADDR = LOAD_ADDR + HOT_FUNC_OFFSET
HOT_OUT_OFFSET = 0x10  # `out %al, $0xf4` in the hot guest: where Unicorn stops
MEMORY_SIZE = 1 << 20  # the benchmark guests live below 1 MiB (real mode)
WIDE_PCS = 30_000  # distinct instructions of the wide synthetic analysis trace


class BenchCheckError(AssertionError):
    """A benchmark run produced wrong results (wrong pcs, wrong stop, ...)."""


@dataclasses.dataclass
class Measurement:
    """One timed run: ``events`` recorded in ``seconds`` of the run loop."""

    name: str
    events: int
    seconds: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    cpu_seconds: float | None = None
    """CPU time (user + system) spent on the run: unlike wall time, not inflated when
    other processes share the CPUs."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_events_per_s(self) -> float | None:
        """Events per CPU-second (None when the contender does not report CPU time)."""
        if self.cpu_seconds is None or self.cpu_seconds <= 0:
            return None
        return self.events / self.cpu_seconds


# ---------------------------------------------------------------------------
# correctness of the dense runs
# ---------------------------------------------------------------------------
_STEP_PCS = np.array([LOAD_ADDR + o for o in STEP_LOOP_INSN_OFFSETS], dtype=np.uint64)


def step_loop_pcs(seq: np.ndarray | int) -> np.ndarray:
    """Architectural pc of STEP_LOOP single-step events ``seq`` (or ``range(seq)``).

    A single-step #DB is a trap: event *i* reports the instruction after the
    *i*-th one, so the sequence is 0x8001, 0x8003, 0x8004, 0x8000, 0x8001, ...
    """
    if isinstance(seq, (int, np.integer)):
        seq = np.arange(int(seq), dtype=np.uint64)
    k = np.uint64(len(_STEP_PCS))
    return _STEP_PCS[((np.asarray(seq, dtype=np.uint64) + np.uint64(1)) % k).astype(np.intp)]


def step_loop_checksum(n: int) -> int:
    """XOR of the first ``n`` STEP_LOOP pcs (what the C and Python loops report)."""
    return int(np.bitwise_xor.reduce(step_loop_pcs(n))) if n else 0


def check_step_loop(pc: Any, dr6: Any, exception: Any, seq: Any = None) -> None:
    """Raise BenchCheckError unless the rows are STEP_LOOP's single-step events."""
    pc = np.asarray(pc, dtype=np.uint64)
    seq = np.arange(len(pc), dtype=np.uint64) if seq is None else np.asarray(seq, dtype=np.uint64)
    expected = step_loop_pcs(seq)
    bad = np.flatnonzero(pc != expected)
    if bad.size:
        i = int(bad[0])
        raise BenchCheckError(
            f"pc mismatch at event seq={int(seq[i])}: expected {int(expected[i]):#x}, observed {int(pc[i]):#x}"
        )
    if not np.all(np.asarray(dr6, dtype=np.uint64) & np.uint64(DR6_BS)):
        raise BenchCheckError("DR6.BS is not set on every single-step exit")
    if not np.all(np.asarray(exception) == DB_VECTOR):
        raise BenchCheckError("an exit of the single-step loop is not vector 1 (#DB)")


def _check_regs(trace: Any) -> None:
    regs = trace.registers
    seq = np.asarray(trace.seq, dtype=np.uint64)
    if not np.array_equal(regs["rip"], trace.pc):  # cs.base == 0: rip == linear pc
        raise BenchCheckError("captured rip differs from the exit pc")
    # `inc %ax` is the first instruction of each 4-instruction iteration (16-bit: wraps).
    expected_rax = (seq // np.uint64(4) + np.uint64(1)) & np.uint64(0xFFFF)
    if not np.array_equal(regs["rax"], expected_rax):
        i = int(np.flatnonzero(regs["rax"] != expected_rax)[0])
        raise BenchCheckError(f"captured rax at seq={int(seq[i])} is {int(regs['rax'][i])}, expected {int(expected_rax[i])}")


# ---------------------------------------------------------------------------
# dense single-step contenders
# ---------------------------------------------------------------------------
def kvmtrace_step_loop(
    events: int,
    *,
    registers: Sequence[str] = (),
    sink: Any = None,
    sink_rows: int | None = None,
    check: bool = True,
    name: str = "kvmtrace",
    keep_trace: bool = False,
) -> Measurement:
    """Single-step STEP_LOOP for ``events`` exits with ``Machine.trace`` (from Python)."""
    import kvmtrace

    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(STEP_LOOP, LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        t = m.trace(
            kvmtrace.GuestDebug(single_step=True),
            max_events=events,
            registers=tuple(registers),
            sink=sink,
            sink_rows=sink_rows,
        )
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    n = t.event_count
    if t.stop_reason != kvmtrace.StopReason.MAX_EVENTS or n != events:
        raise BenchCheckError(f"{name}: expected {events} events and stop max_events, got {n} and {t.stop_reason}")
    if check:
        # With a sink only the unflushed tail is in memory: check it by its seq.
        check_step_loop(t.pc, t.dr6, t.exception, t.seq)
        if registers:
            _check_regs(t)
    meas = Measurement(
        name,
        n,
        t.elapsed_s,
        {"wall_s": wall, "memory_bytes": t.memory_bytes, "rows_in_memory": len(t), "exits": t.exits},
        # The whole process (the vCPU thread, the calling thread, any sink work):
        # conservative against the C loop's single thread.
        cpu_seconds=cpu,
    )
    if keep_trace:
        meas.extra["trace"] = t
    return meas


def c_step_loop(binary: str | os.PathLike[str], events: int, *, regs: bool = False, name: str = "C") -> Measurement:
    """The C baseline on STEP_LOOP (its loop time, from CLOCK_MONOTONIC inside the program)."""
    r = cbaseline.run_c(binary, STEP_LOOP, events, regs=regs)
    if r["events"] != events or r["stop"] != "limit" or r["checksum"] != step_loop_checksum(events):
        raise BenchCheckError(f"{name}: unexpected result {r} (expected {events} events, checksum {step_loop_checksum(events)})")
    return Measurement(name, r["events"], r["seconds"], {"stop": r["stop"]}, cpu_seconds=r.get("cpu_seconds"))


def py_step_loop(events: int, *, regs: bool = False, name: str = "pure Python") -> Measurement:
    """The pure-Python ioctl loop on STEP_LOOP."""
    from kvmtrace._bench.pyloop import run_pyloop

    r = run_pyloop(STEP_LOOP, events, regs=regs)
    if r["events"] != events or r["stop"] != "limit" or r["checksum"] != step_loop_checksum(events):
        raise BenchCheckError(f"{name}: unexpected result {r}")
    return Measurement(name, r["events"], r["seconds"], {"stop": r["stop"]}, cpu_seconds=r.get("cpu_seconds"))


def interleave(
    contenders: Mapping[str, Callable[[], Measurement]],
    rounds: int,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, list[Measurement]]:
    """Run every contender once per round, reversing the order every other round."""
    names = list(contenders)
    out: dict[str, list[Measurement]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            if progress is not None:
                progress(n, r)
            out[n].append(contenders[n]())
    return out


def summarize(runs: Mapping[str, Sequence[Measurement]], reference: str | None = None) -> dict[str, dict[str, Any]]:
    """Per contender: median/best events/s and, against ``reference``, the ratios.

    ``ratio`` is the median over rounds of (contender / reference) from the same
    round (paired, so slow phases of the machine cancel out); ``ratio_best`` is
    best / best; ``cpu_ratio`` is the median paired ratio of events per CPU-second.
    """
    ref = list(runs[reference]) if reference is not None and reference in runs else None
    out: dict[str, dict[str, Any]] = {}
    for name, ms in runs.items():
        rates = [m.events_per_s for m in ms]
        d: dict[str, Any] = {
            "events": ms[0].events if ms else 0,
            "rounds": len(ms),
            "events_per_s": statistics.median(rates) if rates else 0.0,
            "events_per_s_best": max(rates) if rates else 0.0,
            "events_per_s_rounds": rates,
        }
        if ref is not None and ms:
            pairs = [m.events_per_s / c.events_per_s for m, c in zip(ms, ref) if c.events_per_s > 0]
            d["ratio"] = statistics.median(pairs) if pairs else None
            d["ratio_rounds"] = pairs
            best_ref = max(c.events_per_s for c in ref)
            d["ratio_best"] = d["events_per_s_best"] / best_ref if best_ref > 0 else None
            cpu_pairs = [a / b for a, b in ((m.cpu_events_per_s, c.cpu_events_per_s) for m, c in zip(ms, ref))
                         if a is not None and b]
            d["cpu_ratio"] = statistics.median(cpu_pairs) if cpu_pairs else None
            d["cpu_ratio_rounds"] = cpu_pairs
        cpu_rates = [m.cpu_events_per_s for m in ms if m.cpu_events_per_s is not None]
        d["cpu_events_per_s"] = statistics.median(cpu_rates) if cpu_rates else None
        out[name] = d
    return out


# ---------------------------------------------------------------------------
# sparse: exec breakpoint on the hot function
# ---------------------------------------------------------------------------
def kvmtrace_hot(calls: int, *, breakpoint: bool) -> Measurement:
    """Run HOT_GUEST (``calls`` calls of the hot function) with or without an exec breakpoint on it."""
    import kvmtrace

    if breakpoint:
        debug = kvmtrace.GuestDebug(hw_breakpoints=[kvmtrace.HwBreakpoint(HOT_ADDR, kind="exec")])
    else:
        debug = kvmtrace.GuestDebug()  # KVM_GUESTDBG_ENABLE only: no step, no breakpoint
    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(make_hot_guest(calls), LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        t = m.trace(debug)
    name = "kvmtrace hw exec breakpoint" if breakpoint else "kvmtrace, no debugging"
    if t.stop_reason != kvmtrace.StopReason.EXIT_PORT:
        raise BenchCheckError(f"{name}: the hot guest stopped with {t.stop_reason}, expected exit_port")
    hits = len(t)
    if breakpoint:
        if hits != calls:
            raise BenchCheckError(f"{name}: {hits} breakpoint hits, expected {calls}")
        if not (np.all(t.pc == HOT_ADDR) and np.all(t.exception == DB_VECTOR) and np.all(t.dr6 & 1)):
            raise BenchCheckError(f"{name}: a hit is not a #DB with B0 at {HOT_ADDR:#x}")
    elif hits:
        raise BenchCheckError(f"{name}: {hits} events recorded without any debug feature")
    return Measurement(name, hits, t.elapsed_s, {"calls": calls, "exits": t.exits})


def unicorn_missing() -> str | None:
    """None if Unicorn can be imported, else why not."""
    try:
        import unicorn  # noqa: F401
    except ImportError as e:
        return f"unicorn is not installed ({e}); pip install unicorn"
    return None


def unicorn_hot(calls: int, *, hook: bool) -> Measurement:
    """Run the same HOT_GUEST bytes in Unicorn (16-bit), optionally with UC_HOOK_CODE on the hot function."""
    from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_MODE_16, Uc
    from unicorn.x86_const import UC_X86_REG_ECX, UC_X86_REG_EIP

    mu = Uc(UC_ARCH_X86, UC_MODE_16)
    mu.mem_map(0, MEMORY_SIZE)
    mu.mem_write(LOAD_ADDR, make_hot_guest(calls))
    hits = 0

    def on_code(uc: Any, address: int, size: int, user_data: Any) -> None:
        nonlocal hits
        hits += 1

    if hook:
        # Only the hot function's entry: one callback per call, like one breakpoint hit.
        mu.hook_add(UC_HOOK_CODE, on_code, begin=HOT_ADDR, end=HOT_ADDR)
    t0 = time.perf_counter()
    mu.emu_start(LOAD_ADDR, LOAD_ADDR + HOT_OUT_OFFSET)
    seconds = time.perf_counter() - t0
    name = "Unicorn UC_HOOK_CODE" if hook else "Unicorn, no hook"
    if mu.reg_read(UC_X86_REG_EIP) != LOAD_ADDR + HOT_OUT_OFFSET or mu.reg_read(UC_X86_REG_ECX) != 0:
        raise BenchCheckError(f"{name}: the guest did not finish its {calls} calls")
    if hook and hits != calls:
        raise BenchCheckError(f"{name}: {hits} hook calls, expected {calls}")
    return Measurement(name, hits, seconds, {"calls": calls})


def cost_per_hit(with_hits: Sequence[Measurement], without: Sequence[Measurement]) -> float:
    """Median seconds added per hit: (t_with - t_without) / hits, paired by round."""
    costs = [(a.seconds - b.seconds) / a.events for a, b in zip(with_hits, without) if a.events]
    return statistics.median(costs) if costs else float("nan")


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
class NullSink:
    """A trace sink that drops every chunk: the engine's own streaming memory, without a writer."""

    def __init__(self) -> None:
        self.rows = 0
        self.chunks = 0

    def write(self, chunk: Any) -> None:
        self.rows += len(chunk)
        self.chunks += 1

    def close(self, trace: Any) -> None:
        pass


def parquet_missing() -> str | None:
    """None if the streaming Parquet sink (kvmtrace.export.ParquetSink) is available, else why not."""
    try:
        from kvmtrace.export import ParquetSink  # noqa: F401
    except ImportError as e:
        return f"kvmtrace.export.ParquetSink is not importable ({e})"
    return None


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_child(events: int, kind: str, path: str | None = None, sink_rows: int | None = None,
              registers: Sequence[str] = ()) -> dict[str, Any]:
    """In a fresh process: single-step STEP_LOOP for ``events`` exits and report memory.

    ``kind``: "memory" (no sink: rows kept in memory), "null" (:class:`NullSink`)
    or "parquet" (``sink=path``). Peak RSS is VmHWM of this process.
    """
    import kvmtrace

    with kvmtrace.Machine(memory_size=MEMORY_SIZE, mode="real") as m:
        m.load(STEP_LOOP, LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        rss_before = _proc_status_kib("VmRSS")
        sink: Any = None
        if kind == "null":
            sink = NullSink()
        elif kind == "parquet":
            if not path:
                raise ValueError("parquet needs a path")
            sink = path
        elif kind != "memory":
            raise ValueError(f"unknown kind {kind!r}")
        t = m.trace(kvmtrace.GuestDebug(single_step=True), max_events=events, sink=sink,
                    sink_rows=sink_rows, registers=tuple(registers))
    out = {
        "events": t.event_count,
        "rows_in_memory": len(t),
        "stop": str(t.stop_reason),
        "seconds": t.elapsed_s,
        "events_per_s": t.events_per_s,
        "rss_before_kib": rss_before,
        "vm_hwm_kib": _proc_status_kib("VmHWM"),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "memory_bytes": t.memory_bytes,
    }
    if kind == "parquet" and path:
        out["file_bytes"] = _tree_size(Path(path))
    return out


def _tree_size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def measure_rss(events: int, kind: str, path: str | os.PathLike[str] | None = None, *,
                sink_rows: int | None = None, registers: Sequence[str] = (),
                timeout: float | None = None) -> dict[str, Any]:
    """Run :func:`rss_child` in a subprocess (so peak RSS is that run's alone) and return its report."""
    args = {"events": int(events), "kind": kind, "path": os.fspath(path) if path else None, "sink_rows": sink_rows,
            "registers": list(registers)}
    code = (
        "import json, sys\n"
        "from kvmtrace.bench import rss_child\n"
        "print('KVMTRACE-RSS ' + json.dumps(rss_child(**json.loads(sys.argv[1]))))\n"
    )
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("KVMTRACE-RSS "):
            r: dict[str, Any] = json.loads(line[len("KVMTRACE-RSS "):])
            # VmHWM is this mm's own peak. ru_maxrss is not used: Linux carries the
            # pre-exec peak (the forked copy of the parent) into it.
            r["peak_rss_bytes"] = (r.get("vm_hwm_kib") or r.get("ru_maxrss_kib") or 0) * 1024
            return r
    raise BenchCheckError(f"RSS child ({kind}, {events} events) failed with exit code {proc.returncode}:\n"
                          f"{proc.stderr.strip()[-2000:]}")


# ---------------------------------------------------------------------------
# analysis throughput
# ---------------------------------------------------------------------------
def wide_loop(m: int) -> bytes:
    """Real-mode loop of ``m`` distinct instructions: ``m`` x ``inc %ax`` then ``jmp`` back (rel16)."""
    if not 1 <= m <= 0xF000 - LOAD_ADDR // 2:
        raise ValueError(f"m must be in [1, {0xF000 - LOAD_ADDR // 2}]")
    disp = (-(m + 3)) & 0xFFFF
    return b"\x40" * m + b"\xe9" + disp.to_bytes(2, "little")


def synthetic_step_trace(n: int, distinct: int | None = None) -> Any:
    """An architecturally clean single-step trace of ``n`` events (``kvmtrace.Trace.from_columns``).

    ``distinct=None``: STEP_LOOP (4 distinct pcs); otherwise :func:`wide_loop`
    with ``distinct`` instructions, so the decoding rules see that many pcs.
    """
    import kvmtrace

    debug = kvmtrace.GuestDebug(single_step=True)
    seq = np.arange(n, dtype=np.uint64)
    if distinct is None:
        pc, code = step_loop_pcs(seq), STEP_LOOP
    else:
        code = wide_loop(distinct)
        pc = np.uint64(LOAD_ADDR) + (seq + np.uint64(1)) % np.uint64(distinct + 1)
    cols = {
        "seq": seq,
        "vcpu": np.zeros(n, dtype=np.uint16),
        "time_ns": seq * np.uint64(8000),
        "pc": pc,
        "dr6": np.full(n, 0xFFFF4FF0, dtype=np.uint64),  # DR6.BS | the bits that read 1
        "dr7": np.full(n, debug.dr7, dtype=np.uint64),  # the programmed DR7 (bit 10 set)
        "exception": np.full(n, DB_VECTOR, dtype=np.uint8),
    }
    return kvmtrace.Trace.from_columns(
        cols, mode="real", debug=debug, code_regions=[(LOAD_ADDR, code)],
        stop_reason="max_events", event_count=n,
    )


def analysis_missing() -> str | None:
    try:
        from kvmtrace.analysis import analyze  # noqa: F401
    except ImportError as e:
        return f"kvmtrace.analysis is not importable ({e})"
    return None


def analysis_throughput(trace: Any) -> Measurement:
    """Time ``kvmtrace.analyze(trace)`` (all rules) on a trace."""
    import kvmtrace

    t0 = time.perf_counter()
    report = kvmtrace.analyze(trace)
    seconds = time.perf_counter() - t0
    failed = [getattr(r, "id", str(r)) for r in report.failed]
    statuses = {getattr(r, "id", "?"): getattr(r, "status", "?") for r in report.rules}
    return Measurement("kvmtrace.analyze", len(trace), seconds,
                       {"ok": bool(report.ok), "failed_rules": failed, "rules": statuses})


# ---------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU, cores, kernel, KVM module and kvmtrace build: the context every figure needs."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", "x86_64", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    kvm_modules = sorted(m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.isdir(f"/sys/module/{m}"))
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "virtualized": "hypervisor" in flags,
        "hw_virt_flags": sorted(flags & {"vmx", "svm"}),
        "kvm_modules": kvm_modules,
        "python": platform.python_version(),
    }
    try:
        import kvmtrace

        info["kvmtrace"] = kvmtrace.__version__
        info["build_profile"] = kvmtrace.build_profile
    except Exception:  # noqa: BLE001 - informational only
        pass
    return info


def describe_machine(info: Mapping[str, Any] | None = None) -> str:
    info = info or machine_info()
    where = "VM" if info.get("virtualized") else "bare metal"
    kvm = "+".join(info.get("kvm_modules") or ["kvm?"])
    hw = ",".join(info.get("hw_virt_flags") or []) or "no vmx/svm visible"
    return (f"{info.get('cpu')} ({info.get('cpus')} CPUs, {where}), Linux {info.get('kernel')}, "
            f"KVM module {kvm} ({hw}), Python {info.get('python')}, kvmtrace {info.get('kvmtrace', '?')}"
            f" ({info.get('build_profile', '?')})")


def kvm_missing() -> str | None:
    """None if /dev/kvm can be opened read-write, else the reason."""
    why = kvm_problem()
    return None if why is None else f"{why}; benchmarks need KVM access"


# ---------------------------------------------------------------------------
# `kvmtrace bench`
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class _Sizes:
    dense: int
    rounds: int
    hot_calls: int
    memory: int
    stream: tuple[int, int]
    sink_rows: int | None  # None: the engine's default chunk size
    analysis: int


QUICK = _Sizes(dense=20_000, rounds=2, hot_calls=2_000, memory=100_000, stream=(50_000, 200_000), sink_rows=20_000,
               analysis=500_000)
FULL = _Sizes(dense=200_000, rounds=3, hot_calls=20_000, memory=1_000_000, stream=(1_200_000, 2_500_000),
              sink_rows=None, analysis=5_000_000)


def _fmt_int(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def _fmt_ratio(r: float | None, target: bool = False) -> str:
    if r is None:
        return "-"
    if target:
        return f"[green]{r:.3f}[/]" if r >= TARGET_RATIO else f"[yellow]{r:.3f}[/]"
    return f"{r:.3f}"


def main(console: Any = None, *, quick: bool = False) -> int:
    """Run a compact benchmark and print a table; 0 on success, 1 if a run failed or KVM is unusable."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    sizes = QUICK if quick else FULL
    info = machine_info()
    why = kvm_missing()
    if why:
        console.print(f"[bold red]error:[/] {why}")
        return 1

    table = Table(title="kvmtrace bench" + (" (quick)" if quick else ""), title_justify="left")
    table.add_column("benchmark")
    table.add_column("events", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("ratio to C", justify="right")
    table.add_column("notes")
    failures: list[str] = []

    def attempt(label: str, fn: Callable[[], Any]) -> Any:
        try:
            with console.status(f"[bold]bench:[/] {label} ..."):
                return fn()
        except BenchCheckError as e:
            failures.append(f"{label}: {e}")
            table.add_row(label, "-", "-", "-", f"[red]FAILED: {e}[/]")
        except Exception as e:  # noqa: BLE001 - report and carry on with the other benchmarks
            failures.append(f"{label}: {type(e).__name__}: {e}")
            table.add_row(label, "-", "-", "-", f"[red]error: {type(e).__name__}: {e}[/]")
        return None

    with tempfile.TemporaryDirectory(prefix="kvmtrace-bench-") as tmp:
        binary: Path | None = None
        c_note = ""
        try:
            with console.status("[bold]bench:[/] compiling the C baseline ..."):
                binary = cbaseline.compile_c_baseline(Path(tmp) / "c")
        except cbaseline.CBaselineError as e:
            c_note = str(e).splitlines()[0]

        # 1 + 2: dense single-step, interleaved rounds -------------------------------
        n, rounds = sizes.dense, sizes.rounds
        pq_why = parquet_missing()
        dense: dict[str, Callable[[], Measurement]] = {}
        if binary is not None:
            dense["C"] = lambda: c_step_loop(binary, n)
        dense["kvmtrace"] = lambda: kvmtrace_step_loop(n)
        if pq_why is None:
            counter = iter(range(1 << 30))
            dense["kvmtrace parquet"] = lambda: kvmtrace_step_loop(
                n, sink=str(Path(tmp) / f"run{next(counter)}.parquet"), name="kvmtrace parquet")
        dense["pure Python"] = lambda: py_step_loop(n)
        runs = attempt(f"single-step x{n:,}", lambda: interleave(dense, rounds))
        if runs:
            s = summarize(runs, "C" if binary is not None else None)
            rows = [
                ("single-step: C KVM_RUN loop", "C", f"reference; {rounds} interleaved rounds, median"),
                ("single-step: kvmtrace Machine.trace", "kvmtrace", "pc sequence verified"),
                ("  + streaming Parquet sink", "kvmtrace parquet", "zstd, written while running; CPU incl. the writer"),
                ("single-step: pure-Python ioctl loop", "pure Python", "fcntl.ioctl + ctypes"),
            ]
            for label, key, note in rows:
                if key not in s:
                    continue
                d = s[key]
                if key != "C" and d.get("cpu_ratio") is not None:
                    note += f"; per CPU-second {d['cpu_ratio']:.3f}"
                table.add_row(label, _fmt_int(d["events"]), _fmt_int(d["events_per_s"]),
                              _fmt_ratio(d.get("ratio") if key != "C" else 1.0, key.startswith("kvmtrace")), note)
            if pq_why is not None:
                table.add_row("  + streaming Parquet sink", "-", "-", "-", f"skipped: {pq_why}")
        if binary is None:
            table.add_row("single-step: C KVM_RUN loop", "-", "-", "-", f"skipped: {c_note}")

        regs_c: dict[str, Callable[[], Measurement]] = {}
        if binary is not None:
            regs_c["C --regs"] = lambda: c_step_loop(binary, n, regs=True, name="C --regs")
        regs_c["kvmtrace regs"] = lambda: kvmtrace_step_loop(n, registers=REGS, name="kvmtrace regs")
        runs = attempt("registers", lambda: interleave(regs_c, rounds))
        if runs:
            s = summarize(runs, "C --regs" if binary is not None else None)
            if "C --regs" in s:
                d = s["C --regs"]
                table.add_row("single-step + rip,rsp,rax: C (sync regs)", _fmt_int(d["events"]),
                              _fmt_int(d["events_per_s"]), "1.000", "reference (KVM_CAP_SYNC_REGS)")
            d = s["kvmtrace regs"]
            note = "rip == pc and rax checked"
            if d.get("cpu_ratio") is not None:
                note += f"; per CPU-second {d['cpu_ratio']:.3f}"
            table.add_row("single-step + rip,rsp,rax: kvmtrace", _fmt_int(d["events"]), _fmt_int(d["events_per_s"]),
                          _fmt_ratio(d.get("ratio"), True), note)

        # 3: sparse hw breakpoint ---------------------------------------------------
        calls = sizes.hot_calls

        def sparse() -> dict[str, list[Measurement]]:
            c: dict[str, Callable[[], Measurement]] = {
                "nodebug": lambda: kvmtrace_hot(calls, breakpoint=False),
                "bp": lambda: kvmtrace_hot(calls, breakpoint=True),
            }
            if unicorn_missing() is None:
                c["uc"] = lambda: unicorn_hot(calls, hook=False)
                c["uc_hook"] = lambda: unicorn_hot(calls, hook=True)
            return interleave(c, rounds)

        runs = attempt("sparse breakpoint", sparse)
        if runs:
            nd = statistics.median(m.seconds for m in runs["nodebug"])
            table.add_row("sparse: hot guest, kvmtrace, no debugging", "-", "-", "-",
                          f"{calls:,} calls in {nd * 1e3:.1f} ms")
            bp = runs["bp"]
            cph = cost_per_hit(bp, runs["nodebug"])
            table.add_row("sparse: kvmtrace hw exec breakpoint (hits)", _fmt_int(calls),
                          _fmt_int(statistics.median(m.events_per_s for m in bp)), "-",
                          f"cost per hit {cph * 1e6:.1f} us")
            if "uc" in runs:
                u = statistics.median(m.seconds for m in runs["uc"])
                uh = runs["uc_hook"]
                table.add_row("sparse: Unicorn UC_HOOK_CODE (hits)", _fmt_int(calls),
                              _fmt_int(statistics.median(m.events_per_s for m in uh)), "-",
                              f"cost per hit {cost_per_hit(uh, runs['uc']) * 1e6:.1f} us; "
                              f"no hook: {u * 1e3:.1f} ms")
            else:
                table.add_row("sparse: Unicorn UC_HOOK_CODE", "-", "-", "-", f"skipped: {unicorn_missing()}")

        # 4: memory -----------------------------------------------------------------
        def mem() -> tuple[Measurement, Measurement]:
            a = kvmtrace_step_loop(sizes.memory, check=False)
            b = kvmtrace_step_loop(sizes.memory, registers=REGS, check=False, name="kvmtrace regs")
            return a, b

        r = attempt("memory per event", mem)
        if r:
            a, b = r
            table.add_row("memory: in-memory trace", _fmt_int(a.events), _fmt_int(a.events_per_s), "-",
                          f"{a.extra['memory_bytes'] / a.events:.1f} B/event; "
                          f"{b.extra['memory_bytes'] / b.events:.1f} with rip,rsp,rax")

        kinds = ["null"] + (["parquet"] if pq_why is None else [])

        def stream() -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = {}
            for kind in kinds:
                out[kind] = [measure_rss(ev, kind, Path(tmp) / f"rss-{kind}-{ev}.parquet" if kind == "parquet" else None,
                                         sink_rows=sizes.sink_rows)
                             for ev in sizes.stream]
            return out

        r = attempt("streaming RSS", stream)
        if r:
            for kind, reps in r.items():
                small, large = reps
                peak = large["peak_rss_bytes"]
                ok = peak < RSS_LIMIT_BYTES and small["peak_rss_bytes"] < RSS_LIMIT_BYTES
                if not ok:
                    failures.append(f"streaming RSS ({kind}): peak {peak / 2**20:.0f} MiB >= 300 MiB")
                label = "null sink (engine only)" if kind == "null" else "Parquet sink"
                table.add_row(f"memory: streaming, {label}", _fmt_int(large["events"]),
                              _fmt_int(large["events_per_s"]), "-",
                              f"peak RSS {small['peak_rss_bytes'] / 2**20:.0f} MiB at {small['events']:,} -> "
                              f"{peak / 2**20:.0f} MiB at {large['events']:,}"
                              + (f" (sink_rows={sizes.sink_rows:,})" if sizes.sink_rows else "")
                              + ("" if ok else " [red](over 300 MiB)[/]"))
            if pq_why is not None:
                table.add_row("memory: streaming, Parquet sink", "-", "-", "-", f"skipped: {pq_why}")

        # 5: analysis ---------------------------------------------------------------
        an_why = analysis_missing()
        if an_why is None:
            for label, distinct in (("4 distinct pcs", None), (f"{WIDE_PCS:,} distinct pcs", WIDE_PCS)):
                r = attempt(f"analysis ({label})",
                            lambda d=distinct: analysis_throughput(synthetic_step_trace(sizes.analysis, d)))
                if r:
                    note = f"synthetic single-step trace, {label}"
                    if not r.extra["ok"]:
                        note += f"; [yellow]failed rules {r.extra['failed_rules']}[/]"
                    table.add_row("analysis: kvmtrace.analyze (all rules)", _fmt_int(r.events),
                                  _fmt_int(r.events_per_s), "-", note)
        else:
            table.add_row("analysis: kvmtrace.analyze", "-", "-", "-", f"skipped: {an_why}")

    console.print(table)
    console.print(f"[dim]machine: {describe_machine(info)}[/]")
    console.print(f"[dim]ratio to C: median of per-round events/s ratios (target >= {TARGET_RATIO}); per CPU-second: "
                  "the same with CPU time (steadier when other processes share the CPUs); "
                  "events/s: median over rounds, run loop only[/]")
    for f in failures:
        console.print(f"[bold red]failed:[/] {f}")
    return 1 if failures else 0


if __name__ == "__main__":  # python -m kvmtrace.bench [--quick]
    sys.exit(main(quick="--quick" in sys.argv[1:]))
