//! Arrays' elements as one run of little-endian bytes. bincode writes a byte string as its
//! length and the bytes, and reads it back as a slice of the payload (its length checked
//! against the bytes present), converted in one pass: several times faster than element by
//! element through serde, for the bulk of every file.

use std::fmt;
use std::marker::PhantomData;

use serde::de::Visitor;
use serde::{Deserializer, Serializer};

use crate::element::Element;

/// A serde `with` module for `Vec<E>` as little-endian bytes (`E` is `f32` or `f64`).
pub(crate) mod floats {
    use super::*;

    pub(crate) fn serialize<E: Element, S: Serializer>(
        data: &[E],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&E::to_le_bytes(data))
    }

    pub(crate) fn deserialize<'de, E: Element, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<E>, D::Error> {
        deserializer.deserialize_bytes(Floats::<E>(PhantomData))
    }
}

struct Floats<E>(PhantomData<E>);

impl<E: Element> Visitor<'_> for Floats<E> {
    type Value = Vec<E>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the little-endian bytes of {} elements", E::NAME)
    }

    fn visit_bytes<Err: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<E>, Err> {
        let width = std::mem::size_of::<E>();
        if !bytes.len().is_multiple_of(width) {
            return Err(Err::custom(format!(
                "{} bytes are not a whole number of {}-byte {} elements",
                bytes.len(),
                width,
                E::NAME
            )));
        }
        Ok(E::from_le_bytes(bytes))
    }

    fn visit_byte_buf<Err: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<E>, Err> {
        self.visit_bytes(&bytes)
    }
}

/// A serde `with` module for opaque `Vec<u8>` sections, as one byte string.
pub(crate) mod bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(data)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_bytes(Bytes)
    }
}

struct Bytes;

impl Visitor<'_> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<Err: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, Err> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<Err: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, Err> {
        Ok(bytes)
    }
}
