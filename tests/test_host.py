"""kvmtrace.host.kvm_problem: says what is wrong with /dev/kvm and what to do."""

from __future__ import annotations

from pathlib import Path

from kvmtrace.host import kvm_problem


def test_missing_device(tmp_path: Path) -> None:
    why = kvm_problem(str(tmp_path / "kvm"))
    assert why is not None and "does not exist" in why and "virtualization" in why


def test_usable_path(tmp_path: Path) -> None:
    p = tmp_path / "kvm"
    p.write_bytes(b"")
    assert kvm_problem(str(p)) is None


def test_not_openable(tmp_path: Path) -> None:
    assert "not usable" in (kvm_problem(str(tmp_path)) or "")  # a directory cannot be opened O_RDWR
