//! Python bindings: every `#[pyclass]`, the exception hierarchy and the one error
//! mapping. The only part of the crate that uses pyo3.

pub mod args;
pub mod boot;
pub mod columns;
pub mod debug;
pub mod detach;
pub mod error;
pub mod exceptions;
pub mod exit;
pub mod facts;
pub mod hooks;
pub mod machine;
pub mod machine_state;
pub mod progress;
pub mod run;
pub mod trace;
pub mod trace_args;
pub mod trace_meta;
pub mod window;
