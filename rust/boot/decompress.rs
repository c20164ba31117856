//! Host-side decompression of a bzImage's payload, so the kernel's own decompressor
//! (slow under an emulating KVM) never runs. The formats are the ones Linux builds
//! with (`CONFIG_KERNEL_*`); each compressed payload ends with the uncompressed size
//! as a little-endian u32 (`size_append` in scripts/Makefile.lib).

use std::io::Read;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Xz,
    Lzma,
    Bzip2,
    Lz4,
    Zstd,
    /// Not compressed: the payload is the vmlinux ELF itself.
    None,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Lzma => "lzma",
            Format::Bzip2 => "bzip2",
            Format::Lz4 => "lz4",
            Format::Zstd => "zstd",
            Format::None => "none",
        }
    }
}

/// The LZ4 legacy frame the kernel uses (`lz4 -l`): magic, then blocks of at most
/// 8 MiB, each preceded by its compressed size.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// The format of `data`, from its magic bytes.
pub fn detect(data: &[u8]) -> Result<Format> {
    let m = |magic: &[u8]| data.starts_with(magic);
    Ok(if m(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if m(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Format::Xz
    } else if m(&[0x5d, 0, 0]) {
        Format::Lzma
    } else if m(b"BZh") {
        Format::Bzip2
    } else if m(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
        Format::Lz4
    } else if m(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Zstd
    } else if m(b"\x7fELF") {
        Format::None
    } else {
        let head: Vec<String> = data.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let what = if m(&[0x89, b'L', b'Z', b'O']) {
            "LZO (CONFIG_KERNEL_LZO), which kvmtrace does not decompress".to_string()
        } else {
            format!("an unknown format (first bytes {})", head.join(" "))
        };
        return Err(Error::invalid(
            "kernel",
            format!(
                "the bzImage payload is {what}; supported: gzip, xz, lzma, bzip2, lz4, zstd \
                 (or pass an uncompressed vmlinux)"
            ),
        ));
    })
}

fn corrupt(fmt: Format, e: impl std::fmt::Display) -> Error {
    Error::invalid(
        "kernel",
        format!("the {} payload does not decompress: {e}", fmt.name()),
    )
}

/// Decompress a kernel payload (with its size trailer) into the vmlinux ELF.
pub fn decompress(payload: &[u8]) -> Result<(Format, Vec<u8>)> {
    let fmt = detect(payload)?;
    // The trailer: the uncompressed size, a hint for the allocation and a check.
    let expected = payload.len().checked_sub(4).map(|at| {
        u32::from_le_bytes([
            payload[at],
            payload[at + 1],
            payload[at + 2],
            payload[at + 3],
        ]) as usize
    });
    let body = match fmt {
        Format::Xz | Format::Lzma | Format::Lz4 => &payload[..payload.len().saturating_sub(4)],
        _ => payload,
    };
    let mut out = Vec::with_capacity(expected.unwrap_or(0).min(1 << 30));
    match fmt {
        Format::None => return Ok((fmt, payload.to_vec())),
        Format::Gzip => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| corrupt(fmt, e))?;
        }
        Format::Xz => {
            lzma_rs::xz_decompress(&mut std::io::BufReader::new(body), &mut out)
                .map_err(|e| corrupt(fmt, format!("{e:?}")))?;
        }
        Format::Lzma => {
            lzma_rs::lzma_decompress(&mut std::io::BufReader::new(body), &mut out)
                .map_err(|e| corrupt(fmt, format!("{e:?}")))?;
        }
        Format::Bzip2 => {
            bzip2::read::BzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| corrupt(fmt, e))?;
        }
        Format::Zstd => {
            ruzstd::decoding::StreamingDecoder::new(body)
                .map_err(|e| corrupt(fmt, e))?
                .read_to_end(&mut out)
                .map_err(|e| corrupt(fmt, e))?;
        }
        Format::Lz4 => lz4_legacy(body, &mut out)?,
    }
    if !out.starts_with(b"\x7fELF") {
        return Err(corrupt(fmt, "the output is not a vmlinux ELF file"));
    }
    Ok((fmt, out))
}

/// LZ4 legacy frame: `magic (u32) { size (u32) block }*`; a repeated magic starts a
/// new frame (concatenated files).
fn lz4_legacy(data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let u32_at = |at: usize| -> Option<u32> {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut at = 4; // past the magic
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while let Some(size) = u32_at(at) {
        at += 4;
        if size == LZ4_LEGACY_MAGIC {
            continue;
        }
        let size = size as usize;
        let Some(src) = data.get(at..at + size) else {
            return Err(corrupt(
                Format::Lz4,
                format!("a block of {size} bytes at {at:#x} runs past the end"),
            ));
        };
        let n = lz4_flex::block::decompress_into(src, &mut block)
            .map_err(|e| corrupt(Format::Lz4, e))?;
        out.extend_from_slice(&block[..n]);
        at += size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn with_trailer(mut c: Vec<u8>, n: usize) -> Vec<u8> {
        c.extend_from_slice(&(n as u32).to_le_bytes());
        c
    }

    fn elf() -> Vec<u8> {
        let mut v = b"\x7fELF".to_vec();
        v.extend((0..100_000u32).map(|i| (i % 251) as u8));
        v
    }

    #[test]
    fn gzip_bzip2_xz_round_trip() {
        let plain = elf();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = with_trailer(gz.finish().unwrap(), plain.len());
        assert_eq!(decompress(&gz).unwrap(), (Format::Gzip, plain.clone()));

        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        let bz = with_trailer(bz.finish().unwrap(), plain.len());
        assert_eq!(decompress(&bz).unwrap(), (Format::Bzip2, plain.clone()));

        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &plain[..], &mut xz).unwrap();
        let xz = with_trailer(xz, plain.len());
        assert_eq!(decompress(&xz).unwrap(), (Format::Xz, plain.clone()));
    }

    #[test]
    fn lz4_legacy_frame_with_two_blocks() {
        let plain = elf();
        let (a, b) = plain.split_at(40_000);
        let mut frame = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        for part in [a, b] {
            let c = lz4_flex::block::compress(part);
            frame.extend_from_slice(&(c.len() as u32).to_le_bytes());
            frame.extend_from_slice(&c);
        }
        let frame = with_trailer(frame, plain.len());
        assert_eq!(decompress(&frame).unwrap(), (Format::Lz4, plain));
    }

    #[test]
    fn unknown_and_lzo_are_clear_errors() {
        let e = decompress(b"\x89LZO\0\r\n").unwrap_err().to_string();
        assert!(e.contains("LZO"), "{e}");
        let e = decompress(b"\x01\x02\x03\x04\x05\x06\x07\x08")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown format (first bytes 01 02 03 04 05 06)"),
            "{e}"
        );
        assert!(e.contains("invalid kernel"), "{e}");
    }
}
