//! The one place where a core [`Error`] becomes a Python exception.

use pyo3::prelude::*;
use pyo3::PyErr;

use crate::error::Error;
use crate::py::exceptions::*;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::KvmMissing => KvmUnavailableError::new_err(msg),
            Error::KvmPermission => KvmPermissionError::new_err(msg),
            Error::Unsupported { .. } => UnsupportedError::new_err(msg),
            Error::InvalidConfig { .. } | Error::UnknownRegister(_) => {
                Python::attach(|py| PyErr::from_type(invalid_config_error(py), msg))
            }
            Error::OutOfRange { .. } => {
                Python::attach(|py| PyErr::from_type(guest_memory_error(py), msg))
            }
            Error::Closed => MachineClosedError::new_err(msg),
            Error::Busy => MachineBusyError::new_err(msg),
            Error::Kvm { source, .. } => {
                let err = KvmIoctlError::new_err(msg);
                Python::attach(|py| {
                    let _ = err.value(py).setattr("errno", source.errno());
                });
                err
            }
            Error::Internal(_) => InternalError::new_err(msg),
        }
    }
}
