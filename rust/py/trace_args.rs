//! `Machine.trace()` arguments, checked and turned into a [`TraceConfig`]. Every bad
//! value is an `InvalidConfigError` naming the parameter.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

use crate::error::Error;
use crate::kvm::regs::Gp;
use crate::py::args::{bool_arg, opt_u64_arg, small_arg, str_arg};
use crate::py::window::PyWindow;
use crate::recorder::MATERIALIZED_BYTES_PER_EVENT;
use crate::runloop::window::WindowSpec;
use crate::runloop::TraceConfig;

/// Bytes of one chunk handed to a sink by default: rows in flight stay bounded in
/// bytes whatever the row width. The width is the materialised one (the fixed
/// columns as the sink's Arrow table holds them, plus 8 per register column): the
/// writer's memory scales with that, not with the engine's compact storage.
const SINK_CHUNK_BYTES: usize = 24 << 20;

fn default_sink_rows(registers: usize) -> usize {
    (SINK_CHUNK_BYTES / (MATERIALIZED_BYTES_PER_EVENT + 8 * registers)).clamp(4096, 1 << 20)
}

fn timeout_arg(t: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(t) = t.filter(|t| !t.is_none()) else {
        return Ok(None);
    };
    if t.is_instance_of::<PyBool>() {
        return Err(Error::invalid("timeout", "expected seconds as a number, not a bool").into());
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
    Ok(Some(Duration::from_secs_f64(s)))
}

fn registers_arg(registers: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Gp>> {
    let mut regs = Vec::new();
    let Some(r) = registers.filter(|r| !r.is_none()) else {
        return Ok(regs);
    };
    if r.is_instance_of::<PyString>() {
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
        let name = str_arg(&item?, "registers")?;
        let g = Gp::parse(&name.to_ascii_lowercase())?;
        if regs.contains(&g) {
            return Err(Error::invalid("registers", format!("{name:?} is listed twice")).into());
        }
        regs.push(g);
    }
    Ok(regs)
}

/// The raw arguments of one `trace()` call, as Python gave them.
pub struct TraceArgsIn<'a, 'py> {
    pub max_events: Option<&'a Bound<'py, PyAny>>,
    pub stop_at: Option<&'a Bound<'py, PyAny>>,
    pub timeout: Option<&'a Bound<'py, PyAny>>,
    pub registers: Option<&'a Bound<'py, PyAny>>,
    pub has_sink: bool,
    pub sink_rows: Option<&'a Bound<'py, PyAny>>,
    pub raise_on_fault: Option<&'a Bound<'py, PyAny>>,
    pub window: Option<&'a Bound<'py, PyAny>>,
    pub ring: Option<&'a Bound<'py, PyAny>>,
}

fn window_arg(w: Option<&Bound<'_, PyAny>>) -> PyResult<Option<WindowSpec>> {
    let Some(w) = w.filter(|w| !w.is_none()) else {
        return Ok(None);
    };
    let w = w
        .cast::<PyWindow>()
        .map_err(|_| Error::invalid("window", "expected a kvmtrace.Window"))?;
    Ok(Some(w.get().spec()?))
}

/// The parsed arguments of one `trace()` call.
pub struct TraceArgs {
    pub cfg: TraceConfig,
    pub raise_on_fault: bool,
}

impl TraceArgs {
    pub fn parse(a: TraceArgsIn<'_, '_>) -> PyResult<TraceArgs> {
        let max_events = opt_u64_arg(a.max_events, "max_events")?;
        if max_events == Some(0) {
            return Err(
                Error::invalid("max_events", "must be at least 1 (or None for no limit)").into(),
            );
        }
        let regs = registers_arg(a.registers)?;
        let has_sink = a.has_sink;
        let sink_rows = match a.sink_rows {
            Some(s) if !s.is_none() => Some(small_arg::<usize>(s, "sink_rows")?.max(1)),
            _ => has_sink.then(|| default_sink_rows(regs.len())),
        };
        let ring = match a.ring.filter(|r| !r.is_none()) {
            Some(r) => Some(small_arg::<usize>(r, "ring")?),
            None => None,
        };
        let cfg = TraceConfig {
            max_events,
            stop_at: opt_u64_arg(a.stop_at, "stop_at")?,
            timeout: timeout_arg(a.timeout)?,
            regs,
            sink_rows: sink_rows.filter(|_| has_sink),
            progress: None,
            window: window_arg(a.window)?,
            ring,
        };
        cfg.validate()?;
        Ok(TraceArgs {
            cfg,
            raise_on_fault: match a.raise_on_fault {
                Some(b) => bool_arg(b, "raise_on_fault")?,
                None => true,
            },
        })
    }
}
