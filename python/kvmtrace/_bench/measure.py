"""Timed runs and how rounds are paired: :class:`Measurement`, :func:`interleave`,
:func:`summarize`, :func:`cost_per_hit`, :func:`user_gap`.

This class of machine (a VM, KVM inside it) drifts by 10-40 % between consecutive
runs, so contenders run interleaved (order reversed every other round) and ratios
are medians of per-round ratios.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import os
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any


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
    user_seconds: float | None = None
    """User-space CPU time of the loop's own thread (getrusage RUSAGE_THREAD): the cost
    the contender adds per exit on top of the kernel's."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def user_ns_per_exit(self) -> float | None:
        if self.user_seconds is None or not self.events:
            return None
        return self.user_seconds / self.events * 1e9

    @property
    def cpu_events_per_s(self) -> float | None:
        """Events per CPU-second (None when the contender does not report CPU time)."""
        if self.cpu_seconds is None or self.cpu_seconds <= 0:
            return None
        return self.events / self.cpu_seconds



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



def cost_per_hit(with_hits: Sequence[Measurement], without: Sequence[Measurement]) -> float:
    """Median seconds added per hit: (t_with - t_without) / hits, paired by round."""
    costs = [(a.seconds - b.seconds) / a.events for a, b in zip(with_hits, without) if a.events]
    return statistics.median(costs) if costs else float("nan")


#: The scheduler tick when the kernel config cannot be read: HZ=250, Debian's default.
DEFAULT_TICK_S = 0.004


@functools.cache
def rusage_tick_s() -> float:
    """How finely getrusage splits user from system time: one scheduler tick (1/CONFIG_HZ)
    under tick-based CPU accounting, read from the running kernel's config when it is
    readable (``/proc/config.gz``, ``/boot/config-<release>``)."""
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:  # type: ignore[operator]
                m = re.search(r"^CONFIG_HZ=(\d+)$", f.read(), re.M)
        except OSError:
            continue
        if m and int(m.group(1)) > 0:
            return 1.0 / int(m.group(1))
    return DEFAULT_TICK_S


@dataclasses.dataclass(frozen=True)
class UserGap:
    """User CPU per exit of a contender and its reference (medians over rounds), the
    median per-round difference, and how finely that difference is resolved."""

    mine_ns: float
    ref_ns: float
    gap_ns: float
    resolution_ns: float
    """About one standard error of ``gap_ns`` from tick sampling alone."""


def user_gap(mine: Sequence[Measurement], refs: Sequence[Measurement], tick_s: float | None = None) -> UserGap | None:
    """The per-round user-CPU gap of ``mine`` over ``refs`` (paired by round).

    A round's user time is a count of scheduler ticks that landed in user mode, so it
    scatters like a count: about ``sqrt(user_s / tick)`` ticks, i.e. ``sqrt(tick *
    user_s) / events`` per exit. A paired difference adds both variances, and the median
    of ``n`` rounds has about 1.25 / sqrt(n) of one round's spread."""
    pairs = [(a, b) for a, b in zip(mine, refs) if a.user_ns_per_exit is not None and b.user_ns_per_exit is not None]
    if not pairs:
        return None
    tick = rusage_tick_s() if tick_s is None else tick_s
    mu = [a.user_ns_per_exit for a, _ in pairs]
    ru = [b.user_ns_per_exit for _, b in pairs]

    def spread_ns(ms: Sequence[Measurement]) -> float:
        user_s = statistics.median(m.user_seconds for m in ms)  # type: ignore[type-var]
        return math.sqrt(tick * max(user_s, 0.0)) / ms[0].events * 1e9  # type: ignore[arg-type]

    one_round = math.hypot(spread_ns([a for a, _ in pairs]), spread_ns([b for _, b in pairs]))
    return UserGap(
        mine_ns=statistics.median(mu),  # type: ignore[type-var]
        ref_ns=statistics.median(ru),  # type: ignore[type-var]
        gap_ns=statistics.median(a - b for a, b in zip(mu, ru)),  # type: ignore[operator]
        resolution_ns=1.2533 * one_round / math.sqrt(len(pairs)),
    )
