//! The tracing `KVM_RUN` loop: orchestration. Plain Rust: Python is reached only
//! through the [`Hooks`] trait, implemented in `py/`.
//!
//! Every vCPU runs its [`vcpu_loop::VcpuLoop`] on a native thread of its own (one
//! thread for a one-vCPU trace too), and the calling thread coordinates: it passes
//! finished chunks to the sink, polls for Ctrl-C through `Hooks::poll`, enforces
//! the timeout, and kicks vCPU threads out of `KVM_RUN` when the trace must stop
//! (see `kick.rs`). Per-vCPU rows are merged by host time when all have stopped.

pub mod config;
pub mod hits;
pub mod hooks;
mod port_io;
mod resume;
pub mod step_over;
pub mod stop;
#[cfg(test)]
mod tests;
pub mod vcpu_loop;
pub mod window;

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{now_ns, TraceClock};
use crate::debug::GuestDebug;
use crate::error::{Error, Result};
use crate::kick::ThreadUsage;
use crate::kvm::vm::Vm;
use crate::recorder::{Columns, Ring};

pub use config::{Progress, TraceConfig};
pub use hooks::{Handled, Hooks};
pub use port_io::{CONSOLE_PORT, EXIT_PORT};
pub use stop::{Stop, StopReason};

use hits::Hits;
use step_over::Int3Patches;
use stop::Control;
use vcpu_loop::{Env, Outbox, VcpuLoop, VcpuResult};
use window::{DebugSet, WindowPlan};

/// How often the coordinator polls for signals and the timeout.
const POLL: Duration = Duration::from_millis(20);

pub struct TraceResult {
    pub cols: Columns,
    pub console: Vec<u8>,
    pub stop: Stop,
    pub per_vcpu: Vec<StopReason>,
    pub events: u64,
    pub exits: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// CPU time and page faults of the vCPU loops, summed over vCPUs.
    pub usage: ThreadUsage,
    /// KVM ioctls the vCPU loops issued.
    pub ioctls: u64,
    /// Events recorded but not kept (a ring's overwritten rows), over all vCPUs.
    pub dropped: u64,
    /// Hits per breakpoint and windows opened, over all vCPUs.
    pub hits: Hits,
}

/// Trace every vCPU of `vm` under `debug` until each stops.
pub fn trace(
    vm: &mut Vm,
    debug: &GuestDebug,
    cfg: &TraceConfig,
    hooks: &dyn Hooks,
) -> Result<TraceResult> {
    cfg.validate()?;
    let plain = DebugSet::new(debug.clone());
    let plan = match &cfg.window {
        Some(spec) => Some(WindowPlan::new(spec.clone(), debug)?),
        None => None,
    };
    // Only worth a probe (and sync regs) when a user instruction breakpoint can be
    // hit (a window's trigger is disarmed, not stepped over).
    let rf_resume = plain.faults.has_exec() && crate::kvm::probe::rf_resume();
    let first = plan.as_ref().map_or(&plain, |p| &p.outside);
    if let Some(p) = &plan {
        vm.check_debug(&p.inside.debug)?;
    }
    let patches = arm(vm, &first.debug, cfg, rf_resume)?;
    let ctl = Control::new(vm.vcpus.len());
    let start_ns = now_ns();
    let clock = TraceClock::start();
    let (results, unflushed) = {
        let Vm {
            vcpus,
            mem,
            devices,
            ..
        } = &mut *vm;
        let env = Env {
            mem,
            devices,
            plain: &plain,
            window: plan.as_ref(),
            cfg,
            ctl: &ctl,
            hooks,
            patches: &patches,
            clock,
            rf_resume,
        };
        run_threads(vcpus, &env)
    };
    let end_ns = now_ns();
    disarm(vm, &patches);
    let mut r = assemble(results, &ctl, cfg, unflushed, &clock);
    (r.start_ns, r.end_ns) = (start_ns, end_ns);
    r.hits.trigger = plan.as_ref().map(|p| (p.slot, p.spec.start));
    Ok(r)
}

/// Validate, patch INT3s and program every vCPU.
fn arm(vm: &mut Vm, debug: &GuestDebug, cfg: &TraceConfig, rf_resume: bool) -> Result<Int3Patches> {
    vm.check_debug(debug)?;
    if !cfg.regs.is_empty() && vm.caps.sync_regs & kvm_bindings::KVM_SYNC_X86_REGS == 0 {
        return Err(Error::Unsupported {
            what: "KVM_CAP_SYNC_REGS (per-event registers)".into(),
        });
    }
    let patches = Int3Patches::apply(&vm.mem, &debug.sw_breakpoints)?;
    for i in 0..vm.vcpus.len() {
        let v = &mut vm.vcpus[i];
        if let Err(e) = v.apply_debug(Some(debug), debug.inject_flags()) {
            disarm(vm, &patches);
            return Err(e);
        }
        // Sync regs: per-event registers, or RF set through the dirty bit.
        v.set_sync_regs(!cfg.regs.is_empty() || rf_resume);
    }
    Ok(patches)
}

/// Undo `arm`: original bytes back, guest debugging and sync regs off.
fn disarm(vm: &mut Vm, patches: &Int3Patches) {
    patches.restore(&vm.mem);
    for v in &mut vm.vcpus {
        let _ = v.apply_debug(None, 0);
        v.set_sync_regs(false);
        v.clear_immediate_exit();
    }
}

/// Chunks go to the coordinator through a rendezvous channel: a vCPU thread hands
/// over a chunk only when the sink takes it, so the rows not yet on disk (lost on
/// SIGKILL) are at most the chunk being written plus one per blocked vCPU.
struct ChannelOutbox<'a>(&'a SyncSender<Columns>);

impl Outbox for ChannelOutbox<'_> {
    fn hand_over(&mut self, rows: Columns) -> Result<()> {
        self.0.send(rows).map_err(|_| vcpu_loop::writer_gone())
    }
}

type Joined = Vec<std::thread::Result<VcpuResult>>;

fn run_threads(vcpus: &mut [crate::kvm::vcpu::Vcpu], env: &Env<'_>) -> (Joined, Vec<Arc<Columns>>) {
    let (tx, rx) = sync_channel::<Columns>(0);
    let mut coord = Coordinator::new(env);
    let cfg = env.cfg;
    let results = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(vcpus.len());
        for v in vcpus.iter_mut() {
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("kvmtrace-vcpu{}", v.index))
                .spawn_scoped(s, move || {
                    if !env.hooks.has_vcpu_callbacks() {
                        own_file_table();
                    }
                    let (index, regs) = (v.index as u16, cfg.regs.clone());
                    let windowed = env.window.is_some();
                    let out = ChannelOutbox(&tx);
                    match cfg.ring {
                        Some(n) => {
                            VcpuLoop::new(env, v, out, Ring::new(index, regs, n, windowed)).run()
                        }
                        None => {
                            let cols = Columns::for_vcpu_with(
                                index,
                                regs,
                                cfg.initial_capacity(),
                                windowed,
                            );
                            VcpuLoop::new(env, v, out, cols).run()
                        }
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads already started stop at once; the trace ends with the reason.
                    env.ctl.request(
                        None,
                        StopReason::error(Error::Thread(format!(
                            "cannot start a vCPU thread: {e}"
                        ))),
                    );
                    break;
                }
            }
        }
        drop(tx);
        coord.drain(&rx);
        handles.into_iter().map(|h| h.join()).collect()
    });
    (results, coord.unflushed)
}

/// The calling thread's duties while vCPUs run: the sink, signals, the timeout.
struct Coordinator<'a> {
    env: &'a Env<'a>,
    deadline: Option<Instant>,
    /// Rows the sink did not take, in order (shared with the chunk objects the sink saw).
    unflushed: Vec<Arc<Columns>>,
    sink_failed: bool,
}

impl<'a> Coordinator<'a> {
    fn new(env: &'a Env<'a>) -> Self {
        Coordinator {
            env,
            deadline: env.cfg.timeout.map(|t| Instant::now() + t),
            unflushed: Vec::new(),
            sink_failed: false,
        }
    }

    fn drain(&mut self, rx: &Receiver<Columns>) {
        loop {
            match rx.recv_timeout(POLL) {
                Ok(chunk) => self.deliver(chunk),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
        }
    }

    /// Hand one chunk to the sink; after a failure every later chunk is kept.
    fn deliver(&mut self, mut chunk: Columns) {
        chunk.convert_time(&self.env.clock);
        let chunk = Arc::new(chunk);
        if !self.sink_failed {
            match self.env.hooks.chunk(&chunk) {
                Ok(()) => return,
                Err(e) => {
                    self.sink_failed = true;
                    self.env.ctl.request(None, StopReason::error(e));
                }
            }
        }
        self.unflushed.push(chunk);
    }

    fn tick(&mut self) {
        let ctl = self.env.ctl;
        if ctl.stopping() {
            // Keep kicking: a thread may have been between its check and KVM_RUN.
            ctl.kicker.kick_all();
        } else if let Err(e) = self.env.hooks.poll() {
            ctl.request(None, StopReason::error(e));
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            ctl.request(None, StopReason::Timeout);
        }
    }
}

/// Give the calling (vCPU) thread its own copy of the file descriptor table. A
/// Python process has other threads (numpy's BLAS pool starts at import), and while
/// threads share a table every ioctl takes and drops a reference on the file
/// (fget/fput); with a private table `KVM_RUN` takes the kernel's light path, as a
/// single-threaded C loop does. Only for threads that run no Python callback: an
/// fd a callback opened here would exist in this thread's table alone. Best effort:
/// the trace is the same without it, only slower.
fn own_file_table() {
    // SAFETY: unshare(CLONE_FILES) only replaces this thread's fd table with a
    // copy; the KVM fds stay valid (the copy refers to the same open files).
    unsafe { libc::unshare(libc::CLONE_FILES) };
}

/// One result from the per-vCPU parts: rows merged by host time, stops, counts.
fn assemble(
    results: Joined,
    ctl: &Control,
    cfg: &TraceConfig,
    unflushed: Vec<Arc<Columns>>,
    clock: &TraceClock,
) -> TraceResult {
    let n = results.len();
    let mut parts = Vec::with_capacity(n);
    let mut per_vcpu = Vec::with_capacity(n);
    let (mut console, mut events, mut exits) = (Vec::new(), 0, 0);
    let (mut usage, mut ioctls, mut dropped) = (ThreadUsage::default(), 0, 0);
    let mut hits: Option<Hits> = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(mut r) => {
                r.cols.convert_time(clock);
                parts.push(r.cols);
                per_vcpu.push(r.stop);
                console.extend(r.console);
                events += r.events;
                exits += r.exits;
                usage = usage.plus(r.usage);
                ioctls += r.ioctls;
                dropped += r.dropped;
                match &mut hits {
                    Some(h) => h.add(&r.hits),
                    None => hits = Some(r.hits),
                }
            }
            Err(_) => {
                let r = StopReason::error(Error::Thread(
                    "a vCPU thread panicked (a kvmtrace bug: please report it)".into(),
                ));
                ctl.request(Some(i), r.clone());
                per_vcpu.push(r);
            }
        }
    }
    let mut cols = if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        // In memory, seq is the global order; streamed rows keep per-vCPU seq (the
        // parts already on disk were numbered that way), and so do a ring's rows
        // (each vCPU's seq is the event's place in that vCPU's run).
        Columns::merge(parts, cfg.sink_rows.is_none() && cfg.ring.is_none())
    };
    if !unflushed.is_empty() {
        let mut all: Vec<&Columns> = unflushed.iter().map(|c| &**c).collect();
        all.push(&cols);
        cols = Columns::concat(&all, cfg.regs.clone());
    }
    cols.shrink_to_fit();
    let stop = ctl.stop().unwrap_or_else(|| Stop {
        vcpu: Some(0),
        reason: per_vcpu
            .first()
            .cloned()
            .unwrap_or(StopReason::Other("no vCPU".into())),
    });
    TraceResult {
        cols,
        console,
        stop,
        per_vcpu,
        events,
        exits,
        start_ns: 0,
        end_ns: 0,
        usage,
        ioctls,
        dropped,
        hits: hits.unwrap_or_default(),
    }
}
