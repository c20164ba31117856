//! Stepping over instruction faults. An instruction breakpoint, a general-detect
//! fault or one of our INT3s is reported before the instruction runs; resuming must
//! run that instruction once with the trigger disarmed (a single step under the
//! hood) and re-arm it, or the same event would fire again at once.

use crate::arch::dr7::{self, BpKind};
use crate::arch::{dr6, INT3, VECTOR_BP, VECTOR_DB};
use crate::debug::GuestDebug;
use crate::error::Result;
use crate::exits::DebugEvent;
use crate::kvm::memory::GuestMemory;
use crate::kvm::vcpu::{Parked, Vcpu};

/// How many times in a row a fault may refire during its step-over before the vCPU
/// is stopped with `NoProgress`.
pub const MAX_REFIRES: u32 = 3;

/// The original bytes under the INT3s patched in for software breakpoints.
pub struct Int3Patches {
    orig: Vec<(u64, u8)>,
}

impl Int3Patches {
    /// Patch an INT3 at every address, remembering what was there.
    pub fn apply(mem: &GuestMemory, addrs: &[u64]) -> Result<Self> {
        let mut orig = Vec::with_capacity(addrs.len());
        for &a in addrs {
            orig.push((a, mem.read_vec(a, 1)?[0]));
        }
        for &a in addrs {
            mem.write(a, &[INT3])?;
        }
        Ok(Int3Patches { orig })
    }

    /// Put the original bytes back.
    pub fn restore(&self, mem: &GuestMemory) {
        for &(a, b) in &self.orig {
            let _ = mem.write(a, &[b]);
        }
    }

    fn original(&self, addr: u64) -> Option<u8> {
        self.orig.iter().find(|(a, _)| *a == addr).map(|(_, b)| *b)
    }
}

/// What in one configuration can park a vCPU, worked out once per trace: the
/// check runs on every event, and with plain single-step nothing can.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Enabled instruction breakpoints: (slot, address).
    exec: Vec<(usize, u64)>,
    general_detect: bool,
    sw: bool,
    /// Nothing can fault (plain single-step): one test per event.
    none: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(&GuestDebug::default())
    }
}

impl Faults {
    pub fn new(debug: &GuestDebug) -> Self {
        let (v, dr) = (debug.dr7(), debug.dr0_3());
        let exec: Vec<(usize, u64)> = (0..4)
            .filter(|&i| dr7::enabled(v, i) && dr7::kind_of(v, i) == BpKind::Exec)
            .map(|i| (i, dr[i]))
            .collect();
        let (general_detect, sw) = (debug.general_detect, !debug.sw_breakpoints.is_empty());
        Faults {
            none: exec.is_empty() && !general_detect && !sw,
            exec,
            general_detect,
            sw,
        }
    }

    /// An instruction breakpoint is armed.
    pub fn has_exec(&self) -> bool {
        !self.exec.is_empty()
    }

    /// Nothing in the configuration can fault.
    pub fn is_none(&self) -> bool {
        self.none
    }

    /// `fault_of(debug, ev)` for the configuration these faults were made from.
    #[inline(always)]
    pub fn of(&self, debug: &GuestDebug, ev: &DebugEvent) -> Option<Parked> {
        if self.none {
            return None;
        }
        match ev.exception as u8 {
            VECTOR_BP if self.sw && debug.sw_breakpoints.contains(&ev.pc) => {
                Some(Parked::SwBreakpoint { addr: ev.pc })
            }
            VECTOR_DB if self.general_detect && ev.dr6 & dr6::BD != 0 => {
                Some(Parked::GeneralDetect { pc: ev.pc })
            }
            VECTOR_DB => self
                .exec
                .iter()
                .find(|&&(_, addr)| addr == ev.pc)
                .filter(|&&(slot, _)| ev.dr6 & dr6::B[slot] != 0)
                .map(|&(slot, pc)| Parked::HwExec { slot, pc }),
            _ => None,
        }
    }
}

/// The instruction fault this event parks the vCPU on, if any.
pub fn fault_of(debug: &GuestDebug, ev: &DebugEvent) -> Option<Parked> {
    match ev.exception as u8 {
        VECTOR_BP if debug.sw_breakpoints.contains(&ev.pc) => {
            Some(Parked::SwBreakpoint { addr: ev.pc })
        }
        VECTOR_DB if debug.general_detect && ev.dr6 & dr6::BD != 0 => {
            Some(Parked::GeneralDetect { pc: ev.pc })
        }
        VECTOR_DB => debug
            .exec_slot_at(ev.pc)
            .filter(|&slot| ev.dr6 & dr6::B[slot] != 0)
            .map(|slot| Parked::HwExec { slot, pc: ev.pc }),
        _ => None,
    }
}

/// While stepping over `p`, `ev` is the same fault again at the same pc: the
/// disarmed trigger fired anyway and the instruction did not run.
pub fn refired(debug: &GuestDebug, p: Parked, ev: &DebugEvent) -> bool {
    ev.pc == p.pc()
        && (ev.exception != u32::from(VECTOR_DB) || ev.dr6 & dr6::BS == 0)
        && fault_of(debug, ev).is_some()
}

/// The step-over's own trap (BS) is internal unless the user single-steps; anything
/// else (a data breakpoint, or a new fault because a host lost the trap) is a real
/// event.
pub fn records_after_step(debug: &GuestDebug, ev: &DebugEvent) -> bool {
    debug.single_step
        || ev.exception != u32::from(VECTOR_DB)
        || ev.dr6 & dr6::BS == 0
        || debug.data_cause(ev.dr6)
}

/// The configuration to single-step once past `p` with its trigger disarmed.
pub fn step_config(debug: &GuestDebug, p: Parked) -> GuestDebug {
    let mut g = match p {
        Parked::HwExec { pc, .. } => debug.without_exec_at(pc),
        Parked::GeneralDetect { .. } => {
            let mut g = GuestDebug {
                general_detect: false,
                ..debug.clone()
            };
            if let Some(raw) = g.raw.as_mut() {
                raw.dr7 &= !crate::arch::dr7::GD;
            }
            g
        }
        Parked::SwBreakpoint { .. } => debug.clone(),
    };
    g.single_step = true;
    g
}

/// Disarm `p`'s trigger and arm a single step.
pub fn begin(
    vcpu: &mut Vcpu,
    mem: &GuestMemory,
    debug: &GuestDebug,
    patches: &Int3Patches,
    p: Parked,
) -> Result<()> {
    if let Parked::SwBreakpoint { addr } = p {
        if let Some(b) = patches.original(addr) {
            mem.write(addr, &[b])?;
        }
    }
    vcpu.apply_debug(Some(&step_config(debug, p)), 0)
}

/// Re-arm `p`'s trigger and the user's configuration.
pub fn end(vcpu: &mut Vcpu, mem: &GuestMemory, debug: &GuestDebug, p: Parked) -> Result<()> {
    if let Parked::SwBreakpoint { addr } = p {
        mem.write(addr, &[INT3])?;
    }
    vcpu.apply_debug(Some(debug), 0)
}

/// A stand-in event for "this parked fault fires again under `debug`".
pub fn synthetic_hit(debug: &GuestDebug, p: Parked) -> DebugEvent {
    match p {
        Parked::SwBreakpoint { addr } => DebugEvent {
            exception: u32::from(VECTOR_BP),
            pc: addr,
            ..Default::default()
        },
        Parked::GeneralDetect { pc } => DebugEvent {
            exception: u32::from(VECTOR_DB),
            pc,
            dr6: dr6::BD,
            dr7: debug.dr7(),
        },
        Parked::HwExec { slot, pc } => DebugEvent {
            exception: u32::from(VECTOR_DB),
            pc,
            dr6: dr6::B[slot],
            dr7: debug.dr7(),
        },
    }
}
