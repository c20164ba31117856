//! DR6, the debug status register (SDM §18.2.3, APM §13.1.1.3).

/// Breakpoint condition detected for DR0..DR3 (bits 0-3).
pub const B: [u64; 4] = [1 << 0, 1 << 1, 1 << 2, 1 << 3];
pub const B0: u64 = B[0];
pub const B1: u64 = B[1];
pub const B2: u64 = B[2];
pub const B3: u64 = B[3];
/// Any of B0-B3: the event reports a breakpoint match.
pub const B_ANY: u64 = 0xf;
/// Debug-register access detected (general detect).
pub const BD: u64 = 1 << 13;
/// Single step.
pub const BS: u64 = 1 << 14;
/// Task switch.
pub const BT: u64 = 1 << 15;
/// RTM, active low: reads 1 unless the #DB hit inside an RTM transaction.
pub const RTM: u64 = 1 << 16;
/// DR6 with no debug condition: bits 4-11 and 16-31 read 1, bit 12 reads 0.
pub const CLEAN: u64 = 0xffff_0ff0;
/// The bits of DR6 with a fixed value (4-12, 16-31; RTM included).
pub const FIXED_MASK: u64 = 0xffff_1ff0;
/// The bits that record the cause of a #DB: B0-B3, BD, BS, BT.
pub const CAUSE_MASK: u64 = 0xf | BD | BS | BT;

const NAMED: [(u64, &str); 7] = [
    (B0, "B0"),
    (B1, "B1"),
    (B2, "B2"),
    (B3, "B3"),
    (BD, "BD"),
    (BS, "BS"),
    (BT, "BT"),
];

/// `B0|BS`-style names of the cause bits set in `v`, plus `RTM=0` when the active-low
/// RTM bit is clear; `none` when no cause bit is set.
pub fn names(v: u64) -> String {
    let mut parts: Vec<&str> = NAMED
        .iter()
        .filter(|(bit, _)| v & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if v & RTM == 0 {
        parts.push("RTM=0");
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_value_and_masks() {
        assert_eq!(CLEAN & CAUSE_MASK, 0);
        assert_eq!(
            CLEAN & FIXED_MASK,
            CLEAN,
            "bit 12 reads 0, the rest of the fixed bits 1"
        );
        assert_eq!(CAUSE_MASK, 0xe00f);
    }

    #[test]
    fn names_of_causes() {
        assert_eq!(names(CLEAN), "none");
        assert_eq!(names(CLEAN | BS), "BS");
        assert_eq!(names(CLEAN | B0 | B3 | BD), "B0|B3|BD");
        assert_eq!(names(0), "RTM=0");
    }
}
