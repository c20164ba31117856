//! Event timestamps. Reading CLOCK_MONOTONIC costs ~90 ns per call on the machines
//! kvmtrace runs on (a VM), the TSC ~17 ns; where the kernel itself trusts the TSC
//! as its clocksource (constant, synchronised across CPUs) the run loop records raw
//! TSC ticks and they are turned into CLOCK_MONOTONIC nanoseconds off the hot path:
//! `ns = anchor_ns + (ticks - anchor_ticks) * ns_per_tick`, anchored at the start of
//! the trace, with the tick rate measured against CLOCK_MONOTONIC over the process
//! lifetime (so it only gets more exact). Elsewhere ticks are nanoseconds.

use std::sync::{Mutex, OnceLock};

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

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions; it only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The kernel's clocksource is the TSC: it is constant and synchronised.
fn tsc_is_the_clock() -> bool {
    static TSC: OnceLock<bool> = OnceLock::new();
    *TSC.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|s| s.trim() == "tsc")
    })
}

/// The first (ticks, ns) reading of the process: the long baseline of the tick rate.
static PROCESS_ANCHOR: Mutex<Option<(u64, u64)>> = Mutex::new(None);
/// Shortest baseline the tick rate is measured over.
const MIN_BASELINE_NS: u64 = 2_000_000;

fn ns_per_tick() -> f64 {
    let (t0, n0) = match PROCESS_ANCHOR.lock() {
        Ok(mut g) => *g.get_or_insert_with(|| (rdtsc(), now_ns())),
        Err(_) => return 1.0,
    };
    let (mut t1, mut n1) = (rdtsc(), now_ns());
    while n1.saturating_sub(n0) < MIN_BASELINE_NS {
        // Only the first trace of a process that converts within 2 ms of its start waits.
        std::hint::spin_loop();
        (t1, n1) = (rdtsc(), now_ns());
    }
    (n1 - n0) as f64 / t1.saturating_sub(t0).max(1) as f64
}

/// The clock of one trace: what the run loop records per event, and its conversion.
#[derive(Clone, Copy, Debug)]
pub struct TraceClock {
    tsc: bool,
    anchor_ticks: u64,
    anchor_ns: u64,
}

impl TraceClock {
    pub fn start() -> TraceClock {
        let tsc = tsc_is_the_clock();
        if tsc {
            // Take the process anchor now, so a long trace is its own baseline.
            drop(
                PROCESS_ANCHOR
                    .lock()
                    .map(|mut g| *g.get_or_insert_with(|| (rdtsc(), now_ns()))),
            );
        }
        let anchor_ns = now_ns();
        let anchor_ticks = if tsc { rdtsc() } else { anchor_ns };
        TraceClock {
            tsc,
            anchor_ticks,
            anchor_ns,
        }
    }

    /// A timestamp for the hot path: ticks of this clock.
    #[inline(always)]
    pub fn ticks(&self) -> u64 {
        if self.tsc {
            rdtsc()
        } else {
            now_ns()
        }
    }

    /// Turn ticks recorded by this clock into CLOCK_MONOTONIC nanoseconds, in place.
    pub fn to_ns(&self, ticks: &mut [u64]) {
        if !self.tsc || ticks.is_empty() {
            return;
        }
        let rate = ns_per_tick();
        for t in ticks {
            let d = t.wrapping_sub(self.anchor_ticks) as i64 as f64;
            *t = (self.anchor_ns as f64 + d * rate) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_monotonic_ns() {
        let clock = TraceClock::start();
        let before = now_ns();
        let mut t = [clock.ticks()];
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut later = [clock.ticks()];
        let after = now_ns();
        clock.to_ns(&mut t);
        clock.to_ns(&mut later);
        // Within 1 ms of the clock readings around them, and 5 ms apart.
        assert!(
            t[0] + 1_000_000 >= before && t[0] <= before + 1_000_000,
            "{t:?} vs {before}"
        );
        assert!(later[0] <= after + 1_000_000);
        assert!(later[0] - t[0] >= 4_000_000, "{} ns apart", later[0] - t[0]);
    }
}
