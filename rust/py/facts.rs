//! Hardware and schema facts exported to Python: DR6/DR7 bits and encoders, the
//! `KVM_GUESTDBG_*` names, register names, the column schema, stop reasons and
//! guest modes. Each is defined once in the core; Python imports them from here.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::arch::{self, dr6, dr7};
use crate::debug::flags;
use crate::error::Error;
use crate::kvm::layout::Mode;
use crate::kvm::regs;
use crate::py::args::{small_arg, str_arg};
use crate::recorder::{OPTIONAL_SCHEMA, SCHEMA};
use crate::runloop::stop;

/// DR6, the debug status register: bit masks and the clean value.
#[pyclass(frozen, name = "Dr6", module = "kvmtrace._core")]
pub struct PyDr6;

#[pymethods]
impl PyDr6 {
    #[classattr]
    const B0: u64 = dr6::B0;
    #[classattr]
    const B1: u64 = dr6::B1;
    #[classattr]
    const B2: u64 = dr6::B2;
    #[classattr]
    const B3: u64 = dr6::B3;
    #[classattr]
    const BD: u64 = dr6::BD;
    #[classattr]
    const BS: u64 = dr6::BS;
    #[classattr]
    const BT: u64 = dr6::BT;
    #[classattr]
    const RTM: u64 = dr6::RTM;
    #[classattr]
    const CLEAN: u64 = dr6::CLEAN;
    #[classattr]
    const FIXED_MASK: u64 = dr6::FIXED_MASK;
    #[classattr]
    const CAUSE_MASK: u64 = dr6::CAUSE_MASK;

    /// `B0|BS`-style names of the cause bits set in `value` (`RTM=0` when bit 16 is
    /// clear, `none` when no cause is set).
    #[staticmethod]
    fn names(value: u64) -> String {
        dr6::names(value)
    }

    /// `Bn` of slot `slot` (0-3).
    #[staticmethod]
    fn b(slot: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(dr6::B[slot_arg(slot)?])
    }
}

/// DR7, the debug control register: fixed bits and the per-slot field encoding.
#[pyclass(frozen, name = "Dr7", module = "kvmtrace._core")]
pub struct PyDr7;

#[pymethods]
impl PyDr7 {
    #[classattr]
    const FIXED_1: u64 = dr7::FIXED_1;
    #[classattr]
    const RTM: u64 = dr7::RTM;
    #[classattr]
    const GD: u64 = dr7::GD;
    #[classattr]
    const RESERVED_0: u64 = dr7::RESERVED_0;

    /// Breakpoint kinds and their R/W field values: {"exec": 0, "write": 1, "io": 2, "rw": 3}.
    #[classattr]
    #[allow(non_snake_case)]
    fn RW_BITS(py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        for (_, name, bits) in dr7::KINDS {
            d.set_item(name, bits)?;
        }
        Ok(d.unbind())
    }

    /// Breakpoint lengths and their LEN field values: {1: 0, 2: 1, 8: 2, 4: 3}.
    #[classattr]
    #[allow(non_snake_case)]
    fn LEN_BITS(py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        for (len, bits) in dr7::LENGTHS {
            d.set_item(len, bits)?;
        }
        Ok(d.unbind())
    }

    /// The L, R/W and LEN bits of one breakpoint in slot `slot` (0-3).
    #[staticmethod]
    fn slot_bits(
        slot: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let slot = slot_arg(slot)?;
        let kind = dr7::BpKind::parse(&str_arg(kind, "kind")?)?;
        let length: u8 = small_arg(length, "length")?;
        if dr7::len_bits(length).is_none() {
            return Err(Error::invalid("length", format!("{length} is not 1, 2, 4 or 8")).into());
        }
        Ok(dr7::slot_bits(slot, kind, length))
    }

    /// The enable pair (Ln | Gn) of slot `slot`.
    #[staticmethod]
    fn enable_mask(slot: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(dr7::enable_mask(slot_arg(slot)?))
    }

    /// The four slots of `value`: (enabled, kind, length) each.
    #[staticmethod]
    fn decode(value: u64) -> Vec<(bool, &'static str, u8)> {
        (0..4)
            .map(|i| {
                (
                    dr7::enabled(value, i),
                    dr7::kind_of(value, i).name(),
                    dr7::len_of(value, i),
                )
            })
            .collect()
    }
}

fn slot_arg(slot: &Bound<'_, PyAny>) -> PyResult<usize> {
    let s: usize = small_arg(slot, "slot")?;
    if s > 3 {
        return Err(Error::invalid("slot", format!("{s} is not 0-3")).into());
    }
    Ok(s)
}

/// `StopReason`, a `str` enum whose values are the engine's stop-reason names.
fn stop_reason_enum(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let members = PyList::empty(py);
    for n in stop::NAMES {
        members.append((n.to_ascii_uppercase(), n))?;
    }
    let kw = PyDict::new(py);
    kw.set_item("module", "kvmtrace")?;
    let e = py
        .import("enum")?
        .getattr("StrEnum")?
        .call(("StopReason", members), Some(&kw))?;
    e.setattr(
        "__doc__",
        "Why a trace ended (a str: compares equal to its value).",
    )?;
    Ok(e)
}

/// Add every fact to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyDr6>()?;
    m.add_class::<PyDr7>()?;
    m.add("VECTOR_DB", arch::VECTOR_DB)?;
    m.add("VECTOR_BP", arch::VECTOR_BP)?;
    m.add("VECTOR_UD", arch::VECTOR_UD)?;
    m.add("RFLAGS_TF", arch::rflags::TF)?;
    m.add("RFLAGS_IF", arch::rflags::IF)?;
    m.add("RFLAGS_IOPL", arch::rflags::IOPL_MASK)?;
    m.add("RFLAGS_RF", arch::rflags::RF)?;
    let f = PyDict::new(py);
    for (bit, name) in flags::ALL {
        f.set_item(bit, name)?;
    }
    m.add("GUESTDBG_FLAGS", f)?;
    m.add("LEGACY_GUESTDBG_FLAGS", flags::LEGACY)?;
    m.add(
        "GP_REGISTERS",
        PyTuple::new(py, regs::GP_NAMES.iter().map(|(n, _)| *n))?,
    )?;
    m.add("REGISTER_NAMES", PyTuple::new(py, regs::ALL_NAMES)?)?;
    m.add(
        "COLUMNS",
        PyTuple::new(py, SCHEMA.iter().map(|c| (c.name, c.dtype)))?,
    )?;
    m.add(
        "OPTIONAL_COLUMNS",
        PyTuple::new(py, OPTIONAL_SCHEMA.iter().map(|c| (c.name, c.dtype)))?,
    )?;
    m.add("NO_WINDOW", crate::recorder::NO_WINDOW)?;
    m.add("STOP_REASONS", PyTuple::new(py, stop::NAMES)?)?;
    m.add("FAULT_STOP_REASONS", PyTuple::new(py, stop::FAULT_NAMES)?)?;
    m.add("StopReason", stop_reason_enum(py)?)?;
    let modes = PyDict::new(py);
    for mode in Mode::ALL {
        modes.set_item(mode.name(), mode.bits())?;
    }
    m.add(
        "MODES",
        PyTuple::new(py, Mode::ALL.iter().map(|m| m.name()))?,
    )?;
    m.add("MODE_BITS", modes)?;
    Ok(())
}
