//! The segment, control and table registers each mode starts in (flat segments,
//! base 0), shared by the plain guests and the kernel loaders.

use kvm_bindings::{kvm_segment, kvm_sregs};

use crate::kvm::layout::{self, Mode};

fn seg(selector: u16, type_: u8, db: u8, l: u8, g: u8, limit: u32) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db,
        s: 1,
        l,
        g,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Segment, control and table registers for each mode (flat segments, base 0).
pub fn setup_sregs(s: &mut kvm_sregs, mode: Mode) {
    match mode {
        Mode::Real => {
            let code = seg(0, 0xb, 0, 0, 0, 0xffff);
            let data = seg(0, 0x3, 0, 0, 0, 0xffff);
            s.cs = code;
            (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
            s.cr0 = 0x10 | 0x20; // ET, NE
            s.cr4 = 0;
            s.efer = 0;
            s.idt.base = layout::IVT;
            s.idt.limit = 0x3ff;
        }
        Mode::Protected => {
            s.cs = seg(layout::SEL_CODE32, 0xb, 1, 0, 1, 0xffff_ffff);
            let data = seg(layout::SEL_DATA, 0x3, 1, 0, 1, 0xffff_ffff);
            (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
            s.cr0 = 0x1 | 0x10 | 0x20; // PE, ET, NE
            s.cr4 = 0x600; // OSFXSR, OSXMMEXCPT
            s.efer = 0;
            s.idt.base = layout::IDT;
            s.idt.limit = (256 * 8 - 1) as u16;
        }
        Mode::Long => {
            s.cs = seg(layout::SEL_CODE64, 0xb, 0, 1, 1, 0xffff_ffff);
            let data = seg(layout::SEL_DATA, 0x3, 1, 0, 1, 0xffff_ffff);
            (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
            s.cr0 = 0x8005_0033; // PG, WP, NE, ET, MP, PE
            s.cr3 = layout::PML4;
            s.cr4 = 0x620; // PAE, OSFXSR, OSXMMEXCPT
            s.efer = 0x500; // LME, LMA
            s.idt.base = layout::IDT;
            s.idt.limit = (256 * 16 - 1) as u16;
        }
    }
    s.gdt.base = layout::GDT;
    s.gdt.limit = (8 * 5 - 1) as u16;
}
