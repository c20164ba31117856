//! The one exception hierarchy, rooted at `kvmtrace.KvmTraceError`.
//!
//! Configuration errors are also `ValueError`s and memory range errors also
//! `IndexError`s, so callers can catch them the Python way; those two need two bases,
//! which `create_exception!` cannot express, so they are built once with `type()`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    kvmtrace,
    KvmTraceError,
    PyException,
    "Base class of every kvmtrace error."
);
create_exception!(
    kvmtrace,
    KvmUnavailableError,
    KvmTraceError,
    "/dev/kvm is missing or cannot be used."
);
create_exception!(
    kvmtrace,
    KvmPermissionError,
    KvmUnavailableError,
    "/dev/kvm exists but this user may not open it."
);
create_exception!(
    kvmtrace,
    UnsupportedError,
    KvmTraceError,
    "The host's KVM lacks a capability the request needs."
);
create_exception!(
    kvmtrace,
    GuestFaultError,
    KvmTraceError,
    "The guest shut down (triple fault) or failed VM entry."
);
create_exception!(
    kvmtrace,
    KvmInternalError,
    GuestFaultError,
    "KVM reported KVM_EXIT_INTERNAL_ERROR (see .suberror)."
);
create_exception!(
    kvmtrace,
    KvmIoctlError,
    KvmTraceError,
    "A KVM ioctl failed unexpectedly (see .errno)."
);
create_exception!(
    kvmtrace,
    MachineClosedError,
    KvmTraceError,
    "The Machine was closed."
);
create_exception!(
    kvmtrace,
    MachineBusyError,
    KvmTraceError,
    "The Machine is in use by another thread."
);
create_exception!(
    kvmtrace,
    SinkError,
    KvmTraceError,
    "The trace sink could not be written; the rows are kept."
);
create_exception!(
    kvmtrace,
    TraceFileError,
    KvmTraceError,
    "A stored trace could not be read."
);
create_exception!(
    kvmtrace,
    InternalError,
    KvmTraceError,
    "A bug in kvmtrace (please report it)."
);

fn two_base_type(
    py: Python<'_>,
    name: &str,
    doc: &str,
    a: Bound<'_, PyType>,
    b: Bound<'_, PyType>,
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__module__", "kvmtrace")?;
    dict.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, [a, b])?;
    Ok(py
        .get_type::<PyType>()
        .call1((name, bases, dict))?
        .cast_into::<PyType>()?
        .unbind())
}

// Built once when the module is initialised (see `register`).
static INVALID_CONFIG: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GUEST_MEMORY: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `InvalidConfigError(KvmTraceError, ValueError)`: a parameter is wrong; the message names it.
pub fn invalid_config_error(py: Python<'_>) -> Bound<'_, PyType> {
    match INVALID_CONFIG.get(py) {
        Some(t) => t.bind(py).clone(),
        None => py.get_type::<PyValueError>(),
    }
}

/// `GuestMemoryError(InvalidConfigError, IndexError)`: an access outside guest memory.
pub fn guest_memory_error(py: Python<'_>) -> Bound<'_, PyType> {
    match GUEST_MEMORY.get(py) {
        Some(t) => t.bind(py).clone(),
        None => py.get_type::<PyIndexError>(),
    }
}

/// Add every exception type to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let doc = "A parameter is invalid; the message names the field.";
    let t = two_base_type(
        py,
        "InvalidConfigError",
        doc,
        py.get_type::<KvmTraceError>(),
        py.get_type::<PyValueError>(),
    )?;
    let _ = INVALID_CONFIG.set(py, t);
    let doc = "A guest-physical access outside the VM's memory.";
    let t = two_base_type(
        py,
        "GuestMemoryError",
        doc,
        invalid_config_error(py),
        py.get_type::<PyIndexError>(),
    )?;
    let _ = GUEST_MEMORY.set(py, t);
    m.add("KvmTraceError", py.get_type::<KvmTraceError>())?;
    m.add("KvmUnavailableError", py.get_type::<KvmUnavailableError>())?;
    m.add("KvmPermissionError", py.get_type::<KvmPermissionError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("InvalidConfigError", invalid_config_error(py))?;
    m.add("GuestMemoryError", guest_memory_error(py))?;
    m.add("GuestFaultError", py.get_type::<GuestFaultError>())?;
    m.add("KvmInternalError", py.get_type::<KvmInternalError>())?;
    m.add("KvmIoctlError", py.get_type::<KvmIoctlError>())?;
    m.add("MachineClosedError", py.get_type::<MachineClosedError>())?;
    m.add("MachineBusyError", py.get_type::<MachineBusyError>())?;
    m.add("SinkError", py.get_type::<SinkError>())?;
    m.add("TraceFileError", py.get_type::<TraceFileError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
