//! The end of a run: its summary (`metrics.json`) and the lines printed, which close with
//! every file the run wrote.

use std::path::{Path, PathBuf};

use wengert_train::{Activation, Evaluation, History, StopReason};

use super::data::Prepared;
use crate::args::TrainArgs;
use crate::output::Summary;

/// What a finished run measured.
pub struct Outcome<'a> {
    /// The epochs run.
    pub history: &'a History,
    /// The final weights on the training set.
    pub train: &'a Evaluation,
    /// The final weights on the test set, if there is one.
    pub test: Option<&'a Evaluation>,
    /// Seconds spent training.
    pub train_seconds: f64,
}

/// What the options chose that the summary records besides them.
pub struct Settings {
    /// The non-linearity.
    pub activation: Activation,
    /// The base learning rate.
    pub learning_rate: f64,
    /// The weight decay.
    pub weight_decay: f64,
}

/// The summary written as `metrics.json`.
pub fn summary(
    args: &TrainArgs,
    data: &Prepared,
    setup: &Settings,
    outcome: &Outcome<'_>,
) -> Summary {
    let history = outcome.history;
    Summary {
        source: data.source.clone(),
        seed: args.seed,
        model: data.architecture.kind().name().to_string(),
        image: data.architecture.image,
        channels: data.architecture.channels.clone(),
        sizes: data.architecture.linear.clone(),
        dropout: args.dropout,
        activation: setup.activation.to_string(),
        optimizer: args.optimizer.name().to_string(),
        learning_rate: setup.learning_rate,
        weight_decay: setup.weight_decay,
        batch_size: args.batch_size,
        epochs: history.epochs.len(),
        best_epoch: history.best_epoch,
        stopped_early: history.stop_reason == StopReason::EarlyStopping,
        train_examples: data.train.len(),
        validation_examples: data.validation.len(),
        test_examples: data.test.len(),
        final_loss: outcome.train.loss,
        train_accuracy: outcome.train.accuracy.unwrap_or(0.0),
        validation_accuracy: history
            .epochs
            .get(history.best_epoch.unwrap_or(0).saturating_sub(1))
            .and_then(|r| r.val_accuracy),
        test_loss: outcome.test.map(|t| t.loss),
        test_accuracy: outcome.test.and_then(|t| t.accuracy),
        test_confusion: outcome
            .test
            .and_then(|t| t.confusion.as_ref())
            .map(|c| c.rows()),
        train_seconds: outcome.train_seconds,
    }
}

/// Prints how the run ended, its accuracies, the test confusion matrix, the time taken, and
/// the files it wrote.
pub fn print(outcome: &Outcome<'_>, written: &Written) {
    let history = outcome.history;
    say!(
        "{} after {} epochs ({} steps), best epoch {}",
        match history.stop_reason {
            StopReason::EarlyStopping => "stopped early",
            StopReason::Callback | StopReason::Paused => "stopped",
            StopReason::Completed => "finished",
        },
        history.epochs.len(),
        history.steps,
        history
            .best_epoch
            .map_or("-".to_string(), |e| e.to_string()),
    );
    say!(
        "train accuracy {:.2}%  (loss {:.4})",
        100.0 * outcome.train.accuracy.unwrap_or(0.0),
        outcome.train.loss
    );
    if let Some(t) = outcome.test {
        say!(
            "test accuracy  {:.2}%  (loss {:.4})",
            100.0 * t.accuracy.unwrap_or(0.0),
            t.loss
        );
        if let Some(c) = &t.confusion {
            say!("test confusion matrix ({c}", c = indent(&c.to_string()));
        }
    }
    say!("time {:.2} s", outcome.train_seconds);
    say!("{}", written.lines());
}

/// The files a run wrote into its directory.
#[derive(Debug, Default)]
pub struct Written {
    /// The directory.
    pub dir: PathBuf,
    /// The checkpoints this run saved, oldest first, and whether each is still there
    /// (`--keep-checkpoints` prunes the older ones).
    pub checkpoints: Vec<(PathBuf, bool)>,
}

impl Written {
    /// The results, each with what it is for; then the checkpoints kept, newest first, and a
    /// count of those pruned.
    fn lines(&self) -> String {
        let file = |name: &str| self.dir.join(name);
        let mut rows: Vec<(PathBuf, String)> = vec![
            (
                file("model.tape"),
                "the model: wengert eval|predict|export --model".into(),
            ),
            (file("metrics.json"), "the summary".into()),
            (file("metrics.csv"), "one row per epoch".into()),
            (file("curves.svg"), "loss and accuracy curves".into()),
        ];
        let kept: Vec<&Path> = self
            .checkpoints
            .iter()
            .rev()
            .filter(|(_, kept)| *kept)
            .map(|(path, _)| path.as_path())
            .collect();
        for (i, path) in kept.iter().enumerate() {
            let what = if i == 0 {
                format!("checkpoint: wengert train --resume {}", self.dir.display())
            } else {
                "an older checkpoint".into()
            };
            rows.push((path.to_path_buf(), what));
        }
        let width = rows
            .iter()
            .map(|(p, _)| p.display().to_string().chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::from("wrote:");
        for (path, what) in &rows {
            let shown = path.display().to_string();
            out.push_str(&format!("\n  {shown:width$}  {what}"));
        }
        let pruned = self.checkpoints.len() - kept.len();
        if pruned > 0 {
            out.push_str(&format!(
                "\n  ({pruned} older checkpoint{} of this run removed, as --keep-checkpoints says)",
                if pruned == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

/// The first line of `text` closed with `)`, the others indented.
pub fn indent(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str(line);
            out.push(')');
        } else {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_written_are_listed_aligned_with_pruned_checkpoints_counted() {
        let dir = PathBuf::from("run");
        let written = Written {
            checkpoints: vec![
                (dir.join("checkpoint-41.ckpt"), false),
                (dir.join("checkpoint-82.ckpt"), true),
                (dir.join("checkpoint-123.ckpt"), true),
            ],
            dir,
        };
        let text = written.lines();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "wrote:");
        assert!(lines[1].starts_with("  run/model.tape "), "{text}");
        assert!(
            lines[5]
                .starts_with("  run/checkpoint-123.ckpt  checkpoint: wengert train --resume run"),
            "{text}"
        );
        assert!(lines[6].starts_with("  run/checkpoint-82.ckpt "), "{text}");
        assert_eq!(
            lines[7],
            "  (1 older checkpoint of this run removed, as --keep-checkpoints says)"
        );
        assert_eq!(lines.len(), 8);
        // The descriptions start in one column.
        let column = lines[1].find("the model").unwrap();
        assert_eq!(lines[4].find("loss and").unwrap(), column);
        assert_eq!(lines[6].find("an older").unwrap(), column);
    }
}
