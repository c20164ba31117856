//! `Progress`: live counters of a running trace, readable from any thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::runloop::Progress;

/// Events and exits of the trace this object is passed to (`trace(progress=p)`),
/// updated every few thousand events while it runs.
#[pyclass(frozen, name = "Progress", module = "kvmtrace._core")]
#[derive(Default)]
pub struct PyProgress {
    pub inner: Arc<Progress>,
}

#[pymethods]
impl PyProgress {
    #[new]
    fn new() -> Self {
        PyProgress::default()
    }

    #[getter]
    fn events(&self) -> u64 {
        self.inner.events.load(Ordering::Relaxed)
    }

    #[getter]
    fn exits(&self) -> u64 {
        self.inner.exits.load(Ordering::Relaxed)
    }

    fn __repr__(&self) -> String {
        format!("<Progress events={} exits={}>", self.events(), self.exits())
    }
}
