//! Pure decoding of `KVM_RUN` results into owned [`Exit`] values.
//!
//! `decode` takes what `VcpuFd::run` returned, never the fd, so every arm is
//! unit-tested with synthetic exits (the way firecracker tests `handle_kvm_exit`).

use kvm_ioctls::VcpuExit;

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
    /// `KVM_EXIT_INTERNAL_ERROR`; the caller fills the suberror and data from `kvm_run`.
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

/// Decode one `KVM_RUN` result (inlined: on the hot path it is one match).
#[inline(always)]
pub fn decode(res: std::result::Result<VcpuExit<'_>, kvm_ioctls::Error>) -> Result<Exit> {
    let exit = match res {
        Ok(e) => e,
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            return Ok(Exit::Interrupted)
        }
        Err(source) => {
            return Err(Error::Kvm {
                op: "KVM_RUN",
                source,
            })
        }
    };
    Ok(match exit {
        VcpuExit::Debug(a) => Exit::Debug(DebugEvent {
            exception: a.exception,
            pc: a.pc,
            dr6: a.dr6,
            dr7: a.dr7,
        }),
        VcpuExit::IoOut(port, data) => Exit::IoOut {
            port,
            size: data.len().min(255) as u8,
            data: data.to_vec(),
        },
        VcpuExit::IoIn(port, data) => Exit::IoIn {
            port,
            size: data.len().min(255) as u8,
            count: 1,
        },
        VcpuExit::MmioRead(addr, data) => Exit::MmioRead {
            addr,
            len: data.len() as u8,
        },
        VcpuExit::MmioWrite(addr, data) => Exit::MmioWrite {
            addr,
            data: data.to_vec(),
        },
        VcpuExit::Hlt => Exit::Hlt,
        VcpuExit::Shutdown => Exit::Shutdown,
        VcpuExit::InternalError => Exit::InternalError {
            suberror: 0,
            data: Vec::new(),
        },
        VcpuExit::FailEntry(reason, cpu) => Exit::FailEntry { reason, cpu },
        VcpuExit::Intr => Exit::Interrupted,
        VcpuExit::SystemEvent(t, _) => Exit::Other(format!("system_event({t})")),
        VcpuExit::MemoryFault { gpa, size, .. } => {
            Exit::Other(format!("memory_fault(gpa={gpa:#x}, size={size})"))
        }
        other => Exit::Other(format!("{other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_debug_exit_arch;

    #[test]
    fn debug_exit_keeps_all_fields() {
        let arch = kvm_debug_exit_arch {
            exception: 1,
            pad: 0,
            pc: 0x8003,
            dr6: 0xffff4ff0,
            dr7: 0x400,
        };
        let e = decode(Ok(VcpuExit::Debug(arch))).unwrap();
        assert_eq!(
            e,
            Exit::Debug(DebugEvent {
                exception: 1,
                pc: 0x8003,
                dr6: 0xffff4ff0,
                dr7: 0x400
            })
        );
        assert_eq!(e.reason(), "debug");
    }

    #[test]
    fn io_and_mmio_exits() {
        let data = [b'A'];
        assert_eq!(
            decode(Ok(VcpuExit::IoOut(0xe9, &data))).unwrap(),
            Exit::IoOut {
                port: 0xe9,
                size: 1,
                data: vec![b'A']
            }
        );
        let mut buf = [0u8; 2];
        assert_eq!(
            decode(Ok(VcpuExit::IoIn(0x60, &mut buf))).unwrap(),
            Exit::IoIn {
                port: 0x60,
                size: 2,
                count: 1
            }
        );
        let mut m = [0u8; 4];
        assert_eq!(
            decode(Ok(VcpuExit::MmioRead(0xfee0_0000, &mut m))).unwrap(),
            Exit::MmioRead {
                addr: 0xfee0_0000,
                len: 4
            }
        );
        assert_eq!(
            decode(Ok(VcpuExit::MmioWrite(0x1000_0000, &[1, 2]))).unwrap(),
            Exit::MmioWrite {
                addr: 0x1000_0000,
                data: vec![1, 2]
            }
        );
    }

    #[test]
    fn terminal_exits() {
        assert_eq!(decode(Ok(VcpuExit::Hlt)).unwrap(), Exit::Hlt);
        assert_eq!(decode(Ok(VcpuExit::Shutdown)).unwrap(), Exit::Shutdown);
        assert_eq!(
            decode(Ok(VcpuExit::FailEntry(7, 1))).unwrap(),
            Exit::FailEntry { reason: 7, cpu: 1 }
        );
        assert!(matches!(
            decode(Ok(VcpuExit::InternalError)).unwrap(),
            Exit::InternalError { .. }
        ));
        assert_eq!(decode(Ok(VcpuExit::Intr)).unwrap(), Exit::Interrupted);
        assert!(matches!(
            decode(Ok(VcpuExit::Watchdog)).unwrap(),
            Exit::Other(_)
        ));
    }

    #[test]
    fn errno_mapping() {
        let eintr = kvm_ioctls::Error::new(libc::EINTR);
        assert_eq!(decode(Err(eintr)).unwrap(), Exit::Interrupted);
        let eagain = kvm_ioctls::Error::new(libc::EAGAIN);
        assert_eq!(decode(Err(eagain)).unwrap(), Exit::Interrupted);
        let efault = kvm_ioctls::Error::new(libc::EFAULT);
        let err = decode(Err(efault)).unwrap_err().to_string();
        assert!(err.contains("KVM_RUN"), "{err}");
    }
}
