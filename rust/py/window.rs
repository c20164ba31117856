//! `Window`: where a trace single-steps (see `runloop/window.rs`). `start` and
//! `until` may be symbols; `Machine.trace` resolves them to addresses with the
//! loaded program's symbols before the run (`resolved`).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};

use crate::error::Error;
use crate::py::args::{bool_arg, u64_arg};
use crate::runloop::window::WindowSpec;

/// An address, or a symbol still to be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Addr(u64),
    Symbol(String),
}

impl Place {
    fn parse(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Place> {
        if obj.is_instance_of::<PyString>() {
            let s: String = obj.extract()?;
            if s.is_empty() {
                return Err(Error::invalid(field, "the symbol is empty").into());
            }
            return Ok(Place::Symbol(s));
        }
        if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
            return Ok(Place::Addr(u64_arg(obj, field)?));
        }
        let r = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        Err(Error::invalid(
            field,
            format!("expected an address (int) or a symbol (str), got {r}"),
        )
        .into())
    }

    fn to_object(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Place::Addr(a) => a.into_pyobject(py)?.into_any().unbind(),
            Place::Symbol(s) => PyString::new(py, s).into_any().unbind(),
        })
    }

    fn text(&self) -> String {
        match self {
            Place::Addr(a) => format!("{a:#x}"),
            Place::Symbol(s) => format!("{s:?}"),
        }
    }
}

#[pyclass(frozen, eq, name = "Window", module = "kvmtrace._core")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyWindow {
    start: Place,
    until: Option<Place>,
    steps: Option<u64>,
    /// None: every time `start` runs.
    repeat: Option<u64>,
    block_irq: bool,
}

impl PyWindow {
    pub fn from_spec(s: &WindowSpec) -> PyWindow {
        PyWindow {
            start: Place::Addr(s.start),
            until: s.until.map(Place::Addr),
            steps: s.steps,
            repeat: s.repeat,
            block_irq: s.block_irq,
        }
    }

    /// The run loop's spec; every place must be an address by now.
    pub fn spec(&self) -> PyResult<WindowSpec> {
        let addr = |p: &Place, field: &str| {
            match p {
            Place::Addr(a) => Ok(*a),
            Place::Symbol(s) => Err(Error::invalid(
                field,
                format!("{s:?} is a symbol; load a program or kernel with symbols so Machine.trace can resolve it"),
            )),
        }
        };
        Ok(WindowSpec {
            start: addr(&self.start, "window.start")?,
            until: self
                .until
                .as_ref()
                .map(|u| addr(u, "window.until"))
                .transpose()?,
            steps: self.steps,
            repeat: self.repeat,
            block_irq: self.block_irq,
        })
    }
}

fn repeat_arg(obj: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return if b.is_true() {
            Ok(None)
        } else {
            Err(Error::invalid(
                "window.repeat",
                "False would open no window; give True (every hit) or a count",
            )
            .into())
        };
    }
    match u64_arg(obj, "window.repeat")? {
        0 => Err(Error::invalid(
            "window.repeat",
            "must be at least 1 (or True for every hit)",
        )
        .into()),
        k => Ok(Some(k)),
    }
}

#[pymethods]
impl PyWindow {
    #[new]
    #[pyo3(signature = (start, *, steps = None, until = None, repeat = None, block_irq = None))]
    fn new(
        start: &Bound<'_, PyAny>,
        steps: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        repeat: Option<&Bound<'_, PyAny>>,
        block_irq: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let steps = match steps.filter(|s| !s.is_none()) {
            Some(s) => match u64_arg(s, "window.steps")? {
                0 => return Err(Error::invalid("window.steps", "must be at least 1").into()),
                n => Some(n),
            },
            None => None,
        };
        let until = match until.filter(|u| !u.is_none()) {
            Some(u) => Some(Place::parse(u, "window.until")?),
            None => None,
        };
        if steps.is_none() && until.is_none() {
            return Err(Error::invalid(
                "window",
                "a window needs steps=N or until=ADDRESS_OR_SYMBOL (or both) to know where it ends",
            )
            .into());
        }
        Ok(PyWindow {
            start: Place::parse(start, "window.start")?,
            until,
            steps,
            repeat: match repeat.filter(|r| !r.is_none()) {
                Some(r) => repeat_arg(r)?,
                None => None,
            },
            block_irq: match block_irq.filter(|b| !b.is_none()) {
                Some(b) => bool_arg(b, "window.block_irq")?,
                None => true,
            },
        })
    }

    /// Where a window opens: an address or a symbol.
    #[getter]
    fn start(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.start.to_object(py)
    }
    #[getter]
    fn until(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.until.as_ref().map(|u| u.to_object(py)).transpose()
    }
    #[getter]
    fn steps(&self) -> Option<u64> {
        self.steps
    }
    /// Windows per vCPU; None: every time `start` runs.
    #[getter]
    fn repeat(&self) -> Option<u64> {
        self.repeat
    }
    #[getter]
    fn block_irq(&self) -> bool {
        self.block_irq
    }
    /// The symbols this window names (resolved by `Machine.trace`).
    #[getter]
    fn symbols(&self) -> Vec<String> {
        [Some(&self.start), self.until.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| match p {
                Place::Symbol(s) => Some(s.clone()),
                Place::Addr(_) => None,
            })
            .collect()
    }

    /// This window with `start` (and `until`) as addresses.
    #[pyo3(signature = (start, until = None))]
    fn resolved(&self, start: u64, until: Option<u64>) -> PyWindow {
        PyWindow {
            start: Place::Addr(start),
            until: until.map(Place::Addr).or_else(|| self.until.clone()),
            ..self.clone()
        }
    }

    fn __repr__(&self) -> String {
        let mut s = format!("Window(start={}", self.start.text());
        if let Some(n) = self.steps {
            s += &format!(", steps={n}");
        }
        if let Some(u) = &self.until {
            s += &format!(", until={}", u.text());
        }
        s += &match self.repeat {
            None => ", repeat=True".to_string(),
            Some(k) => format!(", repeat={k}"),
        };
        format!(
            "{s}, block_irq={})",
            if self.block_irq { "True" } else { "False" }
        )
    }
}
