//! COM1: a 16550 UART from vm-superio. The guest's transmitted bytes collect in a
//! buffer the run loop drains into the vCPU's console (the same buffer port 0xE9
//! fills), so no Python runs per byte. Line status comes from vm-superio: THRE and
//! TEMT always set, which is what early consoles and the 8250 driver poll for.

use std::io::Write;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// COM1's eight registers.
pub const COM1: u16 = 0x3f8;
pub const COM1_LEN: u16 = 8;
/// The ISA interrupt line COM1 raises (wired through the in-kernel irqchip, if any).
pub const COM1_IRQ: u32 = 4;

/// The UART's interrupt line: an eventfd registered as an irqfd when the VM has an
/// in-kernel irqchip, else nothing (the guest polls).
pub struct IrqLine(pub Option<EventFd>);

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        match &self.0 {
            Some(fd) => fd.write(1),
            None => Ok(()),
        }
    }
}

/// Transmitted bytes not yet taken by the run loop.
#[derive(Default)]
pub struct TxBuffer(pub Vec<u8>);

impl Write for TxBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Uart {
    serial: Serial<IrqLine, vm_superio::serial::NoEvents, TxBuffer>,
}

impl Uart {
    pub fn new(irq: Option<EventFd>) -> Self {
        Uart {
            serial: Serial::new(IrqLine(irq), TxBuffer::default()),
        }
    }

    /// A register write; transmitted bytes are appended to `console`.
    pub fn write(&mut self, offset: u8, value: u8, console: &mut Vec<u8>) {
        // A failed interrupt trigger only loses an interrupt the guest can poll for.
        let _ = self.serial.write(offset, value);
        let tx = &mut self.serial.writer_mut().0;
        console.append(tx);
    }

    pub fn read(&mut self, offset: u8) -> u8 {
        self.serial.read(offset)
    }
}
