//! kvmtrace's Rust core. This file only wires the Python module.
//!
//! The engine: `arch/` (x86 debug facts), `debug/` (the guest-debug model), `kvm/`
//! (VM, vCPU, memory, registers), `exits/` (decoding), `recorder/` (columns, the
//! ring), `runloop/` (the KVM_RUN loop, windows), `kick.rs`, `clock.rs`; `boot/`
//! and `devices/` for real kernels. `py/` holds the bindings. See
//! docs/ARCHITECTURE.md.

pub mod arch;
pub mod boot;
pub mod clock;
pub mod debug;
pub mod devices;
pub mod error;
pub mod exits;
pub mod kick;
pub mod kvm;
pub mod py;
pub mod recorder;
pub mod runloop;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    use super::*;

    #[pymodule_export]
    use crate::py::debug::PyGuestDebug;
    #[pymodule_export]
    use crate::py::debug::PyHwBreakpoint;
    #[pymodule_export]
    use crate::py::exit::PyExit;
    #[pymodule_export]
    use crate::py::machine::PyMachine;
    #[pymodule_export]
    use crate::py::progress::PyProgress;
    #[pymodule_export]
    use crate::py::trace::PyTrace;
    #[pymodule_export]
    use crate::py::window::PyWindow;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "build_profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        )?;
        m.add(
            "FIXED_BYTES_PER_EVENT",
            crate::recorder::FIXED_BYTES_PER_EVENT,
        )?;
        m.add("CONSOLE_PORT", crate::runloop::CONSOLE_PORT)?;
        m.add("EXIT_PORT", crate::runloop::EXIT_PORT)?;
        py::facts::register(m)?;
        py::boot::register(m)?;
        py::exceptions::register(m)
    }
}
