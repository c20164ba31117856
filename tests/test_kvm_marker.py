"""The requires_kvm marker: skip without KVM, but fail under KVMTRACE_REQUIRE_KVM=1."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import conftest


class FakeItem(SimpleNamespace):
    def get_closest_marker(self, name: str) -> object:
        return object() if name == "requires_kvm" else None

    def add_marker(self, m: object) -> None:
        self.markers.append(m)


def test_missing_kvm_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "kvm_problem", lambda: "/dev/kvm unusable: [Errno 2] No such file")
    monkeypatch.setattr(conftest, "REQUIRE_KVM", True)
    with pytest.raises(pytest.fail.Exception, match="KVMTRACE_REQUIRE_KVM=1 but /dev/kvm unusable"):
        conftest.pytest_runtest_setup(FakeItem(markers=[]))  # type: ignore[arg-type]
    item = FakeItem(markers=[])
    conftest.pytest_collection_modifyitems(None, [item])  # type: ignore[arg-type]
    assert item.markers == [], "no skip marker when KVM is required"


def test_missing_kvm_skips_when_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "kvm_problem", lambda: "/dev/kvm unusable: [Errno 13] Permission denied")
    monkeypatch.setattr(conftest, "REQUIRE_KVM", False)
    item = FakeItem(markers=[])
    conftest.pytest_collection_modifyitems(None, [item])  # type: ignore[arg-type]
    assert len(item.markers) == 1 and item.markers[0].name == "skip"
    conftest.pytest_runtest_setup(FakeItem(markers=[]))  # type: ignore[arg-type]  # does not fail
