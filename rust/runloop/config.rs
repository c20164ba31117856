//! What a trace records and when it stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::kvm::regs::Gp;

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
    /// Live counters a caller can read while the trace runs (a progress display).
    pub progress: Option<Arc<Progress>>,
}

impl TraceConfig {
    /// Rows a vCPU reserves up front: a whole chunk when streaming, else up to
    /// `max_events` (bounded).
    pub fn initial_capacity(&self) -> usize {
        let cap = match (self.sink_rows, self.max_events) {
            (Some(rows), m) => (rows as u64).min(m.unwrap_or(u64::MAX)),
            (None, m) => m.unwrap_or(1 << 16).min(1 << 24),
        };
        cap as usize
    }
}

/// Events and exits so far, published by the vCPU loops every few thousand events.
#[derive(Debug, Default)]
pub struct Progress {
    pub events: AtomicU64,
    pub exits: AtomicU64,
}

impl Progress {
    pub fn add(&self, events: u64, exits: u64) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.exits.fetch_add(exits, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.events.store(0, Ordering::Relaxed);
        self.exits.store(0, Ordering::Relaxed);
    }
}
