"""``kvmtrace fuzz`` on real /dev/kvm: local workers, a Dask cluster on 127.0.0.1, a worker
that dies, Ctrl-C, and reproducers that ``kvmtrace diff`` replays."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("unicorn")

from kvmtrace.oracle import cli as oracle_cli  # noqa: E402
from kvmtrace.oracle.campaign import fuzz  # noqa: E402
from kvmtrace.oracle.differ import diff, guest_mode  # noqa: E402

pytestmark = pytest.mark.requires_kvm
PROGRAMS, SEED = 8, 7


def children() -> set[int]:
    me = os.getpid()
    out: set[int] = set()
    for task in Path(f"/proc/{me}/task").iterdir():
        text = (task / "children").read_text().split()
        out |= {int(p) for p in text}
    return out


@pytest.fixture(scope="module")
def local_report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    corpus = tmp_path_factory.mktemp("corpus")
    before = children()
    report = fuzz(PROGRAMS, SEED, workers=2, corpus=corpus)
    assert children() <= before, "the campaign left worker processes behind"
    return report


def test_local_campaign_runs_every_program(local_report: Any) -> None:
    r = local_report
    assert (r.programs, r.completed, r.lost, r.errors, r.interrupted) == (PROGRAMS, PROGRAMS, [], [], False)
    assert r.backend == "local" and r.workers == 2 and r.steps > PROGRAMS * 10
    assert r.timings["programs_per_s"] > 0 and r.timings["steps_per_s"] > 0
    total = sum(c["count"] for c in r.classes)
    assert r.agreed + sum(1 for _ in r.classes) >= 0 and total >= len(r.classes)
    json.loads(r.to_json())


def test_each_class_has_a_shrunk_reproducer_that_diff_replays(local_report: Any) -> None:
    for c in local_report.classes:
        ex = c["example"]
        path = Path(ex["file"])
        assert path.is_file() and ex["shrunk"] is True
        assert ex["blocks"] <= ex["spec"]["length"] + 32
        replay = diff(path, mode=guest_mode(path), memory_size=ex["spec"]["memory_size"])
        assert (c["kind"], c["mnemonic"]) in {d.cause for d in replay.divergences}, (c, replay)


def test_a_worker_that_dies_loses_only_its_program() -> None:
    r = fuzz(5, SEED, workers=2, shrink=False, task="oracle_helpers:run_or_die")
    assert [x["spec"]["index"] for x in r.lost] == [2]
    assert "died" in r.lost[0]["reason"] and r.completed == 4 and not r.errors


def test_ctrl_c_keeps_the_finished_programs() -> None:
    seen: list[int] = []

    def interrupt_after_three(result: dict[str, Any]) -> None:
        seen.append(result["spec"]["index"])
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does to the campaign's process

    before = children()
    r = fuzz(40, SEED, workers=2, on_result=interrupt_after_three)
    assert r.interrupted and 3 <= r.completed < 40
    assert r.steps > 0 and r.lost == []
    assert children() <= before  # the workers were stopped


def test_dask_cluster_campaign_merges_into_one_report(local_report: Any) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster:
        r = fuzz(PROGRAMS, SEED, scheduler=cluster.scheduler_address)
    assert r.backend.startswith("dask tcp://127.0.0.1") and r.workers == 2
    assert (r.completed, r.lost, r.errors) == (PROGRAMS, [], [])
    # the same programs give the same report, whoever runs them
    assert r.steps == local_report.steps and r.agreed == local_report.agreed
    assert [(c["kind"], c["mnemonic"], c["count"]) for c in r.classes] == \
        [(c["kind"], c["mnemonic"], c["count"]) for c in local_report.classes]


def test_cli_fuzz_writes_the_report_and_corpus(tmp_path: Path) -> None:
    app = typer.Typer()
    oracle_cli.register(app)
    out, corpus = tmp_path / "f.json", tmp_path / "corpus"
    r = CliRunner().invoke(app, ["fuzz", "--programs", "3", "--seed", "1", "--workers", "2", "--no-shrink",
                                 "--json", str(out), "--corpus", str(corpus)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["programs"] == 3 and d["completed"] == 3
    assert sorted(p.name for p in corpus.iterdir()) == sorted(f"{c['kind']}-{c['mnemonic']}.S" for c in d["classes"])
    r = CliRunner().invoke(app, ["fuzz", "--programs", "1", "--mode", "smm"])
    assert r.exit_code == 2 and "mode" in r.output


def test_dask_worker_that_dies_loses_only_its_program() -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    # Dask retries a task whose worker died on another worker; allowed-failures=0 gives up at once.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=40) as cluster:
        r = fuzz(5, SEED, scheduler=cluster.scheduler_address, shrink=False, task="oracle_helpers:run_or_die")
    assert [x["spec"]["index"] for x in r.lost] == [2]
    assert r.completed == 4 and not r.errors
