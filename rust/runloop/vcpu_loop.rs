//! One vCPU's `KVM_RUN` loop: a context struct with one handler per exit kind.
//! Plain Rust; Python is reached only through [`Hooks`].

use crate::arch::{dr6, VECTOR_BP};
use crate::clock::TraceClock;
use crate::devices::Devices;
use crate::error::{Callback, Error};
use crate::exits::DebugEvent;
use crate::kick::ThreadUsage;
use crate::kvm::memory::GuestMemory;
use crate::kvm::vcpu::{Parked, Step, Vcpu};
use crate::recorder::{Columns, Record, NO_WINDOW};

use super::config::TraceConfig;
use super::hits::Hits;
use super::hooks::Hooks;
use super::step_over::Int3Patches;
use super::stop::{Control, StopReason};
use super::window::{DebugSet, Transition, WindowPlan, WindowState};

/// Events between two updates of the live progress counters.
const PROGRESS_EVERY: u64 = 4096;

/// What every vCPU loop of one trace shares.
pub struct Env<'a> {
    pub mem: &'a GuestMemory,
    /// The user's configuration (what a vCPU runs under without windows).
    pub plain: &'a DebugSet,
    pub window: Option<&'a WindowPlan>,
    pub cfg: &'a TraceConfig,
    pub ctl: &'a Control,
    pub hooks: &'a dyn Hooks,
    pub patches: &'a Int3Patches,
    /// What the per-event timestamps are read from.
    pub clock: TraceClock,
    /// Resume past instruction breakpoints with RFLAGS.RF (the host honours it).
    pub rf_resume: bool,
    pub devices: &'a Devices,
}

/// Where a full chunk of rows goes.
pub trait Outbox {
    fn hand_over(&mut self, rows: Columns) -> Result<(), Error>;
}

/// What one vCPU recorded and why it stopped.
pub struct VcpuResult {
    pub cols: Columns,
    /// Events recorded but not kept (a ring's overwritten rows).
    pub dropped: u64,
    pub hits: Hits,
    pub console: Vec<u8>,
    pub stop: StopReason,
    pub events: u64,
    pub exits: u64,
    /// CPU time and page faults of this vCPU's loop (its thread).
    pub usage: ThreadUsage,
    /// KVM ioctls the loop issued (KVM_RUN, guest-debug and register calls).
    pub ioctls: u64,
}

pub(super) enum Flow {
    Go,
    Stop(StopReason),
}

/// The settings the hot path reads on every event, copied out of the shared
/// configuration: fields of the loop itself stay in registers across `KVM_RUN`.
#[derive(Clone, Copy)]
pub(super) struct Hot {
    clock: TraceClock,
    regs: bool,
    faults: bool,
    stop_at: Option<u64>,
    pub(super) max_events: u64,
    sink_rows: usize,
    windows: bool,
}

pub struct VcpuLoop<'a, O: Outbox, R: Record> {
    pub(super) env: &'a Env<'a>,
    pub(super) hot: Hot,
    pub(super) vcpu: &'a mut Vcpu,
    pub(super) out: O,
    pub(super) rec: R,
    /// The configuration the vCPU runs under now (windows switch it).
    pub(super) cur: &'a DebugSet,
    pub(super) windows: WindowState,
    pub(super) hits: Hits,
    pub(super) seq: u64,
    pub(super) exits: u64,
    pub(super) console: Vec<u8>,
    /// The fault being stepped over (its trigger disarmed), if any.
    pub(super) stepping: Option<Parked>,
    pub(super) refires: u32,
    published: (u64, u64),
    /// `env.ctl`, one load nearer (the stop flag is read before every `KVM_RUN`);
    /// the loop reaches the trace's control only through it.
    ctl: &'a Control,
}

impl<'a, O: Outbox, R: Record> VcpuLoop<'a, O, R> {
    pub fn new(env: &'a Env<'a>, vcpu: &'a mut Vcpu, out: O, rec: R) -> Self {
        let cur = env.window.map_or(env.plain, |w| &w.outside);
        let hot = Hot {
            clock: env.clock,
            regs: !env.cfg.regs.is_empty(),
            faults: !cur.faults.is_none(),
            stop_at: env.cfg.stop_at,
            max_events: env.cfg.max_events.unwrap_or(u64::MAX),
            sink_rows: env.cfg.sink_rows.unwrap_or(usize::MAX),
            windows: env.window.is_some(),
        };
        VcpuLoop {
            env,
            hot,
            vcpu,
            out,
            rec,
            cur,
            windows: WindowState::default(),
            hits: Hits::new(&env.plain.debug),
            seq: 0,
            exits: 0,
            console: Vec::new(),
            stepping: None,
            refires: 0,
            published: (0, 0),
            ctl: env.ctl,
        }
    }

    /// Run until this vCPU stops.
    pub fn run(mut self) -> VcpuResult {
        let usage0 = ThreadUsage::now();
        let ioctls0 = self.vcpu.ioctls();
        let _kick = self
            .ctl
            .kicker
            .register(self.vcpu.index, self.vcpu.immediate_exit_ptr());
        let stop = match self.resume_parked() {
            Flow::Stop(r) => r,
            Flow::Go => self.run_exits(),
        };
        self.finish_step_over();
        self.vcpu.clear_immediate_exit();
        self.publish();
        self.hits.windows = self.windows.opened;
        let (cols, dropped) = self.rec.finish();
        VcpuResult {
            cols,
            dropped,
            hits: self.hits,
            console: self.console,
            stop,
            events: self.seq,
            exits: self.exits,
            usage: ThreadUsage::now().since(usage0),
            ioctls: self.vcpu.ioctls() - ioctls0,
        }
    }

    fn run_exits(&mut self) -> StopReason {
        loop {
            if self.ctl.stopping() {
                return self.ctl.reason_or_interrupted();
            }
            self.exits += 1;
            let flow = match self.vcpu.step() {
                Step::Debug(ev) => self.on_debug(ev),
                Step::Other(res) => {
                    let exit = self.vcpu.finish_exit(res);
                    self.on_exit(exit)
                }
            };
            if let Flow::Stop(r) = flow {
                return r;
            }
        }
    }

    /// The whole trace stops with `e` (this vCPU caused it).
    #[cold]
    #[inline(never)]
    pub(super) fn fail(&self, e: Error) -> StopReason {
        let r = StopReason::error(e);
        self.ctl.request(Some(self.vcpu.index), r.clone());
        r
    }

    #[cold]
    #[inline(never)]
    pub(super) fn stop_all(&self, r: StopReason) -> Flow {
        self.ctl.request(Some(self.vcpu.index), r.clone());
        Flow::Stop(r)
    }

    #[cold]
    #[inline(never)]
    fn publish(&mut self) {
        if let Some(p) = &self.env.cfg.progress {
            p.add(self.seq - self.published.0, self.exits - self.published.1);
            self.published = (self.seq, self.exits);
        }
    }

    /// The hot path: one debug exit recorded. Everything rare (a step-over ending,
    /// a window opening or closing, a breakpoint hit, the guest's own INT3, a fault
    /// to park on, a stop) is out of line, so this stays small enough to keep its
    /// state in registers.
    #[inline(always)]
    pub(super) fn on_debug(&mut self, ev: DebugEvent) -> Flow {
        let t = self.hot.clock.ticks();
        // Read, not `take()`: the common case then stores nothing.
        let record = match self.stepping {
            None => true,
            Some(p) => {
                self.stepping = None;
                match self.end_step_over(p, &ev) {
                    Ok(record) => record,
                    Err(flow) => return flow,
                }
            }
        };
        let (window, transition) = if self.hot.windows {
            self.window_event(&ev)
        } else {
            (NO_WINDOW, Transition::Stay)
        };
        if record {
            let regs = if self.hot.regs {
                Some(self.vcpu.synced_regs())
            } else {
                None
            };
            self.rec.record(t, &ev, regs, window);
            self.seq += 1;
            if self.seq % PROGRESS_EVERY == 0 {
                self.publish();
            }
            if ev.dr6 & dr6::B_ANY != 0 {
                self.hits.on_dr6(&ev);
            }
        }
        let mut parked = if self.hot.faults {
            self.cur.faults.of(&self.cur.debug, &ev)
        } else {
            None
        };
        if transition != Transition::Stay {
            if let Err(e) = self.switch(transition) {
                return Flow::Stop(self.fail(e));
            }
            if transition == Transition::Open {
                // The trigger is disarmed inside: its instruction runs on the first step.
                parked = None;
            }
        }
        if ev.exception == u32::from(VECTOR_BP)
            || (record && (self.hot.stop_at == Some(ev.pc) || self.seq >= self.hot.max_events))
            || parked.is_some()
        {
            if let Some(flow) = self.after_event(&ev, record, parked) {
                return flow;
            }
        }
        if self.rec.rows() >= self.hot.sink_rows {
            return self.hand_over(self.hot.sink_rows);
        }
        Flow::Go
    }

    /// Which window `ev` belongs to, and whether it opens or closes one.
    #[inline(never)]
    fn window_event(&mut self, ev: &DebugEvent) -> (i32, Transition) {
        match self.env.window {
            Some(plan) => self.windows.on_event(plan, ev),
            None => (NO_WINDOW, Transition::Stay),
        }
    }

    /// Reprogram the vCPU for a window opening or closing.
    #[cold]
    #[inline(never)]
    fn switch(&mut self, t: Transition) -> Result<(), Error> {
        let (env, Some(plan)) = (self.env, self.env.window) else {
            return Ok(());
        };
        self.cur = match t {
            Transition::Open => &plan.inside,
            Transition::Close { last: false } => &plan.outside,
            Transition::Close { last: true } | Transition::Stay => env.plain,
        };
        self.hot.faults = !self.cur.faults.is_none();
        self.vcpu.apply_debug(Some(&self.cur.debug), 0)
    }

    #[cold]
    #[inline(never)]
    fn hand_over(&mut self, rows: usize) -> Flow {
        let chunk = self.rec.take_chunk(rows);
        match self.out.hand_over(chunk) {
            Ok(()) => Flow::Go,
            Err(e) => Flow::Stop(StopReason::error(e)),
        }
    }
}

/// The sink is unreachable (the coordinator is gone): a sink failure.
pub fn writer_gone() -> Error {
    Error::callback(Callback::Sink, "the sink writer is gone")
}
