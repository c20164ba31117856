//! The in-kernel interrupt controllers: LAPIC per vCPU, IOAPIC and PIC
//! (`KVM_CREATE_IRQCHIP`) and the PIT (`KVM_CREATE_PIT2`). With them KVM handles the
//! LAPIC at 0xfee00000, the timer and HLT (a halted vCPU waits in the kernel for an
//! interrupt instead of exiting to userspace).

use kvm_bindings::{kvm_mp_state, kvm_pit_config, KVM_MP_STATE_RUNNABLE, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{VcpuFd, VmFd};

use crate::error::{Error, Result};

/// LAPIC register offsets and LVT delivery modes (SDM Vol. 3A §11.5.1).
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const DELIVERY_EXTINT: u32 = 0b111 << 8;
const DELIVERY_NMI: u32 = 0b100 << 8;
const DELIVERY_MASK: u32 = 0b111 << 8;

/// Create the irqchip and the PIT on `vm` (before any vCPU exists).
pub fn create(vm: &VmFd) -> Result<()> {
    vm.create_irq_chip()
        .map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(Error::kvm("KVM_CREATE_PIT2"))
}

fn lvt_with_mode(regs: &mut [std::ffi::c_char; 1024], off: usize, mode: u32) {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = regs[off + i] as u8;
    }
    let v = (u32::from_le_bytes(b) & !DELIVERY_MASK) | mode;
    for (i, x) in v.to_le_bytes().iter().enumerate() {
        regs[off + i] = *x as std::ffi::c_char;
    }
}

/// Wire the vCPU's LAPIC as a PC's firmware leaves it: LINT0 takes the PIC's
/// interrupts (ExtINT), LINT1 is NMI; and make the vCPU runnable at once (an AP
/// would otherwise wait for INIT/SIPI: every kvmtrace vCPU starts at the entry).
pub fn setup_vcpu(fd: &VcpuFd) -> Result<()> {
    let mut lapic = fd.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
    lvt_with_mode(&mut lapic.regs, APIC_LVT0, DELIVERY_EXTINT);
    lvt_with_mode(&mut lapic.regs, APIC_LVT1, DELIVERY_NMI);
    fd.set_lapic(&lapic).map_err(Error::kvm("KVM_SET_LAPIC"))?;
    fd.set_mp_state(kvm_mp_state {
        mp_state: KVM_MP_STATE_RUNNABLE,
    })
    .map_err(Error::kvm("KVM_SET_MP_STATE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvt_mode_keeps_other_bits() {
        let mut regs = [0 as std::ffi::c_char; 1024];
        regs[APIC_LVT0 + 2] = 1; // bit 16: masked
        lvt_with_mode(&mut regs, APIC_LVT0, DELIVERY_EXTINT);
        let v = u32::from_le_bytes([
            regs[APIC_LVT0] as u8,
            regs[APIC_LVT0 + 1] as u8,
            regs[APIC_LVT0 + 2] as u8,
            regs[APIC_LVT0 + 3] as u8,
        ]);
        assert_eq!(v, 0x1_0700);
    }
}
