"""Sparse tracing: a hardware exec breakpoint on the hot function of a CPU-heavy guest.

HOT_GUEST (real mode) calls a 4-instruction function ``--bench-hot-calls`` times,
then writes port 0xF4. Contenders:

* kvmtrace, ``GuestDebug()`` (KVM_GUESTDBG_ENABLE only): the guest without debugging;
* kvmtrace, ``HwBreakpoint(hot, "exec")``: one event per call (the engine steps
  over each hit with the breakpoint disarmed);
* Unicorn (16-bit) on the same bytes, without a hook and with ``UC_HOOK_CODE``
  on the hot function's entry (one Python callback per call).

``extra_info["cost_per_hit_us"]`` = (time with hits - time without) / hits, paired
by round (the reference runs back to back with each timed run).

Windows (issue 11): ``Window(hot, steps=4)`` single-steps each call whole and runs
free between calls. ``cost_per_window_us`` is (window run - free run) / calls and
``window_over_trigger_us`` (window run - breakpoint-only run) / calls: what the
steps and the two reprogramming ioctls add to the trigger hit. Outside a window
the guest runs at its free speed: the trigger hit is the only cost.
"""

from __future__ import annotations

import pytest
from benchutil import paired, record

from kvmtrace import bench


@pytest.fixture(scope="session")
def unicorn_available() -> None:
    why = bench.unicorn_missing()
    if why is not None:
        pytest.skip(why)


def _cost(benchmark, mine, refs) -> None:
    benchmark.extra_info["hits"] = mine[0].events
    benchmark.extra_info["cost_per_hit_us"] = bench.cost_per_hit(mine, refs) * 1e6
    benchmark.extra_info["without_hits_seconds_rounds"] = [round(r.seconds, 6) for r in refs]


@pytest.mark.benchmark(group="sparse_breakpoint")
def test_kvmtrace_no_debugging(benchmark, kvm_available, sizes):
    mine, _ = paired(benchmark, lambda: bench.kvmtrace_hot(sizes.hot_calls, breakpoint=False), None, sizes.rounds)
    benchmark.extra_info["calls"] = sizes.hot_calls
    benchmark.extra_info["seconds_rounds"] = [round(m.seconds, 6) for m in mine]


@pytest.mark.benchmark(group="sparse_breakpoint")
def test_kvmtrace_hw_exec_breakpoint(benchmark, kvm_available, sizes):
    calls = sizes.hot_calls
    mine, refs = paired(benchmark, lambda: bench.kvmtrace_hot(calls, breakpoint=True),
                        lambda: bench.kvmtrace_hot(calls, breakpoint=False), sizes.rounds)
    record(benchmark, mine)
    _cost(benchmark, mine, refs)
    # Each hit costs one breakpoint exit plus one step-over exit.
    assert mine[0].extra["exits"] == 2 * calls + 1


@pytest.mark.benchmark(group="sparse_breakpoint")
def test_unicorn_no_hook(benchmark, unicorn_available, sizes):
    mine, _ = paired(benchmark, lambda: bench.unicorn_hot(sizes.hot_calls, hook=False), None, sizes.rounds)
    benchmark.extra_info["calls"] = sizes.hot_calls
    benchmark.extra_info["seconds_rounds"] = [round(m.seconds, 6) for m in mine]


@pytest.mark.benchmark(group="sparse_breakpoint")
def test_unicorn_code_hook(benchmark, unicorn_available, sizes):
    calls = sizes.hot_calls
    mine, refs = paired(benchmark, lambda: bench.unicorn_hot(calls, hook=True),
                        lambda: bench.unicorn_hot(calls, hook=False), sizes.rounds)
    record(benchmark, mine)
    _cost(benchmark, mine, refs)


@pytest.mark.benchmark(group="sparse_breakpoint")
def test_kvmtrace_window_per_call(benchmark, kvm_available, sizes):
    calls = sizes.hot_calls
    mine, free = paired(benchmark, lambda: bench.kvmtrace_hot_window(calls),
                        lambda: bench.kvmtrace_hot(calls, breakpoint=False), sizes.rounds)
    trigger = [bench.kvmtrace_hot(calls, breakpoint=True) for _ in mine]
    record(benchmark, mine)
    benchmark.extra_info["windows"] = calls
    benchmark.extra_info["steps_per_window"] = bench.HOT_FUNC_STEPS
    per_window = [(w.seconds - f.seconds) / calls for w, f in zip(mine, free)]
    over_trigger = [(w.seconds - t.seconds) / calls for w, t in zip(mine, trigger)]
    benchmark.extra_info["cost_per_window_us"] = sorted(per_window)[len(per_window) // 2] * 1e6
    benchmark.extra_info["window_over_trigger_us"] = sorted(over_trigger)[len(over_trigger) // 2] * 1e6
    benchmark.extra_info["ioctls_per_window"] = mine[0].extra["ioctls_per_window"]
    # Per window: the trigger hit plus one exit per step.
    assert mine[0].extra["exits"] == calls * (1 + bench.HOT_FUNC_STEPS) + 1
