//! How a run ended, as a `Trace` carries it: the run facts, the stop detail and the
//! hit counts, and the two ways a Trace is made from a run (a finished run, or a
//! chunk handed to a sink).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::debug::GuestDebug;
use crate::kick::ThreadUsage;
use crate::py::columns::Materialized;
use crate::py::trace::PyTrace;
use crate::recorder::Columns;
use crate::runloop::hits::Hits;
use crate::runloop::window::WindowSpec;
use crate::runloop::{StopReason, TraceResult};

pub struct TraceMeta {
    pub stop_reason: String,
    pub stop_detail: Py<PyDict>,
    pub per_vcpu_stop: Vec<String>,
    pub console: Vec<u8>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Events recorded in the whole run, including rows already handed to a sink.
    pub event_count: u64,
    pub exits: u64,
    pub mode: String,
    pub vcpus: usize,
    pub debug: Option<GuestDebug>,
    pub code_regions: Vec<(u64, Vec<u8>)>,
    /// CPU time and page faults of the vCPU loops.
    pub usage: ThreadUsage,
    /// KVM ioctls the vCPU loops issued.
    pub ioctls: u64,
    /// Events recorded before the ring's first row (overwritten), over all vCPUs.
    pub dropped: u64,
    /// Hits per breakpoint, as `Trace.hits` returns them.
    pub hits: Py<PyList>,
    pub windows: u64,
    pub window: Option<WindowSpec>,
}

impl PyTrace {
    /// A chunk of a running trace, as handed to a sink.
    pub fn chunk(py: Python<'_>, rows: Arc<Columns>, mode: &str, vcpus: usize) -> PyTrace {
        let n = rows.len() as u64;
        PyTrace {
            derived: Materialized::default(),
            cols: rows,
            meta: TraceMeta {
                stop_reason: "running".into(),
                stop_detail: PyDict::new(py).unbind(),
                per_vcpu_stop: Vec::new(),
                console: Vec::new(),
                start_ns: 0,
                end_ns: 0,
                event_count: n,
                exits: 0,
                mode: mode.into(),
                vcpus,
                debug: None,
                code_regions: Vec::new(),
                usage: ThreadUsage::default(),
                ioctls: 0,
                dropped: 0,
                hits: PyList::empty(py).unbind(),
                windows: 0,
                window: None,
            },
        }
    }

    /// The trace of a finished run.
    pub fn finished(
        py: Python<'_>,
        r: TraceResult,
        debug: GuestDebug,
        window: Option<WindowSpec>,
        mode: &str,
        vcpus: usize,
        code_regions: Vec<(u64, Vec<u8>)>,
    ) -> PyResult<PyTrace> {
        Ok(PyTrace {
            derived: Materialized::default(),
            meta: TraceMeta {
                stop_reason: r.stop.reason.name().into(),
                stop_detail: stop_detail(py, &r.stop.reason)?,
                per_vcpu_stop: r.per_vcpu.iter().map(|s| s.name().to_string()).collect(),
                console: r.console,
                start_ns: r.start_ns,
                end_ns: r.end_ns,
                event_count: r.events,
                exits: r.exits,
                mode: mode.into(),
                vcpus,
                debug: Some(debug),
                code_regions,
                usage: r.usage,
                ioctls: r.ioctls,
                dropped: r.dropped,
                hits: hits_list(py, &r.hits)?.unbind(),
                windows: r.hits.windows,
                window,
            },
            cols: Arc::new(r.cols),
        })
    }
}

/// `Trace.hits`: one dict per breakpoint, with its count over the whole run.
fn hits_list<'py>(py: Python<'py>, h: &Hits) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for (s, n) in &h.hw {
        let d = PyDict::new(py);
        d.set_item("kind", s.kind.name())?;
        d.set_item("slot", s.slot)?;
        d.set_item("addr", s.addr)?;
        d.set_item("len", s.len)?;
        d.set_item("count", n)?;
        out.append(d)?;
    }
    for (addr, n) in &h.sw {
        let d = PyDict::new(py);
        d.set_item("kind", "sw")?;
        d.set_item("slot", py.None())?;
        d.set_item("addr", addr)?;
        d.set_item("len", 1)?;
        d.set_item("count", n)?;
        out.append(d)?;
    }
    if let Some((slot, addr)) = h.trigger {
        let d = PyDict::new(py);
        d.set_item("kind", "window")?;
        d.set_item("slot", slot)?;
        d.set_item("addr", addr)?;
        d.set_item("len", 1)?;
        d.set_item("count", h.windows)?;
        out.append(d)?;
    }
    Ok(out)
}

/// The detail dict of a stop reason.
pub fn stop_detail(py: Python<'_>, r: &StopReason) -> PyResult<Py<PyDict>> {
    let d = PyDict::new(py);
    match r {
        StopReason::ExitPort(code) => d.set_item("exit_code", code)?,
        StopReason::InternalError { suberror, data } => {
            d.set_item("suberror", suberror)?;
            d.set_item("data", data.clone())?;
        }
        StopReason::FailEntry { reason } => d.set_item("hardware_entry_failure_reason", reason)?,
        StopReason::NoProgress(pc) => {
            d.set_item("pc", pc)?;
            d.set_item(
                "message",
                format!(
                    "the fault at {pc:#x} fired again while kvmtrace stepped over it with the trigger \
                     disarmed; the host makes no progress, so the vCPU stopped instead of looping"
                ),
            )?;
        }
        StopReason::Io { port, write, data } => {
            d.set_item("port", port)?;
            d.set_item("write", write)?;
            d.set_item("data", PyBytes::new(py, data))?;
        }
        StopReason::Mmio { addr, write, data } => {
            d.set_item("addr", addr)?;
            d.set_item("write", write)?;
            d.set_item("data", PyBytes::new(py, data))?;
        }
        StopReason::Error(e) => d.set_item("message", e.to_string())?,
        StopReason::Other(m) => d.set_item("message", m)?,
        _ => {}
    }
    Ok(d.unbind())
}
