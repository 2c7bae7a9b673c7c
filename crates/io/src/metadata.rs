//! A tape's metadata: string keys and values the writer records beside the model (what it was
//! trained on, its class names), bounded and checked on save and on load.

use std::collections::BTreeMap;

use crate::format::v2::MetadataV2;
use crate::{Error, Result};

/// The most entries a tape's metadata may hold.
pub const MAX_METADATA_ENTRIES: usize = 4096;
/// The longest key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// The most bytes all keys and values together may take.
pub const MAX_METADATA_BYTES: usize = 1 << 20;

/// A key is 1 to [`MAX_METADATA_KEY_BYTES`] bytes of printable ASCII (no space, no control
/// byte), so that it prints and compares the same everywhere.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Metadata {
            reason: format!("key {key:?} {why}"),
        })
    };
    if key.is_empty() {
        return bad("is empty");
    }
    if key.len() > MAX_METADATA_KEY_BYTES {
        return bad(&format!("is longer than {MAX_METADATA_KEY_BYTES} bytes"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("holds a byte that is not printable ASCII");
    }
    Ok(())
}

/// Every key valid, and the whole within [`MAX_METADATA_ENTRIES`] and [`MAX_METADATA_BYTES`].
pub(crate) fn check(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::Metadata {
            reason: format!(
                "{} entries, more than {MAX_METADATA_ENTRIES}",
                metadata.len()
            ),
        });
    }
    let mut bytes = 0usize;
    for (key, value) in metadata {
        check_key(key)?;
        bytes = bytes.saturating_add(key.len()).saturating_add(value.len());
    }
    if bytes > MAX_METADATA_BYTES {
        return Err(Error::Metadata {
            reason: format!("{bytes} bytes of keys and values, more than {MAX_METADATA_BYTES}"),
        });
    }
    Ok(())
}

/// The file's list as a map: keys in strictly increasing order (each map has one encoding),
/// then [`check`]ed.
pub(crate) fn from_file(list: Vec<MetadataV2>) -> Result<BTreeMap<String, String>> {
    if list.len() > MAX_METADATA_ENTRIES {
        return Err(Error::Metadata {
            reason: format!("{} entries, more than {MAX_METADATA_ENTRIES}", list.len()),
        });
    }
    let mut map = BTreeMap::new();
    let mut previous: Option<String> = None;
    for MetadataV2 { key, value } in list {
        check_key(&key)?;
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(Error::Metadata {
                reason: format!("key {key:?} is repeated or out of increasing order"),
            });
        }
        previous = Some(key.clone());
        map.insert(key, value);
    }
    check(&map)?;
    Ok(map)
}

/// The map as the file's list, in key order.
pub(crate) fn to_file(metadata: &BTreeMap<String, String>) -> Vec<MetadataV2> {
    metadata
        .iter()
        .map(|(key, value)| MetadataV2 {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> MetadataV2 {
        MetadataV2 {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn keys_must_be_short_printable_unique_and_sorted() {
        let refused = |list: Vec<MetadataV2>| from_file(list).unwrap_err().to_string();
        assert!(refused(vec![entry("", "v")]).contains("is empty"));
        assert!(refused(vec![entry("a b", "v")]).contains("printable"));
        assert!(refused(vec![entry("a\u{1b}", "v")]).contains("printable"));
        assert!(refused(vec![entry(&"k".repeat(129), "v")]).contains("longer than 128"));
        assert!(refused(vec![entry("b", ""), entry("a", "")]).contains("out of increasing"));
        assert!(refused(vec![entry("a", ""), entry("a", "")]).contains("repeated"));
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert!(refused(vec![entry("a", &big)]).contains("bytes of keys and values"));
        let many = (0..=MAX_METADATA_ENTRIES)
            .map(|i| entry(&format!("k{i:05}"), ""))
            .collect();
        assert!(refused(many).contains("entries"));
        let map = from_file(vec![entry("a", "1"), entry("b", "snow \u{2603}")]).unwrap();
        assert_eq!(
            to_file(&map),
            vec![entry("a", "1"), entry("b", "snow \u{2603}")]
        );
    }
}
