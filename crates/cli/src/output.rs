//! What a run leaves behind: `metrics.csv`, `metrics.json` and `curves.svg`, each written
//! atomically.

use std::fs;
use std::path::Path;

use serde::Serialize;
use wengert_train::History;

/// The summary of a run, written as `metrics.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The data set.
    pub source: String,
    /// The seed.
    pub seed: u64,
    /// The network: `mlp` or `cnn`.
    pub model: String,
    /// For a CNN, the `[height, width]` of its one-channel input images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 2]>,
    /// For a CNN, its convolutions' output channels (each block a 3x3 convolution with
    /// padding 1, the activation and a 2x2 max-pool).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<usize>,
    /// The fully connected layers' widths, inputs first (for a CNN, the flattened feature
    /// maps).
    pub sizes: Vec<usize>,
    /// The dropout probability before the last layer (0: none).
    pub dropout: f64,
    /// The non-linearity.
    pub activation: String,
    /// The optimiser.
    pub optimizer: String,
    /// The base learning rate.
    pub learning_rate: f64,
    /// The weight decay.
    pub weight_decay: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs run.
    pub epochs: usize,
    /// The epoch with the lowest validation loss (whose weights were kept).
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Training examples.
    pub train_examples: usize,
    /// Validation examples.
    pub validation_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// The loss on the whole training set with the final weights.
    pub final_loss: f64,
    /// The accuracy on the training set with the final weights.
    pub train_accuracy: f64,
    /// The validation accuracy at the best epoch.
    pub validation_accuracy: Option<f64>,
    /// The loss on the test set.
    pub test_loss: Option<f64>,
    /// The accuracy on the test set.
    pub test_accuracy: Option<f64>,
    /// The test confusion matrix: rows are actual classes, columns predicted ones.
    pub test_confusion: Option<Vec<Vec<u64>>>,
    /// Seconds spent training (not loading or evaluating at the end).
    pub train_seconds: f64,
}

/// Writes the three files into `dir`, creating it.
pub fn write_all(dir: &Path, history: &History, summary: &Summary) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A reader sees each file whole, the old one or the new one, never a part.
    let write = |name: &str, bytes: &[u8]| {
        wengert_io::write_atomic(&dir.join(name), bytes).map_err(|e| e.to_string())
    };
    write("metrics.csv", metrics_csv(history).as_bytes())?;
    let json = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())? + "\n";
    write("metrics.json", json.as_bytes())?;
    write("curves.svg", crate::plot::curves_svg(history)?.as_bytes())?;
    Ok(())
}

/// One row per epoch; empty fields where a metric does not apply.
fn metrics_csv(history: &History) -> String {
    let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n",
    );
    for r in &history.epochs {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.3}\n",
            r.epoch,
            r.train_loss,
            opt(r.train_accuracy),
            opt(r.val_loss),
            opt(r.val_accuracy),
            r.learning_rate,
            r.seconds
        ));
    }
    out
}
