//! [`OptimizerState`]: what an optimiser carries from one step to the next, as a checkpoint
//! stores it.

use ndarray::ArrayD;
use wengert_ops::Float;

use crate::{Error, Result};

/// An optimiser's state between steps, as [`Optimizer::state`](crate::Optimizer::state) takes it.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Adam, Optimizer};
///
/// let mut a = Adam::<f64>::new(0.1)?;
/// let mut p = array![1.0, 2.0].into_dyn();
/// a.step(&mut [p.view_mut()], &[array![0.5, -1.0].into_dyn()])?;
///
/// let mut b = Adam::new(0.1)?;
/// b.load_state(&a.state())?;
/// let (mut pa, mut pb) = (p.clone(), p.clone());
/// let g = array![0.25, 0.75].into_dyn();
/// a.step(&mut [pa.view_mut()], &[g.clone()])?;
/// b.step(&mut [pb.view_mut()], &[g])?;
/// assert_eq!(pa, pb);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<E: Float> {
    /// The optimiser's [`name`](crate::Optimizer::name), checked on load.
    pub kind: String,
    /// Steps taken (Adam's bias corrections depend on it).
    pub step: u64,
    /// The settings that shape an update, by name (the learning rate aside: the trainer's
    /// schedule sets it before every step); checked on load, bit for bit.
    pub settings: Vec<(String, f64)>,
    /// Per-parameter buffers by name, each one array per parameter in the optimiser's order:
    /// `momentum_buffer` for SGD with momentum, `exp_avg` and `exp_avg_sq` for Adam (either
    /// decay). Empty before the first step.
    pub buffers: Vec<(String, Vec<ArrayD<E>>)>,
}

impl<E: Float> OptimizerState<E> {
    /// The state of an optimiser named `kind` after `step` steps with these settings and
    /// per-parameter buffers (none kept while they are empty, before the first step).
    pub(super) fn from_parts(
        kind: &str,
        step: u64,
        settings: &[(&str, f64)],
        buffers: &[(&str, &Vec<ArrayD<E>>)],
    ) -> Self {
        let sized = buffers.iter().all(|(_, b)| !b.is_empty());
        OptimizerState {
            kind: kind.to_string(),
            step,
            settings: settings.iter().map(|&(n, v)| (n.to_string(), v)).collect(),
            buffers: buffers
                .iter()
                .filter(|_| sized)
                .map(|&(name, b)| (name.to_string(), b.clone()))
                .collect(),
        }
    }

    /// Checks that this state was saved by an optimiser named `kind` with `settings`, and
    /// holds exactly the buffers `names` (or none, before the first step).
    pub(super) fn check(&self, kind: &str, settings: &[(&str, f64)], names: &[&str]) -> Result<()> {
        if self.kind != kind {
            return Err(Error::InvalidConfig(format!(
                "the saved optimiser state is {}'s, not {kind}'s",
                self.kind
            )));
        }
        for &(name, value) in settings {
            let saved = self.settings.iter().find(|(n, _)| n == name).map(|s| s.1);
            if saved.map(f64::to_bits) != Some(value.to_bits()) {
                return Err(Error::InvalidConfig(format!(
                    "the saved {kind} state has {name} {}, this optimiser {value}",
                    saved.map_or("missing".to_string(), |v| v.to_string())
                )));
            }
        }
        let saved: Vec<&str> = self.buffers.iter().map(|(n, _)| n.as_str()).collect();
        if !saved.is_empty() && saved != names {
            return Err(Error::InvalidConfig(format!(
                "the saved {kind} state holds buffers {saved:?}, expected {names:?}"
            )));
        }
        let lens: Vec<usize> = self.buffers.iter().map(|(_, b)| b.len()).collect();
        if lens.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::InvalidConfig(format!(
                "the saved {kind} state's buffers cover different numbers of parameters: {lens:?}"
            )));
        }
        if let Some((_, first)) = self.buffers.first() {
            for (name, arrays) in &self.buffers[1..] {
                if let Some(i) = (0..first.len()).find(|&i| arrays[i].shape() != first[i].shape()) {
                    return Err(Error::InvalidConfig(format!(
                        "the saved {kind} state's {name} for parameter {i} has shape {:?}, its {} {:?}",
                        arrays[i].shape(),
                        self.buffers[0].0,
                        first[i].shape()
                    )));
                }
            }
        }
        for (name, arrays) in &self.buffers {
            if let Some((i, _)) = arrays
                .iter()
                .enumerate()
                .find(|(_, a)| a.iter().any(|x| !x.is_finite()))
            {
                return Err(Error::InvalidConfig(format!(
                    "the saved {kind} state's {name} for parameter {i} is not finite"
                )));
            }
        }
        Ok(())
    }

    /// The buffers named `name` (empty if there are none yet).
    pub(super) fn take(&self, name: &str) -> Vec<ArrayD<E>> {
        self.buffers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| {
                b.iter()
                    .map(|a| a.as_standard_layout().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::optim::tests::run;
    use crate::{Adam, Optimizer, Sgd};
    use ndarray::array;

    #[test]
    fn a_state_that_does_not_fit_is_refused() {
        let mut adam = Adam::<f64>::new(0.1).unwrap();
        run(&mut adam, 1.0, &[0.5]);
        let mut state = adam.state();
        state.buffers[1].1[0] = array![1.0, 2.0].into_dyn();
        let err = Adam::<f64>::new(0.1)
            .unwrap()
            .load_state(&state)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("exp_avg_sq for parameter 0 has shape [2]"),
            "{err}"
        );
        let mut state = adam.state();
        state.buffers[0].1[0][[0]] = f64::NAN;
        assert!(Adam::<f64>::new(0.1).unwrap().load_state(&state).is_err());
        let err = Sgd::<f64>::builder(0.1)
            .momentum(0.5)
            .build()
            .unwrap()
            .load_state(&Sgd::builder(0.1).momentum(0.9).build().unwrap().state());
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("momentum 0.9, this optimiser 0.5")
        );
    }
}
