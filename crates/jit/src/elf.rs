//! The symbols a compiled shared object exports, read from its ELF dynamic symbol table
//! (what `nm -D --defined-only` prints), so that a missing symbol can be named with what
//! is there instead, before the library is loaded.

use object::{Object, ObjectSymbol};

/// The defined, exported functions and data of the shared object `bytes`, sorted; empty
/// when it does not parse.
pub(crate) fn exports(bytes: &[u8]) -> Vec<String> {
    let Ok(file) = object::File::parse(bytes) else {
        return Vec::new();
    };
    let mut names: Vec<String> = file
        .dynamic_symbols()
        .filter(|s| s.is_definition() && s.is_global())
        .filter(|s| {
            matches!(
                s.kind(),
                object::SymbolKind::Text | object::SymbolKind::Data | object::SymbolKind::Tls
            )
        })
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn garbage_exports_nothing() {
        assert!(super::exports(b"not an elf file").is_empty());
    }
}
