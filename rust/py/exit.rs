//! `Exit`: one decoded vCPU exit, as `Machine.run_once` returns it.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::exits::Exit;

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

impl PyExit {
    pub fn new(py: Python<'_>, e: &Exit) -> PyExit {
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
        let bytes = |d: &[u8]| Some(PyBytes::new(py, d).unbind());
        match e {
            Exit::Debug(d) => {
                (x.exception, x.pc, x.dr6, x.dr7) =
                    (Some(d.exception), Some(d.pc), Some(d.dr6), Some(d.dr7));
            }
            Exit::IoOut { port, size, data } => {
                (x.port, x.size, x.data) = (Some(*port), Some(*size as usize), bytes(data));
            }
            Exit::IoIn { port, size, .. } => (x.port, x.size) = (Some(*port), Some(*size as usize)),
            Exit::MmioRead { addr, len } => (x.addr, x.size) = (Some(*addr), Some(*len as usize)),
            Exit::MmioWrite { addr, data } => {
                (x.addr, x.size, x.data) = (Some(*addr), Some(data.len()), bytes(data));
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
}
