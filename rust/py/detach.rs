//! Running the engine with the GIL released: the one place that calls `py.detach`.
//!
//! Python's signal handlers (Ctrl-C) run only when a thread holding the GIL checks
//! for them, so long engine work checks through [`Signals::check`], which attaches
//! for the moment of the check. What a handler raises ends the work as
//! `Error::Interrupted` and comes out of [`detached`] as that exception itself.

use pyo3::prelude::*;

use crate::error::{Error, Result};

/// A signal check usable while the GIL is released.
#[derive(Clone, Copy, Default)]
pub struct Signals;

impl Signals {
    /// Run pending Python signal handlers; Err when one raised (KeyboardInterrupt).
    pub fn check(&self) -> Result<()> {
        Python::attach(|py| py.check_signals()).map_err(|e| Error::Interrupted {
            cause: Some(Box::new(e)),
        })
    }
}

/// Run `f` with the GIL released; its error maps through the one `From<Error> for PyErr`.
pub fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce(Signals) -> Result<T> + Send,
    T: Send,
{
    py.detach(|| f(Signals)).map_err(PyErr::from)
}
