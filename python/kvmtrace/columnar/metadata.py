"""The run facts stored with a trace: the ``kvmtrace`` key of Arrow/Parquet metadata.

A JSON object with ``format`` ("kvmtrace-trace"), ``format_version``,
``kvmtrace_version``, ``created``, ``run_uuid``, ``run_id``, ``host`` (kernel, cpu,
machine, os, python), ``host_caps``, ``mode``, ``vcpus``, ``debug``
(``GuestDebug.to_dict()``), ``registers``, ``symbols`` ([name, addr, size, kind]),
``entry``, ``part``, ``rows``, ``first_row``, ``final``, ``code_regions`` and, when
the run has ended, ``stop_reason``, ``stop_detail``, ``per_vcpu_stop``, ``console``,
``event_count``, ``exits``, ``start_ns``, ``end_ns``, ``dropped_events``, ``hits``,
``windows``, ``window`` and the trace's free ``metadata``. Bytes inside JSON values are ``{"$bytes": base64}``.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import time
import uuid
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

import kvmtrace._core as _core

FORMAT = "kvmtrace-trace"
FORMAT_VERSION = 1
META_KEY = b"kvmtrace"
#: Keys of Trace.metadata that are file facts, not the user's free metadata.
FACT_KEYS = ("kvmtrace_version", "created", "host", "host_caps", "run_id", "run_uuid", "symbols", "entry", "source")


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(o)).decode()}
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "value") and isinstance(getattr(o, "value"), (str, int)):  # enums
        return o.value
    return repr(o)


def _json_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and "$bytes" in d:
        return base64.b64decode(d["$bytes"])
    return d


def dumps(d: Mapping[str, Any]) -> bytes:
    return json.dumps(d, default=_json_default, separators=(",", ":")).encode()


def loads(b: bytes) -> dict[str, Any]:
    return json.loads(b, object_hook=_json_hook)


@lru_cache(maxsize=1)
def host_facts() -> dict[str, Any]:
    """Kernel, CPU model and machine of this host."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    u = os.uname()
    return {"os": u.sysname, "kernel": u.release, "kernel_version": u.version, "machine": u.machine,
            "cpu": cpu or platform.processor() or None, "python": platform.python_version()}


def symbols_json(program: Any) -> list[list[Any]] | None:
    if program is None:
        return None
    return [[s.name, s.addr, s.size, s.kind] for s in sorted(program.symbols.values(), key=lambda s: (s.addr, s.name))]


def regions_json(regions: Iterable[tuple[int, bytes]]) -> list[dict[str, Any]]:
    return [{"addr": int(a), "data": base64.b64encode(bytes(b)).decode()} for a, b in regions]


def regions_from_json(v: Any) -> list[tuple[int, bytes]]:
    out = []
    for r in v or []:
        data = r["data"]
        out.append((int(r["addr"]), data if isinstance(data, bytes) else base64.b64decode(data)))
    return out


def _attr(obj: Any, name: str) -> Any:
    """``obj.name``, or None when obj is None or cannot tell (e.g. a closed Machine)."""
    if obj is None:
        return None
    try:
        return getattr(obj, name)
    except Exception:
        return None


def base_meta(*, machine: Any = None, debug: Any = None, program: Any = None, trace: Any = None,
               host_caps: Mapping[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Facts known before a run ends: version, host, KVM caps, mode, debug config, symbols."""
    md = dict(getattr(trace, "metadata", None) or {})
    if program is None and machine is not None:
        program = getattr(machine, "program", None)
    if host_caps is None and machine is not None:
        host_caps = _attr(machine, "host_caps")
        host_caps = dict(host_caps) if host_caps is not None else None
    m_mode, m_vcpus, m_entry = (_attr(machine, a) for a in ("mode", "vcpu_count", "entry"))
    if debug is None and trace is not None:
        debug = trace.debug
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kvmtrace_version": md.get("kvmtrace_version", _core.__version__),
        "created": md.get("created", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        "run_uuid": md.get("run_uuid", uuid.uuid4().hex),
        "run_id": run_id if run_id is not None else md.get("run_id"),
        "host": md.get("host") or host_facts(),
        "host_caps": host_caps if host_caps is not None else md.get("host_caps"),
        "mode": trace.mode if trace is not None else m_mode,
        "vcpus": trace.vcpus if trace is not None else m_vcpus,
        "debug": debug.to_dict() if debug is not None else None,
        "symbols": symbols_json(program) if program is not None else md.get("symbols"),
        "entry": program.entry if program is not None else (m_entry if m_entry is not None else md.get("entry")),
    }
    return meta


def run_facts(t: Any) -> dict[str, Any]:
    user = {k: v for k, v in (getattr(t, "metadata", None) or {}).items() if k not in FACT_KEYS}
    return {
        "mode": t.mode,
        "vcpus": t.vcpus,
        "debug": t.debug.to_dict() if t.debug is not None else None,
        "stop_reason": str(t.stop_reason),
        "stop_detail": t.stop_detail,
        "per_vcpu_stop": t.per_vcpu_stop,
        "console": t.console,
        "event_count": t.event_count,
        "exits": t.exits,
        "start_ns": t.start_ns,
        "end_ns": t.end_ns,
        "dropped_events": getattr(t, "dropped_events", 0),
        "hits": list(getattr(t, "hits", None) or []),
        "windows": getattr(t, "windows", 0),
        "window": window_to_dict(getattr(t, "window_spec", None)),
        "metadata": user,
    }


def window_to_dict(w: Any) -> dict[str, Any] | None:
    """A resolved ``_core.Window`` as stored in the run facts (None: no window)."""
    if w is None:
        return None
    return {"start": w.start, "steps": w.steps, "until": w.until, "repeat": w.repeat, "block_irq": w.block_irq}


def window_from_dict(d: Mapping[str, Any]) -> Any:
    """The ``_core.Window`` of stored run facts."""
    return _core.Window(d["start"], steps=d.get("steps"), until=d.get("until"), repeat=d.get("repeat"),
                        block_irq=d.get("block_irq", True))


def trace_meta(t: Any, *, final: bool, program: Any = None, machine: Any = None,
                host_caps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    meta = base_meta(machine=machine, program=program, trace=t, host_caps=host_caps)
    meta.update(run_facts(t))
    meta.update(final=final, part=0, rows=len(t), first_row=0, registers=t.register_names,
                code_regions=regions_json(t.code_regions))
    return meta

