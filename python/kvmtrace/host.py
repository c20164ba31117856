"""Facts about the host's KVM, without creating a VM."""

from __future__ import annotations

import os


def kvm_problem(path: str = "/dev/kvm") -> str | None:
    """None if ``path`` can be opened read-write, else why not and what to do."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"{path} does not exist: load kvm_intel/kvm_amd or enable (nested) virtualization"
    except PermissionError:
        return f"{path} is not accessible: add yourself to the kvm group or chmod 666 {path}"
    except OSError as e:
        return f"{path} is not usable: {e.strerror}"
    os.close(fd)
    return None
