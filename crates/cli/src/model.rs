//! The saved model: `model.tape`, recorded from a trained MLP with the input standardisation
//! inside it, and run again on new examples by `eval` and `predict`.

use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis};
use wengert_io::{LoadOptions, TapeModel, TapeSaver};
use wengert_tape::{NodeId, Tape};
use wengert_train::{Mlp, Module, Standardizer};

use crate::run_info::RunInfo;
use crate::train::E;

/// The input's name in a saved model.
pub const INPUT: &str = "x";
/// The outputs' names: the scores before the softmax, and the class probabilities.
pub const LOGITS: &str = "logits";
/// The class probabilities.
pub const PROBS: &str = "probs";

/// Examples per replay: bounds the memory a large data set takes.
const CHUNK: usize = 1024;

/// Records `(x - mean) / std → model → softmax` on a tape and saves it to `path`
/// atomically: input `x` (raw features), parameters `input.mean`, `input.std` and the
/// model's (`layers.<i>.weight`, `layers.<i>.bias`), outputs `logits` and `probs`, and
/// `run` as metadata.
pub fn save(
    path: &Path,
    model: &Mlp<E>,
    scaler: &Standardizer<E>,
    run: &RunInfo,
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot record the model: {e}");
    let mut tape = Tape::<E>::new();
    let features = scaler.mean.len();
    let x = tape
        .input(Array2::<E>::zeros((1, features)))
        .map_err(|e| fail(&e))?;
    let recorded = (|| -> wengert_train::Result<(NodeId, NodeId)> {
        let mean = tape.parameter(&scaler.mean)?;
        let std = tape.parameter(&scaler.std)?;
        // The same arithmetic as Standardizer::apply, so the saved model sees the very
        // values the network was trained on.
        let centred = tape.sub(x, mean)?;
        let scaled = tape.div(centred, std)?;
        // Records the model's parameters after the scaler's, then its forward pass.
        let logits = model.apply(&mut tape, scaled)?;
        let probs = tape.softmax(logits)?;
        Ok((logits, probs))
    })();
    let (logits, probs) = recorded.map_err(|e| fail(&e))?;
    let parameters: Vec<NodeId> = tape.parameters().collect();
    let names = ["input.mean".to_string(), "input.std".to_string()]
        .into_iter()
        .chain(model.parameter_names());
    let mut saver = TapeSaver::new(&tape).input(INPUT, x);
    for (name, id) in names.zip(parameters) {
        saver = saver.parameter(name, id);
    }
    for (key, value) in run.to_metadata() {
        saver = saver.metadata(key, value);
    }
    saver
        .output(LOGITS, logits)
        .output(PROBS, probs)
        .save(path)
        .map_err(|e| io_message(path, &e))
}

/// Loads a saved model and checks that it is one `train` writes: an input `x` of shape
/// `[batch, features]` and outputs `logits` and `probs`.
pub fn load(path: &Path) -> Result<TapeModel<E>, String> {
    let model =
        TapeModel::<E>::load(path, &LoadOptions::default()).map_err(|e| io_message(path, &e))?;
    let shape = model.input_shape(INPUT).ok_or_else(|| {
        format!(
            "{}: the model has no input named `{INPUT}`; it was not written by `wengert train`",
            path.display()
        )
    })?;
    if shape.rank() != 2 {
        return Err(format!(
            "{}: the model's input `{INPUT}` has shape {:?}, not [batch, features]",
            path.display(),
            shape.dims()
        ));
    }
    for output in [LOGITS, PROBS] {
        if !model.output_names().any(|n| n == output) {
            return Err(format!(
                "{}: the model has no output named `{output}`; it was not written by `wengert train`",
                path.display()
            ));
        }
    }
    // Read now, so that a malformed record fails here with the file named.
    RunInfo::of(&model).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(model)
}

/// The number of classes the model scores (its `logits` width).
pub fn classes(model: &TapeModel<E>) -> usize {
    model
        .output_shape(LOGITS)
        .and_then(|s| s.dims().last().copied())
        .unwrap_or(0)
}

/// The number of features the model takes.
pub fn features(model: &TapeModel<E>) -> usize {
    model.input_shape(INPUT).map_or(0, |s| s.dims()[1])
}

/// A wengert-io error as one line naming the file (an I/O error names it already).
pub fn io_message(path: &Path, err: &wengert_io::Error) -> String {
    match err {
        wengert_io::Error::Io { .. } => err.to_string(),
        _ => format!("{}: {err}", path.display()),
    }
}

/// What a model makes of a chunk of examples.
pub struct Scores {
    /// `[rows, classes]`.
    pub logits: Array2<E>,
    /// `[rows, classes]`, each row summing to 1.
    pub probs: Array2<E>,
}

/// Runs the model on `x` (`[rows, features]`, raw), `CHUNK` rows at a time, calling `each`
/// with every chunk's rows and scores.
pub fn run(
    path: &Path,
    model: &TapeModel<E>,
    x: ArrayView2<'_, E>,
    mut each: impl FnMut(std::ops::Range<usize>, &Scores) -> Result<(), String>,
) -> Result<(), String> {
    let expected = features(model);
    if x.ncols() != expected {
        return Err(format!(
            "the data have {} feature columns, but the model {} takes {expected}",
            x.ncols(),
            path.display()
        ));
    }
    let mut tape = Tape::<E>::new();
    for (k, chunk) in x.axis_chunks_iter(Axis(0), CHUNK).enumerate() {
        tape.clear();
        let rows = k * CHUNK..k * CHUNK + chunk.nrows();
        let replay = model
            .replay_outputs(
                &mut tape,
                [(INPUT, chunk.as_standard_layout().into_owned())],
                &[LOGITS, PROBS],
            )
            .map_err(|e| io_message(path, &e))?;
        let matrix = |name: &str| -> Result<Array2<E>, String> {
            let id = replay.node(name).map_err(|e| io_message(path, &e))?;
            tape.value_owned(id)
                .map_err(|e| e.to_string())?
                .into_dimensionality()
                .map_err(|_| {
                    format!(
                        "{}: the model's output `{name}` is not [batch, classes]",
                        path.display()
                    )
                })
        };
        let scores = Scores {
            logits: matrix(LOGITS)?,
            probs: matrix(PROBS)?,
        };
        each(rows, &scores)?;
    }
    Ok(())
}
