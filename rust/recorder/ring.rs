//! The flight recorder: the last N events of one vCPU in fixed memory, whatever the
//! length of the run. Rows are dense while recording (a ring overwrites in place)
//! and become ordinary columns when the run ends.

use kvm_bindings::kvm_regs;

use super::{reserve_populated, Columns, Record, Runs, Seq, Vcpus};
use crate::exits::DebugEvent;
use crate::kvm::regs::Gp;

pub struct Ring {
    cap: usize,
    /// Where the next row goes once the ring is full.
    next: usize,
    /// Events recorded in all.
    pushed: u64,
    vcpu: u16,
    reg_names: Vec<Gp>,
    time: Vec<u64>,
    exception: Vec<u8>,
    pc: Vec<u64>,
    dr6: Vec<u64>,
    dr7: Vec<u64>,
    regs: Vec<Vec<u64>>,
    window: Option<Vec<i32>>,
}

impl Ring {
    /// A ring of `cap` rows (at least one), its memory taken and made present now.
    pub fn new(vcpu: u16, reg_names: Vec<Gp>, cap: usize, windowed: bool) -> Ring {
        let cap = cap.max(1);
        let mut r = Ring {
            cap,
            next: 0,
            pushed: 0,
            vcpu,
            regs: vec![Vec::new(); reg_names.len()],
            reg_names,
            time: Vec::new(),
            exception: Vec::new(),
            pc: Vec::new(),
            dr6: Vec::new(),
            dr7: Vec::new(),
            window: windowed.then(Vec::new),
        };
        reserve_populated(&mut r.time, cap);
        reserve_populated(&mut r.exception, cap);
        reserve_populated(&mut r.pc, cap);
        reserve_populated(&mut r.dr6, cap);
        reserve_populated(&mut r.dr7, cap);
        for c in &mut r.regs {
            reserve_populated(c, cap);
        }
        if let Some(w) = &mut r.window {
            reserve_populated(w, cap);
        }
        r
    }

    /// Bytes the ring holds (fixed from the start).
    pub fn heap_bytes(&self) -> usize {
        self.cap * (8 * 4 + 1 + 8 * self.regs.len() + if self.window.is_some() { 4 } else { 0 })
    }
}

/// Write `v` into a ring column: appended until full, then over the oldest row.
#[inline(always)]
fn put<T>(col: &mut Vec<T>, full: bool, at: usize, v: T) {
    if full {
        col[at] = v;
    } else {
        col.push(v);
    }
}

impl Record for Ring {
    #[inline(always)]
    fn record(&mut self, ticks: u64, ev: &DebugEvent, regs: Option<&kvm_regs>, window: i32) {
        let (full, at) = (self.pc.len() == self.cap, self.next);
        put(&mut self.time, full, at, ticks);
        put(&mut self.exception, full, at, ev.exception as u8);
        put(&mut self.pc, full, at, ev.pc);
        put(&mut self.dr6, full, at, ev.dr6);
        put(&mut self.dr7, full, at, ev.dr7);
        if let Some(r) = regs {
            for (col, g) in self.regs.iter_mut().zip(&self.reg_names) {
                put(col, full, at, g.get(r));
            }
        }
        if let Some(w) = &mut self.window {
            put(w, full, at, window);
        }
        self.next = if at + 1 == self.cap { 0 } else { at + 1 };
        self.pushed += 1;
    }

    fn rows(&self) -> usize {
        self.pc.len()
    }

    fn take_chunk(&mut self, _reserve: usize) -> Columns {
        // A ring keeps the last rows in memory; it never hands chunks to a sink.
        Columns::for_vcpu(self.vcpu, self.reg_names.clone(), 0)
    }

    fn finish(mut self) -> (Columns, u64) {
        let kept = self.pc.len();
        if kept == self.cap {
            // Oldest first: the row at `next` is the oldest once the ring wrapped.
            let n = self.next;
            self.time.rotate_left(n);
            self.exception.rotate_left(n);
            self.pc.rotate_left(n);
            self.dr6.rotate_left(n);
            self.dr7.rotate_left(n);
            for c in &mut self.regs {
                c.rotate_left(n);
            }
            if let Some(w) = &mut self.window {
                w.rotate_left(n);
            }
        }
        let dropped = self.pushed - kept as u64;
        let cols = Columns {
            seq: Seq::Position(dropped),
            vcpu: Vcpus::One(self.vcpu),
            time_ns: self.time,
            exception: self.exception,
            pc: self.pc,
            dr6: self.dr6,
            dr7: Runs::from_slice(&self.dr7),
            reg_names: self.reg_names,
            regs: self.regs,
            window: self.window.map(|w| Runs::from_slice(&w)),
        };
        (cols, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{dr6, dr7};

    fn ev(pc: u64) -> DebugEvent {
        DebugEvent {
            exception: 1,
            pc,
            dr6: dr6::CLEAN | dr6::BS,
            dr7: dr7::FIXED_1,
        }
    }

    #[test]
    fn keeps_the_last_rows_in_order() {
        for n in [0u64, 1, 3, 4, 5, 11] {
            let mut r = Ring::new(2, vec![Gp::Rax], 4, true);
            let regs = kvm_regs::default();
            for i in 0..n {
                r.record(i, &ev(0x100 + i), Some(&regs), i as i32);
            }
            let (c, dropped) = r.finish();
            let first = n.saturating_sub(4);
            assert_eq!(dropped, first, "n={n}");
            assert_eq!(
                c.pc,
                (first..n).map(|i| 0x100 + i).collect::<Vec<_>>(),
                "n={n}"
            );
            assert_eq!(
                c.seq_vec(),
                (first..n).collect::<Vec<_>>(),
                "seq is the event's place in the run"
            );
            assert_eq!(
                c.window_vec(),
                (first..n).map(|i| i as i32).collect::<Vec<_>>()
            );
            assert_eq!((c.vcpu_vec().len(), c.regs[0].len()), (c.len(), c.len()));
        }
    }

    #[test]
    fn memory_is_fixed() {
        let mut r = Ring::new(0, vec![], 1000, false);
        let cap0 = r.pc.capacity();
        for i in 0..10_000 {
            r.record(i, &ev(i), None, -1);
        }
        assert_eq!(r.pc.capacity(), cap0);
        assert_eq!(r.rows(), 1000);
    }
}
