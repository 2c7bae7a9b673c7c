//! [`Rng`]: the seeded random stream behind every initialiser, split and shuffle.
//!
//! The generator is ChaCha8 seeded from a `u64`; the conversions to uniform and normal numbers
//! and the shuffle are written here rather than taken from a crate, so that a seed means the
//! same numbers on every machine and across dependency upgrades (a golden test pins them).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded, reproducible random stream (ChaCha8).
///
/// ```
/// use wengert_train::Rng;
/// let mut a = Rng::seed_from_u64(7);
/// let mut b = Rng::seed_from_u64(7);
/// assert_eq!(a.uniform(), b.uniform());
/// let mut v = [1, 2, 3, 4, 5];
/// a.shuffle(&mut v);
/// v.sort();
/// assert_eq!(v, [1, 2, 3, 4, 5]);
/// ```
#[derive(Debug, Clone)]
pub struct Rng {
    inner: ChaCha8Rng,
    /// The second number of the last Box-Muller pair, not yet handed out.
    spare_normal: Option<f64>,
}

/// The state of an [`Rng`]: ChaCha8's key, stream number and position (in 32-bit words),
/// and the Box-Muller number held back for the next [`Rng::normal`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RngState {
    /// The 256-bit key (derived from the `u64` seed).
    pub seed: [u8; 32],
    /// The stream number.
    pub stream: u64,
    /// The number of 32-bit words drawn so far.
    pub word_pos: u128,
    /// The second number of the last Box-Muller pair, not yet handed out.
    pub spare_normal: Option<f64>,
}

impl Rng {
    /// The stream for `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        Rng {
            inner: ChaCha8Rng::seed_from_u64(seed),
            spare_normal: None,
        }
    }

    /// An independent stream for `seed`, one of 2⁶⁴ (ChaCha's stream number), so that the
    /// parts of a run (initialisation, splitting, shuffling) do not share numbers.
    pub fn with_stream(seed: u64, stream: u64) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        Rng {
            inner,
            spare_normal: None,
        }
    }

    /// Where the stream stands: enough to continue it exactly ([`Rng::from_state`]).
    ///
    /// ```
    /// use wengert_train::Rng;
    /// let mut a = Rng::with_stream(7, 3);
    /// a.normal();
    /// let mut b = Rng::from_state(&a.state());
    /// assert_eq!((a.normal(), a.next_u64()), (b.normal(), b.next_u64()));
    /// ```
    pub fn state(&self) -> RngState {
        RngState {
            seed: self.inner.get_seed(),
            stream: self.inner.get_stream(),
            word_pos: self.inner.get_word_pos(),
            spare_normal: self.spare_normal,
        }
    }

    /// The stream at `state`, as [`Rng::state`] took it.
    pub fn from_state(state: &RngState) -> Self {
        let mut inner = ChaCha8Rng::from_seed(state.seed);
        inner.set_stream(state.stream);
        inner.set_word_pos(state.word_pos);
        Rng {
            inner,
            spare_normal: state.spare_normal,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform number in `[0, 1)`, with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `[low, high)`.
    pub fn uniform_in(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// A standard normal number (mean 0, variance 1), by the Box-Muller transform.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// A uniform integer in `0..n`, without modulo bias (Lemire's method); 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Reject the few products whose low half would favour small results.
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` in place, every order equally likely (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_for_a_seed_is_pinned() {
        // Golden values: if these change, every seeded run changes with them.
        let mut rng = Rng::seed_from_u64(0);
        let bits: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let uniform = rng.uniform();
        let normal = rng.normal();
        let mut items: Vec<u32> = (0..10).collect();
        rng.shuffle(&mut items);
        assert_eq!(
            (bits, uniform, normal, items),
            (
                GOLDEN_BITS.to_vec(),
                GOLDEN_UNIFORM,
                GOLDEN_NORMAL,
                GOLDEN_SHUFFLE.to_vec()
            )
        );
    }

    const GOLDEN_BITS: [u64; 3] = [
        13080132717333068652,
        8594738769458413623,
        12896916468484187878,
    ];
    const GOLDEN_UNIFORM: f64 = 0.0601711656341718;
    const GOLDEN_NORMAL: f64 = -1.956916367593472;
    const GOLDEN_SHUFFLE: [u32; 10] = [0, 4, 7, 2, 3, 5, 1, 6, 9, 8];

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = {
            let mut r = Rng::with_stream(5, 1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::with_stream(5, 2);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let a2: Vec<u64> = {
            let mut r = Rng::with_stream(5, 1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_ne!(a, b);
        assert_eq!(a, a2);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::seed_from_u64(1);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            let k = rng.below(7) as usize;
            seen[k] += 1;
        }
        // Each bucket expects 1000; 800 is over six standard deviations away.
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut rng = Rng::seed_from_u64(2);
        let n = 20000;
        let u: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean_u = u.iter().sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        let z: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.04, "variance {var}");
    }
}
