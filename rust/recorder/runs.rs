//! A column stored as runs of equal values: DR7 under a fixed configuration is one
//! value for millions of rows (it changes only while a fault is stepped over).

/// Values by row as (first row, value) runs; the first run is held inline, so a
/// column with one value takes no heap at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runs<T: Copy + PartialEq + Default> {
    len: u64,
    head: T,
    /// Later runs: (first row, value), rows increasing.
    tail: Vec<(u64, T)>,
    last: T,
}

impl<T: Copy + PartialEq + Default> Runs<T> {
    #[inline(always)]
    pub fn push(&mut self, v: T) {
        if self.len == 0 {
            self.head = v;
            self.last = v;
        } else if v != self.last {
            self.tail.push((self.len, v));
            self.last = v;
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn from_slice(values: &[T]) -> Self {
        let mut r = Runs::default();
        for &v in values {
            r.push(v);
        }
        r
    }

    /// Every row's value.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        self.extend_into(&mut out);
        out
    }

    pub fn extend_into(&self, out: &mut Vec<T>) {
        let mut value = self.head;
        let mut row = 0u64;
        for &(start, v) in &self.tail {
            out.extend(std::iter::repeat_n(value, (start - row) as usize));
            (row, value) = (start, v);
        }
        if self.len > 0 {
            out.extend(std::iter::repeat_n(value, (self.len - row) as usize));
        }
    }

    /// The rows from `at` on move into the returned runs.
    pub fn split_off(&mut self, at: usize) -> Runs<T> {
        let at = at as u64;
        let mut rest = Runs::default();
        if at >= self.len {
            return rest;
        }
        let i = self.tail.partition_point(|&(s, _)| s <= at);
        let first = if i == 0 {
            self.head
        } else {
            self.tail[i - 1].1
        };
        rest.len = self.len - at;
        rest.head = first;
        rest.tail = self
            .tail
            .split_off(i)
            .into_iter()
            .map(|(s, v)| (s - at, v))
            .collect();
        rest.last = self.last;
        self.len = at;
        self.last = if i == 0 {
            self.head
        } else {
            self.tail[i - 1].1
        };
        rest
    }

    pub fn heap_bytes(&self) -> usize {
        self.tail.capacity() * std::mem::size_of::<(u64, T)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip() {
        let v = [7u64, 7, 7, 9, 9, 7, 7, 7];
        let r = Runs::from_slice(&v);
        assert_eq!(r.to_vec(), v);
        assert_eq!(r.tail.len(), 2);
        let one = Runs::from_slice(&[5u64; 1000]);
        assert_eq!(
            (one.len(), one.heap_bytes()),
            (1000, 0),
            "one value: no heap"
        );
        assert_eq!(Runs::<u64>::default().to_vec(), Vec::<u64>::new());
    }

    #[test]
    fn split_keeps_every_row() {
        let v = [1u64, 1, 2, 2, 2, 3, 1];
        for at in 0..=v.len() + 1 {
            let mut a = Runs::from_slice(&v);
            let b = a.split_off(at);
            let mut joined = a.to_vec();
            joined.extend(b.to_vec());
            assert_eq!(joined, v, "split at {at}");
            let mut a2 = a.clone();
            a2.push(9);
            assert_eq!(a2.to_vec().last(), Some(&9));
        }
    }
}
