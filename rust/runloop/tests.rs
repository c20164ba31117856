use super::port_io::le_value;
use super::step_over::*;
use crate::arch::dr7::BpKind;
use crate::debug::{GuestDebug, HwBreakpoint};
use crate::exits::DebugEvent;
use crate::kvm::vcpu::Parked;

fn dbg() -> GuestDebug {
    GuestDebug {
        hw_breakpoints: vec![
            HwBreakpoint::new(0x8000, BpKind::Exec, 1).unwrap(),
            HwBreakpoint::new(0x1000, BpKind::Write, 4).unwrap(),
        ],
        sw_breakpoints: vec![0x9000],
        ..Default::default()
    }
}

#[test]
fn faults_are_classified() {
    let d = dbg();
    let ev = |exception, pc, dr6| DebugEvent {
        exception,
        pc,
        dr6,
        dr7: d.dr7(),
    };
    assert_eq!(
        fault_of(&d, &ev(1, 0x8000, 0xffff0ff1)),
        Some(Parked::HwExec {
            slot: 0,
            pc: 0x8000
        })
    );
    assert_eq!(
        fault_of(&d, &ev(1, 0x8000, 0xffff4ff0)),
        None,
        "a step trap at the bp address is not the fault"
    );
    assert_eq!(
        fault_of(&d, &ev(3, 0x9000, 0)),
        Some(Parked::SwBreakpoint { addr: 0x9000 })
    );
    assert_eq!(
        fault_of(&d, &ev(3, 0x9001, 0)),
        None,
        "the guest's own int3"
    );
    assert_eq!(
        fault_of(&d, &ev(1, 0x8004, 0xffff0ff2)),
        None,
        "a data breakpoint is a trap"
    );
    let gd = GuestDebug {
        general_detect: true,
        ..Default::default()
    };
    assert_eq!(
        fault_of(&gd, &ev(1, 0x8010, 0xffff2ff0)),
        Some(Parked::GeneralDetect { pc: 0x8010 })
    );
}

#[test]
fn step_configs_disarm_only_the_trigger() {
    let d = dbg();
    let s = step_config(
        &d,
        Parked::HwExec {
            slot: 0,
            pc: 0x8000,
        },
    );
    assert!(s.single_step);
    assert_eq!(s.exec_slot_at(0x8000), None);
    assert!(s.data_cause(0xffff0ff2), "the data breakpoint stays armed");
    let gd = GuestDebug {
        general_detect: true,
        ..Default::default()
    };
    let s = step_config(&gd, Parked::GeneralDetect { pc: 0 });
    assert_eq!(s.dr7() & crate::arch::dr7::GD, 0);
    for p in [
        Parked::HwExec {
            slot: 0,
            pc: 0x8000,
        },
        Parked::SwBreakpoint { addr: 0x9000 },
    ] {
        assert!(fault_of(&d, &synthetic_hit(&d, p)).is_some());
    }
}

#[test]
fn refire_is_the_same_fault_without_progress() {
    let d = dbg();
    let p = Parked::HwExec {
        slot: 0,
        pc: 0x8000,
    };
    let ev = |pc, dr6| DebugEvent {
        exception: 1,
        pc,
        dr6,
        dr7: d.dr7(),
    };
    assert!(
        refired(&d, p, &ev(0x8000, 0xffff0ff1)),
        "B0 again at the same pc, no BS"
    );
    assert!(
        !refired(&d, p, &ev(0x8000, 0xffff4ff0)),
        "a step trap back at the same pc is progress (a loop)"
    );
    assert!(
        !refired(&d, p, &ev(0x8002, 0xffff4ff0)),
        "the step completed"
    );
    let s = Parked::SwBreakpoint { addr: 0x9000 };
    let int3 = DebugEvent {
        exception: 3,
        pc: 0x9000,
        ..Default::default()
    };
    assert!(refired(&d, s, &int3));
}

#[test]
fn exit_port_value() {
    assert_eq!(le_value(&[0x2a]), 0x2a);
    assert_eq!(le_value(&[0x01, 0x02]), 0x0201);
}

mod coordinator {
    use std::sync::{Arc, Mutex};

    use super::super::hooks::{Handled, Hooks};
    use super::super::stop::Control;
    use super::super::vcpu_loop::Env;
    use super::super::{Coordinator, TraceConfig};
    use super::*;
    use crate::error::{Callback, Error, Result};
    use crate::kvm::memory::GuestMemory;
    use crate::recorder::Columns;

    /// A sink that refuses every chunk, remembering what it was given.
    #[derive(Default)]
    struct RefusingSink {
        seen: Mutex<Vec<Arc<Columns>>>,
    }

    impl Hooks for RefusingSink {
        fn io(&self, _: usize, _: u16, _: Option<&[u8]>, _: usize) -> Handled {
            Handled::No
        }
        fn mmio(&self, _: usize, _: u64, _: Option<&[u8]>, _: usize) -> Handled {
            Handled::No
        }
        fn poll(&self) -> Result<()> {
            Ok(())
        }
        fn has_vcpu_callbacks(&self) -> bool {
            false
        }
        fn chunk(&self, rows: &Arc<Columns>) -> Result<()> {
            self.seen.lock().unwrap().push(rows.clone());
            Err(Error::callback(
                Callback::Sink,
                "the sink could not take the chunk",
            ))
        }
    }

    fn chunk(first_pc: u64, n: u64) -> Columns {
        let mut c = Columns::for_vcpu(0, vec![], n as usize);
        for i in 0..n {
            let ev = DebugEvent {
                exception: 1,
                pc: first_pc + i,
                ..Default::default()
            };
            c.push(i, &ev, None);
        }
        c
    }

    #[test]
    fn refused_chunks_are_kept_whole_and_not_copied() {
        let mem = GuestMemory::new(0x2000).unwrap();
        let patches = Int3Patches::apply(&mem, &[]).unwrap();
        let (plain, cfg, ctl, hooks) = (
            crate::runloop::window::DebugSet::new(GuestDebug::default()),
            TraceConfig::default(),
            Control::new(1),
            RefusingSink::default(),
        );
        let devices = crate::devices::Devices::new(&Default::default(), 1, 0x2000, None);
        let env = Env {
            mem: &mem,
            devices: &devices,
            plain: &plain,
            window: None,
            cfg: &cfg,
            ctl: &ctl,
            hooks: &hooks,
            patches: &patches,
            clock: crate::clock::TraceClock::start(),
            rf_resume: false,
        };
        let mut coord = Coordinator::new(&env);
        coord.deliver(chunk(0x100, 3));
        coord.deliver(chunk(0x200, 2));
        assert_eq!(
            hooks.seen.lock().unwrap().len(),
            1,
            "no chunk is offered after a failure"
        );
        assert!(
            Arc::ptr_eq(&coord.unflushed[0], &hooks.seen.lock().unwrap()[0]),
            "the same rows, not a copy"
        );
        let kept: Vec<u64> = coord.unflushed.iter().flat_map(|c| c.pc.clone()).collect();
        assert_eq!(kept, [0x100, 0x101, 0x102, 0x200, 0x201]);
        let stop = ctl.stop().unwrap();
        assert_eq!((stop.vcpu, stop.reason.name()), (None, "sink_error"));
    }
}

#[test]
fn precomputed_faults_agree_with_fault_of() {
    let configs = [
        dbg(),
        GuestDebug::default(),
        GuestDebug {
            general_detect: true,
            single_step: true,
            ..Default::default()
        },
        GuestDebug {
            raw: Some(crate::debug::RawDebugRegs {
                dr: [0x8000, 0x8000, 0x9000, 0x1000],
                dr7: 0x0d0_0415,
            }),
            ..Default::default()
        },
    ];
    for d in &configs {
        let f = Faults::new(d);
        for exception in [1u32, 3, 6] {
            for pc in [0x8000u64, 0x8001, 0x9000, 0x1000] {
                for dr6 in [
                    0xffff0ff0u64,
                    0xffff0ff1,
                    0xffff0ff2,
                    0xffff0ff4,
                    0xffff2ff0,
                    0xffff4ff0,
                ] {
                    let ev = DebugEvent {
                        exception,
                        pc,
                        dr6,
                        dr7: 0,
                    };
                    assert_eq!(f.of(d, &ev), fault_of(d, &ev), "{d:?} {ev:?}");
                }
            }
        }
    }
}
