//! One vCPU's `KVM_RUN` loop: a context struct with one handler per exit kind.
//! Plain Rust; Python is reached only through [`Hooks`].

use crate::arch::VECTOR_BP;
use crate::clock::TraceClock;
use crate::debug::flags::KVM_GUESTDBG_INJECT_BP;
use crate::debug::GuestDebug;
use crate::devices::Devices;
use crate::error::{Callback, Error};
use crate::exits::{DebugEvent, Exit};
use crate::kick::ThreadUsage;
use crate::kvm::memory::GuestMemory;
use crate::kvm::vcpu::{Parked, Step, Vcpu};
use crate::recorder::Columns;

use super::config::TraceConfig;
use super::hooks::{Handled, Hooks};
use super::step_over::{self, Faults, Int3Patches, MAX_REFIRES};
use super::stop::{Control, StopReason};

/// Port whose writes are the guest's console (QEMU's debugcon convention).
pub const CONSOLE_PORT: u16 = 0xe9;
/// Port whose write ends the run with the written value (QEMU's isa-debug-exit).
pub const EXIT_PORT: u16 = crate::devices::debug_exit::PORT;
/// Events between two updates of the live progress counters.
const PROGRESS_EVERY: u64 = 4096;

/// What every vCPU loop of one trace shares.
pub struct Env<'a> {
    pub mem: &'a GuestMemory,
    pub debug: &'a GuestDebug,
    pub cfg: &'a TraceConfig,
    pub ctl: &'a Control,
    pub hooks: &'a dyn Hooks,
    pub patches: &'a Int3Patches,
    /// What the per-event timestamps are read from.
    pub clock: TraceClock,
    /// What in `debug` can park a vCPU (checked on every event).
    pub faults: Faults,
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
    pub console: Vec<u8>,
    pub stop: StopReason,
    pub events: u64,
    pub exits: u64,
    /// CPU time and page faults of this vCPU's loop (its thread).
    pub usage: ThreadUsage,
    /// KVM ioctls the loop issued (KVM_RUN, guest-debug and register calls).
    pub ioctls: u64,
}

enum Flow {
    Go,
    Stop(StopReason),
}

/// The settings the hot path reads on every event, copied out of the shared
/// configuration: fields of the loop itself stay in registers across `KVM_RUN`.
#[derive(Clone, Copy)]
struct Hot {
    clock: TraceClock,
    regs: bool,
    faults: bool,
    stop_at: Option<u64>,
    max_events: u64,
    sink_rows: usize,
}

pub struct VcpuLoop<'a, O: Outbox> {
    env: &'a Env<'a>,
    hot: Hot,
    vcpu: &'a mut Vcpu,
    out: O,
    cols: Columns,
    seq: u64,
    exits: u64,
    console: Vec<u8>,
    /// The fault being stepped over (its trigger disarmed), if any.
    stepping: Option<Parked>,
    refires: u32,
    published: (u64, u64),
}

impl<'a, O: Outbox> VcpuLoop<'a, O> {
    pub fn new(env: &'a Env<'a>, vcpu: &'a mut Vcpu, out: O) -> Self {
        let cols = Columns::for_vcpu(
            vcpu.index as u16,
            env.cfg.regs.clone(),
            env.cfg.initial_capacity(),
        );
        let hot = Hot {
            clock: env.clock,
            regs: !env.cfg.regs.is_empty(),
            faults: !env.faults.is_none(),
            stop_at: env.cfg.stop_at,
            max_events: env.cfg.max_events.unwrap_or(u64::MAX),
            sink_rows: env.cfg.sink_rows.unwrap_or(usize::MAX),
        };
        VcpuLoop {
            env,
            hot,
            vcpu,
            out,
            cols,
            seq: 0,
            exits: 0,
            console: Vec::new(),
            stepping: None,
            refires: 0,
            published: (0, 0),
        }
    }

    /// Run until this vCPU stops.
    pub fn run(mut self) -> VcpuResult {
        let usage0 = ThreadUsage::now();
        let ioctls0 = self.vcpu.ioctls();
        let _kick = self
            .env
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
        VcpuResult {
            cols: self.cols,
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
            if self.env.ctl.stopping() {
                return self.env.ctl.reason_or_interrupted();
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

    /// Every exit but a debug exit (out of line: the dense path does not need it).
    #[cold]
    #[inline(never)]
    fn on_exit(&mut self, exit: crate::error::Result<Exit>) -> Flow {
        let exit = match exit {
            Ok(e) => e,
            Err(e) => return Flow::Stop(self.fail(e)),
        };
        match exit {
            Exit::Debug(ev) => self.on_debug(ev),
            Exit::IoOut { port, data, size } => self.on_io_out(port, data, size),
            Exit::IoIn { port, size, .. } => self.on_io_in(port, size),
            Exit::MmioWrite { addr, data } => self.on_mmio_write(addr, data),
            Exit::MmioRead { addr, len } => self.on_mmio_read(addr, len),
            Exit::Hlt => Flow::Stop(StopReason::Hlt),
            Exit::Interrupted => {
                self.vcpu.clear_immediate_exit();
                Flow::Go
            }
            other => self.on_terminal(other),
        }
    }

    /// The whole trace stops with `e` (this vCPU caused it).
    #[cold]
    #[inline(never)]
    fn fail(&self, e: Error) -> StopReason {
        let r = StopReason::error(e);
        self.env.ctl.request(Some(self.vcpu.index), r.clone());
        r
    }

    #[cold]
    #[inline(never)]
    fn stop_all(&self, r: StopReason) -> Flow {
        self.env.ctl.request(Some(self.vcpu.index), r.clone());
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

    /// The linear address the vCPU will execute next.
    fn linear_pc(&self) -> Option<u64> {
        let rip = self.vcpu.get("rip").ok()?;
        Some(rip + self.vcpu.get("cs_base").ok()?)
    }

    /// Resume past an instruction fault the previous run stopped on.
    #[cold]
    #[inline(never)]
    fn resume_parked(&mut self) -> Flow {
        let Some(p) = self.vcpu.parked.take() else {
            return Flow::Go;
        };
        let env = self.env;
        let still_armed = step_over::fault_of(env.debug, &step_over::synthetic_hit(env.debug, p));
        if self.linear_pc() == Some(p.pc()) && still_armed.is_some() {
            let resumed = if matches!(p, Parked::HwExec { .. }) && env.rf_resume {
                self.vcpu.set_rf_now()
            } else {
                let begun = step_over::begin(self.vcpu, env.mem, env.debug, env.patches, p);
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
    fn finish_step_over(&mut self) {
        if let Some(p) = self.stepping.take() {
            let env = self.env;
            let _ = step_over::end(self.vcpu, env.mem, env.debug, p);
            if self.linear_pc() == Some(p.pc()) {
                self.vcpu.parked = Some(p);
            }
        }
    }

    /// The hot path: one debug exit recorded. Everything rare (a step-over ending,
    /// the guest's own INT3, a fault to park on, a stop) is out of line, so this
    /// stays small enough to keep its state in registers.
    #[inline(always)]
    fn on_debug(&mut self, ev: DebugEvent) -> Flow {
        let t = self.hot.clock.ticks();
        let record = match self.stepping.take() {
            None => true,
            Some(p) => match self.end_step_over(p, &ev) {
                Ok(record) => record,
                Err(flow) => return flow,
            },
        };
        if record {
            let regs = if self.hot.regs {
                Some(self.vcpu.synced_regs())
            } else {
                None
            };
            self.cols.push(t, &ev, regs);
            self.seq += 1;
            if self.seq % PROGRESS_EVERY == 0 {
                self.publish();
            }
        }
        let parked = if self.hot.faults {
            self.env.faults.of(self.env.debug, &ev)
        } else {
            None
        };
        if ev.exception == u32::from(VECTOR_BP)
            || (record && (self.hot.stop_at == Some(ev.pc) || self.seq >= self.hot.max_events))
            || parked.is_some()
        {
            if let Some(flow) = self.after_event(&ev, record, parked) {
                return flow;
            }
        }
        if self.cols.len() >= self.hot.sink_rows {
            return self.hand_over(self.hot.sink_rows);
        }
        Flow::Go
    }

    /// The step over a fault ended with `ev`: re-arm, and decide whether `ev` is
    /// recorded (Err: the vCPU stops).
    #[cold]
    #[inline(never)]
    fn end_step_over(&mut self, p: Parked, ev: &DebugEvent) -> Result<bool, Flow> {
        let env = self.env;
        if let Err(e) = step_over::end(self.vcpu, env.mem, env.debug, p) {
            return Err(Flow::Stop(self.fail(e)));
        }
        self.refires = if step_over::refired(env.debug, p, ev) {
            self.refires + 1
        } else {
            0
        };
        if self.refires >= MAX_REFIRES {
            return Err(Flow::Stop(StopReason::NoProgress(ev.pc)));
        }
        Ok(step_over::records_after_step(env.debug, ev))
    }

    /// What follows an event other than a plain recorded one: the guest's own INT3
    /// goes back to the guest, a stop condition ends the vCPU (parked on its fault),
    /// a fault is stepped over. None: go on.
    #[cold]
    #[inline(never)]
    fn after_event(
        &mut self,
        ev: &DebugEvent,
        record: bool,
        parked: Option<Parked>,
    ) -> Option<Flow> {
        let env = self.env;
        if ev.exception == u32::from(VECTOR_BP) && parked.is_none() {
            // The guest's own INT3: deliver it to the guest as the hardware would.
            if let Err(e) = self
                .vcpu
                .apply_debug(Some(env.debug), KVM_GUESTDBG_INJECT_BP)
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
                if let Err(e) = step_over::begin(self.vcpu, env.mem, env.debug, env.patches, p) {
                    return Some(Flow::Stop(self.fail(e)));
                }
                self.stepping = Some(p);
            }
            None => {}
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn hand_over(&mut self, rows: usize) -> Flow {
        let chunk = self.cols.take(rows);
        match self.out.hand_over(chunk) {
            Ok(()) => Flow::Go,
            Err(e) => Flow::Stop(StopReason::error(e)),
        }
    }

    /// A handler's answer: the data to return, or why the vCPU stops (unhandled:
    /// this vCPU only; the handler failed: the whole trace).
    fn answer(&self, h: Handled, unhandled: impl FnOnce() -> StopReason) -> Result<Vec<u8>, Flow> {
        match h {
            Handled::Yes(d) => Ok(d),
            Handled::No => Err(Flow::Stop(unhandled())),
            Handled::Failed(e) => Err(Flow::Stop(self.fail(e))),
        }
    }

    #[cold]
    #[inline(never)]
    fn on_io_out(&mut self, port: u16, data: Vec<u8>, size: u8) -> Flow {
        match port {
            CONSOLE_PORT => {
                self.console.extend_from_slice(&data);
                self.env.devices.echo(&data);
                Flow::Go
            }
            EXIT_PORT => self.stop_all(StopReason::ExitPort(le_value(&data))),
            _ => {
                let devices = self.env.devices;
                if devices.io_out(port, &data, &mut self.console) {
                    return Flow::Go;
                }
                let h = match self
                    .env
                    .hooks
                    .io(self.vcpu.index, port, Some(&data), size as usize)
                {
                    Handled::No if devices.legacy_out(port, &data) => Handled::Yes(Vec::new()),
                    h => h,
                };
                match self.answer(h, || StopReason::Io {
                    port,
                    write: true,
                    data: data.clone(),
                }) {
                    Ok(_) => Flow::Go,
                    Err(f) => f,
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn on_io_in(&mut self, port: u16, size: u8) -> Flow {
        if port == CONSOLE_PORT {
            self.vcpu
                .complete_io_in(&vec![CONSOLE_PORT as u8; size as usize]);
            return Flow::Go;
        }
        let devices = self.env.devices;
        if let Some(d) = devices.io_in(port, size as usize) {
            self.vcpu.complete_io_in(&d);
            return Flow::Go;
        }
        let h = match self
            .env
            .hooks
            .io(self.vcpu.index, port, None, size as usize)
        {
            Handled::No => devices
                .legacy_in(port, size as usize)
                .map_or(Handled::No, Handled::Yes),
            h => h,
        };
        match self.answer(h, || StopReason::Io {
            port,
            write: false,
            data: Vec::new(),
        }) {
            Ok(d) => {
                self.vcpu.complete_io_in(&d);
                Flow::Go
            }
            Err(f) => f,
        }
    }

    #[cold]
    #[inline(never)]
    fn on_mmio_write(&mut self, addr: u64, data: Vec<u8>) -> Flow {
        let h = self
            .env
            .hooks
            .mmio(self.vcpu.index, addr, Some(&data), data.len());
        match self.answer(h, || StopReason::Mmio {
            addr,
            write: true,
            data: data.clone(),
        }) {
            Ok(_) => Flow::Go,
            Err(f) => f,
        }
    }

    #[cold]
    #[inline(never)]
    fn on_mmio_read(&mut self, addr: u64, len: u8) -> Flow {
        let h = self
            .env
            .hooks
            .mmio(self.vcpu.index, addr, None, len as usize);
        match self.answer(h, || StopReason::Mmio {
            addr,
            write: false,
            data: Vec::new(),
        }) {
            Ok(d) => {
                self.vcpu.complete_mmio_read(&d);
                Flow::Go
            }
            Err(f) => f,
        }
    }

    /// Shutdown, internal error, failed entry and anything unexpected.
    #[cold]
    #[inline(never)]
    fn on_terminal(&mut self, exit: Exit) -> Flow {
        let r = match exit {
            Exit::Shutdown => StopReason::Shutdown,
            Exit::InternalError { suberror, data } => StopReason::InternalError { suberror, data },
            Exit::FailEntry { reason, .. } => StopReason::FailEntry { reason },
            o => StopReason::Other(format!("{o:?}")),
        };
        if r.is_global() {
            self.stop_all(r)
        } else {
            Flow::Stop(r)
        }
    }
}

/// A little-endian value of up to 8 bytes.
pub fn le_value(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .enumerate()
        .fold(0u64, |v, (i, b)| v | (u64::from(*b) << (8 * i)))
}

/// The sink is unreachable (the coordinator is gone): a sink failure.
pub fn writer_gone() -> Error {
    Error::callback(Callback::Sink, "the sink writer is gone")
}
