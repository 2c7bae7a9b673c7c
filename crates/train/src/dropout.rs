//! [`Dropout`]: inverted dropout in training passes, the identity in evaluation.

use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Module, ParameterIds, Result};

/// Inverted dropout (PyTorch's `nn.Dropout(p)`): in a training pass each element is zeroed
/// with probability `p` and the others scaled by `1 / (1 - p)`; in evaluation it passes its
/// input through. The mask comes from a seed the layer draws from the pass
/// ([`ParameterIds::next_seed`]), so two dropout layers drop different elements, and a step
/// replayed with its seed drops the same ones.
///
/// ```
/// use ndarray::Array2;
/// use wengert_tape::Tape;
/// use wengert_train::{Dropout, Mode, Module};
///
/// let dropout = Dropout::new(0.5)?;
/// let x = Array2::<f64>::ones((4, 250));
/// assert_eq!(dropout.predict(&x)?, x.clone().into_dyn()); // evaluation: the identity
///
/// let mut tape = Tape::new();
/// let input = tape.input(&x)?;
/// let y = dropout.apply_with(&mut tape, input, Mode::Training { seed: 3 })?;
/// let kept = tape.data(y)?.iter().filter(|&&v| v == 2.0).count(); // kept, scaled by 1/(1 - p)
/// assert!((400..600).contains(&kept));
/// assert!(tape.data(y)?.iter().all(|&v| v == 0.0 || v == 2.0));
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f64,
}

impl Dropout {
    /// Dropout with probability `p`, which must lie in `[0, 1]` (`p = 1` zeroes everything).
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidConfig(format!(
                "the dropout probability must lie in [0, 1], got {p}"
            )));
        }
        Ok(Dropout { p })
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<E: Float> Module<E> for Dropout {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        if !params.is_training() {
            return Ok(x);
        }
        // Drawn even when p = 0, so that the layers after this one keep their seeds.
        let seed = params.next_seed();
        if self.p == 0.0 {
            return Ok(x);
        }
        Ok(tape.dropout(x, self.p, seed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use ndarray::Array2;

    fn train_pass(layer: &Dropout, seed: u64, x: &Array2<f64>) -> Vec<f64> {
        let mut tape = Tape::new();
        let input = tape.input(x).unwrap();
        let y = layer
            .apply_with(&mut tape, input, Mode::Training { seed })
            .unwrap();
        tape.data(y).unwrap().to_vec()
    }

    #[test]
    fn training_drops_and_rescales_as_pytorch_and_evaluation_does_not() {
        let x = Array2::from_elem((100, 100), 3.0);
        let layer = Dropout::new(0.2).unwrap();
        let y = train_pass(&layer, 1, &x);
        let kept = y.iter().filter(|&&v| v != 0.0).count();
        // 8000 expected; the binomial's standard deviation is 40.
        assert!((7800..8200).contains(&kept), "{kept}");
        assert!(y.iter().all(|&v| v == 0.0 || v == 3.0 / 0.8));
        assert_eq!(y, train_pass(&layer, 1, &x));
        assert_ne!(y, train_pass(&layer, 2, &x));
        assert_eq!(layer.predict(&x).unwrap(), x.clone().into_dyn());
        let all = Dropout::new(1.0).unwrap();
        assert!(train_pass(&all, 1, &x).iter().all(|&v| v == 0.0));
        assert_eq!(
            train_pass(&Dropout::new(0.0).unwrap(), 1, &x),
            x.into_raw_vec_and_offset().0
        );
    }

    #[test]
    fn two_layers_in_one_pass_drop_different_elements() {
        let x = Array2::from_elem((1, 64), 1.0);
        let layer = Dropout::new(0.5).unwrap();
        let mut tape = Tape::new();
        let input = tape.input(&x).unwrap();
        let mut params = ParameterIds::with_mode(&[], Mode::Training { seed: 5 });
        let a = layer.forward(&mut tape, &mut params, input).unwrap();
        let b = layer.forward(&mut tape, &mut params, input).unwrap();
        assert_ne!(tape.data(a).unwrap(), tape.data(b).unwrap());
    }

    #[test]
    fn a_probability_outside_0_1_is_refused() {
        for p in [-0.1, 1.5, f64::NAN] {
            let err = Dropout::new(p).unwrap_err();
            assert!(err.to_string().contains("dropout probability"), "{err}");
        }
    }
}
