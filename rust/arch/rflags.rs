//! RFLAGS bits the debug machinery touches (SDM Vol. 1 §3.4.3, Vol. 3A §2.3).

/// Trap flag: single-step.
pub const TF: u64 = 1 << 8;
/// Interrupt enable.
pub const IF: u64 = 1 << 9;
/// I/O privilege level (bits 12-13).
pub const IOPL_MASK: u64 = 3 << 12;
/// Resume flag: the instruction at the resume address raises no instruction-breakpoint
/// #DB (SDM §18.3.1.1); cleared when that instruction completes.
pub const RF: u64 = 1 << 16;
/// Bit 1 always reads 1.
pub const FIXED_1: u64 = 1 << 1;
