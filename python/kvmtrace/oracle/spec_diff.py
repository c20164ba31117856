"""Diffing one generated program, named by its ProgramSpec: the step shared by a
campaign's run tasks and the shrinker's attempts (see :mod:`kvmtrace.oracle.tasks`,
:mod:`kvmtrace.oracle.shrink`)."""

from __future__ import annotations

from kvmtrace.oracle.differ import diff
from kvmtrace.oracle.generator import ProgramSpec, generate
from kvmtrace.oracle.report import DiffReport

MAX_STEPS_PER_PROGRAM = 20_000  # generated programs take a few hundred steps; a runaway one stops here


def diff_spec(spec: ProgramSpec) -> DiffReport:
    prog = generate(spec).program()
    return diff(prog, mode=spec.mode, max_steps=MAX_STEPS_PER_PROGRAM, memory_size=spec.memory_size)
