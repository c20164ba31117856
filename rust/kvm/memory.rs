//! Guest memory: one anonymous mapping registered as KVM memory slot 0 at
//! guest-physical address 0.

use std::ptr::NonNull;

use crate::error::{Error, Result};

pub struct GuestMemory {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is plain memory owned by this struct for its whole life; it is
// shared with the guest anyway, and every host access below is bounds-checked and
// copies through raw pointers (no references into guest memory escape), so moving or
// sharing the handle between threads cannot create aliasing references.
unsafe impl Send for GuestMemory {}
// SAFETY: see `Send` above.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    pub fn new(size: usize) -> Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(Error::invalid(
                "memory_size",
                format!("cannot map {size:#x} bytes of guest memory: {e}"),
            ));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| Error::Internal("mmap returned NULL".into()))?;
        Ok(GuestMemory { ptr, size })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The mapping itself, for loaders that write through their own memory view.
    pub fn host_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn host_addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    fn check(&self, addr: u64, len: usize) -> Result<usize> {
        let end = addr.checked_add(len as u64);
        match end {
            Some(end) if end <= self.size as u64 => Ok(addr as usize),
            _ => Err(Error::OutOfRange {
                addr,
                len,
                size: self.size as u64,
            }),
        }
    }

    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let off = self.check(addr, buf.len())?;
        // SAFETY: `check` proved off..off+len lies inside the mapping; the copy goes
        // through raw pointers because the guest may write the same bytes concurrently.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    pub fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.check(addr, len)?; // before allocating: `len` may be absurd
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> Result<()> {
        let off = self.check(addr, data.len())?;
        // SAFETY: bounds checked by `check`; raw copy as in `read`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(off), data.len())
        };
        Ok(())
    }

    pub fn write_u64(&self, addr: u64, v: u64) -> Result<()> {
        self.write(addr, &v.to_le_bytes())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: ptr/size are exactly the mapping made in `new`; the VM (and its
        // memory slot) is dropped before this struct by field order in `Vm`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let m = GuestMemory::new(0x2000).unwrap();
        m.write(0x1ff8, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(m.read_vec(0x1ffc, 4).unwrap(), vec![5, 6, 7, 8]);
        assert!(matches!(
            m.read_vec(0x1ffd, 4),
            Err(Error::OutOfRange { .. })
        ));
        assert!(matches!(
            m.write(u64::MAX, &[0]),
            Err(Error::OutOfRange { .. })
        ));
        assert!(m.read_vec(0x2000, 0).is_ok());
    }
}
