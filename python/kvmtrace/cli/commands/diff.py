"""``kvmtrace diff``: the reference oracle (see :mod:`kvmtrace.oracle.cli`)."""

from __future__ import annotations

from kvmtrace.oracle.cli import diff_command as command

NAME = "diff"

__all__ = ["NAME", "command"]
