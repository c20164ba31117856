//! The run loop's callbacks into Python: port and MMIO handlers, the sink, the
//! signal check. Each Python exception is kept, typed, inside the error it returns.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{Callback, Error, Result};
use crate::py::detach::Signals;
use crate::py::error::from_callback;
use crate::py::exceptions::invalid_config_error;
use crate::py::trace::PyTrace;
use crate::recorder::Columns;
use crate::runloop::{Handled, Hooks};

pub struct PyHooks {
    pub io: Option<Py<PyAny>>,
    pub mmio: Option<Py<PyAny>>,
    pub sink: Option<Py<PyAny>>,
    pub mode: &'static str,
    pub vcpus: usize,
    pub signals: Signals,
}

impl PyHooks {
    fn call(
        &self,
        f: &Option<Py<PyAny>>,
        what: Callback,
        vcpu: usize,
        at: u64,
        write: Option<&[u8]>,
        size: usize,
    ) -> Handled {
        let Some(f) = f else { return Handled::No };
        Python::attach(|py| {
            let data = write.map(|d| PyBytes::new(py, d));
            let answer = f.call1(py, (at, data, size, vcpu)).and_then(|v| {
                if write.is_some() {
                    Ok(Vec::new())
                } else {
                    read_answer(v.bind(py), size)
                }
            });
            match answer {
                Ok(d) => Handled::Yes(d),
                Err(e) => Handled::Failed(from_callback(what, e)),
            }
        })
    }
}

/// The bytes a read handler returned (an int is little-endian, `size` bytes).
fn read_answer(v: &Bound<'_, PyAny>, size: usize) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.extract::<&[u8]>() {
        return Ok(b.to_vec());
    }
    if let Ok(i) = v.extract::<u64>() {
        return Ok(i.to_le_bytes()[..size.min(8)].to_vec());
    }
    let tn = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(PyErr::from_type(
        invalid_config_error(v.py()),
        format!("a read handler must return int or bytes, got {tn}"),
    ))
}

impl Hooks for PyHooks {
    fn io(&self, vcpu: usize, port: u16, write: Option<&[u8]>, size: usize) -> Handled {
        self.call(
            &self.io,
            Callback::IoHandler,
            vcpu,
            u64::from(port),
            write,
            size,
        )
    }

    fn mmio(&self, vcpu: usize, addr: u64, write: Option<&[u8]>, size: usize) -> Handled {
        self.call(&self.mmio, Callback::MmioHandler, vcpu, addr, write, size)
    }

    fn poll(&self) -> Result<()> {
        self.signals.check()
    }

    fn has_vcpu_callbacks(&self) -> bool {
        self.io.is_some() || self.mmio.is_some()
    }

    fn chunk(&self, rows: &Arc<Columns>) -> Result<()> {
        let Some(sink) = &self.sink else {
            return Err(Error::callback(Callback::Sink, "no sink"));
        };
        Python::attach(|py| {
            let t = Bound::new(py, PyTrace::chunk(py, rows.clone(), self.mode, self.vcpus))?;
            sink.call_method1(py, "write", (t,)).map(drop)
        })
        .map_err(|e| from_callback(Callback::Sink, e))
    }
}
