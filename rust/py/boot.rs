//! Bindings for booting kernels and the devices and CPUID controls they need:
//! module functions on a `Machine` (`kvmtrace.machine` wraps them as methods), so
//! `py/machine.rs` keeps one `#[pymethods]` block.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::boot::emulation::{self, FaultSite};
use crate::boot::symbols::SymbolTable;
use crate::boot::{linux, multiboot};
use crate::error::Error;
use crate::kvm::cpuid;
use crate::kvm::vm::Vm;
use crate::py::detach::detached;
use crate::py::machine::PyMachine;
use crate::runloop::{Stop, StopReason};

/// Split a kernel image: (vmlinux ELF bytes, compression name, version string).
#[pyfunction]
fn extract_vmlinux<'py>(
    py: Python<'py>,
    kernel: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, &'static str, Option<String>)> {
    let img = detached(py, |_| linux::parse_image(kernel))?;
    Ok((
        PyBytes::new(py, &img.vmlinux),
        img.format.name(),
        img.version,
    ))
}

/// Load a Linux kernel (bzImage or vmlinux) with the 64-bit boot protocol.
#[pyfunction]
#[pyo3(signature = (machine, kernel, cmdline, initrd = None))]
fn boot_linux<'py>(
    py: Python<'py>,
    machine: &Bound<'py, PyMachine>,
    kernel: &[u8],
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> PyResult<Bound<'py, PyDict>> {
    let img = detached(py, |_| linux::parse_image(kernel))?;
    let loaded = machine.get().with_vm(|vm| {
        let l = linux::load(&vm.mem, &img, cmdline, initrd)?;
        vm.boot_into(l.state)?;
        vm.devices.set_legacy_ports(true);
        Ok(l)
    })?;
    let d = PyDict::new(py);
    d.set_item("entry", loaded.entry)?;
    d.set_item("kernel_end", loaded.kernel_end)?;
    d.set_item("zero_page", linux::ZERO_PAGE)?;
    d.set_item("cmdline_addr", linux::CMDLINE)?;
    d.set_item("initrd", loaded.initrd)?;
    d.set_item("format", img.format.name())?;
    d.set_item("version", img.version.clone())?;
    d.set_item("vmlinux", PyBytes::new(py, &img.vmlinux))?;
    Ok(d)
}

/// Load a Multiboot v1 kernel with its modules ((bytes, command line) pairs).
#[pyfunction]
#[pyo3(signature = (machine, image, cmdline, modules = Vec::new()))]
fn boot_multiboot<'py>(
    py: Python<'py>,
    machine: &Bound<'py, PyMachine>,
    image: &[u8],
    cmdline: &str,
    modules: Vec<(Vec<u8>, String)>,
) -> PyResult<Bound<'py, PyDict>> {
    let (entry, end) = machine.get().with_vm(|vm| {
        let (state, end) = multiboot::load(&vm.mem, image, cmdline, &modules)?;
        vm.boot_into(state)?;
        vm.devices.set_legacy_ports(true);
        Ok((state.regs.rip, end))
    })?;
    let d = PyDict::new(py);
    d.set_item("entry", entry)?;
    d.set_item("kernel_end", end)?;
    d.set_item("info", multiboot::INFO)?;
    Ok(d)
}

/// Give the core the loaded program's symbols: (address, size, name) triples.
#[pyfunction]
fn set_symbols(machine: &Bound<'_, PyMachine>, entries: Vec<(u64, u64, String)>) -> PyResult<()> {
    let table = SymbolTable::new(entries);
    machine.get().with_vm(|vm| {
        vm.symbols = table;
        Ok(())
    })
}

#[pyfunction]
fn hide_cpu_features(machine: &Bound<'_, PyMachine>, names: Vec<String>) -> PyResult<()> {
    machine
        .get()
        .with_vm(|vm| Ok(vm.hide_cpu_features(&names)?))
}

/// One CPUID entry: (function, index, eax, ebx, ecx, edx).
type CpuidRow = (u32, u32, u32, u32, u32, u32);

/// The vCPUs' CPUID table.
#[pyfunction]
fn cpuid_entries(machine: &Bound<'_, PyMachine>) -> PyResult<Vec<CpuidRow>> {
    machine.get().with_vm(|vm| {
        Ok(vm
            .cpuid
            .as_slice()
            .iter()
            .map(|e| (e.function, e.index, e.eax, e.ebx, e.ecx, e.edx))
            .collect())
    })
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn set_cpuid_entry(
    machine: &Bound<'_, PyMachine>,
    function: u32,
    index: u32,
    eax: u32,
    ebx: u32,
    ecx: u32,
    edx: u32,
) -> PyResult<()> {
    machine.get().with_vm(|vm| {
        let mut table = vm.cpuid.clone();
        let entry = kvm_bindings::kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            flags: if matches!(function, 4 | 7 | 0xb | 0xd | 0x1f) {
                kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX
            } else {
                0
            },
            ..Default::default()
        };
        cpuid::set_entry(&mut table, entry)?;
        Ok(vm.set_cpuid(table)?)
    })
}

/// Copy console output (COM1 and port 0xE9) to file descriptor `fd` as it arrives.
#[pyfunction]
#[pyo3(signature = (machine, fd = None))]
fn set_console_echo(machine: &Bound<'_, PyMachine>, fd: Option<i32>) -> PyResult<()> {
    if fd.is_some_and(|f| f < 0) {
        return Err(Error::invalid("console", "a file descriptor is >= 0").into());
    }
    machine.get().with_vm(|vm| {
        vm.devices.set_echo(fd);
        Ok(())
    })
}

#[pyfunction]
#[pyo3(signature = (machine, on = None))]
fn legacy_ports(machine: &Bound<'_, PyMachine>, on: Option<bool>) -> PyResult<bool> {
    machine.get().with_vm(|vm| {
        if let Some(on) = on {
            vm.devices.set_legacy_ports(on);
        }
        Ok(vm.devices.legacy_ports())
    })
}

/// For an emulation failure: the faulting vCPU's pc, code size, bytes and symbol.
pub fn fault_site(vm: &Vm, stop: &Stop) -> Option<FaultSite> {
    let StopReason::InternalError { suberror, data } = &stop.reason else {
        return None;
    };
    if *suberror != emulation::SUBERROR_EMULATION {
        return None;
    }
    let v = vm.vcpus.get(stop.vcpu.unwrap_or(0))?;
    let s = v.sregs().ok()?;
    let pc = v.regs().ok()?.rip.wrapping_add(s.cs.base);
    let bits = if s.efer & 0x400 != 0 && s.cs.l != 0 {
        64
    } else if s.cs.db != 0 {
        32
    } else {
        16
    };
    let phys = if s.cr0 & (1 << 31) != 0 {
        v.translate(pc)
    } else {
        Some(pc)
    };
    let outside_memory = phys.is_some_and(|p| p >= vm.mem.size() as u64);
    let bytes = emulation::bytes_from_data(data).or_else(|| {
        let phys = phys?;
        let n = 15.min((vm.mem.size() as u64).saturating_sub(phys) as usize);
        vm.mem.read_vec(phys, n).ok().filter(|b| !b.is_empty())
    });
    Some(FaultSite {
        pc,
        outside_memory: outside_memory && bytes.is_none(),
        bytes: bytes.unwrap_or_default(),
        bits,
        symbol: vm.symbols.symbolize(pc),
    })
}

/// The process exit status QEMU gives for a write of `value` to isa-debug-exit.
#[pyfunction]
fn qemu_exit_status(value: u64) -> i32 {
    crate::devices::debug_exit::qemu_status(value)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(qemu_exit_status, m)?)?;
    m.add_function(wrap_pyfunction!(extract_vmlinux, m)?)?;
    m.add_function(wrap_pyfunction!(boot_linux, m)?)?;
    m.add_function(wrap_pyfunction!(boot_multiboot, m)?)?;
    m.add_function(wrap_pyfunction!(set_symbols, m)?)?;
    m.add_function(wrap_pyfunction!(hide_cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(cpuid_entries, m)?)?;
    m.add_function(wrap_pyfunction!(set_cpuid_entry, m)?)?;
    m.add_function(wrap_pyfunction!(set_console_echo, m)?)?;
    m.add_function(wrap_pyfunction!(legacy_ports, m)?)?;
    let names: Vec<&str> = cpuid::FEATURES.iter().map(|f| f.0).collect();
    m.add("CPU_FEATURES", names)?;
    m.add("UART_COM1", crate::devices::uart::COM1)?;
    m.add("FW_CFG_PORT", crate::devices::fw_cfg::SELECTOR)?;
    Ok(())
}
