"""The entry points: :func:`analyze` (a trace object) and :func:`analyze_columns`
(bare columns), which validate their inputs and hand them to the engine."""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np

from kvmtrace.analysis.code import CodeImage
from kvmtrace.analysis.config import DebugConfig, mode_name
from kvmtrace.analysis.engine import CHUNK, run
from kvmtrace.analysis.report import Report
from kvmtrace.analysis.rules import RULES
from kvmtrace.analysis.view import TraceView
from kvmtrace.exceptions import InvalidConfigError


def _column(obj: Any, name: str) -> np.ndarray | None:
    val = getattr(obj, name, None)
    if callable(val) and not isinstance(val, np.ndarray):
        val = val()
    return None if val is None else np.asarray(val)


def _selected(rules: Iterable[str] | None) -> list[str]:
    selected = list(RULES) if rules is None else list(rules)
    for r in selected:
        if r not in RULES:
            raise InvalidConfigError(f"invalid rules: unknown rule {r!r}; known: {', '.join(RULES)}")
    return selected


def analyze_columns(
    pc: Any,
    dr6: Any,
    dr7: Any,
    exception: Any,
    vcpu: Any = None,
    seq: Any = None,
    *,
    debug: Any = None,
    mode: Any = "long",
    memory: Any = None,
    rules: Iterable[str] | None = None,
    max_examples: int = 10,
    chunk: int = CHUNK,
) -> Report:
    """:func:`analyze` on bare columns (array-likes of equal length).

    ``chunk`` is the number of events evaluated per vectorised step."""
    t0 = time.perf_counter()
    pc = np.ascontiguousarray(pc, dtype=np.uint64)
    n = int(pc.shape[0])
    dr6 = np.ascontiguousarray(dr6, dtype=np.uint64)
    dr7 = np.ascontiguousarray(dr7, dtype=np.uint64)
    exception = np.ascontiguousarray(exception, dtype=np.uint8)
    vcpu = np.zeros(n, dtype=np.uint16) if vcpu is None else np.ascontiguousarray(vcpu, dtype=np.uint16)
    seq = np.arange(n, dtype=np.uint64) if seq is None else np.ascontiguousarray(seq, dtype=np.uint64)
    for name, col in (("dr6", dr6), ("dr7", dr7), ("exception", exception), ("vcpu", vcpu), ("seq", seq)):
        if col.shape != pc.shape:
            raise InvalidConfigError(f"invalid {name}: column has shape {col.shape}, pc has {pc.shape}")
    selected = _selected(rules)
    mode_s = mode_name(mode)
    cfg = DebugConfig(debug) if debug is not None else None
    view = TraceView(pc, dr6, dr7, exception, vcpu, seq, cfg, mode_s, memory)
    results = run(view, selected, max_examples, chunk)
    return Report(results, n, mode_s, view.vcpus, time.perf_counter() - t0)


def analyze(trace: Any, debug: Any = None, *, memory: Any = None, mode: Any = None,
            rules: Iterable[str] | None = None, max_examples: int = 10) -> Report:
    """Check a ``KVM_EXIT_DEBUG`` trace against the x86 debug architecture.

    ``trace`` needs numpy-compatible attributes ``pc``, ``dr6``, ``dr7``,
    ``exception`` and optionally ``vcpu``, ``seq``, ``mode``, ``debug`` and
    ``code_regions`` (list of ``(addr, bytes)``).  ``debug`` (default
    ``trace.debug``) is the guest-debug configuration; ``memory`` is anything
    with ``read(addr, size) -> bytes`` and is used to decode instructions.
    ``mode`` ("real" | "protected" | "long") overrides ``trace.mode``.
    """
    if debug is None:
        debug = getattr(trace, "debug", None)
    if mode is None:
        mode = getattr(trace, "mode", None)
    if memory is None:
        regions: Any = getattr(trace, "code_regions", None)
        if callable(regions):
            regions = regions()
        if regions:
            memory = CodeImage(regions)
    cols = {}
    for name in ("pc", "dr6", "dr7", "exception"):
        col = _column(trace, name)
        if col is None:
            raise InvalidConfigError(f"invalid trace: it has no {name!r} column")
        cols[name] = col
    return analyze_columns(
        cols["pc"], cols["dr6"], cols["dr7"], cols["exception"],
        _column(trace, "vcpu"), _column(trace, "seq"),
        debug=debug, mode=mode, memory=memory, rules=rules, max_examples=max_examples,
    )
