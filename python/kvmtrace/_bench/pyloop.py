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
from kvmtrace._core import EXIT_PORT, GUESTDBG_FLAGS

# ---------------------------------------------------------------------------
# ioctl encoding (asm-generic/ioctl.h) and KVM constants (linux/kvm.h)
# ---------------------------------------------------------------------------
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2
KVMIO = 0xAE


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def _io(nr: int) -> int:
    return _ioc(_IOC_NONE, nr, 0)


def _iow(nr: int, ctype) -> int:
    return _ioc(_IOC_WRITE, nr, ctypes.sizeof(ctype))


def _ior(nr: int, ctype) -> int:
    return _ioc(_IOC_READ, nr, ctypes.sizeof(ctype))


KVM_API_VERSION = 12
KVM_EXIT_IO = 2
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_IO_OUT = 1
_GUESTDBG = {name: bit for bit, name in GUESTDBG_FLAGS.items()}
KVM_GUESTDBG_ENABLE = _GUESTDBG["KVM_GUESTDBG_ENABLE"]
KVM_GUESTDBG_SINGLESTEP = _GUESTDBG["KVM_GUESTDBG_SINGLESTEP"]
KVM_CAP_SYNC_REGS = 74
KVM_SYNC_X86_REGS = 1 << 0

INITIAL_SP = 0x7000
TSS_ADDR = 0xFFFBD000

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


# ---------------------------------------------------------------------------
# uapi structs (x86-64 layout)
# ---------------------------------------------------------------------------
class KvmUserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [
        ("slot", u32),
        ("flags", u32),
        ("guest_phys_addr", u64),
        ("memory_size", u64),
        ("userspace_addr", u64),
    ]


class KvmRegs(ctypes.Structure):
    _fields_ = [
        (name, u64)
        for name in (
            "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags"
        ).split()
    ]


class KvmSegment(ctypes.Structure):
    _fields_ = [
        ("base", u64),
        ("limit", u32),
        ("selector", u16),
        ("type", u8),
        ("present", u8),
        ("dpl", u8),
        ("db", u8),
        ("s", u8),
        ("l", u8),
        ("g", u8),
        ("avl", u8),
        ("unusable", u8),
        ("padding", u8),
    ]


class KvmDtable(ctypes.Structure):
    _fields_ = [("base", u64), ("limit", u16), ("padding", u16 * 3)]


class KvmSregs(ctypes.Structure):
    _fields_ = [
        ("cs", KvmSegment),
        ("ds", KvmSegment),
        ("es", KvmSegment),
        ("fs", KvmSegment),
        ("gs", KvmSegment),
        ("ss", KvmSegment),
        ("tr", KvmSegment),
        ("ldt", KvmSegment),
        ("gdt", KvmDtable),
        ("idt", KvmDtable),
        ("cr0", u64),
        ("cr2", u64),
        ("cr3", u64),
        ("cr4", u64),
        ("cr8", u64),
        ("efer", u64),
        ("apic_base", u64),
        ("interrupt_bitmap", u64 * 4),
    ]


class KvmGuestDebug(ctypes.Structure):
    _fields_ = [("control", u32), ("pad", u32), ("debugreg", u64 * 8)]


class KvmDebugExitArch(ctypes.Structure):
    _fields_ = [("exception", u32), ("pad", u32), ("pc", u64), ("dr6", u64), ("dr7", u64)]


class KvmIoExit(ctypes.Structure):
    _fields_ = [
        ("direction", u8),
        ("size", u8),
        ("port", u16),
        ("count", u32),
        ("data_offset", u64),
    ]


class KvmRunExit(ctypes.Union):
    _fields_ = [
        ("debug", KvmDebugExitArch),
        ("io", KvmIoExit),
        ("hw_entry_failure_reason", u64),  # fail_entry
        ("internal_suberror", u32),  # internal.suberror
        ("padding", ctypes.c_char * 256),
    ]


class KvmRun(ctypes.Structure):
    """struct kvm_run up to and including s.regs.regs (kvm_sync_regs.regs)."""

    _fields_ = [
        ("request_interrupt_window", u8),
        ("immediate_exit", u8),
        ("padding1", u8 * 6),
        ("exit_reason", u32),
        ("ready_for_interrupt_injection", u8),
        ("if_flag", u8),
        ("flags", u16),
        ("cr8", u64),
        ("apic_base", u64),
        ("exit", KvmRunExit),
        ("kvm_valid_regs", u64),
        ("kvm_dirty_regs", u64),
        ("sync_regs", KvmRegs),  # start of union s { struct kvm_sync_regs; char pad[2048] }
    ]


assert ctypes.sizeof(KvmRegs) == 144
assert ctypes.sizeof(KvmSegment) == 24
assert ctypes.sizeof(KvmSregs) == 312
assert ctypes.sizeof(KvmGuestDebug) == 72
assert ctypes.sizeof(KvmUserspaceMemoryRegion) == 32
assert KvmRun.exit.offset == 32 and KvmRun.kvm_valid_regs.offset == 288
assert KvmRun.sync_regs.offset == 304

KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_CREATE_VCPU = _io(0x41)
KVM_SET_USER_MEMORY_REGION = _iow(0x46, KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = _io(0x47)
KVM_RUN = _io(0x80)
KVM_GET_REGS = _ior(0x81, KvmRegs)
KVM_SET_REGS = _iow(0x82, KvmRegs)
KVM_GET_SREGS = _ior(0x83, KvmSregs)
KVM_SET_SREGS = _iow(0x84, KvmSregs)
KVM_SET_GUEST_DEBUG = _iow(0x9B, KvmGuestDebug)


class KvmError(RuntimeError):
    pass


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]
_libc.ioctl.restype = ctypes.c_int


def _ioctl_ulong(fd: int, request: int, arg: int) -> int:
    """ioctl with an unsigned long value argument (beyond fcntl.ioctl's int)."""
    ret = _libc.ioctl(fd, request, arg)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


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

    fds: list[int] = []
    mem = run_map = run = None
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        fds.append(kvm)
        api = fcntl.ioctl(kvm, KVM_GET_API_VERSION, 0)
        if api != KVM_API_VERSION:
            raise KvmError(f"KVM API version {api}, expected {KVM_API_VERSION}")
        if regs:
            caps = fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS)
            if not caps & KVM_SYNC_X86_REGS:
                raise KvmError(f"KVM_SYNC_X86_REGS not supported (caps={caps})")

        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
        fds.append(vm)
        # Harmless on SVM; needed for real mode on VMX w/o unrestricted guest.
        # fcntl.ioctl only takes a C int argument and 0xfffbd000 > INT_MAX.
        _ioctl_ulong(vm, KVM_SET_TSS_ADDR, TSS_ADDR)

        # Guest memory: anonymous mapping, registered by address.
        mem = mmap.mmap(-1, MEMORY_SIZE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
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
        fds.append(vcpu)
        run_size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
        run_map = mmap.mmap(vcpu, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        run = KvmRun.from_buffer(run_map)

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

        del dbg_exit, io_exit, sync
        if arrays is not None:
            arrays.update(pc=pcs, dr6=dr6s, dr7=dr7s, exception=excs)
            if regs:
                arrays.update(rip=rips, rsp=rsps, rax=raxs)
        return {
            "events": n,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "events_per_s": n / seconds if seconds > 0 else 0.0,
            "checksum": checksum,
            "stop": stop,
        }
    except OSError as e:
        if e.errno == errno.ENOENT and not os.path.exists("/dev/kvm"):
            raise KvmError("/dev/kvm not present") from e
        raise
    finally:
        # ctypes views must go before the mmaps they point into.
        run = None
        if run_map is not None:
            run_map.close()
        for fd in reversed(fds):
            os.close(fd)
        if mem is not None:
            mem.close()


if __name__ == "__main__":
    import json
    import sys

    from kvmtrace._bench.guests import STEP_LOOP

    n_events = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(json.dumps(run_pyloop(STEP_LOOP, n_events)))
