"""``kvmtrace fuzz``: generate programs, diff each one in worker processes (local or on a
Dask cluster), group the divergences by cause (kind + mnemonic), shrink an example of
each class and write reproducers that ``kvmtrace diff`` replays.

Ctrl-C stops the campaign and keeps the report of the programs that finished (no
shrinking then); a program whose worker died is listed in ``lost``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import kvmtrace._core as _core
from kvmtrace.exceptions import InvalidConfigError
from kvmtrace.oracle.generator import DEFAULT_LENGTH, ProgramSpec
from kvmtrace.oracle.pool import LocalPool, Outcome

RUN_TASK = "kvmtrace.oracle.tasks:run_program"
SHRINK_TASK = "kvmtrace.oracle.tasks:shrink_program"


@dataclass
class DivergenceClass:
    kind: str
    mnemonic: str
    count: int = 0  # divergences of this cause
    programs: int = 0  # programs that showed it
    example: dict[str, Any] = field(default_factory=dict)  # spec, divergence, reproducer[, file]
    _example_steps: int = field(default=1 << 62, repr=False)


@dataclass
class CampaignReport:
    programs: int  # requested
    seed: int
    modes: list[str]
    completed: int = 0
    agreed: int = 0
    steps: int = 0
    classes: list[dict[str, Any]] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)  # worker died: the program and why
    errors: list[dict[str, Any]] = field(default_factory=list)  # the run itself failed
    interrupted: bool = False
    backend: str = "local"
    workers: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


Pool = Any  # LocalPool | DaskPool: map(fn_path, payloads) -> Iterator[Outcome], close()


def specs(programs: int, seed: int, modes: Iterable[str], length: int = DEFAULT_LENGTH,
          families: tuple[str, ...] = ()) -> list[ProgramSpec]:
    """The campaign's programs: program i gets a mode drawn from ``modes`` by the seed."""
    modes = list(modes)
    rng = random.Random(f"kvmtrace-fuzz-modes:{seed}")
    return [ProgramSpec(seed, i, rng.choice(modes), length, families) for i in range(programs)]


def _check(programs: int, modes: list[str], length: int) -> None:
    if isinstance(programs, bool) or not isinstance(programs, int) or programs < 0:
        raise InvalidConfigError(f"invalid programs: expected a count >= 0, got {programs!r}")
    bad = [m for m in modes if m not in _core.MODES]
    if bad or not modes:
        raise InvalidConfigError(f"invalid mode: {', '.join(bad) or 'none given'} (expected {', '.join(_core.MODES)})")
    if length < 0:
        raise InvalidConfigError(f"invalid length: {length} (expected >= 0)")


class Campaign:
    def __init__(self, report: CampaignReport, pool: Pool, on_result: Callable[[dict[str, Any]], None] | None) -> None:
        self.report, self.pool, self.on_result = report, pool, on_result
        self.classes: dict[tuple[str, str], DivergenceClass] = {}

    def run(self, todo: list[ProgramSpec], shrink: bool, task: str) -> None:
        t0 = time.perf_counter()
        try:
            for out in self.pool.map(task, [s.to_dict() for s in todo]):
                self._take(todo[out.index], out)
        except KeyboardInterrupt:
            self.report.interrupted = True
        t1 = time.perf_counter()
        self.report.timings.update(self._rates(t1 - t0))
        if shrink and not self.report.interrupted and self.classes:
            try:
                self._shrink()
            except KeyboardInterrupt:
                self.report.interrupted = True
        self.report.timings["shrink_s"] = time.perf_counter() - t1
        self.report.classes = [self._class_dict(c) for c in sorted(
            self.classes.values(), key=lambda c: (-c.programs, c.kind, c.mnemonic))]

    def _rates(self, wall: float) -> dict[str, float]:
        r = self.report
        return {"campaign_s": wall, "programs_per_s": r.completed / wall if wall > 0 else 0.0,
                "steps_per_s": r.steps / wall if wall > 0 else 0.0}

    def _take(self, spec: ProgramSpec, out: Outcome) -> None:
        r = self.report
        if out.status == "lost":
            r.lost.append({"spec": spec.to_dict(), "reason": out.reason})
            return
        if out.status == "error" or "error" in out.value:
            r.errors.append({"spec": spec.to_dict(), "error": out.reason or out.value["error"]})
            return
        res = out.value
        r.completed += 1
        r.steps += res["steps"]
        r.agreed += bool(res["agree"])
        seen: set[tuple[str, str]] = set()
        for d in res["divergences"]:
            cause = (d["kind"], d["mnemonic"])
            c = self.classes.setdefault(cause, DivergenceClass(*cause))
            c.count += 1
            if cause not in seen:
                seen.add(cause)
                c.programs += 1
                if res["steps"] < c._example_steps:
                    c._example_steps = res["steps"]
                    c.example = {"spec": res["spec"], "divergence": d}
        if self.on_result is not None:
            self.on_result(res)

    def _shrink(self) -> None:
        jobs = [{"spec": c.example["spec"], "cause": [c.kind, c.mnemonic]} for c in self.classes.values()]
        keys = list(self.classes)
        for out in self.pool.map(SHRINK_TASK, jobs):
            c = self.classes[keys[out.index]]
            if out.status == "ok":
                res = out.value
                c.example = {"spec": res["spec"], "divergence": res["divergence"] or c.example["divergence"],
                             "reproducer": res["reproducer"], "blocks": res["blocks"], "shrunk": res["shrunk"],
                             "shrink_attempts": res["attempts"]}
            else:
                c.example["shrink_error"] = out.reason

    @staticmethod
    def _class_dict(c: DivergenceClass) -> dict[str, Any]:
        return {"kind": c.kind, "mnemonic": c.mnemonic, "count": c.count, "programs": c.programs, "example": c.example}


def write_corpus(report: CampaignReport, directory: str | os.PathLike[str]) -> list[Path]:
    """One reproducer per class: ``DIR/<kind>-<mnemonic>.S`` (and each example's ``file``)."""
    from kvmtrace.oracle.generator import generate

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for c in report.classes:
        ex = c["example"]
        text = ex.get("reproducer") or generate(ProgramSpec.from_dict(ex["spec"])).reproducer()
        path = out / f"{c['kind']}-{c['mnemonic']}.S"
        path.write_text(text)
        ex["file"] = str(path)
        files.append(path)
    return files


def fuzz(programs: int, seed: int = 0, *, workers: int = 1, scheduler: str | None = None,
         modes: Iterable[str] = _core.MODES, length: int = DEFAULT_LENGTH, families: Iterable[str] = (),
         shrink: bool = True, corpus: str | os.PathLike[str] | None = None,
         on_result: Callable[[dict[str, Any]], None] | None = None, task: str = RUN_TASK) -> CampaignReport:
    """Run a campaign of ``programs`` generated programs (see the module docstring)."""
    modes = list(modes)
    _check(programs, modes, length)
    todo = specs(programs, seed, modes, length, tuple(families))
    if scheduler:
        from kvmtrace.oracle.cluster import DaskPool

        pool: Pool = DaskPool(scheduler)
        backend, n = f"dask {scheduler}", pool.workers
    else:
        pool, backend, n = LocalPool(workers), "local", workers
    from kvmtrace.oracle.reference import load_unicorn

    load_unicorn()  # the extra is missing: say so before any worker starts
    report = CampaignReport(programs, seed, modes, backend=backend, workers=n)
    t0 = time.perf_counter()
    try:
        Campaign(report, pool, on_result).run(todo, shrink, task)
    finally:
        pool.close()
    report.timings["wall_s"] = time.perf_counter() - t0
    if corpus is not None:
        write_corpus(report, corpus)
    return report
