"""Kernels the boot tests run: the project's own Multiboot test kernel (built here
with GNU as/ld) and the Debian cloud kernel that scripts/test.sh fetches.

The Debian kernel is looked for in $KVMTRACE_KERNEL (a vmlinuz path) or under
$KVMTRACE_KERNEL_DIR (default ~/.cache/kvmtrace/kernel, where scripts/fetch-kernel.sh
extracts the package). Under KVMTRACE_REQUIRE_KVM=1 a missing kernel fails the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MULTIBOOT_SOURCE = HERE / "data" / "multiboot_kernel.S"
#: What the multiboot test kernel writes to isa-debug-exit when every check passed.
MULTIBOOT_OK = 0x21


def build_multiboot_kernel(out_dir: Path) -> Path:
    """Assemble and link the multiboot test kernel (ELF32, loaded at 1 MiB)."""
    for tool in ("as", "ld"):
        if shutil.which(tool) is None:
            pytest.fail(f"GNU binutils ({tool}) is needed to build the multiboot test kernel")
    obj, elf = out_dir / "mbk.o", out_dir / "mbk.elf"
    subprocess.run(["as", "--32", "-o", str(obj), str(MULTIBOOT_SOURCE)], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-N", "--no-warn-rwx-segments", "-Ttext", "0x100000",
                    "-e", "_start", "-o", str(elf), str(obj)], check=True)
    return elf


def kernel_dir() -> Path:
    return Path(os.environ.get("KVMTRACE_KERNEL_DIR", Path.home() / ".cache" / "kvmtrace" / "kernel"))


def find_debian_kernel() -> Path | None:
    env = os.environ.get("KVMTRACE_KERNEL")
    if env:
        return Path(env)
    found = sorted(kernel_dir().glob("**/boot/vmlinuz-*"))
    return found[-1] if found else None


def find_system_map() -> Path | None:
    """The real System.map (from the -dbg package), if someone extracted it."""
    found = [p for p in kernel_dir().glob("**/System.map-*") if p.stat().st_size > 4096]
    return sorted(found)[-1] if found else None


def debian_kernel_or_skip() -> Path:
    k = find_debian_kernel()
    if k is not None and k.is_file():
        return k
    msg = f"no Debian kernel under {kernel_dir()} (run scripts/fetch-kernel.sh or set KVMTRACE_KERNEL)"
    if os.environ.get("KVMTRACE_REQUIRE_KVM") == "1":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)
