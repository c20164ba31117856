//! Naming the instruction KVM could not emulate: the bytes come from the internal
//! error's data (`KVM_INTERNAL_ERROR_EMULATION` with the instruction-bytes flag:
//! `flags`, then `insn_size` and 15 bytes) or, when KVM gives none, from guest
//! memory at the vCPU's pc; iced-x86 decodes them.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// `KVM_INTERNAL_ERROR_EMULATION` and its flag `..._FLAG_INSTRUCTION_BYTES`.
pub const SUBERROR_EMULATION: u32 = 1;
const FLAG_INSTRUCTION_BYTES: u64 = 1;

/// Where a vCPU stopped with an emulation failure.
#[derive(Clone, Debug, Default)]
pub struct FaultSite {
    /// Linear address of the instruction.
    pub pc: u64,
    /// Up to 15 instruction bytes (empty when neither KVM nor memory had them).
    pub bytes: Vec<u8>,
    /// 16, 32 or 64: the code size the vCPU was in.
    pub bits: u32,
    pub symbol: Option<String>,
    /// The pc's guest-physical address is outside guest memory (no code to fetch).
    pub outside_memory: bool,
}

/// The instruction bytes in an emulation failure's data, if KVM included them.
pub fn bytes_from_data(data: &[u64]) -> Option<Vec<u8>> {
    if data.len() < 3 || data[0] & FLAG_INSTRUCTION_BYTES == 0 {
        return None;
    }
    let raw: Vec<u8> = data[1..3].iter().flat_map(|w| w.to_le_bytes()).collect();
    let n = (raw[0] as usize).min(15);
    (n > 0).then(|| raw[1..1 + n].to_vec())
}

/// The instruction at the site in Intel syntax (`lock cmpxchg16b [rbp+20h]` style,
/// with 0x hex), or None if the bytes do not decode.
pub fn instruction(site: &FaultSite) -> Option<String> {
    if site.bytes.is_empty() {
        return None;
    }
    let mut d = Decoder::with_ip(site.bits, &site.bytes, site.pc, DecoderOptions::NONE);
    let ins = d.decode();
    if ins.is_invalid() {
        return None;
    }
    let mut f = IntelFormatter::new();
    let o = f.options_mut();
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_uppercase_hex(false);
    o.set_space_after_operand_separator(true);
    o.set_branch_leading_zeros(false);
    let mut text = String::new();
    f.format(&ins, &mut text);
    Some(text)
}

/// What a user can do about an instruction this host cannot emulate.
pub fn hint(instruction: &str) -> Option<&'static str> {
    let m = instruction.trim_start_matches("lock ");
    if m.starts_with("cmpxchg16b") {
        Some("hide the CPU feature that makes the guest use it: Machine(cpuid_hide=[\"cx16\"]) (or clearcpuid=cx16 on a Linux command line)")
    } else if m.starts_with("xrstor") || m.starts_with("xsave") {
        Some("hide the CPU feature that makes the guest use it: Machine(cpuid_hide=[\"xsave\"])")
    } else {
        None
    }
}

/// The message for an emulation failure at `site`.
pub fn message(site: &FaultSite) -> String {
    let at = match &site.symbol {
        Some(s) => format!("{s} ({:#x})", site.pc),
        None => format!("{:#x}", site.pc),
    };
    match instruction(site) {
        Some(i) => {
            let h = hint(&i).map(|h| format!("; {h}")).unwrap_or_default();
            format!("KVM cannot emulate `{i}` at {at} (KVM internal error, KVM_INTERNAL_ERROR_EMULATION){h}")
        }
        None if site.outside_memory => format!(
            "KVM internal error (KVM_INTERNAL_ERROR_EMULATION): the vCPU fetched code at {at}, outside guest memory; \
             a jump went astray, or the Machine needs a larger memory_size"
        ),
        None => {
            let b: Vec<String> = site.bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "KVM cannot emulate the instruction at {at} (KVM internal error, KVM_INTERNAL_ERROR_EMULATION; bytes: {})",
                if b.is_empty() { "unknown".to_string() } else { b.join(" ") }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_bytes_kvm_reports() {
        // flags = INSTRUCTION_BYTES, insn_size = 5, f0 48 0f c7 4d (lock cmpxchg16b [rbp+..])
        let bytes = [
            5u8, 0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let w = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let got = bytes_from_data(&[1, w(0), w(8)]).unwrap();
        assert_eq!(got, vec![0xf0, 0x48, 0x0f, 0xc7, 0x4d]);
        assert_eq!(
            bytes_from_data(&[0, w(0), w(8)]),
            None,
            "flag clear: no bytes"
        );
        let site = FaultSite {
            pc: 0xffff_ffff_8131_4b60,
            bytes: vec![0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20],
            bits: 64,
            symbol: Some("get_partial_node.part.0+0xd0".into()),
            outside_memory: false,
        };
        assert_eq!(
            message(&site).split(';').next().unwrap(),
            "KVM cannot emulate `lock cmpxchg16b [rbp+0x20]` at get_partial_node.part.0+0xd0 (0xffffffff81314b60) (KVM internal error, KVM_INTERNAL_ERROR_EMULATION)"
        );
        assert!(message(&site).contains("cpuid_hide=[\"cx16\"]"));
    }

    #[test]
    fn undecodable_bytes_are_shown_raw() {
        let site = FaultSite {
            pc: 0x1000,
            bytes: vec![0x0f, 0xff],
            bits: 64,
            symbol: None,
            outside_memory: false,
        };
        let m = message(&site);
        assert!(m.contains("at 0x1000") && m.contains("bytes: 0f ff"), "{m}");
        let astray = FaultSite {
            pc: 0x200_0000,
            outside_memory: true,
            ..site
        };
        assert!(message(&astray).contains("outside guest memory"));
    }
}
