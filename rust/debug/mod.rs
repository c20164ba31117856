//! Guest-debug configuration and its encoding into `KVM_SET_GUEST_DEBUG`
//! (control flags, DR0-DR3 and DR7). Pure Rust; tests in `tests.rs`.

pub mod flags;
#[cfg(test)]
mod tests;

use crate::arch::dr7::{self, BpKind};
use crate::error::{Error, Result};
use flags::{
    KVM_GUESTDBG_BLOCKIRQ, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_INJECT_BP, KVM_GUESTDBG_INJECT_DB,
    KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
};

/// One hardware breakpoint (one of DR0-DR3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwBreakpoint {
    pub addr: u64,
    pub kind: BpKind,
    pub len: u8,
}

impl HwBreakpoint {
    pub fn new(addr: u64, kind: BpKind, len: u8) -> Result<Self> {
        if dr7::len_bits(len).is_none() {
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
        dr7::slot_bits(i, self.kind, self.len)
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
            if raw.dr7 & dr7::RESERVED_0 != 0 {
                return Err(Error::invalid(
                    "raw_debugreg",
                    format!("DR7 {:#x} sets reserved bits {:#x} (bits 11, 12, 14, 15 and 32-63 must be 0)", raw.dr7, raw.dr7 & dr7::RESERVED_0),
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
        let mut v = match self.raw {
            Some(raw) => raw.dr7 | dr7::FIXED_1,
            None => self
                .hw_breakpoints
                .iter()
                .enumerate()
                .fold(dr7::FIXED_1, |acc, (i, bp)| acc | bp.dr7_bits(i)),
        };
        if self.general_detect {
            v |= dr7::GD;
        }
        v
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
        let v = self.dr7();
        let dr = self.dr0_3();
        (0..4).find(|&i| dr7::enabled(v, i) && dr7::kind_of(v, i) == BpKind::Exec && dr[i] == pc)
    }

    /// DR6 reports a data (write/rw/io) breakpoint of this configuration.
    pub fn data_cause(&self, dr6: u64) -> bool {
        let v = self.dr7();
        (0..4).any(|i| {
            dr6 & crate::arch::dr6::B[i] != 0
                && dr7::enabled(v, i)
                && dr7::kind_of(v, i) != BpKind::Exec
        })
    }

    /// This configuration with every instruction breakpoint at `pc` disabled (two
    /// slots may watch the same address; disarming one would leave the other to fire
    /// again at once).
    pub fn without_exec_at(&self, pc: u64) -> GuestDebug {
        let mut g = self.clone();
        let dr = self.dr0_3();
        let mut v = self.dr7();
        for (i, &addr) in dr.iter().enumerate() {
            if dr7::kind_of(v, i) == BpKind::Exec && addr == pc {
                v &= !dr7::enable_mask(i);
            }
        }
        // GD comes back from `general_detect` when the configuration is encoded.
        g.raw = Some(RawDebugRegs {
            dr,
            dr7: v & !dr7::GD,
        });
        g.hw_breakpoints.clear();
        g
    }
}
