"""Facts about the host a suite runs on: kernel, CPU (and its vendor), KVM capabilities."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any

from kvmtrace._core import __version__
from kvmtrace.conformance.facts import GUESTDBG_FLAGS
from kvmtrace.machine import Machine

#: /proc/cpuinfo vendor_id -> the vendor whose expectations apply where Intel and AMD differ.
VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}


def cpuinfo(text: str | None = None) -> dict[str, Any]:
    """The first CPU's identification from /proc/cpuinfo (or ``text``)."""
    info: dict[str, Any] = {}
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return info
    first = text.split("\n\n", 1)[0]
    for line in first.splitlines():
        if ":" not in line:
            continue
        k, v = (x.strip() for x in line.split(":", 1))
        if k in ("vendor_id", "model name", "cpu family", "model", "stepping", "microcode"):
            info[k] = v
        elif k == "flags":
            flags = set(v.split())
            info["hypervisor"] = "hypervisor" in flags
            info["virtualization"] = sorted(flags & {"vmx", "svm"})
    return info


def cpu_vendor(vendor_id: str | None = None) -> str | None:
    """``"intel"``, ``"amd"`` or None, from a vendor_id (default: this host's /proc/cpuinfo)."""
    if vendor_id is None:
        vendor_id = cpuinfo().get("vendor_id")
    return VENDORS.get(vendor_id or "")


def kvm_modules() -> list[str]:
    """The KVM modules loaded (kvm_intel, kvm_amd, kvm_pvm, ...): which implementation answers /dev/kvm."""
    try:
        return sorted(n for n in os.listdir("/sys/module") if n.startswith("kvm_"))
    except OSError:
        return []


def flag_names(flags: int) -> list[str]:
    """KVM_GUESTDBG_* names of the bits in ``flags`` (unknown bits in hex)."""
    return [n for bit, n in GUESTDBG_FLAGS.items() if flags & bit] + [
        f"{1 << b:#x}" for b in range(32) if flags >> b & 1 and (1 << b) not in GUESTDBG_FLAGS
    ]


def host_info() -> dict[str, Any]:
    """Kernel, CPU and KVM facts of this host (KVM capabilities from a throwaway Machine)."""
    cpu = cpuinfo()
    uname = platform.uname()
    host: dict[str, Any] = {
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "cpu": {
            "vendor": cpu.get("vendor_id"),
            "model": cpu.get("model name"),
            "family": cpu.get("cpu family"),
            "model_number": cpu.get("model"),
            "stepping": cpu.get("stepping"),
            "microcode": cpu.get("microcode"),
            "hypervisor": cpu.get("hypervisor"),
        },
        "kvm": {},
        "kvmtrace_version": __version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        with Machine(memory_size=1 << 20, mode="real") as m:
            caps = dict(m.host_caps)
            rf_resume = bool(m.host["rf_resume"])
        flags = int(caps.get("guest_debug_flags", 0))
        caps["guest_debug_flags"] = f"{flags:#x}"
        caps["guest_debug_flag_names"] = flag_names(flags)
        host["kvm"] = caps
        host["kvm"]["vendor_modules"] = kvm_modules()
        host["kvm"]["rf_resume"] = rf_resume
    except Exception as e:  # no usable /dev/kvm: every scenario reports it as an error too
        host["kvm"] = {"error": f"{type(e).__name__}: {e}"}
    return host
