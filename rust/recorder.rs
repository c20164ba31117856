//! Columnar event storage: one typed vector per field, so a finished trace is
//! handed to numpy and Arrow without copying. 43 bytes per event without registers.

use kvm_bindings::kvm_regs;

use crate::exits::DebugEvent;
use crate::kvm::regs::Gp;

/// One column of a trace: its name and its numpy dtype.
pub struct ColumnSpec {
    pub name: &'static str,
    pub dtype: &'static str,
}

/// The fixed columns of every trace, in order; register columns (uint64, named by
/// register) follow them. The one definition of the trace schema.
pub const SCHEMA: [ColumnSpec; 7] = [
    ColumnSpec {
        name: "seq",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "vcpu",
        dtype: "uint16",
    },
    ColumnSpec {
        name: "time_ns",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "exception",
        dtype: "uint8",
    },
    ColumnSpec {
        name: "pc",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "dr6",
        dtype: "uint64",
    },
    ColumnSpec {
        name: "dr7",
        dtype: "uint64",
    },
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Columns {
    pub seq: Vec<u64>,
    pub vcpu: Vec<u16>,
    pub time_ns: Vec<u64>,
    pub exception: Vec<u8>,
    pub pc: Vec<u64>,
    pub dr6: Vec<u64>,
    pub dr7: Vec<u64>,
    /// Registers captured per event (from `kvm_run->s.regs`), one column each.
    pub reg_names: Vec<Gp>,
    pub regs: Vec<Vec<u64>>,
}

/// Bytes of storage per event for the fixed columns.
pub const FIXED_BYTES_PER_EVENT: usize = 8 + 2 + 8 + 1 + 8 + 8 + 8;

impl Columns {
    pub fn new(reg_names: Vec<Gp>) -> Self {
        let regs = vec![Vec::new(); reg_names.len()];
        Columns {
            reg_names,
            regs,
            ..Default::default()
        }
    }

    pub fn with_capacity(reg_names: Vec<Gp>, n: usize) -> Self {
        let mut c = Columns::new(reg_names);
        c.reserve(n);
        c
    }

    pub fn reserve(&mut self, n: usize) {
        self.seq.reserve(n);
        self.vcpu.reserve(n);
        self.time_ns.reserve(n);
        self.exception.reserve(n);
        self.pc.reserve(n);
        self.dr6.reserve(n);
        self.dr7.reserve(n);
        for r in &mut self.regs {
            r.reserve(n);
        }
    }

    #[inline(always)]
    pub fn push(
        &mut self,
        seq: u64,
        vcpu: u16,
        time_ns: u64,
        ev: &DebugEvent,
        regs: Option<&kvm_regs>,
    ) {
        self.seq.push(seq);
        self.vcpu.push(vcpu);
        self.time_ns.push(time_ns);
        self.exception.push(ev.exception as u8);
        self.pc.push(ev.pc);
        self.dr6.push(ev.dr6);
        self.dr7.push(ev.dr7);
        if let Some(r) = regs {
            for (col, g) in self.regs.iter_mut().zip(&self.reg_names) {
                col.push(g.get(r));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pc.is_empty()
    }

    /// Move the rows out, leaving an empty set with the same register columns and
    /// room for `reserve` rows (so the next chunk does not regrow its buffers).
    pub fn take(&mut self, reserve: usize) -> Columns {
        let fresh = Columns::with_capacity(self.reg_names.clone(), reserve);
        std::mem::replace(self, fresh)
    }

    /// Append `other` (same register columns).
    pub fn append(&mut self, mut other: Columns) {
        self.seq.append(&mut other.seq);
        self.vcpu.append(&mut other.vcpu);
        self.time_ns.append(&mut other.time_ns);
        self.exception.append(&mut other.exception);
        self.pc.append(&mut other.pc);
        self.dr6.append(&mut other.dr6);
        self.dr7.append(&mut other.dr7);
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter_mut()) {
            a.append(b);
        }
    }

    /// Copy the rows of `other` (same register columns) to the end.
    pub fn extend_from(&mut self, other: &Columns) {
        self.seq.extend_from_slice(&other.seq);
        self.vcpu.extend_from_slice(&other.vcpu);
        self.time_ns.extend_from_slice(&other.time_ns);
        self.exception.extend_from_slice(&other.exception);
        self.pc.extend_from_slice(&other.pc);
        self.dr6.extend_from_slice(&other.dr6);
        self.dr7.extend_from_slice(&other.dr7);
        for (a, b) in self.regs.iter_mut().zip(&other.regs) {
            a.extend_from_slice(b);
        }
    }

    /// One set holding the rows of every part, in order.
    pub fn concat(parts: &[&Columns], reg_names: Vec<Gp>) -> Columns {
        let total = parts.iter().map(|p| p.len()).sum();
        let mut out = Columns::with_capacity(reg_names, total);
        for p in parts {
            out.extend_from(p);
        }
        out
    }

    /// Release spare capacity so memory per event is what the rows need.
    pub fn shrink_to_fit(&mut self) {
        self.seq.shrink_to_fit();
        self.vcpu.shrink_to_fit();
        self.time_ns.shrink_to_fit();
        self.exception.shrink_to_fit();
        self.pc.shrink_to_fit();
        self.dr6.shrink_to_fit();
        self.dr7.shrink_to_fit();
        for r in &mut self.regs {
            r.shrink_to_fit();
        }
    }

    /// Heap bytes held by the columns (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.seq.capacity() * 8
            + self.vcpu.capacity() * 2
            + self.time_ns.capacity() * 8
            + self.exception.capacity()
            + self.pc.capacity() * 8
            + self.dr6.capacity() * 8
            + self.dr7.capacity() * 8
            + self.regs.iter().map(|r| r.capacity() * 8).sum::<usize>()
    }

    /// Merge per-vCPU columns into one set ordered by host time (ties by vCPU).
    /// With `renumber`, `seq` becomes the global order; without, each row keeps its
    /// per-vCPU `seq` (a streamed run, whose earlier rows are already on disk).
    pub fn merge(parts: Vec<Columns>, renumber: bool) -> Columns {
        let mut parts: Vec<Columns> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        match parts.len() {
            0 => return Columns::default(),
            1 => return parts.pop().unwrap_or_default(),
            _ => {}
        }
        let total: usize = parts.iter().map(Columns::len).sum();
        let mut out = Columns::with_capacity(parts[0].reg_names.clone(), total);
        let mut idx = vec![0usize; parts.len()];
        for seq in 0..total as u64 {
            // k-way merge; k is the vCPU count (small), a linear scan is fine.
            let mut best: Option<usize> = None;
            for (k, p) in parts.iter().enumerate() {
                if idx[k] < p.len()
                    && best.is_none_or(|b| p.time_ns[idx[k]] < parts[b].time_ns[idx[b]])
                {
                    best = Some(k);
                }
            }
            let Some(k) = best else { break };
            let (p, i) = (&parts[k], idx[k]);
            out.seq.push(if renumber { seq } else { p.seq[i] });
            out.vcpu.push(p.vcpu[i]);
            out.time_ns.push(p.time_ns[i]);
            out.exception.push(p.exception[i]);
            out.pc.push(p.pc[i]);
            out.dr6.push(p.dr6[i]);
            out.dr7.push(p.dr7[i]);
            for (o, r) in out.regs.iter_mut().zip(&p.regs) {
                o.push(r[i]);
            }
            idx[k] += 1;
        }
        out
    }
}

/// Host monotonic time in nanoseconds.
#[inline(always)]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pc: u64) -> DebugEvent {
        DebugEvent {
            exception: 1,
            pc,
            dr6: 0xffff4ff0,
            dr7: 0x400,
        }
    }

    #[test]
    fn push_take_append() {
        let mut c = Columns::new(vec![Gp::Rip, Gp::Rax]);
        let regs = kvm_regs {
            rip: 5,
            rax: 7,
            ..Default::default()
        };
        c.push(0, 0, 10, &ev(5), Some(&regs));
        c.push(1, 0, 11, &ev(6), Some(&regs));
        assert_eq!(c.len(), 2);
        assert_eq!(c.regs[1], vec![7, 7]);
        let t = c.take(8);
        assert!(c.pc.capacity() >= 8);
        assert!(c.is_empty());
        assert_eq!(c.reg_names, vec![Gp::Rip, Gp::Rax]);
        c.append(t);
        assert_eq!(c.pc, vec![5, 6]);
        assert_eq!(FIXED_BYTES_PER_EVENT, 43);
    }

    #[test]
    fn merge_orders_by_time() {
        let mut a = Columns::new(vec![]);
        let mut b = Columns::new(vec![]);
        a.push(0, 0, 1, &ev(0x10), None);
        a.push(1, 0, 5, &ev(0x11), None);
        b.push(0, 1, 3, &ev(0x20), None);
        b.push(1, 1, 4, &ev(0x21), None);
        let m = Columns::merge(vec![a.clone(), b.clone()], true);
        assert_eq!(m.pc, vec![0x10, 0x20, 0x21, 0x11]);
        assert_eq!(m.vcpu, vec![0, 1, 1, 0]);
        assert_eq!(m.seq, vec![0, 1, 2, 3]);
        let m = Columns::merge(vec![a, b], false);
        assert_eq!(m.seq, vec![0, 0, 1, 1], "per-vCPU seq kept");
    }
}
