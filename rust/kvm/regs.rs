//! Register names: general-purpose registers (also readable per exit from
//! `kvm_run->s.regs`), segment, control and debug registers.

use kvm_bindings::{kvm_debugregs, kvm_regs, kvm_segment, kvm_sregs};

use crate::error::{Error, Result};

/// A general-purpose register, as held in `kvm_regs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gp {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rsp,
    Rbp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
    Rflags,
}

pub const GP_NAMES: [(&str, Gp); 18] = [
    ("rax", Gp::Rax),
    ("rbx", Gp::Rbx),
    ("rcx", Gp::Rcx),
    ("rdx", Gp::Rdx),
    ("rsi", Gp::Rsi),
    ("rdi", Gp::Rdi),
    ("rsp", Gp::Rsp),
    ("rbp", Gp::Rbp),
    ("r8", Gp::R8),
    ("r9", Gp::R9),
    ("r10", Gp::R10),
    ("r11", Gp::R11),
    ("r12", Gp::R12),
    ("r13", Gp::R13),
    ("r14", Gp::R14),
    ("r15", Gp::R15),
    ("rip", Gp::Rip),
    ("rflags", Gp::Rflags),
];

impl Gp {
    pub fn parse(name: &str) -> Result<Gp> {
        GP_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| {
                Error::invalid(
                    "registers",
                    format!("{name:?} is not a general-purpose register (rax..r15, rip, rflags)"),
                )
            })
    }

    pub fn name(self) -> &'static str {
        GP_NAMES
            .iter()
            .find(|(_, r)| *r == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    #[inline(always)]
    pub fn get(self, r: &kvm_regs) -> u64 {
        *self.slot_ref(r)
    }

    #[inline(always)]
    fn slot_ref(self, r: &kvm_regs) -> &u64 {
        match self {
            Gp::Rax => &r.rax,
            Gp::Rbx => &r.rbx,
            Gp::Rcx => &r.rcx,
            Gp::Rdx => &r.rdx,
            Gp::Rsi => &r.rsi,
            Gp::Rdi => &r.rdi,
            Gp::Rsp => &r.rsp,
            Gp::Rbp => &r.rbp,
            Gp::R8 => &r.r8,
            Gp::R9 => &r.r9,
            Gp::R10 => &r.r10,
            Gp::R11 => &r.r11,
            Gp::R12 => &r.r12,
            Gp::R13 => &r.r13,
            Gp::R14 => &r.r14,
            Gp::R15 => &r.r15,
            Gp::Rip => &r.rip,
            Gp::Rflags => &r.rflags,
        }
    }

    pub fn set(self, r: &mut kvm_regs, v: u64) {
        let slot = match self {
            Gp::Rax => &mut r.rax,
            Gp::Rbx => &mut r.rbx,
            Gp::Rcx => &mut r.rcx,
            Gp::Rdx => &mut r.rdx,
            Gp::Rsi => &mut r.rsi,
            Gp::Rdi => &mut r.rdi,
            Gp::Rsp => &mut r.rsp,
            Gp::Rbp => &mut r.rbp,
            Gp::R8 => &mut r.r8,
            Gp::R9 => &mut r.r9,
            Gp::R10 => &mut r.r10,
            Gp::R11 => &mut r.r11,
            Gp::R12 => &mut r.r12,
            Gp::R13 => &mut r.r13,
            Gp::R14 => &mut r.r14,
            Gp::R15 => &mut r.r15,
            Gp::Rip => &mut r.rip,
            Gp::Rflags => &mut r.rflags,
        };
        *slot = v;
    }
}

/// Which ioctl pair holds a named register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegClass {
    Gp(Gp),
    /// Segment register field: name, part ("selector" | "base" | "limit").
    Seg(&'static str, SegPart),
    Cr(u8),
    Efer,
    ApicBase,
    Dr(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegPart {
    Selector,
    Base,
    Limit,
}

const SEGS: [&str; 8] = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"];

pub const ALL_NAMES: &[&str] = &[
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rsp",
    "rbp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
    "rflags",
    "cs",
    "ds",
    "es",
    "fs",
    "gs",
    "ss",
    "cs_base",
    "ds_base",
    "ss_base",
    "cr0",
    "cr2",
    "cr3",
    "cr4",
    "cr8",
    "efer",
    "apic_base",
    "dr0",
    "dr1",
    "dr2",
    "dr3",
    "dr6",
    "dr7",
];

pub fn classify(name: &str) -> Result<RegClass> {
    let lower = name.to_ascii_lowercase();
    let n = lower.as_str();
    if let Ok(g) = Gp::parse(n) {
        return Ok(RegClass::Gp(g));
    }
    for s in SEGS {
        if n == s {
            return Ok(RegClass::Seg(s, SegPart::Selector));
        }
        if n.strip_prefix(s).is_some_and(|rest| rest == "_base") {
            return Ok(RegClass::Seg(s, SegPart::Base));
        }
        if n.strip_prefix(s).is_some_and(|rest| rest == "_limit") {
            return Ok(RegClass::Seg(s, SegPart::Limit));
        }
    }
    Ok(match n {
        "cr0" => RegClass::Cr(0),
        "cr2" => RegClass::Cr(2),
        "cr3" => RegClass::Cr(3),
        "cr4" => RegClass::Cr(4),
        "cr8" => RegClass::Cr(8),
        "efer" => RegClass::Efer,
        "apic_base" => RegClass::ApicBase,
        "dr0" => RegClass::Dr(0),
        "dr1" => RegClass::Dr(1),
        "dr2" => RegClass::Dr(2),
        "dr3" => RegClass::Dr(3),
        "dr6" => RegClass::Dr(6),
        "dr7" => RegClass::Dr(7),
        _ => return Err(Error::UnknownRegister(name.to_string())),
    })
}

pub fn seg_mut<'a>(s: &'a mut kvm_sregs, name: &str) -> &'a mut kvm_segment {
    match name {
        "cs" => &mut s.cs,
        "ds" => &mut s.ds,
        "es" => &mut s.es,
        "fs" => &mut s.fs,
        "gs" => &mut s.gs,
        "ss" => &mut s.ss,
        "tr" => &mut s.tr,
        _ => &mut s.ldt,
    }
}

pub fn seg_get(seg: &kvm_segment, part: SegPart) -> u64 {
    match part {
        SegPart::Selector => u64::from(seg.selector),
        SegPart::Base => seg.base,
        SegPart::Limit => u64::from(seg.limit),
    }
}

pub fn seg_set(seg: &mut kvm_segment, part: SegPart, v: u64) -> Result<()> {
    match part {
        SegPart::Selector => {
            seg.selector = u16::try_from(v)
                .map_err(|_| Error::invalid("selector", format!("{v:#x} does not fit 16 bits")))?
        }
        SegPart::Base => seg.base = v,
        SegPart::Limit => {
            seg.limit = u32::try_from(v)
                .map_err(|_| Error::invalid("limit", format!("{v:#x} does not fit 32 bits")))?
        }
    }
    Ok(())
}

pub fn cr_get(s: &kvm_sregs, n: u8) -> u64 {
    match n {
        0 => s.cr0,
        2 => s.cr2,
        3 => s.cr3,
        4 => s.cr4,
        _ => s.cr8,
    }
}

pub fn cr_set(s: &mut kvm_sregs, n: u8, v: u64) {
    match n {
        0 => s.cr0 = v,
        2 => s.cr2 = v,
        3 => s.cr3 = v,
        4 => s.cr4 = v,
        _ => s.cr8 = v,
    }
}

pub fn dr_get(d: &kvm_debugregs, n: u8) -> u64 {
    match n {
        0..=3 => d.db[n as usize],
        6 => d.dr6,
        _ => d.dr7,
    }
}

pub fn dr_set(d: &mut kvm_debugregs, n: u8, v: u64) {
    match n {
        0..=3 => d.db[n as usize] = v,
        6 => d.dr6 = v,
        _ => d.dr7 = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_classify() {
        assert_eq!(classify("RIP").unwrap(), RegClass::Gp(Gp::Rip));
        assert_eq!(
            classify("cs").unwrap(),
            RegClass::Seg("cs", SegPart::Selector)
        );
        assert_eq!(
            classify("ss_base").unwrap(),
            RegClass::Seg("ss", SegPart::Base)
        );
        assert_eq!(classify("cr4").unwrap(), RegClass::Cr(4));
        assert_eq!(classify("dr6").unwrap(), RegClass::Dr(6));
        assert!(matches!(classify("xmm0"), Err(Error::UnknownRegister(_))));
        for n in ALL_NAMES {
            assert!(classify(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn gp_get_set() {
        let mut r = kvm_regs::default();
        for (_, g) in GP_NAMES {
            g.set(&mut r, 0x1234);
            assert_eq!(g.get(&r), 0x1234);
        }
    }
}
