//! The `KVM_GUESTDBG_*` control flags (arch/x86/include/uapi/asm/kvm.h and
//! include/uapi/linux/kvm.h), from kvm-bindings, with their names.

pub use kvm_bindings::{
    KVM_GUESTDBG_BLOCKIRQ, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_INJECT_BP, KVM_GUESTDBG_INJECT_DB,
    KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
};

/// Every flag kvmtrace knows, with its uapi name.
pub const ALL: [(u32, &str); 7] = [
    (KVM_GUESTDBG_ENABLE, "KVM_GUESTDBG_ENABLE"),
    (KVM_GUESTDBG_SINGLESTEP, "KVM_GUESTDBG_SINGLESTEP"),
    (KVM_GUESTDBG_USE_SW_BP, "KVM_GUESTDBG_USE_SW_BP"),
    (KVM_GUESTDBG_USE_HW_BP, "KVM_GUESTDBG_USE_HW_BP"),
    (KVM_GUESTDBG_INJECT_DB, "KVM_GUESTDBG_INJECT_DB"),
    (KVM_GUESTDBG_INJECT_BP, "KVM_GUESTDBG_INJECT_BP"),
    (KVM_GUESTDBG_BLOCKIRQ, "KVM_GUESTDBG_BLOCKIRQ"),
];

/// The flags a kernel without `KVM_CAP_SET_GUEST_DEBUG2` supports on x86.
pub const LEGACY: u32 = KVM_GUESTDBG_ENABLE
    | KVM_GUESTDBG_SINGLESTEP
    | KVM_GUESTDBG_USE_SW_BP
    | KVM_GUESTDBG_USE_HW_BP
    | KVM_GUESTDBG_INJECT_DB
    | KVM_GUESTDBG_INJECT_BP;

/// The uapi name of one flag.
pub fn name(flag: u32) -> &'static str {
    ALL.iter()
        .find(|(f, _)| *f == flag)
        .map_or("KVM_GUESTDBG_<unknown>", |(_, n)| *n)
}

/// Names of every flag set in `flags`; unknown bits as hex.
pub fn names(flags: u32) -> Vec<String> {
    (0..32)
        .map(|b| 1u32 << b)
        .filter(|f| flags & f != 0)
        .map(|f| match ALL.iter().find(|(g, _)| *g == f) {
            Some((_, n)) => n.to_string(),
            None => format!("{f:#x}"),
        })
        .collect()
}
