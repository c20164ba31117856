//! The devices of a Machine, on a small port bus the run loop calls before the
//! Python hooks: COM1 (a 16550 UART, always on), fw_cfg (always on), and, when the
//! Machine has them, fixed answers for the other legacy PC ports (asked only after
//! the Python io_handler declined, so a user's handler still sees those ports).
//! Port 0xE9 (console) and 0xF4 (`debug_exit`) stay in the run loop.

pub mod debug_exit;
pub mod fw_cfg;
pub mod legacy;
#[cfg(test)]
mod tests;
pub mod uart;

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

use vmm_sys_util::eventfd::EventFd;

use fw_cfg::FwCfg;
use legacy::Legacy;
use uart::Uart;

/// Which devices a Machine has beyond COM1 and fw_cfg.
#[derive(Clone, Debug, Default)]
pub struct DeviceConfig {
    /// Fixed answers for the legacy PC ports (see `legacy::RANGES`).
    pub legacy_ports: bool,
}

pub struct Devices {
    uart: Mutex<Uart>,
    fw_cfg: Mutex<FwCfg>,
    legacy: Mutex<Legacy>,
    legacy_on: AtomicBool,
    /// A file descriptor the console is copied to as it is written (-1: none).
    echo: AtomicI32,
}

impl Devices {
    pub fn new(cfg: &DeviceConfig, cpus: u16, ram_size: u64, uart_irq: Option<EventFd>) -> Self {
        Devices {
            uart: Mutex::new(Uart::new(uart_irq)),
            fw_cfg: Mutex::new(FwCfg::new(cpus, ram_size)),
            legacy: Mutex::new(Legacy::default()),
            legacy_on: cfg.legacy_ports.into(),
            echo: AtomicI32::new(-1),
        }
    }

    pub fn set_legacy_ports(&self, on: bool) {
        self.legacy_on.store(on, Ordering::Relaxed);
    }

    pub fn legacy_ports(&self) -> bool {
        self.legacy_on.load(Ordering::Relaxed)
    }

    /// Copy console output to `fd` as it arrives (None: stop copying). The caller
    /// keeps `fd` open while traces run.
    pub fn set_echo(&self, fd: Option<RawFd>) {
        self.echo.store(fd.unwrap_or(-1), Ordering::Relaxed);
    }

    /// Copy console bytes to the echo descriptor, if any.
    pub fn echo(&self, bytes: &[u8]) {
        let fd = self.echo.load(Ordering::Relaxed);
        if fd < 0 || bytes.is_empty() {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            // SAFETY: a plain write(2) of a live slice; the fd is the caller's.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return; // a closed or full terminal only loses the live copy
            }
            rest = &rest[n as usize..];
        }
    }

    /// A port write the built-in devices claim; transmitted UART bytes join `console`.
    pub fn io_out(&self, port: u16, data: &[u8], console: &mut Vec<u8>) -> bool {
        match port {
            p if (uart::COM1..uart::COM1 + uart::COM1_LEN).contains(&p) => {
                let start = console.len();
                if let Ok(mut u) = self.uart.lock() {
                    for b in data {
                        u.write((p - uart::COM1) as u8, *b, console);
                    }
                }
                self.echo(&console[start..]);
                true
            }
            fw_cfg::SELECTOR => {
                let byte = |i: usize| data.get(i).copied().unwrap_or(0);
                let key = u16::from_le_bytes([byte(0), byte(1)]);
                if let Ok(mut f) = self.fw_cfg.lock() {
                    f.select(key);
                }
                true
            }
            fw_cfg::DATA => true, // writes to the data port are ignored (read-only items)
            _ => false,
        }
    }

    /// A port read the built-in devices claim.
    pub fn io_in(&self, port: u16, size: usize) -> Option<Vec<u8>> {
        match port {
            p if (uart::COM1..uart::COM1 + uart::COM1_LEN).contains(&p) => {
                let mut u = self.uart.lock().ok()?;
                Some((0..size).map(|_| u.read((p - uart::COM1) as u8)).collect())
            }
            fw_cfg::DATA => {
                let mut f = self.fw_cfg.lock().ok()?;
                Some((0..size).map(|_| f.read_byte()).collect())
            }
            fw_cfg::SELECTOR => Some(vec![0; size]),
            _ => None,
        }
    }

    /// A write no device and no handler took: the legacy table's fixed answer.
    pub fn legacy_out(&self, port: u16, data: &[u8]) -> bool {
        if !self.legacy_ports() || !legacy::claims(port) {
            return false;
        }
        if let Ok(mut l) = self.legacy.lock() {
            l.write(port, data);
        }
        true
    }

    /// A read no device and no handler took: the legacy table's fixed answer.
    pub fn legacy_in(&self, port: u16, size: usize) -> Option<Vec<u8>> {
        if !self.legacy_ports() || !legacy::claims(port) {
            return None;
        }
        Some(self.legacy.lock().ok()?.read(port, size))
    }
}
