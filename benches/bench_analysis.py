"""Analysis throughput: ``kvmtrace.analyze`` (all rules) on a synthetic single-step trace.

The trace (``--bench-analysis-events``, default 20M) is built once per session
with ``kvmtrace.Trace.from_columns`` and is architecturally clean, so every rule
must pass. Two shapes: STEP_LOOP (4 distinct pcs) and a wide loop with
``bench.WIDE_PCS`` distinct instructions (the decoding rules decode each
distinct pc once, so this one measures decode cost too).
"""

from __future__ import annotations

import pytest

from kvmtrace import bench


@pytest.fixture(scope="session")
def analysis_available() -> None:
    why = bench.analysis_missing()
    if why is not None:
        pytest.skip(f"kvmtrace.analysis not available yet: {why}")


@pytest.fixture(scope="session", params=[None, bench.WIDE_PCS], ids=["4_pcs", f"{bench.WIDE_PCS}_pcs"])
def synthetic_trace(request, sizes, analysis_available):
    return bench.synthetic_step_trace(sizes.analysis_events, request.param)


@pytest.mark.benchmark(group="analysis")
def test_analyze_throughput(benchmark, synthetic_trace, sizes):
    rounds = 3 if sizes.enabled else 1
    ms = []

    def run() -> bench.Measurement:
        m = bench.analysis_throughput(synthetic_trace)
        ms.append(m)
        return m

    benchmark.pedantic(run, rounds=rounds, iterations=1)
    rates = [m.events_per_s for m in ms]
    benchmark.extra_info.update(events=len(synthetic_trace), events_per_s=sorted(rates)[len(rates) // 2],
                                events_per_s_rounds=rates, rules=ms[0].extra["rules"])
    assert ms[0].extra["ok"], f"a clean synthetic trace failed rules {ms[0].extra['failed_rules']}"
