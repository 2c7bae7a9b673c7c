//! A trained classifier as a self-contained saved model, and the fingerprint of a data set.
//!
//! [`Classifier`] records raw features `x` → standardisation → the network → softmax on a
//! tape and saves it as a [`TapeModel`] file: input [`INPUT`] (raw
//! features, `[batch, features]`), outputs [`LOGITS`] and [`PROBS`] (`[batch, classes]`),
//! parameters `input.mean`, `input.std` and the network's own, then its buffers (batch norm's
//! running statistics) under their names, recorded in evaluation. The file needs no model code to
//! run: any process replays it by name, as `wengert eval` and `wengert predict` do.
//!
//! [`Fingerprint`] names a data set by its size and a CRC-32 of its contents, so that a run
//! resumed on other data can be refused.
//!
//! ```
//! use ndarray::array;
//! use wengert_io::{LoadOptions, ReplayOptions, TapeModel};
//! use wengert_tape::Tape;
//! use wengert_train::recipe::{self, Classifier};
//! use wengert_train::{Dataset, Mlp, Standardizer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = Dataset::classification(array![[1.0f32, 20.0], [3.0, 40.0]], vec![0, 1], 2)?;
//! let scaler = Standardizer::fit(data.features());
//! let model = Mlp::<f32>::builder(&[2, 4, 2]).seed(0).build()?;
//! # let path = std::env::temp_dir().join(format!("recipe-doc-{}.tape", std::process::id()));
//! Classifier::new(&model, &scaler)
//!     .parameter_names(model.parameter_names())
//!     .metadata("trained_on", recipe::Fingerprint::of(&data).to_string())
//!     .save(&path)?;
//!
//! // Elsewhere: raw features in, probabilities out.
//! let saved = TapeModel::<f32>::load(&path, &LoadOptions::default())?;
//! let mut tape = Tape::new();
//! let replay = saved.replay(&mut tape, [(recipe::INPUT, array![[2.0f32, 30.0]])], &ReplayOptions::default())?;
//! let probs = tape.data(replay.node(recipe::PROBS)?)?;
//! assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::Path;

use ndarray::Array2;
use wengert_io::{Element, TapeModel, TapeSaver};
use wengert_tape::Tape;

use crate::module::record_parameters;
use crate::{BufferUpdates, Dataset, Module, ParameterIds, Result, Standardizer};

/// The input's name: raw features, `[batch, features]`.
pub const INPUT: &str = "x";
/// The scores before the softmax, `[batch, classes]`.
pub const LOGITS: &str = "logits";
/// The class probabilities, `[batch, classes]`, each row summing to 1.
pub const PROBS: &str = "probs";
/// The names of the standardisation's parameters, recorded before the network's.
pub const SCALER_PARAMETERS: [&str; 2] = ["input.mean", "input.std"];

/// A classifier to save: `(x - mean) / std → model → softmax`, with named input, parameters,
/// outputs and metadata. Built with [`Classifier::new`], finished by [`Classifier::save`],
/// [`Classifier::to_bytes`] or [`Classifier::model`].
#[derive(Debug)]
pub struct Classifier<'m, E: Element, M: Module<E> + ?Sized> {
    model: &'m M,
    scaler: &'m Standardizer<E>,
    names: Option<Vec<String>>,
    metadata: Vec<(String, String)>,
}

impl<'m, E: Element, M: Module<E> + ?Sized> Classifier<'m, E, M> {
    /// The recipe for `model` behind `scaler` (fitted on the features it was trained on).
    pub fn new(model: &'m M, scaler: &'m Standardizer<E>) -> Self {
        Classifier {
            model,
            scaler,
            names: None,
            metadata: Vec::new(),
        }
    }

    /// Names the model's parameters, in [`Module::parameters`] order (an [`Mlp`](crate::Mlp)
    /// gives them with `parameter_names`); unnamed, they are `parameter.<i>`. A list of the
    /// wrong length is refused when the model is recorded.
    pub fn parameter_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Records a metadata entry (see [`TapeSaver::metadata`]).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Saves the model to `path` atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.with_saver(|saver| Ok(saver.save(path)?))
    }

    /// The model file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.with_saver(|saver| Ok(saver.to_bytes()?))
    }

    /// The model as it would be saved, to replay without a file.
    pub fn model(&self) -> Result<TapeModel<E>> {
        self.with_saver(|saver| Ok(saver.model()?))
    }

    /// Records the recipe on a tape of its own and hands `finish` the saver naming it.
    fn with_saver<T>(&self, finish: impl FnOnce(TapeSaver<'_, E>) -> Result<T>) -> Result<T> {
        let mut tape = Tape::<E>::new();
        let features = self.scaler.mean.len();
        // One example: the replay takes any batch.
        let x = tape.input(Array2::<E>::zeros((1, features)))?;
        let mean = tape.parameter(&self.scaler.mean)?;
        let std = tape.parameter(&self.scaler.std)?;
        // The same arithmetic as `Standardizer::apply`, so that the saved model sees the very
        // values the network was trained on.
        let centred = tape.sub(x, mean)?;
        let scaled = tape.div(centred, std)?;
        // The buffers (running statistics) are recorded as parameters: their values travel
        // with the file, and an evaluation pass gives them no gradient.
        let network = record_parameters(self.model, &mut tape)?;
        let buffers = self
            .model
            .buffers()
            .into_iter()
            .map(|b| tape.parameter(b))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut updates = BufferUpdates::new();
        let mut params = ParameterIds::new(&network).with_buffers(&buffers, &mut updates);
        let logits = self.model.forward(&mut tape, &mut params, scaled)?;
        params.finish()?;
        let probs = tape.softmax(logits)?;
        let names = match &self.names {
            Some(names) if names.len() != network.len() => {
                return Err(crate::Error::Model(format!(
                    "{} parameter names for a model of {} parameters",
                    names.len(),
                    network.len()
                )));
            }
            Some(names) => names.clone(),
            None => (0..network.len())
                .map(|i| format!("parameter.{i}"))
                .collect(),
        };
        let mut saver = TapeSaver::new(&tape)
            .input(INPUT, x)
            .parameter(SCALER_PARAMETERS[0], mean)
            .parameter(SCALER_PARAMETERS[1], std);
        for (name, id) in names.into_iter().zip(network) {
            saver = saver.parameter(name, id);
        }
        for (name, id) in self.model.buffer_names().into_iter().zip(buffers) {
            saver = saver.parameter(name, id);
        }
        for (key, value) in &self.metadata {
            saver = saver.metadata(key.clone(), value.clone());
        }
        finish(saver.output(LOGITS, logits).output(PROBS, probs))
    }
}

/// A data set's size and a CRC-32 of its features (little-endian, row by row) and labels
/// (each a little-endian `u64`) or targets: equal fingerprints mean, all but surely, the same
/// examples in the same order. Shown as `150 examples of 4 features (CRC-32 1a2b3c4d)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The number of examples.
    pub examples: usize,
    /// The number of features.
    pub features: usize,
    /// The CRC-32 (IEEE) of the contents.
    pub crc32: u32,
}

impl Fingerprint {
    /// The fingerprint of `data`, read row by row (nothing large is copied).
    pub fn of<E: Element>(data: &Dataset<E>) -> Self {
        let mut crc = flate2::Crc::new();
        let mut rows = |rows: ndarray::ArrayView2<'_, E>| {
            for row in rows.rows() {
                match row.as_slice() {
                    Some(row) => crc.update(&E::to_le_bytes(row)),
                    None => crc.update(&E::to_le_bytes(&row.to_vec())),
                }
            }
        };
        rows(data.features());
        match data.targets() {
            crate::Targets::Classes { labels, .. } => {
                for &label in labels {
                    crc.update(&(label as u64).to_le_bytes());
                }
            }
            crate::Targets::Values(values) => rows(values.view()),
        }
        Fingerprint {
            examples: data.len(),
            features: data.n_features(),
            crc32: crc.sum(),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} examples of {} features (CRC-32 {:08x})",
            self.examples, self.features, self.crc32
        )
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;
    use wengert_io::{LoadOptions, ReplayOptions};

    use super::*;
    use crate::Mlp;

    fn data() -> Dataset<f32> {
        Dataset::classification(
            array![[1.0f32, 2.0], [3.0, 5.0], [0.0, -1.0]],
            vec![0, 1, 1],
            2,
        )
        .unwrap()
    }

    #[test]
    fn the_saved_classifier_scores_raw_features_as_the_trained_network_does_scaled_ones() {
        let data = data();
        let scaler = Standardizer::fit(data.features());
        let model = Mlp::<f32>::builder(&[2, 3, 2]).seed(1).build().unwrap();
        let bytes = Classifier::new(&model, &scaler)
            .parameter_names(model.parameter_names())
            .metadata("k", "v")
            .to_bytes()
            .unwrap();
        let saved = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap();
        assert_eq!(saved.metadata_value("k"), Some("v"));
        let names: Vec<&str> = saved.parameter_names().collect();
        assert_eq!(
            names,
            [
                "input.mean",
                "input.std",
                "layers.0.weight",
                "layers.0.bias",
                "layers.1.weight",
                "layers.1.bias"
            ]
        );

        let mut replayed = Tape::new();
        let raw = data.features().to_owned();
        let replay = saved
            .replay(&mut replayed, [(INPUT, raw)], &ReplayOptions::default())
            .unwrap();
        let logits = replayed.value(replay.node(LOGITS).unwrap()).unwrap();

        let scaled = data.scaled(&scaler).unwrap();
        let mut direct = Tape::new();
        let x = direct.input(scaled.features().to_owned()).unwrap();
        let y = model.apply(&mut direct, x).unwrap();
        assert_eq!(logits, direct.value(y).unwrap());
        let probs = replayed.value(replay.node(PROBS).unwrap()).unwrap();
        for row in probs.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_model_with_batch_norm_saves_its_running_statistics_and_replays_in_evaluation() {
        use crate::{Activation, BatchNorm1d, Init, Linear, Rng, Sequential};
        let data = data();
        let scaler = Standardizer::fit(data.features());
        let mut rng = Rng::seed_from_u64(2);
        let mut norm = BatchNorm1d::new(3).unwrap();
        for mut b in norm.buffers_mut() {
            b.map_inplace(|v| *v += 0.5);
        }
        let model = Sequential::<f32>::new()
            .push(Linear::new(2, 3, Init::HeNormal, &mut rng).unwrap())
            .push(norm)
            .push(Activation::Tanh)
            .push(Linear::new(3, 2, Init::GlorotUniform, &mut rng).unwrap());
        let saved = Classifier::new(&model, &scaler)
            .parameter_names(model.parameter_names())
            .model()
            .unwrap();
        let names: Vec<&str> = saved.parameter_names().skip(2).collect();
        assert_eq!(
            names,
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "3.weight",
                "3.bias",
                "1.running_mean",
                "1.running_var"
            ]
        );
        let mut replayed = Tape::new();
        let raw = data.features().to_owned();
        let replay = saved
            .replay(&mut replayed, [(INPUT, raw)], &ReplayOptions::default())
            .unwrap();
        let logits = replayed.value_owned(replay.node(LOGITS).unwrap()).unwrap();
        let scaled = data.scaled(&scaler).unwrap();
        assert_eq!(logits, model.predict(scaled.features()).unwrap());
    }

    #[test]
    fn parameters_are_named_by_position_unless_named_and_a_wrong_count_is_refused() {
        let data = data();
        let scaler = Standardizer::fit(data.features());
        let model = Mlp::<f32>::builder(&[2, 2]).build().unwrap();
        let saved = Classifier::new(&model, &scaler).model().unwrap();
        let names: Vec<&str> = saved.parameter_names().collect();
        assert_eq!(
            names,
            ["input.mean", "input.std", "parameter.0", "parameter.1"]
        );
        let err = Classifier::new(&model, &scaler)
            .parameter_names(["only.one"])
            .model()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("1 parameter names for a model of 2"),
            "{err}"
        );
    }

    #[test]
    fn a_fingerprint_follows_every_value_and_the_order_of_the_examples() {
        let data = data();
        let print = Fingerprint::of(&data);
        assert_eq!(print, Fingerprint::of(&data.clone()));
        assert!(
            print
                .to_string()
                .starts_with("3 examples of 2 features (CRC-32 ")
        );
        let reordered = data.subset(&[1, 0, 2]).unwrap();
        assert_ne!(print.crc32, Fingerprint::of(&reordered).crc32);
        let relabelled =
            Dataset::classification(data.features().to_owned(), vec![0, 1, 0], 2).unwrap();
        assert_ne!(print.crc32, Fingerprint::of(&relabelled).crc32);
        let regression =
            Dataset::regression(data.features().to_owned(), array![[1.0f32], [2.0], [3.0]])
                .unwrap();
        let changed =
            Dataset::regression(data.features().to_owned(), array![[1.0f32], [2.0], [3.5]])
                .unwrap();
        assert_ne!(Fingerprint::of(&regression), Fingerprint::of(&changed));
    }

    #[test]
    fn a_classification_fingerprint_is_the_one_wengert_train_has_always_written() {
        // Checkpoints carry this text: a change would refuse to resume every saved run.
        let data = data();
        let mut crc = flate2::Crc::new();
        for x in data.features() {
            crc.update(&x.to_le_bytes());
        }
        for label in [0u64, 1, 1] {
            crc.update(&label.to_le_bytes());
        }
        assert_eq!(Fingerprint::of(&data).crc32, crc.sum());
    }
}
