"""The machine a figure was measured on: CPU, cores, kernel, KVM module, kvmtrace build."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

from kvmtrace.host import kvm_problem


def machine_info() -> dict[str, Any]:
    """CPU, cores, kernel, KVM module and kvmtrace build: the context every figure needs."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", "x86_64", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    kvm_modules = sorted(m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.isdir(f"/sys/module/{m}"))
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "virtualized": "hypervisor" in flags,
        "hw_virt_flags": sorted(flags & {"vmx", "svm"}),
        "kvm_modules": kvm_modules,
        "python": platform.python_version(),
    }
    try:
        import kvmtrace

        info["kvmtrace"] = kvmtrace.__version__
        info["build_profile"] = kvmtrace.build_profile
    except Exception:  # noqa: BLE001 - informational only
        pass
    return info


def describe_machine(info: Mapping[str, Any] | None = None) -> str:
    info = info or machine_info()
    where = "VM" if info.get("virtualized") else "bare metal"
    kvm = "+".join(info.get("kvm_modules") or ["kvm?"])
    hw = ",".join(info.get("hw_virt_flags") or []) or "no vmx/svm visible"
    return (f"{info.get('cpu')} ({info.get('cpus')} CPUs, {where}), Linux {info.get('kernel')}, "
            f"KVM module {kvm} ({hw}), Python {info.get('python')}, kvmtrace {info.get('kvmtrace', '?')}"
            f" ({info.get('build_profile', '?')})")


def kvm_missing() -> str | None:
    """None if /dev/kvm can be opened read-write, else the reason."""
    why = kvm_problem()
    return None if why is None else f"{why}; benchmarks need KVM access"
