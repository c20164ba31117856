//! `GuestDebug` and `HwBreakpoint`: the guest-debug configuration, validated in Rust.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::arch::dr7::BpKind;
use crate::debug::{GuestDebug, HwBreakpoint, RawDebugRegs};
use crate::error::Error;
use crate::py::args::{bool_arg, small_arg, str_arg, u64_arg};

/// One hardware breakpoint (DR0-DR3): `HwBreakpoint(addr, kind="exec", length=1)`.
#[pyclass(frozen, eq, hash, name = "HwBreakpoint", module = "kvmtrace")]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyHwBreakpoint {
    pub addr: u64,
    pub kind: &'static str,
    pub length: u8,
}

impl PyHwBreakpoint {
    pub fn inner(&self) -> HwBreakpoint {
        // Validated in `new`.
        HwBreakpoint {
            addr: self.addr,
            kind: BpKind::parse(self.kind).unwrap_or(BpKind::Exec),
            len: self.length,
        }
    }

    pub fn from_inner(b: &HwBreakpoint) -> Self {
        PyHwBreakpoint {
            addr: b.addr,
            kind: b.kind.name(),
            length: b.len,
        }
    }
}

#[pymethods]
impl PyHwBreakpoint {
    #[new]
    #[pyo3(signature = (addr, kind = None, length = None))]
    fn new(
        addr: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        length: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let addr = u64_arg(addr, "addr")?;
        let kind = match kind {
            Some(k) => BpKind::parse(&str_arg(k, "kind")?)?,
            None => BpKind::Exec,
        };
        let len: u8 = match length {
            Some(l) => small_arg(l, "length")?,
            None => 1,
        };
        let b = HwBreakpoint::new(addr, kind, len)?;
        Ok(Self::from_inner(&b))
    }

    #[getter]
    fn addr(&self) -> u64 {
        self.addr
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    #[getter]
    fn length(&self) -> u8 {
        self.length
    }

    /// This breakpoint's DR7 bits when it sits in slot `slot` (0-3).
    fn dr7_bits(&self, slot: &Bound<'_, PyAny>) -> PyResult<u64> {
        let slot: usize = small_arg(slot, "slot")?;
        if slot > 3 {
            return Err(Error::invalid("slot", format!("{slot} is not 0-3")).into());
        }
        Ok(self.inner().dr7_bits(slot))
    }

    fn __repr__(&self) -> String {
        format!(
            "HwBreakpoint({:#x}, kind={:?}, length={})",
            self.addr, self.kind, self.length
        )
    }
}

const DICT_KEYS: [&str; 8] = [
    "single_step",
    "block_irq",
    "hw_breakpoints",
    "sw_breakpoints",
    "inject_db",
    "inject_bp",
    "general_detect",
    "raw_debugreg",
];

/// A `KVM_SET_GUEST_DEBUG` configuration.
#[pyclass(frozen, name = "GuestDebug", module = "kvmtrace")]
#[derive(Clone)]
pub struct PyGuestDebug {
    pub inner: GuestDebug,
}

fn to_breakpoint(item: &Bound<'_, PyAny>) -> PyResult<HwBreakpoint> {
    if let Ok(b) = item.cast::<PyHwBreakpoint>() {
        return Ok(b.get().inner());
    }
    if let Ok(t) = item.cast::<PyTuple>() {
        let args: Vec<Bound<'_, PyAny>> = t.iter().collect();
        if !(1..=3).contains(&args.len()) {
            return Err(
                Error::invalid("hw_breakpoints", "a tuple entry is (addr, kind, length)").into(),
            );
        }
        return Ok(PyHwBreakpoint::new(&args[0], args.get(1), args.get(2))?.inner());
    }
    if item.is_instance_of::<pyo3::types::PyInt>() {
        return Ok(PyHwBreakpoint::new(item, None, None)?.inner());
    }
    let tn = item
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(Error::invalid(
        "hw_breakpoints",
        format!("entries are HwBreakpoint, (addr, kind, length) or an address, not {tn}"),
    )
    .into())
}

fn iterate<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if obj.is_instance_of::<pyo3::types::PyString>() || obj.is_instance_of::<pyo3::types::PyBytes>()
    {
        return Err(Error::invalid(field, "expected a list").into());
    }
    let it = obj
        .try_iter()
        .map_err(|_| Error::invalid(field, "expected a list"))?;
    it.collect::<PyResult<Vec<_>>>()
}

#[pymethods]
impl PyGuestDebug {
    #[new]
    #[pyo3(signature = (single_step = None, block_irq = None, hw_breakpoints = None, sw_breakpoints = None,
                        inject_db = None, inject_bp = None, general_detect = None, raw_debugreg = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        single_step: Option<&Bound<'_, PyAny>>,
        block_irq: Option<&Bound<'_, PyAny>>,
        hw_breakpoints: Option<&Bound<'_, PyAny>>,
        sw_breakpoints: Option<&Bound<'_, PyAny>>,
        inject_db: Option<&Bound<'_, PyAny>>,
        inject_bp: Option<&Bound<'_, PyAny>>,
        general_detect: Option<&Bound<'_, PyAny>>,
        raw_debugreg: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let flag = |o: Option<&Bound<'_, PyAny>>, f: &str| {
            o.filter(|o| !o.is_none())
                .map_or(Ok(false), |o| bool_arg(o, f))
        };
        let mut g = GuestDebug {
            single_step: flag(single_step, "single_step")?,
            block_irq: flag(block_irq, "block_irq")?,
            inject_db: flag(inject_db, "inject_db")?,
            inject_bp: flag(inject_bp, "inject_bp")?,
            general_detect: flag(general_detect, "general_detect")?,
            ..Default::default()
        };
        if let Some(hw) = hw_breakpoints.filter(|o| !o.is_none()) {
            for item in iterate(hw, "hw_breakpoints")? {
                g.hw_breakpoints.push(to_breakpoint(&item)?);
            }
        }
        if let Some(sw) = sw_breakpoints.filter(|o| !o.is_none()) {
            for item in iterate(sw, "sw_breakpoints")? {
                g.sw_breakpoints.push(u64_arg(&item, "sw_breakpoints")?);
            }
        }
        if let Some(raw) = raw_debugreg.filter(|o| !o.is_none()) {
            let v = iterate(raw, "raw_debugreg")?;
            if v.len() != 5 {
                return Err(Error::invalid(
                    "raw_debugreg",
                    format!("expected (dr0, dr1, dr2, dr3, dr7), got {} values", v.len()),
                )
                .into());
            }
            let mut r = RawDebugRegs {
                dr: [0; 4],
                dr7: u64_arg(&v[4], "raw_debugreg")?,
            };
            for (slot, val) in r.dr.iter_mut().zip(&v) {
                *slot = u64_arg(val, "raw_debugreg")?;
            }
            g.raw = Some(r);
        }
        g.validate()?;
        Ok(PyGuestDebug { inner: g })
    }

    #[getter]
    fn single_step(&self) -> bool {
        self.inner.single_step
    }
    #[getter]
    fn block_irq(&self) -> bool {
        self.inner.block_irq
    }
    #[getter]
    fn inject_db(&self) -> bool {
        self.inner.inject_db
    }
    #[getter]
    fn inject_bp(&self) -> bool {
        self.inner.inject_bp
    }
    #[getter]
    fn general_detect(&self) -> bool {
        self.inner.general_detect
    }
    #[getter]
    fn hw_breakpoints(&self) -> Vec<PyHwBreakpoint> {
        self.inner
            .hw_breakpoints
            .iter()
            .map(PyHwBreakpoint::from_inner)
            .collect()
    }
    #[getter]
    fn sw_breakpoints(&self) -> Vec<u64> {
        self.inner.sw_breakpoints.clone()
    }
    #[getter]
    fn raw_debugreg(&self) -> Option<(u64, u64, u64, u64, u64)> {
        self.inner
            .raw
            .map(|r| (r.dr[0], r.dr[1], r.dr[2], r.dr[3], r.dr7))
    }
    /// DR7 as this configuration programs it.
    #[getter]
    fn dr7(&self) -> u64 {
        self.inner.dr7()
    }
    /// `kvm_guest_debug.arch.debugreg`: DR0-DR3, two unused slots, DR7.
    #[getter]
    fn debugreg(&self) -> [u64; 8] {
        let d = self.inner.dr0_3();
        [d[0], d[1], d[2], d[3], 0, 0, 0, self.inner.dr7()]
    }
    /// `kvm_guest_debug.control` including one-shot injection flags.
    #[getter]
    fn control(&self) -> u32 {
        self.inner.control() | self.inner.inject_flags()
    }

    /// Plain dict (JSON-ready), the inverse of `from_dict`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("single_step", self.inner.single_step)?;
        d.set_item("block_irq", self.inner.block_irq)?;
        let hw = PyList::empty(py);
        for b in &self.inner.hw_breakpoints {
            hw.append((b.addr, b.kind.name(), b.len))?;
        }
        d.set_item("hw_breakpoints", hw)?;
        d.set_item("sw_breakpoints", self.inner.sw_breakpoints.clone())?;
        d.set_item("inject_db", self.inner.inject_db)?;
        d.set_item("inject_bp", self.inner.inject_bp)?;
        d.set_item("general_detect", self.inner.general_detect)?;
        d.set_item("raw_debugreg", self.raw_debugreg())?;
        Ok(d)
    }

    #[staticmethod]
    fn from_dict(d: &Bound<'_, PyAny>) -> PyResult<Self> {
        let d = d.cast::<PyDict>().map_err(|_| {
            Error::invalid(
                "from_dict",
                "expected a dict as made by GuestDebug.to_dict()",
            )
        })?;
        for k in d.keys() {
            let k = k.str().map(|s| s.to_string()).unwrap_or_default();
            if !DICT_KEYS.contains(&k.as_str()) {
                return Err(Error::invalid(
                    k.clone(),
                    format!(
                        "unknown GuestDebug field {k:?} (fields: {})",
                        DICT_KEYS.join(", ")
                    ),
                )
                .into());
            }
        }
        let get = |k: &str| d.get_item(k).ok().flatten();
        let hw = match get("hw_breakpoints") {
            Some(l) => {
                let items = iterate(&l, "hw_breakpoints")?;
                let tuples: Vec<Bound<'_, PyAny>> = items
                    .into_iter()
                    .map(|i| {
                        PyTuple::new(d.py(), iterate(&i, "hw_breakpoints")?).map(|t| t.into_any())
                    })
                    .collect::<PyResult<_>>()?;
                Some(PyList::new(d.py(), tuples)?.into_any())
            }
            None => None,
        };
        Self::new(
            get("single_step").as_ref(),
            get("block_irq").as_ref(),
            hw.as_ref(),
            get("sw_breakpoints").as_ref(),
            get("inject_db").as_ref(),
            get("inject_bp").as_ref(),
            get("general_detect").as_ref(),
            get("raw_debugreg").as_ref(),
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyGuestDebug>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __repr__(&self) -> String {
        let mut parts = Vec::new();
        let g = &self.inner;
        for (on, name) in [
            (g.single_step, "single_step=True"),
            (g.block_irq, "block_irq=True"),
            (g.inject_db, "inject_db=True"),
            (g.inject_bp, "inject_bp=True"),
            (g.general_detect, "general_detect=True"),
        ] {
            if on {
                parts.push(name.to_string());
            }
        }
        if !g.hw_breakpoints.is_empty() {
            let bps: Vec<String> = g
                .hw_breakpoints
                .iter()
                .map(|b| PyHwBreakpoint::from_inner(b).__repr__())
                .collect();
            parts.push(format!("hw_breakpoints=[{}]", bps.join(", ")));
        }
        if !g.sw_breakpoints.is_empty() {
            let s: Vec<String> = g.sw_breakpoints.iter().map(|a| format!("{a:#x}")).collect();
            parts.push(format!("sw_breakpoints=[{}]", s.join(", ")));
        }
        if let Some(r) = g.raw {
            parts.push(format!(
                "raw_debugreg=({:#x}, {:#x}, {:#x}, {:#x}, {:#x})",
                r.dr[0], r.dr[1], r.dr[2], r.dr[3], r.dr7
            ));
        }
        format!("GuestDebug({})", parts.join(", "))
    }
}
