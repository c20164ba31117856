//! The Linux x86 boot protocol, 64-bit entry (Documentation/arch/x86/boot.rst): a
//! vmlinux ELF (or the payload of a bzImage, decompressed on the host) loaded at its
//! physical addresses by linux-loader, a zero page (`boot_params`) with the bzImage's
//! setup header, an e820 map of the Machine's memory, the command line and an
//! initrd, and a vCPU in long mode with the GDT the protocol asks for.

use kvm_bindings::{kvm_regs, kvm_sregs};
use linux_loader::bootparam::{
    boot_e820_entry, boot_params, setup_header, CAN_USE_HEAP, LOADED_HIGH, XLF_KERNEL_64,
};
use linux_loader::loader::{elf::Elf, KernelLoader};
use vm_memory::{ByteValued, GuestAddress};

use super::decompress::{self, Format};
use super::{guest, BootState};
use crate::error::{Error, Result};
use crate::kvm::layout;
use crate::kvm::memory::GuestMemory;

/// Where the loader puts its structures (kvmtrace's free area, below 1 MiB).
pub const ZERO_PAGE: u64 = layout::FREE; // 0x18000
pub const CMDLINE: u64 = ZERO_PAGE + 0x1000;
pub const CMDLINE_MAX: usize = 0x1000;
pub const BOOT_GDT: u64 = CMDLINE + CMDLINE_MAX as u64;
/// The boot protocol's selectors (`__BOOT_CS`, `__BOOT_DS`).
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;

/// The header fields at 0x1f1 of a bzImage, and the magic that marks one.
const SETUP_HEADER: usize = 0x1f1;
const HDRS_MAGIC: u32 = 0x5372_6448; // "HdrS"
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
/// The real-mode top of RAM: the EBDA and the BIOS area above it are reserved.
const EBDA: u64 = 0x9_fc00;
const HIGH_MEMORY: u64 = 0x10_0000;

#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct ZeroPage(boot_params);
// SAFETY: boot_params is a packed plain-old-data struct of integers and arrays.
unsafe impl ByteValued for ZeroPage {}

#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct Header(setup_header);
// SAFETY: setup_header is a packed plain-old-data struct of integers.
unsafe impl ByteValued for Header {}

/// A kernel image split into what the loader needs.
pub struct KernelImage {
    /// The bzImage's setup header, if the image was one.
    pub header: Option<setup_header>,
    pub format: Format,
    pub vmlinux: Vec<u8>,
    /// The version string a bzImage carries ("6.1.0-... (builder) #1 SMP ...").
    pub version: Option<String>,
}

/// Split a bzImage into its header and decompressed vmlinux, or take a vmlinux as is.
pub fn parse_image(data: &[u8]) -> Result<KernelImage> {
    if data.starts_with(b"\x7fELF") {
        return Ok(KernelImage {
            header: None,
            format: Format::None,
            vmlinux: data.to_vec(),
            version: None,
        });
    }
    let hdr_end = SETUP_HEADER + std::mem::size_of::<setup_header>();
    let hdr = data
        .get(SETUP_HEADER..hdr_end)
        .and_then(Header::from_slice)
        .map(|h| h.0)
        .filter(|h| ({ h.header }) == HDRS_MAGIC)
        .ok_or_else(|| {
            Error::invalid(
                "kernel",
                "neither a vmlinux ELF nor a bzImage (no \"HdrS\" setup header at 0x202)",
            )
        })?;
    let version = { hdr.version };
    if version < 0x020c || ({ hdr.xloadflags } & XLF_KERNEL_64) == 0 {
        return Err(Error::invalid(
            "kernel",
            format!(
                "boot protocol {}.{:02} without a 64-bit entry; kvmtrace needs 2.12 or later with XLF_KERNEL_64",
                version >> 8,
                version & 0xff
            ),
        ));
    }
    let sects = if hdr.setup_sects == 0 {
        4
    } else {
        hdr.setup_sects as usize
    };
    let start = (sects + 1) * 512 + { hdr.payload_offset } as usize;
    let payload = data
        .get(start..start + { hdr.payload_length } as usize)
        .ok_or_else(|| {
            Error::invalid("kernel", "truncated bzImage: the payload runs past the end")
        })?;
    let (format, vmlinux) = decompress::decompress(payload)?;
    let kv = { hdr.kernel_version } as usize + 0x200;
    let version = data.get(kv..).and_then(|s| {
        let end = s.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    });
    Ok(KernelImage {
        header: Some(hdr),
        format,
        vmlinux,
        version,
    })
}

/// Where things went, for the caller's report.
pub struct Loaded {
    pub entry: u64,
    pub kernel_end: u64,
    pub initrd: Option<(u64, u64)>,
    pub state: BootState,
}

/// Load `img` into `mem` and return the boot vCPU's state.
pub fn load(
    mem: &GuestMemory,
    img: &KernelImage,
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<Loaded> {
    let view = guest::view(mem)?;
    let mut reader = std::io::Cursor::new(&img.vmlinux[..]);
    let res = Elf::load(&view, None, &mut reader, Some(GuestAddress(HIGH_MEMORY)))
        .map_err(|e| Error::invalid("kernel", format!("the vmlinux ELF cannot be loaded: {e}")))?;
    drop(view);
    let entry = elf_entry(&img.vmlinux)?;
    let kernel_end = res.kernel_end;
    let mut hdr = img.header.unwrap_or_else(default_header);
    // The kernel's footprint is load address + init_size (bss, brk, page tables).
    let footprint_end =
        res.kernel_load.0 + u64::from(hdr.init_size).max(kernel_end - res.kernel_load.0);
    if footprint_end > mem.size() as u64 {
        return Err(Error::invalid(
            "memory_size",
            format!(
                "the kernel needs memory up to {footprint_end:#x}; this Machine has {:#x} (use a larger memory_size)",
                mem.size()
            ),
        ));
    }
    let cmd = cmdline.as_bytes();
    let limit = (u64::from(hdr.cmdline_size).max(255) as usize).min(CMDLINE_MAX - 1);
    if cmd.len() > limit {
        return Err(Error::invalid(
            "cmdline",
            format!(
                "{} bytes is longer than the kernel accepts ({limit})",
                cmd.len()
            ),
        ));
    }
    mem.write(CMDLINE, &[cmd, &[0]].concat())?;
    let initrd = match initrd {
        Some(d) if !d.is_empty() => Some(place_initrd(mem, &hdr, d, footprint_end)?),
        _ => None,
    };
    hdr.type_of_loader = 0xff;
    hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
    hdr.heap_end_ptr = 0xfe00;
    hdr.cmd_line_ptr = CMDLINE as u32;
    if let Some((addr, size)) = initrd {
        hdr.ramdisk_image = addr as u32;
        hdr.ramdisk_size = size as u32;
    }
    let mut zp = ZeroPage::default();
    zp.0.hdr = hdr;
    let e820 = e820_map(mem.size() as u64);
    for (i, e) in e820.iter().enumerate() {
        zp.0.e820_table[i] = *e;
    }
    zp.0.e820_entries = e820.len() as u8;
    mem.write(ZERO_PAGE, zp.as_slice())?;
    write_boot_gdt(mem)?;
    Ok(Loaded {
        entry,
        kernel_end,
        initrd,
        state: boot_state(entry),
    })
}

/// A setup header for a bare vmlinux (no bzImage to copy one from).
fn default_header() -> setup_header {
    setup_header {
        boot_flag: 0xaa55,
        header: HDRS_MAGIC,
        version: 0x020f,
        kernel_alignment: 0x100_0000,
        cmdline_size: 2047,
        initrd_addr_max: 0x7fff_ffff,
        xloadflags: XLF_KERNEL_64,
        ..Default::default()
    }
}

fn elf_entry(elf: &[u8]) -> Result<u64> {
    elf.get(24..32)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .ok_or_else(|| Error::invalid("kernel", "truncated ELF header"))
}

/// The initrd goes as high as the kernel allows, page aligned, above the kernel.
fn place_initrd(
    mem: &GuestMemory,
    hdr: &setup_header,
    data: &[u8],
    above: u64,
) -> Result<(u64, u64)> {
    let top = (mem.size() as u64).min(u64::from(hdr.initrd_addr_max) + 1);
    let size = data.len() as u64;
    let addr = top.checked_sub(size).map(|a| a & !0xfff).filter(|&a| a >= above).ok_or_else(|| {
        Error::invalid(
            "initrd",
            format!("{size:#x} bytes do not fit between the kernel's end ({above:#x}) and {top:#x}; use a larger memory_size"),
        )
    })?;
    mem.write(addr, data)?;
    Ok((addr, size))
}

/// RAM below the EBDA, the BIOS area reserved, RAM from 1 MiB to the end.
pub fn e820_map(size: u64) -> Vec<boot_e820_entry> {
    let e = |addr: u64, end: u64, kind: u32| boot_e820_entry {
        addr,
        size: end - addr,
        r#type: kind,
    };
    vec![
        e(0, EBDA, E820_RAM),
        e(EBDA, HIGH_MEMORY, E820_RESERVED),
        e(HIGH_MEMORY, size, E820_RAM),
    ]
}

/// null, null, 0x10 code64, 0x18 data: the selectors the protocol names.
fn write_boot_gdt(mem: &GuestMemory) -> Result<()> {
    let gdt = [
        0u64,
        0,
        layout::descriptor(0x9b, 0b0010, 0xfffff),
        layout::descriptor(0x93, 0b1100, 0xfffff),
    ];
    for (i, d) in gdt.iter().enumerate() {
        mem.write_u64(BOOT_GDT + 8 * i as u64, *d)?;
    }
    Ok(())
}

/// Long mode, paging on with kvmtrace's identity map, the protocol's GDT and
/// selectors, interrupts off, rsi = the zero page.
pub fn boot_state(entry: u64) -> BootState {
    let mut s = kvm_sregs::default();
    crate::kvm::sregs::setup_sregs(&mut s, layout::Mode::Long);
    s.cs.selector = BOOT_CS;
    for seg in [&mut s.ds, &mut s.es, &mut s.fs, &mut s.gs, &mut s.ss] {
        seg.selector = BOOT_DS;
    }
    s.gdt.base = BOOT_GDT;
    s.gdt.limit = 4 * 8 - 1;
    let regs = kvm_regs {
        rip: entry,
        rsi: ZERO_PAGE,
        rsp: layout::STACK_TOP,
        rflags: 0x2,
        ..Default::default()
    };
    BootState { regs, sregs: s }
}
