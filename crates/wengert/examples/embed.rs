//! How another crate embeds the trainer: its own model type (a `Module`), its own callback,
//! and one dependency, `wengert`. Run it with `cargo run --release --example embed`.
//!
//! The model is a logistic regression with a learned temperature; the callback keeps the best
//! accuracy seen and stops training once it reaches a target.

use wengert::ndarray::{Array1, Array2, ArrayViewD, ArrayViewMutD, array};
use wengert::train::{
    Callback, Control, Dataset, EpochRecord, Module, ParameterIds, Rng, Sgd, StepInfo, TrainConfig,
    Trainer,
};
use wengert::{NodeId, Tape};

/// `logits = (x·w + b) · t`: three parameters, taken in the order `parameters` lists them.
struct TemperedLogistic {
    w: Array2<f64>,
    b: Array1<f64>,
    t: Array1<f64>,
}

impl Module<f64> for TemperedLogistic {
    fn forward(
        &self,
        tape: &mut Tape<f64>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert::train::Result<NodeId> {
        // The trainer keeps the parameters on its tape; take their nodes in `parameters` order.
        let w = params.next()?;
        let b = params.next()?;
        let t = params.next()?;
        let z = tape.matmul(x, w)?;
        let z = tape.add(z, b)?;
        Ok(tape.mul(z, t)?)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, f64>> {
        vec![
            self.w.view().into_dyn(),
            self.b.view().into_dyn(),
            self.t.view().into_dyn(),
        ]
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f64>> {
        vec![
            self.w.view_mut().into_dyn(),
            self.b.view_mut().into_dyn(),
            self.t.view_mut().into_dyn(),
        ]
    }
}

/// Counts steps, remembers the best training accuracy, and stops at a target.
struct StopAtAccuracy {
    target: f64,
    best: f64,
    steps: usize,
}

impl Callback for StopAtAccuracy {
    fn on_step(&mut self, _step: &StepInfo) -> Control {
        self.steps += 1;
        Control::Continue
    }

    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        let acc = record.train_accuracy.unwrap_or(0.0);
        self.best = self.best.max(acc);
        println!(
            "epoch {:3}  loss {:.4}  accuracy {:.1}%",
            record.epoch,
            record.train_loss,
            100.0 * acc
        );
        if acc >= self.target {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// Two Gaussian blobs, at (-1, -1) and (1, 1).
fn blobs(n: usize, seed: u64) -> wengert::train::Result<Dataset<f64>> {
    let mut rng = Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let x = Array2::from_shape_fn((n, 2), |(i, _)| {
        let centre = if labels[i] == 1 { 1.0 } else { -1.0 };
        centre + 0.6 * rng.normal()
    });
    Dataset::classification(x, labels, 2)
}

/// Trains until 97% accuracy (or 50 epochs); returns the best accuracy and the steps taken.
fn run() -> wengert::train::Result<(f64, usize)> {
    let data = blobs(200, 1)?;
    let mut model = TemperedLogistic {
        w: array![[1.0, -1.0], [1.0, -1.0]], // starts out backwards
        b: array![0.0, 0.0],
        t: array![1.0],
    };
    let mut stopper = StopAtAccuracy {
        target: 0.97,
        best: 0.0,
        steps: 0,
    };
    let config = TrainConfig {
        epochs: 50,
        batch_size: 16,
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::new(config, Sgd::builder(0.01).momentum(0.9).build()?).with_callback(&mut stopper);
    trainer.fit(&mut model, &data, None)?;
    drop(trainer);
    println!("temperature learned: {:.3}", model.t[0]);
    Ok((stopper.best, stopper.steps))
}

fn main() -> wengert::train::Result<()> {
    let (best, steps) = run()?;
    println!("best accuracy {:.1}% after {steps} steps", 100.0 * best);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_callback_stops_training_at_the_target() {
        let (best, steps) = super::run().unwrap();
        assert!(best >= 0.97, "best {best}");
        assert!(
            steps < 50 * 13,
            "the callback should have stopped it early: {steps} steps"
        );
    }
}
