//! DR7, the debug control register (SDM §18.2.4, APM §13.1.1.4): per slot n an
//! enable pair (Ln at bit 2n, Gn at 2n+1), R/Wn at 16+4n and LENn at 18+4n.

use crate::error::{Error, Result};

/// Bit 10 always reads as 1.
pub const FIXED_1: u64 = 0x400;
/// RTM: enables advanced debugging of RTM transactions (bit 11).
pub const RTM: u64 = 1 << 11;
/// GD, general detect: a guest `mov` to or from a debug register faults with DR6.BD.
pub const GD: u64 = 1 << 13;
/// Bits kvmtrace refuses in a raw DR7: 11 (RTM), 12, 14, 15 and the upper half.
pub const RESERVED_0: u64 = 0xffff_ffff_0000_d800;

/// What a hardware breakpoint watches, with its DR7 R/W encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BpKind {
    /// Instruction fetch (R/W = 00). A fault: reported before the instruction runs.
    Exec,
    /// Data write (R/W = 01). A trap: reported after the instruction.
    Write,
    /// I/O read or write (R/W = 10), only with CR4.DE. A trap.
    Io,
    /// Data read or write (R/W = 11). A trap.
    ReadWrite,
}

/// Every kind with its name and R/W field value, in encoding order.
pub const KINDS: [(BpKind, &str, u64); 4] = [
    (BpKind::Exec, "exec", 0b00),
    (BpKind::Write, "write", 0b01),
    (BpKind::Io, "io", 0b10),
    (BpKind::ReadWrite, "rw", 0b11),
];

/// Breakpoint lengths with their LEN field value (8 bytes is 0b10, not 0b11).
pub const LENGTHS: [(u8, u64); 4] = [(1, 0b00), (2, 0b01), (8, 0b10), (4, 0b11)];

impl BpKind {
    pub fn parse(s: &str) -> Result<Self> {
        KINDS
            .iter()
            .find(|(_, n, _)| *n == s)
            .map(|(k, _, _)| *k)
            .ok_or_else(|| {
                Error::invalid(
                    "kind",
                    format!(
                        "{s:?} is not a breakpoint kind; use \"exec\", \"write\", \"rw\" or \"io\""
                    ),
                )
            })
    }

    fn entry(self) -> &'static (BpKind, &'static str, u64) {
        // KINDS lists every variant, so the search always succeeds.
        KINDS
            .iter()
            .find(|(k, _, _)| *k == self)
            .unwrap_or(&KINDS[0])
    }

    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// The R/W field value in DR7.
    pub fn rw_bits(self) -> u64 {
        self.entry().2
    }

    pub fn from_rw_bits(bits: u64) -> Self {
        KINDS[(bits & 3) as usize].0
    }
}

/// The LEN field value for a breakpoint length.
pub fn len_bits(len: u8) -> Option<u64> {
    LENGTHS.iter().find(|(l, _)| *l == len).map(|(_, b)| *b)
}

pub fn len_from_bits(bits: u64) -> u8 {
    LENGTHS
        .iter()
        .find(|(_, b)| *b == bits & 3)
        .map_or(1, |(l, _)| *l)
}

/// The L, R/W and LEN bits of one breakpoint in slot `slot` (0-3).
pub fn slot_bits(slot: usize, kind: BpKind, len: u8) -> u64 {
    let len = len_bits(len).unwrap_or(0);
    (1u64 << (2 * slot)) | (kind.rw_bits() << (16 + 4 * slot)) | (len << (18 + 4 * slot))
}

/// The enable pair (Ln | Gn) of slot `slot`.
pub fn enable_mask(slot: usize) -> u64 {
    3u64 << (2 * slot)
}

/// Slot `slot` is enabled (locally or globally).
pub fn enabled(dr7: u64, slot: usize) -> bool {
    dr7 & enable_mask(slot) != 0
}

/// The kind slot `slot` watches.
pub fn kind_of(dr7: u64, slot: usize) -> BpKind {
    BpKind::from_rw_bits(dr7 >> (16 + 4 * slot))
}

/// The length slot `slot` watches.
pub fn len_of(dr7: u64, slot: usize) -> u8 {
    len_from_bits(dr7 >> (18 + 4 * slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        for (l, _) in LENGTHS {
            assert_eq!(len_from_bits(len_bits(l).unwrap_or(9)), l);
        }
        for (k, n, _) in KINDS {
            assert_eq!(BpKind::parse(n).unwrap(), k);
            assert_eq!(BpKind::from_rw_bits(k.rw_bits()), k);
        }
        let v = slot_bits(1, BpKind::Write, 4);
        assert_eq!(v, (1 << 2) | (0b01 << 20) | (0b11 << 22));
        assert!(enabled(v, 1) && !enabled(v, 0));
        assert_eq!((kind_of(v, 1), len_of(v, 1)), (BpKind::Write, 4));
        assert_eq!(len_bits(8), Some(0b10));
        assert!(BpKind::parse("read").is_err());
    }
}
