//! The settings a run keeps: the options that decide it, saved in every checkpoint, and those
//! of a resumed run (its saved settings, with only `--epochs` and the display options new).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::resume::Resume;
use crate::args::{ActivationArg, HeaderArg, ModelArg, OptimizerArg, TrainArgs};

/// The options that decide a run, saved in every checkpoint: a resumed run takes them from
/// there. Field names are the options' clap ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    data: Option<PathBuf>,
    mnist: Option<PathBuf>,
    /// `data` and `mnist` made absolute, to find them from another directory.
    data_file: Option<PathBuf>,
    mnist_dir: Option<PathBuf>,
    label_column: String,
    header: HeaderArg,
    /// Absent from the checkpoints of runs saved before `--model`: an MLP.
    #[serde(default = "mlp")]
    model: ModelArg,
    /// The widths in effect: `--hidden` or the model's default.
    hidden: Vec<usize>,
    /// The convolutions' widths in effect (none for an MLP).
    #[serde(default)]
    channels: Vec<usize>,
    #[serde(default)]
    dropout: f64,
    activation: ActivationArg,
    optimizer: OptimizerArg,
    lr: Option<f64>,
    weight_decay: Option<f64>,
    batch_size: usize,
    /// Absent from the checkpoints of runs that did not accumulate.
    #[serde(default = "one")]
    accumulate: usize,
    seed: u64,
    validation_split: f64,
    test_split: f64,
    patience: usize,
}

impl RunSettings {
    /// The settings of `args`.
    pub fn of(args: &TrainArgs) -> Self {
        let absolute = |p: &Option<PathBuf>| p.as_ref().and_then(|p| std::fs::canonicalize(p).ok());
        RunSettings {
            data: args.data.clone(),
            mnist: args.mnist.clone(),
            data_file: absolute(&args.data),
            mnist_dir: absolute(&args.mnist),
            label_column: args.label_column.clone(),
            header: args.header,
            model: args.model,
            hidden: args.hidden_widths(),
            channels: args.channel_widths(),
            dropout: args.dropout,
            activation: args.activation,
            optimizer: args.optimizer,
            lr: args.lr,
            weight_decay: args.weight_decay,
            batch_size: args.batch_size,
            accumulate: args.accumulate,
            seed: args.seed,
            validation_split: args.validation_split,
            test_split: args.test_split,
            patience: args.patience,
        }
    }

    /// `args` with these settings. A data path is kept as it was given if it still names
    /// the same file from here, else its absolute form is used.
    fn apply(self, args: &TrainArgs) -> TrainArgs {
        let here = |given: Option<PathBuf>, absolute: Option<PathBuf>| match (&given, &absolute) {
            (Some(g), Some(a)) if std::fs::canonicalize(g).ok().as_ref() != Some(a) => absolute,
            _ => given,
        };
        TrainArgs {
            data: here(self.data, self.data_file),
            mnist: here(self.mnist, self.mnist_dir),
            label_column: self.label_column,
            header: self.header,
            model: self.model,
            hidden: Some(self.hidden),
            channels: (self.model == ModelArg::Cnn).then_some(self.channels),
            dropout: self.dropout,
            activation: self.activation,
            optimizer: self.optimizer,
            lr: self.lr,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            accumulate: self.accumulate,
            seed: self.seed,
            validation_split: self.validation_split,
            test_split: self.test_split,
            patience: self.patience,
            ..args.clone()
        }
    }
}

/// The model of a run saved before `--model` existed.
fn mlp() -> ModelArg {
    ModelArg::Mlp
}

/// One micro-batch per step: the setting of a run saved before `--accumulate` existed.
fn one() -> usize {
    1
}

/// The resumed run's options: its saved settings, with `args`' epochs, output and display
/// options. An option given explicitly with a value other than the saved one is an error.
pub fn resumed_args(
    args: &TrainArgs,
    explicit: &[String],
    r: &Resume,
) -> Result<TrainArgs, String> {
    let to_map = |s: &RunSettings| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (given, saved) = (to_map(&RunSettings::of(args)), to_map(&r.settings));
    // Paths are compared as the files they name (`./a.csv` is `a.csv`).
    let same = |id: &str, g: &serde_json::Value, s: &serde_json::Value| {
        let absolute = match id {
            "data" => "data_file",
            "mnist" => "mnist_dir",
            _ => return g == s,
        };
        g == s
            || (given.get(absolute).is_some_and(|a| !a.is_null())
                && given.get(absolute) == saved.get(absolute))
    };
    for id in explicit {
        if let (Some(g), Some(s)) = (given.get(id), saved.get(id))
            && !same(id, g, s)
        {
            return Err(format!(
                "--{} {g} differs from the resumed run's {s}: a resumed run keeps its settings \
                 (only --epochs may change)",
                id.replace('_', "-")
            ));
        }
    }
    if args.epochs < r.state.epoch {
        return Err(format!(
            "--epochs {} is fewer than the {} the run in {} has done",
            args.epochs,
            r.state.epoch,
            r.path.display()
        ));
    }
    let mut resumed = r.settings.clone().apply(args);
    // A data path given again names the same file, perhaps from another directory: use it.
    if explicit.iter().any(|id| id == "data") {
        resumed.data = args.data.clone();
    }
    if explicit.iter().any(|id| id == "mnist") {
        resumed.mnist = args.mnist.clone();
    }
    Ok(resumed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_train;

    #[test]
    fn a_checkpoint_saved_before_the_cnn_resumes_as_the_mlp_it_was() {
        let mlp = RunSettings::of(&parse_train(&[]));
        let mut saved = serde_json::to_value(&mlp).unwrap();
        for key in ["model", "channels", "dropout"] {
            saved.as_object_mut().unwrap().remove(key).unwrap();
        }
        let read: RunSettings = serde_json::from_value(saved).unwrap();
        assert_eq!(read, mlp);
        let args = read.apply(&parse_train(&["--epochs", "7"]));
        assert_eq!(
            (
                args.model,
                args.hidden_widths(),
                args.channels,
                args.dropout
            ),
            (ModelArg::Mlp, vec![128, 64], None, 0.0)
        );
        assert_eq!(args.epochs, 7);
    }

    #[test]
    fn a_cnn_run_keeps_its_network_in_effect() {
        let cnn = parse_train(&["--model", "cnn", "--dropout", "0.25"]);
        let settings = RunSettings::of(&cnn);
        let text = serde_json::to_string(&settings).unwrap();
        assert!(
            text.contains(r#""model":"cnn","hidden":[],"channels":[16,32],"dropout":0.25"#),
            "{text}"
        );
        // Resumed with no option but --epochs, the run is the CNN it was.
        let args = settings.apply(&parse_train(&["--epochs", "3"]));
        assert_eq!(
            (args.model, args.hidden_widths(), args.channel_widths()),
            (ModelArg::Cnn, vec![], vec![16, 32])
        );
        assert_eq!(RunSettings::of(&args), RunSettings::of(&cnn));
    }
}
