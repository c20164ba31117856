//! Columnar event storage: one typed vector per recorded field, so a finished trace
//! is handed to numpy and Arrow without copying. A one-vCPU trace without registers
//! stores 25 bytes per event (time, exception, pc, dr6); `seq` and `vcpu` follow from
//! the row's position and part (`derived.rs`) and DR7 is stored as runs (`runs.rs`).

pub mod derived;
pub mod ring;
pub mod runs;
pub mod schema;
#[cfg(test)]
mod tests;

use kvm_bindings::kvm_regs;

use crate::clock::TraceClock;
use crate::exits::DebugEvent;
use crate::kvm::regs::Gp;
pub use derived::{Seq, Vcpus};
pub use ring::Ring;
pub use runs::Runs;
pub use schema::{
    ColumnSpec, FIXED_BYTES_PER_EVENT, MATERIALIZED_BYTES_PER_EVENT, OPTIONAL_SCHEMA, SCHEMA,
};

/// The window a row belongs to when none is open (and in traces without windows).
pub const NO_WINDOW: i32 = -1;

/// Where a vCPU loop writes its rows: growing columns (everything, or chunks handed
/// to a sink), or a [`Ring`] of the last N (the flight recorder).
pub trait Record {
    /// Record one event; `window` is its window index (`NO_WINDOW` outside).
    fn record(&mut self, ticks: u64, ev: &DebugEvent, regs: Option<&kvm_regs>, window: i32);
    fn rows(&self) -> usize;
    /// Move the rows out as a chunk (streaming), keeping room for `reserve` more.
    fn take_chunk(&mut self, reserve: usize) -> Columns;
    /// The rows in order, and how many earlier events were not kept.
    fn finish(self) -> (Columns, u64);
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Columns {
    pub seq: Seq,
    pub vcpu: Vcpus,
    /// Clock ticks while the run records them (`clock.rs`), nanoseconds afterwards.
    pub time_ns: Vec<u64>,
    pub exception: Vec<u8>,
    pub pc: Vec<u64>,
    pub dr6: Vec<u64>,
    pub dr7: Runs<u64>,
    /// Registers captured per event (from `kvm_run->s.regs`), one column each.
    pub reg_names: Vec<Gp>,
    pub regs: Vec<Vec<u64>>,
    /// The window of each row, as runs, when the trace has windows.
    pub window: Option<Runs<i32>>,
}

impl Record for Columns {
    #[inline(always)]
    fn record(&mut self, ticks: u64, ev: &DebugEvent, regs: Option<&kvm_regs>, window: i32) {
        self.push(ticks, ev, regs);
        if let Some(w) = &mut self.window {
            w.push(window);
        }
    }

    fn rows(&self) -> usize {
        self.len()
    }

    fn take_chunk(&mut self, reserve: usize) -> Columns {
        self.take(reserve)
    }

    fn finish(self) -> (Columns, u64) {
        (self, 0)
    }
}

impl Columns {
    /// An empty part for one vCPU's rows, with room for `n` rows.
    pub fn for_vcpu(vcpu: u16, reg_names: Vec<Gp>, n: usize) -> Self {
        Self::for_vcpu_with(vcpu, reg_names, n, false)
    }

    /// As `for_vcpu`, with a window column when `windowed`.
    pub fn for_vcpu_with(vcpu: u16, reg_names: Vec<Gp>, n: usize, windowed: bool) -> Self {
        let mut c = Columns {
            vcpu: Vcpus::One(vcpu),
            regs: vec![Vec::new(); reg_names.len()],
            reg_names,
            window: windowed.then(Runs::default),
            ..Default::default()
        };
        c.reserve(n);
        c
    }

    /// Room for `n` more rows, its pages made present now: the run loop then writes
    /// rows without a page fault (as the C baseline, which pre-faults its arrays).
    fn reserve(&mut self, n: usize) {
        reserve_populated(&mut self.time_ns, n);
        reserve_populated(&mut self.exception, n);
        reserve_populated(&mut self.pc, n);
        reserve_populated(&mut self.dr6, n);
        for r in &mut self.regs {
            reserve_populated(r, n);
        }
    }

    /// Double the room (at least 64k rows), outside the push path.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.reserve(self.len().max(1 << 16));
    }

    /// Record one event (`ticks` from the trace's clock).
    #[inline(always)]
    pub fn push(&mut self, ticks: u64, ev: &DebugEvent, regs: Option<&kvm_regs>) {
        if self.pc.len() == self.pc.capacity() {
            self.grow();
        }
        self.time_ns.push(ticks);
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

    /// Move the rows out as a chunk; this part goes on numbering after them, with
    /// room for `reserve` rows (so the next chunk does not regrow its buffers).
    pub fn take(&mut self, reserve: usize) -> Columns {
        let next_seq = match self.seq {
            Seq::Position(first) => Seq::Position(first + self.len() as u64),
            _ => Seq::Stored(Vec::new()),
        };
        let mut fresh = Columns {
            seq: next_seq,
            vcpu: self.vcpu.clone(),
            regs: vec![Vec::new(); self.reg_names.len()],
            reg_names: self.reg_names.clone(),
            window: self.window.as_ref().map(|_| Runs::default()),
            ..Default::default()
        };
        fresh.reserve(reserve);
        std::mem::replace(self, fresh)
    }

    /// Turn the recorded clock ticks into nanoseconds.
    pub fn convert_time(&mut self, clock: &TraceClock) {
        clock.to_ns(&mut self.time_ns);
    }

    pub fn seq_vec(&self) -> Vec<u64> {
        self.seq.to_vec(&self.vcpu, self.len())
    }

    pub fn vcpu_vec(&self) -> Vec<u16> {
        self.vcpu.to_vec(self.len())
    }

    /// Every row's window (`NO_WINDOW` for all rows of a trace without windows).
    pub fn window_vec(&self) -> Vec<i32> {
        match &self.window {
            Some(w) => w.to_vec(),
            None => vec![NO_WINDOW; self.len()],
        }
    }

    /// Copy the rows of every part (same register columns) into one set, in order.
    pub fn concat(parts: &[&Columns], reg_names: Vec<Gp>) -> Columns {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let (mut seq, mut vcpu) = (Vec::with_capacity(total), Vec::with_capacity(total));
        let mut out = Columns::for_vcpu(0, reg_names, total);
        let mut dr7 = Vec::with_capacity(total);
        let windowed = parts.iter().any(|p| p.window.is_some());
        let mut window = Vec::with_capacity(if windowed { total } else { 0 });
        for p in parts {
            if windowed {
                window.extend(p.window_vec());
            }
            seq.extend(p.seq_vec());
            vcpu.extend(p.vcpu_vec());
            out.time_ns.extend_from_slice(&p.time_ns);
            out.exception.extend_from_slice(&p.exception);
            out.pc.extend_from_slice(&p.pc);
            out.dr6.extend_from_slice(&p.dr6);
            p.dr7.extend_into(&mut dr7);
            for (a, b) in out.regs.iter_mut().zip(&p.regs) {
                a.extend_from_slice(b);
            }
        }
        out.seq = Seq::from_slice(&seq);
        out.vcpu = Vcpus::from_slice(&vcpu);
        out.dr7 = Runs::from_slice(&dr7);
        out.window = windowed.then(|| Runs::from_slice(&window));
        out
    }

    /// Merge per-vCPU parts into one set ordered by host time (ties by vCPU). With
    /// `renumber`, `seq` becomes the global order; without, each row keeps its
    /// per-vCPU `seq` (a streamed run, whose earlier rows are already on disk).
    pub fn merge(parts: Vec<Columns>, renumber: bool) -> Columns {
        let mut parts: Vec<Columns> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        match parts.len() {
            0 => return Columns::default(),
            1 => return parts.pop().unwrap_or_default(),
            _ => {}
        }
        let total: usize = parts.iter().map(Columns::len).sum();
        let mut out = Columns::for_vcpu(0, parts[0].reg_names.clone(), total);
        let (mut vcpu, mut dr7) = (Vec::with_capacity(total), Vec::with_capacity(total));
        let dr7s: Vec<Vec<u64>> = parts.iter().map(|p| p.dr7.to_vec()).collect();
        let windowed = parts.iter().any(|p| p.window.is_some());
        let windows: Vec<Vec<i32>> = parts.iter().map(Columns::window_vec).collect();
        let mut window = Vec::new();
        let derived_seq = if renumber {
            Some(Seq::Position(0))
        } else {
            per_vcpu_seq(&parts)
        };
        // Rows that keep a seq which cannot be derived carry it along.
        let seqs: Vec<Vec<u64>> = match derived_seq {
            Some(_) => Vec::new(),
            None => parts.iter().map(Columns::seq_vec).collect(),
        };
        let mut seq = Vec::new();
        let mut idx = vec![0usize; parts.len()];
        for _ in 0..total {
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
            vcpu.push(p.vcpu.get(i));
            out.time_ns.push(p.time_ns[i]);
            out.exception.push(p.exception[i]);
            out.pc.push(p.pc[i]);
            out.dr6.push(p.dr6[i]);
            dr7.push(dr7s[k][i]);
            if windowed {
                window.push(windows[k][i]);
            }
            if let Some(s) = seqs.get(k) {
                seq.push(s[i]);
            }
            for (o, r) in out.regs.iter_mut().zip(&p.regs) {
                o.push(r[i]);
            }
            idx[k] += 1;
        }
        out.seq = derived_seq.unwrap_or(Seq::Stored(seq));
        out.vcpu = Vcpus::PerRow(vcpu);
        out.dr7 = Runs::from_slice(&dr7);
        out.window = windowed.then(|| Runs::from_slice(&window));
        out
    }

    /// Release spare capacity so memory per event is what the rows need.
    pub fn shrink_to_fit(&mut self) {
        self.time_ns.shrink_to_fit();
        self.exception.shrink_to_fit();
        self.pc.shrink_to_fit();
        self.dr6.shrink_to_fit();
        for r in &mut self.regs {
            r.shrink_to_fit();
        }
    }

    /// Heap bytes held by the columns (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.time_ns.capacity() * 8
            + self.exception.capacity()
            + self.pc.capacity() * 8
            + self.dr6.capacity() * 8
            + self.dr7.heap_bytes()
            + self.seq.heap_bytes()
            + self.vcpu.heap_bytes()
            + self.window.as_ref().map_or(0, Runs::heap_bytes)
            + self.regs.iter().map(|r| r.capacity() * 8).sum::<usize>()
    }
}

/// Reserve room for `n` more elements and make the new pages present at once
/// (`MADV_POPULATE_WRITE`: one call instead of a fault per page in the hot loop).
pub(crate) fn reserve_populated<T>(v: &mut Vec<T>, n: usize) {
    v.reserve(n);
    let size = std::mem::size_of::<T>();
    let spare = v.spare_capacity_mut();
    let (start, len) = (spare.as_mut_ptr() as usize, spare.len() * size);
    const PAGE: usize = 4096;
    let first = start.next_multiple_of(PAGE);
    let end = (start + len) & !(PAGE - 1);
    if end > first {
        // SAFETY: [first, end) is page-aligned and lies inside the vector's own
        // allocation (its spare capacity); populating pages changes no contents.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                end - first,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }
}

/// The first per-vCPU seq of each part, by vCPU, when every part is one vCPU's.
fn per_vcpu_seq(parts: &[Columns]) -> Option<Seq> {
    let mut first = Vec::new();
    for p in parts {
        let (Vcpus::One(v), Seq::Position(f)) = (&p.vcpu, &p.seq) else {
            return None;
        };
        let v = *v as usize;
        if first.len() <= v {
            first.resize(v + 1, 0);
        }
        first[v] = *f;
    }
    Some(Seq::PerVcpu(first))
}
