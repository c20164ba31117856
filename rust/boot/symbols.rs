//! A loaded program's symbols, kept in the core so the one error mapping can name
//! the function a failing pc is in. Filled from Python (which reads ELF symbol
//! tables, System.map and kallsyms) through `Machine` bindings.

#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    /// (address, size, name), sorted by address; size 0 means "up to the next one".
    entries: Vec<(u64, u64, String)>,
}

impl SymbolTable {
    pub fn new(mut entries: Vec<(u64, u64, String)>) -> Self {
        entries.sort_by_key(|e| e.0);
        SymbolTable { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `name+0xoff` for the symbol containing `addr`, if any.
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let i = self
            .entries
            .partition_point(|e| e.0 <= addr)
            .checked_sub(1)?;
        let (start, size, name) = &self.entries[i];
        if *size != 0 && addr >= start + size {
            return None;
        }
        let off = addr - start;
        Some(if off == 0 {
            name.clone()
        } else {
            format!("{name}+{off:#x}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolize_inside_sized_and_unsized_symbols() {
        let t = SymbolTable::new(vec![(0x2000, 0, "b".into()), (0x1000, 0x10, "a".into())]);
        assert_eq!(t.symbolize(0x1000).as_deref(), Some("a"));
        assert_eq!(t.symbolize(0x100f).as_deref(), Some("a+0xf"));
        assert_eq!(t.symbolize(0x1010), None);
        assert_eq!(t.symbolize(0x2345).as_deref(), Some("b+0x345"));
        assert_eq!(t.symbolize(0xfff), None);
    }
}
