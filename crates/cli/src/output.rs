//! What a run leaves behind: `metrics.csv`, `metrics.json` and `curves.svg`, each written
//! atomically.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use wengert_train::History;

/// The summary of a run, written as `metrics.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The data set.
    pub source: String,
    /// The seed.
    pub seed: u64,
    /// The layer widths, inputs first.
    pub sizes: Vec<usize>,
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

/// `runs/<UTC timestamp>`, with a suffix if a run of the same second took that name.
pub fn timestamped_dir() -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("runs/{}", utc_timestamp(secs));
    let mut dir = PathBuf::from(&base);
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// `YYYYMMDD-HHMMSS` in UTC for seconds since the Unix epoch (the civil-from-days algorithm).
fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes the three files into `dir`, creating it.
pub fn write_all(dir: &Path, history: &History, summary: &Summary) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_atomically(&dir.join("metrics.csv"), metrics_csv(history).as_bytes())?;
    let json = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())? + "\n";
    write_atomically(&dir.join("metrics.json"), json.as_bytes())?;
    let svg = crate::plot::curves_svg(history)?;
    write_atomically(&dir.join("curves.svg"), svg.as_bytes())?;
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

/// Writes `bytes` to `path` so that a reader sees the old file or the new one, never a part:
/// a temporary file in the same directory, synced, renamed over `path`, then the directory
/// synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Syncing a directory is not possible everywhere; the rename has happened regardless.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "19700101-000000");
        assert_eq!(utc_timestamp(951_782_400), "20000229-000000");
        assert_eq!(utc_timestamp(1_700_000_000), "20231114-221320");
    }
}
