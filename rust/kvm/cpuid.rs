//! CPUID control: hide feature bits the host's KVM cannot run (this nested host, for
//! one, cannot emulate `lock cmpxchg16b` or `xrstor`, so a kernel must not see CX16
//! or XSAVE). Names follow Linux's /proc/cpuinfo flags.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// A feature bit: (name, leaf, subleaf, register, bit).
pub type Feature = (&'static str, u32, u32, Reg, u8);

use Reg::{Eax, Ebx, Ecx, Edx};

/// The features `hide` knows by name (SDM Vol. 2A, CPUID; AMD APM Vol. 3, E.3).
pub const FEATURES: &[Feature] = &[
    ("sse3", 1, 0, Ecx, 0),
    ("pclmulqdq", 1, 0, Ecx, 1),
    ("monitor", 1, 0, Ecx, 3),
    ("vmx", 1, 0, Ecx, 5),
    ("ssse3", 1, 0, Ecx, 9),
    ("fma", 1, 0, Ecx, 12),
    ("cx16", 1, 0, Ecx, 13),
    ("pcid", 1, 0, Ecx, 17),
    ("sse4_1", 1, 0, Ecx, 19),
    ("sse4_2", 1, 0, Ecx, 20),
    ("x2apic", 1, 0, Ecx, 21),
    ("movbe", 1, 0, Ecx, 22),
    ("popcnt", 1, 0, Ecx, 23),
    ("tsc_deadline_timer", 1, 0, Ecx, 24),
    ("aes", 1, 0, Ecx, 25),
    ("xsave", 1, 0, Ecx, 26),
    ("avx", 1, 0, Ecx, 28),
    ("f16c", 1, 0, Ecx, 29),
    ("rdrand", 1, 0, Ecx, 30),
    ("hypervisor", 1, 0, Ecx, 31),
    ("fpu", 1, 0, Edx, 0),
    ("tsc", 1, 0, Edx, 4),
    ("msr", 1, 0, Edx, 5),
    ("pae", 1, 0, Edx, 6),
    ("cx8", 1, 0, Edx, 8),
    ("apic", 1, 0, Edx, 9),
    ("sep", 1, 0, Edx, 11),
    ("mtrr", 1, 0, Edx, 12),
    ("pge", 1, 0, Edx, 13),
    ("cmov", 1, 0, Edx, 15),
    ("pat", 1, 0, Edx, 16),
    ("clflush", 1, 0, Edx, 19),
    ("mmx", 1, 0, Edx, 23),
    ("fxsr", 1, 0, Edx, 24),
    ("sse", 1, 0, Edx, 25),
    ("sse2", 1, 0, Edx, 26),
    ("ht", 1, 0, Edx, 28),
    ("fsgsbase", 7, 0, Ebx, 0),
    ("bmi1", 7, 0, Ebx, 3),
    ("hle", 7, 0, Ebx, 4),
    ("avx2", 7, 0, Ebx, 5),
    ("smep", 7, 0, Ebx, 7),
    ("bmi2", 7, 0, Ebx, 8),
    ("erms", 7, 0, Ebx, 9),
    ("invpcid", 7, 0, Ebx, 10),
    ("rtm", 7, 0, Ebx, 11),
    ("avx512f", 7, 0, Ebx, 16),
    ("rdseed", 7, 0, Ebx, 18),
    ("adx", 7, 0, Ebx, 19),
    ("smap", 7, 0, Ebx, 20),
    ("clflushopt", 7, 0, Ebx, 23),
    ("clwb", 7, 0, Ebx, 24),
    ("sha_ni", 7, 0, Ebx, 29),
    ("umip", 7, 0, Ecx, 2),
    ("pku", 7, 0, Ecx, 3),
    ("waitpkg", 7, 0, Ecx, 5),
    ("vaes", 7, 0, Ecx, 9),
    ("vpclmulqdq", 7, 0, Ecx, 10),
    ("la57", 7, 0, Ecx, 16),
    ("rdpid", 7, 0, Ecx, 22),
    ("fsrm", 7, 0, Edx, 4),
    ("md_clear", 7, 0, Edx, 10),
    ("serialize", 7, 0, Edx, 14),
    ("spec_ctrl", 7, 0, Edx, 26),
    ("arch_capabilities", 7, 0, Edx, 29),
    ("xsaveopt", 0xd, 1, Eax, 0),
    ("xsavec", 0xd, 1, Eax, 1),
    ("xgetbv1", 0xd, 1, Eax, 2),
    ("xsaves", 0xd, 1, Eax, 3),
    ("lahf_lm", 0x8000_0001, 0, Ecx, 0),
    ("svm", 0x8000_0001, 0, Ecx, 2),
    ("abm", 0x8000_0001, 0, Ecx, 5),
    ("sse4a", 0x8000_0001, 0, Ecx, 6),
    ("3dnowprefetch", 0x8000_0001, 0, Ecx, 8),
    ("topoext", 0x8000_0001, 0, Ecx, 22),
    ("syscall", 0x8000_0001, 0, Edx, 11),
    ("nx", 0x8000_0001, 0, Edx, 20),
    ("pdpe1gb", 0x8000_0001, 0, Edx, 26),
    ("rdtscp", 0x8000_0001, 0, Edx, 27),
    ("lm", 0x8000_0001, 0, Edx, 29),
    ("constant_tsc", 0x8000_0007, 0, Edx, 8),
];

pub fn feature(name: &str) -> Result<Feature> {
    let lower = name.trim().to_ascii_lowercase();
    FEATURES
        .iter()
        .find(|f| f.0 == lower)
        .copied()
        .ok_or_else(|| {
            Error::invalid(
                "cpuid",
                format!(
                    "unknown CPU feature {name:?}; known: {}",
                    FEATURES.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
                ),
            )
        })
}

fn reg_mut(e: &mut kvm_cpuid_entry2, r: Reg) -> &mut u32 {
    match r {
        Eax => &mut e.eax,
        Ebx => &mut e.ebx,
        Ecx => &mut e.ecx,
        Edx => &mut e.edx,
    }
}

/// Clear the named feature bits in `cpuid` (a leaf the table lacks has nothing to hide).
pub fn hide(cpuid: &mut CpuId, names: &[String]) -> Result<()> {
    let feats = names
        .iter()
        .map(|n| feature(n))
        .collect::<Result<Vec<_>>>()?;
    for e in cpuid.as_mut_slice() {
        for &(_, leaf, sub, reg, bit) in &feats {
            if e.function == leaf && (e.index == sub || !has_subleaves(leaf)) {
                *reg_mut(e, reg) &= !(1u32 << bit);
            }
        }
    }
    Ok(())
}

/// Leaves whose ECX input selects a subleaf.
fn has_subleaves(leaf: u32) -> bool {
    matches!(
        leaf,
        4 | 7 | 0xb | 0xd | 0xf | 0x10 | 0x12 | 0x14 | 0x17 | 0x18 | 0x1f | 0x8000_001d
    )
}

/// Replace (or add) one entry's registers.
pub fn set_entry(cpuid: &mut CpuId, entry: kvm_cpuid_entry2) -> Result<()> {
    if let Some(e) = cpuid
        .as_mut_slice()
        .iter_mut()
        .find(|e| e.function == entry.function && e.index == entry.index)
    {
        let flags = e.flags;
        *e = entry;
        e.flags = flags;
        return Ok(());
    }
    cpuid
        .push(entry)
        .map_err(|_| Error::invalid("cpuid", "the CPUID table is full (KVM_MAX_CPUID_ENTRIES)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CpuId {
        let mut c = CpuId::new(0).unwrap();
        for (function, index) in [(1, 0), (7, 0), (7, 1), (0xd, 1)] {
            c.push(kvm_cpuid_entry2 {
                function,
                index,
                eax: !0,
                ebx: !0,
                ecx: !0,
                edx: !0,
                ..Default::default()
            })
            .unwrap();
        }
        c
    }

    #[test]
    fn hide_clears_exactly_the_named_bits() {
        let mut c = table();
        hide(&mut c, &["cx16".into(), "XSAVE".into(), "xsaves".into()]).unwrap();
        let s = c.as_slice();
        assert_eq!(s[0].ecx, !((1 << 13) | (1 << 26)));
        assert_eq!(s[0].edx, !0);
        assert_eq!(s[3].eax, !(1 << 3));
        assert_eq!(
            s[2].ebx, !0,
            "subleaf 1 of leaf 7 is untouched by leaf 7.0 features"
        );
        let e = hide(&mut c, &["warp_drive".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown CPU feature \"warp_drive\""));
    }

    #[test]
    fn set_entry_replaces_or_adds() {
        let mut c = table();
        let e = kvm_cpuid_entry2 {
            function: 0x4000_0000,
            eax: 5,
            ..Default::default()
        };
        set_entry(&mut c, e).unwrap();
        set_entry(&mut c, kvm_cpuid_entry2 { eax: 6, ..e }).unwrap();
        let found: Vec<_> = c
            .as_slice()
            .iter()
            .filter(|x| x.function == 0x4000_0000)
            .collect();
        assert_eq!((found.len(), found[0].eax), (1, 6));
    }
}
