//! Pooling layers over images (`[batch, channels, height, width]`): [`MaxPool2d`],
//! [`AvgPool2d`] and [`AdaptiveAvgPool2d`]. None has parameters.

use std::fmt;

use wengert_ops::Float;
use wengert_tape::{NodeId, Pool2dArgs, Tape};

use crate::{Error, Module, Pair, ParameterIds, Result};

/// 2-D max pooling (PyTorch's `nn.MaxPool2d`, `ceil_mode=False`, dilation 1): each window's
/// largest element. Padding reads as -∞; of equal maxima the first in row order takes the
/// gradient. Takes `[batch, channels, height, width]` or `[channels, height, width]`.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{MaxPool2d, Module};
///
/// let pool = MaxPool2d::new(2)?; // stride 2, as PyTorch's default
/// let x = array![[[[1.0f32, 2.0, 5.0, 0.0], [3.0, 4.0, 1.0, 1.0]]]];
/// assert_eq!(pool.predict(&x)?, array![[[[4.0f32, 5.0]]]].into_dyn());
/// let overlapping = MaxPool2d::with_stride(3, 1)?.padding(1)?;
/// assert_eq!(overlapping.to_string(), "MaxPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    args: Pool2dArgs,
}

impl MaxPool2d {
    /// Max pooling over windows of `kernel` (one size for both axes, or `[kh, kw]`), the
    /// stride the kernel's size, no padding; an error if a size is zero.
    pub fn new(kernel: impl Into<Pair>) -> Result<Self> {
        let kernel = kernel.into();
        Self::with_stride(kernel, kernel)
    }

    /// Max pooling over windows of `kernel` every `stride`, no padding.
    pub fn with_stride(kernel: impl Into<Pair>, stride: impl Into<Pair>) -> Result<Self> {
        let args = pool_args(kernel.into(), stride.into());
        check_pool("MaxPool2d", &args)?;
        Ok(MaxPool2d { args })
    }

    /// The same pooling with `padding` on each side of each axis; an error if it is more than
    /// half the kernel (PyTorch's rule).
    pub fn padding(mut self, padding: impl Into<Pair>) -> Result<Self> {
        self.args.padding = padding.into().0;
        check_pool("MaxPool2d", &self.args)?;
        Ok(self)
    }

    /// The kernel, stride and padding.
    pub fn args(&self) -> Pool2dArgs {
        self.args
    }
}

impl<E: Float> Module<E> for MaxPool2d {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        _params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        check_image(self, tape, x)?;
        Ok(tape.max_pool2d(x, self.args)?)
    }
}

impl fmt::Display for MaxPool2d {
    /// `MaxPool2d(kernel_size=(2, 2), stride=(2, 2))`, and the padding if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe_pool(f, "MaxPool2d", &self.args)?;
        f.write_str(")")
    }
}

/// 2-D average pooling (PyTorch's `nn.AvgPool2d`, `ceil_mode=False`): each window's mean.
/// With padding, a window's sum is divided by its whole size (`count_include_pad`, PyTorch's
/// default) or by the input elements it covers
/// ([`count_include_pad(false)`](AvgPool2d::count_include_pad)). Takes
/// `[batch, channels, height, width]` or `[channels, height, width]`.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{AvgPool2d, Module};
///
/// let x = array![[[[1.0f64, 3.0], [5.0, 7.0]]]];
/// assert_eq!(AvgPool2d::new(2)?.predict(&x)?, array![[[[4.0]]]].into_dyn());
/// // Padded by 1, the corner window covers one element of four.
/// let padded = AvgPool2d::with_stride(2, 2)?.padding(1)?;
/// assert_eq!(padded.predict(&x)?[[0, 0, 0, 0]], 0.25);
/// assert_eq!(padded.count_include_pad(false).predict(&x)?[[0, 0, 0, 0]], 1.0);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    args: Pool2dArgs,
}

impl AvgPool2d {
    /// Average pooling over windows of `kernel`, the stride the kernel's size, no padding; an
    /// error if a size is zero.
    pub fn new(kernel: impl Into<Pair>) -> Result<Self> {
        let kernel = kernel.into();
        Self::with_stride(kernel, kernel)
    }

    /// Average pooling over windows of `kernel` every `stride`, no padding.
    pub fn with_stride(kernel: impl Into<Pair>, stride: impl Into<Pair>) -> Result<Self> {
        let args = pool_args(kernel.into(), stride.into());
        check_pool("AvgPool2d", &args)?;
        Ok(AvgPool2d { args })
    }

    /// The same pooling with `padding` on each side of each axis; an error if it is more than
    /// half the kernel.
    pub fn padding(mut self, padding: impl Into<Pair>) -> Result<Self> {
        self.args.padding = padding.into().0;
        check_pool("AvgPool2d", &self.args)?;
        Ok(self)
    }

    /// The same pooling, dividing each window's sum by its whole size, padding included
    /// (`true`, the default) or by the input elements it covers (`false`).
    pub fn count_include_pad(mut self, include: bool) -> Self {
        self.args.count_include_pad = include;
        self
    }

    /// The kernel, stride, padding and divisor rule.
    pub fn args(&self) -> Pool2dArgs {
        self.args
    }
}

impl<E: Float> Module<E> for AvgPool2d {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        _params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        check_image(self, tape, x)?;
        Ok(tape.avg_pool2d(x, self.args)?)
    }
}

impl fmt::Display for AvgPool2d {
    /// `AvgPool2d(kernel_size=(2, 2), stride=(2, 2))`, the padding if any, and
    /// `count_include_pad=False` if so.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe_pool(f, "AvgPool2d", &self.args)?;
        if !self.args.count_include_pad {
            f.write_str(", count_include_pad=False")?;
        }
        f.write_str(")")
    }
}

/// Adaptive 2-D average pooling (PyTorch's `nn.AdaptiveAvgPool2d`): each image pooled to a
/// fixed `[height, width]` whatever its own size; window `i` of an axis of length `L` pooled
/// to `S` covers `⌊i·L/S⌋..⌈(i+1)·L/S⌉`. `AdaptiveAvgPool2d::new(1)` is global average
/// pooling.
///
/// ```
/// use ndarray::Array4;
/// use wengert_train::{AdaptiveAvgPool2d, Module};
///
/// let global = AdaptiveAvgPool2d::new(1)?;
/// let y = global.predict(Array4::<f32>::from_elem((2, 5, 7, 9), 3.0))?;
/// assert_eq!(y, Array4::<f32>::from_elem((2, 5, 1, 1), 3.0).into_dyn());
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    size: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// Pooling to `size` (one size for both axes, or `[height, width]`); an error if a size
    /// is zero.
    pub fn new(size: impl Into<Pair>) -> Result<Self> {
        let size = size.into();
        if size.0.contains(&0) {
            return Err(Error::InvalidConfig(format!(
                "AdaptiveAvgPool2d: the output size must be at least 1 along each axis, got {size}"
            )));
        }
        Ok(AdaptiveAvgPool2d { size: size.0 })
    }

    /// The output's `[height, width]`.
    pub fn output_size(&self) -> [usize; 2] {
        self.size
    }
}

impl<E: Float> Module<E> for AdaptiveAvgPool2d {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        _params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        check_image(self, tape, x)?;
        Ok(tape.adaptive_avg_pool2d(x, self.size)?)
    }
}

impl fmt::Display for AdaptiveAvgPool2d {
    /// `AdaptiveAvgPool2d(output_size=(1, 1))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdaptiveAvgPool2d(output_size={})", Pair(self.size))
    }
}

/// PyTorch's defaults for a window of `kernel` every `stride`.
fn pool_args(kernel: Pair, stride: Pair) -> Pool2dArgs {
    Pool2dArgs {
        stride: stride.0,
        ..Pool2dArgs::new(kernel.0)
    }
}

/// Checks what a pooling's settings must satisfy whatever its input.
fn check_pool(layer: &str, args: &Pool2dArgs) -> Result<()> {
    let refuse = |m: String| Err(Error::InvalidConfig(format!("{layer}: {m}")));
    for (name, pair) in [("kernel_size", args.kernel), ("stride", args.stride)] {
        if pair.contains(&0) {
            return refuse(format!("{name} must be at least 1, got {}", Pair(pair)));
        }
    }
    if (0..2).any(|axis| args.padding[axis] > args.kernel[axis] / 2) {
        return refuse(format!(
            "padding {} must be at most half the kernel size {}",
            Pair(args.padding),
            Pair(args.kernel)
        ));
    }
    Ok(())
}

/// `Name(kernel_size=.., stride=..`, and the padding if any.
fn describe_pool(f: &mut fmt::Formatter<'_>, name: &str, args: &Pool2dArgs) -> fmt::Result {
    write!(
        f,
        "{name}(kernel_size={}, stride={}",
        Pair(args.kernel),
        Pair(args.stride)
    )?;
    if args.padding != [0, 0] {
        write!(f, ", padding={}", Pair(args.padding))?;
    }
    Ok(())
}

/// Checks that `x` is images, `[batch, channels, height, width]` or `[channels, height,
/// width]`, naming `layer` otherwise.
fn check_image<E: Float>(layer: &impl fmt::Display, tape: &Tape<E>, x: NodeId) -> Result<()> {
    let shape = tape.shape(x)?;
    if !(3..=4).contains(&shape.rank()) {
        return Err(Error::Model(format!(
            "{layer} takes an input [batch, channels, height, width] (or [channels, height, \
             width]), got {shape}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array2, Array4, array};
    use wengert_tape::Tape;

    fn ramp(n: usize, c: usize, h: usize, w: usize) -> Array4<f64> {
        Array::from_iter((0..n * c * h * w).map(|v| v as f64))
            .into_shape_with_order((n, c, h, w))
            .unwrap()
    }

    #[test]
    fn max_pool_takes_each_windows_largest_and_routes_the_gradient_to_it() {
        let x = array![[[[1.0, 9.0, 2.0], [4.0, 3.0, 8.0], [7.0, 5.0, 6.0]]]];
        let pool = MaxPool2d::with_stride(2, 1).unwrap();
        assert_eq!(
            pool.predict(&x).unwrap(),
            array![[[[9.0, 9.0], [7.0, 8.0]]]].into_dyn()
        );
        // The 9 wins two windows: its gradient is 2.
        let mut tape = Tape::new();
        let input = tape.parameter(&x).unwrap();
        let y = pool.apply(&mut tape, input).unwrap();
        let loss = tape.sum(y).unwrap();
        let grads = tape.backward(loss).unwrap();
        assert_eq!(
            grads.data(input).unwrap(),
            &[0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        // Padding reads as -∞: the corners' windows still take a real element.
        let padded = MaxPool2d::new(2).unwrap().padding(1).unwrap();
        assert_eq!(
            padded.predict(&x).unwrap(),
            array![[[[1.0, 9.0], [7.0, 8.0]]]].into_dyn()
        );
    }

    #[test]
    fn avg_pool_divides_as_pytorch_does() {
        let x = ramp(1, 2, 4, 4);
        let y = AvgPool2d::new(2).unwrap().predict(&x).unwrap();
        // Channel 0, window (0, 0): (0 + 1 + 4 + 5) / 4.
        assert_eq!(y[[0, 0, 0, 0]], 2.5);
        assert_eq!(y[[0, 1, 1, 1]], (26.0 + 27.0 + 30.0 + 31.0) / 4.0);
        assert_eq!(y.shape(), &[1, 2, 2, 2]);
        // Kernel 3, stride 2, padding 1 on 4×4: window (0, 0) covers rows and columns 0..2.
        let padded = AvgPool2d::with_stride(3, 2).unwrap().padding(1).unwrap();
        let counted = padded.predict(&x).unwrap();
        let exact = padded.count_include_pad(false).predict(&x).unwrap();
        assert_eq!(counted[[0, 0, 0, 0]], (0.0 + 1.0 + 4.0 + 5.0) / 9.0);
        assert_eq!(exact[[0, 0, 0, 0]], (0.0 + 1.0 + 4.0 + 5.0) / 4.0);
    }

    #[test]
    fn adaptive_pooling_reaches_any_size() {
        let x = ramp(2, 3, 5, 4);
        let global = AdaptiveAvgPool2d::new(1).unwrap().predict(&x).unwrap();
        assert_eq!(global.shape(), &[2, 3, 1, 1]);
        assert_eq!(global[[0, 0, 0, 0]], 9.5); // the mean of 0..20
        // 5 rows to 2: windows 0..3 and 2..5 (they overlap).
        let y = AdaptiveAvgPool2d::new([2, 1]).unwrap().predict(&x).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2, 1]);
        assert_eq!(y[[0, 0, 0, 0]], 5.5); // rows 0..3 of 0..20: mean of 0..12
        assert_eq!(y[[0, 0, 1, 0]], 13.5); // rows 2..5: mean of 8..20
    }

    #[test]
    fn bad_settings_and_inputs_are_errors_naming_the_layer() {
        let cases = [
            (
                MaxPool2d::new(0).unwrap_err(),
                "MaxPool2d: kernel_size must be",
            ),
            (
                MaxPool2d::with_stride(2, [1, 0]).unwrap_err(),
                "MaxPool2d: stride must be",
            ),
            (
                AvgPool2d::new(2).unwrap().padding(2).unwrap_err(),
                "AvgPool2d: padding (2, 2) must be at most half the kernel size (2, 2)",
            ),
            (
                AdaptiveAvgPool2d::new([0, 1]).unwrap_err(),
                "AdaptiveAvgPool2d: the output size",
            ),
        ];
        for (err, expected) in cases {
            assert!(err.to_string().contains(expected), "{err}");
        }
        let flat = Array2::<f32>::zeros((2, 64));
        let err = MaxPool2d::new(2).unwrap().predict(&flat).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model: MaxPool2d(kernel_size=(2, 2), stride=(2, 2)) takes an input [batch, \
             channels, height, width] (or [channels, height, width]), got [2, 64]"
        );
        let small = Array4::<f32>::zeros((1, 1, 1, 1));
        assert!(AvgPool2d::new(2).unwrap().predict(&small).is_err());
        assert!(
            AdaptiveAvgPool2d::new(1)
                .unwrap()
                .predict(Array4::<f32>::zeros((1, 1, 0, 3)))
                .is_err()
        );
    }
}
