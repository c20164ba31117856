"""The KVM userspace ABI the pure-Python loop (:mod:`.pyloop`) speaks: ioctl numbers,
exit reasons and ``struct kvm_*`` layouts (x86-64) as ctypes, defined here by hand
because defining them is part of what a pure-Python KVM loop costs.

KVM_GUESTDBG_* flag values come from ``kvmtrace._core.GUESTDBG_FLAGS``.
"""

from __future__ import annotations

import ctypes
import os

from kvmtrace._core import GUESTDBG_FLAGS

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
    """A KVM call of the pure-Python baseline failed or KVM answered unexpectedly."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]
_libc.ioctl.restype = ctypes.c_int


def ioctl_ulong(fd: int, request: int, arg: int) -> int:
    """ioctl with an unsigned long value argument (beyond fcntl.ioctl's int)."""
    ret = _libc.ioctl(fd, request, arg)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret
