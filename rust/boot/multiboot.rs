//! Multiboot v1 (the GNU Multiboot Specification 0.6.96), as kvm-unit-tests and many
//! small kernels use it: an ELF32 (or a.out-kludge) image with a multiboot header in
//! its first 8 KiB, entered in 32-bit protected mode with paging off, EAX =
//! 0x2BADB002 and EBX = the multiboot information structure.

use kvm_bindings::{kvm_regs, kvm_sregs};

use super::BootState;
use crate::error::{Error, Result};
use crate::kvm::layout::{self, Mode};
use crate::kvm::memory::GuestMemory;

pub const HEADER_MAGIC: u32 = 0x1bad_b002;
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// Header flag: the load addresses are in the header (the "a.out kludge").
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// The header must lie in the image's first 8 KiB, 4-byte aligned.
const HEADER_SEARCH: usize = 8192;

/// Where the information structure and its tables go (kvmtrace's free area).
pub const INFO: u64 = layout::FREE;
const MMAP: u64 = INFO + 0x100;
const CMDLINE: u64 = INFO + 0x400;
const CMDLINE_MAX: usize = 0xc00;
const MODS: u64 = INFO + 0x1000;
const MOD_STRINGS: u64 = MODS + 0x100;
const MOD_STRINGS_END: u64 = MODS + 0x1000;
const MAX_MODULES: usize = 16;

/// Information-structure flags: mem_*, cmdline, mods, mmap, boot_loader_name.
const INFO_MEM: u32 = 1 << 0;
const INFO_CMDLINE: u32 = 1 << 2;
const INFO_MODS: u32 = 1 << 3;
const INFO_MMAP: u32 = 1 << 6;
const INFO_LOADER_NAME: u32 = 1 << 9;
const LOADER_NAME: &[u8] = b"kvmtrace\0";

/// A piece of the image to copy: (physical address, bytes, size in memory).
type Piece = (u64, Vec<u8>, u64);

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid("kernel", reason)
}

/// The header's offset and flags.
fn find_header(img: &[u8]) -> Result<(usize, u32)> {
    (0..img.len().min(HEADER_SEARCH).saturating_sub(11))
        .step_by(4)
        .find_map(|at| {
            let (magic, flags, sum) = (u32_at(img, at)?, u32_at(img, at + 4)?, u32_at(img, at + 8)?);
            (magic == HEADER_MAGIC && magic.wrapping_add(flags).wrapping_add(sum) == 0).then_some((at, flags))
        })
        .ok_or_else(|| bad("no Multiboot v1 header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB"))
}

/// The image's pieces and entry point.
pub fn parse(img: &[u8]) -> Result<(Vec<Piece>, u64)> {
    let (at, flags) = find_header(img)?;
    if flags & FLAG_AOUT_KLUDGE != 0 {
        return aout_kludge(img, at);
    }
    if !img.starts_with(b"\x7fELF") || img.get(4) != Some(&1) {
        return Err(bad(
            "a Multiboot kernel without load addresses in its header must be an ELF32 file",
        ));
    }
    let (entry, phoff) = (
        u32_at(img, 24).unwrap_or(0),
        u32_at(img, 28).unwrap_or(0) as usize,
    );
    let half = |o: usize| {
        img.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let (phentsize, phnum) = (half(42).unwrap_or(0), half(44).unwrap_or(0));
    let mut pieces = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let f = |k: usize| {
            u32_at(img, ph + 4 * k).ok_or_else(|| bad(format!("truncated ELF: program header {i}")))
        };
        let (kind, off, paddr, filesz, memsz) =
            (f(0)?, f(1)? as usize, f(3)?, f(4)? as usize, f(5)?);
        if kind != 1 || memsz == 0 {
            continue;
        }
        let data = img
            .get(off..off + filesz)
            .ok_or_else(|| bad(format!("truncated ELF: segment {i} runs past the end")))?;
        pieces.push((u64::from(paddr), data.to_vec(), u64::from(memsz)));
    }
    if pieces.is_empty() {
        return Err(bad("the ELF has no loadable (PT_LOAD) segment"));
    }
    Ok((pieces, u64::from(entry)))
}

/// Header fields header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr.
fn aout_kludge(img: &[u8], at: usize) -> Result<(Vec<Piece>, u64)> {
    let f = |k: usize| {
        u32_at(img, at + 12 + 4 * k)
            .map(u64::from)
            .ok_or_else(|| bad("truncated Multiboot header"))
    };
    let (header_addr, load_addr, load_end, bss_end, entry) = (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?);
    let start = (at as u64)
        .checked_sub(header_addr - load_addr.min(header_addr))
        .ok_or_else(|| bad("Multiboot header: load_addr is above header_addr"))?
        as usize;
    let len = if load_end == 0 {
        img.len() - start
    } else {
        (load_end - load_addr) as usize
    };
    let data = img
        .get(start..start + len)
        .ok_or_else(|| bad("Multiboot header: load_end_addr is past the file"))?;
    let memsz = if bss_end > load_addr {
        bss_end - load_addr
    } else {
        len as u64
    };
    Ok((
        vec![(load_addr, data.to_vec(), memsz.max(len as u64))],
        entry,
    ))
}

/// Load `img` with its modules ((bytes, command line) each) and build the info structure.
pub fn load(
    mem: &GuestMemory,
    img: &[u8],
    cmdline: &str,
    modules: &[(Vec<u8>, String)],
) -> Result<(BootState, u64)> {
    let (pieces, entry) = parse(img)?;
    let size = mem.size() as u64;
    let mut end = 0u64;
    for (addr, data, memsz) in &pieces {
        if addr + memsz > size || *addr < layout::FREE + 0x2000 && *addr + memsz > INFO {
            return Err(Error::invalid(
                "memory_size",
                format!("the kernel's segment {addr:#x}..{:#x} does not fit this Machine ({size:#x} bytes) or overlaps kvmtrace's boot area", addr + memsz),
            ));
        }
        mem.write(*addr, data)?;
        mem.write(
            addr + data.len() as u64,
            &vec![0u8; (*memsz as usize).saturating_sub(data.len())],
        )?;
        end = end.max(addr + memsz);
    }
    let cmd = cmdline.as_bytes();
    if cmd.len() >= CMDLINE_MAX {
        return Err(Error::invalid(
            "cmdline",
            format!("{} bytes is longer than {}", cmd.len(), CMDLINE_MAX - 1),
        ));
    }
    mem.write(CMDLINE, &[cmd, &[0]].concat())?;
    mem.write(
        CMDLINE + CMDLINE_MAX as u64 - LOADER_NAME.len() as u64,
        LOADER_NAME,
    )?;
    let mmap = memory_map(size);
    mem.write(MMAP, &mmap)?;
    load_modules(mem, modules, end)?;
    let mut info = vec![0u8; 0x60];
    let mut put = |off: usize, v: u32| info[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(
        0,
        INFO_MEM | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_LOADER_NAME,
    );
    put(4, 640);
    put(8, ((size - 0x10_0000) / 1024) as u32);
    put(16, CMDLINE as u32);
    put(20, modules.len() as u32);
    put(24, MODS as u32);
    put(44, mmap.len() as u32);
    put(48, MMAP as u32);
    put(
        64,
        (CMDLINE + CMDLINE_MAX as u64) as u32 - LOADER_NAME.len() as u32,
    );
    mem.write(INFO, &info)?;
    Ok((boot_state(entry), end))
}

/// Modules go page aligned after the kernel; their strings in the boot area.
fn load_modules(mem: &GuestMemory, modules: &[(Vec<u8>, String)], kernel_end: u64) -> Result<()> {
    if modules.len() > MAX_MODULES {
        return Err(Error::invalid(
            "modules",
            format!("at most {MAX_MODULES} modules"),
        ));
    }
    let (mut at, mut strings) = ((kernel_end + 0xfff) & !0xfff, MOD_STRINGS);
    for (i, (data, line)) in modules.iter().enumerate() {
        let end = at + data.len() as u64;
        let s = [line.as_bytes(), &[0]].concat();
        if end > mem.size() as u64 || strings + s.len() as u64 > MOD_STRINGS_END {
            return Err(Error::invalid(
                "modules",
                format!("module {i} does not fit guest memory; use a larger memory_size"),
            ));
        }
        mem.write(at, data)?;
        mem.write(strings, &s)?;
        let entry: Vec<u8> = [at as u32, end as u32, strings as u32, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        mem.write(MODS + 16 * i as u64, &entry)?;
        strings += s.len() as u64;
        at = (end + 0xfff) & !0xfff;
    }
    Ok(())
}

/// The BIOS-style map: RAM below 640 KiB, the BIOS hole reserved, RAM above 1 MiB.
fn memory_map(size: u64) -> Vec<u8> {
    let ranges = [
        (0u64, 0xa_0000u64, 1u32),
        (0xf_0000, 0x10_0000, 2),
        (0x10_0000, size, 1),
    ];
    ranges
        .iter()
        .flat_map(|&(base, end, kind)| {
            let mut e = 20u32.to_le_bytes().to_vec();
            e.extend_from_slice(&base.to_le_bytes());
            e.extend_from_slice(&(end - base).to_le_bytes());
            e.extend_from_slice(&kind.to_le_bytes());
            e
        })
        .collect()
}

/// 32-bit protected mode, flat segments, paging off, EAX/EBX per the spec.
pub fn boot_state(entry: u64) -> BootState {
    let mut s = kvm_sregs::default();
    crate::kvm::sregs::setup_sregs(&mut s, Mode::Protected);
    s.cr4 = 0;
    let regs = kvm_regs {
        rip: entry,
        rax: u64::from(BOOTLOADER_MAGIC),
        rbx: INFO,
        rsp: layout::STACK_TOP,
        rflags: 0x2,
        ..Default::default()
    };
    BootState { regs, sregs: s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aout_image() -> Vec<u8> {
        let mut img = vec![0x90u8; 64];
        let flags = FLAG_AOUT_KLUDGE;
        let hdr = [
            HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags)),
            0x10_0010,
            0x10_0000,
            0x10_0040,
            0x10_2000,
            0x10_0030,
        ];
        for (i, v) in hdr.iter().enumerate() {
            img[16 + 4 * i..20 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        img
    }

    #[test]
    fn aout_kludge_header_gives_pieces_and_entry() {
        let (pieces, entry) = parse(&aout_image()).unwrap();
        assert_eq!(entry, 0x10_0030);
        assert_eq!(pieces.len(), 1);
        assert_eq!(
            (pieces[0].0, pieces[0].1.len(), pieces[0].2),
            (0x10_0000, 0x40, 0x2000)
        );
    }

    #[test]
    fn bad_checksum_is_refused() {
        let mut img = aout_image();
        img[24] ^= 1;
        assert!(parse(&img)
            .unwrap_err()
            .to_string()
            .contains("no Multiboot v1 header"));
    }

    #[test]
    fn info_structure_and_memory_map() {
        let m = GuestMemory::new(32 << 20).unwrap();
        let mods = vec![(b"module-bytes".to_vec(), "mod1 arg".to_string())];
        let (state, end) = load(&m, &aout_image(), "console=ttyS0", &mods).unwrap();
        assert_eq!(
            (state.regs.rax, state.regs.rbx, state.regs.rip),
            (0x2bad_b002, INFO, 0x10_0030)
        );
        assert_eq!(end, 0x10_2000);
        let info = m.read_vec(INFO, 0x60).unwrap();
        let f = |o: usize| u32_at(&info, o).unwrap();
        assert_eq!(
            f(0) & (INFO_MEM | INFO_MMAP | INFO_MODS | INFO_CMDLINE),
            INFO_MEM | INFO_MMAP | INFO_MODS | INFO_CMDLINE
        );
        assert_eq!((f(4), f(8)), (640, (31 << 20) / 1024));
        assert_eq!(
            m.read_vec(u64::from(f(16)), 14).unwrap(),
            b"console=ttyS0\0"
        );
        assert_eq!((f(20), f(44)), (1, 3 * 24));
        let module = m.read_vec(u64::from(f(24)), 16).unwrap();
        let (start, stop) = (u32_at(&module, 0).unwrap(), u32_at(&module, 4).unwrap());
        assert_eq!((start, stop - start), (0x10_2000, 12));
        assert_eq!(m.read_vec(u64::from(start), 12).unwrap(), b"module-bytes");
        let last = m.read_vec(u64::from(f(48)) + 48, 24).unwrap();
        assert_eq!(
            u64::from_le_bytes(last[12..20].try_into().unwrap()),
            (32 << 20) - 0x10_0000
        );
    }
}
