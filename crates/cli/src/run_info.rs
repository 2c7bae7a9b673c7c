//! [`RunInfo`]: what `wengert train` records in `model.tape`'s metadata about the run (the
//! data, the seed and splits, the class names), so that `eval` can find the model's own test
//! split and `eval` and `predict` can name the classes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wengert_io::TapeModel;
use wengert_train::MAX_CLASSES;
use wengert_train::loaders::for_terminal;
use wengert_train::recipe::LOGITS;

use crate::E;
use crate::args::HeaderArg;

/// The metadata keys, each with the `wengert.` prefix of the command's own entries.
const DATA: &str = "wengert.data";
const DATA_PATH: &str = "wengert.data_path";
const LABEL_COLUMN: &str = "wengert.label_column";
const HEADER: &str = "wengert.header";
const SEED: &str = "wengert.seed";
const TEST_SPLIT: &str = "wengert.test_split";
const VALIDATION_SPLIT: &str = "wengert.validation_split";
const CLASS_NAMES: &str = "wengert.class_names";
const DATA_CRC32: &str = "wengert.data_crc32";

/// Where a run's examples came from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// The embedded UCI digits.
    Digits,
    /// A CSV file (its absolute path), read with these options.
    Csv {
        /// The file.
        path: PathBuf,
        /// The CRC-32 of its bytes when the model was trained, to tell it has changed since.
        crc32: Option<u32>,
        /// `--label-column`.
        label_column: String,
        /// `--header`.
        header: HeaderArg,
    },
    /// MNIST's IDX files in this directory (the t10k files are the test set).
    Mnist {
        /// The directory.
        dir: PathBuf,
    },
}

/// What a model records about the run that trained it; every field is `None` for a model
/// saved before format 2 (or by another tool).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunInfo {
    /// The data trained on.
    pub data: Option<DataSource>,
    /// `--seed`: the seed of the splits.
    pub seed: Option<u64>,
    /// `--test-split`.
    pub test_split: Option<f64>,
    /// `--validation-split`.
    pub validation_split: Option<f64>,
    /// The class names, for labels that were names; class `i` is `names[i]`.
    pub class_names: Option<Vec<String>>,
}

impl RunInfo {
    /// The metadata entries to save.
    pub fn to_metadata(&self) -> Vec<(String, String)> {
        let mut out: Vec<(&str, String)> = Vec::new();
        match &self.data {
            Some(DataSource::Digits) => out.push((DATA, "digits".into())),
            Some(DataSource::Csv {
                path,
                crc32,
                label_column,
                header,
            }) => {
                out.push((DATA, "csv".into()));
                out.push((DATA_PATH, path.to_string_lossy().into_owned()));
                if let Some(crc) = crc32 {
                    out.push((DATA_CRC32, format!("{crc:08x}")));
                }
                out.push((LABEL_COLUMN, label_column.clone()));
                out.push((HEADER, header_name(*header).into()));
            }
            Some(DataSource::Mnist { dir }) => {
                out.push((DATA, "mnist".into()));
                out.push((DATA_PATH, dir.to_string_lossy().into_owned()));
            }
            None => {}
        }
        if let Some(seed) = self.seed {
            out.push((SEED, seed.to_string()));
        }
        // `{}` writes the shortest text that reads back as the same f64.
        if let Some(split) = self.test_split {
            out.push((TEST_SPLIT, split.to_string()));
        }
        if let Some(split) = self.validation_split {
            out.push((VALIDATION_SPLIT, split.to_string()));
        }
        if let Some(names) = &self.class_names {
            out.push((
                CLASS_NAMES,
                serde_json::to_string(names).expect("strings encode"),
            ));
        }
        out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The run recorded in `model`, checked: numbers that parse, splits in `[0, 1)`, one
    /// class name per class, each non-empty, unique and free of control characters.
    pub fn of(model: &TapeModel<E>) -> Result<Self, String> {
        let get = |key: &str| model.metadata_value(key);
        let bad = |key: &str, why: &str| {
            format!(
                "the model's metadata {key} `{}` {why}",
                for_terminal(get(key).unwrap_or(""))
            )
        };
        let data = match get(DATA) {
            None => None,
            Some("digits") => Some(DataSource::Digits),
            Some(kind @ ("csv" | "mnist")) => {
                let path = PathBuf::from(get(DATA_PATH).ok_or_else(|| bad(DATA, "has no path"))?);
                Some(if kind == "csv" {
                    DataSource::Csv {
                        path,
                        crc32: get(DATA_CRC32)
                            .map(|c| {
                                u32::from_str_radix(c, 16)
                                    .map_err(|_| bad(DATA_CRC32, "is not a CRC-32 in hex"))
                            })
                            .transpose()?,
                        label_column: get(LABEL_COLUMN).unwrap_or("last").to_string(),
                        header: match get(HEADER).unwrap_or("auto") {
                            "auto" => HeaderArg::Auto,
                            "yes" => HeaderArg::Yes,
                            "no" => HeaderArg::No,
                            _ => return Err(bad(HEADER, "is not auto, yes or no")),
                        },
                    }
                } else {
                    DataSource::Mnist { dir: path }
                })
            }
            Some(_) => return Err(bad(DATA, "is not digits, csv or mnist")),
        };
        let seed = get(SEED)
            .map(|s| s.parse::<u64>().map_err(|_| bad(SEED, "is not a seed")))
            .transpose()?;
        let split = |key: &str| {
            get(key)
                .map(|s| match s.parse::<f64>() {
                    Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
                    _ => Err(bad(key, "is not a fraction in [0, 1)")),
                })
                .transpose()
        };
        let test_split = split(TEST_SPLIT)?;
        let validation_split = split(VALIDATION_SPLIT)?;
        let class_names = get(CLASS_NAMES)
            .map(|text| check_class_names(text, classes(model)))
            .transpose()?;
        Ok(RunInfo {
            data,
            seed,
            test_split,
            validation_split,
            class_names,
        })
    }

    /// How a class is shown: its name (escaped for the terminal), or its index.
    pub fn class_label(&self, class: usize) -> String {
        match self.class_names.as_ref().and_then(|n| n.get(class)) {
            Some(name) => for_terminal(name),
            None => class.to_string(),
        }
    }
}

/// The CRC-32 of a file's bytes, read in pieces.
pub fn file_crc32(path: &Path) -> Result<u32, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut crc = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok(crc.finalize());
        }
        crc.update(&buffer[..n]);
    }
}

/// A JSON array of `classes` names, each non-empty, unique and free of control characters.
fn check_class_names(text: &str, classes: usize) -> Result<Vec<String>, String> {
    let malformed = |why: String| format!("the model's class names are malformed: {why}");
    let names: Vec<String> =
        serde_json::from_str(text).map_err(|e| malformed(format!("not a JSON list ({e})")))?;
    if names.len() != classes || names.len() > MAX_CLASSES {
        return Err(malformed(format!(
            "{} names for {classes} classes",
            names.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for name in &names {
        check_class_name(name).map_err(&malformed)?;
        if !seen.insert(name.as_str()) {
            return Err(malformed(format!("`{}` twice", for_terminal(name))));
        }
    }
    Ok(names)
}

/// A class name a model may record: not empty, no control characters (it is printed, and
/// written into prediction files).
pub fn check_class_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty class name".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "class name `{}` holds a control character",
            for_terminal(name)
        ));
    }
    Ok(())
}

/// The number of classes the model scores: its `logits` width.
pub fn classes(model: &TapeModel<E>) -> usize {
    model
        .output_shape(LOGITS)
        .and_then(|s| s.dims().last().copied())
        .unwrap_or(0)
}

fn header_name(header: HeaderArg) -> &'static str {
    match header {
        HeaderArg::Auto => "auto",
        HeaderArg::Yes => "yes",
        HeaderArg::No => "no",
    }
}
