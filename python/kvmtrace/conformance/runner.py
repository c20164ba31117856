"""Running scenarios on the real host and turning each run into a verdict."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence

from kvmtrace.conformance.driver import GuestRun, Watchdog
from kvmtrace.conformance.hostinfo import cpu_vendor, host_info
from kvmtrace.conformance.model import Verdict
from kvmtrace.conformance.result import Result, verdict_of
from kvmtrace.conformance.scenarios import MODES, SCENARIOS, Scenario, full_source
from kvmtrace.conformance.suite import SuiteRun
from kvmtrace.exceptions import InvalidConfigError, UnsupportedError
from kvmtrace.machine import Machine

#: Seconds one KVM_RUN may take before the watchdog stops it.
RUN_TIMEOUT = 2.0
#: Seconds one scenario in one mode may take in all.
SCENARIO_TIMEOUT = 10.0


def select(scenarios: Iterable[str] | None = None, modes: Iterable[str] | None = None) -> list[tuple[Scenario, str]]:
    """The (scenario, mode) pairs to run, in registry order; unknown names raise InvalidConfigError."""
    ids = list(scenarios) if scenarios else list(SCENARIOS)
    wanted_modes = list(modes) if modes else list(MODES)
    bad = [s for s in ids if s not in SCENARIOS]
    if bad:
        raise InvalidConfigError(f"invalid scenario: {', '.join(map(repr, bad))}; known: {', '.join(SCENARIOS)}")
    bad = [m for m in wanted_modes if m not in MODES]
    if bad:
        raise InvalidConfigError(f"invalid mode: {', '.join(map(repr, bad))}; use {', '.join(MODES)}")
    return [(SCENARIOS[s], m) for s in SCENARIOS if s in ids
            for m in MODES if m in wanted_modes and m in SCENARIOS[s].modes]


def run_scenario(scenario: Scenario, mode: str, watchdog: Watchdog, *, run_timeout: float = RUN_TIMEOUT,
                 scenario_timeout: float = SCENARIO_TIMEOUT, vendor: str | None = None) -> Result:
    """Run one scenario in one mode in a fresh Machine. Never raises, except KeyboardInterrupt.

    ``vendor`` ("intel" / "amd"; default: this host's) picks the expectations where the
    vendors' manuals differ.
    """
    t0 = time.monotonic()
    g: GuestRun | None = None
    result = Result(scenario.id, mode, Verdict.ERROR, cite=scenario.cite)
    try:
        with Machine(memory_size=scenario.memory_size(mode), mode=mode, irqchip=scenario.irqchip) as m:
            prog = m.load_asm(full_source(scenario.source(mode), mode))
            for v in range(32):
                m.set_idt_handler(v, f"exc_{v}")
            for v, sym in scenario.handlers.items():
                m.set_idt_handler(v, sym)
            g = GuestRun(m, prog, watchdog, run_timeout=run_timeout, deadline=t0 + scenario_timeout,
                         vendor=vendor if vendor is not None else cpu_vendor())
            scenario.run(g)
        result.verdict, result.reason = verdict_of(g.checks)
    except UnsupportedError as e:
        result.verdict, result.reason = Verdict.UNSUPPORTED, str(e)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # the run itself failed: report why, keep going
        tb = traceback.extract_tb(e.__traceback__)
        where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
        result.verdict, result.reason = Verdict.ERROR, f"{type(e).__name__}: {e}{where}"
    if g is not None:
        result.checks = list(g.checks)
        result.vendor_expectation = g.vendor_expectation
        result.notes.extend(g.notes)
        if g.console:
            result.notes.append("guest console: " + g.console.decode("utf-8", "replace"))
        if g.passed_exits:
            shown = ", ".join(g.passed_exits[:12]) + (" ..." if len(g.passed_exits) > 12 else "")
            result.notes.append(f"exits passed over: {shown}")
    result.elapsed_s = time.monotonic() - t0
    return result


def run_suite(
    scenarios: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    *,
    on_result: Callable[[Result], None] | None = None,
    run_timeout: float = RUN_TIMEOUT,
    scenario_timeout: float = SCENARIO_TIMEOUT,
) -> SuiteRun:
    """Run the selected scenarios; ``on_result`` sees each result as it is made.

    On Ctrl-C the returned run is marked ``interrupted`` and holds the results so
    far (KeyboardInterrupt is not re-raised).
    """
    pairs = select(scenarios, modes)
    run = SuiteRun(host=host_info(), results=[], requested=[(s.id, m) for s, m in pairs])
    vendor = cpu_vendor(run.host.get("cpu", {}).get("vendor"))
    t0 = time.monotonic()
    try:
        with Watchdog() as wd:
            if not wd.active:
                run.notes.append("not on the main thread: KVM_RUN timeouts are not enforced")
            for scenario, mode in pairs:
                r = run_scenario(scenario, mode, wd, run_timeout=run_timeout, scenario_timeout=scenario_timeout,
                                 vendor=vendor)
                run.results.append(r)
                if on_result is not None:
                    on_result(r)
    except KeyboardInterrupt:
        run.interrupted = True
    run.elapsed_s = time.monotonic() - t0
    return run
