//! One `Machine.trace()` call: run the engine detached from the GIL, then turn the
//! outcome into a `Trace` (returned, or attached to the exception a stop raises).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::debug::GuestDebug;
use crate::error::Error;
use crate::kvm::vm::Vm;
use crate::py::detach::detached;
use crate::py::error::{attach_run, stop_error};
use crate::py::hooks::PyHooks;
use crate::py::machine::PyMachine;
use crate::py::machine_state::register_dict;
use crate::py::trace::PyTrace;
use crate::py::trace_args::TraceArgs;
use crate::runloop::{self, Stop};

/// For a guest fault: the vCPU that faulted and its registers.
fn fault_state<'py>(
    py: Python<'py>,
    vm: &Vm,
    stop: &Stop,
) -> PyResult<Option<(usize, Bound<'py, PyDict>)>> {
    if !stop.reason.is_fault() {
        return Ok(None);
    }
    let i = stop.vcpu.unwrap_or(0);
    Ok(Some((i, register_dict(py, &vm.vcpus[i])?)))
}

pub fn trace(
    py: Python<'_>,
    m: &PyMachine,
    debug: GuestDebug,
    args: &TraceArgs,
    hooks: &PyHooks,
) -> PyResult<PyTrace> {
    let mut guard = m.lock()?;
    let inner = guard.as_mut().ok_or(Error::Closed)?;
    let result = {
        let vm = &mut inner.vm;
        detached(py, |_| runloop::trace(vm, &debug, &args.cfg, hooks))?
    };
    let code_regions = inner.code_snapshot();
    let fault = fault_state(py, &inner.vm, &result.stop)?;
    let site = crate::py::boot::fault_site(&inner.vm, &result.stop);
    drop(guard);

    let err = stop_error(py, &result.stop.reason, args.raise_on_fault, site.as_ref());
    let name = result.stop.reason.name();
    let trace = PyTrace::finished(
        py,
        result,
        debug,
        args.cfg.window.clone(),
        m.mode.name(),
        m.vcpus,
        code_regions,
    )?;
    match err {
        None => Ok(trace),
        Some(e) => {
            attach_run(py, &e, Bound::new(py, trace)?.into_any(), name, fault);
            Err(e)
        }
    }
}
