//! QEMU's fw_cfg, legacy I/O interface only: a 16-bit selector at 0x510 and a byte
//! data port at 0x511 (no DMA). It answers what kvm-unit-tests and small kernels ask
//! for: the signature, the interface ID, the CPU count and the RAM size; every other
//! item reads as zeros (an empty file directory).

pub const SELECTOR: u16 = 0x510;
pub const DATA: u16 = 0x511;

/// Item keys (QEMU's include/standard-headers/linux/qemu_fw_cfg.h).
pub const SIGNATURE: u16 = 0x00;
pub const ID: u16 = 0x01;
pub const RAM_SIZE: u16 = 0x03;
pub const NB_CPUS: u16 = 0x05;
pub const MAX_CPUS: u16 = 0x0f;

pub struct FwCfg {
    cpus: u16,
    ram_size: u64,
    item: Vec<u8>,
    pos: usize,
}

impl FwCfg {
    pub fn new(cpus: u16, ram_size: u64) -> Self {
        let mut f = FwCfg {
            cpus,
            ram_size,
            item: Vec::new(),
            pos: 0,
        };
        f.select(SIGNATURE);
        f
    }

    pub fn select(&mut self, key: u16) {
        self.item = match key {
            SIGNATURE => b"QEMU".to_vec(),
            ID => 1u32.to_le_bytes().to_vec(), // bit 0: the traditional interface
            RAM_SIZE => self.ram_size.to_le_bytes().to_vec(),
            NB_CPUS | MAX_CPUS => self.cpus.to_le_bytes().to_vec(),
            _ => Vec::new(),
        };
        self.pos = 0;
    }

    /// The next byte of the selected item (0 past its end, as QEMU answers).
    pub fn read_byte(&mut self) -> u8 {
        let b = self.item.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
}
