//! A [`TrainState`] to and from a [`Checkpoint`]: the in-memory state here, the file format
//! in `wengert-io`. Every entry's name starts with `train.`, so that a checkpoint can carry
//! other entries (a command line's settings) beside it.
//!
//! - arrays: `train.parameters.<i>`, `train.best.<i>`, `train.optimizer.<buffer>.<i>`;
//! - scalars: the loop's position and sums, early stopping's memory, the learning rate, the
//!   random stream's stream number and position, the optimiser's kind, step and settings,
//!   the loss's name and reduce-on-plateau's memory (`train.plateau.…`, from layout 2);
//! - sections: `train.order` (the data order, `u64` little-endian each), `train.rng.seed`
//!   (ChaCha's 32-byte key) and `train.history` (the epoch records, see [`encode_history`]).

use std::collections::BTreeMap;

use ndarray::ArrayD;
use wengert_io::{Checkpoint, Element, Scalar};

use crate::{
    EpochProgress, EpochRecord, Error, History, OptimizerState, PlateauState, Result, RngState,
    StopReason, TrainState,
};

/// The layout of the `train.` entries; a reader refuses a newer one. Layout 2 added the loss's
/// name and reduce-on-plateau's memory; a layout 1 state reads with neither (no name to
/// check, a fresh plateau).
const LAYOUT: u64 = 2;

impl<E: Element> TrainState<E> {
    /// The state as a [`Checkpoint`], to save with
    /// [`CheckpointDir::save`](wengert_io::CheckpointDir::save) or [`Checkpoint::save`].
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_io::LoadOptions;
    /// use wengert_train::{Adam, Control, Dataset, Every, Mlp, TrainConfig, TrainState, Trainer};
    ///
    /// let data = Dataset::classification(array![[0.0f32], [1.0], [2.0]], vec![0, 1, 1], 2)?;
    /// let mut model = Mlp::builder(&[1, 3, 2]).build()?;
    /// let mut bytes = Vec::new();
    /// let mut trainer = Trainer::new(TrainConfig { epochs: 2, ..Default::default() }, Adam::new(0.1)?);
    /// trainer.checkpoint_every(Every::Epochs(1), |s: &TrainState<f32>| {
    ///     bytes = s.to_checkpoint().to_bytes();
    ///     Ok(Control::Continue)
    /// });
    /// trainer.fit(&mut model, &data, None)?;
    /// drop(trainer);
    /// let ckpt = wengert_io::Checkpoint::from_bytes(&bytes, &LoadOptions::default()).unwrap();
    /// let state = TrainState::<f32>::from_checkpoint(&ckpt)?;
    /// assert_eq!((state.epoch, state.history.epochs.len()), (2, 2));
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn to_checkpoint(&self) -> Checkpoint<E> {
        let mut c = Checkpoint::default();
        self.write_into(&mut c);
        c
    }

    /// Adds the state's entries (all named `train.…`) to `checkpoint`.
    pub fn write_into(&self, checkpoint: &mut Checkpoint<E>) {
        let arrays = &mut checkpoint.arrays;
        let mut put_list = |prefix: &str, list: &[ArrayD<E>]| {
            for (i, a) in list.iter().enumerate() {
                arrays.insert(format!("{prefix}.{i}"), a.clone());
            }
        };
        put_list("train.parameters", &self.parameters);
        if let Some(best) = &self.best_parameters {
            put_list("train.best", best);
        }
        for (name, buffers) in &self.optimizer.buffers {
            put_list(&format!("train.optimizer.{name}"), buffers);
        }

        let mut scalars: Vec<(String, Scalar)> = vec![
            ("layout".into(), Scalar::U64(LAYOUT)),
            ("epoch".into(), u(self.epoch)),
            ("batch".into(), u(self.batch)),
            ("steps".into(), u(self.history.steps)),
            ("parameters".into(), u(self.parameters.len())),
            (
                "has_best".into(),
                u(usize::from(self.best_parameters.is_some())),
            ),
            ("rng.stream".into(), Scalar::U64(self.rng.stream)),
            (
                "rng.word_pos.high".into(),
                Scalar::U64((self.rng.word_pos >> 64) as u64),
            ),
            (
                "rng.word_pos.low".into(),
                Scalar::U64(self.rng.word_pos as u64),
            ),
            (
                "progress.loss_sum".into(),
                Scalar::F64(self.progress.loss_sum),
            ),
            ("progress.correct".into(), u(self.progress.correct)),
            ("progress.seen".into(), u(self.progress.seen)),
            (
                "progress.learning_rate".into(),
                Scalar::F64(self.progress.learning_rate),
            ),
            ("best_loss".into(), Scalar::F64(self.best_loss)),
            ("since_best".into(), u(self.since_best)),
            (
                "stop_reason".into(),
                Scalar::Text(stop_name(self.history.stop_reason).into()),
            ),
            (
                "base_learning_rate".into(),
                Scalar::F64(self.base_learning_rate),
            ),
            ("elapsed_seconds".into(), Scalar::F64(self.elapsed_seconds)),
            (
                "optimizer.kind".into(),
                Scalar::Text(self.optimizer.kind.clone()),
            ),
            ("optimizer.step".into(), Scalar::U64(self.optimizer.step)),
            (
                "optimizer.buffers".into(),
                Scalar::Text(
                    self.optimizer
                        .buffers
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ),
        ];
        scalars.extend([
            ("loss".into(), Scalar::Text(self.loss.clone())),
            ("plateau.best".into(), Scalar::F64(self.plateau.best)),
            ("plateau.bad_epochs".into(), u(self.plateau.bad_epochs)),
            (
                "plateau.cooldown_left".into(),
                u(self.plateau.cooldown_left),
            ),
        ]);
        if let Some(z) = self.rng.spare_normal {
            scalars.push(("rng.spare_normal".into(), Scalar::F64(z)));
        }
        if let Some(e) = self.history.best_epoch {
            scalars.push(("best_epoch".into(), u(e)));
        }
        for (name, value) in &self.optimizer.settings {
            scalars.push((format!("optimizer.setting.{name}"), Scalar::F64(*value)));
        }
        for (name, value) in scalars {
            checkpoint.scalars.insert(format!("train.{name}"), value);
        }

        let order: Vec<u8> = self
            .order
            .iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect();
        let sections = &mut checkpoint.sections;
        sections.insert("train.order".into(), order);
        sections.insert("train.rng.seed".into(), self.rng.seed.to_vec());
        sections.insert("train.history".into(), encode_history(&self.history.epochs));
    }

    /// The state saved in `checkpoint` by [`to_checkpoint`](TrainState::to_checkpoint);
    /// entries not named `train.…` are ignored. Every entry is checked: a missing or
    /// mistyped one, a malformed section or a count that does not add up is an
    /// [`Error::Checkpoint`] naming it. (Whether the state fits a model and a data set is
    /// checked by [`Trainer::resume`](crate::Trainer::resume).)
    pub fn from_checkpoint(checkpoint: &Checkpoint<E>) -> Result<Self> {
        let r = Reader(checkpoint);
        let layout = r.u64("layout")?;
        if !(1..=LAYOUT).contains(&layout) {
            return Err(bad(format!(
                "trainer state layout {layout} is not supported (this build reads 1 to {LAYOUT})"
            )));
        }
        let count = r.usize("parameters")?;
        let parameters = r.list("train.parameters", count)?;
        let best_parameters = match r.usize("has_best")? {
            0 => None,
            1 => Some(r.list("train.best", count)?),
            other => return Err(bad(format!("train.has_best is {other}, not 0 or 1"))),
        };
        let buffer_names = r.text("optimizer.buffers")?;
        let mut buffers = Vec::new();
        for name in buffer_names.split(',').filter(|n| !n.is_empty()) {
            buffers.push((
                name.to_string(),
                r.list(&format!("train.optimizer.{name}"), count)?,
            ));
        }
        // Every `train.` array must have been claimed by one of the lists above.
        let claimed = count * (1 + usize::from(best_parameters.is_some()) + buffers.len());
        let present = checkpoint
            .arrays
            .keys()
            .filter(|k| k.starts_with("train."))
            .count();
        if present != claimed {
            return Err(bad(format!(
                "{present} trainer arrays, but the counts account for {claimed}"
            )));
        }
        let settings = checkpoint
            .scalars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("train.optimizer.setting.")?;
                Some(match v {
                    Scalar::F64(x) => Ok((name.to_string(), *x)),
                    _ => Err(bad(format!("{k} is not a real number"))),
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let order_bytes = r.section("order")?;
        if order_bytes.len() % 8 != 0 {
            return Err(bad(format!(
                "train.order holds {} bytes, not a whole number of u64s",
                order_bytes.len()
            )));
        }
        let order = order_bytes
            .chunks_exact(8)
            .map(|c| {
                let i = u64::from_le_bytes(c.try_into().expect("8-byte chunks"));
                usize::try_from(i).map_err(|_| bad(format!("train.order holds {i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let seed: [u8; 32] = r
            .section("rng.seed")?
            .try_into()
            .map_err(|_| bad("train.rng.seed is not 32 bytes".into()))?;
        let spare_normal = match checkpoint.scalars.get("train.rng.spare_normal") {
            None => None,
            Some(_) => Some(r.f64("rng.spare_normal")?),
        };
        let best_epoch = match checkpoint.scalars.get("train.best_epoch") {
            None => None,
            Some(_) => Some(r.usize("best_epoch")?),
        };
        let stop = r.text("stop_reason")?;
        let stop_reason = [
            StopReason::Completed,
            StopReason::EarlyStopping,
            StopReason::Callback,
            StopReason::Paused,
        ]
        .into_iter()
        .find(|s| stop_name(*s) == stop)
        .ok_or_else(|| bad(format!("train.stop_reason `{stop}` is unknown")))?;
        let (loss, plateau) = if layout >= 2 {
            let plateau = PlateauState {
                best: r.f64("plateau.best")?,
                bad_epochs: r.usize("plateau.bad_epochs")?,
                cooldown_left: r.usize("plateau.cooldown_left")?,
            };
            (r.text("loss")?.to_string(), plateau)
        } else {
            (String::new(), PlateauState::default())
        };

        Ok(TrainState {
            epoch: r.usize("epoch")?,
            batch: r.usize("batch")?,
            order,
            rng: RngState {
                seed,
                stream: r.u64("rng.stream")?,
                word_pos: (u128::from(r.u64("rng.word_pos.high")?) << 64)
                    | u128::from(r.u64("rng.word_pos.low")?),
                spare_normal,
            },
            progress: EpochProgress {
                loss_sum: r.f64("progress.loss_sum")?,
                correct: r.usize("progress.correct")?,
                seen: r.usize("progress.seen")?,
                learning_rate: r.f64("progress.learning_rate")?,
            },
            history: History {
                epochs: decode_history(r.section("history")?)?,
                best_epoch,
                stop_reason,
                steps: r.usize("steps")?,
            },
            best_loss: r.f64("best_loss")?,
            since_best: r.usize("since_best")?,
            best_parameters,
            base_learning_rate: r.f64("base_learning_rate")?,
            plateau,
            loss,
            elapsed_seconds: r.f64("elapsed_seconds")?,
            parameters,
            optimizer: OptimizerState {
                kind: r.text("optimizer.kind")?.to_string(),
                step: r.u64("optimizer.step")?,
                settings,
                buffers,
            },
        })
    }
}

fn u(x: usize) -> Scalar {
    Scalar::U64(x as u64)
}

fn bad(message: String) -> Error {
    Error::Checkpoint(message)
}

fn stop_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Completed => "completed",
        StopReason::EarlyStopping => "early_stopping",
        StopReason::Callback => "callback",
        StopReason::Paused => "paused",
    }
}

/// Typed access to a checkpoint's `train.` entries, each error naming the entry.
struct Reader<'c, E: Element>(&'c Checkpoint<E>);

impl<E: Element> Reader<'_, E> {
    fn scalar(&self, name: &str) -> Result<&Scalar> {
        self.0
            .scalars
            .get(&format!("train.{name}"))
            .ok_or_else(|| bad(format!("train.{name} is missing")))
    }

    fn u64(&self, name: &str) -> Result<u64> {
        match self.scalar(name)? {
            Scalar::U64(v) => Ok(*v),
            _ => Err(bad(format!("train.{name} is not a count"))),
        }
    }

    fn usize(&self, name: &str) -> Result<usize> {
        let v = self.u64(name)?;
        usize::try_from(v).map_err(|_| bad(format!("train.{name} is {v}, too large")))
    }

    fn f64(&self, name: &str) -> Result<f64> {
        match self.scalar(name)? {
            Scalar::F64(v) => Ok(*v),
            _ => Err(bad(format!("train.{name} is not a real number"))),
        }
    }

    fn text(&self, name: &str) -> Result<&str> {
        match self.scalar(name)? {
            Scalar::Text(v) => Ok(v),
            _ => Err(bad(format!("train.{name} is not text"))),
        }
    }

    fn section(&self, name: &str) -> Result<&[u8]> {
        self.0
            .sections
            .get(&format!("train.{name}"))
            .map(Vec::as_slice)
            .ok_or_else(|| bad(format!("train.{name} is missing")))
    }

    /// The arrays `<prefix>.0` to `<prefix>.<count - 1>`.
    fn list(&self, prefix: &str, count: usize) -> Result<Vec<ArrayD<E>>> {
        let arrays: &BTreeMap<String, ArrayD<E>> = &self.0.arrays;
        (0..count)
            .map(|i| {
                let name = format!("{prefix}.{i}");
                arrays
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| bad(format!("{name} is missing")))
            })
            .collect()
    }
}

/// The bytes of one epoch record: the epoch (`u64`), the training loss, the three optional
/// metrics (a byte 0 or 1, then the value if 1), the learning rate and the seconds (each
/// `f64`), all little-endian. Records follow one another with nothing between.
pub(crate) fn encode_history(epochs: &[EpochRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(epochs.len() * 56);
    for r in epochs {
        out.extend((r.epoch as u64).to_le_bytes());
        out.extend(r.train_loss.to_le_bytes());
        for x in [r.train_accuracy, r.val_loss, r.val_accuracy] {
            match x {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    out.extend(v.to_le_bytes());
                }
            }
        }
        out.extend(r.learning_rate.to_le_bytes());
        out.extend(r.seconds.to_le_bytes());
    }
    out
}

/// Decodes [`encode_history`]'s bytes, refusing a truncated or malformed record.
pub(crate) fn decode_history(mut bytes: &[u8]) -> Result<Vec<EpochRecord>> {
    let mut out = Vec::new();
    let short = || bad("train.history is truncated".into());
    let take8 = |bytes: &mut &[u8]| -> Result<[u8; 8]> {
        let (head, rest) = bytes.split_first_chunk::<8>().ok_or_else(short)?;
        *bytes = rest;
        Ok(*head)
    };
    while !bytes.is_empty() {
        let epoch = u64::from_le_bytes(take8(&mut bytes)?);
        let train_loss = f64::from_le_bytes(take8(&mut bytes)?);
        let mut optional = [None; 3];
        for slot in &mut optional {
            let (&flag, rest) = bytes.split_first().ok_or_else(short)?;
            bytes = rest;
            *slot = match flag {
                0 => None,
                1 => Some(f64::from_le_bytes(take8(&mut bytes)?)),
                other => return Err(bad(format!("train.history holds flag {other}"))),
            };
        }
        let learning_rate = f64::from_le_bytes(take8(&mut bytes)?);
        let seconds = f64::from_le_bytes(take8(&mut bytes)?);
        out.push(EpochRecord {
            epoch: usize::try_from(epoch).map_err(|_| bad(format!("epoch {epoch}")))?,
            train_loss,
            train_accuracy: optional[0],
            val_loss: optional[1],
            val_accuracy: optional[2],
            learning_rate,
            seconds,
        });
    }
    Ok(out)
}
