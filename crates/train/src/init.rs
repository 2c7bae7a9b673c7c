//! [`Init`]: how a layer's weights start, drawn from a seeded [`Rng`].

use ndarray::{ArrayD, IxDyn};
use wengert_ops::Float;

use crate::{Error, Result, Rng};

/// A weight initialiser, following PyTorch's `torch.nn.init` definitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Glorot (Xavier) uniform: `U(-a, a)` with `a = √(6 / (fan_in + fan_out))`; suits tanh
    /// and sigmoid layers.
    GlorotUniform,
    /// He (Kaiming) normal for ReLU layers: `N(0, 2 / fan_in)`.
    HeNormal,
    /// All zeros (the usual start for biases).
    Zeros,
}

impl Init {
    /// An array of `dims` drawn from this initialiser for a layer with `fan_in` inputs and
    /// `fan_out` outputs.
    ///
    /// The element count is computed with checked arithmetic and the memory reserved before
    /// any draw: an overflowing shape, or one the allocator refuses, is an
    /// [`Error::InvalidConfig`] naming the bytes, never a panic or an abort.
    ///
    /// ```
    /// use wengert_train::{Init, Rng};
    /// let mut rng = Rng::seed_from_u64(0);
    /// let w = Init::GlorotUniform.sample::<f32>(&[3, 2], 3, 2, &mut rng)?;
    /// let bound = (6.0f32 / 5.0).sqrt();
    /// assert!(w.iter().all(|x| x.abs() <= bound));
    /// assert!(Init::Zeros.sample::<f32>(&[1 << 40, 1 << 40], 1, 1, &mut rng).is_err());
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn sample<E: Float>(
        self,
        dims: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
    ) -> Result<ArrayD<E>> {
        let n = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                Error::InvalidConfig(format!("an array of {dims:?} has too many elements"))
            })?;
        let mut data: Vec<E> = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            Error::InvalidConfig(format!(
                "cannot allocate {} bytes for an array of {dims:?}",
                (n as u128) * std::mem::size_of::<E>() as u128
            ))
        })?;
        match self {
            Init::GlorotUniform => {
                let a = (6.0 / fan_in.saturating_add(fan_out).max(1) as f64).sqrt();
                data.extend((0..n).map(|_| E::from_f64(rng.uniform_in(-a, a))));
            }
            Init::HeNormal => {
                let std = (2.0 / fan_in.max(1) as f64).sqrt();
                data.extend((0..n).map(|_| E::from_f64(std * rng.normal())));
            }
            Init::Zeros => data.resize(n, E::zero()),
        }
        Ok(ArrayD::from_shape_vec(IxDyn(dims), data).expect("sized to the product of dims"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn he_normal_has_the_right_spread_and_glorot_the_right_bound() {
        let mut rng = Rng::seed_from_u64(3);
        let w = Init::HeNormal
            .sample::<f64>(&[200, 100], 200, 100, &mut rng)
            .unwrap();
        let var = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
        assert!((var - 0.01).abs() < 0.0005, "variance {var}");
        let g = Init::GlorotUniform
            .sample::<f64>(&[200, 100], 200, 100, &mut rng)
            .unwrap();
        let a = (6.0f64 / 300.0).sqrt();
        assert!(g.iter().all(|x| x.abs() < a));
        // The variance of U(-a, a) is a²/3 = 2 / (fan_in + fan_out).
        let var = g.iter().map(|x| x * x).sum::<f64>() / g.len() as f64;
        assert!((var - 2.0 / 300.0).abs() < 0.0005, "variance {var}");
        let z = Init::Zeros.sample::<f32>(&[4], 1, 4, &mut rng).unwrap();
        assert!(z.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn sizes_past_usize_are_errors_not_panics() {
        let mut rng = Rng::seed_from_u64(0);
        let err = Init::HeNormal
            .sample::<f32>(&[1 << 58, 1 << 58], 1 << 58, 1 << 58, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("too many elements"), "{err}");
        let err = Init::Zeros
            .sample::<f32>(&[usize::MAX], 1, usize::MAX, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("cannot allocate"), "{err}");
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let a = Init::HeNormal
            .sample::<f32>(&[5, 3], 5, 3, &mut Rng::seed_from_u64(9))
            .unwrap();
        let b = Init::HeNormal
            .sample::<f32>(&[5, 3], 5, 3, &mut Rng::seed_from_u64(9))
            .unwrap();
        assert_eq!(a, b);
    }
}
