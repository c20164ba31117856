//! `Trace`: recorded columns plus how the run ended. Columns are exposed as numpy
//! arrays that borrow the Rust vectors (no copy) and are read-only from the moment
//! they are created: the array's base object is the Trace, which is frozen, so the
//! memory never moves or changes.

use std::sync::{Arc, OnceLock};

use numpy::npyffi::{self, npy_intp, NPY_ARRAY_CARRAY_RO, PY_ARRAY_API};
use numpy::{Element, PyArray1, PyArrayDescrMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::debug::GuestDebug;
use crate::error::Error;
use crate::kick::ThreadUsage;
use crate::kvm::regs::Gp;
use crate::py::debug::PyGuestDebug;
use crate::recorder::{Columns, Runs, Seq, Vcpus};
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
}

/// Full columns made from what the trace stores once (seq, vcpu) or as runs (dr7),
/// on first access; they never change afterwards, so numpy views can borrow them.
#[derive(Default)]
pub struct Materialized {
    seq: OnceLock<Vec<u64>>,
    vcpu: OnceLock<Vec<u16>>,
    dr7: OnceLock<Vec<u64>>,
}

impl Materialized {
    fn heap_bytes(&self) -> usize {
        self.seq.get().map_or(0, |v| v.capacity() * 8)
            + self.vcpu.get().map_or(0, |v| v.capacity() * 2)
            + self.dr7.get().map_or(0, |v| v.capacity() * 8)
    }
}

#[pyclass(frozen, name = "Trace", module = "kvmtrace._core")]
pub struct PyTrace {
    pub cols: Arc<Columns>,
    pub meta: TraceMeta,
    pub derived: Materialized,
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
            },
        }
    }

    /// The trace of a finished run.
    pub fn finished(
        py: Python<'_>,
        r: TraceResult,
        debug: GuestDebug,
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
            },
            cols: Arc::new(r.cols),
        })
    }
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

/// A read-only 1-D numpy array over `v`, whose base object is the trace `slf`.
fn view<'py, T: Element>(slf: &Bound<'py, PyTrace>, v: &[T]) -> PyResult<Bound<'py, PyArray1<T>>> {
    let py = slf.py();
    let mut dims = [v.len() as npy_intp];
    let mut strides = [std::mem::size_of::<T>() as npy_intp];
    // SAFETY: `v` lives inside the frozen `PyTrace` behind `slf`, which is never
    // mutated after construction; the array is created without NPY_ARRAY_WRITEABLE
    // (numpy then refuses to make it writeable, since it does not own the data and
    // its base is not writeable), and it holds a reference to `slf` as its base
    // object (SetBaseObject steals the reference `into_ptr` gives), so the memory
    // outlives the array. dims/strides describe exactly `v.len()` elements of T.
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            T::get_dtype(py).into_dtype_ptr(),
            1,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            v.as_ptr() as *mut std::ffi::c_void,
            NPY_ARRAY_CARRAY_RO,
            std::ptr::null_mut(),
        );
        if ptr.is_null() {
            return Err(PyErr::fetch(py));
        }
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            ptr as *mut npyffi::PyArrayObject,
            slf.clone().into_any().into_ptr(),
        ) != 0
        {
            pyo3::ffi::Py_DECREF(ptr);
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, ptr).cast_into_unchecked())
    }
}

fn copy_col<T: Element + Copy>(
    d: &Bound<'_, PyDict>,
    name: &str,
    n: Option<usize>,
) -> PyResult<Vec<T>> {
    let Some(a) = d.get_item(name)? else {
        return Err(Error::invalid(name, format!("column {name:?} is missing")).into());
    };
    let a: PyReadonlyArray1<'_, T> = a.extract().map_err(|_| {
        Error::invalid(
            name,
            format!(
                "column {name:?} must be a 1-D numpy array of {}",
                std::any::type_name::<T>()
            ),
        )
    })?;
    let v = a.as_array().to_vec();
    if let Some(n) = n.filter(|&n| v.len() != n) {
        return Err(Error::invalid(
            name,
            format!("column {name:?} has {} rows, pc has {n}", v.len()),
        )
        .into());
    }
    Ok(v)
}

/// `name` from `columns` if present, else `default(len)`.
fn copy_or<T: Element + Copy>(
    columns: &Bound<'_, PyDict>,
    name: &str,
    n: usize,
    default: impl FnOnce(usize) -> Vec<T>,
) -> PyResult<Vec<T>> {
    if columns.contains(name)? {
        copy_col(columns, name, Some(n))
    } else {
        Ok(default(n))
    }
}

#[pymethods]
impl PyTrace {
    fn __len__(&self) -> usize {
        self.cols.len()
    }

    #[getter]
    fn seq<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let t = slf.get();
        view(slf, t.derived.seq.get_or_init(|| t.cols.seq_vec()))
    }
    #[getter]
    fn vcpu<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u16>>> {
        let t = slf.get();
        view(slf, t.derived.vcpu.get_or_init(|| t.cols.vcpu_vec()))
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
        view(slf, t.derived.dr7.get_or_init(|| t.cols.dr7.to_vec()))
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
                        exits = 0, vcpus = 1, debug = None, code_regions = Vec::new(), per_vcpu_stop = Vec::new()))]
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
    ) -> PyResult<Self> {
        let pc: Vec<u64> = copy_col(columns, "pc", None)?;
        let n = pc.len();
        // Stored compactly, as a recorded trace is (seq/vcpu derived, dr7 as runs).
        let seq: Vec<u64> = copy_or(columns, "seq", n, |n| (0..n as u64).collect())?;
        let vcpu: Vec<u16> = copy_or(columns, "vcpu", n, |n| vec![0; n])?;
        let dr7: Vec<u64> = copy_col(columns, "dr7", Some(n))?;
        let mut cols = Columns {
            seq: Seq::from_slice(&seq),
            vcpu: Vcpus::from_slice(&vcpu),
            time_ns: copy_or(columns, "time_ns", n, |n| vec![0; n])?,
            exception: copy_col(columns, "exception", Some(n))?,
            dr6: copy_col(columns, "dr6", Some(n))?,
            dr7: Runs::from_slice(&dr7),
            pc,
            ..Default::default()
        };
        if let Some(regs) = registers {
            for (k, v) in regs.iter() {
                let name: String = k.extract()?;
                let g = Gp::parse(&name)?;
                let d = PyDict::new(py);
                d.set_item(&name, v)?;
                cols.regs.push(copy_col(&d, &name, Some(n))?);
                cols.reg_names.push(g);
            }
        }
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
