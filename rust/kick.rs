//! Kicking a vCPU thread out of `KVM_RUN`: a real-time signal whose handler sets
//! `kvm_run->immediate_exit` of the vCPU that thread runs. Setting the flag in the
//! handler closes the race where the signal lands just before `KVM_RUN` is entered
//! (the KVM API documentation recommends exactly this).

use std::cell::Cell;
use std::sync::{Mutex, Once};

thread_local! {
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn on_kick(_: libc::c_int) {
    let p = IMMEDIATE_EXIT.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: the pointer is the running thread's own kvm_run->immediate_exit,
        // registered by `Registration` and cleared before the vCPU is released.
        unsafe { std::ptr::write_volatile(p, 1) };
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installing a handler that only touches a thread-local pointer; no
        // SA_RESTART, so a blocking KVM_RUN returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as *const () as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
        }
    });
}

/// Threads that may be kicked, by slot.
#[derive(Default)]
pub struct Kicker {
    threads: Mutex<Vec<Option<libc::pthread_t>>>,
}

impl Kicker {
    pub fn new(n: usize) -> Self {
        install();
        Kicker {
            threads: Mutex::new(vec![None; n]),
        }
    }

    /// Register the current thread as running the vCPU whose `immediate_exit` is `flag`.
    pub fn register(&self, slot: usize, flag: *mut u8) -> Registration<'_> {
        IMMEDIATE_EXIT.with(|c| c.set(flag));
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        if let Ok(mut t) = self.threads.lock() {
            t[slot] = Some(me);
        }
        Registration { kicker: self, slot }
    }

    /// Kick every registered thread out of `KVM_RUN`.
    pub fn kick_all(&self) {
        if let Ok(t) = self.threads.lock() {
            for th in t.iter().flatten() {
                // SAFETY: a registered thread is alive: it unregisters (under this
                // lock) before it exits.
                unsafe { libc::pthread_kill(*th, kick_signal()) };
            }
        }
    }
}

pub struct Registration<'a> {
    kicker: &'a Kicker,
    slot: usize,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.kicker.threads.lock() {
            t[self.slot] = None;
        }
        IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
    }
}

/// What the calling thread has used so far: user and system CPU (ns), minor faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadUsage {
    pub user_ns: u64,
    pub sys_ns: u64,
    pub minor_faults: u64,
}

impl ThreadUsage {
    pub fn now() -> ThreadUsage {
        // SAFETY: rusage is plain data written by getrusage; RUSAGE_THREAD is Linux's.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return ThreadUsage::default();
        }
        let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        ThreadUsage {
            user_ns: ns(ru.ru_utime),
            sys_ns: ns(ru.ru_stime),
            minor_faults: ru.ru_minflt as u64,
        }
    }

    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
        }
    }

    pub fn plus(self, o: ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            user_ns: self.user_ns + o.user_ns,
            sys_ns: self.sys_ns + o.sys_ns,
            minor_faults: self.minor_faults + o.minor_faults,
        }
    }
}
