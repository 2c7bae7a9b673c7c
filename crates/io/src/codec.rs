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
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec fails only for types serde cannot map to bincode (maps of unknown
    // length); the on-disk types have none.
    bincode::serde::encode_to_vec(value, config()).expect("the on-disk types always encode")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_claiming_two_to_the_forty_are_refused_without_allocating_them() {
        let mut payload = (1u64 << 40).to_le_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        // A sequence goes through serde, which pre-allocates at most 1 MiB whatever the
        // length says; decoding then runs out of bytes.
        let err = decode::<Vec<f32>>(&payload).unwrap_err();
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
