"""The units of work of a fuzzing campaign, run in worker processes (local or Dask):
plain dicts in and out, so they pickle cheaply and a result outlives its worker."""

from __future__ import annotations

import time
from typing import Any

from kvmtrace.exceptions import KvmTraceError
from kvmtrace.oracle.generator import ProgramSpec
from kvmtrace.oracle.shrink import shrink
from kvmtrace.oracle.spec_diff import diff_spec

# diff_spec lived here before the shrinker needed it too; still importable from here.
__all__ = ["SHRINK_ATTEMPTS", "diff_spec", "run_program", "shrink_program"]

SHRINK_ATTEMPTS = 150  # diff runs one shrink may spend


def run_program(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Generate and diff one program: its divergences, steps and timings."""
    spec = ProgramSpec.from_dict(spec_dict)
    t0 = time.perf_counter()
    try:
        report = diff_spec(spec)
    except KvmTraceError as e:
        return {"spec": spec.to_dict(), "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
    return {"spec": spec.to_dict(), "steps": report.steps, "agree": report.agree,
            "divergences": [d.to_dict() for d in report.divergences], "seconds": time.perf_counter() - t0,
            "kvm_s": report.timings.get("kvm_s", 0.0), "reference_s": report.timings.get("reference_s", 0.0)}


def shrink_program(job: dict[str, Any]) -> dict[str, Any]:
    """Shrink ``job["spec"]`` to the fewest blocks that still show a ``job["cause"]`` divergence."""
    spec = ProgramSpec.from_dict(job["spec"])
    kind, mnemonic = job["cause"]
    t0 = time.perf_counter()
    result = shrink(spec, (kind, mnemonic), attempts=job.get("attempts", SHRINK_ATTEMPTS))
    result["seconds"] = time.perf_counter() - t0
    return result
