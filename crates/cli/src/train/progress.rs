//! The progress bar on standard error, as a training callback: the epoch, the examples seen,
//! their rate, the time left, the running loss and the last validation accuracy.

use std::fmt::Write as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use wengert_train::{Callback, Control, EpochRecord, StepInfo};

use crate::args::TrainArgs;

/// The bar's line. It counts examples, not steps, so that its rate is examples per second
/// and its time left holds for a last batch shorter than the others.
const TEMPLATE: &str = "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} examples, {rate}, \
                        ETA {eta_precise}  {msg}";

/// A bar over `epochs × examples` for a run of `args` on `examples` training examples, hidden
/// under `--quiet`.
pub fn bar(args: &TrainArgs, examples: usize) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    styled(ProgressBar::with_draw_target(
        Some((args.epochs as u64).saturating_mul(examples as u64)),
        ProgressDrawTarget::stderr(),
    ))
}

/// Moves a resumed run's bar to where it stopped, `epochs` epochs of `examples` each and
/// `batches` batches of `batch_size` into the next, and starts its rate afresh (the examples
/// already done took no time in this process).
pub fn resume_at(
    bar: &ProgressBar,
    epochs: usize,
    examples: usize,
    batches: usize,
    batch_size: usize,
) {
    let done =
        epochs as u64 * examples as u64 + (batches as u64 * batch_size as u64).min(examples as u64);
    bar.set_position(done);
    bar.reset_eta();
}

/// `bar` in the command's style.
fn styled(bar: ProgressBar) -> ProgressBar {
    let style = ProgressStyle::with_template(TEMPLATE)
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = out.write_str(&rate(state.per_sec()));
            },
        )
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Examples per second for a person: `12.3 examples/s`, `4,560 examples/s`.
fn rate(per_second: f64) -> String {
    if !per_second.is_finite() || per_second <= 0.0 {
        return "- examples/s".into();
    }
    if per_second < 100.0 {
        return format!("{per_second:.1} examples/s");
    }
    let whole = per_second.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    let _ = write!(out, " examples/s");
    out
}

/// The progress bar, as a training callback: the running loss after every step, the
/// validation accuracy after every epoch.
pub struct Progress {
    bar: ProgressBar,
    running: Option<f64>,
    last_epoch: String,
    epochs: usize,
}

impl Progress {
    /// Reports on `bar`, for a run of `epochs` epochs.
    pub fn new(bar: ProgressBar, epochs: usize) -> Self {
        Progress {
            bar,
            running: None,
            last_epoch: String::new(),
            epochs,
        }
    }
}

impl Callback for Progress {
    fn on_step(&mut self, step: &StepInfo) -> Control {
        // An exponential moving average: smooth enough to read, quick to follow.
        let running = match self.running {
            Some(r) => 0.95 * r + 0.05 * step.loss,
            None => step.loss,
        };
        self.running = Some(running);
        self.bar
            .set_prefix(format!("{}/{}", step.epoch, self.epochs));
        self.bar.inc(step.batch_size as u64);
        if step.batch == step.batches || step.step.is_multiple_of(8) {
            self.bar
                .set_message(format!("loss {running:.4}{}", self.last_epoch));
        }
        Control::Continue
    }

    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        if let Some(acc) = record.val_accuracy {
            self.last_epoch = format!("  val acc {:.2}%", 100.0 * acc);
        }
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    #[test]
    fn rates_read_as_a_person_writes_them() {
        assert_eq!(rate(0.0), "- examples/s");
        assert_eq!(rate(f64::NAN), "- examples/s");
        assert_eq!(rate(12.34), "12.3 examples/s");
        assert_eq!(rate(999.6), "1,000 examples/s");
        assert_eq!(rate(1_234_567.0), "1,234,567 examples/s");
    }

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_bar_counts_examples_and_shows_their_rate_and_the_time_left() {
        let screen = Screen::default();
        let bar = styled(ProgressBar::with_draw_target(
            Some(2 * 100),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        ));
        let mut progress = Progress::new(bar.clone(), 2);
        for (batch, size) in [(1, 32), (2, 32), (3, 32), (4, 4)] {
            std::thread::sleep(std::time::Duration::from_millis(5));
            progress.on_step(&StepInfo {
                epoch: 1,
                step: batch,
                batch,
                batches: 4,
                batch_size: size,
                loss: 0.5,
                learning_rate: 0.1,
            });
        }
        screen.0.lock().unwrap().clear();
        bar.force_draw();
        let line = screen.0.lock().unwrap().clone();
        assert!(line.contains("epoch 1/2 "), "{line}");
        assert!(line.contains(" 100/200 examples, "), "{line}");
        assert!(line.contains(" examples/s, ETA 00:00:"), "{line}");
        assert!(!line.contains("- examples/s"), "{line}");
        assert!(line.contains("loss 0.5000"), "{line}");
    }

    #[test]
    fn a_resumed_bar_starts_where_its_run_stopped() {
        let bar = ProgressBar::hidden();
        bar.set_length(3 * 100);
        resume_at(&bar, 2, 100, 0, 32);
        assert_eq!(bar.position(), 200);
        resume_at(&bar, 1, 100, 5, 32);
        assert_eq!(bar.position(), 200);
    }
}
