//! The dense recorder: rows of a trace without registers or windows are written to a
//! small row-major stage and appended to the columns [`STAGE_ROWS`] at a time.
//!
//! Why: pushing one event onto five columns loads, checks and stores five lengths
//! and capacities (about 40 instructions on every exit, most of the loop's own work
//! beside the timestamp). Writing one fixed-size row costs a single index, and the
//! batch append is a tight loop per column. Consumers see no difference: the stage
//! is flushed before the columns are handed out (a sink chunk, the finished trace).

use kvm_bindings::kvm_regs;

use crate::exits::DebugEvent;

use super::{Columns, Record};

/// Rows held in the stage before they are appended to the columns.
pub const STAGE_ROWS: usize = 64;

/// The staged rows, one array per column, so a flush is a copy per column.
struct Stage {
    ticks: [u64; STAGE_ROWS],
    pc: [u64; STAGE_ROWS],
    dr6: [u64; STAGE_ROWS],
    dr7: [u64; STAGE_ROWS],
    exception: [u8; STAGE_ROWS],
}

/// A [`Record`] for traces without register or window columns (see the module doc).
pub struct Staged {
    cols: Columns,
    stage: Box<Stage>,
    staged: usize,
}

impl Staged {
    /// Stage rows in front of `cols`, or give `cols` back when it records register or
    /// window columns (those take the plain push path).
    pub fn new(cols: Columns) -> Result<Self, Box<Columns>> {
        if !cols.reg_names.is_empty() || cols.window.is_some() {
            return Err(Box::new(cols));
        }
        let stage = Box::new(Stage {
            ticks: [0; STAGE_ROWS],
            pc: [0; STAGE_ROWS],
            dr6: [0; STAGE_ROWS],
            dr7: [0; STAGE_ROWS],
            exception: [0; STAGE_ROWS],
        });
        Ok(Staged {
            cols,
            stage,
            staged: 0,
        })
    }

    /// Append the staged rows to the columns.
    #[cold]
    #[inline(never)]
    fn flush(&mut self) {
        let (n, s, c) = (self.staged, &self.stage, &mut self.cols);
        if c.pc.capacity() - c.pc.len() < n {
            c.grow();
        }
        c.time_ns.extend_from_slice(&s.ticks[..n]);
        c.exception.extend_from_slice(&s.exception[..n]);
        c.pc.extend_from_slice(&s.pc[..n]);
        c.dr6.extend_from_slice(&s.dr6[..n]);
        c.dr7.extend_from_slice(&s.dr7[..n]);
        self.staged = 0;
    }
}

impl Record for Staged {
    #[inline(always)]
    fn record(&mut self, ticks: u64, ev: &DebugEvent, regs: Option<&kvm_regs>, _window: i32) {
        // `new` admits only traces without register and window columns.
        debug_assert!(regs.is_none());
        let (i, s) = (self.staged, &mut *self.stage);
        // Always true (a full stage is flushed at once); it lets the stores go
        // without bounds checks.
        if i < STAGE_ROWS {
            s.ticks[i] = ticks;
            s.pc[i] = ev.pc;
            s.dr6[i] = ev.dr6;
            s.dr7[i] = ev.dr7;
            s.exception[i] = ev.exception as u8;
        }
        self.staged += 1;
        if self.staged == STAGE_ROWS {
            self.flush();
        }
    }

    fn rows(&self) -> usize {
        self.cols.len() + self.staged
    }

    fn take_chunk(&mut self, reserve: usize) -> Columns {
        self.flush();
        self.cols.take(reserve)
    }

    fn finish(mut self) -> (Columns, u64) {
        self.flush();
        (self.cols, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pc: u64) -> DebugEvent {
        DebugEvent {
            exception: 1,
            pc,
            dr6: 0xffff_4ff0 | (pc & 1),
            dr7: if pc < 100 { 0x400 } else { 0x401 },
        }
    }

    /// Staged rows come out exactly as plain pushes give them, across flushes, chunk
    /// boundaries that fall inside a stage, and growth past the initial room.
    #[test]
    fn same_columns_as_plain_pushes() {
        let mut plain = Columns::for_vcpu(3, Vec::new(), 16);
        let mut staged = Staged::new(Columns::for_vcpu(3, Vec::new(), 16))
            .ok()
            .unwrap();
        let (mut plain_chunks, mut staged_chunks) = (Vec::new(), Vec::new());
        for i in 0..1000u64 {
            plain.record(i * 7, &ev(i), None, -1);
            staged.record(i * 7, &ev(i), None, -1);
            assert_eq!(staged.rows(), plain.rows());
            if i % 333 == 100 {
                plain_chunks.push(plain.take_chunk(16));
                staged_chunks.push(staged.take_chunk(16));
            }
        }
        plain_chunks.push(plain.finish().0);
        staged_chunks.push(staged.finish().0);
        assert_eq!(staged_chunks, plain_chunks);
        assert_eq!(staged_chunks.iter().map(Columns::len).sum::<usize>(), 1000);
    }

    #[test]
    fn register_and_window_columns_take_the_plain_path() {
        use crate::kvm::regs::Gp;
        assert!(Staged::new(Columns::for_vcpu(0, vec![Gp::Rip], 4)).is_err());
        assert!(Staged::new(Columns::for_vcpu_with(0, Vec::new(), 4, true)).is_err());
        assert!(Staged::new(Columns::for_vcpu(0, Vec::new(), 4)).is_ok());
    }
}
