//! Booting real kernels: the Linux boot protocol (`linux`), Multiboot v1
//! (`multiboot`), host-side decompression (`decompress`) and the symbol table the
//! error mapping names pcs with (`symbols`). Plain Rust; bindings in `py/boot.rs`.

pub mod decompress;
pub mod emulation;
mod guest;
pub mod linux;
pub mod multiboot;
pub mod symbols;

use kvm_bindings::{kvm_regs, kvm_sregs};

/// The state a boot protocol hands the boot vCPU; `Machine.reset()` restores it.
#[derive(Clone, Copy, Debug)]
pub struct BootState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
}
