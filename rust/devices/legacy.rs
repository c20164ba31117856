//! Fixed answers for the legacy PC ports a kernel probes while it boots, so a probe
//! is a quick "nothing here" instead of a stop. Absent ISA devices read as all ones
//! (an undriven bus), which is what every driver's probe takes for "no device"; the
//! CMOS RTC answers a fixed, valid date so the kernel's clock read does not wait for
//! an update that never ends. With the in-kernel irqchip, KVM answers the PIC, PIT
//! and ELCR ports itself and they never reach this table.

/// CMOS/RTC index and data ports.
const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;

/// Port ranges answered here: (first, last, what).
pub const RANGES: &[(u16, u16, &str)] = &[
    (0x00, 0x1f, "DMA controller 1"),
    (0x20, 0x21, "PIC 1"),
    (0x40, 0x43, "PIT"),
    (0x60, 0x60, "i8042 data"),
    (0x61, 0x61, "system control port B"),
    (0x64, 0x64, "i8042 status"),
    (0x70, 0x71, "CMOS RTC"),
    (0x80, 0x8f, "POST code and DMA pages"),
    (0x92, 0x92, "system control port A (fast A20)"),
    (0xa0, 0xa1, "PIC 2"),
    (0xc0, 0xdf, "DMA controller 2"),
    (0xf0, 0xf1, "FPU error"),
    (0x170, 0x177, "IDE 2"),
    (0x1f0, 0x1f7, "IDE 1"),
    (0x201, 0x201, "game port"),
    (0x278, 0x27a, "LPT2"),
    (0x2e8, 0x2ef, "COM4"),
    (0x2f8, 0x2ff, "COM2"),
    (0x376, 0x376, "IDE 2 control"),
    (0x378, 0x37a, "LPT1"),
    (0x3b0, 0x3df, "VGA"),
    (0x3e8, 0x3ef, "COM3"),
    (0x3f0, 0x3f7, "floppy and IDE 1 control"),
    (0x4d0, 0x4d1, "ELCR"),
    (0xcf8, 0xcff, "PCI configuration"),
];

pub fn claims(port: u16) -> bool {
    RANGES.iter().any(|&(a, b, _)| (a..=b).contains(&port))
}

/// The legacy ports' state: only the CMOS index matters.
#[derive(Default)]
pub struct Legacy {
    cmos_index: u8,
}

impl Legacy {
    pub fn write(&mut self, port: u16, data: &[u8]) {
        if port == CMOS_INDEX {
            // Bit 7 is the NMI mask, not part of the index.
            self.cmos_index = data.first().copied().unwrap_or(0) & 0x7f;
        }
    }

    pub fn read(&self, port: u16, size: usize) -> Vec<u8> {
        let byte = match port {
            CMOS_DATA => cmos(self.cmos_index),
            CMOS_INDEX => self.cmos_index,
            0x92 => 0x02, // A20 enabled
            0x61 => 0x20, // PIT channel 2 output high: timing loops end
            _ => 0xff,
        };
        vec![byte; size]
    }
}

/// A fixed CMOS: 2025-01-01 00:00:00 in BCD, 24-hour mode, no update in progress.
fn cmos(index: u8) -> u8 {
    match index {
        0x00..=0x05 => 0x00, // seconds, alarms, minutes, hours
        0x06 => 0x04,        // day of week
        0x07 | 0x08 => 0x01, // day of month, month
        0x09 => 0x25,        // year
        0x0a => 0x26,        // register A: 32.768 kHz time base, UIP clear
        0x0b => 0x02,        // register B: 24-hour, BCD
        0x0d => 0x80,        // register D: RAM and time valid
        0x32 => 0x20,        // century
        _ => 0x00,
    }
}
