//! The tracing `KVM_RUN` loop. Plain Rust: Python is reached only through the
//! [`Hooks`] trait, implemented in `py/`.
//!
//! Every vCPU runs on its own native thread. The calling thread coordinates: it
//! passes finished chunks to the sink, polls for Ctrl-C through `Hooks::poll`,
//! enforces the timeout, and kicks vCPU threads out of `KVM_RUN` when the trace
//! must stop (see `kick.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::debug::{dr6, GuestDebug, KVM_GUESTDBG_INJECT_BP};
use crate::error::{Error, Result};
use crate::exits::{DebugEvent, Exit};
use crate::kick::Kicker;
use crate::kvm::memory::GuestMemory;
use crate::kvm::regs::Gp;
use crate::kvm::vcpu::{Parked, Vcpu};
use crate::kvm::vm::Vm;
use crate::recorder::{now_ns, Columns};

/// Port whose writes are the guest's console (QEMU's debugcon convention).
pub const CONSOLE_PORT: u16 = 0xe9;
/// Port whose write ends the run with the written value (QEMU's isa-debug-exit).
pub const EXIT_PORT: u16 = 0xf4;
const INT3: u8 = 0xcc;
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Debug, Default)]
pub struct TraceConfig {
    /// Stop after this many recorded events (per vCPU).
    pub max_events: Option<u64>,
    /// Stop after recording a debug event whose pc is this address.
    pub stop_at: Option<u64>,
    pub timeout: Option<Duration>,
    /// Registers recorded per event from `kvm_run->s.regs`.
    pub regs: Vec<Gp>,
    /// Hand rows to the sink in chunks of this many (None: keep everything in memory).
    pub sink_rows: Option<usize>,
}

/// Why a trace (or one vCPU of it) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    MaxEvents,
    StopAt,
    Hlt,
    ExitPort(u64),
    Timeout,
    Interrupted,
    Shutdown,
    InternalError {
        suberror: u32,
        data: Vec<u64>,
    },
    FailEntry {
        reason: u64,
    },
    Io {
        port: u16,
        write: bool,
        data: Vec<u8>,
    },
    Mmio {
        addr: u64,
        write: bool,
        data: Vec<u8>,
    },
    HandlerError(String),
    SinkError(String),
    KvmError(String),
    /// A vCPU thread could not start or panicked (a kvmtrace bug or resource exhaustion).
    ThreadError(String),
    /// The fault at this pc fired again although it was disarmed for the step over
    /// it: the host makes no progress, so the vCPU stops instead of looping forever.
    NoProgress(u64),
    Other(String),
}

impl StopReason {
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::MaxEvents => "max_events",
            StopReason::StopAt => "stop_at",
            StopReason::Hlt => "hlt",
            StopReason::ExitPort(_) => "exit_port",
            StopReason::Timeout => "timeout",
            StopReason::Interrupted => "interrupted",
            StopReason::Shutdown => "shutdown",
            StopReason::InternalError { .. } => "internal_error",
            StopReason::FailEntry { .. } => "fail_entry",
            StopReason::Io { .. } => "io",
            StopReason::Mmio { .. } => "mmio",
            StopReason::HandlerError(_) => "handler_error",
            StopReason::SinkError(_) => "sink_error",
            StopReason::KvmError(_) => "kvm_error",
            StopReason::ThreadError(_) => "thread_error",
            StopReason::NoProgress(_) => "no_progress",
            StopReason::Other(_) => "other",
        }
    }

    /// Ends the whole VM, not only the vCPU that saw it.
    fn is_global(&self) -> bool {
        !matches!(
            self,
            StopReason::MaxEvents
                | StopReason::StopAt
                | StopReason::Hlt
                | StopReason::Io { .. }
                | StopReason::Mmio { .. }
        )
    }
}

/// A Python-side handler's answer to a port or MMIO access.
pub enum Handled {
    /// No handler for this access: the trace stops with an `Io`/`Mmio` reason.
    No,
    /// Handled; for reads, the data to return to the guest.
    Yes(Vec<u8>),
    /// The handler failed (the Python exception is kept by the hooks).
    Failed(String),
}

/// What the loop needs from its caller. Worker threads call `io`/`mmio`; the
/// coordinating thread calls `poll` and `chunk`.
pub trait Hooks: Sync {
    fn io(&self, vcpu: usize, port: u16, write: Option<&[u8]>, size: usize) -> Handled;
    fn mmio(&self, vcpu: usize, addr: u64, write: Option<&[u8]>, size: usize) -> Handled;
    /// False when the run must stop now (Ctrl-C).
    fn poll(&self) -> bool;
    /// Write a full chunk to the sink; on failure give the rows back with the reason.
    fn chunk(&self, cols: Columns) -> std::result::Result<(), SinkFailure>;
}

/// A chunk the sink could not take, returned so no row is lost.
pub struct SinkFailure {
    pub rows: Box<Columns>,
    pub reason: String,
}

struct Control {
    stop: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    kicker: Kicker,
}

impl Control {
    fn request(&self, r: StopReason) {
        if let Ok(mut g) = self.reason.lock() {
            g.get_or_insert(r);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.kicker.kick_all();
    }

    fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|g| g.clone())
    }
}

pub struct VcpuResult {
    pub cols: Columns,
    pub console: Vec<u8>,
    pub stop: StopReason,
    pub events: u64,
    pub exits: u64,
}

pub struct TraceResult {
    pub cols: Columns,
    pub console: Vec<u8>,
    pub stop: StopReason,
    pub per_vcpu: Vec<StopReason>,
    pub events: u64,
    pub exits: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Rows a failing sink could not take, kept here.
    pub sink_error: Option<String>,
}

/// Trace every vCPU of `vm` under `debug` until each stops.
pub fn trace(
    vm: &mut Vm,
    debug: &GuestDebug,
    cfg: &TraceConfig,
    hooks: &dyn Hooks,
) -> Result<TraceResult> {
    vm.check_debug(debug)?;
    if !cfg.regs.is_empty() && vm.caps.sync_regs & kvm_bindings::KVM_SYNC_X86_REGS == 0 {
        return Err(Error::Unsupported {
            what: "KVM_CAP_SYNC_REGS (per-event registers)".into(),
        });
    }
    let originals = patch_int3(&vm.mem, &debug.sw_breakpoints)?;
    let n = vm.vcpus.len();
    let mut armed = Ok(());
    for v in &mut vm.vcpus {
        armed = v.apply_debug(Some(debug), debug.inject_flags());
        if armed.is_err() {
            break;
        }
        v.set_sync_regs(!cfg.regs.is_empty());
    }
    if let Err(e) = armed {
        restore_bytes(&vm.mem, &originals);
        for v in &mut vm.vcpus {
            let _ = v.apply_debug(None, 0);
        }
        return Err(e);
    }

    let ctl = Control {
        stop: AtomicBool::new(false),
        reason: Mutex::new(None),
        kicker: Kicker::new(n),
    };
    let start_ns = now_ns();
    let deadline = cfg.timeout.map(|t| Instant::now() + t);
    // Rendezvous: a vCPU thread hands over a full chunk only when the sink takes it,
    // so the rows not yet on disk (lost on SIGKILL) are at most the chunk being
    // written plus one full chunk per vCPU blocked in `send`.
    let (tx, rx) = sync_channel::<Columns>(0);
    let mut unflushed = Columns::new(cfg.regs.clone());
    let mut sink_error = None;
    let Vm { vcpus, mem, .. } = vm;
    let mem: &GuestMemory = mem;
    let results: Vec<std::thread::Result<VcpuResult>> = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(n);
        for v in vcpus.iter_mut() {
            let tx = tx.clone();
            let (ctl, originals) = (&ctl, &originals);
            let spawned = std::thread::Builder::new()
                .name(format!("kvmtrace-vcpu{}", v.index))
                .spawn_scoped(s, move || {
                    run_vcpu(v, mem, debug, cfg, ctl, hooks, originals, &tx)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads already started stop at once; the trace ends with the reason.
                    ctl.request(StopReason::ThreadError(format!(
                        "cannot start a vCPU thread: {e}"
                    )));
                    break;
                }
            }
        }
        drop(tx);
        loop {
            match rx.recv_timeout(POLL) {
                Ok(chunk) => {
                    if sink_error.is_some() {
                        unflushed.append(chunk);
                    } else if let Err(SinkFailure { rows, reason: why }) = hooks.chunk(chunk) {
                        unflushed.append(*rows);
                        ctl.request(StopReason::SinkError(why.clone()));
                        sink_error = Some(why);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !ctl.stop.load(Ordering::Relaxed) {
                if !hooks.poll() {
                    ctl.request(StopReason::Interrupted);
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    ctl.request(StopReason::Timeout);
                }
            } else {
                // Keep kicking: a thread may have been between its check and KVM_RUN.
                ctl.kicker.kick_all();
            }
        }
        handles.into_iter().map(|h| h.join()).collect()
    });
    let end_ns = now_ns();

    restore_bytes(mem, &originals);
    for v in vcpus.iter_mut() {
        let _ = v.apply_debug(None, 0);
        v.set_sync_regs(false);
        v.clear_immediate_exit();
    }

    let mut parts = Vec::with_capacity(n);
    let mut per_vcpu = Vec::with_capacity(n);
    let (mut console, mut events, mut exits) = (Vec::new(), 0, 0);
    for r in results {
        match r {
            Ok(r) => {
                parts.push(r.cols);
                per_vcpu.push(r.stop);
                console.extend(r.console);
                events += r.events;
                exits += r.exits;
            }
            Err(_) => {
                let r = StopReason::ThreadError(
                    "a vCPU thread panicked (a kvmtrace bug: please report it)".into(),
                );
                ctl.request(r.clone());
                per_vcpu.push(r);
            }
        }
    }
    let mut cols = if n == 1 {
        parts.pop().unwrap_or_default()
    } else {
        // In memory, seq is the global order; streamed rows keep per-vCPU seq (the
        // parts already on disk were numbered that way).
        Columns::merge(parts, cfg.sink_rows.is_none())
    };
    if !unflushed.is_empty() {
        unflushed.append(cols);
        cols = unflushed;
    }
    cols.shrink_to_fit();
    let stop = ctl.reason().unwrap_or_else(|| {
        per_vcpu
            .first()
            .cloned()
            .unwrap_or(StopReason::Other("no vCPU".into()))
    });
    Ok(TraceResult {
        cols,
        console,
        stop,
        per_vcpu,
        events,
        exits,
        start_ns,
        end_ns,
        sink_error,
    })
}

fn patch_int3(mem: &GuestMemory, addrs: &[u64]) -> Result<Vec<(u64, u8)>> {
    let mut orig = Vec::with_capacity(addrs.len());
    for &a in addrs {
        let b = mem.read_vec(a, 1)?[0];
        orig.push((a, b));
    }
    for &a in addrs {
        mem.write(a, &[INT3])?;
    }
    Ok(orig)
}

fn restore_bytes(mem: &GuestMemory, orig: &[(u64, u8)]) {
    for &(a, b) in orig {
        let _ = mem.write(a, &[b]);
    }
}

/// The instruction fault this event parks the vCPU on, if any.
fn fault_of(debug: &GuestDebug, ev: &DebugEvent) -> Option<Parked> {
    match ev.exception {
        3 if debug.sw_breakpoints.contains(&ev.pc) => Some(Parked::SwBreakpoint { addr: ev.pc }),
        1 if debug.general_detect && ev.dr6 & dr6::BD != 0 => {
            Some(Parked::GeneralDetect { pc: ev.pc })
        }
        1 => debug
            .exec_slot_at(ev.pc)
            .filter(|&slot| ev.dr6 & (1 << slot) != 0)
            .map(|slot| Parked::HwExec { slot, pc: ev.pc }),
        _ => None,
    }
}

/// While stepping over `p`, `ev` is the same fault again at the same pc: the
/// disarmed trigger fired anyway and the instruction did not run.
fn refired(debug: &GuestDebug, p: Parked, ev: &DebugEvent) -> bool {
    ev.pc == p.pc() && (ev.exception != 1 || ev.dr6 & dr6::BS == 0) && fault_of(debug, ev).is_some()
}

/// How many times in a row a fault may refire during its step-over before the vCPU
/// is stopped with `NoProgress`.
const MAX_REFIRES: u32 = 3;

/// DR6 reports a data (write/rw/io) breakpoint of this configuration.
fn data_cause(debug: &GuestDebug, dr6: u64) -> bool {
    let dr7 = debug.dr7();
    (0..4)
        .any(|i| dr6 & (1 << i) != 0 && (dr7 >> (16 + 4 * i)) & 3 != 0 && dr7 & (3 << (2 * i)) != 0)
}

/// The configuration to single-step once past `p` with its trigger disarmed.
fn step_config(debug: &GuestDebug, p: Parked) -> GuestDebug {
    let mut g = match p {
        Parked::HwExec { pc, .. } => debug.without_exec_at(pc),
        Parked::GeneralDetect { .. } => GuestDebug {
            general_detect: false,
            ..debug.clone()
        },
        Parked::SwBreakpoint { .. } => debug.clone(),
    };
    if let Parked::GeneralDetect { .. } = p {
        if let Some(raw) = g.raw.as_mut() {
            raw.dr7 &= !crate::debug::DR7_GD;
        }
    }
    g.single_step = true;
    g
}

fn begin_step(
    vcpu: &mut Vcpu,
    mem: &GuestMemory,
    debug: &GuestDebug,
    originals: &[(u64, u8)],
    p: Parked,
) -> Result<()> {
    if let Parked::SwBreakpoint { addr } = p {
        if let Some(&(_, b)) = originals.iter().find(|(a, _)| *a == addr) {
            mem.write(addr, &[b])?;
        }
    }
    vcpu.apply_debug(Some(&step_config(debug, p)), 0)
}

fn end_step(vcpu: &mut Vcpu, mem: &GuestMemory, debug: &GuestDebug, p: Parked) -> Result<()> {
    if let Parked::SwBreakpoint { addr } = p {
        mem.write(addr, &[INT3])?;
    }
    vcpu.apply_debug(Some(debug), 0)
}

/// A hook's answer to a port/MMIO access: the data to return, or why the vCPU stops
/// (unhandled: this vCPU only; the handler failed: the whole trace).
fn answer(
    h: Handled,
    ctl: &Control,
    unhandled: impl FnOnce() -> StopReason,
) -> Result<Vec<u8>, StopReason> {
    match h {
        Handled::Yes(d) => Ok(d),
        Handled::No => Err(unhandled()),
        Handled::Failed(m) => {
            let r = StopReason::HandlerError(m);
            ctl.request(r.clone());
            Err(r)
        }
    }
}

fn le_value(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .enumerate()
        .fold(0u64, |v, (i, b)| v | (u64::from(*b) << (8 * i)))
}

#[allow(clippy::too_many_arguments)]
fn run_vcpu(
    vcpu: &mut Vcpu,
    mem: &GuestMemory,
    debug: &GuestDebug,
    cfg: &TraceConfig,
    ctl: &Control,
    hooks: &dyn Hooks,
    originals: &[(u64, u8)],
    tx: &SyncSender<Columns>,
) -> VcpuResult {
    let _kick = ctl.kicker.register(vcpu.index, vcpu.immediate_exit_ptr());
    let index = vcpu.index;
    let vcpu_tag = index as u16;
    let want_regs = !cfg.regs.is_empty();
    // Up front: a whole chunk when streaming, else up to max_events (bounded).
    let cap = match (cfg.sink_rows, cfg.max_events) {
        (Some(rows), m) => (rows as u64).min(m.unwrap_or(u64::MAX)),
        (None, m) => m.unwrap_or(1 << 16).min(1 << 24),
    };
    let mut cols = Columns::with_capacity(cfg.regs.clone(), cap as usize);
    let (mut seq, mut exits) = (0u64, 0u64);
    let mut console = Vec::new();
    let mut stepping: Option<Parked> = None;
    let mut refires = 0u32;

    let fail = |e: Error| {
        let r = StopReason::KvmError(e.to_string());
        ctl.request(r.clone());
        r
    };

    // Resume past an instruction fault the previous run stopped on.
    if let Some(p) = vcpu.parked.take() {
        let at = vcpu
            .get("rip")
            .and_then(|rip| Ok(rip + vcpu.get("cs_base")?));
        if at.is_ok_and(|pc| pc == p.pc()) && fault_of(debug, &synthetic_hit(debug, p)).is_some() {
            match begin_step(vcpu, mem, debug, originals, p) {
                Ok(()) => stepping = Some(p),
                Err(e) => {
                    let stop = fail(e);
                    return VcpuResult {
                        cols,
                        console,
                        stop,
                        events: 0,
                        exits: 0,
                    };
                }
            }
        }
    }

    let stop = loop {
        if ctl.stop.load(Ordering::Relaxed) {
            break ctl.reason().unwrap_or(StopReason::Interrupted);
        }
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => break fail(e),
        };
        exits += 1;
        match exit {
            Exit::Debug(ev) => {
                let t = now_ns();
                let mut record = true;
                if let Some(p) = stepping.take() {
                    if let Err(e) = end_step(vcpu, mem, debug, p) {
                        break fail(e);
                    }
                    refires = if refired(debug, p, &ev) {
                        refires + 1
                    } else {
                        0
                    };
                    if refires >= MAX_REFIRES {
                        break StopReason::NoProgress(ev.pc);
                    }
                    // The step-over's own trap (BS) is internal unless the user single-steps;
                    // anything else (a data breakpoint, or a new fault because a host lost
                    // the trap) is a real event.
                    record = debug.single_step
                        || ev.exception != 1
                        || ev.dr6 & dr6::BS == 0
                        || data_cause(debug, ev.dr6);
                }
                if record {
                    let regs = if want_regs {
                        Some(vcpu.synced_regs())
                    } else {
                        None
                    };
                    cols.push(seq, vcpu_tag, t, &ev, regs);
                    seq += 1;
                }
                let parked = fault_of(debug, &ev);
                if ev.exception == 3 && parked.is_none() {
                    // The guest's own INT3: deliver it to the guest as the hardware would.
                    if let Err(e) = vcpu.apply_debug(Some(debug), KVM_GUESTDBG_INJECT_BP) {
                        break fail(e);
                    }
                }
                if record && cfg.stop_at == Some(ev.pc) {
                    vcpu.parked = parked;
                    break StopReason::StopAt;
                }
                if record && cfg.max_events.is_some_and(|m| seq >= m) {
                    vcpu.parked = parked;
                    break StopReason::MaxEvents;
                }
                if let Some(p) = parked {
                    if let Err(e) = begin_step(vcpu, mem, debug, originals, p) {
                        break fail(e);
                    }
                    stepping = Some(p);
                }
                if cfg.sink_rows.is_some_and(|rows| cols.len() >= rows)
                    && tx.send(cols.take(cfg.sink_rows.unwrap_or(0))).is_err()
                {
                    break StopReason::SinkError("the sink writer is gone".into());
                }
            }
            Exit::IoOut {
                port: CONSOLE_PORT,
                data,
                ..
            } => console.extend_from_slice(&data),
            Exit::IoOut {
                port: EXIT_PORT,
                data,
                ..
            } => {
                let r = StopReason::ExitPort(le_value(&data));
                ctl.request(r.clone());
                break r;
            }
            Exit::IoOut { port, data, size } => {
                let h = hooks.io(index, port, Some(&data), size as usize);
                if let Err(r) = answer(h, ctl, || StopReason::Io {
                    port,
                    write: true,
                    data: data.clone(),
                }) {
                    break r;
                }
            }
            Exit::IoIn {
                port: CONSOLE_PORT,
                size,
                ..
            } => vcpu.complete_io_in(&vec![0xe9; size as usize]),
            Exit::IoIn { port, size, .. } => {
                let h = hooks.io(index, port, None, size as usize);
                match answer(h, ctl, || StopReason::Io {
                    port,
                    write: false,
                    data: Vec::new(),
                }) {
                    Ok(d) => vcpu.complete_io_in(&d),
                    Err(r) => break r,
                }
            }
            Exit::MmioWrite { addr, data } => {
                let h = hooks.mmio(index, addr, Some(&data), data.len());
                if let Err(r) = answer(h, ctl, || StopReason::Mmio {
                    addr,
                    write: true,
                    data: data.clone(),
                }) {
                    break r;
                }
            }
            Exit::MmioRead { addr, len } => {
                let h = hooks.mmio(index, addr, None, len as usize);
                match answer(h, ctl, || StopReason::Mmio {
                    addr,
                    write: false,
                    data: Vec::new(),
                }) {
                    Ok(d) => vcpu.complete_mmio_read(&d),
                    Err(r) => break r,
                }
            }
            Exit::Hlt => break StopReason::Hlt,
            Exit::Interrupted => vcpu.clear_immediate_exit(),
            other => {
                let r = match other {
                    Exit::Shutdown => StopReason::Shutdown,
                    Exit::InternalError { suberror, data } => {
                        StopReason::InternalError { suberror, data }
                    }
                    Exit::FailEntry { reason, .. } => StopReason::FailEntry { reason },
                    o => StopReason::Other(format!("{o:?}")),
                };
                if r.is_global() {
                    ctl.request(r.clone());
                }
                break r;
            }
        }
    };
    // Stopped in the middle of a step-over: re-arm, and stay parked if the
    // instruction has not run yet.
    if let Some(p) = stepping {
        let _ = end_step(vcpu, mem, debug, p);
        let at = vcpu
            .get("rip")
            .and_then(|rip| Ok(rip + vcpu.get("cs_base")?));
        if at.is_ok_and(|pc| pc == p.pc()) {
            vcpu.parked = Some(p);
        }
    }
    vcpu.clear_immediate_exit();
    VcpuResult {
        cols,
        console,
        stop,
        events: seq,
        exits,
    }
}

/// A stand-in event for "this parked fault fires again under `debug`".
fn synthetic_hit(debug: &GuestDebug, p: Parked) -> DebugEvent {
    match p {
        Parked::SwBreakpoint { addr } => DebugEvent {
            exception: 3,
            pc: addr,
            ..Default::default()
        },
        Parked::GeneralDetect { pc } => DebugEvent {
            exception: 1,
            pc,
            dr6: dr6::BD,
            dr7: debug.dr7(),
        },
        Parked::HwExec { slot, pc } => DebugEvent {
            exception: 1,
            pc,
            dr6: 1 << slot,
            dr7: debug.dr7(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::{BpKind, HwBreakpoint};

    fn dbg() -> GuestDebug {
        GuestDebug {
            hw_breakpoints: vec![
                HwBreakpoint::new(0x8000, BpKind::Exec, 1).unwrap(),
                HwBreakpoint::new(0x1000, BpKind::Write, 4).unwrap(),
            ],
            sw_breakpoints: vec![0x9000],
            ..Default::default()
        }
    }

    #[test]
    fn faults_are_classified() {
        let d = dbg();
        let ev = |exception, pc, dr6| DebugEvent {
            exception,
            pc,
            dr6,
            dr7: d.dr7(),
        };
        assert_eq!(
            fault_of(&d, &ev(1, 0x8000, 0xffff0ff1)),
            Some(Parked::HwExec {
                slot: 0,
                pc: 0x8000
            })
        );
        assert_eq!(
            fault_of(&d, &ev(1, 0x8000, 0xffff4ff0)),
            None,
            "a step trap at the bp address is not the fault"
        );
        assert_eq!(
            fault_of(&d, &ev(3, 0x9000, 0)),
            Some(Parked::SwBreakpoint { addr: 0x9000 })
        );
        assert_eq!(
            fault_of(&d, &ev(3, 0x9001, 0)),
            None,
            "the guest's own int3"
        );
        assert_eq!(
            fault_of(&d, &ev(1, 0x8004, 0xffff0ff2)),
            None,
            "a data breakpoint is a trap"
        );
        let gd = GuestDebug {
            general_detect: true,
            ..Default::default()
        };
        assert_eq!(
            fault_of(&gd, &ev(1, 0x8010, 0xffff2ff0)),
            Some(Parked::GeneralDetect { pc: 0x8010 })
        );
    }

    #[test]
    fn data_causes() {
        let d = dbg();
        assert!(data_cause(&d, 0xffff0ff2));
        assert!(!data_cause(&d, 0xffff0ff1));
        assert!(!data_cause(&d, 0xffff4ff0));
    }

    #[test]
    fn step_configs_disarm_only_the_trigger() {
        let d = dbg();
        let s = step_config(
            &d,
            Parked::HwExec {
                slot: 0,
                pc: 0x8000,
            },
        );
        assert!(s.single_step);
        assert_eq!(s.exec_slot_at(0x8000), None);
        assert!(
            data_cause(&s, 0xffff0ff2),
            "the data breakpoint stays armed"
        );
        let gd = GuestDebug {
            general_detect: true,
            ..Default::default()
        };
        let s = step_config(&gd, Parked::GeneralDetect { pc: 0 });
        assert_eq!(s.dr7() & crate::debug::DR7_GD, 0);
        for p in [
            Parked::HwExec {
                slot: 0,
                pc: 0x8000,
            },
            Parked::SwBreakpoint { addr: 0x9000 },
        ] {
            assert!(fault_of(&d, &synthetic_hit(&d, p)).is_some());
        }
    }

    #[test]
    fn refire_is_the_same_fault_without_progress() {
        let d = dbg();
        let p = Parked::HwExec {
            slot: 0,
            pc: 0x8000,
        };
        let ev = |pc, dr6| DebugEvent {
            exception: 1,
            pc,
            dr6,
            dr7: d.dr7(),
        };
        assert!(
            refired(&d, p, &ev(0x8000, 0xffff0ff1)),
            "B0 again at the same pc, no BS"
        );
        assert!(
            !refired(&d, p, &ev(0x8000, 0xffff4ff0)),
            "a step trap back at the same pc is progress (a loop)"
        );
        assert!(
            !refired(&d, p, &ev(0x8002, 0xffff4ff0)),
            "the step completed"
        );
        let s = Parked::SwBreakpoint { addr: 0x9000 };
        let int3 = DebugEvent {
            exception: 3,
            pc: 0x9000,
            ..Default::default()
        };
        assert!(refired(&d, s, &int3));
    }

    #[test]
    fn exit_port_value() {
        assert_eq!(le_value(&[0x2a]), 0x2a);
        assert_eq!(le_value(&[0x01, 0x02]), 0x0201);
    }
}
