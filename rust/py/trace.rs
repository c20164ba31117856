//! `Trace`: recorded columns plus how the run ended. Columns are exposed as numpy
//! arrays that borrow the Rust vectors (no copy) and are read-only from the moment
//! they are created: the array's base object is the Trace, which is frozen, so the
//! memory never moves or changes.

use std::sync::Arc;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::kick::ThreadUsage;
use crate::py::columns::{columns_from_numpy, view, Materialized};
use crate::py::debug::PyGuestDebug;
use crate::py::trace_meta::TraceMeta;
use crate::py::window::PyWindow;
use crate::recorder::Columns;

#[pyclass(frozen, name = "Trace", module = "kvmtrace._core")]
pub struct PyTrace {
    pub cols: Arc<Columns>,
    pub meta: TraceMeta,
    pub derived: Materialized,
}

#[pymethods]
impl PyTrace {
    fn __len__(&self) -> usize {
        self.cols.len()
    }

    #[getter]
    fn seq<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let t = slf.get();
        view(slf, t.derived.seq(&t.cols))
    }
    #[getter]
    fn vcpu<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u16>>> {
        let t = slf.get();
        view(slf, t.derived.vcpu(&t.cols))
    }
    #[getter]
    fn time_ns<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        view(slf, &slf.get().cols.time_ns)
    }
    #[getter]
    fn exception<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u8>>> {
        view(slf, &slf.get().cols.exception)
    }
    #[getter]
    fn pc<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        view(slf, &slf.get().cols.pc)
    }
    #[getter]
    fn dr6<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        view(slf, &slf.get().cols.dr6)
    }
    #[getter]
    fn dr7<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let t = slf.get();
        view(slf, t.derived.dr7(&t.cols))
    }
    /// Each row's window index (per vCPU, from 0; -1 outside every window), or
    /// None for a trace without windows.
    #[getter]
    fn window<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyArray1<i32>>>> {
        let t = slf.get();
        match t.cols.window {
            Some(_) => view(slf, t.derived.window(&t.cols)).map(Some),
            None => Ok(None),
        }
    }

    /// Names of the register columns, in order.
    #[getter]
    fn register_names(&self) -> Vec<&'static str> {
        self.cols.reg_names.iter().map(|g| g.name()).collect()
    }

    /// Register columns by name (zero-copy views).
    #[getter]
    fn registers<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(slf.py());
        let t = slf.get();
        for (g, col) in t.cols.reg_names.iter().zip(&t.cols.regs) {
            d.set_item(g.name(), view(slf, col)?)?;
        }
        Ok(d)
    }

    #[getter]
    fn stop_reason(&self) -> &str {
        &self.meta.stop_reason
    }
    #[getter]
    fn stop_detail<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.meta
            .stop_detail
            .bind(py)
            .copy()
            .unwrap_or_else(|_| PyDict::new(py))
    }
    #[getter]
    fn per_vcpu_stop(&self) -> Vec<String> {
        self.meta.per_vcpu_stop.clone()
    }
    #[getter]
    fn console<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.meta.console)
    }
    #[getter]
    fn start_ns(&self) -> u64 {
        self.meta.start_ns
    }
    #[getter]
    fn end_ns(&self) -> u64 {
        self.meta.end_ns
    }
    #[getter]
    fn elapsed_s(&self) -> f64 {
        self.meta.end_ns.saturating_sub(self.meta.start_ns) as f64 / 1e9
    }
    /// Events recorded in the whole run (including rows streamed to a sink).
    #[getter]
    fn event_count(&self) -> u64 {
        self.meta.event_count
    }
    #[getter]
    fn exits(&self) -> u64 {
        self.meta.exits
    }
    #[getter]
    fn events_per_s(&self) -> f64 {
        let s = self.elapsed_s();
        if s > 0.0 {
            self.meta.event_count as f64 / s
        } else {
            0.0
        }
    }
    #[getter]
    fn mode(&self) -> &str {
        &self.meta.mode
    }
    #[getter]
    fn vcpus(&self) -> usize {
        self.meta.vcpus
    }
    #[getter]
    fn debug(&self) -> Option<PyGuestDebug> {
        self.meta.debug.clone().map(|inner| PyGuestDebug { inner })
    }
    /// Guest code loaded before the run, as (address, bytes), for decoding pcs later.
    #[getter]
    fn code_regions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let l = PyList::empty(py);
        for (a, b) in &self.meta.code_regions {
            l.append((a, PyBytes::new(py, b)))?;
        }
        Ok(l)
    }
    /// User CPU seconds of the vCPU loops (their threads), summed over vCPUs.
    #[getter]
    fn cpu_user_s(&self) -> f64 {
        self.meta.usage.user_ns as f64 / 1e9
    }
    /// System (kernel: KVM_RUN) CPU seconds of the vCPU loops, summed over vCPUs.
    #[getter]
    fn cpu_system_s(&self) -> f64 {
        self.meta.usage.sys_ns as f64 / 1e9
    }
    /// Minor page faults the vCPU loops took (column storage is populated up front,
    /// so a dense trace takes none per event).
    #[getter]
    fn page_faults(&self) -> u64 {
        self.meta.usage.minor_faults
    }
    /// KVM ioctls the vCPU loops issued (KVM_RUN, KVM_SET_GUEST_DEBUG, register calls).
    #[getter]
    fn ioctls(&self) -> u64 {
        self.meta.ioctls
    }
    /// Events recorded before the first row kept (a ring overwrote them), over all vCPUs.
    #[getter]
    fn dropped_events(&self) -> u64 {
        self.meta.dropped
    }
    /// Hits per breakpoint over the whole run (rows dropped by a ring included):
    /// dicts with kind ("exec", "write", "rw", "io", "sw" or "window"), slot, addr,
    /// len and count; a window's count is the windows opened.
    #[getter]
    fn hits<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.meta.hits.bind(py).clone()
    }
    /// Windows opened, over all vCPUs.
    #[getter]
    fn windows(&self) -> u64 {
        self.meta.windows
    }
    /// The window the trace ran with (addresses resolved), if any.
    #[getter]
    fn window_spec(&self) -> Option<PyWindow> {
        self.meta.window.as_ref().map(PyWindow::from_spec)
    }
    /// Heap bytes held by the columns (and by seq/vcpu/dr7 arrays made on request).
    #[getter]
    fn memory_bytes(&self) -> usize {
        self.cols.heap_bytes() + self.derived.heap_bytes()
    }

    /// Build a Trace from numpy columns (copied): `pc`, `dr6`, `dr7`, `exception`,
    /// and optionally `seq`, `vcpu`, `time_ns`, and `registers` (name -> uint64 array).
    #[staticmethod]
    #[pyo3(signature = (columns, *, mode = "long".to_string(), registers = None, stop_reason = "unknown".to_string(),
                        stop_detail = None, console = Vec::new(), start_ns = 0, end_ns = 0, event_count = None,
                        exits = 0, vcpus = 1, debug = None, code_regions = Vec::new(), per_vcpu_stop = Vec::new(),
                        dropped_events = 0, hits = None, windows = 0, window = None))]
    #[allow(clippy::too_many_arguments)]
    fn from_columns(
        py: Python<'_>,
        columns: &Bound<'_, PyDict>,
        mode: String,
        registers: Option<&Bound<'_, PyDict>>,
        stop_reason: String,
        stop_detail: Option<Bound<'_, PyDict>>,
        console: Vec<u8>,
        start_ns: u64,
        end_ns: u64,
        event_count: Option<u64>,
        exits: u64,
        vcpus: usize,
        debug: Option<PyRef<'_, PyGuestDebug>>,
        code_regions: Vec<(u64, Vec<u8>)>,
        per_vcpu_stop: Vec<String>,
        dropped_events: u64,
        hits: Option<Bound<'_, PyList>>,
        windows: u64,
        window: Option<PyRef<'_, PyWindow>>,
    ) -> PyResult<Self> {
        let cols = columns_from_numpy(py, columns, registers)?;
        let n = cols.len();
        Ok(PyTrace {
            cols: Arc::new(cols),
            derived: Materialized::default(),
            meta: TraceMeta {
                stop_reason,
                stop_detail: stop_detail
                    .map(|d| d.unbind())
                    .unwrap_or_else(|| PyDict::new(py).unbind()),
                per_vcpu_stop,
                console,
                start_ns,
                end_ns,
                event_count: event_count.unwrap_or(n as u64),
                exits,
                mode,
                vcpus,
                debug: debug.map(|d| d.inner.clone()),
                code_regions,
                usage: ThreadUsage::default(),
                ioctls: 0,
                dropped: dropped_events,
                hits: hits.unwrap_or_else(|| PyList::empty(py)).unbind(),
                windows,
                window: window.map(|w| w.spec()).transpose()?,
            },
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<kvmtrace Trace: {} events, mode={}, stop_reason={}, {:.0} events/s>",
            self.cols.len(),
            self.meta.mode,
            self.meta.stop_reason,
            self.events_per_s()
        )
    }
}
