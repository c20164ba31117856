use super::*;
use crate::kvm::regs::Gp;

fn ev(pc: u64) -> DebugEvent {
    DebugEvent {
        exception: 1,
        pc,
        dr6: 0xffff4ff0,
        dr7: 0x400,
    }
}

#[test]
fn push_take_and_derived_columns() {
    let mut c = Columns::for_vcpu(3, vec![Gp::Rip, Gp::Rax], 4);
    let regs = kvm_regs {
        rip: 5,
        rax: 7,
        ..Default::default()
    };
    c.push(10, &ev(5), Some(&regs));
    c.push(11, &ev(6), Some(&regs));
    assert_eq!(c.len(), 2);
    assert_eq!(c.regs[1], vec![7, 7]);
    let t = c.take(8);
    assert!(c.pc.capacity() >= 8 && c.is_empty());
    assert_eq!(c.reg_names, vec![Gp::Rip, Gp::Rax]);
    assert_eq!((t.seq_vec(), t.vcpu_vec()), (vec![0, 1], vec![3, 3]));
    c.push(12, &ev(7), Some(&regs));
    assert_eq!(c.seq_vec(), vec![2], "the next chunk goes on numbering");
    assert_eq!(FIXED_BYTES_PER_EVENT, 25);
    assert_eq!(
        super::MATERIALIZED_BYTES_PER_EVENT,
        43,
        "seq, vcpu, time, exception, pc, dr6, dr7"
    );
}

#[test]
fn bytes_per_event_of_a_fixed_configuration() {
    let mut c = Columns::for_vcpu(0, vec![], 1000);
    for i in 0..1000 {
        c.push(i, &ev(i), None);
    }
    assert_eq!(
        c.heap_bytes(),
        1000 * FIXED_BYTES_PER_EVENT,
        "seq, vcpu and dr7 cost nothing per row"
    );
    assert_eq!(c.dr7.to_vec(), vec![0x400; 1000]);
}

fn part(vcpu: u16, first_seq: u64, rows: &[(u64, u64)]) -> Columns {
    let mut c = Columns::for_vcpu(vcpu, vec![], rows.len());
    c.seq = Seq::Position(first_seq);
    for &(t, pc) in rows {
        c.push(t, &ev(pc), None);
    }
    c
}

#[test]
fn merge_orders_by_time() {
    let a = part(0, 0, &[(1, 0x10), (5, 0x11)]);
    let b = part(1, 0, &[(3, 0x20), (4, 0x21)]);
    let m = Columns::merge(vec![a.clone(), b.clone()], true);
    assert_eq!(m.pc, vec![0x10, 0x20, 0x21, 0x11]);
    assert_eq!(m.vcpu_vec(), vec![0, 1, 1, 0]);
    assert_eq!(m.seq_vec(), vec![0, 1, 2, 3]);
    let m = Columns::merge(vec![a, b], false);
    assert_eq!(m.seq_vec(), vec![0, 0, 1, 1], "per-vCPU seq kept");
    // A streamed tail: per-vCPU seq continues after the rows already written.
    let m = Columns::merge(
        vec![part(0, 100, &[(1, 1), (2, 2)]), part(1, 7, &[(3, 3)])],
        false,
    );
    assert_eq!(m.seq_vec(), vec![100, 101, 7]);
}

#[test]
fn concat_keeps_order_and_values() {
    let a = part(0, 0, &[(1, 1), (2, 2)]);
    let b = part(0, 2, &[(3, 3)]);
    let c = Columns::concat(&[&a, &b], vec![]);
    assert_eq!(
        (c.seq.clone(), c.vcpu.clone()),
        (Seq::Position(0), Vcpus::One(0))
    );
    assert_eq!(c.pc, vec![1, 2, 3]);
    let d = Columns::concat(&[&a, &part(1, 5, &[(4, 4)])], vec![]);
    assert_eq!(d.seq_vec(), vec![0, 1, 5]);
    assert_eq!(d.vcpu_vec(), vec![0, 0, 1]);
}
