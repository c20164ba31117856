//! The KVM layer: VM, vCPU, guest memory and mode setup. No pyo3 here.

pub mod cpuid;
pub mod irqchip;
pub mod layout;
pub mod memory;
pub mod probe;
pub mod regs;
pub mod sregs;
pub mod vcpu;
mod vcpu_named;
pub mod vm;
