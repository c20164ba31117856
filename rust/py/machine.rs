//! `Machine`: a VM with its memory and vCPUs, and `Exit`, one decoded exit.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::debug::GuestDebug;
use crate::error::Error;
use crate::exits::Exit;
use crate::kvm::layout::{self, Mode};
use crate::kvm::regs::{self, Gp};
use crate::kvm::vm::Vm;
use crate::py::args::{bool_arg, bytes_arg, opt_u64_arg, small_arg, u64_arg};
use crate::py::debug::PyGuestDebug;
use crate::py::exceptions::{
    GuestFaultError, InternalError, KvmInternalError, KvmIoctlError, SinkError,
};
use crate::py::trace::{stop_detail, PyTrace, TraceMeta};
use crate::recorder::Columns;
use crate::runloop::{self, Handled, Hooks, SinkFailure, StopReason, TraceConfig};

/// Code regions copied into a Trace for later decoding, at most this many bytes.
const MAX_CODE_SNAPSHOT: usize = 1 << 20;

/// One vCPU exit, as returned by `Machine.run_once`.
#[pyclass(frozen, get_all, name = "Exit", module = "kvmtrace._core")]
pub struct PyExit {
    /// "debug", "io_out", "io_in", "mmio_read", "mmio_write", "hlt", "shutdown",
    /// "internal_error", "fail_entry", "interrupted" or "other".
    reason: &'static str,
    exception: Option<u32>,
    pc: Option<u64>,
    dr6: Option<u64>,
    dr7: Option<u64>,
    port: Option<u16>,
    addr: Option<u64>,
    size: Option<usize>,
    data: Option<Py<PyBytes>>,
    suberror: Option<u32>,
    internal_data: Option<Vec<u64>>,
    detail: Option<String>,
}

#[pymethods]
impl PyExit {
    fn __repr__(&self) -> String {
        match (self.exception, self.pc, self.dr6, self.dr7) {
            (Some(e), Some(pc), Some(dr6), Some(dr7)) => {
                format!("Exit(debug, exception={e}, pc={pc:#x}, dr6={dr6:#x}, dr7={dr7:#x})")
            }
            _ => match (self.port, self.addr) {
                (Some(p), _) => format!("Exit({}, port={p:#x})", self.reason),
                (_, Some(a)) => format!("Exit({}, addr={a:#x})", self.reason),
                _ => format!("Exit({})", self.reason),
            },
        }
    }
}

fn exit_to_py(py: Python<'_>, e: &Exit) -> PyExit {
    let mut x = PyExit {
        reason: e.reason(),
        exception: None,
        pc: None,
        dr6: None,
        dr7: None,
        port: None,
        addr: None,
        size: None,
        data: None,
        suberror: None,
        internal_data: None,
        detail: None,
    };
    match e {
        Exit::Debug(d) => {
            (x.exception, x.pc, x.dr6, x.dr7) =
                (Some(d.exception), Some(d.pc), Some(d.dr6), Some(d.dr7));
        }
        Exit::IoOut { port, size, data } => {
            (x.port, x.size, x.data) = (
                Some(*port),
                Some(*size as usize),
                Some(PyBytes::new(py, data).unbind()),
            );
        }
        Exit::IoIn { port, size, .. } => (x.port, x.size) = (Some(*port), Some(*size as usize)),
        Exit::MmioRead { addr, len } => (x.addr, x.size) = (Some(*addr), Some(*len as usize)),
        Exit::MmioWrite { addr, data } => {
            (x.addr, x.size, x.data) = (
                Some(*addr),
                Some(data.len()),
                Some(PyBytes::new(py, data).unbind()),
            );
        }
        Exit::InternalError { suberror, data } => {
            (x.suberror, x.internal_data) = (Some(*suberror), Some(data.clone()))
        }
        Exit::FailEntry { reason, .. } => {
            x.detail = Some(format!("hardware_entry_failure_reason={reason:#x}"))
        }
        Exit::Other(s) => x.detail = Some(s.clone()),
        _ => {}
    }
    x
}

/// Calls back into Python from the run loop.
struct PyHooks {
    io: Option<Py<PyAny>>,
    mmio: Option<Py<PyAny>>,
    sink: Option<Py<PyAny>>,
    mode: &'static str,
    vcpus: usize,
    error: Mutex<Option<PyErr>>,
}

impl PyHooks {
    fn keep(&self, e: PyErr) -> String {
        let msg = Python::attach(|py| {
            e.value(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default()
        });
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
        msg
    }

    fn call(
        &self,
        f: &Option<Py<PyAny>>,
        vcpu: usize,
        what: u64,
        write: Option<&[u8]>,
        size: usize,
    ) -> Handled {
        let Some(f) = f else { return Handled::No };
        Python::attach(|py| {
            let data = write.map(|d| PyBytes::new(py, d));
            let r = f.call1(py, (what, data, size, vcpu));
            match r {
                Err(e) => Handled::Failed(self.keep(e)),
                Ok(v) if write.is_some() => {
                    let _ = v;
                    Handled::Yes(Vec::new())
                }
                Ok(v) => {
                    let v = v.bind(py);
                    if let Ok(b) = v.extract::<&[u8]>() {
                        Handled::Yes(b.to_vec())
                    } else if let Ok(i) = v.extract::<u64>() {
                        Handled::Yes(i.to_le_bytes()[..size.min(8)].to_vec())
                    } else {
                        let e = crate::py::exceptions::invalid_config_error(py);
                        let msg = format!(
                            "a read handler must return int or bytes, got {}",
                            v.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        );
                        Handled::Failed(self.keep(PyErr::from_type(e, msg)))
                    }
                }
            }
        })
    }
}

impl Hooks for PyHooks {
    fn io(&self, vcpu: usize, port: u16, write: Option<&[u8]>, size: usize) -> Handled {
        self.call(&self.io, vcpu, u64::from(port), write, size)
    }

    fn mmio(&self, vcpu: usize, addr: u64, write: Option<&[u8]>, size: usize) -> Handled {
        self.call(&self.mmio, vcpu, addr, write, size)
    }

    fn poll(&self) -> bool {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => true,
            Err(e) => {
                self.keep(e);
                false
            }
        })
    }

    fn chunk(&self, cols: Columns) -> Result<(), SinkFailure> {
        let Some(sink) = &self.sink else {
            return Err(SinkFailure {
                rows: Box::new(cols),
                reason: "no sink".into(),
            });
        };
        Python::attach(|py| {
            let n = cols.len() as u64;
            let meta = TraceMeta {
                stop_reason: "running".into(),
                stop_detail: PyDict::new(py).unbind(),
                per_vcpu_stop: Vec::new(),
                console: Vec::new(),
                start_ns: 0,
                end_ns: 0,
                event_count: n,
                exits: 0,
                mode: self.mode.into(),
                vcpus: self.vcpus,
                debug: None,
                code_regions: Vec::new(),
            };
            let t = Bound::new(py, PyTrace { cols, meta }).map_err(|e| SinkFailure {
                rows: Box::default(),
                reason: e.to_string(),
            })?;
            match sink.call_method1(py, "write", (t.clone(),)) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let msg = e.to_string();
                    self.keep(e);
                    Err(SinkFailure {
                        rows: Box::new(t.get().cols.clone()),
                        reason: msg,
                    })
                }
            }
        })
    }
}

struct Inner {
    vm: Vm,
    regions: Vec<(u64, usize)>,
}

/// A KVM virtual machine: guest memory, vCPUs and the mode they start in.
#[pyclass(frozen, subclass, name = "Machine", module = "kvmtrace._core")]
pub struct PyMachine {
    inner: Mutex<Option<Inner>>,
    mode: Mode,
    memory_size: u64,
    vcpus: usize,
}

impl PyMachine {
    fn lock(&self) -> PyResult<MutexGuard<'_, Option<Inner>>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::WouldBlock) => Err(Error::Busy.into()),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> PyResult<R>) -> PyResult<R> {
        let mut g = self.lock()?;
        match g.as_mut() {
            Some(inner) => f(inner),
            None => Err(Error::Closed.into()),
        }
    }

    fn vcpu_index(&self, vcpu: &Bound<'_, PyAny>) -> PyResult<usize> {
        let i: usize = small_arg(vcpu, "vcpu")?;
        if i >= self.vcpus {
            return Err(Error::invalid(
                "vcpu",
                format!(
                    "{i} is out of range (this Machine has {} vCPUs)",
                    self.vcpus
                ),
            )
            .into());
        }
        Ok(i)
    }
}

#[pymethods]
impl PyMachine {
    #[new]
    #[pyo3(signature = (memory_size = None, mode = None, vcpus = None))]
    fn new(
        py: Python<'_>,
        memory_size: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        vcpus: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let memory_size = opt_u64_arg(memory_size, "memory_size")?.unwrap_or(16 << 20);
        let mode = match mode {
            Some(m) if !m.is_none() => Mode::parse(&crate::py::args::str_arg(m, "mode")?)?,
            _ => Mode::Long,
        };
        let vcpus: usize = match vcpus {
            Some(v) if !v.is_none() => small_arg(v, "vcpus")?,
            _ => 1,
        };
        let vm = py.detach(|| Vm::new(memory_size, mode, vcpus))?;
        Ok(PyMachine {
            inner: Mutex::new(Some(Inner {
                vm,
                regions: Vec::new(),
            })),
            mode,
            memory_size,
            vcpus,
        })
    }

    /// Close the VM: vCPU and VM fds are closed and guest memory unmapped. Idempotent.
    fn close(&self) -> PyResult<()> {
        let taken = self.lock()?.take();
        drop(taken);
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.try_lock().map(|g| g.is_none()).unwrap_or(false)
    }
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode.name()
    }
    #[getter]
    fn bits(&self) -> u32 {
        self.mode.bits()
    }
    #[getter]
    fn memory_size(&self) -> u64 {
        self.memory_size
    }
    #[getter]
    fn vcpu_count(&self) -> usize {
        self.vcpus
    }

    /// Reserved guest-physical regions: name -> (start, size).
    #[getter]
    fn layout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, start, size) in layout::regions() {
            let size = if name == "free" {
                self.memory_size - start
            } else {
                size
            };
            d.set_item(name, (start, size))?;
        }
        Ok(d)
    }

    /// KVM facts of this host: API version, supported guest-debug flags, sync regs.
    #[getter]
    fn host_caps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let caps = self.with(|i| Ok(i.vm.caps.clone()))?;
        let d = PyDict::new(py);
        d.set_item("api_version", caps.api_version)?;
        d.set_item("guest_debug_flags", caps.guest_debug_flags)?;
        d.set_item("set_guest_debug2", caps.guest_debug2)?;
        d.set_item("sync_regs", caps.sync_regs)?;
        d.set_item("debugregs", caps.debugregs)?;
        d.set_item("max_vcpus", caps.max_vcpus)?;
        Ok(d)
    }

    #[getter]
    fn entry(&self) -> PyResult<u64> {
        self.with(|i| Ok(i.vm.entry))
    }

    /// Point every vCPU's rip at `addr`.
    fn set_entry(&self, addr: &Bound<'_, PyAny>) -> PyResult<()> {
        let a = u64_arg(addr, "entry")?;
        self.with(|i| Ok(i.vm.set_entry(a)?))
    }

    fn read<'py>(
        &self,
        py: Python<'py>,
        addr: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (a, n) = (u64_arg(addr, "addr")?, u64_arg(size, "size")?);
        let n = usize::try_from(n).map_err(|_| Error::invalid("size", "too large"))?;
        let v = self.with(|i| Ok(i.vm.mem.read_vec(a, n)?))?;
        Ok(PyBytes::new(py, &v))
    }

    fn write(&self, addr: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let a = u64_arg(addr, "addr")?;
        let d = bytes_arg(data, "data")?;
        self.with(|i| Ok(i.vm.mem.write(a, &d)?))
    }

    /// Load a program: write `data` at `addr` and remember the region as code
    /// (traces keep a copy of it for decoding).
    fn load(&self, data: &Bound<'_, PyAny>, addr: &Bound<'_, PyAny>) -> PyResult<()> {
        let a = u64_arg(addr, "addr")?;
        let d = bytes_arg(data, "data")?;
        self.with(|i| {
            i.vm.mem.write(a, &d)?;
            if !d.is_empty() {
                i.regions.push((a, d.len()));
            }
            Ok(())
        })
    }

    /// Install an interrupt gate (real mode: IVT entry) for `vector` -> `handler`.
    fn set_idt_handler(
        &self,
        vector: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let v: u8 = small_arg(vector, "vector")?;
        let h = u64_arg(handler, "handler")?;
        self.with(|i| Ok(i.vm.set_idt_handler(v, h)?))
    }

    #[pyo3(signature = (name, vcpu = None))]
    fn get_register(
        &self,
        name: &Bound<'_, PyAny>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let name = crate::py::args::str_arg(name, "name")?;
        let v = match vcpu {
            Some(v) => self.vcpu_index(v)?,
            None => 0,
        };
        self.with(|i| Ok(i.vm.vcpus[v].get(&name)?))
    }

    #[pyo3(signature = (name, value, vcpu = None))]
    fn set_register(
        &self,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let name = crate::py::args::str_arg(name, "name")?;
        let value = u64_arg(value, &name)?;
        let v = match vcpu {
            Some(v) => self.vcpu_index(v)?,
            None => 0,
        };
        self.with(|i| Ok(i.vm.vcpus[v].set(&name, value)?))
    }

    /// Every named register of a vCPU.
    #[pyo3(signature = (vcpu = None))]
    fn registers<'py>(
        &self,
        py: Python<'py>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let v = match vcpu {
            Some(v) => self.vcpu_index(v)?,
            None => 0,
        };
        let d = PyDict::new(py);
        self.with(|i| {
            for n in regs::ALL_NAMES {
                d.set_item(*n, i.vm.vcpus[v].get(n)?)?;
            }
            Ok(())
        })?;
        Ok(d)
    }

    /// Reset vCPU(s) to the mode's initial state at the entry point.
    #[pyo3(signature = (vcpu = None))]
    fn reset(&self, vcpu: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let which = match vcpu {
            Some(v) if !v.is_none() => Some(self.vcpu_index(v)?),
            _ => None,
        };
        self.with(|i| {
            let entry = i.vm.entry;
            for v in
                i.vm.vcpus
                    .iter_mut()
                    .filter(|v| which.is_none_or(|w| w == v.index))
            {
                v.reset(entry)?;
            }
            Ok(())
        })
    }

    /// Program KVM_SET_GUEST_DEBUG for `run_once` (None turns debugging off).
    #[pyo3(signature = (debug, vcpu = None))]
    fn set_guest_debug(
        &self,
        debug: &Bound<'_, PyAny>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let debug: Option<GuestDebug> = if debug.is_none() {
            None
        } else {
            Some(
                debug
                    .cast::<PyGuestDebug>()
                    .map_err(|_| Error::invalid("debug", "expected a kvmtrace.GuestDebug or None"))?
                    .get()
                    .inner
                    .clone(),
            )
        };
        let which = match vcpu {
            Some(v) if !v.is_none() => Some(self.vcpu_index(v)?),
            _ => None,
        };
        self.with(|i| {
            if let Some(d) = &debug {
                i.vm.check_debug(d)?;
            }
            for v in
                i.vm.vcpus
                    .iter_mut()
                    .filter(|v| which.is_none_or(|w| w == v.index))
            {
                let g = debug.as_ref();
                v.apply_debug(g, g.map_or(0, |g| g.inject_flags()))?;
            }
            Ok(())
        })
    }

    /// One KVM_RUN on one vCPU (GIL released); returns the exit. A raw primitive:
    /// no breakpoint bookkeeping, port 0xE9 output is returned as an io_out exit.
    #[pyo3(signature = (vcpu = None))]
    fn run_once(&self, py: Python<'_>, vcpu: Option<&Bound<'_, PyAny>>) -> PyResult<PyExit> {
        let v = match vcpu {
            Some(v) => self.vcpu_index(v)?,
            None => 0,
        };
        let exit = self.with(|i| {
            let vcpu = &mut i.vm.vcpus[v];
            vcpu.parked = None;
            let r = py.detach(|| vcpu.run());
            vcpu.clear_immediate_exit();
            Ok(r?)
        })?;
        if exit == Exit::Interrupted {
            py.check_signals()?;
        }
        Ok(exit_to_py(py, &exit))
    }

    /// Run the KVM_RUN loop natively (GIL released) and record every debug exit.
    #[pyo3(signature = (debug, max_events = None, stop_at = None, timeout = None, registers = None,
                        io_handler = None, mmio_handler = None, sink = None, sink_rows = None, raise_on_fault = None))]
    #[allow(clippy::too_many_arguments)]
    fn trace(
        &self,
        py: Python<'_>,
        debug: &Bound<'_, PyAny>,
        max_events: Option<&Bound<'_, PyAny>>,
        stop_at: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        registers: Option<&Bound<'_, PyAny>>,
        io_handler: Option<Py<PyAny>>,
        mmio_handler: Option<Py<PyAny>>,
        sink: Option<Py<PyAny>>,
        sink_rows: Option<&Bound<'_, PyAny>>,
        raise_on_fault: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTrace> {
        let debug = debug
            .cast::<PyGuestDebug>()
            .map_err(|_| Error::invalid("debug", "expected a kvmtrace.GuestDebug"))?
            .get()
            .inner
            .clone();
        let max_events = opt_u64_arg(max_events, "max_events")?;
        if max_events == Some(0) {
            return Err(
                Error::invalid("max_events", "must be at least 1 (or None for no limit)").into(),
            );
        }
        let stop_at = opt_u64_arg(stop_at, "stop_at")?;
        let timeout = match timeout {
            Some(t) if !t.is_none() => {
                if t.is_instance_of::<pyo3::types::PyBool>() {
                    return Err(Error::invalid(
                        "timeout",
                        "expected seconds as a number, not a bool",
                    )
                    .into());
                }
                let s: f64 = t
                    .extract()
                    .map_err(|_| Error::invalid("timeout", "expected seconds as a number"))?;
                if !(s.is_finite() && s > 0.0 && s < 1e9) {
                    return Err(Error::invalid(
                        "timeout",
                        format!("{s} is not a positive number of seconds"),
                    )
                    .into());
                }
                Some(Duration::from_secs_f64(s))
            }
            _ => None,
        };
        let mut regs = Vec::new();
        if let Some(r) = registers.filter(|r| !r.is_none()) {
            if r.is_instance_of::<pyo3::types::PyString>() {
                return Err(Error::invalid(
                    "registers",
                    "expected a list of names, e.g. (\"rip\", \"rsp\")",
                )
                .into());
            }
            for item in r
                .try_iter()
                .map_err(|_| Error::invalid("registers", "expected a list of names"))?
            {
                let name = crate::py::args::str_arg(&item?, "registers")?;
                let g = Gp::parse(&name.to_ascii_lowercase())?;
                if regs.contains(&g) {
                    return Err(
                        Error::invalid("registers", format!("{name:?} is listed twice")).into(),
                    );
                }
                regs.push(g);
            }
        }
        let sink_rows = match sink_rows {
            Some(s) if !s.is_none() => Some(small_arg::<usize>(s, "sink_rows")?.max(1)),
            _ => sink.as_ref().map(|_| default_sink_rows(regs.len())),
        };
        let raise_on_fault = match raise_on_fault {
            Some(b) => bool_arg(b, "raise_on_fault")?,
            None => true,
        };
        let cfg = TraceConfig {
            max_events,
            stop_at,
            timeout,
            regs,
            sink_rows: if sink.is_some() { sink_rows } else { None },
        };
        let hooks = PyHooks {
            io: io_handler,
            mmio: mmio_handler,
            sink,
            mode: self.mode.name(),
            vcpus: self.vcpus,
            error: Mutex::new(None),
        };

        let mut guard = self.lock()?;
        let inner = guard.as_mut().ok_or(Error::Closed)?;
        let result = {
            let vm = &mut inner.vm;
            py.detach(|| runloop::trace(vm, &debug, &cfg, &hooks))?
        };
        let mut code_regions = Vec::new();
        let mut budget = MAX_CODE_SNAPSHOT;
        for &(a, n) in &inner.regions {
            let n = n.min(budget);
            if n == 0 {
                break;
            }
            if let Ok(b) = inner.vm.mem.read_vec(a, n) {
                code_regions.push((a, b));
                budget -= n;
            }
        }
        let fault_regs = match result.stop {
            StopReason::Shutdown
            | StopReason::InternalError { .. }
            | StopReason::FailEntry { .. } => {
                let d = PyDict::new(py);
                for n in regs::ALL_NAMES {
                    if let Ok(v) = inner.vm.vcpus[0].get(n) {
                        d.set_item(*n, v)?;
                    }
                }
                Some(d)
            }
            _ => None,
        };
        drop(guard);

        // A Ctrl-C that landed inside a Python callback (sink write, port handler)
        // is an interrupt, not a failure of that callback.
        let kept = hooks.error.lock().ok().and_then(|mut g| g.take());
        let stop = match &kept {
            Some(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => StopReason::Interrupted,
            _ => result.stop.clone(),
        };
        let trace = PyTrace {
            meta: TraceMeta {
                stop_reason: stop.name().into(),
                stop_detail: stop_detail(py, &stop)?,
                per_vcpu_stop: result
                    .per_vcpu
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect(),
                console: result.console,
                start_ns: result.start_ns,
                end_ns: result.end_ns,
                event_count: result.events,
                exits: result.exits,
                mode: self.mode.name().into(),
                vcpus: self.vcpus,
                debug: Some(debug),
                code_regions,
            },
            cols: result.cols,
        };

        // Errors carry the partial trace as `.trace`.
        let err: Option<PyErr> = match &stop {
            StopReason::Interrupted => Some(kept.unwrap_or_else(|| PyKeyboardInterrupt::new_err("trace interrupted"))),
            StopReason::HandlerError(_) => kept,
            StopReason::SinkError(m) => {
                let e = SinkError::new_err(format!("the trace sink failed: {m}; the rows it did not take are kept in memory in .trace"));
                if let Some(k) = kept {
                    e.set_cause(py, Some(k));
                }
                Some(e)
            }
            StopReason::KvmError(m) => Some(KvmIoctlError::new_err(m.clone())),
            StopReason::ThreadError(m) => Some(InternalError::new_err(m.clone())),
            StopReason::Shutdown if raise_on_fault => Some(GuestFaultError::new_err(
                "the guest shut down (triple fault: an exception it could not deliver, e.g. no IDT handler); \
                 .trace holds the events so far, .registers the vCPU state",
            )),
            StopReason::FailEntry { reason } if raise_on_fault => Some(GuestFaultError::new_err(format!(
                "KVM_RUN failed VM entry (hardware_entry_failure_reason={reason:#x}): the vCPU state is invalid"
            ))),
            StopReason::InternalError { suberror, data } if raise_on_fault => {
                let e = KvmInternalError::new_err(format!(
                    "KVM internal error, suberror {suberror} ({}), data {data:x?}",
                    suberror_name(*suberror)
                ));
                let _ = e.value(py).setattr("suberror", suberror);
                let _ = e.value(py).setattr("data", data.clone());
                Some(e)
            }
            _ => None,
        };
        match err {
            None => Ok(trace),
            Some(e) => {
                let t = Bound::new(py, trace)?;
                let v = e.value(py);
                let _ = v.setattr("trace", t);
                let _ = v.setattr("stop_reason", stop.name());
                if let Some(r) = fault_regs {
                    let _ = v.setattr("registers", r);
                }
                Err(e)
            }
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<kvmtrace Machine mode={} memory_size={:#x} vcpus={}{}>",
            self.mode.name(),
            self.memory_size,
            self.vcpus,
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// Bytes of one chunk handed to a sink by default: rows in flight stay bounded in
/// bytes whatever the row width (43 bytes, plus 8 per register column).
const SINK_CHUNK_BYTES: usize = 24 << 20;

fn default_sink_rows(registers: usize) -> usize {
    (SINK_CHUNK_BYTES / (crate::recorder::FIXED_BYTES_PER_EVENT + 8 * registers))
        .clamp(4096, 1 << 20)
}

fn suberror_name(s: u32) -> &'static str {
    match s {
        1 => "KVM_INTERNAL_ERROR_EMULATION",
        2 => "KVM_INTERNAL_ERROR_SIMUL_EX",
        3 => "KVM_INTERNAL_ERROR_DELIVERY_EV",
        4 => "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON",
        _ => "unknown",
    }
}
