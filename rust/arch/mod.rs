//! x86 debug architecture facts: the one definition of every DR6/DR7 bit, field
//! encoding and exception vector kvmtrace uses. Rust code uses these constants;
//! Python gets them through `_core` (`py/facts.rs`), never as a second copy.
//!
//! Sources: Intel SDM Vol. 3B §18.2 (DR6, DR7), AMD APM Vol. 2 §13.1.1, SDM Vol. 3A
//! Table 6-1 (vectors).

pub mod dr6;
pub mod dr7;
pub mod rflags;

/// `#DB`, the debug exception.
pub const VECTOR_DB: u8 = 1;
/// `#BP`, the breakpoint exception (INT3).
pub const VECTOR_BP: u8 = 3;
/// `#UD`, invalid opcode.
pub const VECTOR_UD: u8 = 6;
/// The INT3 opcode, patched in for software breakpoints.
pub const INT3: u8 = 0xcc;
