//! Register access by name (`Machine.get_register("cr0")`): general-purpose,
//! segment, control, EFER, APIC base and debug registers, each through the ioctl
//! that holds it. Not on the tracing path (that reads `kvm_run->s.regs`).

use crate::error::{Error, Result};
use crate::kvm::regs::{self, RegClass};
use crate::kvm::vcpu::Vcpu;

impl Vcpu {
    /// Read a register by name.
    pub fn get(&self, name: &str) -> Result<u64> {
        Ok(match regs::classify(name)? {
            RegClass::Gp(g) => g.get(&self.regs()?),
            RegClass::Seg(s, part) => {
                let mut sr = self.sregs()?;
                regs::seg_get(regs::seg_mut(&mut sr, s), part)
            }
            RegClass::Cr(n) => regs::cr_get(&self.sregs()?, n),
            RegClass::Efer => self.sregs()?.efer,
            RegClass::ApicBase => self.sregs()?.apic_base,
            RegClass::Dr(n) => regs::dr_get(
                &self
                    .fd
                    .get_debug_regs()
                    .map_err(Error::kvm("KVM_GET_DEBUGREGS"))?,
                n,
            ),
        })
    }

    /// Write a register by name.
    pub fn set(&mut self, name: &str, v: u64) -> Result<()> {
        let class = regs::classify(name)?;
        self.settle()?;
        match class {
            RegClass::Gp(g) => {
                let mut r = self.regs()?;
                g.set(&mut r, v);
                self.set_regs(&r)?;
                if g == regs::Gp::Rip {
                    self.parked = None;
                }
            }
            RegClass::Seg(s, part) => {
                let mut sr = self.sregs()?;
                regs::seg_set(regs::seg_mut(&mut sr, s), part, v).map_err(|e| match e {
                    Error::InvalidConfig { reason, .. } => Error::invalid(name, reason),
                    e => e,
                })?;
                self.fd
                    .set_sregs(&sr)
                    .map_err(Error::kvm("KVM_SET_SREGS"))?;
            }
            RegClass::Cr(_) | RegClass::Efer | RegClass::ApicBase => {
                let mut sr = self.sregs()?;
                match class {
                    RegClass::Cr(n) => regs::cr_set(&mut sr, n, v),
                    RegClass::Efer => sr.efer = v,
                    _ => sr.apic_base = v,
                }
                self.fd
                    .set_sregs(&sr)
                    .map_err(|e| Error::invalid(name, format!("KVM refused {v:#x}: {e}")))?;
            }
            RegClass::Dr(n) => {
                let mut d = self
                    .fd
                    .get_debug_regs()
                    .map_err(Error::kvm("KVM_GET_DEBUGREGS"))?;
                regs::dr_set(&mut d, n, v);
                self.fd
                    .set_debug_regs(&d)
                    .map_err(|e| Error::invalid(name, format!("KVM refused {v:#x}: {e}")))?;
            }
        }
        Ok(())
    }
}
