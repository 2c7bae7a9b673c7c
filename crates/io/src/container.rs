//! The container every wengert file is wrapped in: a fixed 28-byte header (magic, kind,
//! version, payload length, CRC-32 of the payload), then the payload. `docs/FORMAT.md` gives
//! the layout byte by byte.

use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::{Error, Result, crc32};

/// The first eight bytes of every wengert file. Like PNG's, they catch the usual transfer
/// damage: the high byte a 7-bit channel strips, and the CR-LF and LF a text-mode copy mangles.
pub const MAGIC: [u8; 8] = [0x89, b'W', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];

/// The length of the header before the payload.
pub const HEADER_LEN: usize = 28;

/// What a file holds; its four-byte tag is the header's second field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A recorded computation with its parameters ([`TapeModel`](crate::TapeModel)).
    Tape,
    /// A named map of arrays ([`save_weights`](crate::save_weights)).
    Weights,
    /// Arrays, scalars and opaque sections ([`Checkpoint`](crate::Checkpoint)).
    Checkpoint,
}

impl FileKind {
    /// The four bytes that follow the magic.
    pub const fn tag(self) -> [u8; 4] {
        match self {
            FileKind::Tape => *b"TAPE",
            FileKind::Weights => *b"WGHT",
            FileKind::Checkpoint => *b"CKPT",
        }
    }

    /// The newest format version of this kind, the one written.
    pub const fn newest_version(self) -> u32 {
        match self {
            FileKind::Tape => 2,
            FileKind::Weights | FileKind::Checkpoint => 1,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Tape => "tape",
            FileKind::Weights => "weights",
            FileKind::Checkpoint => "checkpoint",
        })
    }
}

/// Limits a loader holds the file to.
///
/// Memory while loading follows the file's size, never its length fields: about twice the
/// file for weights and checkpoints (the bytes read, then the arrays). A tape's node list
/// expands more in memory than on disk; the worst case, a file of nothing but empty input
/// nodes (12 bytes each), peaks near 18 times its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Files larger than this are refused before a byte of them is read. The default is 1 GiB.
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_file_bytes: 1 << 30,
        }
    }
}

impl LoadOptions {
    /// The default options with another size limit.
    pub fn with_max_file_bytes(max_file_bytes: u64) -> Self {
        LoadOptions { max_file_bytes }
    }
}

/// Wraps `payload` in a header for a file of `kind` at `version`.
///
/// ```
/// use wengert_io::container::{self, FileKind};
/// let file = container::wrap(FileKind::Weights, 1, b"payload");
/// assert_eq!(container::unwrap(&file, FileKind::Weights).unwrap(), (1, &b"payload"[..]));
/// ```
pub fn wrap(kind: FileKind, version: u32, payload: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(HEADER_LEN + payload.len());
    file.extend_from_slice(&[0; HEADER_LEN]);
    file.extend_from_slice(payload);
    seal(kind, version, file)
}

/// Fills in the header of `file`, whose first [`HEADER_LEN`] bytes are reserved for it and
/// whose rest is the payload (so that a payload encoded in place is not copied again).
pub(crate) fn seal(kind: FileKind, version: u32, mut file: Vec<u8>) -> Vec<u8> {
    let (header, payload) = file.split_at_mut(HEADER_LEN);
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&kind.tag());
    header[12..16].copy_from_slice(&version.to_le_bytes());
    header[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[24..28].copy_from_slice(&crc32(payload).to_le_bytes());
    file
}

/// Checks a whole file's header (length, magic, kind, version, payload length, CRC, in that
/// order) and returns its version and payload.
pub fn unwrap(bytes: &[u8], kind: FileKind) -> Result<(u32, &[u8])> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::TooShort {
            len: bytes.len(),
            header: HEADER_LEN,
        });
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    let field = |range: std::ops::Range<usize>| &header[range];
    let magic: [u8; 8] = field(0..8).try_into().expect("8 bytes");
    if magic != MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let tag: [u8; 4] = field(8..12).try_into().expect("4 bytes");
    if tag != kind.tag() {
        return Err(Error::WrongKind {
            expected: kind,
            found: tag,
        });
    }
    let version = u32::from_le_bytes(field(12..16).try_into().expect("4 bytes"));
    if version == 0 || version > kind.newest_version() {
        return Err(Error::UnsupportedVersion {
            kind,
            version,
            newest: kind.newest_version(),
        });
    }
    let declared = u64::from_le_bytes(field(16..24).try_into().expect("8 bytes"));
    let actual = payload.len() as u64;
    if declared != actual {
        return Err(Error::LengthMismatch { declared, actual });
    }
    let stored = u32::from_le_bytes(field(24..28).try_into().expect("4 bytes"));
    let computed = crc32(payload);
    if stored != computed {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    Ok((version, payload))
}

/// Reads a whole file, refusing it before reading if it is larger than `options` allow.
pub fn read_file(path: &Path, options: &LoadOptions) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::io("inspect", path, e))?
        .len();
    check_size(size, options)?;
    // The file may grow between the check and the read: read at most one byte past the limit.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(options.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    check_size(bytes.len() as u64, options)?;
    Ok(bytes)
}

pub(crate) fn check_size(size: u64, options: &LoadOptions) -> Result<()> {
    if size > options.max_file_bytes {
        return Err(Error::FileTooLarge {
            size,
            max: options.max_file_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_sit_where_the_format_says() {
        let file = wrap(FileKind::Tape, 1, &[7, 8, 9]);
        assert_eq!(file.len(), HEADER_LEN + 3);
        assert_eq!(&file[0..8], &MAGIC);
        assert_eq!(&file[8..12], b"TAPE");
        assert_eq!(&file[12..16], &[1, 0, 0, 0]);
        assert_eq!(&file[16..24], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&file[24..28], &crc32(&[7, 8, 9]).to_le_bytes());
    }

    #[test]
    fn each_header_fault_has_its_own_error() {
        let good = wrap(FileKind::Tape, 1, b"abc");
        let with = |i: usize, v: u8| {
            let mut bad = good.clone();
            bad[i] = v;
            unwrap(&bad, FileKind::Tape).unwrap_err()
        };
        assert!(matches!(with(0, 0), Error::BadMagic { .. }));
        assert!(matches!(with(8, b'X'), Error::WrongKind { .. }));
        assert!(matches!(
            with(12, 3),
            Error::UnsupportedVersion { version: 3, .. }
        ));
        assert!(matches!(with(12, 0), Error::UnsupportedVersion { .. }));
        assert!(matches!(with(16, 4), Error::LengthMismatch { .. }));
        assert!(matches!(with(24, 0), Error::ChecksumMismatch { .. }));
        assert!(matches!(
            unwrap(&good[..5], FileKind::Tape),
            Err(Error::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            unwrap(&good, FileKind::Weights),
            Err(Error::WrongKind { .. })
        ));
    }
}
