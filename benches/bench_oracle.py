"""The reference oracle: programs per second and compared steps per second.

* ``kvmtrace fuzz`` with 2 local worker processes (one VM each), no shrinking;
* the same campaign on a Dask cluster started on 127.0.0.1 (2 worker processes);
* ``kvmtrace.diff`` of one long loop in one process (the lockstep comparison alone).

``extra_info``: ``programs_per_s`` and ``steps_per_s`` of the campaign loop (worker
start-up included, the report's ``timings``), or ``steps_per_s`` of the diff with its
``kvm_s`` / ``reference_s`` split. Correctness is checked (every program completes, the
loop agrees step for step); speed is not asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmtrace.oracle.campaign import fuzz

pytest.importorskip("unicorn")
SEED = 2026


def _campaign(benchmark: Any, sizes: Any, **where: Any) -> None:
    n = sizes.oracle_programs
    reports = []

    def run() -> None:
        reports.append(fuzz(n, SEED, shrink=False, **where))

    benchmark.pedantic(run, rounds=min(sizes.rounds, 3), iterations=1, warmup_rounds=0)
    r = reports[-1]
    assert r.completed == n and not r.lost and not r.errors
    benchmark.extra_info.update({
        "programs": n, "steps": r.steps, "workers": r.workers, "backend": r.backend,
        "programs_per_s": max(x.timings["programs_per_s"] for x in reports),
        "steps_per_s": max(x.timings["steps_per_s"] for x in reports),
        "programs_per_s_rounds": [round(x.timings["programs_per_s"], 2) for x in reports],
    })


@pytest.mark.benchmark(group="oracle_campaign")
def test_fuzz_local_two_workers(benchmark: Any, kvm_available: None, sizes: Any) -> None:
    _campaign(benchmark, sizes, workers=2)


@pytest.mark.benchmark(group="oracle_campaign")
def test_fuzz_local_dask_cluster(benchmark: Any, kvm_available: None, sizes: Any) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster:
        _campaign(benchmark, sizes, scheduler=cluster.scheduler_address)


@pytest.mark.benchmark(group="oracle_diff")
def test_diff_steps_per_second(benchmark: Any, kvm_available: None, sizes: Any) -> None:
    import kvmtrace

    iterations = max(1, sizes.oracle_steps // 4)
    src = f"_start: mov ${iterations}, %ecx\nl: add $3, %eax\n imul %eax, %edx\n loop l\n out %al, $0xf4\n"
    reports = []
    benchmark.pedantic(lambda: reports.append(kvmtrace.diff(src, mode="long")), rounds=min(sizes.rounds, 3),
                       iterations=1, warmup_rounds=0)
    r = reports[-1]
    assert r.agree and r.steps == 3 * iterations + 1
    t = r.timings
    benchmark.extra_info.update({"steps": r.steps, "steps_per_s": r.steps / t["total_s"],
                                 "kvm_s": t["kvm_s"], "reference_s": t["reference_s"], "compare_s": t["compare_s"]})
