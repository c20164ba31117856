"""The reference model: Unicorn (QEMU's TCG x86 emulator) started from the same memory
image and registers as the KVM run, stepped one architectural single-step at a time.

An architectural step is one instruction, except after MOV SS / POP SS, whose step
trap the architecture inhibits until the next instruction has completed (SDM Vol. 3A
§6.8.3): the reference then executes both before it reports. Ports and MMIO go
through :class:`~kvmtrace.oracle.devices.Devices`, as on the KVM side; any address at
or above the guest memory size is MMIO (mapped page by page on first access).
Exceptions are not delivered (Unicorn has no architectural IDT delivery): a fault ends
the reference run with its vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import kvmtrace._core as _core
from kvmtrace.exceptions import UnsupportedError
from kvmtrace.oracle.devices import EXIT_PORT, Devices
from kvmtrace.oracle.state import RCX, REGISTERS, RIP, Decoded, State, decode

PAGE = 0x1000
MAX_INSN = 15  # the longest x86 instruction
IA32_EFER = 0xC0000080  # the MSR number of EFER (Unicorn sets it through UC_X86_REG_MSR)
VECTOR_UD = 6  # #UD: Unicorn reports it as UC_ERR_INSN_INVALID rather than an interrupt


def load_unicorn() -> Any:
    """The unicorn module, or an UnsupportedError saying how to install it."""
    try:
        import unicorn
        import unicorn.x86_const  # noqa: F401
    except ImportError as e:
        raise UnsupportedError(
            f"the reference model needs Unicorn ({e}): pip install 'kvmtrace[reference]'"
        ) from None
    return unicorn


def _batch_reader(uc_mod: Any, uc: Any, ids: list[int]) -> Any:
    """A function reading ``ids`` in one ``uc_reg_read_batch`` call into fixed buffers.

    The binding's ``reg_read_batch`` picks a ctypes type per register on every call,
    which costs more than the emulated step itself; the general registers are all
    integers of at most 8 bytes, so one zeroed uint64 buffer per register serves every
    read. Falls back to the binding's method if its internals are not where expected.
    """
    import ctypes

    try:
        lib = uc_mod.unicorn_py3.unicorn.uclib
        handle, fn = uc._uch, lib.uc_reg_read_batch
    except AttributeError:
        return lambda: uc.reg_read_batch(ids)
    n = len(ids)
    reg_ids = (ctypes.c_int * n)(*ids)
    values = (ctypes.c_uint64 * n)()
    base, width = ctypes.addressof(values), ctypes.sizeof(ctypes.c_uint64)
    pointers = (ctypes.c_void_p * n)(*(base + k * width for k in range(n)))

    def read() -> list[int]:
        status = fn(handle, reg_ids, pointers, n)
        if status != uc_mod.UC_ERR_OK:
            raise uc_mod.UcError(status)
        return values[:]

    return read


@dataclass
class RefStep:
    """One architectural single-step of the reference."""

    before: int  # linear address of the (first) instruction
    instructions: tuple[Decoded, ...]
    state: State | None  # registers after the step; None when the step ended the run
    event: str | None = None  # None, "exit" (debug-exit port), "fault" (vector) or "error"
    detail: dict[str, Any] = field(default_factory=dict)
    writes: tuple[int, int] = (0, 0)  # slice of Devices.writes made by this step

    @property
    def first(self) -> Decoded:
        return self.instructions[0]


class UnicornReference:
    """Unicorn set up like the KVM run's Machine: image, GDT/IDT, control and general registers."""

    def __init__(self, *, mode: str, memory_size: int, registers: dict[str, int],
                 layout: dict[str, tuple[int, int]], image: bytes) -> None:
        uc_mod = load_unicorn()
        self._u, self._x = uc_mod, uc_mod.x86_const
        x = self._x
        self.mode, self.memory_size, self.bits = mode, memory_size, _core.MODE_BITS[mode]
        self.devices = Devices()
        uc_mode = {16: uc_mod.UC_MODE_16, 32: uc_mod.UC_MODE_32, 64: uc_mod.UC_MODE_64}[self.bits]
        # The host is an AMD EPYC: the closest Unicorn CPU model (CPUID features such as CX16).
        self.uc = uc = uc_mod.Uc(uc_mod.UC_ARCH_X86, uc_mode, x.UC_CPU_X86_EPYC)
        uc.mem_map(0, memory_size)
        pages = np.frombuffer(image, dtype=np.uint64).reshape(-1, PAGE // 8).any(axis=1)
        for p in np.flatnonzero(pages).tolist():
            uc.mem_write(p * PAGE, image[p * PAGE:(p + 1) * PAGE])
        self._ids, self._fixed = self._register_ids(registers)
        self._uid = dict(self._ids)
        self._read_batch = _batch_reader(uc_mod, uc, [uid for _, uid in self._ids])
        self._setup_system(registers, layout)
        self.write_state(tuple(registers[n] for n in REGISTERS), force=True)
        self._event: tuple[str, dict[str, Any]] | None = None
        self._undo: list[tuple[int, bytes]] | None = None
        self._undo_hook: int | None = None
        self._saved: Any = None
        uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_in, None, 1, 0, x.UC_X86_INS_IN)
        uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_out, None, 1, 0, x.UC_X86_INS_OUT)
        uc.hook_add(uc_mod.UC_HOOK_INTR, self._on_interrupt)
        uc.hook_add(uc_mod.UC_HOOK_MEM_READ_UNMAPPED | uc_mod.UC_HOOK_MEM_WRITE_UNMAPPED, self._on_unmapped)

    # Setup -------------------------------------------------------------------
    def _register_ids(self, registers: dict[str, int]) -> tuple[list[tuple[int, int]], dict[int, int]]:
        """Unicorn ids of the state registers this mode has; the others keep their KVM values."""
        x, ids, fixed = self._x, [], {}
        for i, name in enumerate(REGISTERS):
            if self.bits == 64:
                ids.append((i, getattr(x, "UC_X86_REG_" + name.upper())))
            elif name[1:].isdigit():  # r8-r15: 64-bit mode only
                fixed[i] = registers[name]
            else:
                uc_name = {"rip": "EIP", "rflags": "EFLAGS"}.get(name, "E" + name[1:].upper())
                ids.append((i, getattr(x, "UC_X86_REG_" + uc_name)))
        return ids, fixed

    def _setup_system(self, regs: dict[str, int], layout: dict[str, tuple[int, int]]) -> None:
        uc, x = self.uc, self._x
        if self.bits > 16:
            for reg, region in ((x.UC_X86_REG_GDTR, "gdt"), (x.UC_X86_REG_IDTR, "idt")):
                base, size = layout[region]
                uc.reg_write(reg, (0, base, size - 1, 0))
            for cr in ("cr0", "cr3", "cr4"):
                uc.reg_write(getattr(x, "UC_X86_REG_" + cr.upper()), regs[cr])
            uc.reg_write(x.UC_X86_REG_MSR, (IA32_EFER, regs["efer"]))
        for seg in ("ds", "es", "fs", "gs", "ss", "cs"):
            uc.reg_write(getattr(x, "UC_X86_REG_" + seg.upper()), regs[seg])

    # State -------------------------------------------------------------------
    def read_state(self) -> State:
        values = self._read_batch()
        out = [0] * len(REGISTERS)
        for (i, _), v in zip(self._ids, values):
            out[i] = v
        for i, v in self._fixed.items():
            out[i] = v
        return tuple(out)

    def write_state(self, state: State, force: bool = False) -> None:
        """Set the registers to ``state`` (the oracle's resync to KVM's account)."""
        current = None if force else self.read_state()
        mask = (1 << self.bits) - 1 if self.bits > 16 else (1 << 32) - 1
        writes = [(uid, state[i] & mask) for i, uid in self._ids if current is None or current[i] != state[i]]
        if writes:
            self.uc.reg_write_batch(writes)
        for i in self._fixed:
            self._fixed[i] = state[i]

    def pc(self) -> int:
        rip = self.uc.reg_read(self._uid[RIP])
        if self.bits == 16:
            return (self.uc.reg_read(self._x.UC_X86_REG_CS) << 4) + rip
        return rip

    def read_memory(self) -> bytes:
        return bytes(self.uc.mem_read(0, self.memory_size))

    # Stepping ----------------------------------------------------------------
    def step(self) -> RefStep:
        """Run one architectural single-step and report the state after it."""
        w0 = len(self.devices.writes)
        before = self.pc()
        done: list[Decoded] = []
        while True:
            pc = self.pc() if done else before
            insn = self._decode(pc)
            done.append(insn)
            event = self._run_one(pc)
            if event is None and insn.rep_count_mask and self._rep_exhausted(insn):
                # Unicorn ends a REP string's last iteration back at the instruction and
                # leaves it on the next run; architecturally the last iteration completes
                # it, and its step trap comes with the pc after it (SDM Vol. 3B §18.3.1.4).
                event = self._run_one(pc)
            if event is not None or not insn.loads_ss or len(done) > 1:
                break
        w = (w0, len(self.devices.writes))
        if event is not None:
            return RefStep(before, tuple(done), None, event[0], event[1], w)
        return RefStep(before, tuple(done), self.read_state(), writes=w)

    def _rep_exhausted(self, insn: Decoded) -> bool:
        return self.pc() == insn.addr and not self.uc.reg_read(self._uid[RCX]) & insn.rep_count_mask

    def _decode(self, pc: int) -> Decoded:
        n = max(0, min(MAX_INSN, self.memory_size - pc))
        try:
            code = bytes(self.uc.mem_read(pc, n)) if n else b""
        except self._u.UcError:
            code = b""
        return decode(code, pc, self.bits)

    def _run_one(self, pc: int) -> tuple[str, dict[str, Any]] | None:
        self._event = None
        try:
            self.uc.emu_start(pc, (1 << 64) - 1, count=1)
        except self._u.UcError as e:
            if e.errno == self._u.UC_ERR_INSN_INVALID:
                return "fault", {"vector": VECTOR_UD, "pc": pc}
            return "error", {"error": str(e), "pc": pc}
        return self._event

    # Lookahead -------------------------------------------------------------------
    def snapshot(self) -> None:
        """Remember the state so that steps taken to look ahead can be undone."""
        self._saved = (self.uc.context_save(), len(self.devices.writes), len(self.devices.console), dict(self._fixed))
        self._undo = []
        self._undo_hook = self.uc.hook_add(self._u.UC_HOOK_MEM_WRITE, self._on_write)

    def restore(self) -> None:
        ctx, nw, nc, fixed = self._saved
        for addr, old in reversed(self._undo or []):
            self.uc.mem_write(addr, old)
        self.uc.context_restore(ctx)
        del self.devices.writes[nw:]
        del self.devices.console[nc:]
        self._fixed = fixed
        self.commit()

    def commit(self) -> None:
        if self._undo_hook is not None:
            self.uc.hook_del(self._undo_hook)
        self._undo_hook, self._undo, self._saved = None, None, None

    # Hooks -----------------------------------------------------------------------
    def _on_write(self, uc: Any, access: int, addr: int, size: int, value: int, _: Any) -> None:
        if self._undo is not None and addr + size <= self.memory_size:
            self._undo.append((addr, bytes(uc.mem_read(addr, size))))

    def _on_in(self, uc: Any, port: int, size: int, _: Any) -> int:
        return int.from_bytes(self.devices.port_read(port, size), "little")

    def _on_out(self, uc: Any, port: int, size: int, value: int, _: Any) -> None:
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        if port == EXIT_PORT:
            self._event = ("exit", {"exit_code": int.from_bytes(data, "little")})
            uc.emu_stop()
            return
        self.devices.port_write(port, data)

    def _on_interrupt(self, uc: Any, vector: int, _: Any) -> None:
        self._event = ("fault", {"vector": vector, "pc": self.pc()})
        uc.emu_stop()

    def _on_unmapped(self, uc: Any, access: int, addr: int, size: int, value: int, _: Any) -> bool:
        # Unbacked guest-physical addresses are MMIO on the KVM side: map the page as MMIO.
        if addr < self.memory_size or addr >= 1 << 32:
            return False
        base = addr & ~(PAGE - 1)
        uc.mmio_map(base, PAGE, self._mmio_read, base, self._mmio_write, base)
        return True

    def _mmio_read(self, uc: Any, offset: int, size: int, base: int) -> int:
        return int.from_bytes(self.devices.mmio_read(base + offset, size), "little")

    def _mmio_write(self, uc: Any, offset: int, size: int, value: int, base: int) -> None:
        self.devices.mmio_write(base + offset, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
