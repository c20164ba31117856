//! What a trace records and when it stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kvm::regs::Gp;

use super::window::WindowSpec;

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
    /// Single-step only in windows opened at an address (see `window.rs`).
    pub window: Option<WindowSpec>,
    /// Keep only the last N events per vCPU (the flight recorder).
    pub ring: Option<usize>,
}

impl TraceConfig {
    /// Check the combination; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        match self.ring {
            Some(0) => Err(Error::invalid("ring", "must be at least 1 event")),
            Some(_) if self.sink_rows.is_some() => Err(Error::invalid(
                "ring",
                "a ring keeps the last events in memory and cannot stream to a sink; \
                 use ring_sink= to write it out when the run ends with a fault",
            )),
            _ => Ok(()),
        }
    }

    /// Rows a vCPU reserves up front: a whole chunk when streaming, else up to
    /// `max_events` (bounded).
    pub fn initial_capacity(&self) -> usize {
        if let Some(n) = self.ring {
            return n;
        }
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
