//! CRC-32 (IEEE 802.3, the one zlib, PNG and gzip use), table-driven: 4 lines of arithmetic do
//! not justify a dependency.

/// The reflected polynomial of CRC-32/IEEE.
const POLY: u32 = 0xEDB8_8320;

/// One entry per byte value, built at compile time. A `static`, not a `const`: a debug build
/// would copy a `const` array into every expression that indexes it.
static TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// The CRC-32 of `bytes`.
///
/// ```
/// assert_eq!(wengert_io::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
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
