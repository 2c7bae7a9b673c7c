//! The image each example is, for a CNN: the digits are 8x8, MNIST's size is in its IDX
//! header, and a CSV file of N·N pixel columns holds NxN images.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::bufread::GzDecoder;

use crate::args::TrainArgs;

/// The embedded digits' images.
const DIGITS: [usize; 2] = [8, 8];

/// The `[height, width]` of the examples of `args`' data, which have `features` features each.
pub fn image_shape(args: &TrainArgs, features: usize) -> Result<[usize; 2], String> {
    if let Some(dir) = &args.mnist {
        return mnist_image_shape(dir, features);
    }
    if args.data.is_none() {
        return Ok(DIGITS);
    }
    let side = features.isqrt();
    if side * side != features {
        return Err(format!(
            "--model cnn reads a CSV file's feature columns as a square image of N·N pixels, \
             row by row; {features} columns are not a square"
        ));
    }
    Ok([side, side])
}

/// The images' `[rows, columns]` from the header of MNIST's training images in `dir`, which
/// the loader has read and checked already (`features` pixels per image).
fn mnist_image_shape(dir: &Path, features: usize) -> Result<[usize; 2], String> {
    // The spellings in the loader's order, so that this is the file it read.
    let path = [
        "train-images-idx3-ubyte",
        "train-images.idx3-ubyte",
        "train-images-idx3-ubyte.gz",
        "train-images.idx3-ubyte.gz",
    ]
    .iter()
    .map(|name| dir.join(name))
    .find(|p| p.is_file())
    .ok_or_else(|| format!("{}: no MNIST training images", dir.display()))?;
    let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    // The magic number, then the count, rows and columns as big-endian u32.
    let mut header = [0u8; 16];
    reader
        .read_exact(&mut header)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let dim = |k: usize| {
        u32::from_be_bytes(header[4 * k..4 * k + 4].try_into().expect("four bytes")) as usize
    };
    let [rows, columns] = [dim(2), dim(3)];
    if header[..4] != [0, 0, 0x08, 3] || rows.checked_mul(columns) != Some(features) {
        return Err(format!(
            "{}: the header does not describe the {features}-pixel images just read \
             (did the file change?)",
            path.display()
        ));
    }
    Ok([rows, columns])
}
