"""Guest programs bundled with kvmtrace (assembly sources, assembled on demand)."""

from __future__ import annotations

from importlib.resources import files


def source(name: str) -> str:
    """The assembly source of a bundled guest, e.g. ``source("demo")``."""
    return files(__name__).joinpath(f"{name}.S").read_text()


def names() -> list[str]:
    return sorted(p.name[:-2] for p in files(__name__).iterdir() if p.name.endswith(".S"))
