use super::*;

fn devices(legacy_ports: bool) -> Devices {
    Devices::new(&DeviceConfig { legacy_ports }, 2, 32 << 20, None)
}

#[test]
fn uart_output_joins_the_console_and_lsr_reports_thre() {
    let d = devices(false);
    let mut console = Vec::new();
    assert!(d.io_out(uart::COM1, b"hi", &mut console));
    assert_eq!(console, b"hi");
    let lsr = d.io_in(uart::COM1 + 5, 1).unwrap()[0];
    assert_eq!(
        lsr & 0x60,
        0x60,
        "THRE and TEMT: the transmitter is always ready"
    );
    // DLAB set: offset 0 is the divisor latch, not the transmitter.
    d.io_out(uart::COM1 + 3, &[0x80], &mut console);
    d.io_out(uart::COM1, &[0x01], &mut console);
    assert_eq!(console, b"hi");
    assert_eq!(d.io_in(uart::COM1, 1).unwrap(), vec![0x01]);
}

#[test]
fn fw_cfg_answers_signature_and_cpu_count() {
    let d = devices(false);
    let mut c = Vec::new();
    d.io_out(fw_cfg::SELECTOR, &fw_cfg::SIGNATURE.to_le_bytes(), &mut c);
    let sig: Vec<u8> = (0..4)
        .map(|_| d.io_in(fw_cfg::DATA, 1).unwrap()[0])
        .collect();
    assert_eq!(sig, b"QEMU");
    d.io_out(fw_cfg::SELECTOR, &fw_cfg::NB_CPUS.to_le_bytes(), &mut c);
    assert_eq!(d.io_in(fw_cfg::DATA, 1).unwrap(), vec![2]);
    assert_eq!(d.io_in(fw_cfg::DATA, 1).unwrap(), vec![0]);
    d.io_out(fw_cfg::SELECTOR, &fw_cfg::RAM_SIZE.to_le_bytes(), &mut c);
    let ram: Vec<u8> = (0..8)
        .map(|_| d.io_in(fw_cfg::DATA, 1).unwrap()[0])
        .collect();
    assert_eq!(u64::from_le_bytes(ram.try_into().unwrap()), 32 << 20);
    d.io_out(fw_cfg::SELECTOR, &0x4242u16.to_le_bytes(), &mut c);
    assert_eq!(
        d.io_in(fw_cfg::DATA, 1).unwrap(),
        vec![0],
        "unknown items read as zeros"
    );
    assert!(c.is_empty());
}

#[test]
fn legacy_ports_answer_only_when_on_and_only_their_ranges() {
    let off = devices(false);
    assert_eq!(off.legacy_in(0x64, 1), None);
    assert!(!off.legacy_out(0x80, &[0]));
    let on = devices(true);
    assert_eq!(on.legacy_in(0x64, 1), Some(vec![0xff]), "no i8042");
    assert_eq!(on.legacy_in(0xcfc, 4), Some(vec![0xff; 4]), "no PCI");
    assert!(on.legacy_out(0x80, &[0x12]));
    assert_eq!(on.legacy_in(0x1234, 1), None, "not a legacy port");
    assert_eq!(
        on.legacy_in(0xf4, 1),
        None,
        "the exit port is not in the table"
    );
    // CMOS: register A has no update in progress, the date is valid BCD.
    assert!(on.legacy_out(0x70, &[0x8a]));
    assert_eq!(on.legacy_in(0x71, 1), Some(vec![0x26]));
    on.legacy_out(0x70, &[0x09]);
    assert_eq!(on.legacy_in(0x71, 1), Some(vec![0x25]));
}

#[test]
fn qemu_exit_status() {
    assert_eq!(debug_exit::qemu_status(0), 1);
    assert_eq!(debug_exit::qemu_status(1), 3);
    assert_eq!(
        debug_exit::qemu_status(0x80),
        1,
        "an 8-bit status, as the OS keeps it"
    );
}
