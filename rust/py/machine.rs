//! `Machine`: a VM with its memory and vCPUs. The engine work runs detached from
//! the GIL (`py/detach.rs`); errors and stops become exceptions in `py/error.rs`.

use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::debug::GuestDebug;
use crate::error::Error;
use crate::exits::Exit;
use crate::kvm::layout::{self, Mode};
use crate::kvm::regs;
use crate::kvm::vm::Vm;
use crate::py::args::{bytes_arg, small_arg, str_arg, u64_arg};
use crate::py::debug::PyGuestDebug;
use crate::py::detach::{detached, Signals};
use crate::py::exit::PyExit;
use crate::py::hooks::PyHooks;
use crate::py::machine_state::{caps_dict, vm_config, Inner};
use crate::py::progress::PyProgress;
use crate::py::run;
use crate::py::trace::PyTrace;
use crate::py::trace_args::{TraceArgs, TraceArgsIn};

fn guest_debug_arg(debug: &Bound<'_, PyAny>) -> PyResult<GuestDebug> {
    Ok(debug
        .cast::<PyGuestDebug>()
        .map_err(|_| Error::invalid("debug", "expected a kvmtrace.GuestDebug"))?
        .get()
        .inner
        .clone())
}

/// A KVM virtual machine: guest memory, vCPUs and the mode they start in.
#[pyclass(frozen, subclass, name = "Machine", module = "kvmtrace._core")]
pub struct PyMachine {
    inner: Mutex<Option<Inner>>,
    pub(crate) mode: Mode,
    memory_size: u64,
    pub(crate) vcpus: usize,
    irqchip: bool,
}

impl PyMachine {
    pub(crate) fn lock(&self) -> PyResult<MutexGuard<'_, Option<Inner>>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::WouldBlock) => Err(Error::Busy.into()),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        }
    }

    /// The VM, for bindings outside this file (`py/boot.rs`).
    pub(crate) fn with_vm<R>(&self, f: impl FnOnce(&mut Vm) -> PyResult<R>) -> PyResult<R> {
        self.with(|i| f(&mut i.vm))
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

    /// `vcpu=None` means vCPU 0.
    fn vcpu_or_first(&self, vcpu: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        Ok(self.vcpu_or_all(vcpu)?.unwrap_or(0))
    }

    /// `vcpu=None` means every vCPU.
    fn vcpu_or_all(&self, vcpu: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
        match vcpu {
            Some(v) if !v.is_none() => Ok(Some(self.vcpu_index(v)?)),
            _ => Ok(None),
        }
    }
}

#[pymethods]
impl PyMachine {
    #[new]
    #[pyo3(signature = (memory_size = None, mode = None, vcpus = None, irqchip = None))]
    fn new(
        py: Python<'_>,
        memory_size: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        vcpus: Option<&Bound<'_, PyAny>>,
        irqchip: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cfg = vm_config(memory_size, mode, vcpus, irqchip)?;
        let vm = detached(py, |_| Vm::new(&cfg))?;
        Ok(PyMachine {
            inner: Mutex::new(Some(Inner::new(vm))),
            mode: cfg.mode,
            memory_size: cfg.memory_size,
            vcpus: cfg.vcpus,
            irqchip: cfg.irqchip,
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
    /// In-kernel LAPIC/IOAPIC/PIC and PIT (`Machine(irqchip=True)`).
    #[getter]
    fn irqchip(&self) -> bool {
        self.irqchip
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
        caps_dict(py, &caps)
    }

    /// Host behaviour kvmtrace probed (once per process, on a throwaway VM):
    /// `rf_resume`, whether KVM_RUN honours RFLAGS.RF after an instruction breakpoint.
    #[getter]
    fn host<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rf = detached(py, |_| Ok(crate::kvm::probe::rf_resume()))?;
        let d = PyDict::new(py);
        d.set_item("rf_resume", rf)?;
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
        let name = str_arg(name, "name")?;
        let v = self.vcpu_or_first(vcpu)?;
        self.with(|i| Ok(i.vm.vcpus[v].get(&name)?))
    }

    #[pyo3(signature = (name, value, vcpu = None))]
    fn set_register(
        &self,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let name = str_arg(name, "name")?;
        let value = u64_arg(value, &name)?;
        let v = self.vcpu_or_first(vcpu)?;
        self.with(|i| Ok(i.vm.vcpus[v].set(&name, value)?))
    }

    /// Every named register of a vCPU.
    #[pyo3(signature = (vcpu = None))]
    fn registers<'py>(
        &self,
        py: Python<'py>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let v = self.vcpu_or_first(vcpu)?;
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
        let which = self.vcpu_or_all(vcpu)?;
        self.with(|i| Ok(i.vm.reset_vcpus(which)?))
    }

    /// Program KVM_SET_GUEST_DEBUG for `run_once` (None turns debugging off).
    #[pyo3(signature = (debug, vcpu = None))]
    fn set_guest_debug(
        &self,
        debug: &Bound<'_, PyAny>,
        vcpu: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let debug =
            if debug.is_none() {
                None
            } else {
                Some(guest_debug_arg(debug).map_err(|_| {
                    Error::invalid("debug", "expected a kvmtrace.GuestDebug or None")
                })?)
            };
        let which = self.vcpu_or_all(vcpu)?;
        self.with(|i| {
            if let Some(d) = &debug {
                i.vm.check_debug(d)?;
            }
            for v in i.vm.vcpus.iter_mut() {
                if which.is_none_or(|w| w == v.index) {
                    let g = debug.as_ref();
                    v.apply_debug(g, g.map_or(0, |g| g.inject_flags()))?;
                }
            }
            Ok(())
        })
    }

    /// One KVM_RUN on one vCPU (GIL released); returns the exit. A raw primitive:
    /// no breakpoint bookkeeping, port 0xE9 output is returned as an io_out exit.
    #[pyo3(signature = (vcpu = None))]
    fn run_once(&self, py: Python<'_>, vcpu: Option<&Bound<'_, PyAny>>) -> PyResult<PyExit> {
        let v = self.vcpu_or_first(vcpu)?;
        let exit = self.with(|i| {
            let vcpu = &mut i.vm.vcpus[v];
            vcpu.parked = None;
            detached(py, |signals: Signals| {
                let r = vcpu.run();
                vcpu.clear_immediate_exit();
                let exit = r?;
                if exit == Exit::Interrupted {
                    signals.check()?;
                }
                Ok(exit)
            })
        })?;
        Ok(PyExit::new(py, &exit))
    }

    /// Run the KVM_RUN loop natively (GIL released) and record every debug exit.
    #[pyo3(signature = (debug, max_events = None, stop_at = None, timeout = None, registers = None,
                        io_handler = None, mmio_handler = None, sink = None, sink_rows = None,
                        raise_on_fault = None, progress = None, window = None, ring = None))]
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
        progress: Option<PyRef<'_, PyProgress>>,
        window: Option<&Bound<'_, PyAny>>,
        ring: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTrace> {
        let debug = guest_debug_arg(debug)?;
        let mut args = TraceArgs::parse(TraceArgsIn {
            max_events,
            stop_at,
            timeout,
            registers,
            has_sink: sink.is_some(),
            sink_rows,
            raise_on_fault,
            window,
            ring,
        })?;
        if let Some(p) = &progress {
            p.inner.reset();
            args.cfg.progress = Some(p.inner.clone());
        }
        let hooks = PyHooks {
            io: io_handler,
            mmio: mmio_handler,
            sink,
            mode: self.mode.name(),
            vcpus: self.vcpus,
            signals: Signals,
        };
        run::trace(py, self, debug, &args, &hooks)
    }

    fn __repr__(&self) -> String {
        format!(
            "<kvmtrace Machine mode={} memory_size={:#x} vcpus={}{}{}>",
            self.mode.name(),
            self.memory_size,
            self.vcpus,
            if self.irqchip { " irqchip" } else { "" },
            if self.closed() { " closed" } else { "" }
        )
    }
}
