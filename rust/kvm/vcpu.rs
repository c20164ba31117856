//! One vCPU: mode setup, register access by name, guest-debug programming and a
//! single `KVM_RUN` decoded into an [`Exit`]. No Python here.

use kvm_bindings::{
    kvm_guest_debug, kvm_regs, kvm_sregs, CpuId, KVMIO, KVM_EXIT_DEBUG, KVM_SYNC_X86_REGS,
};
use kvm_ioctls::VcpuFd;
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::ioctl;

use std::cell::Cell;

use crate::arch::rflags;
use crate::debug::GuestDebug;
use crate::error::{Error, Result};
use crate::exits::{self, DebugEvent, Exit, RunResult};
use crate::kvm::layout::{self, Mode};
use crate::kvm::sregs::setup_sregs;

/// An instruction-fault event the vCPU is parked on: resuming must step over it once
/// with the trigger disarmed, or the same event would fire again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// INT3 patched by us at `addr`.
    SwBreakpoint { addr: u64 },
    /// Instruction breakpoint in DR`slot` at `pc`.
    HwExec { slot: usize, pc: u64 },
    /// General-detect fault (a guest `mov` to or from a debug register) at `pc`.
    GeneralDetect { pc: u64 },
}

impl Parked {
    pub fn pc(self) -> u64 {
        match self {
            Parked::SwBreakpoint { addr } => addr,
            Parked::HwExec { pc, .. } | Parked::GeneralDetect { pc } => pc,
        }
    }
}

/// One `KVM_RUN`: a debug exit, or anything else decoded (see [`Vcpu::finish_exit`]).
pub enum Step {
    Debug(DebugEvent),
    Other(Result<Exit>),
}

// `KVM_RUN` is `_IO(KVMIO, 0x80)` (include/uapi/linux/kvm.h).
vmm_sys_util::ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);

pub struct Vcpu {
    pub(super) fd: VcpuFd,
    pub index: usize,
    pub mode: Mode,
    /// Set when the last debug event was an instruction fault that resuming must step over.
    pub parked: Option<Parked>,
    /// The last exit was a port or MMIO access that KVM completes on the next
    /// `KVM_RUN` (writing rax/memory and advancing rip).
    io_pending: bool,
    /// KVM ioctls issued on this vCPU (KVM_RUN, register and guest-debug calls).
    ioctls: Cell<u64>,
}

impl Vcpu {
    pub fn new(fd: VcpuFd, index: usize, mode: Mode, cpuid: &CpuId, entry: u64) -> Result<Self> {
        fd.set_cpuid2(cpuid).map_err(Error::kvm("KVM_SET_CPUID2"))?;
        let mut v = Vcpu {
            fd,
            index,
            mode,
            parked: None,
            io_pending: false,
            ioctls: Cell::new(0),
        };
        v.reset(entry)?;
        Ok(v)
    }

    /// Put the vCPU in `mode` at `entry` with a fresh stack and clean flags.
    pub fn reset(&mut self, entry: u64) -> Result<()> {
        self.settle()?;
        let mut s = self.fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
        setup_sregs(&mut s, self.mode);
        self.fd.set_sregs(&s).map_err(Error::kvm("KVM_SET_SREGS"))?;
        let regs = kvm_regs {
            rip: entry,
            rflags: 0x2,
            rsp: layout::STACK_TOP - layout::STACK_PER_VCPU * self.index as u64,
            rdi: self.index as u64,
            ..Default::default()
        };
        self.fd
            .set_regs(&regs)
            .map_err(Error::kvm("KVM_SET_REGS"))?;
        self.parked = None;
        Ok(())
    }

    /// Enter a boot protocol's state: its registers, and its segments, control
    /// registers and descriptor tables over the vCPU's current system state.
    pub fn apply_boot(&mut self, b: &crate::boot::BootState) -> Result<()> {
        self.settle()?;
        let mut s = self.sregs()?;
        let t = &b.sregs;
        (s.cs, s.ds, s.es, s.fs, s.gs, s.ss) = (t.cs, t.ds, t.es, t.fs, t.gs, t.ss);
        (s.gdt, s.idt) = (t.gdt, t.idt);
        (s.cr0, s.cr3, s.cr4, s.efer) = (t.cr0, t.cr3, t.cr4, t.efer);
        self.fd.set_sregs(&s).map_err(Error::kvm("KVM_SET_SREGS"))?;
        self.set_regs(&b.regs)?;
        self.parked = None;
        Ok(())
    }

    /// Park an application processor until the boot CPU sends it INIT/SIPI (needs
    /// the in-kernel LAPIC), as firmware leaves every CPU but the first.
    pub fn wait_for_sipi(&self) -> Result<()> {
        self.fd
            .set_mp_state(kvm_bindings::kvm_mp_state {
                mp_state: kvm_bindings::KVM_MP_STATE_UNINITIALIZED,
            })
            .map_err(Error::kvm("KVM_SET_MP_STATE"))
    }

    /// The guest-physical address of linear address `addr` under the vCPU's paging.
    pub fn translate(&self, addr: u64) -> Option<u64> {
        let t = self.fd.translate_gva(addr).ok()?;
        (t.valid != 0).then_some(t.physical_address)
    }

    /// Replace the CPUID table (KVM accepts a different one only before the first run).
    pub fn set_cpuid(&self, cpuid: &CpuId) -> Result<()> {
        self.fd.set_cpuid2(cpuid).map_err(|e| match e.errno() {
            libc::EINVAL | libc::EBUSY => Error::invalid(
                "cpuid",
                "KVM refuses a CPUID change after the vCPU has run; change it before the first run (or use a new Machine)",
            ),
            _ => Error::Kvm {
                op: "KVM_SET_CPUID2",
                source: e,
            },
        })
    }

    /// Wire this vCPU's in-kernel LAPIC (see `irqchip::setup_vcpu`).
    pub fn setup_irqchip(&self) -> Result<()> {
        crate::kvm::irqchip::setup_vcpu(&self.fd)
    }

    /// KVM ioctls issued on this vCPU so far.
    pub fn ioctls(&self) -> u64 {
        self.ioctls.get()
    }

    pub(super) fn count(&self, n: u64) {
        self.ioctls.set(self.ioctls.get() + n);
    }

    pub fn regs(&self) -> Result<kvm_regs> {
        self.count(1);
        self.fd.get_regs().map_err(Error::kvm("KVM_GET_REGS"))
    }

    pub fn set_regs(&self, r: &kvm_regs) -> Result<()> {
        self.count(1);
        self.fd.set_regs(r).map_err(Error::kvm("KVM_SET_REGS"))
    }

    pub fn sregs(&self) -> Result<kvm_sregs> {
        self.count(1);
        self.fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))
    }

    /// Resume past an instruction breakpoint at the next `KVM_RUN`: RFLAGS.RF set
    /// through the sync-regs dirty bit, no ioctl of its own. Needs sync regs on.
    pub fn set_rf_on_entry(&mut self) {
        self.fd.sync_regs_mut().regs.rflags |= rflags::RF;
        self.fd.get_kvm_run().kvm_dirty_regs |= u64::from(KVM_SYNC_X86_REGS);
    }

    /// RFLAGS.RF set now (KVM_GET_REGS + KVM_SET_REGS), for a resume outside a run.
    pub fn set_rf_now(&mut self) -> Result<()> {
        let mut r = self.regs()?;
        r.rflags |= rflags::RF;
        self.set_regs(&r)
    }

    /// Program `KVM_SET_GUEST_DEBUG`; `extra` adds one-shot flags (injections).
    pub fn apply_debug(&mut self, g: Option<&GuestDebug>, extra: u32) -> Result<()> {
        self.count(1);
        let mut dbg = kvm_guest_debug::default();
        if let Some(g) = g {
            dbg.control = g.control() | extra;
            let dr = g.dr0_3();
            dbg.arch.debugreg[..4].copy_from_slice(&dr);
            dbg.arch.debugreg[7] = g.dr7();
        }
        self.fd.set_guest_debug(&dbg).map_err(|e| match e.errno() {
            libc::EBUSY => Error::invalid(
                "inject",
                "an exception is already pending in the vCPU; run it first",
            ),
            libc::EINVAL => Error::Unsupported {
                what: format!(
                    "KVM_SET_GUEST_DEBUG rejected control {:#x}: {e}",
                    dbg.control
                ),
            },
            _ => Error::Kvm {
                op: "KVM_SET_GUEST_DEBUG",
                source: e,
            },
        })?;
        Ok(())
    }

    /// Ask KVM to copy the general registers into `kvm_run` on every exit.
    pub fn set_sync_regs(&mut self, on: bool) {
        let run = self.fd.get_kvm_run();
        if on {
            run.kvm_valid_regs |= u64::from(KVM_SYNC_X86_REGS);
        } else {
            run.kvm_valid_regs &= !u64::from(KVM_SYNC_X86_REGS);
        }
        run.kvm_dirty_regs = 0;
    }

    /// The registers KVM synced into `kvm_run` at the last exit.
    #[inline(always)]
    pub fn synced_regs(&mut self) -> &kvm_regs {
        &self.fd.sync_regs_mut().regs
    }

    /// Pointer to `kvm_run->immediate_exit`, for the kick signal handler.
    pub fn immediate_exit_ptr(&mut self) -> *mut u8 {
        &mut self.fd.get_kvm_run().immediate_exit as *mut u8
    }

    pub fn clear_immediate_exit(&mut self) {
        self.fd.set_kvm_immediate_exit(0);
    }

    /// Complete a pending port/MMIO access without running guest code: `KVM_RUN`
    /// with `immediate_exit` set finishes it and returns EINTR (KVM API, `immediate_exit`).
    /// Register writes after that are not overridden by the completion.
    pub fn settle(&mut self) -> Result<()> {
        if !self.io_pending {
            return Ok(());
        }
        self.fd.set_kvm_immediate_exit(1);
        let ret = self.enter();
        let r = self.decode_exit(ret);
        self.fd.set_kvm_immediate_exit(0);
        self.io_pending = false;
        match r {
            Ok(Exit::Interrupted) => Ok(()),
            Ok(other) => Err(Error::Internal(format!(
                "completing a pending I/O exit returned {other:?}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// One `KVM_RUN`.
    pub fn run(&mut self) -> Result<Exit> {
        match self.step() {
            Step::Debug(ev) => Ok(Exit::Debug(ev)),
            Step::Other(r) => self.finish_exit(r),
        }
    }

    /// One `KVM_RUN` ioctl, issued here rather than through `VcpuFd::run`, whose
    /// generic decode is a third of the loop's user time (see `exits/mod.rs`).
    #[inline(always)]
    fn enter(&mut self) -> RunResult {
        self.count(1);
        // SAFETY: `self.fd` is this vCPU's fd and KVM_RUN takes no argument; the
        // kernel writes only the vCPU's kvm_run mapping, which `self.fd` keeps mapped.
        let ret = unsafe { ioctl(&self.fd, KVM_RUN()) };
        if ret == 0 {
            Ok(())
        } else {
            // Read at once: errno is only this call's until the next libc call.
            Err(errno::Error::last())
        }
    }

    /// One `KVM_RUN`, with the run loop's common case apart: a debug exit is tested
    /// for right after the ioctl; anything else is decoded out of line and must go
    /// through [`Vcpu::finish_exit`].
    #[inline(always)]
    pub fn step(&mut self) -> Step {
        // Taken before the ioctl: after it the exit is then one load away, not two
        // (the kernel's run has evicted this struct's line; see benches/RESULTS.md).
        let run: *mut kvm_bindings::kvm_run = self.fd.get_kvm_run();
        let ret = self.enter();
        // SAFETY: `run` points into the kvm_run mapping that `self.fd` keeps for the
        // vCPU's whole life, and no other reference to it is live here.
        let run = unsafe { &mut *run };
        if ret.is_err() || run.exit_reason != KVM_EXIT_DEBUG {
            return Step::Other(self.decode_exit(ret));
        }
        self.io_pending = false;
        // Registers written through the dirty bit (RF) were taken on entry.
        run.kvm_dirty_regs = 0;
        // SAFETY: exit_reason is KVM_EXIT_DEBUG (tested above), so the kernel
        // filled the `debug` member of the union.
        Step::Debug(unsafe { run.__bindgen_anon_1.debug.arch }.into())
    }

    /// Decode the last `KVM_RUN` from `kvm_run` (everything but the dense debug exit).
    #[cold]
    #[inline(never)]
    fn decode_exit(&mut self, ret: RunResult) -> Result<Exit> {
        let run = self.fd.get_kvm_run();
        let base = run as *const kvm_bindings::kvm_run as *const u8;
        exits::decode(ret, run, |offset, len| {
            // SAFETY: for KVM_EXIT_IO the kernel puts `len` (size * count) bytes at
            // `data_offset` inside the kvm_run mapping (sized by the kernel with
            // KVM_GET_VCPU_MMAP_SIZE); they are only read, and copied out at once.
            unsafe { std::slice::from_raw_parts(base.add(offset as usize), len) }.to_vec()
        })
    }

    /// Note what a non-debug exit leaves pending.
    #[cold]
    #[inline(never)]
    pub fn finish_exit(&mut self, exit: Result<Exit>) -> Result<Exit> {
        self.fd.get_kvm_run().kvm_dirty_regs = 0;
        let exit = exit?;
        self.io_pending = matches!(
            exit,
            Exit::IoIn { .. } | Exit::IoOut { .. } | Exit::MmioRead { .. } | Exit::MmioWrite { .. }
        );
        Ok(exit)
    }

    /// Supply the data of a pending port read (after an `IoIn` exit).
    pub fn complete_io_in(&mut self, data: &[u8]) {
        let run = self.fd.get_kvm_run();
        // SAFETY: the last exit was KVM_EXIT_IO, so `io` is the valid union member.
        let io = unsafe { run.__bindgen_anon_1.io };
        let want = io.size as usize * io.count as usize;
        // A short answer reads as zeros, never as stale bytes.
        let mut buf = vec![0u8; want];
        let n = want.min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        let base = run as *mut kvm_bindings::kvm_run as *mut u8;
        // SAFETY: data_offset and size*count come from the kernel and lie inside the
        // kvm_run mapping (the kernel sized it with KVM_GET_VCPU_MMAP_SIZE).
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), base.add(io.data_offset as usize), want)
        };
    }

    /// Supply the data of a pending MMIO read.
    pub fn complete_mmio_read(&mut self, data: &[u8]) {
        let run = self.fd.get_kvm_run();
        // SAFETY: the last exit was KVM_EXIT_MMIO, so `mmio` is the valid union member.
        let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
        let want = (mmio.len as usize).min(8);
        let n = want.min(data.len());
        mmio.data[..want].fill(0);
        mmio.data[..n].copy_from_slice(&data[..n]);
    }
}
