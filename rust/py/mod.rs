//! Python bindings: every `#[pyclass]`, the exception hierarchy and the one error mapping.

pub mod args;
pub mod debug;
pub mod error;
pub mod exceptions;
pub mod machine;
pub mod trace;
