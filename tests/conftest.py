"""Test configuration: the `requires_kvm` marker.

A test marked `requires_kvm` skips when /dev/kvm cannot be opened read-write, and
FAILS instead under KVMTRACE_REQUIRE_KVM=1 (as .ci/run sets), so CI can never go
green by skipping the KVM tests.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from kvmtrace.host import kvm_problem

# CI runs the fuzz tests with a fixed seed (reproducible verdicts); locally they explore.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REQUIRE_KVM = os.environ.get("KVMTRACE_REQUIRE_KVM") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = kvm_problem()
    if problem is None:
        return
    for item in items:
        if item.get_closest_marker("requires_kvm"):
            if not REQUIRE_KVM:
                item.add_marker(pytest.mark.skip(reason=problem))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if REQUIRE_KVM and item.get_closest_marker("requires_kvm"):
        problem = kvm_problem()
        if problem is not None:
            pytest.fail(f"KVMTRACE_REQUIRE_KVM=1 but {problem}", pytrace=False)
