//! Host behaviour found by trying it, once per process, on a throwaway VM.

use std::sync::OnceLock;

use crate::arch::dr6;
use crate::arch::dr7::BpKind;
use crate::debug::{GuestDebug, HwBreakpoint};
use crate::devices::DeviceConfig;
use crate::error::Result;
use crate::exits::Exit;
use crate::kvm::layout::{self, Mode};
use crate::kvm::vm::{Vm, VmConfig};

/// The host honours RFLAGS.RF on `KVM_RUN`: an instruction breakpoint is not
/// reported again for the instruction a vCPU resumes at with RF set (SDM
/// §18.3.1.1). Then the run loop resumes past a breakpoint hit with one `KVM_RUN`
/// instead of disarming it, single-stepping and re-arming.
pub fn rf_resume() -> bool {
    static RF: OnceLock<bool> = OnceLock::new();
    *RF.get_or_init(|| probe_rf_resume().unwrap_or(false))
}

/// `nop; hlt` with an instruction breakpoint on the NOP: after the hit, resume with
/// RF set. Honoured: the guest reaches the HLT; not: the breakpoint fires again.
fn probe_rf_resume() -> Result<bool> {
    let mut vm = Vm::new(&VmConfig {
        memory_size: layout::MIN_MEMORY,
        mode: Mode::Real,
        vcpus: 1,
        irqchip: false,
        devices: DeviceConfig::default(),
    })?;
    vm.mem.write(layout::CODE, &[0x90, 0xf4])?;
    let debug = GuestDebug {
        hw_breakpoints: vec![HwBreakpoint::new(layout::CODE, BpKind::Exec, 1)?],
        ..Default::default()
    };
    let v = &mut vm.vcpus[0];
    v.apply_debug(Some(&debug), 0)?;
    v.set_sync_regs(true);
    match v.run()? {
        Exit::Debug(ev) if ev.pc == layout::CODE && ev.dr6 & dr6::B0 != 0 => {}
        _ => return Ok(false),
    }
    v.set_rf_on_entry();
    Ok(match v.run()? {
        Exit::Hlt => true,
        Exit::Debug(ev) => ev.pc != layout::CODE,
        _ => false,
    })
}
