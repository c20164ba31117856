//! The run loop's side of instruction faults (see `step_over.rs` for the pure
//! part): resuming a vCPU parked on one, stepping over a fault when it fires and
//! re-arming after, and everything else that follows an event out of the ordinary
//! (the guest's own INT3, a stop condition). All cold: the dense path never runs it.

use crate::arch::VECTOR_BP;
use crate::debug::flags::KVM_GUESTDBG_INJECT_BP;
use crate::exits::DebugEvent;
use crate::kvm::vcpu::Parked;
use crate::recorder::Record;

use super::step_over::{self, MAX_REFIRES};
use super::stop::StopReason;
use super::vcpu_loop::{Flow, Outbox, VcpuLoop};

impl<O: Outbox, R: Record> VcpuLoop<'_, O, R> {
    /// The linear address the vCPU will execute next.
    fn linear_pc(&self) -> Option<u64> {
        let rip = self.vcpu.get("rip").ok()?;
        Some(rip + self.vcpu.get("cs_base").ok()?)
    }

    /// Resume past an instruction fault the previous run stopped on.
    #[cold]
    #[inline(never)]
    pub(super) fn resume_parked(&mut self) -> Flow {
        let Some(p) = self.vcpu.parked.take() else {
            return Flow::Go;
        };
        let (env, debug) = (self.env, &self.cur.debug);
        let still_armed = step_over::fault_of(debug, &step_over::synthetic_hit(debug, p));
        if self.linear_pc() == Some(p.pc()) && still_armed.is_some() {
            let resumed = if matches!(p, Parked::HwExec { .. }) && env.rf_resume {
                self.vcpu.set_rf_now()
            } else {
                let begun = step_over::begin(self.vcpu, env.mem, debug, env.patches, p);
                begun.map(|()| self.stepping = Some(p))
            };
            if let Err(e) = resumed {
                return Flow::Stop(self.fail(e));
            }
        }
        Flow::Go
    }

    /// Stopped in the middle of a step-over: re-arm, and stay parked if the
    /// instruction has not run yet.
    #[cold]
    #[inline(never)]
    pub(super) fn finish_step_over(&mut self) {
        if let Some(p) = self.stepping.take() {
            let _ = step_over::end(self.vcpu, self.env.mem, &self.cur.debug, p);
            if self.linear_pc() == Some(p.pc()) {
                self.vcpu.parked = Some(p);
            }
        }
    }

    /// The step over a fault ended with `ev`: re-arm, and decide whether `ev` is
    /// recorded (Err: the vCPU stops).
    #[cold]
    #[inline(never)]
    pub(super) fn end_step_over(&mut self, p: Parked, ev: &DebugEvent) -> Result<bool, Flow> {
        let debug = &self.cur.debug;
        if let Err(e) = step_over::end(self.vcpu, self.env.mem, debug, p) {
            return Err(Flow::Stop(self.fail(e)));
        }
        self.refires = if step_over::refired(debug, p, ev) {
            self.refires + 1
        } else {
            0
        };
        if self.refires >= MAX_REFIRES {
            return Err(Flow::Stop(StopReason::NoProgress(ev.pc)));
        }
        Ok(step_over::records_after_step(&self.cur.debug, ev))
    }

    /// What follows an event other than a plain recorded one: the guest's own INT3
    /// goes back to the guest, a stop condition ends the vCPU (parked on its fault),
    /// a fault is stepped over. None: go on.
    #[cold]
    #[inline(never)]
    pub(super) fn after_event(
        &mut self,
        ev: &DebugEvent,
        record: bool,
        parked: Option<Parked>,
    ) -> Option<Flow> {
        let env = self.env;
        if let Some(Parked::SwBreakpoint { addr }) = parked {
            self.hits.on_sw(addr);
        }
        if ev.exception == u32::from(VECTOR_BP) && parked.is_none() {
            // The guest's own INT3: deliver it to the guest as the hardware would.
            if let Err(e) = self
                .vcpu
                .apply_debug(Some(&self.cur.debug), KVM_GUESTDBG_INJECT_BP)
            {
                return Some(Flow::Stop(self.fail(e)));
            }
        }
        if record && env.cfg.stop_at == Some(ev.pc) {
            self.vcpu.parked = parked;
            return Some(Flow::Stop(StopReason::StopAt));
        }
        if record && self.seq >= self.hot.max_events {
            self.vcpu.parked = parked;
            return Some(Flow::Stop(StopReason::MaxEvents));
        }
        match parked {
            Some(Parked::HwExec { .. }) if env.rf_resume => self.vcpu.set_rf_on_entry(),
            Some(p) => {
                if let Err(e) =
                    step_over::begin(self.vcpu, env.mem, &self.cur.debug, env.patches, p)
                {
                    return Some(Flow::Stop(self.fail(e)));
                }
                self.stepping = Some(p);
            }
            None => {}
        }
        None
    }
}
