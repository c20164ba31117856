use super::flags::*;
use super::*;

fn bp(addr: u64, kind: &str, len: u8) -> HwBreakpoint {
    HwBreakpoint::new(addr, BpKind::parse(kind).unwrap(), len).unwrap()
}

#[test]
fn exec_breakpoints_in_each_slot() {
    for i in 0..4 {
        let mut hw = vec![bp(0x1000, "exec", 1); i];
        hw.push(bp(0x8000, "exec", 1));
        let g = GuestDebug {
            hw_breakpoints: hw,
            ..Default::default()
        };
        let expect = (0..=i).fold(0x400u64, |a, s| a | (1 << (2 * s)));
        assert_eq!(g.dr7(), expect);
        assert_eq!(g.dr0_3()[i], 0x8000);
    }
}

#[test]
fn data_breakpoint_fields() {
    // DR1 write, 4 bytes: L1 (bit 2), R/W1 = 01 at bits 20-21, LEN1 = 11 at 22-23.
    let g = GuestDebug {
        hw_breakpoints: vec![bp(0, "exec", 1), bp(0x2000, "write", 4)],
        ..Default::default()
    };
    assert_eq!(g.dr7(), 0x400 | 1 | (1 << 2) | (0b01 << 20) | (0b11 << 22));
    // 8-byte length encodes as 10.
    let g = GuestDebug {
        hw_breakpoints: vec![bp(0x3000, "rw", 8)],
        ..Default::default()
    };
    assert_eq!(g.dr7(), 0x400 | 1 | (0b11 << 16) | (0b10 << 18));
    // I/O breakpoint in DR3.
    let g = GuestDebug {
        hw_breakpoints: vec![
            bp(0, "exec", 1),
            bp(0, "exec", 1),
            bp(0, "exec", 1),
            bp(0x80, "io", 1),
        ],
        ..Default::default()
    };
    assert_eq!((g.dr7() >> 28) & 3, 0b10);
    assert_eq!(g.dr7() & (1 << 6), 1 << 6);
}

#[test]
fn general_detect_sets_gd() {
    let g = GuestDebug {
        general_detect: true,
        ..Default::default()
    };
    assert_eq!(g.dr7(), 0x400 | dr7::GD);
    assert_ne!(g.control() & KVM_GUESTDBG_USE_HW_BP, 0);
}

#[test]
fn invalid_breakpoints_name_the_field() {
    let e = HwBreakpoint::new(0x1000, BpKind::Exec, 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("length") && e.contains("exec"), "{e}");
    let e = HwBreakpoint::new(0x1002, BpKind::Write, 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("addr") && e.contains("aligned"), "{e}");
    let e = HwBreakpoint::new(0x1000, BpKind::Write, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("length"), "{e}");
    let e = HwBreakpoint::new(0x10000, BpKind::Io, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("port"), "{e}");
    assert!(BpKind::parse("read").is_err());
    let g = GuestDebug {
        hw_breakpoints: vec![bp(0, "exec", 1); 5],
        ..Default::default()
    };
    assert!(g
        .validate()
        .unwrap_err()
        .to_string()
        .contains("hw_breakpoints"));
    let g = GuestDebug {
        raw: Some(RawDebugRegs {
            dr: [0; 4],
            dr7: 1 << 40,
        }),
        ..Default::default()
    };
    assert!(g
        .validate()
        .unwrap_err()
        .to_string()
        .contains("raw_debugreg"));
    let g = GuestDebug {
        sw_breakpoints: vec![5, 5],
        ..Default::default()
    };
    assert!(g.validate().is_err());
}

#[test]
fn flag_values_are_the_x86_uapi_ones() {
    assert_eq!(KVM_GUESTDBG_USE_SW_BP, 0x1_0000);
    assert_eq!(KVM_GUESTDBG_USE_HW_BP, 0x2_0000);
    assert_eq!(KVM_GUESTDBG_INJECT_DB, 0x4_0000);
    assert_eq!(KVM_GUESTDBG_INJECT_BP, 0x8_0000);
    assert_eq!(KVM_GUESTDBG_BLOCKIRQ, 0x10_0000);
    assert_eq!(
        names(0x10_0003 | 1 << 30),
        [
            "KVM_GUESTDBG_ENABLE",
            "KVM_GUESTDBG_SINGLESTEP",
            "KVM_GUESTDBG_BLOCKIRQ",
            "0x40000000"
        ]
    );
}

#[test]
fn control_flags_and_support() {
    let g = GuestDebug {
        single_step: true,
        block_irq: true,
        inject_db: true,
        ..Default::default()
    };
    assert_eq!(
        g.control(),
        KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_BLOCKIRQ
    );
    assert_eq!(g.inject_flags(), KVM_GUESTDBG_INJECT_DB);
    assert_eq!(g.first_unsupported(LEGACY), Some(KVM_GUESTDBG_BLOCKIRQ));
    assert_eq!(name(KVM_GUESTDBG_BLOCKIRQ), "KVM_GUESTDBG_BLOCKIRQ");
    let g = GuestDebug {
        single_step: true,
        ..Default::default()
    };
    assert_eq!(g.first_unsupported(LEGACY), None);
}

#[test]
fn exec_slot_lookup_and_disarm() {
    let g = GuestDebug {
        hw_breakpoints: vec![bp(0x10, "write", 1), bp(0x8000, "exec", 1)],
        ..Default::default()
    };
    assert_eq!(g.exec_slot_at(0x8000), Some(1));
    assert_eq!(g.exec_slot_at(0x10), None);
    let d = g.without_exec_at(0x8000);
    assert_eq!(d.exec_slot_at(0x8000), None);
    assert_eq!(d.dr7() & 1, 1, "other slots stay armed");
    // Two slots on one address: both are disarmed for the step.
    let g = GuestDebug {
        raw: Some(RawDebugRegs {
            dr: [0x8001, 0x8001, 0x9000, 0],
            dr7: 0x415,
        }),
        ..Default::default()
    };
    let d = g.without_exec_at(0x8001);
    assert_eq!(d.exec_slot_at(0x8001), None);
    assert_eq!(d.exec_slot_at(0x9000), Some(2));
}

#[test]
fn data_causes() {
    let d = GuestDebug {
        hw_breakpoints: vec![bp(0x8000, "exec", 1), bp(0x1000, "write", 4)],
        ..Default::default()
    };
    assert!(d.data_cause(0xffff0ff2));
    assert!(!d.data_cause(0xffff0ff1));
    assert!(!d.data_cause(0xffff4ff0));
}
