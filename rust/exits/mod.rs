//! Pure decoding of `KVM_RUN` results into owned [`Exit`] values.
//!
//! `decode` takes the ioctl's result and a `kvm_run`, never the fd, so every arm is
//! unit-tested with a synthetic `kvm_run` (the way firecracker tests `handle_kvm_exit`).
//!
//! kvm-ioctls' `VcpuFd::run` decodes too, but it copies every exit's union member
//! through the stack and dispatches through a jump table; on the dense single-step
//! path that was a third of kvmtrace's user time per exit (benches/RESULTS.md). The
//! loop therefore issues `KVM_RUN` itself (`kvm/vcpu.rs`) and decodes here.

use kvm_bindings::*;

use crate::error::{Error, Result};

/// `kvm_run->debug.arch` of one `KVM_EXIT_DEBUG`. Not `Copy` on purpose: matching
/// `Exit::Debug(ev)` then moves the event out and the exit needs no drop glue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugEvent {
    pub exception: u32,
    pub pc: u64,
    pub dr6: u64,
    pub dr7: u64,
}

impl From<kvm_debug_exit_arch> for DebugEvent {
    #[inline(always)]
    fn from(a: kvm_debug_exit_arch) -> Self {
        DebugEvent {
            exception: a.exception,
            pc: a.pc,
            dr6: a.dr6,
            dr7: a.dr7,
        }
    }
}

/// One vCPU exit, owned (no borrow of `kvm_run`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Debug(DebugEvent),
    IoOut {
        port: u16,
        size: u8,
        data: Vec<u8>,
    },
    IoIn {
        port: u16,
        size: u8,
        count: u32,
    },
    MmioRead {
        addr: u64,
        len: u8,
    },
    MmioWrite {
        addr: u64,
        data: Vec<u8>,
    },
    Hlt,
    /// Triple fault or other shutdown (`KVM_EXIT_SHUTDOWN`).
    Shutdown,
    /// `KVM_EXIT_INTERNAL_ERROR`, with its suberror and the `ndata` words KVM reported.
    InternalError {
        suberror: u32,
        data: Vec<u64>,
    },
    FailEntry {
        reason: u64,
        cpu: u32,
    },
    /// `KVM_RUN` returned EINTR/EAGAIN or `KVM_EXIT_INTR`: a signal or `immediate_exit`.
    Interrupted,
    /// Any other exit reason, by name.
    Other(String),
}

impl Exit {
    /// The exit reason as the API spells it.
    pub fn reason(&self) -> &'static str {
        match self {
            Exit::Debug(_) => "debug",
            Exit::IoOut { .. } => "io_out",
            Exit::IoIn { .. } => "io_in",
            Exit::MmioRead { .. } => "mmio_read",
            Exit::MmioWrite { .. } => "mmio_write",
            Exit::Hlt => "hlt",
            Exit::Shutdown => "shutdown",
            Exit::InternalError { .. } => "internal_error",
            Exit::FailEntry { .. } => "fail_entry",
            Exit::Interrupted => "interrupted",
            Exit::Other(_) => "other",
        }
    }
}

/// What the `KVM_RUN` ioctl itself returned: success, or the errno it failed with.
pub type RunResult = std::result::Result<(), kvm_ioctls::Error>;

/// Decode one `KVM_RUN` from what the kernel left in `kvm_run`.
///
/// The run loop issues `KVM_RUN` itself and reads a debug exit's four fields
/// straight from `kvm_run`; everything else comes here. `io_data(offset, len)`
/// reads a port write's bytes, which lie in the mapping outside the struct, at
/// `io.data_offset` (the caller owns the mapping; tests pass a buffer).
pub fn decode(
    ret: RunResult,
    run: &kvm_run,
    io_data: impl FnOnce(u64, usize) -> Vec<u8>,
) -> Result<Exit> {
    let u = &run.__bindgen_anon_1;
    if let Err(source) = ret {
        return match source.errno() {
            libc::EINTR | libc::EAGAIN => Ok(Exit::Interrupted),
            // The one exit that comes with -1 (KVM API, KVM_EXIT_MEMORY_FAULT);
            // with any other errno, exit_reason is stale.
            libc::EFAULT | libc::EHWPOISON if run.exit_reason == KVM_EXIT_MEMORY_FAULT => {
                // SAFETY: exit_reason is KVM_EXIT_MEMORY_FAULT, so the kernel filled
                // the `memory_fault` member of the union.
                let f = unsafe { u.memory_fault };
                Ok(Exit::Other(format!(
                    "memory_fault(gpa={:#x}, size={})",
                    f.gpa, f.size
                )))
            }
            _ => Err(Error::Kvm {
                op: "KVM_RUN",
                source,
            }),
        };
    }
    Ok(match run.exit_reason {
        KVM_EXIT_DEBUG => {
            // SAFETY: exit_reason is KVM_EXIT_DEBUG: `debug` is the filled member.
            Exit::Debug(unsafe { u.debug.arch }.into())
        }
        KVM_EXIT_IO => {
            // SAFETY: exit_reason is KVM_EXIT_IO: `io` is the filled member.
            let io = unsafe { u.io };
            let bytes = io.size as usize * io.count as usize;
            let size = bytes.min(255) as u8;
            match u32::from(io.direction) {
                KVM_EXIT_IO_OUT => Exit::IoOut {
                    port: io.port,
                    size,
                    data: io_data(io.data_offset, bytes),
                },
                KVM_EXIT_IO_IN => Exit::IoIn {
                    port: io.port,
                    size,
                    count: io.count,
                },
                d => Exit::Other(format!("io(port={:#x}, direction={d})", io.port)),
            }
        }
        KVM_EXIT_MMIO => {
            // SAFETY: exit_reason is KVM_EXIT_MMIO: `mmio` is the filled member.
            let m = unsafe { u.mmio };
            let len = (m.len as usize).min(m.data.len());
            if m.is_write != 0 {
                Exit::MmioWrite {
                    addr: m.phys_addr,
                    data: m.data[..len].to_vec(),
                }
            } else {
                Exit::MmioRead {
                    addr: m.phys_addr,
                    len: len as u8,
                }
            }
        }
        KVM_EXIT_HLT => Exit::Hlt,
        KVM_EXIT_SHUTDOWN => Exit::Shutdown,
        KVM_EXIT_INTR => Exit::Interrupted,
        KVM_EXIT_INTERNAL_ERROR => {
            // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR: `internal` is filled.
            let i = unsafe { u.internal };
            let n = (i.ndata as usize).min(i.data.len());
            Exit::InternalError {
                suberror: i.suberror,
                data: i.data[..n].to_vec(),
            }
        }
        KVM_EXIT_FAIL_ENTRY => {
            // SAFETY: exit_reason is KVM_EXIT_FAIL_ENTRY: `fail_entry` is filled.
            let f = unsafe { u.fail_entry };
            Exit::FailEntry {
                reason: f.hardware_entry_failure_reason,
                cpu: f.cpu,
            }
        }
        KVM_EXIT_SYSTEM_EVENT => {
            // SAFETY: exit_reason is KVM_EXIT_SYSTEM_EVENT: `system_event` is filled.
            let t = unsafe { u.system_event.type_ };
            Exit::Other(format!("system_event({t})"))
        }
        KVM_EXIT_UNKNOWN => {
            // SAFETY: exit_reason is KVM_EXIT_UNKNOWN: `hw` is the filled member.
            let hw = unsafe { u.hw.hardware_exit_reason };
            Exit::Other(format!("unknown(hardware_exit_reason={hw:#x})"))
        }
        r => Exit::Other(other_name(r)),
    })
}

/// The exits kvmtrace does not ask for, by the name the KVM API gives them.
fn other_name(reason: u32) -> String {
    let name = match reason {
        KVM_EXIT_EXCEPTION => "exception",
        KVM_EXIT_HYPERCALL => "hypercall",
        KVM_EXIT_IRQ_WINDOW_OPEN => "irq_window_open",
        KVM_EXIT_SET_TPR => "set_tpr",
        KVM_EXIT_TPR_ACCESS => "tpr_access",
        KVM_EXIT_NMI => "nmi",
        KVM_EXIT_WATCHDOG => "watchdog",
        KVM_EXIT_EPR => "epr",
        KVM_EXIT_IOAPIC_EOI => "ioapic_eoi",
        KVM_EXIT_HYPERV => "hyperv",
        KVM_EXIT_X86_RDMSR => "x86_rdmsr",
        KVM_EXIT_X86_WRMSR => "x86_wrmsr",
        KVM_EXIT_X86_BUS_LOCK => "x86_bus_lock",
        KVM_EXIT_XEN => "xen",
        KVM_EXIT_NOTIFY => "notify",
        _ => return format!("exit_reason({reason})"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests;
