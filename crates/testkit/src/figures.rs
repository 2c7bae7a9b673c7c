//! The figures `docs/ARCHITECTURE.md` quotes from the code, written there as
//! `` `NAME` = 65,536 ``, read back so that tests can hold them to the constants.

use std::collections::BTreeMap;

/// The workspace's architecture document, read when a test asks (this crate is never
/// published, so the path always leads into the workspace).
fn architecture() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ARCHITECTURE.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every `` `NAME` = number `` in `text` (an upper-case name, digits with optional thousands
/// commas), by name; a name quoted twice with two values panics.
pub fn quoted_figures(text: &str) -> BTreeMap<String, u64> {
    let mut figures = BTreeMap::new();
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('`') else { break };
        let name = &rest[..close];
        let after = &rest[close + 1..];
        let named = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if let Some(value) = after.strip_prefix(" = ").filter(|_| named) {
            let digits: String = value
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .collect();
            let digits = digits.trim_end_matches(',').replace(',', "");
            if let Ok(v) = digits.parse::<u64>()
                && let Some(old) = figures.insert(name.to_string(), v)
            {
                assert_eq!(old, v, "`{name}` is quoted as {old} and as {v}");
            }
        }
        rest = after;
    }
    figures
}

/// The value `docs/ARCHITECTURE.md` quotes for the constant `name`; panics, naming it, if the
/// document quotes none.
pub fn architecture_figure(name: &str) -> u64 {
    quoted_figures(&architecture())
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md quotes no `{name}` = value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every figure the document quotes, with the test that holds it to the code.
    const CHECKED: [(&str, &str); 5] = [
        ("MAX_CLASSES", "wengert-train tests/it/architecture.rs"),
        ("MAX_RANK", "wengert-train tests/it/architecture.rs"),
        ("PARALLEL_MIN_ELEMENTS", "wengert-train src/optim/adam.rs"),
        ("PARALLEL_MIN_MACS", "wengert-gemm src/driver.rs"),
        ("PARALLEL_MIN_OUTPUTS", "wengert-gemm src/driver.rs"),
    ];

    #[test]
    fn every_quoted_figure_is_checked() {
        let quoted: Vec<String> = quoted_figures(&architecture()).into_keys().collect();
        let checked: Vec<&str> = CHECKED.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            quoted, checked,
            "a figure ARCHITECTURE.md quotes needs a test beside its constant (and a line here)"
        );
    }

    #[test]
    fn figures_are_read_with_their_commas_and_names_alone() {
        let text = "split at `N` = 65,536 elements, `M` = 6, `lower` = 3, `K` (9), `L` = x.";
        let f = quoted_figures(text);
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            [("M".into(), 6), ("N".into(), 65_536)]
        );
    }
}
