//! Trace windows: run free to `start`, single-step a stretch there, run free again.
//!
//! A window is driven by an instruction breakpoint (the trigger) in a DR slot the
//! user left free. Outside a window the vCPU runs under the user's configuration
//! plus the trigger; a trigger hit opens a window (that hit is its first row), and
//! inside the vCPU runs under the user's configuration plus single-step (and
//! BLOCKIRQ), with the trigger disarmed so the instruction at `start` runs. The
//! window closes after `steps` instructions or on reaching `until`, and the
//! trigger is re-armed, `repeat` times or forever. Which configuration applies is
//! decided here by pure functions; the loop only reprograms the vCPU.

use crate::arch::dr7::{self, BpKind};
use crate::arch::{dr6, VECTOR_DB};
use crate::debug::{GuestDebug, HwBreakpoint};
use crate::error::{Error, Result};
use crate::exits::DebugEvent;
use crate::recorder::NO_WINDOW;

use super::step_over::Faults;

/// What the user asked for (addresses resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Linear address whose execution opens a window.
    pub start: u64,
    /// Instructions executed in a window before it closes.
    pub steps: Option<u64>,
    /// A window closes when the vCPU is about to execute this address.
    pub until: Option<u64>,
    /// Windows per vCPU (None: every time `start` runs).
    pub repeat: Option<u64>,
    /// Block interrupts while stepping in a window (steps stay in the code traced).
    pub block_irq: bool,
}

impl WindowSpec {
    fn validate(&self) -> Result<()> {
        if self.steps.is_none() && self.until.is_none() {
            return Err(Error::invalid(
                "window",
                "a window needs steps=N or until=ADDRESS (or both) to know where it ends",
            ));
        }
        if self.steps == Some(0) {
            return Err(Error::invalid("window.steps", "must be at least 1"));
        }
        if self.repeat == Some(0) {
            return Err(Error::invalid(
                "window.repeat",
                "must be at least 1 (or True for every hit)",
            ));
        }
        Ok(())
    }
}

/// A guest-debug configuration with what in it can fault, worked out once.
#[derive(Clone, Debug)]
pub struct DebugSet {
    pub debug: GuestDebug,
    pub faults: Faults,
}

impl DebugSet {
    pub fn new(debug: GuestDebug) -> Self {
        DebugSet {
            faults: Faults::new(&debug),
            debug,
        }
    }
}

/// The configurations a windowed trace switches between.
#[derive(Clone, Debug)]
pub struct WindowPlan {
    pub spec: WindowSpec,
    /// The DR slot of the trigger.
    pub slot: usize,
    /// Between windows: the user's configuration and the trigger.
    pub outside: DebugSet,
    /// In a window: the user's configuration, single-step, the trigger disarmed.
    pub inside: DebugSet,
}

impl WindowPlan {
    pub fn new(spec: WindowSpec, user: &GuestDebug) -> Result<WindowPlan> {
        spec.validate()?;
        let (outside, slot) = with_exec_at(user, spec.start)?;
        let inside = GuestDebug {
            single_step: true,
            block_irq: user.block_irq || spec.block_irq,
            ..user.clone()
        };
        Ok(WindowPlan {
            slot,
            outside: DebugSet::new(outside),
            inside: DebugSet::new(inside),
            spec,
        })
    }

    /// The event is the trigger firing (an instruction fault at `start` in its slot).
    /// A host that loses DR6.Bn still reports the fault at `start` without a
    /// single-step cause, so that counts too.
    fn is_trigger(&self, ev: &DebugEvent) -> bool {
        ev.exception == u32::from(VECTOR_DB)
            && ev.pc == self.spec.start
            && (ev.dr6 & dr6::B[self.slot] != 0 || ev.dr6 & dr6::BS == 0)
    }
}

/// `user` with an instruction breakpoint at `addr` in its first free slot, and that slot.
fn with_exec_at(user: &GuestDebug, addr: u64) -> Result<(GuestDebug, usize)> {
    let v = user.dr7();
    let free = (0..4).find(|&i| match user.raw {
        Some(_) => !dr7::enabled(v, i),
        None => i >= user.hw_breakpoints.len(),
    });
    let Some(slot) = free else {
        return Err(Error::invalid(
            "window",
            "a window needs a free debug register for its trigger, and DR0-DR3 are all in use; \
             drop one hardware breakpoint",
        ));
    };
    let mut g = user.clone();
    match &mut g.raw {
        Some(raw) => {
            raw.dr[slot] = addr;
            raw.dr7 |= dr7::slot_bits(slot, BpKind::Exec, 1);
        }
        // Breakpoints given as a list sit in slots 0.., so the free slot is the next one.
        None => g
            .hw_breakpoints
            .push(HwBreakpoint::new(addr, BpKind::Exec, 1)?),
    }
    Ok((g, slot))
}

/// Which configuration a vCPU runs under after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Stay,
    /// The trigger fired: program `inside`.
    Open,
    /// The window ended: program `outside` (or the user's own when no window is left).
    Close {
        last: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Outside,
    Inside {
        stepped: u64,
    },
    /// Every window ran: the user's configuration alone.
    Done,
}

/// One vCPU's windows.
#[derive(Clone, Debug)]
pub struct WindowState {
    phase: Phase,
    /// Windows opened so far (the open one's index is `opened - 1`).
    pub opened: u64,
}

impl Default for WindowState {
    fn default() -> Self {
        WindowState {
            phase: Phase::Outside,
            opened: 0,
        }
    }
}

impl WindowState {
    /// The window `ev` belongs to (`NO_WINDOW` outside) and the change it causes.
    /// An instruction fault inside a window (a user breakpoint) is a row of the
    /// window but not a step: the instruction has not run.
    pub fn on_event(&mut self, plan: &WindowPlan, ev: &DebugEvent) -> (i32, Transition) {
        match self.phase {
            Phase::Outside if plan.is_trigger(ev) => {
                self.opened += 1;
                self.phase = Phase::Inside { stepped: 0 };
                (self.index(), Transition::Open)
            }
            Phase::Outside | Phase::Done => (NO_WINDOW, Transition::Stay),
            Phase::Inside { stepped } => {
                let fault = plan.inside.faults.of(&plan.inside.debug, ev).is_some();
                let stepped = stepped + u64::from(!fault);
                let label = self.index();
                let at_until = plan.spec.until == Some(ev.pc);
                if at_until || plan.spec.steps.is_some_and(|n| stepped >= n) {
                    let last = plan.spec.repeat.is_some_and(|k| self.opened >= k);
                    self.phase = if last { Phase::Done } else { Phase::Outside };
                    (label, Transition::Close { last })
                } else {
                    self.phase = Phase::Inside { stepped };
                    (label, Transition::Stay)
                }
            }
        }
    }

    fn index(&self) -> i32 {
        i32::try_from(self.opened - 1).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::RawDebugRegs;

    const START: u64 = 0x1000;

    fn spec(steps: Option<u64>, until: Option<u64>, repeat: Option<u64>) -> WindowSpec {
        WindowSpec {
            start: START,
            steps,
            until,
            repeat,
            block_irq: true,
        }
    }

    fn trigger(slot: usize) -> DebugEvent {
        DebugEvent {
            exception: 1,
            pc: START,
            dr6: dr6::CLEAN | dr6::B[slot],
            dr7: 0,
        }
    }

    fn step(pc: u64) -> DebugEvent {
        DebugEvent {
            exception: 1,
            pc,
            dr6: dr6::CLEAN | dr6::BS,
            dr7: 0,
        }
    }

    #[test]
    fn trigger_takes_the_first_free_slot() {
        let user = GuestDebug {
            hw_breakpoints: vec![HwBreakpoint::new(0x2000, BpKind::Write, 4).unwrap()],
            ..Default::default()
        };
        let p = WindowPlan::new(spec(Some(3), None, None), &user).unwrap();
        assert_eq!(p.slot, 1);
        assert_eq!(p.outside.debug.dr0_3()[1], START);
        assert!(p.outside.faults.has_exec());
        assert!(p.inside.debug.single_step && p.inside.debug.block_irq);
        assert_eq!(
            p.inside.debug.dr0_3()[0],
            0x2000,
            "the user's breakpoint stays inside"
        );
        assert!(
            !p.inside.faults.has_exec(),
            "the trigger is disarmed inside"
        );
    }

    #[test]
    fn raw_registers_keep_their_slots() {
        let user = GuestDebug {
            raw: Some(RawDebugRegs {
                dr: [0x10, 0, 0, 0],
                dr7: dr7::slot_bits(0, BpKind::Exec, 1),
            }),
            ..Default::default()
        };
        let p = WindowPlan::new(spec(Some(1), None, None), &user).unwrap();
        assert_eq!(p.slot, 1);
        assert_eq!(p.outside.debug.dr0_3(), [0x10, START, 0, 0]);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let full = GuestDebug {
            hw_breakpoints: (0..4)
                .map(|i| HwBreakpoint::new(0x100 * (i + 1), BpKind::Exec, 1).unwrap())
                .collect(),
            ..Default::default()
        };
        let field = |s: WindowSpec, g: &GuestDebug| match WindowPlan::new(s, g) {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let g = GuestDebug::default();
        assert_eq!(field(spec(None, None, None), &g), "window");
        assert_eq!(field(spec(Some(0), None, None), &g), "window.steps");
        assert_eq!(field(spec(Some(1), None, Some(0)), &g), "window.repeat");
        assert_eq!(field(spec(Some(1), None, None), &full), "window");
    }

    #[test]
    fn steps_count_instructions_after_the_trigger() {
        let p = WindowPlan::new(spec(Some(2), None, None), &GuestDebug::default()).unwrap();
        let mut w = WindowState::default();
        assert_eq!(w.on_event(&p, &step(0x10)), (NO_WINDOW, Transition::Stay));
        assert_eq!(w.on_event(&p, &trigger(0)), (0, Transition::Open));
        assert_eq!(w.on_event(&p, &step(0x1001)), (0, Transition::Stay));
        assert_eq!(
            w.on_event(&p, &step(0x1002)),
            (0, Transition::Close { last: false })
        );
        assert_eq!(w.on_event(&p, &trigger(0)), (1, Transition::Open));
        assert_eq!(w.opened, 2);
    }

    #[test]
    fn until_closes_at_its_pc_and_repeat_ends_the_windows() {
        let p = WindowPlan::new(spec(None, Some(0x1003), Some(1)), &GuestDebug::default()).unwrap();
        let mut w = WindowState::default();
        assert_eq!(w.on_event(&p, &trigger(0)).1, Transition::Open);
        assert_eq!(w.on_event(&p, &step(0x1001)).1, Transition::Stay);
        assert_eq!(
            w.on_event(&p, &step(0x1003)),
            (0, Transition::Close { last: true })
        );
        assert_eq!(w.on_event(&p, &trigger(0)), (NO_WINDOW, Transition::Stay));
    }

    #[test]
    fn a_user_fault_inside_is_a_row_but_not_a_step() {
        let user = GuestDebug {
            hw_breakpoints: vec![HwBreakpoint::new(0x1001, BpKind::Exec, 1).unwrap()],
            ..Default::default()
        };
        let p = WindowPlan::new(spec(Some(2), None, None), &user).unwrap();
        let mut w = WindowState::default();
        assert_eq!(w.on_event(&p, &trigger(p.slot)).1, Transition::Open);
        assert_eq!(w.on_event(&p, &step(0x1001)).1, Transition::Stay);
        let fault = DebugEvent {
            dr6: dr6::CLEAN | dr6::B[0],
            ..step(0x1001)
        };
        assert_eq!(w.on_event(&p, &fault), (0, Transition::Stay));
        assert_eq!(
            w.on_event(&p, &step(0x1002)).1,
            Transition::Close { last: false }
        );
    }

    #[test]
    fn a_step_landing_on_start_is_not_the_trigger() {
        let p = WindowPlan::new(spec(Some(1), None, None), &GuestDebug::default()).unwrap();
        let mut w = WindowState::default();
        assert_eq!(w.on_event(&p, &step(START)), (NO_WINDOW, Transition::Stay));
        let lost_bn = DebugEvent {
            dr6: dr6::CLEAN,
            ..trigger(0)
        };
        assert_eq!(w.on_event(&p, &lost_bn).1, Transition::Open);
    }
}
