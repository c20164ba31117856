"""Pure-Python KVM single-step loop: the deliberately slow baseline.

Does exactly what ``kvm_step.c`` (the C baseline next to this file) does, using only the standard
library (os, fcntl, mmap, ctypes): one real-mode vCPU, all segment
bases/selectors 0, guest loaded at 0x8000, rip=0x8000, rflags=2,
KVM_GUESTDBG_ENABLE|KVM_GUESTDBG_SINGLESTEP, then a bare KVM_RUN loop that
records pc/dr6/dr7/exception from ``kvm_run->debug.arch`` into
``array.array`` buffers.  Stops after *events* debug exits, on KVM_EXIT_HLT
or on an OUT to port 0xf4.

Only the KVM_RUN loop is timed (time.monotonic_ns == CLOCK_MONOTONIC; and
time.thread_time_ns for the loop's CPU time).

    >>> from kvmtrace._bench.pyloop import run_pyloop
    >>> from kvmtrace._bench.guests import STEP_LOOP
    >>> run_pyloop(STEP_LOOP, 20_000)
    {'events': 20000, 'seconds': ..., 'events_per_s': ..., 'checksum': 0, 'stop': 'limit'}

Run directly: ``python -m kvmtrace._bench.pyloop [N]``.
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import mmap
import os
import time

from kvmtrace._bench.guests import LOAD_ADDR, MEMORY_SIZE
from kvmtrace._bench.kvm_uapi import (
    KVM_API_VERSION,
    KVM_CAP_SYNC_REGS,
    KVM_CHECK_EXTENSION,
    KVM_CREATE_VCPU,
    KVM_CREATE_VM,
    KVM_EXIT_DEBUG,
    KVM_EXIT_FAIL_ENTRY,
    KVM_EXIT_HLT,
    KVM_EXIT_INTERNAL_ERROR,
    KVM_EXIT_IO,
    KVM_EXIT_IO_OUT,
    KVM_GET_API_VERSION,
    KVM_GET_SREGS,
    KVM_GET_VCPU_MMAP_SIZE,
    KVM_GUESTDBG_ENABLE,
    KVM_GUESTDBG_SINGLESTEP,
    KVM_RUN,
    KVM_SET_GUEST_DEBUG,
    KVM_SET_REGS,
    KVM_SET_SREGS,
    KVM_SET_TSS_ADDR,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SYNC_X86_REGS,
    KvmError,
    KvmGuestDebug,
    KvmRegs,
    KvmRun,
    KvmSregs,
    KvmUserspaceMemoryRegion,
    ioctl_ulong,
)
from kvmtrace._core import EXIT_PORT

INITIAL_SP = 0x7000  # as kvm_step.c
TSS_ADDR = 0xFFFBD000  # KVM_SET_TSS_ADDR: three pages just below the 4 GiB BIOS area


class _SingleStepVcpu:
    """One real-mode vCPU set up the way ``kvm_step.c`` sets up its own (outside the
    timed loop); :meth:`close` frees its fds and mappings."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.mem: mmap.mmap | None = None
        self.run_map: mmap.mmap | None = None
        self.run: KvmRun | None = None

    def open(self, code: bytes, regs: bool) -> tuple[int, KvmRun]:
        """Create the VM and vCPU with ``code`` at LOAD_ADDR: (the vCPU fd, its kvm_run)."""
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        self.fds.append(kvm)
        api = fcntl.ioctl(kvm, KVM_GET_API_VERSION, 0)
        if api != KVM_API_VERSION:
            raise KvmError(f"KVM API version {api}, expected {KVM_API_VERSION}")
        if regs:
            caps = fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS)
            if not caps & KVM_SYNC_X86_REGS:
                raise KvmError(f"KVM_SYNC_X86_REGS not supported (caps={caps})")

        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
        self.fds.append(vm)
        # Harmless on SVM; needed for real mode on VMX w/o unrestricted guest.
        # fcntl.ioctl only takes a C int argument and 0xfffbd000 > INT_MAX.
        ioctl_ulong(vm, KVM_SET_TSS_ADDR, TSS_ADDR)

        # Guest memory: anonymous mapping, registered by address.
        self.mem = mem = mmap.mmap(-1, MEMORY_SIZE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        mem[LOAD_ADDR : LOAD_ADDR + len(code)] = code
        anchor = ctypes.c_char.from_buffer(mem)
        mem_addr = ctypes.addressof(anchor)
        del anchor  # drop the buffer export so mem can be closed later
        region = KvmUserspaceMemoryRegion(
            slot=0, flags=0, guest_phys_addr=0, memory_size=MEMORY_SIZE,
            userspace_addr=mem_addr,
        )
        fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, region)

        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
        self.fds.append(vcpu)
        run_size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
        self.run_map = run_map = mmap.mmap(vcpu, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.run = run = KvmRun.from_buffer(run_map)

        sregs = KvmSregs()
        fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs)
        for seg in (sregs.cs, sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
            seg.base = 0
            seg.selector = 0
        fcntl.ioctl(vcpu, KVM_SET_SREGS, sregs)

        r = KvmRegs(rip=LOAD_ADDR, rsp=INITIAL_SP, rflags=0x2)
        fcntl.ioctl(vcpu, KVM_SET_REGS, r)

        dbg = KvmGuestDebug(control=KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP)
        fcntl.ioctl(vcpu, KVM_SET_GUEST_DEBUG, dbg)

        if regs:
            run.kvm_valid_regs = KVM_SYNC_X86_REGS
            run.kvm_dirty_regs = 0
        return vcpu, run

    def close(self) -> None:
        # ctypes views must go before the mmaps they point into.
        self.run = None
        if self.run_map is not None:
            try:
                self.run_map.close()
            except BufferError:
                pass  # a view is still held (by a traceback's frame): the mapping goes with the last view
        for fd in reversed(self.fds):
            os.close(fd)
        if self.mem is not None:
            self.mem.close()


def _single_step(vcpu: int, run: KvmRun, events: int, regs: bool) -> tuple[dict, dict]:
    """The timed KVM_RUN loop: (the result dict, the recorded ``array.array`` columns)."""
    pcs = array.array("Q")
    dr6s = array.array("Q")
    dr7s = array.array("Q")
    excs = array.array("B")
    rips = array.array("Q")
    rsps = array.array("Q")
    raxs = array.array("Q")

    ioctl = fcntl.ioctl
    dbg_exit = run.exit.debug
    io_exit = run.exit.io
    sync = run.sync_regs
    n = 0
    checksum = 0
    stop = "limit"

    # ---------------- timed loop ----------------
    cpu0 = time.thread_time_ns()
    t0 = time.monotonic_ns()
    while n < events:
        try:
            ioctl(vcpu, KVM_RUN, 0)
        except InterruptedError:
            continue
        except BlockingIOError:
            continue
        reason = run.exit_reason
        if reason == KVM_EXIT_DEBUG:
            pc = dbg_exit.pc
            pcs.append(pc)
            dr6s.append(dbg_exit.dr6)
            dr7s.append(dbg_exit.dr7)
            excs.append(dbg_exit.exception & 0xFF)
            checksum ^= pc
            if regs:
                rips.append(sync.rip)
                rsps.append(sync.rsp)
                raxs.append(sync.rax)
            n += 1
        elif reason == KVM_EXIT_HLT:
            stop = "hlt"
            break
        elif reason == KVM_EXIT_IO:
            if io_exit.port == EXIT_PORT and io_exit.direction == KVM_EXIT_IO_OUT:
                stop = "io"
                break
        elif reason == KVM_EXIT_FAIL_ENTRY:
            raise KvmError(
                f"KVM_EXIT_FAIL_ENTRY hw reason "
                f"{run.exit.hw_entry_failure_reason:#x} after {n} events"
            )
        elif reason == KVM_EXIT_INTERNAL_ERROR:
            raise KvmError(
                f"KVM_EXIT_INTERNAL_ERROR suberror {run.exit.internal_suberror} "
                f"after {n} events"
            )
        else:
            raise KvmError(f"unexpected exit reason {reason} after {n} events")
    seconds = (time.monotonic_ns() - t0) * 1e-9
    cpu_seconds = (time.thread_time_ns() - cpu0) * 1e-9
    # --------------------------------------------

    recorded = {"pc": pcs, "dr6": dr6s, "dr7": dr7s, "exception": excs}
    if regs:
        recorded.update(rip=rips, rsp=rsps, rax=raxs)
    result = {
        "events": n,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "events_per_s": n / seconds if seconds > 0 else 0.0,
        "checksum": checksum,
        "stop": stop,
    }
    return result, recorded


def run_pyloop(
    code: bytes,
    events: int,
    *,
    regs: bool = False,
    arrays: dict | None = None,
) -> dict:
    """Single-step *code* (real mode, at 0x8000) for up to *events* debug exits.

    Returns ``{"events", "seconds", "cpu_seconds", "events_per_s", "checksum",
    "stop"}`` like the C baseline (checksum = XOR of all pcs; cpu_seconds: this
    thread's CPU time in the loop).  If *arrays* is a dict it is
    filled with ``array.array`` records: ``pc``, ``dr6``, ``dr7`` (``'Q'``),
    ``exception`` (``'B'``) and, with ``regs=True`` (KVM_CAP_SYNC_REGS),
    ``rip``, ``rsp``, ``rax``.
    """
    if events < 0:
        raise ValueError("events must be >= 0")
    if not code:
        raise ValueError("empty guest image")
    if len(code) > MEMORY_SIZE - LOAD_ADDR:
        raise ValueError("guest image too large")

    vcpu = _SingleStepVcpu()
    try:
        # No local name for the kvm_run view here: close() unmaps it.
        result, recorded = _single_step(*vcpu.open(code, regs), events, regs)
    except OSError as e:
        if e.errno == errno.ENOENT and not os.path.exists("/dev/kvm"):
            raise KvmError("/dev/kvm not present") from e
        raise
    finally:
        vcpu.close()
    if arrays is not None:
        arrays.update(recorded)
    return result


if __name__ == "__main__":
    import json
    import sys

    from kvmtrace._bench.guests import STEP_LOOP

    n_events = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(json.dumps(run_pyloop(STEP_LOOP, n_events)))
