//! The payload encoding: bincode 2 through serde, little-endian with fixed-width integers (so
//! that `docs/FORMAT.md` can give every field's width), decoded under a byte limit.

use bincode::config::{Configuration, Fixint, LittleEndian};
use bincode::error::DecodeError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

fn config() -> Configuration<LittleEndian, Fixint> {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// Encodes a value as a payload.
#[cfg(test)]
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends a value's encoding to `out`.
pub(crate) fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    // Encoding into a Vec fails only for types serde cannot map to bincode (maps of unknown
    // length); the on-disk types have none.
    bincode::serde::encode_into_std_write(value, out, config())
        .expect("the on-disk types always encode");
}

/// Decodes a whole payload, refusing trailing bytes.
///
/// bincode counts every byte it reads and every container it pre-allocates against the limit,
/// so a length field that claims 2⁴⁰ bytes fails before anything is allocated. The limit must
/// be a constant, so it is picked from a ladder of powers of four: the smallest at least twice
/// the payload (each byte may be counted once when read and once when claimed) plus a margin.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let need = payload.len().saturating_mul(2).saturating_add(4096);
    macro_rules! ladder {
        ($($bits:literal),*) => {$(
            if need <= 1usize << $bits {
                return finish(
                    bincode::serde::decode_from_slice(
                        payload,
                        config().with_limit::<{ 1usize << $bits }>(),
                    ),
                    payload.len(),
                    1usize << $bits,
                );
            }
        )*};
    }
    ladder!(14, 16, 18, 20, 22, 24, 26, 28, 30);
    #[cfg(target_pointer_width = "64")]
    ladder!(
        32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62
    );
    Err(Error::LimitExceeded { limit: usize::MAX })
}

fn finish<T>(
    decoded: std::result::Result<(T, usize), DecodeError>,
    len: usize,
    limit: usize,
) -> Result<T> {
    match decoded {
        Ok((value, read)) if read == len => Ok(value),
        Ok((_, read)) => Err(Error::TrailingBytes { count: len - read }),
        Err(DecodeError::LimitExceeded) => Err(Error::LimitExceeded { limit }),
        Err(err) => Err(Error::Decode {
            reason: err.to_string(),
        }),
    }
}

/// Decodes a sequence without trusting its length field for the allocation: serde alone would
/// pre-allocate up to 1 MiB for any claimed length, more than the limit of a small file. At
/// most 4 KiB is reserved up front; past that the vector grows as elements actually arrive,
/// so memory follows the bytes present, not the bytes claimed.
pub(crate) fn bounded_vec<'de, D, T>(deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct Bounded<T>(std::marker::PhantomData<T>);

    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Vec<T>, A::Error> {
            let most = 4096 / std::mem::size_of::<T>().max(1);
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(most));
            while let Some(element) = seq.next_element()? {
                out.push(element);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(Bounded(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Bounded(#[serde(deserialize_with = "bounded_vec")] Vec<f32>);

    #[test]
    fn a_bounded_vector_decodes_as_a_plain_one() {
        let data: Vec<f32> = (0..5000).map(|i| i as f32).collect();
        let bytes = encode(&data);
        assert_eq!(decode::<Bounded>(&bytes).unwrap(), Bounded(data));
    }

    #[test]
    fn lengths_claiming_two_to_the_forty_are_refused_without_allocating_them() {
        let mut payload = (1u64 << 40).to_le_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        // A sequence is read element by element and runs out of bytes (the on-disk types
        // also bound its pre-allocation, see `bounded_vec`).
        let err = decode::<Bounded>(&payload).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
        // A string is claimed whole before it is read: the limit refuses it.
        let err = decode::<String>(&payload).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut payload = encode(&vec![1.0f32, 2.0]);
        assert_eq!(decode::<Vec<f32>>(&payload).unwrap(), vec![1.0, 2.0]);
        payload.push(0);
        assert!(matches!(
            decode::<Vec<f32>>(&payload),
            Err(Error::TrailingBytes { count: 1 })
        ));
    }

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&(1u32, 2u64)), [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&"ab"), [2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);
    }
}
