//! MNIST's IDX format: a big-endian header of dimensions, then unsigned bytes.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use ndarray::Array2;
use wengert_ops::Float;

use crate::{Dataset, Error, Result};

/// The most data an IDX file may declare (256 MiB; MNIST's largest file holds 47 MB); a
/// larger header is refused before anything is allocated, whatever the file's compressed size.
pub const MAX_IDX_BYTES: usize = 256 << 20;

/// The most memory an MNIST set's features may take once each pixel is an element (1 GiB):
/// the pixels times the element's size, checked from the header before the pixels are read.
/// MNIST's training set takes 188 MB in `f32`.
pub const MAX_MNIST_FEATURE_BYTES: usize = 1 << 30;

/// The contents of an IDX file of unsigned bytes: its dimensions and its data, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The bytes, `dims.iter().product()` of them.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type code `0x08`), gzip-compressed or not (by the
/// `.gz` extension).
///
/// The header is checked before any allocation: the magic number, the type, a rank from 1 to
/// 4, a declared size within [`MAX_IDX_BYTES`] and, for an uncompressed file, equal to what the
/// file holds. A file with bytes missing or left over is refused; so is a gzip file with
/// anything after its one member (a second member, trailing bytes). Memory follows the bytes
/// actually decompressed, never the size the header claims.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    read_idx_within(path.as_ref(), MAX_IDX_BYTES, "")
}

/// [`read_idx`], refusing a declared size above `max_bytes`, for the reason `why` (said in
/// the error).
fn read_idx_within(path: &Path, max_bytes: usize, why: &str) -> Result<IdxArray> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut decoder = GzDecoder::new(BufReader::new(file));
        let array = read_idx_from(&mut decoder, path, None, max_bytes, why)?;
        // The decoder stops at the end of the first member; whatever follows is refused.
        let mut rest = decoder.into_inner();
        let mut extra = [0u8; 1];
        if rest.read(&mut extra).map_err(|e| Error::io(path, e))? != 0 {
            return Err(bad(
                path,
                "bytes after the end of the gzip stream (a second member, or trailing data)".into(),
            ));
        }
        Ok(array)
    } else {
        read_idx_from(
            &mut BufReader::new(file),
            path,
            Some(file_len),
            max_bytes,
            why,
        )
    }
}

fn bad(path: &Path, message: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: 0,
        message,
    }
}

/// Reads the header and data from `reader`, checking the declared size against `max_bytes`
/// and, when it is known, the file's length; then that nothing follows.
fn read_idx_from(
    reader: &mut impl Read,
    path: &Path,
    file_len: Option<u64>,
    max_bytes: usize,
    why: &str,
) -> Result<IdxArray> {
    let read_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad(path, "the file ends early".into())
        } else {
            Error::io(path, e)
        }
    };

    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).map_err(read_err)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(
            path,
            format!(
                "not an IDX file (magic number {:02x}{:02x}{:02x}{:02x})",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != 0x08 {
        return Err(bad(
            path,
            format!(
                "IDX type code 0x{:02x}; only unsigned bytes (0x08) are supported",
                magic[2]
            ),
        ));
    }
    let rank = magic[3] as usize;
    if !(1..=4).contains(&rank) {
        return Err(bad(path, format!("IDX rank {rank}; expected 1 to 4")));
    }
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        let mut d = [0u8; 4];
        reader.read_exact(&mut d).map_err(read_err)?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let declared = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= max_bytes)
        .ok_or_else(|| {
            bad(
                path,
                format!(
                    "the header declares dimensions {dims:?}, more than {max_bytes} bytes{why}"
                ),
            )
        })?;
    let header_len = 4 + 4 * rank as u64;
    if let Some(file_len) = file_len
        && file_len != header_len + declared as u64
    {
        return Err(bad(
            path,
            format!(
                "the header declares {declared} bytes of data ({dims:?}), but the file holds {}",
                file_len.saturating_sub(header_len)
            ),
        ));
    }
    // Grown as bytes arrive: a small compressed file claiming the limit costs only what it
    // holds.
    let mut data = Vec::new();
    reader
        .take(declared as u64)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() != declared {
        return Err(bad(path, "the file ends early".into()));
    }
    let mut extra = [0u8; 1];
    if reader.read(&mut extra).map_err(|e| Error::io(path, e))? != 0 {
        return Err(bad(
            path,
            format!("more data than the {declared} bytes the header declares"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Finds `stem` in `dir` under MNIST's usual spellings (`train-images-idx3-ubyte`,
/// `train-images.idx3-ubyte`, each optionally `.gz`).
fn find(dir: &Path, stem: &str, kind: &str) -> Result<PathBuf> {
    let names = [
        format!("{stem}-{kind}"),
        format!("{stem}.{kind}"),
        format!("{stem}-{kind}.gz"),
        format!("{stem}.{kind}.gz"),
    ];
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Parse {
            path: dir.to_path_buf(),
            line: 0,
            message: format!("no MNIST file {} (or .gz) in this directory", names[0]),
        })
}

fn load_pair<E: Float>(dir: &Path, prefix: &str) -> Result<Dataset<E>> {
    let images_path = find(dir, &format!("{prefix}-images"), "idx3-ubyte")?;
    let labels_path = find(dir, &format!("{prefix}-labels"), "idx1-ubyte")?;
    // Each pixel becomes an element of E: the limit on the features bounds the pixels read.
    let max_pixels = MAX_MNIST_FEATURE_BYTES / std::mem::size_of::<E>();
    let why = format!(
        " (in {} the pixels may take at most {MAX_MNIST_FEATURE_BYTES} bytes)",
        E::NAME
    );
    let images = read_idx_within(&images_path, max_pixels.min(MAX_IDX_BYTES), &why)?;
    if images.dims.len() != 3 {
        return Err(bad(
            &images_path,
            format!("images need 3 dimensions, found {:?}", images.dims),
        ));
    }
    // The features and a class index per image, as the data set will hold them.
    let n = images.dims[0];
    let set_bytes = (images.data.len() as u128) * std::mem::size_of::<E>() as u128
        + (n as u128) * std::mem::size_of::<usize>() as u128;
    if set_bytes > MAX_MNIST_FEATURE_BYTES as u128 {
        return Err(bad(
            &images_path,
            format!(
                "{n} images and their labels would take {set_bytes} bytes in {}, more than \
                 the {MAX_MNIST_FEATURE_BYTES} an MNIST set may",
                E::NAME
            ),
        ));
    }
    // One label byte per image: a labels file declaring more is refused before it is read.
    let labels = read_idx_within(&labels_path, n, " (one label per image)")?;
    if labels.dims.len() != 1 {
        return Err(bad(
            &labels_path,
            format!("labels need 1 dimension, found {:?}", labels.dims),
        ));
    }
    if labels.dims[0] != n {
        return Err(bad(
            &labels_path,
            format!("{} labels for {n} images", labels.dims[0]),
        ));
    }
    if let Some((i, &l)) = labels.data.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(bad(
            &labels_path,
            format!("label {l} of example {i} is out of range for 10 classes"),
        ));
    }
    let pixels = images.dims[1] * images.dims[2];
    let scale = E::from_f64(1.0 / 255.0);
    let features = Array2::from_shape_vec(
        (n, pixels),
        images
            .data
            .iter()
            .map(|&b| E::from_f64(f64::from(b)) * scale)
            .collect(),
    )
    .expect("sized by the header");
    Dataset::classification(
        features,
        labels.data.iter().map(|&l| l as usize).collect(),
        10,
    )
}

/// Loads MNIST from `dir`: `(train, test)` from `train-*` and `t10k-*` files, pixels scaled
/// to `[0, 1]`, ten classes.
pub fn load_mnist<E: Float>(dir: impl AsRef<Path>) -> Result<(Dataset<E>, Dataset<E>)> {
    let dir = existing_dir(dir.as_ref())?;
    Ok((load_pair(dir, "train")?, load_pair(dir, "t10k")?))
}

/// Loads MNIST's test set alone (the `t10k-*` files in `dir`), as [`load_mnist`] does.
pub fn load_mnist_test<E: Float>(dir: impl AsRef<Path>) -> Result<Dataset<E>> {
    load_pair(existing_dir(dir.as_ref())?, "t10k")
}

fn existing_dir(dir: &Path) -> Result<&Path> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        ));
    }
    Ok(dir)
}
