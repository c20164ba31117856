"""Dense single-step in real and long mode, with BLOCKIRQ, with and without stop_at:
kvmtrace against the C KVM_RUN loop (``kvm_step.c --long --blockirq --stop-at``) on
the same countdown guest (``kvmtrace._bench.modes``), in paired rounds.

``extra_info``: ``ratio_to_C`` (median of per-round events/s ratios; kvmtrace's target
is >= 0.97), ``user_ns_per_exit`` and ``C_user_ns_per_exit`` (user CPU of each loop's
thread per exit) and ``user_ns_per_exit_over_C`` (median per-round difference; target
<= 60 ns), ``bytes_per_event``. Correctness is checked every run (event count, stop
reason and pc, and the same pc checksum for both loops); speed is never asserted.
"""

from __future__ import annotations

import pytest
from benchutil import paired, record

from kvmtrace._bench.modes import c_countdown, check_same_pcs, kvmtrace_countdown


@pytest.mark.benchmark(group="single_step_modes")
@pytest.mark.parametrize("stop_at", [False, True], ids=["max_events", "stop_at"])
@pytest.mark.parametrize("mode", ["real", "long"])
def test_kvmtrace_against_c(benchmark, c_binary, sizes, mode, stop_at):
    n = sizes.events
    mine, refs = paired(benchmark, lambda: kvmtrace_countdown(mode, n, stop_at=stop_at),
                        lambda: c_countdown(c_binary, mode, n, stop_at=stop_at), max(sizes.rounds, 1))
    for a, b in zip(mine, refs):
        check_same_pcs(a, b)
    info = record(benchmark, mine, refs)
    benchmark.extra_info["bytes_per_event"] = mine[0].extra["bytes_per_event"]
    benchmark.extra_info["page_faults"] = [m.extra["page_faults"] for m in mine]
    assert info["events"] == mine[0].events
