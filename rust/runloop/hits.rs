//! Breakpoint hit counts, kept by the loop for every event whether or not it is
//! recorded (a ring keeps only the last rows; the counts cover the whole run).

use crate::arch::dr7::{self, BpKind};
use crate::arch::{dr6, VECTOR_DB};
use crate::debug::GuestDebug;
use crate::exits::DebugEvent;

/// One user breakpoint slot as programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwSlot {
    pub slot: usize,
    pub addr: u64,
    pub kind: BpKind,
    pub len: u8,
}

/// Hits per breakpoint of one vCPU (or, summed, of a trace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hits {
    /// The user's enabled hardware breakpoints and their hits.
    pub hw: Vec<(HwSlot, u64)>,
    /// The user's software breakpoints (our INT3s) and their hits.
    pub sw: Vec<(u64, u64)>,
    /// Windows opened.
    pub windows: u64,
    /// The window trigger's (slot, address), in a trace with windows.
    pub trigger: Option<(usize, u64)>,
}

impl Hits {
    /// Zero counts for every breakpoint of `user`.
    pub fn new(user: &GuestDebug) -> Hits {
        let (v, dr) = (user.dr7(), user.dr0_3());
        let hw = (0..4)
            .filter(|&i| dr7::enabled(v, i))
            .map(|i| {
                let slot = HwSlot {
                    slot: i,
                    addr: dr[i],
                    kind: dr7::kind_of(v, i),
                    len: dr7::len_of(v, i),
                };
                (slot, 0)
            })
            .collect();
        let sw = user.sw_breakpoints.iter().map(|&a| (a, 0)).collect();
        Hits {
            hw,
            sw,
            windows: 0,
            trigger: None,
        }
    }

    /// An event whose DR6 reports a breakpoint (B0-B3): count the user's slots it
    /// names. An instruction breakpoint counts only at its own address (DR6 may also
    /// flag matches of slots that are not enabled; those are not the user's).
    #[cold]
    #[inline(never)]
    pub fn on_dr6(&mut self, ev: &DebugEvent) {
        if ev.exception != u32::from(VECTOR_DB) {
            return;
        }
        for (s, n) in &mut self.hw {
            if ev.dr6 & dr6::B[s.slot] != 0 && (s.kind != BpKind::Exec || ev.pc == s.addr) {
                *n += 1;
            }
        }
    }

    /// One of our INT3s fired at `pc`.
    pub fn on_sw(&mut self, pc: u64) {
        if let Some((_, n)) = self.sw.iter_mut().find(|(a, _)| *a == pc) {
            *n += 1;
        }
    }

    /// Add another vCPU's counts (same configuration).
    pub fn add(&mut self, other: &Hits) {
        for ((_, n), (_, m)) in self.hw.iter_mut().zip(&other.hw) {
            *n += m;
        }
        for ((_, n), (_, m)) in self.sw.iter_mut().zip(&other.sw) {
            *n += m;
        }
        self.windows += other.windows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::dr6::CLEAN;
    use crate::debug::HwBreakpoint;

    fn ev(pc: u64, dr6: u64) -> DebugEvent {
        DebugEvent {
            exception: 1,
            pc,
            dr6: CLEAN | dr6,
            dr7: 0,
        }
    }

    #[test]
    fn counts_the_slots_dr6_names() {
        let user = GuestDebug {
            hw_breakpoints: vec![
                HwBreakpoint::new(0x10, BpKind::Exec, 1).unwrap(),
                HwBreakpoint::new(0x2000, BpKind::Write, 4).unwrap(),
            ],
            sw_breakpoints: vec![0x30],
            ..Default::default()
        };
        let mut h = Hits::new(&user);
        h.on_dr6(&ev(0x10, dr6::B[0]));
        h.on_dr6(&ev(0x99, dr6::B[0])); // not at the exec address
        h.on_dr6(&ev(0x44, dr6::B[1] | dr6::BS));
        h.on_dr6(&ev(0x44, dr6::B[2])); // slot 2 is not enabled
        h.on_sw(0x30);
        h.on_sw(0x31);
        assert_eq!(h.hw.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(h.sw, [(0x30, 1)]);
        let mut total = h.clone();
        total.add(&h);
        assert_eq!(total.hw[1].1, 2);
    }
}
