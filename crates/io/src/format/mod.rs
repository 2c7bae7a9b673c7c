//! The on-disk types, one module per format version, kept apart from the engine's in-memory
//! types so that the engine can change without breaking files. Loading converts a version's
//! types into the in-memory ones, checking everything; saving converts the other way.
//!
//! They are public so that tools (and tests, and fuzzers) can build files by hand, including
//! invalid ones.

pub mod v1;
pub mod v2;

/// `to_bytes`, `from_bytes` and `from_payload` for a file type of `$kind` at `$version`.
macro_rules! file_type {
    ($ty:ident, $kind:expr, $version:literal) => {
        impl $ty {
            /// The whole file: header and payload.
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut file = vec![0; $crate::container::HEADER_LEN];
                $crate::codec::encode_into(self, &mut file);
                $crate::container::seal($kind, $version, file)
            }

            /// Decodes a whole file of this version, checking its container and its encoding
            /// (not its meaning).
            pub fn from_bytes(bytes: &[u8]) -> $crate::Result<Self> {
                let (version, payload) = $crate::container::unwrap(bytes, $kind)?;
                if version != $version {
                    return Err($crate::Error::Decode {
                        reason: format!(
                            "a {} file of format version {version}, read as version {}",
                            $kind, $version
                        ),
                    });
                }
                Self::from_payload(payload)
            }

            /// Decodes a payload (the bytes after the header), under the byte limit.
            pub fn from_payload(payload: &[u8]) -> $crate::Result<Self> {
                $crate::codec::decode(payload)
            }
        }
    };
}

pub(crate) use file_type;
