//! QEMU's isa-debug-exit device at port 0xF4: a write ends the run. The value
//! written is `trace.exit_code`; QEMU's process exit status for it is
//! `(value << 1) | 1`, which `kvmtrace boot` mirrors.

pub const PORT: u16 = 0xf4;

/// The exit status QEMU gives for a write of `value` to isa-debug-exit.
pub fn qemu_status(value: u64) -> i32 {
    (((value & 0x7f) << 1) | 1) as i32
}
