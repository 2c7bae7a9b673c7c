//! Dotted names for a model's tensors (`layers.0.weight`): a container prefixes its parts'
//! names with their own, and the names are checked before a model's state is saved or loaded.

use std::collections::BTreeSet;

use crate::{Error, Result};

/// `prefix.name` for each of `names`: the names of a part as the module holding it lists
/// them (PyTorch's `named_parameters` on a submodule held as `prefix`).
///
/// ```
/// use wengert_train::prefixed;
/// assert_eq!(prefixed("hidden", ["weight", "bias"]), ["hidden.weight", "hidden.bias"]);
/// ```
pub fn prefixed(prefix: &str, names: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    names
        .into_iter()
        .map(|name| format!("{prefix}.{}", name.as_ref()))
        .collect()
}

/// Pairs `names` with `items` (a model's tensors of one `kind`), or an error if there are
/// not as many of each, or a name is empty or repeated.
pub(crate) fn zip_named<T>(
    kind: &str,
    names: Vec<String>,
    items: Vec<T>,
) -> Result<Vec<(String, T)>> {
    if names.len() != items.len() {
        return Err(Error::Model(format!(
            "the model names {} {kind}s but lists {}",
            names.len(),
            items.len()
        )));
    }
    check_unique(kind, &names)?;
    Ok(names.into_iter().zip(items).collect())
}

/// An error naming the first empty or repeated name.
pub(crate) fn check_unique<'a>(
    kind: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    for name in names {
        if name.is_empty() {
            return Err(Error::Model(format!("a {kind} has an empty name")));
        }
        if !seen.insert(name.as_str()) {
            return Err(Error::Model(format!("two {kind}s are named `{name}`")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_checked() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = zip_named("parameter", names(&["a", "b"]), vec![1, 2]).unwrap();
        assert_eq!(ok, [("a".to_string(), 1), ("b".to_string(), 2)]);
        let cases: [(&[&str], &str); 3] = [
            (&["a"], "names 1 parameters but lists 2"),
            (&["a", "a"], "two parameters are named `a`"),
            (&["a", ""], "empty name"),
        ];
        for (given, expected) in cases {
            let err = zip_named("parameter", names(given), vec![1, 2]).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
