"""``kvmtrace fuzz``: the reference oracle (see :mod:`kvmtrace.oracle.cli`)."""

from __future__ import annotations

from kvmtrace.oracle.cli import fuzz_command as command

NAME = "fuzz"

__all__ = ["NAME", "command"]
