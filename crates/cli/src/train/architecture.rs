//! The network a run trains, described before anything is built: the shape of every layer,
//! the parameter count and the activations kept per example, so that a network that cannot
//! work, or cannot fit in memory, is refused in one line before a weight is drawn.

use std::fmt;

use wengert_train::Mlp;

use crate::E;
use crate::args::{ModelArg, TrainArgs};

/// Each convolution's kernel: 3x3, padded by 1 so that it keeps the image's size.
pub const KERNEL: usize = 3;
/// Each max-pool's window and stride: 2x2, halving the height and width (rounding down).
pub const POOL: usize = 2;

/// The layers of a run's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// For a CNN, the `[height, width]` each example's features are read as (one channel,
    /// row-major); `None` for an MLP.
    pub image: Option<[usize; 2]>,
    /// The convolutions' output channels, one block (convolution, activation, max-pool) each.
    pub channels: Vec<usize>,
    /// The fully connected widths: their inputs (the features, or the flattened feature maps of
    /// the last block) first, then the hidden widths, then the classes.
    pub linear: Vec<usize>,
}

impl Architecture {
    /// The network `args` ask for on examples of `features` features and `classes` classes;
    /// `image` is the `[height, width]` the data's examples are (for a CNN: an error if
    /// there is none, or if the blocks would pool it to nothing).
    pub fn new(
        args: &TrainArgs,
        features: usize,
        classes: usize,
        image: Option<[usize; 2]>,
    ) -> Result<Self, String> {
        let hidden = args.hidden_widths();
        let with_ends = |inputs: usize| {
            let mut linear = vec![inputs];
            linear.extend(&hidden);
            linear.push(classes);
            linear
        };
        if args.model == ModelArg::Mlp {
            return Ok(Architecture {
                image: None,
                channels: Vec::new(),
                linear: with_ends(features),
            });
        }
        let [height, width] = image.ok_or("--model cnn needs images")?;
        if height.checked_mul(width) != Some(features) {
            return Err(format!(
                "--model cnn: {height}x{width} images do not match the {features} features"
            ));
        }
        let channels = args.channel_widths();
        let [mut h, mut w] = [height, width];
        for (block, _) in channels.iter().enumerate() {
            if h < POOL || w < POOL {
                return Err(format!(
                    "--channels {channels:?}: {} blocks halve the {height}x{width} images to \
                     nothing (block {} gets {h}x{w}, and pools 2x2); give fewer channels",
                    channels.len(),
                    block + 1
                ));
            }
            (h, w) = (h / POOL, w / POOL);
        }
        let flat = channels
            .last()
            .map_or(Some(features), |&c| c.checked_mul(h)?.checked_mul(w))
            .ok_or_else(|| format!("--channels {channels:?}: the feature maps overflow"))?;
        Ok(Architecture {
            image: Some([height, width]),
            channels,
            linear: with_ends(flat),
        })
    }

    /// The model kind.
    pub fn kind(&self) -> ModelArg {
        if self.image.is_some() {
            ModelArg::Cnn
        } else {
            ModelArg::Mlp
        }
    }

    /// Each convolution block's input channels, output channels and input `[height, width]`.
    pub fn blocks(&self) -> Vec<(usize, usize, [usize; 2])> {
        let Some([mut h, mut w]) = self.image else {
            return Vec::new();
        };
        let mut inputs = 1;
        let mut blocks = Vec::with_capacity(self.channels.len());
        for &c in &self.channels {
            blocks.push((inputs, c, [h, w]));
            (inputs, h, w) = (c, h / POOL, w / POOL);
        }
        blocks
    }

    /// The number of scalar parameters, or `None` if it overflows.
    pub fn parameter_count(&self) -> Option<usize> {
        let convs = self.blocks().iter().try_fold(0usize, |total, &(i, o, _)| {
            let weights = i.checked_mul(o)?.checked_mul(KERNEL * KERNEL)?;
            total.checked_add(weights)?.checked_add(o)
        })?;
        let linear = Mlp::<E>::builder(&self.linear).parameter_count().ok()?;
        convs.checked_add(linear)
    }

    /// The values a forward pass holds per example: the input, each block's convolution,
    /// activation and pooling outputs, each fully connected layer's output.
    pub fn activations_per_example(&self) -> u128 {
        let blocks: u128 = self
            .blocks()
            .iter()
            .map(|&(_, c, [h, w])| {
                let full = c as u128 * h as u128 * w as u128;
                2 * full + c as u128 * (h / POOL) as u128 * (w / POOL) as u128
            })
            .sum();
        let linear: u128 = self.linear.iter().map(|&w| w as u128).sum();
        blocks + linear
    }
}

impl fmt::Display for Architecture {
    /// `an MLP [64, 128, 64, 10]`, or `a CNN on 1x8x8 images: conv 16, pool, conv 32, pool,
    /// then [128, 10]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some([h, w]) = self.image else {
            return write!(f, "an MLP {:?}", self.linear);
        };
        write!(f, "a CNN on 1x{h}x{w} images: ")?;
        for c in &self.channels {
            write!(f, "conv {c}, pool, ")?;
        }
        write!(f, "then {:?}", self.linear)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_train as args;

    #[test]
    fn an_mlp_is_its_widths_as_before() {
        let a = Architecture::new(&args(&[]), 64, 10, Some([8, 8])).unwrap();
        assert_eq!(a.linear, [64, 128, 64, 10]);
        assert_eq!(a.kind(), ModelArg::Mlp);
        assert!(a.blocks().is_empty());
        assert_eq!(
            a.parameter_count(),
            Some(64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10)
        );
        assert_eq!(a.to_string(), "an MLP [64, 128, 64, 10]");
    }

    #[test]
    fn a_cnn_halves_the_image_per_block_and_flattens_into_the_classes() {
        let a = Architecture::new(&args(&["--model", "cnn"]), 64, 10, Some([8, 8])).unwrap();
        assert_eq!(a.blocks(), [(1, 16, [8, 8]), (16, 32, [4, 4])]);
        assert_eq!(a.linear, [32 * 2 * 2, 10]);
        assert_eq!(
            a.parameter_count(),
            Some(16 * 9 + 16 + 16 * 32 * 9 + 32 + 128 * 10 + 10)
        );
        assert_eq!(
            a.activations_per_example(),
            (2 * 16 * 64 + 16 * 16) + (2 * 32 * 16 + 32 * 4) + 128 + 10
        );
        assert_eq!(
            a.to_string(),
            "a CNN on 1x8x8 images: conv 16, pool, conv 32, pool, then [128, 10]"
        );
        // MNIST: 28 → 14 → 7; odd sizes round down, as PyTorch's pooling does.
        let mnist = args(&["--model", "cnn", "--channels", "8,8,4", "--hidden", "32"]);
        let a = Architecture::new(&mnist, 784, 10, Some([28, 28])).unwrap();
        assert_eq!(a.linear, [4 * 3 * 3, 32, 10]);
    }

    #[test]
    fn a_cnn_refuses_missing_mismatched_or_vanishing_images() {
        let cnn = args(&["--model", "cnn"]);
        let err = Architecture::new(&cnn, 64, 10, None).unwrap_err();
        assert!(err.contains("needs images"), "{err}");
        let err = Architecture::new(&cnn, 63, 10, Some([8, 8])).unwrap_err();
        assert!(
            err.contains("8x8 images do not match the 63 features"),
            "{err}"
        );
        let deep = args(&["--model", "cnn", "--channels", "4,4,4,4"]);
        let err = Architecture::new(&deep, 64, 10, Some([8, 8])).unwrap_err();
        assert!(err.contains("block 4 gets 1x1"), "{err}");
        let huge = args(&["--model", "cnn", "--channels", &usize::MAX.to_string()]);
        let err = Architecture::new(&huge, 64, 10, Some([8, 8])).unwrap_err();
        assert!(err.contains("overflow"), "{err}");
    }
}
