//! The exits other than debug exits: port I/O (console, exit port, devices, the
//! Python handlers), MMIO, and the terminal ones. All out of line: the dense
//! single-step path never needs them.

use crate::error::Result;
use crate::exits::Exit;

use super::hooks::Handled;
use super::stop::StopReason;
use super::vcpu_loop::{Flow, Outbox, VcpuLoop};
use crate::recorder::Record;

/// Port whose writes are the guest's console (QEMU's debugcon convention).
pub const CONSOLE_PORT: u16 = 0xe9;
/// Port whose write ends the run with the written value (QEMU's isa-debug-exit).
pub const EXIT_PORT: u16 = crate::devices::debug_exit::PORT;

impl<O: Outbox, R: Record> VcpuLoop<'_, O, R> {
    /// Every exit but a debug exit (out of line: the dense path does not need it).
    #[cold]
    #[inline(never)]
    pub(super) fn on_exit(&mut self, exit: Result<Exit>) -> Flow {
        let exit = match exit {
            Ok(e) => e,
            Err(e) => return Flow::Stop(self.fail(e)),
        };
        match exit {
            Exit::Debug(ev) => self.on_debug(ev),
            Exit::IoOut { port, data, size } => self.on_io_out(port, data, size),
            Exit::IoIn { port, size, .. } => self.on_io_in(port, size),
            Exit::MmioWrite { addr, data } => self.on_mmio_write(addr, data),
            Exit::MmioRead { addr, len } => self.on_mmio_read(addr, len),
            Exit::Hlt => Flow::Stop(StopReason::Hlt),
            Exit::Interrupted => {
                self.vcpu.clear_immediate_exit();
                Flow::Go
            }
            other => self.on_terminal(other),
        }
    }

    /// A handler's answer: the data to return, or why the vCPU stops (unhandled:
    /// this vCPU only; the handler failed: the whole trace).
    fn answer(&self, h: Handled, unhandled: impl FnOnce() -> StopReason) -> Result<Vec<u8>, Flow> {
        match h {
            Handled::Yes(d) => Ok(d),
            Handled::No => Err(Flow::Stop(unhandled())),
            Handled::Failed(e) => Err(Flow::Stop(self.fail(e))),
        }
    }

    #[cold]
    #[inline(never)]
    fn on_io_out(&mut self, port: u16, data: Vec<u8>, size: u8) -> Flow {
        match port {
            CONSOLE_PORT => {
                self.console.extend_from_slice(&data);
                self.env.devices.echo(&data);
                Flow::Go
            }
            EXIT_PORT => self.stop_all(StopReason::ExitPort(le_value(&data))),
            _ => {
                let devices = self.env.devices;
                if devices.io_out(port, &data, &mut self.console) {
                    return Flow::Go;
                }
                let h = match self
                    .env
                    .hooks
                    .io(self.vcpu.index, port, Some(&data), size as usize)
                {
                    Handled::No if devices.legacy_out(port, &data) => Handled::Yes(Vec::new()),
                    h => h,
                };
                match self.answer(h, || StopReason::Io {
                    port,
                    write: true,
                    data: data.clone(),
                }) {
                    Ok(_) => Flow::Go,
                    Err(f) => f,
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn on_io_in(&mut self, port: u16, size: u8) -> Flow {
        if port == CONSOLE_PORT {
            self.vcpu
                .complete_io_in(&vec![CONSOLE_PORT as u8; size as usize]);
            return Flow::Go;
        }
        let devices = self.env.devices;
        if let Some(d) = devices.io_in(port, size as usize) {
            self.vcpu.complete_io_in(&d);
            return Flow::Go;
        }
        let h = match self
            .env
            .hooks
            .io(self.vcpu.index, port, None, size as usize)
        {
            Handled::No => devices
                .legacy_in(port, size as usize)
                .map_or(Handled::No, Handled::Yes),
            h => h,
        };
        match self.answer(h, || StopReason::Io {
            port,
            write: false,
            data: Vec::new(),
        }) {
            Ok(d) => {
                self.vcpu.complete_io_in(&d);
                Flow::Go
            }
            Err(f) => f,
        }
    }

    #[cold]
    #[inline(never)]
    fn on_mmio_write(&mut self, addr: u64, data: Vec<u8>) -> Flow {
        let h = self
            .env
            .hooks
            .mmio(self.vcpu.index, addr, Some(&data), data.len());
        match self.answer(h, || StopReason::Mmio {
            addr,
            write: true,
            data: data.clone(),
        }) {
            Ok(_) => Flow::Go,
            Err(f) => f,
        }
    }

    #[cold]
    #[inline(never)]
    fn on_mmio_read(&mut self, addr: u64, len: u8) -> Flow {
        let h = self
            .env
            .hooks
            .mmio(self.vcpu.index, addr, None, len as usize);
        match self.answer(h, || StopReason::Mmio {
            addr,
            write: false,
            data: Vec::new(),
        }) {
            Ok(d) => {
                self.vcpu.complete_mmio_read(&d);
                Flow::Go
            }
            Err(f) => f,
        }
    }

    /// Shutdown, internal error, failed entry and anything unexpected.
    #[cold]
    #[inline(never)]
    fn on_terminal(&mut self, exit: Exit) -> Flow {
        let r = match exit {
            Exit::Shutdown => StopReason::Shutdown,
            Exit::InternalError { suberror, data } => StopReason::InternalError { suberror, data },
            Exit::FailEntry { reason, .. } => StopReason::FailEntry { reason },
            o => StopReason::Other(format!("{o:?}")),
        };
        if r.is_global() {
            self.stop_all(r)
        } else {
            Flow::Stop(r)
        }
    }
}

/// A little-endian value of up to 8 bytes.
pub fn le_value(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .enumerate()
        .fold(0u64, |v, (i, b)| v | (u64::from(*b) << (8 * i)))
}
