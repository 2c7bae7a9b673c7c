//! Data sets shipped inside the crate.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use wengert_ops::Float;

use crate::loaders::{CsvOptions, Header, parse_csv};
use crate::{Dataset, Error, Result};

/// The gzip-compressed CSV of the digits data set (see [`digits`]).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The UCI optical recognition of handwritten digits: 1797 images of 8×8 pixels, each pixel an
/// integer from 0 to 16, with labels 0 to 9.
///
/// From the UCI Machine Learning Repository (E. Alpaydin and C. Kaynak, 1998), licensed
/// CC BY 4.0; this is the copy scikit-learn ships (the UCI test set). See `data/README.md`.
///
/// ```
/// let digits = wengert_train::datasets::digits::<f32>()?;
/// assert_eq!((digits.len(), digits.n_features(), digits.classes()), (1797, 64, Some(10)));
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn digits<E: Float>() -> Result<Dataset<E>> {
    let mut text = String::new();
    GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("digits.csv.gz (embedded)", e))?;
    let options = CsvOptions {
        header: Header::Absent,
        ..CsvOptions::default()
    };
    parse_csv(&text, Path::new("digits.csv (embedded)"), &options)
}
