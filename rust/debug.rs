//! Guest-debug configuration and its encoding into `KVM_SET_GUEST_DEBUG`
//! (control flags, DR0-DR3 and DR7). Pure Rust, unit-tested below.

use crate::error::{Error, Result};

// The x86 uapi values (arch/x86/include/uapi/asm/kvm.h), from kvm-bindings.
pub use kvm_bindings::{
    KVM_GUESTDBG_BLOCKIRQ, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_INJECT_BP, KVM_GUESTDBG_INJECT_DB,
    KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
};

/// The flags a kernel without `KVM_CAP_SET_GUEST_DEBUG2` supports on x86.
pub const LEGACY_GUESTDBG_FLAGS: u32 = KVM_GUESTDBG_ENABLE
    | KVM_GUESTDBG_SINGLESTEP
    | KVM_GUESTDBG_USE_SW_BP
    | KVM_GUESTDBG_USE_HW_BP
    | KVM_GUESTDBG_INJECT_DB
    | KVM_GUESTDBG_INJECT_BP;

/// Names of the `KVM_GUESTDBG_*` flags, for error messages.
pub fn flag_name(flag: u32) -> &'static str {
    match flag {
        KVM_GUESTDBG_ENABLE => "KVM_GUESTDBG_ENABLE",
        KVM_GUESTDBG_SINGLESTEP => "KVM_GUESTDBG_SINGLESTEP",
        KVM_GUESTDBG_USE_SW_BP => "KVM_GUESTDBG_USE_SW_BP",
        KVM_GUESTDBG_USE_HW_BP => "KVM_GUESTDBG_USE_HW_BP",
        KVM_GUESTDBG_INJECT_DB => "KVM_GUESTDBG_INJECT_DB",
        KVM_GUESTDBG_INJECT_BP => "KVM_GUESTDBG_INJECT_BP",
        KVM_GUESTDBG_BLOCKIRQ => "KVM_GUESTDBG_BLOCKIRQ",
        _ => "KVM_GUESTDBG_<unknown>",
    }
}

/// DR7 bits that always read as 1 (bit 10).
pub const DR7_FIXED_1: u64 = 0x400;
/// DR7.GD, general detect: a guest `mov` to or from a debug register faults with DR6.BD.
pub const DR7_GD: u64 = 1 << 13;
/// DR7 bits that must be zero: 11, 12, 14, 15 and the upper half.
pub const DR7_RESERVED_0: u64 = 0xffff_ffff_0000_d800;

/// What a hardware breakpoint watches, with its DR7 R/W encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpKind {
    /// Instruction fetch (R/W = 00). A fault: reported before the instruction runs.
    Exec,
    /// Data write (R/W = 01). A trap: reported after the instruction.
    Write,
    /// I/O read or write (R/W = 10), only with CR4.DE. A trap.
    Io,
    /// Data read or write (R/W = 11). A trap.
    ReadWrite,
}

impl BpKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "exec" => Ok(BpKind::Exec),
            "write" => Ok(BpKind::Write),
            "rw" => Ok(BpKind::ReadWrite),
            "io" => Ok(BpKind::Io),
            _ => Err(Error::invalid(
                "kind",
                format!(
                    "{s:?} is not a breakpoint kind; use \"exec\", \"write\", \"rw\" or \"io\""
                ),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BpKind::Exec => "exec",
            BpKind::Write => "write",
            BpKind::Io => "io",
            BpKind::ReadWrite => "rw",
        }
    }

    /// The R/W field value in DR7.
    pub fn rw_bits(self) -> u64 {
        match self {
            BpKind::Exec => 0b00,
            BpKind::Write => 0b01,
            BpKind::Io => 0b10,
            BpKind::ReadWrite => 0b11,
        }
    }

    pub fn from_rw_bits(bits: u64) -> Self {
        match bits & 3 {
            0b00 => BpKind::Exec,
            0b01 => BpKind::Write,
            0b10 => BpKind::Io,
            _ => BpKind::ReadWrite,
        }
    }
}

/// The LEN field value in DR7 for a breakpoint length (8 bytes is 0b10, not 0b11).
pub fn len_bits(len: u8) -> Option<u64> {
    match len {
        1 => Some(0b00),
        2 => Some(0b01),
        8 => Some(0b10),
        4 => Some(0b11),
        _ => None,
    }
}

pub fn len_from_bits(bits: u64) -> u8 {
    match bits & 3 {
        0b00 => 1,
        0b01 => 2,
        0b10 => 8,
        _ => 4,
    }
}

/// One hardware breakpoint (one of DR0-DR3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwBreakpoint {
    pub addr: u64,
    pub kind: BpKind,
    pub len: u8,
}

impl HwBreakpoint {
    pub fn new(addr: u64, kind: BpKind, len: u8) -> Result<Self> {
        if len_bits(len).is_none() {
            return Err(Error::invalid(
                "length",
                format!("{len} is not a breakpoint length; use 1, 2, 4 or 8"),
            ));
        }
        if kind == BpKind::Exec && len != 1 {
            return Err(Error::invalid(
                "length",
                format!("exec breakpoints have length 1 (got {len}); the CPU matches the first byte of the instruction"),
            ));
        }
        if addr % u64::from(len) != 0 {
            return Err(Error::invalid(
                "addr",
                format!("{addr:#x} is not aligned to the breakpoint length {len}; DRn addresses must be length-aligned"),
            ));
        }
        if kind == BpKind::Io && addr > 0xffff {
            return Err(Error::invalid(
                "addr",
                format!("{addr:#x} is not an I/O port (0..0xffff)"),
            ));
        }
        Ok(HwBreakpoint { addr, kind, len })
    }

    /// This breakpoint's bits in DR7 when it sits in slot `i` (local enable Li, R/W, LEN).
    pub fn dr7_bits(&self, i: usize) -> u64 {
        let len = len_bits(self.len).unwrap_or(0);
        (1u64 << (2 * i)) | (self.kind.rw_bits() << (16 + 4 * i)) | (len << (18 + 4 * i))
    }
}

/// Debug registers given verbatim (the expert escape hatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawDebugRegs {
    pub dr: [u64; 4],
    pub dr7: u64,
}

/// A complete `KVM_SET_GUEST_DEBUG` request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestDebug {
    pub single_step: bool,
    pub block_irq: bool,
    pub hw_breakpoints: Vec<HwBreakpoint>,
    pub sw_breakpoints: Vec<u64>,
    pub inject_db: bool,
    pub inject_bp: bool,
    pub general_detect: bool,
    pub raw: Option<RawDebugRegs>,
}

impl GuestDebug {
    /// Check the combination; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.hw_breakpoints.len() > 4 {
            return Err(Error::invalid(
                "hw_breakpoints",
                format!("{} given, x86 has 4 (DR0-DR3)", self.hw_breakpoints.len()),
            ));
        }
        if self.raw.is_some() && !self.hw_breakpoints.is_empty() {
            return Err(Error::invalid(
                "raw_debugreg",
                "give either hw_breakpoints or raw_debugreg, not both",
            ));
        }
        if let Some(raw) = self.raw {
            if raw.dr7 & DR7_RESERVED_0 != 0 {
                return Err(Error::invalid(
                    "raw_debugreg",
                    format!("DR7 {:#x} sets reserved bits {:#x} (bits 11, 12, 14, 15 and 32-63 must be 0)", raw.dr7, raw.dr7 & DR7_RESERVED_0),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for &a in &self.sw_breakpoints {
            if !seen.insert(a) {
                return Err(Error::invalid(
                    "sw_breakpoints",
                    format!("{a:#x} is listed twice"),
                ));
            }
        }
        if self.inject_db && self.inject_bp {
            return Err(Error::invalid(
                "inject_bp",
                "KVM injects one exception at a time: choose inject_db or inject_bp",
            ));
        }
        Ok(())
    }

    /// Uses the hardware debug registers (breakpoints, raw registers or GD).
    pub fn uses_hw(&self) -> bool {
        !self.hw_breakpoints.is_empty() || self.raw.is_some() || self.general_detect
    }

    /// DR0-DR3 as programmed.
    pub fn dr0_3(&self) -> [u64; 4] {
        if let Some(raw) = self.raw {
            return raw.dr;
        }
        let mut dr = [0u64; 4];
        for (i, bp) in self.hw_breakpoints.iter().enumerate() {
            dr[i] = bp.addr;
        }
        dr
    }

    /// DR7 as programmed: bit 10 set, Li + R/Wi + LENi per breakpoint, GD on request.
    pub fn dr7(&self) -> u64 {
        let mut dr7 = match self.raw {
            Some(raw) => raw.dr7 | DR7_FIXED_1,
            None => self
                .hw_breakpoints
                .iter()
                .enumerate()
                .fold(DR7_FIXED_1, |acc, (i, bp)| acc | bp.dr7_bits(i)),
        };
        if self.general_detect {
            dr7 |= DR7_GD;
        }
        dr7
    }

    /// The persistent control flags (everything but the one-shot injections).
    pub fn control(&self) -> u32 {
        let mut c = KVM_GUESTDBG_ENABLE;
        if self.single_step {
            c |= KVM_GUESTDBG_SINGLESTEP;
        }
        if !self.sw_breakpoints.is_empty() {
            c |= KVM_GUESTDBG_USE_SW_BP;
        }
        if self.uses_hw() {
            c |= KVM_GUESTDBG_USE_HW_BP;
        }
        if self.block_irq {
            c |= KVM_GUESTDBG_BLOCKIRQ;
        }
        c
    }

    /// One-shot flags: KVM queues the exception when the request is applied.
    pub fn inject_flags(&self) -> u32 {
        let mut c = 0;
        if self.inject_db {
            c |= KVM_GUESTDBG_INJECT_DB;
        }
        if self.inject_bp {
            c |= KVM_GUESTDBG_INJECT_BP;
        }
        c
    }

    /// The first requested flag missing from `supported`, if any.
    pub fn first_unsupported(&self, supported: u32) -> Option<u32> {
        let wanted = self.control() | self.inject_flags();
        (0..32)
            .map(|b| 1u32 << b)
            .find(|f| wanted & f != 0 && supported & f == 0)
    }

    /// Slots (0-3) whose instruction breakpoint is enabled at `pc`.
    pub fn exec_slot_at(&self, pc: u64) -> Option<usize> {
        let dr7 = self.dr7();
        let dr = self.dr0_3();
        (0..4).find(|&i| {
            let enabled = dr7 & (3 << (2 * i)) != 0;
            let rw = (dr7 >> (16 + 4 * i)) & 3;
            enabled && rw == 0 && dr[i] == pc
        })
    }

    /// This configuration with every instruction breakpoint at `pc` disabled (two
    /// slots may watch the same address; disarming one would leave the other to fire
    /// again at once).
    pub fn without_exec_at(&self, pc: u64) -> GuestDebug {
        let mut g = self.clone();
        let dr = self.dr0_3();
        let mut dr7 = self.dr7();
        for (i, &addr) in dr.iter().enumerate() {
            let exec = (dr7 >> (16 + 4 * i)) & 3 == 0;
            if exec && addr == pc {
                dr7 &= !(3u64 << (2 * i));
            }
        }
        // GD comes back from `general_detect` when the configuration is encoded.
        g.raw = Some(RawDebugRegs {
            dr,
            dr7: dr7 & !DR7_GD,
        });
        g.hw_breakpoints.clear();
        g
    }
}

/// DR6 bits.
pub mod dr6 {
    pub const B0: u64 = 1 << 0;
    pub const BD: u64 = 1 << 13;
    pub const BS: u64 = 1 << 14;
    pub const BT: u64 = 1 << 15;
    pub const RTM: u64 = 1 << 16;
    /// DR6 with no debug condition: bits 4-11 and 16-31 read as 1.
    pub const CLEAN: u64 = 0xffff_0ff0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(addr: u64, kind: &str, len: u8) -> HwBreakpoint {
        HwBreakpoint::new(addr, BpKind::parse(kind).unwrap(), len).unwrap()
    }

    #[test]
    fn exec_breakpoints_in_each_slot() {
        for i in 0..4 {
            let mut hw = vec![bp(0x1000, "exec", 1); i];
            hw.push(bp(0x8000, "exec", 1));
            let g = GuestDebug {
                hw_breakpoints: hw,
                ..Default::default()
            };
            let expect = (0..=i).fold(0x400u64, |a, s| a | (1 << (2 * s)));
            assert_eq!(g.dr7(), expect);
            assert_eq!(g.dr0_3()[i], 0x8000);
        }
    }

    #[test]
    fn data_breakpoint_fields() {
        // DR1 write, 4 bytes: L1 (bit 2), R/W1 = 01 at bits 20-21, LEN1 = 11 at 22-23.
        let g = GuestDebug {
            hw_breakpoints: vec![bp(0, "exec", 1), bp(0x2000, "write", 4)],
            ..Default::default()
        };
        assert_eq!(g.dr7(), 0x400 | 1 | (1 << 2) | (0b01 << 20) | (0b11 << 22));
        // 8-byte length encodes as 10.
        let g = GuestDebug {
            hw_breakpoints: vec![bp(0x3000, "rw", 8)],
            ..Default::default()
        };
        assert_eq!(g.dr7(), 0x400 | 1 | (0b11 << 16) | (0b10 << 18));
        // I/O breakpoint in DR3.
        let g = GuestDebug {
            hw_breakpoints: vec![
                bp(0, "exec", 1),
                bp(0, "exec", 1),
                bp(0, "exec", 1),
                bp(0x80, "io", 1),
            ],
            ..Default::default()
        };
        assert_eq!((g.dr7() >> 28) & 3, 0b10);
        assert_eq!(g.dr7() & (1 << 6), 1 << 6);
    }

    #[test]
    fn general_detect_sets_gd() {
        let g = GuestDebug {
            general_detect: true,
            ..Default::default()
        };
        assert_eq!(g.dr7(), 0x400 | DR7_GD);
        assert_ne!(g.control() & KVM_GUESTDBG_USE_HW_BP, 0);
    }

    #[test]
    fn len_round_trip() {
        for l in [1u8, 2, 4, 8] {
            assert_eq!(len_from_bits(len_bits(l).unwrap()), l);
        }
        for k in ["exec", "write", "io", "rw"] {
            let k = BpKind::parse(k).unwrap();
            assert_eq!(BpKind::from_rw_bits(k.rw_bits()), k);
        }
    }

    #[test]
    fn invalid_breakpoints_name_the_field() {
        let e = HwBreakpoint::new(0x1000, BpKind::Exec, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("length") && e.contains("exec"), "{e}");
        let e = HwBreakpoint::new(0x1002, BpKind::Write, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("addr") && e.contains("aligned"), "{e}");
        let e = HwBreakpoint::new(0x1000, BpKind::Write, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("length"), "{e}");
        let e = HwBreakpoint::new(0x10000, BpKind::Io, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        assert!(BpKind::parse("read").is_err());
        let g = GuestDebug {
            hw_breakpoints: vec![bp(0, "exec", 1); 5],
            ..Default::default()
        };
        assert!(g
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hw_breakpoints"));
        let g = GuestDebug {
            raw: Some(RawDebugRegs {
                dr: [0; 4],
                dr7: 1 << 40,
            }),
            ..Default::default()
        };
        assert!(g
            .validate()
            .unwrap_err()
            .to_string()
            .contains("raw_debugreg"));
        let g = GuestDebug {
            sw_breakpoints: vec![5, 5],
            ..Default::default()
        };
        assert!(g.validate().is_err());
    }

    #[test]
    fn flag_values_are_the_x86_uapi_ones() {
        assert_eq!(KVM_GUESTDBG_USE_SW_BP, 0x1_0000);
        assert_eq!(KVM_GUESTDBG_USE_HW_BP, 0x2_0000);
        assert_eq!(KVM_GUESTDBG_INJECT_DB, 0x4_0000);
        assert_eq!(KVM_GUESTDBG_INJECT_BP, 0x8_0000);
        assert_eq!(KVM_GUESTDBG_BLOCKIRQ, 0x10_0000);
    }

    #[test]
    fn control_flags_and_support() {
        let g = GuestDebug {
            single_step: true,
            block_irq: true,
            inject_db: true,
            ..Default::default()
        };
        assert_eq!(
            g.control(),
            KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_BLOCKIRQ
        );
        assert_eq!(g.inject_flags(), KVM_GUESTDBG_INJECT_DB);
        assert_eq!(
            g.first_unsupported(LEGACY_GUESTDBG_FLAGS),
            Some(KVM_GUESTDBG_BLOCKIRQ)
        );
        assert_eq!(flag_name(KVM_GUESTDBG_BLOCKIRQ), "KVM_GUESTDBG_BLOCKIRQ");
        let g = GuestDebug {
            single_step: true,
            ..Default::default()
        };
        assert_eq!(g.first_unsupported(LEGACY_GUESTDBG_FLAGS), None);
    }

    #[test]
    fn exec_slot_lookup_and_disarm() {
        let g = GuestDebug {
            hw_breakpoints: vec![bp(0x10, "write", 1), bp(0x8000, "exec", 1)],
            ..Default::default()
        };
        assert_eq!(g.exec_slot_at(0x8000), Some(1));
        assert_eq!(g.exec_slot_at(0x10), None);
        let d = g.without_exec_at(0x8000);
        assert_eq!(d.exec_slot_at(0x8000), None);
        assert_eq!(d.dr7() & 1, 1, "other slots stay armed");
        // Two slots on one address: both are disarmed for the step.
        let g = GuestDebug {
            raw: Some(RawDebugRegs {
                dr: [0x8001, 0x8001, 0x9000, 0],
                dr7: 0x415,
            }),
            ..Default::default()
        };
        let d = g.without_exec_at(0x8001);
        assert_eq!(d.exec_slot_at(0x8001), None);
        assert_eq!(d.exec_slot_at(0x9000), Some(2));
    }
}
