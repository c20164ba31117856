//! What a `Machine` holds behind its lock, and the conversions its constructor and
//! getters need (arguments to a `VmConfig`, KVM caps and registers to dicts).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::kvm::layout::Mode;
use crate::kvm::regs;
use crate::kvm::vcpu::Vcpu;
use crate::kvm::vm::{HostCaps, Vm, VmConfig};
use crate::py::args::{bool_arg, opt_u64_arg, small_arg, str_arg};

/// Code regions copied into a Trace for later decoding, at most this many bytes.
const MAX_CODE_SNAPSHOT: usize = 1 << 20;

pub(crate) struct Inner {
    pub(crate) vm: Vm,
    /// Regions loaded as code, copied into every trace.
    pub(crate) regions: Vec<(u64, usize)>,
}

impl Inner {
    pub(crate) fn new(vm: Vm) -> Self {
        Inner {
            vm,
            regions: Vec::new(),
        }
    }

    pub(crate) fn code_snapshot(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut budget = MAX_CODE_SNAPSHOT;
        for &(a, n) in &self.regions {
            let n = n.min(budget);
            if n == 0 {
                break;
            }
            if let Ok(b) = self.vm.mem.read_vec(a, n) {
                out.push((a, b));
                budget -= n;
            }
        }
        out
    }
}

/// Every named register of `vcpu` (those it can read).
pub(crate) fn register_dict<'py>(py: Python<'py>, vcpu: &Vcpu) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for n in regs::ALL_NAMES {
        if let Ok(v) = vcpu.get(n) {
            d.set_item(*n, v)?;
        }
    }
    Ok(d)
}

/// `Machine(...)` arguments as a VM configuration (defaults: 16 MiB, long mode, one
/// vCPU, no irqchip).
pub(crate) fn vm_config(
    memory_size: Option<&Bound<'_, PyAny>>,
    mode: Option<&Bound<'_, PyAny>>,
    vcpus: Option<&Bound<'_, PyAny>>,
    irqchip: Option<&Bound<'_, PyAny>>,
) -> PyResult<VmConfig> {
    let memory_size = opt_u64_arg(memory_size, "memory_size")?.unwrap_or(16 << 20);
    let mode = match mode {
        Some(m) if !m.is_none() => Mode::parse(&str_arg(m, "mode")?)?,
        _ => Mode::Long,
    };
    let vcpus: usize = match vcpus {
        Some(v) if !v.is_none() => small_arg(v, "vcpus")?,
        _ => 1,
    };
    let irqchip = match irqchip {
        Some(b) if !b.is_none() => bool_arg(b, "irqchip")?,
        _ => false,
    };
    let cfg = VmConfig {
        memory_size,
        mode,
        vcpus,
        irqchip,
        devices: Default::default(),
    };
    Ok(cfg)
}

/// `Machine.host_caps`.
pub(crate) fn caps_dict<'py>(py: Python<'py>, caps: &HostCaps) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("api_version", caps.api_version)?;
    d.set_item("guest_debug_flags", caps.guest_debug_flags)?;
    d.set_item("set_guest_debug2", caps.guest_debug2)?;
    d.set_item("sync_regs", caps.sync_regs)?;
    d.set_item("debugregs", caps.debugregs)?;
    d.set_item("max_vcpus", caps.max_vcpus)?;
    d.set_item("irqchip", caps.irqchip)?;
    Ok(d)
}
