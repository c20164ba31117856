"""``kvmtrace bench``: kvmtrace against a plain C KVM_RUN loop, a pure-Python loop and Unicorn.

The measurement functions are shared by the CLI (:func:`main`, a compact run
printed as a rich table) and the pytest-benchmark suite in ``benches/`` (the long
runs and the saved results used for ``--benchmark-compare``). They live in
:mod:`kvmtrace._bench`; this module is their public face:

* :mod:`~kvmtrace._bench.measure`: :class:`Measurement`, interleaved rounds, paired ratios,
  the user-CPU gap and its resolution;
* :mod:`~kvmtrace._bench.dense`: single-step contenders (C ``kvm_step.c``, kvmtrace
  ``Machine.trace``, the pure-Python ioctl loop) and the checks of their rows;
* :mod:`~kvmtrace._bench.sparse`: an exec breakpoint on a hot function, and Unicorn;
* :mod:`~kvmtrace._bench.memory`: bytes per event and peak RSS of streamed runs;
* :mod:`~kvmtrace._bench.analysis_throughput`: ``kvmtrace.analyze`` on synthetic traces;
* :mod:`~kvmtrace._bench.machine_info`: the machine every figure needs;
* :mod:`~kvmtrace._bench.report`: the ``kvmtrace bench`` table.

Every loop times only its run loop (setup excluded), so events/s compare the
per-exit cost. Rounds are interleaved (order reversed every other round) and the
ratio to C is the median of the per-round ratios, because this class of machine
(a VM, KVM inside it) drifts by 10-40 % between consecutive runs.
"""

from __future__ import annotations

import sys

from kvmtrace._bench.analysis_throughput import (
    WIDE_PCS,
    analysis_missing,
    analysis_throughput,
    synthetic_step_trace,
    wide_loop,
)
from kvmtrace._bench.dense import (
    REGS,
    TARGET_RATIO,
    c_step_loop,
    check_step_loop,
    kvmtrace_step_loop,
    py_step_loop,
    step_loop_checksum,
    step_loop_pcs,
)
from kvmtrace._bench.guests import MEMORY_SIZE
from kvmtrace._bench.machine_info import describe_machine, kvm_missing, machine_info
from kvmtrace._bench.measure import (
    BenchCheckError,
    Measurement,
    UserGap,
    cost_per_hit,
    interleave,
    rusage_tick_s,
    summarize,
    user_gap,
)
from kvmtrace._bench.memory import RING_ROWS, RSS_LIMIT_BYTES, NullSink, measure_rss, parquet_missing, rss_child
from kvmtrace._bench.report import FULL, QUICK, main
from kvmtrace._bench.sparse import HOT_ADDR, HOT_FUNC_STEPS, kvmtrace_hot, kvmtrace_hot_window, unicorn_hot, unicorn_missing

__all__ = [
    "BenchCheckError",
    "FULL",
    "HOT_ADDR",
    "HOT_FUNC_STEPS",
    "MEMORY_SIZE",
    "Measurement",
    "NullSink",
    "QUICK",
    "REGS",
    "RING_ROWS",
    "RSS_LIMIT_BYTES",
    "TARGET_RATIO",
    "UserGap",
    "WIDE_PCS",
    "analysis_missing",
    "analysis_throughput",
    "c_step_loop",
    "check_step_loop",
    "cost_per_hit",
    "describe_machine",
    "interleave",
    "kvm_missing",
    "kvmtrace_hot",
    "kvmtrace_hot_window",
    "kvmtrace_step_loop",
    "machine_info",
    "main",
    "measure_rss",
    "parquet_missing",
    "py_step_loop",
    "rss_child",
    "rusage_tick_s",
    "step_loop_checksum",
    "step_loop_pcs",
    "summarize",
    "synthetic_step_trace",
    "unicorn_hot",
    "unicorn_missing",
    "user_gap",
    "wide_loop",
]

if __name__ == "__main__":  # python -m kvmtrace.bench [--quick]
    sys.exit(main(quick="--quick" in sys.argv[1:]))
