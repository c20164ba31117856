//! The guest-physical layout kvmtrace reserves, and the structures it builds there
//! for each CPU mode (flat GDT, IDT area, identity-mapped paging for long mode).
//!
//! ```text
//! 0x00000  IVT           real-mode interrupt vector table (1 KiB)
//! 0x01000  DATA          4 KiB scratch page (data breakpoints, guest variables)
//! 0x02000  STACK         stacks grow down from 0x8000 (vCPU i: 0x8000 - i*0x1800)
//! 0x08000  CODE          default load address and entry point (32 KiB)
//! 0x10000  GDT           flat descriptors: 0x08 code64, 0x10 data, 0x18 code32, 0x20 code16
//! 0x11000  IDT           256 gates, zeroed: a guest installs its own handlers
//! 0x12000  PML4          long mode: PML4, PDPT, 4 page directories (2 MiB pages)
//! 0x18000  FREE          first byte not reserved
//! ```

use crate::error::{Error, Result};
use crate::kvm::memory::GuestMemory;

pub const IVT: u64 = 0x0;
pub const DATA: u64 = 0x1000;
pub const STACK_TOP: u64 = 0x8000;
pub const STACK_PER_VCPU: u64 = 0x1800;
pub const CODE: u64 = 0x8000;
pub const GDT: u64 = 0x10000;
pub const IDT: u64 = 0x11000;
pub const PML4: u64 = 0x12000;
pub const PDPT: u64 = 0x13000;
pub const PD: u64 = 0x14000;
pub const FREE: u64 = 0x18000;

pub const SEL_CODE64: u16 = 0x08;
pub const SEL_DATA: u16 = 0x10;
pub const SEL_CODE32: u16 = 0x18;
pub const SEL_CODE16: u16 = 0x20;

/// Smallest and largest guest memory (the top is kept below the 4 GiB MMIO hole).
pub const MIN_MEMORY: u64 = 0x20000;
pub const MAX_MEMORY: u64 = 0xC000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Real,
    Protected,
    Long,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Real, Mode::Protected, Mode::Long];

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "real" | "real16" => Ok(Mode::Real),
            "protected" | "prot" | "protected32" => Ok(Mode::Protected),
            "long" | "long64" => Ok(Mode::Long),
            _ => Err(Error::invalid(
                "mode",
                format!("{s:?} is not a mode; use \"real\", \"protected\" or \"long\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Real => "real",
            Mode::Protected => "protected",
            Mode::Long => "long",
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            Mode::Real => 16,
            Mode::Protected => 32,
            Mode::Long => 64,
        }
    }

    /// Bytes per IDT gate (real mode: IVT entries).
    pub fn gate_size(self) -> u64 {
        match self {
            Mode::Real => 4,
            Mode::Protected => 8,
            Mode::Long => 16,
        }
    }

    pub fn idt_base(self) -> u64 {
        match self {
            Mode::Real => IVT,
            _ => IDT,
        }
    }
}

/// Named regions, for `Machine.layout`.
pub fn regions() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("ivt", IVT, 0x400),
        ("data", DATA, 0x1000),
        ("stack", 0x2000, STACK_TOP - 0x2000),
        ("code", CODE, GDT - CODE),
        ("gdt", GDT, 0x1000),
        ("idt", IDT, 0x1000),
        ("page_tables", PML4, FREE - PML4),
        ("free", FREE, 0),
    ]
}

/// A GDT descriptor: base 0, limit 4 GiB (or 64 KiB for 16-bit code), given access byte and flags.
pub fn descriptor(access: u64, flags: u64, limit: u64) -> u64 {
    (limit & 0xffff) | (((limit >> 16) & 0xf) << 48) | (access << 40) | (flags << 52)
}

/// Write the GDT, zero the IDT/IVT, and for long mode the page tables.
pub fn build(mem: &GuestMemory, mode: Mode) -> Result<()> {
    let gdt = [
        0u64,
        descriptor(0x9b, 0b0010, 0xfffff), // 0x08 code64: P, S, exec/read, accessed; L=1
        descriptor(0x93, 0b1100, 0xfffff), // 0x10 data: P, S, read/write; G=1, D/B=1
        descriptor(0x9b, 0b1100, 0xfffff), // 0x18 code32: G=1, D=1
        descriptor(0x9b, 0b0000, 0xffff),  // 0x20 code16
    ];
    for (i, d) in gdt.iter().enumerate() {
        mem.write_u64(GDT + 8 * i as u64, *d)?;
    }
    mem.write(
        mode.idt_base(),
        &vec![0u8; (256 * mode.gate_size()) as usize],
    )?;
    if mode == Mode::Long {
        // Identity map 4 GiB: PML4[0] -> PDPT, PDPT[0..4] -> PD[0..4], 2 MiB pages.
        mem.write_u64(PML4, PDPT | 0x3)?;
        for i in 0..4u64 {
            mem.write_u64(PDPT + 8 * i, (PD + 0x1000 * i) | 0x3)?;
            let table: Vec<u8> = (0..512u64)
                .flat_map(|j| (((i * 512 + j) << 21) | 0x83).to_le_bytes())
                .collect();
            mem.write(PD + 0x1000 * i, &table)?;
        }
    }
    Ok(())
}

/// Encode an interrupt gate to `handler` for `mode` (real mode: an IVT far pointer 0:handler).
pub fn gate(mode: Mode, handler: u64) -> Result<Vec<u8>> {
    match mode {
        Mode::Real => {
            if handler > 0xffff {
                return Err(Error::invalid(
                    "handler",
                    format!("{handler:#x} is not reachable from segment 0 in real mode"),
                ));
            }
            Ok([(handler as u16).to_le_bytes(), 0u16.to_le_bytes()].concat())
        }
        Mode::Protected => {
            if handler > 0xffff_ffff {
                return Err(Error::invalid(
                    "handler",
                    format!("{handler:#x} does not fit a 32-bit gate"),
                ));
            }
            let lo = (handler & 0xffff) | (u64::from(SEL_CODE32) << 16);
            let hi = (0x8e00u64 | (handler & 0xffff_0000)) << 32;
            Ok((lo | hi).to_le_bytes().to_vec())
        }
        Mode::Long => {
            let lo = (handler & 0xffff)
                | (u64::from(SEL_CODE64) << 16)
                | (0x8e00u64 << 32)
                | ((handler >> 16 & 0xffff) << 48);
            let hi = handler >> 32;
            Ok([lo.to_le_bytes(), hi.to_le_bytes()].concat())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_code64_has_long_bit() {
        let d = descriptor(0x9b, 0b0010, 0xfffff);
        assert_eq!((d >> 53) & 1, 1, "L bit");
        assert_eq!((d >> 47) & 1, 1, "present");
        assert_eq!(d & 0xffff, 0xffff);
    }

    #[test]
    fn gates() {
        assert_eq!(gate(Mode::Real, 0x8010).unwrap(), vec![0x10, 0x80, 0, 0]);
        assert!(gate(Mode::Real, 0x10000).is_err());
        let g = gate(Mode::Protected, 0x1234_5678).unwrap();
        assert_eq!(&g[0..2], &[0x78, 0x56]);
        assert_eq!(&g[2..4], &[0x18, 0]);
        assert_eq!(g[5], 0x8e);
        assert_eq!(&g[6..8], &[0x34, 0x12]);
        let g = gate(Mode::Long, 0x1_2345_6789).unwrap();
        assert_eq!(g.len(), 16);
        assert_eq!(&g[0..2], &[0x89, 0x67]);
        assert_eq!(&g[2..4], &[0x08, 0]);
        assert_eq!(&g[6..8], &[0x45, 0x23]);
        assert_eq!(&g[8..12], &[1, 0, 0, 0]);
    }

    #[test]
    fn long_mode_tables() {
        let m = GuestMemory::new(MIN_MEMORY as usize).unwrap();
        build(&m, Mode::Long).unwrap();
        let e = u64::from_le_bytes(m.read_vec(PD + 8, 8).unwrap().try_into().unwrap());
        assert_eq!(e, (1 << 21) | 0x83);
        let e = u64::from_le_bytes(
            m.read_vec(PD + 0x3000 + 511 * 8, 8)
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(e, (2047u64 << 21) | 0x83);
    }
}
