use super::*;
use crate::arch::{dr6, dr7};

fn exit(reason: u32, fill: impl FnOnce(&mut kvm_run)) -> kvm_run {
    let mut run = kvm_run {
        exit_reason: reason,
        ..Default::default()
    };
    fill(&mut run);
    run
}

fn no_io(_: u64, _: usize) -> Vec<u8> {
    panic!("no port data expected")
}

#[test]
fn debug_exit_keeps_all_fields() {
    let run = exit(KVM_EXIT_DEBUG, |r| {
        r.__bindgen_anon_1.debug.arch = kvm_debug_exit_arch {
            exception: 1,
            pad: 0,
            pc: 0x8003,
            dr6: dr6::CLEAN | dr6::BS,
            dr7: dr7::FIXED_1,
        }
    });
    let e = decode(Ok(()), &run, no_io).unwrap();
    assert_eq!(
        e,
        Exit::Debug(DebugEvent {
            exception: 1,
            pc: 0x8003,
            dr6: dr6::CLEAN | dr6::BS,
            dr7: dr7::FIXED_1
        })
    );
    assert_eq!(e.reason(), "debug");
}

fn io(direction: u32, port: u16, size: u8, count: u32) -> kvm_run {
    exit(KVM_EXIT_IO, |r| {
        r.__bindgen_anon_1.io = kvm_run__bindgen_ty_1__bindgen_ty_4 {
            direction: direction as u8,
            size,
            port,
            count,
            data_offset: 4096,
        }
    })
}

#[test]
fn port_exits_read_their_data_from_the_mapping() {
    let page: Vec<u8> = (0..8192).map(|i| i as u8).collect();
    let read = |off: u64, len: usize| page[off as usize..off as usize + len].to_vec();
    assert_eq!(
        decode(Ok(()), &io(KVM_EXIT_IO_OUT, 0xe9, 1, 1), read).unwrap(),
        Exit::IoOut {
            port: 0xe9,
            size: 1,
            data: vec![0]
        }
    );
    // `rep outsw` of 3: size counts every byte transferred.
    assert_eq!(
        decode(Ok(()), &io(KVM_EXIT_IO_OUT, 0x80, 2, 3), read).unwrap(),
        Exit::IoOut {
            port: 0x80,
            size: 6,
            data: vec![0, 1, 2, 3, 4, 5]
        }
    );
    assert_eq!(
        decode(Ok(()), &io(KVM_EXIT_IO_IN, 0x60, 2, 1), no_io).unwrap(),
        Exit::IoIn {
            port: 0x60,
            size: 2,
            count: 1
        }
    );
    let bad = decode(Ok(()), &io(7, 0x60, 1, 1), no_io).unwrap();
    assert!(
        matches!(&bad, Exit::Other(s) if s.contains("direction=7")),
        "{bad:?}"
    );
}

#[test]
fn mmio_exits() {
    let mmio = |is_write: u8, len: u32| {
        exit(KVM_EXIT_MMIO, |r| {
            r.__bindgen_anon_1.mmio = kvm_run__bindgen_ty_1__bindgen_ty_6 {
                phys_addr: 0xfee0_0000,
                data: [1, 2, 3, 4, 5, 6, 7, 8],
                len,
                is_write,
            }
        })
    };
    assert_eq!(
        decode(Ok(()), &mmio(0, 4), no_io).unwrap(),
        Exit::MmioRead {
            addr: 0xfee0_0000,
            len: 4
        }
    );
    assert_eq!(
        decode(Ok(()), &mmio(1, 2), no_io).unwrap(),
        Exit::MmioWrite {
            addr: 0xfee0_0000,
            data: vec![1, 2]
        }
    );
    // A length past the 8 data bytes cannot index out of them.
    assert_eq!(
        decode(Ok(()), &mmio(1, 99), no_io).unwrap(),
        Exit::MmioWrite {
            addr: 0xfee0_0000,
            data: vec![1, 2, 3, 4, 5, 6, 7, 8]
        }
    );
}

#[test]
fn terminal_exits() {
    let plain = |r| decode(Ok(()), &exit(r, |_| {}), no_io).unwrap();
    assert_eq!(plain(KVM_EXIT_HLT), Exit::Hlt);
    assert_eq!(plain(KVM_EXIT_SHUTDOWN), Exit::Shutdown);
    assert_eq!(plain(KVM_EXIT_INTR), Exit::Interrupted);
    let fail = exit(KVM_EXIT_FAIL_ENTRY, |r| {
        r.__bindgen_anon_1.fail_entry.hardware_entry_failure_reason = 7;
        r.__bindgen_anon_1.fail_entry.cpu = 1;
    });
    assert_eq!(
        decode(Ok(()), &fail, no_io).unwrap(),
        Exit::FailEntry { reason: 7, cpu: 1 }
    );
    let internal = exit(KVM_EXIT_INTERNAL_ERROR, |r| {
        let mut data = [0u64; 16];
        data[..3].copy_from_slice(&[0xa, 0xb, 0xc]);
        r.__bindgen_anon_1.internal = kvm_run__bindgen_ty_1__bindgen_ty_13 {
            suberror: KVM_INTERNAL_ERROR_EMULATION,
            ndata: 2,
            data,
        };
    });
    assert_eq!(
        decode(Ok(()), &internal, no_io).unwrap(),
        Exit::InternalError {
            suberror: KVM_INTERNAL_ERROR_EMULATION,
            data: vec![0xa, 0xb]
        }
    );
    assert_eq!(
        plain(KVM_EXIT_WATCHDOG),
        Exit::Other("watchdog".to_string())
    );
    assert_eq!(plain(999), Exit::Other("exit_reason(999)".to_string()));
    let sys = exit(KVM_EXIT_SYSTEM_EVENT, |r| {
        r.__bindgen_anon_1.system_event.type_ = KVM_SYSTEM_EVENT_RESET
    });
    assert_eq!(
        decode(Ok(()), &sys, no_io).unwrap(),
        Exit::Other(format!("system_event({KVM_SYSTEM_EVENT_RESET})"))
    );
}

#[test]
fn errno_mapping() {
    let run = exit(KVM_EXIT_DEBUG, |_| {});
    let err = |n| Err(kvm_ioctls::Error::new(n));
    assert_eq!(
        decode(err(libc::EINTR), &run, no_io).unwrap(),
        Exit::Interrupted
    );
    assert_eq!(
        decode(err(libc::EAGAIN), &run, no_io).unwrap(),
        Exit::Interrupted
    );
    // A stale exit_reason under an error is not decoded.
    let e = decode(err(libc::EFAULT), &run, no_io)
        .unwrap_err()
        .to_string();
    assert!(e.contains("KVM_RUN"), "{e}");
    let fault = exit(KVM_EXIT_MEMORY_FAULT, |r| {
        r.__bindgen_anon_1.memory_fault.gpa = 0x1000;
        r.__bindgen_anon_1.memory_fault.size = 0x1000;
    });
    assert_eq!(
        decode(err(libc::EFAULT), &fault, no_io).unwrap(),
        Exit::Other("memory_fault(gpa=0x1000, size=4096)".to_string())
    );
}
