"""The benchmark helpers' arithmetic on synthetic rounds (no KVM): paired ratios and
the user-CPU gap with its tick-sampling resolution."""

from __future__ import annotations

import math

import pytest

from kvmtrace.bench import Measurement, rusage_tick_s, summarize, user_gap


def rounds(user_ns: list[float], events: int = 500_000) -> list[Measurement]:
    return [Measurement("x", events, 1.0, user_seconds=u * events / 1e9) for u in user_ns]


def test_user_gap_is_the_median_of_paired_differences():
    mine = rounds([300, 250, 400, 280, 310])
    ref = rounds([240, 250, 300, 250, 260])
    g = user_gap(mine, ref, tick_s=0.004)
    assert g is not None
    assert g.mine_ns == 300 and g.ref_ns == 250
    assert g.gap_ns == 50  # differences 60, 0, 100, 30, 50


def test_resolution_follows_tick_sampling():
    # 500k events at 280 and 240 ns: 0.14 s and 0.12 s of user time, 35 and 30 ticks of 4 ms.
    g10 = user_gap(rounds([280] * 10), rounds([240] * 10), tick_s=0.004)
    assert g10 is not None
    one = math.hypot(math.sqrt(0.004 * 0.14), math.sqrt(0.004 * 0.12)) / 500_000 * 1e9
    assert g10.resolution_ns == pytest.approx(1.2533 * one / math.sqrt(10))
    assert 20 < g10.resolution_ns < 30  # what 10 rounds of the modes benchmark resolve
    g40 = user_gap(rounds([280] * 40), rounds([240] * 40), tick_s=0.004)
    assert g40 is not None and g40.resolution_ns == pytest.approx(g10.resolution_ns / 2)
    # A 20k-event quick run cannot resolve tens of ns.
    quick = user_gap(rounds([280] * 2, 20_000), rounds([240] * 2, 20_000), tick_s=0.004)
    assert quick is not None and quick.resolution_ns > 200
    # Finer accounting (a 1 ms tick) resolves twice as finely.
    fine = user_gap(rounds([280] * 10), rounds([240] * 10), tick_s=0.001)
    assert fine is not None and fine.resolution_ns == pytest.approx(g10.resolution_ns / 2)


def test_user_gap_needs_user_time_on_both_sides():
    assert user_gap([Measurement("x", 10, 1.0)], rounds([1.0])) is None
    assert user_gap([], []) is None


def test_rusage_tick_is_a_plausible_scheduler_tick():
    assert 1 / 1000 <= rusage_tick_s() <= 1 / 100


def test_summarize_pairs_rounds():
    a = [Measurement("a", 100, s) for s in (1.0, 2.0, 1.0)]
    c = [Measurement("c", 100, s) for s in (1.0, 1.0, 2.0)]
    r = summarize({"a": a, "c": c}, reference="c")["a"]
    assert r["ratio_rounds"] == [1.0, 0.5, 2.0] and r["ratio"] == 1.0
