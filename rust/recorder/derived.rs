//! Columns a trace stores once instead of per row: the vCPU of a one-vCPU part, and
//! `seq`, which follows from the row's position. Numpy and Arrow still see full
//! columns: these materialise on request (`py/trace.rs` caches them).

/// The vCPU of each row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vcpus {
    /// Every row is this vCPU's (a one-vCPU trace, or one vCPU's part of a run).
    One(u16),
    PerRow(Vec<u16>),
}

impl Default for Vcpus {
    fn default() -> Self {
        Vcpus::One(0)
    }
}

impl Vcpus {
    pub fn get(&self, row: usize) -> u16 {
        match self {
            Vcpus::One(v) => *v,
            Vcpus::PerRow(v) => v[row],
        }
    }

    pub fn to_vec(&self, len: usize) -> Vec<u16> {
        match self {
            Vcpus::One(v) => vec![*v; len],
            Vcpus::PerRow(v) => v.clone(),
        }
    }

    pub fn from_slice(v: &[u16]) -> Self {
        match v.first() {
            Some(&first) if v.iter().all(|&x| x == first) => Vcpus::One(first),
            None => Vcpus::One(0),
            _ => Vcpus::PerRow(v.to_vec()),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Vcpus::One(_) => 0,
            Vcpus::PerRow(v) => v.capacity() * 2,
        }
    }
}

/// The `seq` of each row: the event's index in its vCPU's run (several vCPUs in
/// memory: its index in the merged trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seq {
    /// seq = first + the row's position.
    Position(u64),
    /// seq of a row = `first[vcpu]` + the number of earlier rows of that vCPU: a
    /// streamed multi-vCPU tail, whose rows keep their per-vCPU numbering.
    PerVcpu(Vec<u64>),
    Stored(Vec<u64>),
}

impl Default for Seq {
    fn default() -> Self {
        Seq::Position(0)
    }
}

impl Seq {
    pub fn to_vec(&self, vcpus: &Vcpus, len: usize) -> Vec<u64> {
        match self {
            Seq::Position(first) => (*first..*first + len as u64).collect(),
            Seq::PerVcpu(first) => {
                let mut next = first.clone();
                (0..len)
                    .map(|i| {
                        let v = vcpus.get(i) as usize;
                        if v >= next.len() {
                            next.resize(v + 1, 0);
                        }
                        next[v] += 1;
                        next[v] - 1
                    })
                    .collect()
            }
            Seq::Stored(s) => s.clone(),
        }
    }

    pub fn from_slice(s: &[u64]) -> Self {
        match s.first() {
            Some(&first) if s.iter().enumerate().all(|(i, &x)| x == first + i as u64) => {
                Seq::Position(first)
            }
            None => Seq::Position(0),
            _ => Seq::Stored(s.to_vec()),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Seq::Position(_) => 0,
            Seq::PerVcpu(v) | Seq::Stored(v) => v.capacity() * 8,
        }
    }
}
