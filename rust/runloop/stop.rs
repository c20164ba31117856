//! Why a trace (or one vCPU of it) ended, and the shared stop request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Callback, Error};
use crate::kick::Kicker;

/// Why a trace (or one vCPU of it) ended.
#[derive(Clone, Debug)]
pub enum StopReason {
    MaxEvents,
    StopAt,
    Hlt,
    ExitPort(u64),
    Timeout,
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
    /// The fault at this pc fired again although it was disarmed for the step over
    /// it: the host makes no progress, so the vCPU stops instead of looping forever.
    NoProgress(u64),
    Other(String),
    /// The run ended with an error: an ioctl, a callback, the sink, a vCPU thread, or
    /// an interrupt. Shared (vCPUs that stop because of it report the same error).
    Error(Arc<Error>),
}

/// The stops that are guest or host faults (a crash to investigate): what
/// `raise_on_fault` raises for, and when a ring is written to `ring_sink`.
pub const FAULT_NAMES: [&str; 3] = ["shutdown", "internal_error", "fail_entry"];

/// Every stop-reason name, in documentation order: the one list the Python
/// `StopReason` enum is made from. `unknown` is for stored traces without run facts.
pub const NAMES: [&str; 18] = [
    "max_events",
    "stop_at",
    "hlt",
    "exit_port",
    "timeout",
    "interrupted",
    "shutdown",
    "internal_error",
    "fail_entry",
    "io",
    "mmio",
    "handler_error",
    "sink_error",
    "kvm_error",
    "thread_error",
    "no_progress",
    "other",
    "unknown",
];

impl StopReason {
    pub fn error(e: Error) -> Self {
        StopReason::Error(Arc::new(e))
    }

    pub fn name(&self) -> &'static str {
        match self {
            StopReason::MaxEvents => "max_events",
            StopReason::StopAt => "stop_at",
            StopReason::Hlt => "hlt",
            StopReason::ExitPort(_) => "exit_port",
            StopReason::Timeout => "timeout",
            StopReason::Shutdown => "shutdown",
            StopReason::InternalError { .. } => "internal_error",
            StopReason::FailEntry { .. } => "fail_entry",
            StopReason::Io { .. } => "io",
            StopReason::Mmio { .. } => "mmio",
            StopReason::NoProgress(_) => "no_progress",
            StopReason::Other(_) => "other",
            StopReason::Error(e) => match **e {
                Error::Interrupted { .. } => "interrupted",
                Error::Callback {
                    what: Callback::Sink,
                    ..
                } => "sink_error",
                Error::Callback { .. } => "handler_error",
                Error::Thread(_) => "thread_error",
                _ => "kvm_error",
            },
        }
    }

    /// A guest or host fault (one of `FAULT_NAMES`).
    pub fn is_fault(&self) -> bool {
        FAULT_NAMES.contains(&self.name())
    }

    /// Ends the whole VM, not only the vCPU that saw it.
    pub fn is_global(&self) -> bool {
        !matches!(
            self,
            StopReason::MaxEvents
                | StopReason::StopAt
                | StopReason::Hlt
                | StopReason::Io { .. }
                | StopReason::Mmio { .. }
                | StopReason::NoProgress(_)
        )
    }

    /// An interrupt with no cause attached (plain Rust callers).
    pub fn interrupted() -> Self {
        StopReason::error(Error::Interrupted { cause: None })
    }
}

/// How a trace ended: the reason and, when one vCPU caused it, which.
#[derive(Clone, Debug)]
pub struct Stop {
    pub vcpu: Option<usize>,
    pub reason: StopReason,
}

/// The stop request shared by the coordinator and every vCPU loop.
pub struct Control {
    stop: AtomicBool,
    reason: Mutex<Option<Stop>>,
    pub kicker: Kicker,
}

impl Control {
    pub fn new(vcpus: usize) -> Self {
        Control {
            stop: AtomicBool::new(false),
            reason: Mutex::new(None),
            kicker: Kicker::new(vcpus),
        }
    }

    /// Stop every vCPU; the first request's reason wins.
    pub fn request(&self, vcpu: Option<usize>, reason: StopReason) {
        if let Ok(mut g) = self.reason.lock() {
            g.get_or_insert(Stop { vcpu, reason });
        }
        self.stop.store(true, Ordering::SeqCst);
        self.kicker.kick_all();
    }

    #[inline(always)]
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn stop(&self) -> Option<Stop> {
        self.reason.lock().ok().and_then(|g| g.clone())
    }

    /// The reason a vCPU that saw the stop request reports.
    pub fn reason_or_interrupted(&self) -> StopReason {
        self.stop()
            .map_or_else(StopReason::interrupted, |s| s.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_listed() {
        let reasons = [
            StopReason::MaxEvents,
            StopReason::StopAt,
            StopReason::Hlt,
            StopReason::ExitPort(0),
            StopReason::Timeout,
            StopReason::Shutdown,
            StopReason::InternalError {
                suberror: 1,
                data: vec![],
            },
            StopReason::FailEntry { reason: 0 },
            StopReason::Io {
                port: 0,
                write: true,
                data: vec![],
            },
            StopReason::Mmio {
                addr: 0,
                write: true,
                data: vec![],
            },
            StopReason::NoProgress(0),
            StopReason::Other(String::new()),
            StopReason::interrupted(),
            StopReason::error(Error::callback(Callback::Sink, "disk full")),
            StopReason::error(Error::callback(Callback::IoHandler, "boom")),
            StopReason::error(Error::Thread("x".into())),
            StopReason::error(Error::Kvm {
                op: "KVM_RUN",
                source: kvm_ioctls::Error::new(libc::EFAULT),
            }),
        ];
        for r in &reasons {
            assert!(NAMES.contains(&r.name()), "{}", r.name());
        }
        let names: std::collections::HashSet<_> = reasons.iter().map(StopReason::name).collect();
        assert_eq!(
            names.len(),
            NAMES.len() - 1,
            "all but `unknown` come from the engine"
        );
    }

    #[test]
    fn first_request_wins() {
        let c = Control::new(1);
        c.request(Some(0), StopReason::Shutdown);
        c.request(None, StopReason::Timeout);
        let s = c.stop().unwrap();
        assert_eq!((s.vcpu, s.reason.name()), (Some(0), "shutdown"));
        assert!(c.stopping());
    }
}
