//! The rust-vmm loaders write through vm-memory's `GuestMemoryBackend`; this views
//! kvmtrace's own guest mapping as a vm-memory `GuestMemoryMmap` (no copy, no
//! second mapping: vm-memory only borrows the pointer and never unmaps it).

use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::error::{Error, Result};
use crate::kvm::memory::GuestMemory;

pub fn view(mem: &GuestMemory) -> Result<GuestMemoryMmap> {
    let fail = |e: String| Error::Internal(format!("cannot view guest memory for the loader: {e}"));
    // SAFETY: the pointer and size are exactly kvmtrace's live anonymous mapping; the
    // view is used only while `mem` is borrowed (every caller drops it before
    // returning), and a raw-pointer MmapRegion does not unmap on drop.
    let region = unsafe {
        MmapRegion::build_raw(
            mem.host_ptr(),
            mem.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        )
    }
    .map_err(|e| fail(e.to_string()))?;
    let region = GuestRegionMmap::new(region, GuestAddress(0))
        .ok_or_else(|| fail("region overflows".into()))?;
    GuestMemoryMmap::from_regions(vec![region]).map_err(|e| fail(e.to_string()))
}
