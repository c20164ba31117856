//! What the run loop needs from its caller: port/MMIO answers, a signal check and a
//! sink. Implemented in `py/hooks.rs`; the loop itself owns no Python.

use std::sync::Arc;

use crate::error::Result;
use crate::recorder::Columns;

/// A callback's answer to a port or MMIO access.
pub enum Handled {
    /// No handler for this access: the vCPU stops with an `Io`/`Mmio` reason.
    No,
    /// Handled; for reads, the data to return to the guest.
    Yes(Vec<u8>),
    /// The handler failed (an `Error::Callback` or `Error::Interrupted`).
    Failed(crate::error::Error),
}

/// vCPU threads call `io`/`mmio`; the coordinating thread calls `poll` and `chunk`.
pub trait Hooks: Sync {
    fn io(&self, vcpu: usize, port: u16, write: Option<&[u8]>, size: usize) -> Handled;
    fn mmio(&self, vcpu: usize, addr: u64, write: Option<&[u8]>, size: usize) -> Handled;
    /// Err when the run must stop now (Ctrl-C: `Error::Interrupted`).
    fn poll(&self) -> Result<()>;
    /// Hand one full chunk to the sink. On failure the caller keeps `rows` (shared,
    /// so nothing is copied and nothing is lost).
    fn chunk(&self, rows: &Arc<Columns>) -> Result<()>;
    /// Port or MMIO callbacks exist: they run on the vCPU threads.
    fn has_vcpu_callbacks(&self) -> bool;
}
