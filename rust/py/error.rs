//! The one place where a core [`Error`], or a stop reason that is a failure, becomes
//! a Python exception. A Python exception raised inside a callback travels through
//! the engine as `Error::Callback`/`Error::Interrupted` and comes out as itself.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::PyErr;

use crate::boot::emulation::{self, FaultSite};
use crate::error::{Callback, CallbackError, Error};
use crate::py::exceptions::*;
use crate::runloop::StopReason;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| to_pyerr(py, &e))
    }
}

/// The Python exception inside a callback error, if it is one.
fn python_error(py: Python<'_>, source: &CallbackError) -> Option<PyErr> {
    source.downcast_ref::<PyErr>().map(|e| e.clone_ref(py))
}

/// Wrap a Python exception a callback raised, keeping it for `to_pyerr`.
pub fn from_callback(what: Callback, e: PyErr) -> Error {
    Python::attach(|py| {
        if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            // Ctrl-C that landed inside a callback is an interrupt, not a failure of it.
            Error::Interrupted {
                cause: Some(Box::new(e)),
            }
        } else {
            Error::callback(what, e)
        }
    })
}

/// The exception for `e` (by reference: stop reasons share their error).
pub fn to_pyerr(py: Python<'_>, e: &Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::KvmMissing => KvmUnavailableError::new_err(msg),
        Error::KvmPermission => KvmPermissionError::new_err(msg),
        Error::Unsupported { .. } => UnsupportedError::new_err(msg),
        Error::InvalidConfig { .. } | Error::UnknownRegister(_) => {
            PyErr::from_type(invalid_config_error(py), msg)
        }
        Error::OutOfRange { .. } => PyErr::from_type(guest_memory_error(py), msg),
        Error::Closed => MachineClosedError::new_err(msg),
        Error::Busy => MachineBusyError::new_err(msg),
        Error::Kvm { source, .. } => {
            let err = KvmIoctlError::new_err(msg);
            let _ = err.value(py).setattr("errno", source.errno());
            err
        }
        Error::Callback {
            what: Callback::Sink,
            source,
        } => {
            let err = SinkError::new_err(format!(
                "the trace sink failed: {source}; the rows it did not take are kept in memory in .trace"
            ));
            err.set_cause(py, python_error(py, source));
            err
        }
        Error::Callback { source, .. } => {
            python_error(py, source).unwrap_or_else(|| InternalError::new_err(msg))
        }
        Error::Interrupted { cause } => cause
            .as_ref()
            .and_then(|c| python_error(py, c))
            .unwrap_or_else(|| PyKeyboardInterrupt::new_err("trace interrupted")),
        Error::Thread(_) | Error::Internal(_) => InternalError::new_err(msg),
    }
}

/// The exception a finished trace raises for its stop reason (None: the trace is
/// returned). Guest faults raise only with `raise_on_fault`. `site` is where the
/// vCPU stopped, for an emulation failure (see `boot/emulation.rs`).
pub fn stop_error(
    py: Python<'_>,
    stop: &StopReason,
    raise_on_fault: bool,
    site: Option<&FaultSite>,
) -> Option<PyErr> {
    match stop {
        StopReason::Error(e) => Some(to_pyerr(py, e)),
        StopReason::Shutdown if raise_on_fault => Some(GuestFaultError::new_err(
            "the guest shut down (triple fault: an exception it could not deliver, e.g. no IDT handler); \
             .trace holds the events so far, .registers the state of the vCPU that faulted (.vcpu)",
        )),
        StopReason::FailEntry { reason } if raise_on_fault => Some(GuestFaultError::new_err(format!(
            "KVM_RUN failed VM entry (hardware_entry_failure_reason={reason:#x}): the vCPU state is invalid"
        ))),
        StopReason::InternalError { suberror, data } if raise_on_fault => {
            let e = match site {
                Some(site) if *suberror == emulation::SUBERROR_EMULATION => {
                    let e = KvmInternalError::new_err(emulation::message(site));
                    let v = e.value(py);
                    let _ = v.setattr("instruction", emulation::instruction(site));
                    let _ = v.setattr("pc", site.pc);
                    let _ = v.setattr("symbol", site.symbol.clone());
                    e
                }
                _ => KvmInternalError::new_err(format!(
                    "KVM internal error, suberror {suberror} ({}), data {data:x?}",
                    suberror_name(*suberror)
                )),
            };
            let _ = e.value(py).setattr("suberror", suberror);
            let _ = e.value(py).setattr("data", data.clone());
            Some(e)
        }
        _ => None,
    }
}

/// What a failed trace carries: the partial trace, the stop reason and, for a fault,
/// the registers and index of the vCPU that faulted.
pub fn attach_run(
    py: Python<'_>,
    err: &PyErr,
    trace: Bound<'_, PyAny>,
    stop_reason: &str,
    fault: Option<(usize, Bound<'_, PyDict>)>,
) {
    let v = err.value(py);
    let _ = v.setattr("trace", trace);
    let _ = v.setattr("stop_reason", stop_reason);
    if let Some((vcpu, regs)) = fault {
        let _ = v.setattr("vcpu", vcpu);
        let _ = v.setattr("registers", regs);
    }
}

pub fn suberror_name(s: u32) -> &'static str {
    match s {
        1 => "KVM_INTERNAL_ERROR_EMULATION",
        2 => "KVM_INTERNAL_ERROR_SIMUL_EX",
        3 => "KVM_INTERNAL_ERROR_DELIVERY_EV",
        4 => "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kvm_run_failed() -> StopReason {
        StopReason::error(Error::Kvm {
            op: "KVM_RUN",
            source: kvm_ioctls::Error::new(libc::EFAULT),
        })
    }

    #[test]
    fn kvm_errors_from_a_stop_keep_errno() {
        Python::initialize();
        Python::attach(|py| {
            let e = stop_error(py, &kvm_run_failed(), true, None).expect("an error stop raises");
            assert!(e.is_instance_of::<KvmIoctlError>(py));
            let errno: i32 = e.value(py).getattr("errno").unwrap().extract().unwrap();
            assert_eq!(errno, libc::EFAULT);
        });
    }

    #[test]
    fn callback_exceptions_come_out_as_themselves() {
        Python::initialize();
        Python::attach(|py| {
            let original = pyo3::exceptions::PyLookupError::new_err("no such port");
            let marker = original.value(py).clone().unbind();
            let stop = StopReason::error(from_callback(Callback::IoHandler, original));
            assert_eq!(stop.name(), "handler_error");
            let e = stop_error(py, &stop, true, None).unwrap();
            assert!(e.value(py).is(marker.bind(py)), "the very exception object");
            let sink = StopReason::error(from_callback(
                Callback::Sink,
                pyo3::exceptions::PyOSError::new_err("disk full"),
            ));
            let e = stop_error(py, &sink, true, None).unwrap();
            assert!(e.is_instance_of::<SinkError>(py));
            assert!(e
                .value(py)
                .getattr("__cause__")
                .unwrap()
                .is_instance_of::<pyo3::exceptions::PyOSError>());
            let ctrl_c = from_callback(Callback::Sink, PyKeyboardInterrupt::new_err(()));
            let stop = StopReason::error(ctrl_c);
            assert_eq!(
                stop.name(),
                "interrupted",
                "Ctrl-C inside a callback is an interrupt"
            );
            assert!(stop_error(py, &stop, true, None)
                .unwrap()
                .is_instance_of::<PyKeyboardInterrupt>(py));
        });
    }

    #[test]
    fn faults_raise_only_when_asked() {
        Python::initialize();
        Python::attach(|py| {
            assert!(stop_error(py, &StopReason::Shutdown, false, None).is_none());
            let e = stop_error(py, &StopReason::Shutdown, true, None).unwrap();
            assert!(e.is_instance_of::<GuestFaultError>(py));
            assert!(stop_error(py, &StopReason::Timeout, true, None).is_none());
        });
    }
}
