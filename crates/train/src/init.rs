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
    /// He (Kaiming) uniform for a leaky ReLU of negative slope `a`, over the fan-in
    /// (PyTorch's `kaiming_uniform_(w, a)`): `U(-b, b)` with `b = √(6 / ((1 + a²) fan_in))`.
    /// With `a = √5` ([`Init::pytorch_conv`]) it is PyTorch's default for convolution and
    /// linear weights, `b = 1/√fan_in`.
    KaimingUniform {
        /// The negative slope of the leaky ReLU the gain is computed for (0 for a ReLU).
        a: f64,
    },
    /// `U(-1/√fan_in, 1/√fan_in)`: PyTorch's default for the bias of a convolution or a
    /// linear layer.
    FanInUniform,
    /// `N(0, std²)` whatever the fans (PyTorch's `normal_(w, 0, std)`; `std = 1` is its
    /// start for an embedding table).
    Normal {
        /// The standard deviation.
        std: f64,
    },
    /// All zeros (the usual start for biases).
    Zeros,
}

impl Init {
    /// PyTorch's default for a convolution's (and a linear layer's) weight:
    /// `kaiming_uniform_(w, a=√5)`, that is `U(-1/√fan_in, 1/√fan_in)`; its bias takes
    /// [`Init::FanInUniform`]. The fans of a convolution's weight come from
    /// [`Init::conv_fans`].
    ///
    /// ```
    /// use wengert_train::{Init, Rng};
    /// let dims = [16, 3, 5, 5]; // out channels, in channels / groups, kernel height, width
    /// let (fan_in, fan_out) = Init::conv_fans(&dims)?;
    /// assert_eq!((fan_in, fan_out), (75, 400));
    /// let mut rng = Rng::seed_from_u64(0);
    /// let w = Init::pytorch_conv().sample::<f32>(&dims, fan_in, fan_out, &mut rng)?;
    /// let b = Init::FanInUniform.sample::<f32>(&[16], fan_in, fan_out, &mut rng)?;
    /// let bound = 1.0 / (75f32).sqrt();
    /// assert!(w.iter().chain(&b).all(|x| x.abs() <= bound));
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn pytorch_conv() -> Init {
        Init::KaimingUniform { a: 5f64.sqrt() }
    }

    /// The fan-in and fan-out of a weight of `dims` as PyTorch computes them
    /// (`_calculate_fan_in_and_fan_out`): for `[out, in, k...]` (a convolution's weight,
    /// `in` per group), `fan_in = in · ∏k` and `fan_out = out · ∏k`. A weight needs two
    /// axes at least; an error too if the product overflows.
    pub fn conv_fans(dims: &[usize]) -> Result<(usize, usize)> {
        let [out, inp, kernel @ ..] = dims else {
            return Err(Error::InvalidConfig(format!(
                "a weight needs at least two axes to have fans, got {dims:?}"
            )));
        };
        let overflow = || Error::InvalidConfig(format!("the fans of {dims:?} overflow"));
        let field = kernel
            .iter()
            .try_fold(1usize, |acc, &k| acc.checked_mul(k))
            .ok_or_else(overflow)?;
        Ok((
            inp.checked_mul(field).ok_or_else(overflow)?,
            out.checked_mul(field).ok_or_else(overflow)?,
        ))
    }

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
            Init::KaimingUniform { a } => {
                let b = (6.0 / ((1.0 + a * a) * fan_in.max(1) as f64)).sqrt();
                data.extend((0..n).map(|_| E::from_f64(rng.uniform_in(-b, b))));
            }
            Init::FanInUniform => {
                let b = 1.0 / (fan_in.max(1) as f64).sqrt();
                data.extend((0..n).map(|_| E::from_f64(rng.uniform_in(-b, b))));
            }
            Init::Normal { std } => {
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
    fn normal_initialisers_have_the_right_spread_and_glorot_the_right_bound() {
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
        let n = Init::Normal { std: 0.5 }
            .sample::<f64>(&[100, 100], 1, 1, &mut rng)
            .unwrap();
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 0.25).abs() < 0.01,
            "{mean} {var}"
        );
        let z = Init::Zeros.sample::<f32>(&[4], 1, 4, &mut rng).unwrap();
        assert!(z.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn kaiming_uniform_matches_pytorchs_bounds_and_spread() {
        // PyTorch: gain = √(2 / (1 + a²)), bound = gain · √(3 / fan_in).
        let mut rng = Rng::seed_from_u64(4);
        let cases = [
            (0.0, (6.0f64 / 288.0).sqrt()),
            (5f64.sqrt(), 1.0 / 288f64.sqrt()),
        ];
        for (a, bound) in cases {
            let w = Init::KaimingUniform { a }
                .sample::<f64>(&[64, 32, 3, 3], 288, 576, &mut rng)
                .unwrap();
            assert!(w.iter().all(|x| x.abs() < bound), "a = {a}");
            // The variance of U(-b, b) is b²/3.
            let var = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
            assert!(
                (var / (bound * bound / 3.0) - 1.0).abs() < 0.03,
                "a = {a}: {var}"
            );
        }
        assert_eq!(
            Init::pytorch_conv(),
            Init::KaimingUniform { a: 5f64.sqrt() }
        );
        let b = Init::FanInUniform
            .sample::<f64>(&[1000], 9, 1, &mut rng)
            .unwrap();
        assert!(b.iter().all(|x| x.abs() < 1.0 / 3.0));
        assert!(b.iter().any(|x| x.abs() > 0.3));
    }

    #[test]
    fn conv_fans_follow_pytorch() {
        assert_eq!(Init::conv_fans(&[32, 1, 3, 3]).unwrap(), (9, 288));
        assert_eq!(Init::conv_fans(&[8, 4, 5]).unwrap(), (20, 40));
        assert_eq!(Init::conv_fans(&[10, 3]).unwrap(), (3, 10));
        assert!(Init::conv_fans(&[3]).is_err());
        assert!(Init::conv_fans(&[2, 2, usize::MAX, 2]).is_err());
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
