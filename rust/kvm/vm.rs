//! A VM: `/dev/kvm`, the VM fd, guest memory and its vCPUs. No Python here.

use kvm_bindings::{kvm_userspace_memory_region, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::dr7::BpKind;
use crate::boot::symbols::SymbolTable;
use crate::boot::BootState;
use crate::debug::{flags, GuestDebug};
use crate::devices::{uart, DeviceConfig, Devices};
use crate::error::{Error, Result};
use crate::kvm::layout::{self, Mode};
use crate::kvm::memory::GuestMemory;
use crate::kvm::vcpu::Vcpu;
use crate::kvm::{cpuid, irqchip};

const KVM_CAP_SET_GUEST_DEBUG2: u64 = 195;
pub const MAX_VCPUS: usize = 64;

/// Host facts, for reports and metadata.
#[derive(Clone, Debug, Default)]
pub struct HostCaps {
    pub api_version: i32,
    pub guest_debug_flags: u32,
    pub guest_debug2: bool,
    pub sync_regs: u32,
    pub debugregs: bool,
    pub max_vcpus: usize,
    /// KVM_CAP_IRQCHIP: in-kernel LAPIC/IOAPIC/PIC available.
    pub irqchip: bool,
}

pub fn open_kvm() -> Result<Kvm> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => Error::KvmMissing,
        libc::EACCES | libc::EPERM => Error::KvmPermission,
        _ => Error::Kvm {
            op: "open /dev/kvm",
            source: e,
        },
    })
}

/// Environment variable that masks the guest-debug flags the host reports, to see how
/// a program behaves on a kernel with fewer (e.g. `0x0f0003`: no BLOCKIRQ).
pub const GUESTDBG_MASK_ENV: &str = "KVMTRACE_GUESTDBG_MASK";

pub fn host_caps(kvm: &Kvm) -> HostCaps {
    let dbg2 = kvm.check_extension_raw(KVM_CAP_SET_GUEST_DEBUG2 as _);
    let mut flags = if dbg2 > 0 {
        dbg2 as u32
    } else if kvm.check_extension(Cap::SetGuestDebug) {
        flags::LEGACY
    } else {
        0
    };
    if let Some(mask) = std::env::var(GUESTDBG_MASK_ENV)
        .ok()
        .and_then(|v| parse_int(&v))
    {
        flags &= mask as u32;
    }
    HostCaps {
        api_version: kvm.get_api_version(),
        guest_debug_flags: flags,
        guest_debug2: dbg2 > 0,
        sync_regs: kvm.check_extension_int(Cap::SyncRegs).max(0) as u32,
        debugregs: kvm.check_extension(Cap::Debugregs),
        max_vcpus: kvm.get_max_vcpus(),
        irqchip: kvm.check_extension(Cap::Irqchip),
    }
}

fn parse_int(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// What a VM is made of.
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub memory_size: u64,
    pub mode: Mode,
    pub vcpus: usize,
    /// In-kernel LAPIC/IOAPIC/PIC and PIT.
    pub irqchip: bool,
    /// Devices beyond COM1 and fw_cfg (see `devices`).
    pub devices: DeviceConfig,
}

impl VmConfig {
    fn validate(&self, caps: &HostCaps) -> Result<()> {
        let size = self.memory_size;
        if !(layout::MIN_MEMORY..=layout::MAX_MEMORY).contains(&size) {
            return Err(Error::invalid(
                "memory_size",
                format!(
                    "{size:#x} is out of range ({:#x}..={:#x})",
                    layout::MIN_MEMORY,
                    layout::MAX_MEMORY
                ),
            ));
        }
        if size % 0x1000 != 0 {
            return Err(Error::invalid(
                "memory_size",
                format!("{size:#x} is not a multiple of the 4 KiB page size"),
            ));
        }
        let max = caps.max_vcpus.min(MAX_VCPUS);
        if self.vcpus == 0 || self.vcpus > max {
            return Err(Error::invalid(
                "vcpus",
                format!("{} is out of range (1..={max})", self.vcpus),
            ));
        }
        if caps.guest_debug_flags == 0 {
            return Err(Error::Unsupported {
                what: "KVM_CAP_SET_GUEST_DEBUG (guest debugging)".into(),
            });
        }
        if self.irqchip && !caps.irqchip {
            return Err(Error::Unsupported {
                what: "KVM_CAP_IRQCHIP (in-kernel LAPIC, IOAPIC and PIC)".into(),
            });
        }
        Ok(())
    }
}

pub struct Vm {
    // Field order matters: vCPUs and the VM fd close before the memory is unmapped.
    pub vcpus: Vec<Vcpu>,
    _vm: VmFd,
    pub mem: GuestMemory,
    pub caps: HostCaps,
    pub mode: Mode,
    pub entry: u64,
    pub irqchip: bool,
    /// COM1, fw_cfg and the legacy ports, shared by every vCPU loop.
    pub devices: Devices,
    /// The CPUID table every vCPU got (see `cpuid.rs`).
    pub cpuid: CpuId,
    /// Set by a boot protocol loader: the boot vCPU's state, restored by `reset`.
    pub boot: Option<BootState>,
    /// The loaded program's symbols, for naming pcs in errors.
    pub symbols: SymbolTable,
}

impl Vm {
    pub fn new(cfg: &VmConfig) -> Result<Vm> {
        let kvm = open_kvm()?;
        let caps = host_caps(&kvm);
        cfg.validate(&caps)?;
        let (memory_size, mode, nvcpus) = (cfg.memory_size, cfg.mode, cfg.vcpus);
        let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
        // Intel without unrestricted guest needs a TSS area for real mode; harmless elsewhere.
        let _ = vm.set_tss_address(0xfffb_d000);
        let mem = GuestMemory::new(memory_size as usize)?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size,
            userspace_addr: mem.host_addr(),
        };
        // SAFETY: the region is our own mapping of exactly memory_size bytes, and it
        // outlives the VM fd (field order in `Vm`).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        layout::build(&mem, mode)?;
        let mut uart_irq = None;
        if cfg.irqchip {
            irqchip::create(&vm)?;
            let fd = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(|e| Error::Internal(format!("eventfd: {e}")))?;
            vm.register_irqfd(&fd, uart::COM1_IRQ)
                .map_err(Error::kvm("KVM_IRQFD"))?;
            uart_irq = Some(fd);
        }
        let devices = Devices::new(&cfg.devices, nvcpus as u16, memory_size, uart_irq);
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        let mut vcpus = Vec::with_capacity(nvcpus);
        for i in 0..nvcpus {
            let fd = vm
                .create_vcpu(i as u64)
                .map_err(Error::kvm("KVM_CREATE_VCPU"))?;
            let v = Vcpu::new(fd, i, mode, &cpuid, layout::CODE)?;
            if cfg.irqchip {
                v.setup_irqchip()?;
            }
            vcpus.push(v);
        }
        Ok(Vm {
            vcpus,
            _vm: vm,
            mem,
            caps,
            mode,
            entry: layout::CODE,
            irqchip: cfg.irqchip,
            devices,
            cpuid,
            boot: None,
            symbols: SymbolTable::default(),
        })
    }

    /// Reject a request that needs a flag this host's KVM does not support.
    pub fn check_debug(&self, g: &GuestDebug) -> Result<()> {
        g.validate()?;
        if let Some(flag) = g.first_unsupported(self.caps.guest_debug_flags) {
            return Err(Error::Unsupported {
                what: format!(
                    "{} (KVM_CAP_SET_GUEST_DEBUG2 reports {:#x})",
                    flags::name(flag),
                    self.caps.guest_debug_flags
                ),
            });
        }
        for &a in &g.sw_breakpoints {
            if a >= self.mem.size() as u64 {
                return Err(Error::invalid(
                    "sw_breakpoints",
                    format!(
                        "{a:#x} is outside guest memory (0x0..{:#x})",
                        self.mem.size()
                    ),
                ));
            }
        }
        if g.hw_breakpoints.iter().any(|b| b.kind == BpKind::Io) {
            for v in &self.vcpus {
                if v.get("cr4")? & 0x8 == 0 {
                    return Err(Error::invalid(
                        "hw_breakpoints",
                        "io breakpoints need CR4.DE; set it first, e.g. machine.set_register(\"cr4\", cr4 | 0x8)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Start the boot vCPU in `state` (a boot protocol's) and park the others until
    /// it wakes them; `reset` comes back here.
    pub fn boot_into(&mut self, state: BootState) -> Result<()> {
        if self.vcpus.len() > 1 && !self.irqchip {
            return Err(Error::invalid(
                "vcpus",
                "a kernel wakes its other CPUs with INIT/SIPI through the LAPIC: use Machine(irqchip=True) or vcpus=1",
            ));
        }
        self.entry = state.regs.rip;
        self.boot = Some(state);
        self.reset_vcpus(None)
    }

    /// Reset vCPU `which` (None: all) to the boot state, or to the mode's state at the entry.
    pub fn reset_vcpus(&mut self, which: Option<usize>) -> Result<()> {
        let (entry, boot) = (self.entry, self.boot);
        for v in self.vcpus.iter_mut() {
            if which.is_some_and(|w| w != v.index) {
                continue;
            }
            v.reset(entry)?;
            if let Some(b) = &boot {
                if v.index == 0 {
                    v.apply_boot(b)?;
                } else {
                    v.wait_for_sipi()?;
                }
            }
        }
        Ok(())
    }

    /// Hide CPU features from every vCPU (see `cpuid::FEATURES`).
    pub fn hide_cpu_features(&mut self, names: &[String]) -> Result<()> {
        let mut table = self.cpuid.clone();
        cpuid::hide(&mut table, names)?;
        self.set_cpuid(table)
    }

    /// Give every vCPU `table` as its CPUID.
    pub fn set_cpuid(&mut self, table: CpuId) -> Result<()> {
        for v in &self.vcpus {
            v.set_cpuid(&table)?;
        }
        self.cpuid = table;
        Ok(())
    }

    /// Point every vCPU at `entry`.
    pub fn set_entry(&mut self, entry: u64) -> Result<()> {
        if entry >= self.mem.size() as u64 {
            return Err(Error::invalid(
                "entry",
                format!(
                    "{entry:#x} is outside guest memory (0x0..{:#x})",
                    self.mem.size()
                ),
            ));
        }
        self.entry = entry;
        for v in &mut self.vcpus {
            v.set("rip", entry)?;
        }
        Ok(())
    }

    /// Install an interrupt gate for `vector` pointing at `handler`, in the mode's format.
    pub fn set_idt_handler(&self, vector: u8, handler: u64) -> Result<()> {
        let gate = layout::gate(self.mode, handler)?;
        self.mem.write(
            self.mode.idt_base() + u64::from(vector) * self.mode.gate_size(),
            &gate,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn mask_values_parse() {
        assert_eq!(parse_int("0x0f0003"), Some(0x0f0003));
        assert_eq!(parse_int(" 255 "), Some(255));
        assert_eq!(parse_int("nope"), None);
    }
}
