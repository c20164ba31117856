//! `Machine.trace()` arguments, checked and turned into a [`TraceConfig`]. Every bad
//! value is an `InvalidConfigError` naming the parameter.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

use crate::error::Error;
use crate::kvm::regs::Gp;
use crate::py::args::{bool_arg, opt_u64_arg, small_arg, str_arg};
use crate::recorder::FIXED_BYTES_PER_EVENT;
use crate::runloop::TraceConfig;

/// Bytes of one chunk handed to a sink by default: rows in flight stay bounded in
/// bytes whatever the row width (the fixed columns plus 8 per register column).
const SINK_CHUNK_BYTES: usize = 24 << 20;

fn default_sink_rows(registers: usize) -> usize {
    (SINK_CHUNK_BYTES / (FIXED_BYTES_PER_EVENT + 8 * registers)).clamp(4096, 1 << 20)
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

/// The parsed arguments of one `trace()` call.
pub struct TraceArgs {
    pub cfg: TraceConfig,
    pub raise_on_fault: bool,
}

impl TraceArgs {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        max_events: Option<&Bound<'_, PyAny>>,
        stop_at: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        registers: Option<&Bound<'_, PyAny>>,
        has_sink: bool,
        sink_rows: Option<&Bound<'_, PyAny>>,
        raise_on_fault: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<TraceArgs> {
        let max_events = opt_u64_arg(max_events, "max_events")?;
        if max_events == Some(0) {
            return Err(
                Error::invalid("max_events", "must be at least 1 (or None for no limit)").into(),
            );
        }
        let regs = registers_arg(registers)?;
        let sink_rows = match sink_rows {
            Some(s) if !s.is_none() => Some(small_arg::<usize>(s, "sink_rows")?.max(1)),
            _ => has_sink.then(|| default_sink_rows(regs.len())),
        };
        Ok(TraceArgs {
            cfg: TraceConfig {
                max_events,
                stop_at: opt_u64_arg(stop_at, "stop_at")?,
                timeout: timeout_arg(timeout)?,
                regs,
                sink_rows: sink_rows.filter(|_| has_sink),
                progress: None,
            },
            raise_on_fault: match raise_on_fault {
                Some(b) => bool_arg(b, "raise_on_fault")?,
                None => true,
            },
        })
    }
}
