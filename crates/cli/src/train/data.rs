//! The run's data: read (the embedded digits, a CSV file or MNIST), split into training,
//! validation and test sets, standardised on the training set, and fingerprinted.

use std::path::PathBuf;

use wengert_train::loaders::{Labels, load_mnist};
use wengert_train::recipe::Fingerprint;
use wengert_train::{Dataset, Standardizer, datasets};

use super::architecture::Architecture;
use super::checks::{check_fits, widest_input};
use super::images::image_shape;
use crate::E;
use crate::args::{ModelArg, TrainArgs};
use crate::data::load_labelled_csv;
use crate::run_info::{DataSource, RunInfo, file_crc32};

/// The examples of a run, ready to train on.
pub struct Prepared {
    /// What the data are, for a person (`the UCI digits (embedded)`, a path).
    pub source: String,
    /// The network: the data decide its inputs, its classes and, for a CNN, its images.
    pub architecture: Architecture,
    /// The standardisation fitted on the training set (saved inside the model).
    pub scaler: Standardizer<E>,
    /// The standardised training, validation and test sets.
    pub train: Dataset<E>,
    /// See `train`.
    pub validation: Dataset<E>,
    /// See `train`.
    pub test: Dataset<E>,
    /// The training set's fingerprint, which a resumed run must match.
    pub fingerprint: String,
}

/// Reads the data, refuses a network that cannot fit before the data are copied into splits,
/// then splits and standardises them.
pub fn prepare(args: &TrainArgs) -> Result<Prepared, String> {
    let (source, rest, test) = load(args)?;
    // The network's widths are known once the data are: refuse one that cannot fit before
    // the data are copied into splits and scaled.
    let image = match args.model {
        ModelArg::Mlp => None,
        ModelArg::Cnn => Some(image_shape(args, rest.n_features())?),
    };
    let architecture = Architecture::new(args, rest.n_features(), rest.n_outputs(), image)?;
    check_fits(&architecture, args, &source)?;
    let (train, validation) = rest
        .split(args.validation_split, args.seed)
        .map_err(|e| e.to_string())?;
    if train.is_empty() {
        return Err(format!(
            "no training examples left after holding out the test and validation sets ({} examples in all)",
            rest.len() + test.len()
        ));
    }
    let scaler = Standardizer::fit(train.features());
    let scale = |d: &Dataset<E>| d.scaled(&scaler).map_err(|e| e.to_string());
    let (train, validation, test) = (scale(&train)?, scale(&validation)?, scale(&test)?);
    let fingerprint = Fingerprint::of(&train).to_string();
    Ok(Prepared {
        source,
        architecture,
        scaler,
        train,
        validation,
        test,
        fingerprint,
    })
}

/// The data's description, the examples to train and validate on, and the test set.
fn load(args: &TrainArgs) -> Result<(String, Dataset<E>, Dataset<E>), String> {
    if let Some(dir) = &args.mnist {
        let (train, test) = load_mnist::<E>(dir).map_err(|e| e.to_string())?;
        return Ok((format!("MNIST from {}", dir.display()), train, test));
    }
    let (source, all) = match &args.data {
        Some(path) => {
            let widest = widest_input(args);
            let data = load_labelled_csv(path, &args.label_column, args.header, Labels::Detect, widest)
                .map_err(|e| match widest {
                    Some(w) if e.contains(&format!("more than the {w} allowed")) => match args.model {
                        ModelArg::Mlp => format!(
                            "{e}: with --hidden {:?}, a wider first layer would not fit in the memory available",
                            args.hidden_widths()
                        ),
                        ModelArg::Cnn => format!(
                            "{e}: with --channels {:?}, a larger image would not fit in the memory available",
                            args.channel_widths()
                        ),
                    },
                    _ => e,
                })?;
            (path.display().to_string(), data)
        }
        None => (
            "the UCI digits (embedded)".to_string(),
            datasets::digits::<E>().map_err(|e| e.to_string())?,
        ),
    };
    if all.classes() == Some(1) {
        return Err(format!(
            "{source}: every example has label 0; nothing to classify"
        ));
    }
    let (rest, test) = all
        .split(args.test_split, args.seed)
        .map_err(|e| e.to_string())?;
    Ok((source, rest, test))
}

/// What `model.tape` records about this run (see [`RunInfo`]).
pub fn run_info(args: &TrainArgs, train: &Dataset<E>) -> RunInfo {
    let absolute = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let data = match (&args.data, &args.mnist) {
        (Some(path), _) => DataSource::Csv {
            path: absolute(path),
            crc32: file_crc32(path).ok(),
            label_column: args.label_column.clone(),
            header: args.header,
        },
        (None, Some(dir)) => DataSource::Mnist { dir: absolute(dir) },
        (None, None) => DataSource::Digits,
    };
    RunInfo {
        data: Some(data),
        seed: Some(args.seed),
        // MNIST's test set is its own t10k files.
        test_split: args.mnist.is_none().then_some(args.test_split),
        validation_split: Some(args.validation_split),
        class_names: train.class_names().map(<[String]>::to_vec),
    }
}
