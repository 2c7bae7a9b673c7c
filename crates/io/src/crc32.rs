//! CRC-32 (IEEE 802.3, the one zlib, PNG and gzip use) of a payload.
//!
//! `crc32fast` uses the CPU's carry-less multiply where there is one: a byte-at-a-time table
//! measured 0.3 GB/s here, most of the time it took to load a large weights file.

/// The CRC-32 of `bytes`.
///
/// ```
/// assert_eq!(wengert_io::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn matches_the_standard_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn detects_every_single_byte_change() {
        let data: Vec<u8> = (0..64u8).collect();
        let good = crc32(&data);
        for i in 0..data.len() {
            for delta in 1..=255u8 {
                let mut bad = data.clone();
                bad[i] ^= delta;
                assert_ne!(crc32(&bad), good, "byte {i} xor {delta}");
            }
        }
    }
}
