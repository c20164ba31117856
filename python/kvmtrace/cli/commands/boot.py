"""``kvmtrace boot``: boot a Linux or Multiboot kernel and trace it (see :mod:`kvmtrace.boot.cli`)."""

from __future__ import annotations

from kvmtrace.boot.cli import boot as command

NAME = "boot"

__all__ = ["NAME", "command"]
