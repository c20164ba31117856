"""Turn a pytest-benchmark JSON file into the Markdown results table of RESULTS.md.

    python benches/results_table.py .benchmarks/*/0001_*.json      # or --benchmark-json output

Prints one row per benchmark with the figures from ``extra_info`` (events/s timed
inside the run loops, ratios to the C loop, cost per hit, RSS, bytes per event).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _n(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def _resolution(e: dict[str, Any]) -> str:
    """`` +- N`` for the user-CPU gap: stored by newer runs, else worked out from the stored
    rounds (with the tick the run recorded, or this machine's)."""
    res = e.get("user_ns_per_exit_over_C_resolution")
    if res is None and e.get("user_ns_per_exit_rounds") and e.get("C_user_ns_per_exit_rounds") and e.get("events"):
        from kvmtrace.bench import Measurement, rusage_tick_s, user_gap

        def ms(rounds: list[float]) -> list[Measurement]:
            return [Measurement("", e["events"], 1.0, user_seconds=u * e["events"] / 1e9) for u in rounds]

        g = user_gap(ms(e["user_ns_per_exit_rounds"]), ms(e["C_user_ns_per_exit_rounds"]),
                     e.get("rusage_tick_s") or rusage_tick_s())
        res = g.resolution_ns if g is not None else None
    return "" if res is None else f" +- {res:.0f}"


def rows(data: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    out = []
    for b in data["benchmarks"]:
        e = b.get("extra_info", {})
        name = f"{b['group']}: {b['name'].removeprefix('test_')}"
        events = _n(e.get("events") or e.get("hits") or e.get("events_large"))
        eps = _n(e.get("events_per_s"))
        ratio = e.get("ratio_to_C")
        cpu_ratio = e.get("cpu_ratio_to_C")
        notes = []
        if "events_per_s_best" in e and ratio is None:
            notes.append(f"best {_n(e['events_per_s_best'])}/s")
        if "cpu_events_per_s" in e:
            notes.append(f"{_n(e['cpu_events_per_s'])} events per CPU-second")
        if "cost_per_hit_us" in e:
            notes.append(f"cost per hit {e['cost_per_hit_us']:.2f} us")
        if "cost_per_window_us" in e:
            notes.append(f"cost per window of {e['steps_per_window']} steps {e['cost_per_window_us']:.2f} us "
                         f"({e['window_over_trigger_us']:.2f} us over the trigger hit alone)")
        if "programs_per_s" in e:
            notes.append(f"{e['programs']:,} programs ({e['steps']:,} steps) at {e['programs_per_s']:.1f} programs/s, "
                         f"{e['workers']} workers, {e['backend']}")
        elif "steps_per_s" in e:
            notes.append(f"{e['steps']:,} steps diffed at {e['steps_per_s']:,.0f} steps/s (KVM {e['kvm_s']:.2f} s, "
                         f"reference {e['reference_s']:.2f} s, compare {e['compare_s']:.2f} s)")
        if "user_ns_per_exit_over_C" in e:
            res = _resolution(e)
            notes.append(f"user CPU {e['user_ns_per_exit']:.0f} ns/exit vs C {e['C_user_ns_per_exit']:.0f} "
                         f"({e['user_ns_per_exit_over_C']:+.0f}{res} ns median per round)")
        if e.get("kind") == "ring":
            notes.append(f"ring of {e['ring_rows']:,} rows ({e['ring_memory_mib']:.0f} MiB)")
        if "seconds_rounds" in e:
            s = sorted(e["seconds_rounds"])
            notes.append(f"{e.get('calls', 0):,} calls in {s[len(s) // 2] * 1e3:.1f} ms (median)")
        if "bytes_per_event" in e:
            notes.append(f"{e['bytes_per_event']:.1f} bytes/event")
        if "peak_rss_mib_large" in e:
            regs = e.get("registers") or []
            notes.append(
                f"peak RSS {e['peak_rss_mib_small']:.0f} MiB at {e['events_small']:,} -> "
                f"{e['peak_rss_mib_large']:.0f} MiB at {e['events_large']:,} events"
                + (f", {len(regs)} registers" if regs else "")
            )
        if "events_per_s_rounds" in e:
            notes.append(f"{len(e['events_per_s_rounds'])} rounds")
        out.append((name, events, eps, "-" if ratio is None else f"{ratio:.3f}",
                    "-" if cpu_ratio is None else f"{cpu_ratio:.3f}", "; ".join(notes)))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        data = json.load(f)
    print("| benchmark | events | events/s | ratio to C | ratio to C per CPU-second | notes |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows(data):
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
