"""Compile and run the C baseline (``kvm_step.c``, shipped inside the package).

The source is compiled with ``cc -O2`` (or ``$CC``) into a directory the caller
chooses, every time a benchmark session starts, so the binary always matches the
source and the host's ``<linux/kvm.h>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

CFLAGS = ("-O2", "-Wall", "-Wextra")
SOURCE_NAME = "kvm_step.c"
#: The package that ships SOURCE_NAME: this module's own (``__package__`` is typed Optional).
SOURCE_PACKAGE = __name__.rpartition(".")[0]


class CBaselineError(RuntimeError):
    """The C baseline could not be compiled or did not run."""


def source_text() -> str:
    """The C source as shipped in the package."""
    return resources.files(SOURCE_PACKAGE).joinpath(SOURCE_NAME).read_text(encoding="utf-8")


def source_path() -> Path:
    """Filesystem path of the shipped ``kvm_step.c`` (the package is installed unzipped)."""
    p = resources.files(SOURCE_PACKAGE).joinpath(SOURCE_NAME)
    return Path(os.fspath(p))  # type: ignore[arg-type]


def find_cc() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc)


def compile_c_baseline(outdir: str | os.PathLike[str]) -> Path:
    """Compile ``kvm_step.c`` into ``outdir/kvm_step`` and return the binary's path."""
    cc = find_cc()
    if cc is None:
        raise CBaselineError(
            "no C compiler: the C baseline needs `cc` on PATH (or CC=/path/to/compiler), "
            "e.g. `apt-get install gcc`"
        )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    src = outdir / SOURCE_NAME
    src.write_text(source_text(), encoding="utf-8")
    binary = outdir / "kvm_step"
    cmd = [cc, *CFLAGS, "-o", str(binary), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CBaselineError(f"compiling the C baseline failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")
    return binary


def _read_dump(path: Path, n: int, regs: bool) -> dict[str, Any]:
    import numpy as np

    raw = path.read_bytes()
    expect = n * (3 * 8 + 1 + (3 * 8 if regs else 0))
    if len(raw) != expect:
        raise CBaselineError(f"dump has {len(raw)} bytes, expected {expect} for {n} events")
    out: dict[str, Any] = {}
    off = 0
    for name in ("pc", "dr6", "dr7"):
        out[name] = np.frombuffer(raw, dtype="<u8", count=n, offset=off)
        off += 8 * n
    out["exception"] = np.frombuffer(raw, dtype="u1", count=n, offset=off)
    off += n
    if regs:
        for name in ("rip", "rsp", "rax"):
            out[name] = np.frombuffer(raw, dtype="<u8", count=n, offset=off)
            off += 8 * n
    return out


def run_c(binary: str | os.PathLike[str], code: bytes, events: int, *, regs: bool = False,
          dump: bool = False, mode: str = "real", block_irq: bool = False,
          stop_at: int | None = None) -> dict[str, Any]:
    """Run the compiled C loop on ``code`` (loaded at 0x8000) for ``events`` debug exits.

    Returns its JSON line as a dict: events, seconds (the KVM_RUN loop only),
    cpu_seconds, user_seconds, sys_seconds, events_per_s, checksum (XOR of the pcs),
    stop ("limit" | "stop_at" | "hlt" | "io"). ``mode`` is "real" or "long" (kvmtrace's
    layout), ``block_irq`` adds KVM_GUESTDBG_BLOCKIRQ, ``stop_at`` stops after the exit
    at that pc. ``dump=True`` adds ``"arrays"``: numpy arrays pc, dr6, dr7, exception
    (and rip, rsp, rax with ``regs``).
    """
    if mode not in ("real", "long"):
        raise CBaselineError(f"the C baseline runs real or long mode, not {mode!r}")
    with tempfile.TemporaryDirectory(prefix="kvmtrace-cbench-") as d:
        guest = Path(d) / "guest.bin"
        guest.write_bytes(code)
        cmd = [os.fspath(binary)]
        if regs:
            cmd.append("--regs")
        if mode == "long":
            cmd.append("--long")
        if block_irq:
            cmd.append("--blockirq")
        if stop_at is not None:
            cmd += ["--stop-at", hex(stop_at)]
        dump_path = Path(d) / "dump.bin"
        if dump:
            cmd += ["--dump", str(dump_path)]
        cmd += [str(guest), str(int(events))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CBaselineError(f"kvm_step exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
        lines = proc.stdout.strip().splitlines()
        if len(lines) != 1:
            raise CBaselineError(f"kvm_step: expected one JSON line, got {proc.stdout!r}")
        result: dict[str, Any] = json.loads(lines[0])
        if dump:
            result["arrays"] = _read_dump(dump_path, result["events"], regs)
        return result
