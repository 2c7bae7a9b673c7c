//! Convolution layers: [`Conv2d`] over images (`[batch, channels, height, width]`) and
//! [`Conv1d`] over sequences (`[batch, channels, length]`), initialised as PyTorch does.

use std::fmt;
use std::marker::PhantomData;

use ndarray::{Array1, Array3, Array4, ArrayD, ArrayViewD, ArrayViewMutD, Ix1, Ix3, Ix4};
use wengert_ops::{Float, Shape};
use wengert_tape::{Conv1dArgs, Conv2dArgs, NodeId, Tape};

use crate::{Error, Init, Module, Pair, ParameterIds, Result, Rng};

/// A 2-D convolution (PyTorch's `nn.Conv2d`): a cross-correlation of an input
/// `[batch, in_channels, height, width]` (or one image, `[in_channels, height, width]`) with
/// `weight` `[out_channels, in_channels / groups, kh, kw]`, plus `bias` `[out_channels]` if
/// it has one, with stride, zero padding, dilation and groups.
///
/// The weight and bias start as PyTorch starts them: `U(-1/√fan_in, 1/√fan_in)`, with
/// `fan_in = in_channels / groups · kh · kw` (`kaiming_uniform_(a=√5)`; [`Init::pytorch_conv`]).
/// Its parameters are named `weight` and `bias`, as PyTorch names them, and in PyTorch's
/// layout, so a state saved from one loads into the other.
///
/// ```
/// use ndarray::Array4;
/// use wengert_train::{Conv2d, Module, Rng};
///
/// let mut rng = Rng::seed_from_u64(0);
/// let conv = Conv2d::<f32>::builder(3, 16, 3).padding(1).stride(2).build(&mut rng)?;
/// assert_eq!(conv.weight.shape(), &[16, 3, 3, 3]);
/// assert_eq!(conv.to_string(), "Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))");
/// let y = conv.predict(Array4::<f32>::zeros((4, 3, 32, 32)))?;
/// assert_eq!(y.shape(), &[4, 16, 16, 16]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d<E: Float> {
    /// The kernels, `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Array4<E>,
    /// The bias, `[out_channels]`, if the layer has one.
    pub bias: Option<Array1<E>>,
    args: Conv2dArgs,
}

impl<E: Float> Conv2d<E> {
    /// A convolution from `in_channels` to `out_channels` with a `kernel` (one size for both
    /// axes, or `[kh, kw]`) and PyTorch's defaults otherwise: stride 1, no padding, dilation
    /// 1, one group, a bias.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
        rng: &mut Rng,
    ) -> Result<Self> {
        Self::builder(in_channels, out_channels, kernel).build(rng)
    }

    /// A builder for a convolution from `in_channels` to `out_channels` with a `kernel`, to
    /// set the stride, padding, dilation, groups, bias or initialiser before
    /// [`build`](Conv2dBuilder::build).
    pub fn builder(
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
    ) -> Conv2dBuilder<E> {
        Conv2dBuilder {
            in_channels,
            out_channels,
            kernel: kernel.into(),
            args: Conv2dArgs::default(),
            bias: true,
            init: None,
            element: PhantomData,
        }
    }

    /// The number of input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1] * self.args.groups
    }

    /// The number of output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The kernel's size, `[kh, kw]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        [self.weight.shape()[2], self.weight.shape()[3]]
    }

    /// The stride, padding, dilation and groups.
    pub fn args(&self) -> Conv2dArgs {
        self.args
    }
}

impl<E: Float> Module<E> for Conv2d<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let w = params.next()?;
        let b = self.bias.as_ref().map(|_| params.next()).transpose()?;
        let shape = tape.shape(x)?;
        let channels = self.in_channels();
        let batched = check_channels(self, &shape, 2, channels, "height, width")?;
        let x = lift(tape, x, &shape, batched)?;
        let y = tape.conv2d(x, w, b, self.args)?;
        unlift(tape, y, batched)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        let mut all = vec![self.weight.view().into_dyn()];
        all.extend(self.bias.as_ref().map(|b| b.view().into_dyn()));
        all
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        let mut all = vec![self.weight.view_mut().into_dyn()];
        all.extend(self.bias.as_mut().map(|b| b.view_mut().into_dyn()));
        all
    }

    fn parameter_names(&self) -> Vec<String> {
        weight_and_bias(self.bias.is_some())
    }
}

impl<E: Float> fmt::Display for Conv2d<E> {
    /// PyTorch's description: `Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1))`, then the
    /// settings that differ from the defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        write!(
            f,
            "Conv2d({}, {}, kernel_size={}, stride={}",
            self.in_channels(),
            self.out_channels(),
            Pair(self.kernel_size()),
            Pair(a.stride)
        )?;
        if a.padding != [0, 0] {
            write!(f, ", padding={}", Pair(a.padding))?;
        }
        if a.dilation != [1, 1] {
            write!(f, ", dilation={}", Pair(a.dilation))?;
        }
        describe_tail(f, a.groups, self.bias.is_some())
    }
}

/// Builds a [`Conv2d`]; see [`Conv2d::builder`].
#[derive(Debug, Clone)]
pub struct Conv2dBuilder<E> {
    in_channels: usize,
    out_channels: usize,
    kernel: Pair,
    args: Conv2dArgs,
    bias: bool,
    init: Option<Init>,
    element: PhantomData<E>,
}

impl<E: Float> Conv2dBuilder<E> {
    /// The step between windows (default 1).
    pub fn stride(mut self, stride: impl Into<Pair>) -> Self {
        self.args.stride = stride.into().0;
        self
    }

    /// The zeros added before and after each spatial axis (default 0; `kernel / 2` keeps an
    /// odd kernel's output the input's size at stride 1).
    pub fn padding(mut self, padding: impl Into<Pair>) -> Self {
        self.args.padding = padding.into().0;
        self
    }

    /// The step between a kernel's taps (default 1).
    pub fn dilation(mut self, dilation: impl Into<Pair>) -> Self {
        self.args.dilation = dilation.into().0;
        self
    }

    /// How many independent channel groups (default 1; `in_channels` for a depthwise
    /// convolution). It must divide both channel counts.
    pub fn groups(mut self, groups: usize) -> Self {
        self.args.groups = groups;
        self
    }

    /// Whether the layer adds a bias (default `true`).
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The weight's initialiser (default [`Init::pytorch_conv`]); the bias, if any, always
    /// starts from [`Init::FanInUniform`], as in PyTorch.
    pub fn init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// The layer, its weights drawn from `rng`; an error naming the setting if a size is zero,
    /// the groups do not divide the channels, or the weights cannot be allocated.
    pub fn build(self, rng: &mut Rng) -> Result<Conv2d<E>> {
        let a = self.args;
        check_settings(
            "Conv2d",
            [self.in_channels, self.out_channels, a.groups],
            [
                ("kernel_size", self.kernel.0),
                ("stride", a.stride),
                ("dilation", a.dilation),
            ],
        )?;
        let [kh, kw] = self.kernel.0;
        let dims = [self.out_channels, self.in_channels / a.groups, kh, kw];
        let (weight, bias) = draw(&dims, self.init, self.bias, rng)?;
        Ok(Conv2d {
            weight: weight
                .into_dimensionality::<Ix4>()
                .expect("sampled with four axes"),
            bias,
            args: a,
        })
    }
}

/// A 1-D convolution (PyTorch's `nn.Conv1d`): a cross-correlation of an input
/// `[batch, in_channels, length]` (or one sequence, `[in_channels, length]`) with `weight`
/// `[out_channels, in_channels / groups, k]`, plus `bias` `[out_channels]` if it has one.
/// Initialised, named and laid out as [`Conv2d`] is.
///
/// ```
/// use ndarray::Array3;
/// use wengert_train::{Conv1d, Module, Rng};
///
/// let mut rng = Rng::seed_from_u64(0);
/// let conv = Conv1d::<f32>::builder(8, 4, 3).padding(2).dilation(2).build(&mut rng)?;
/// assert_eq!(conv.weight.shape(), &[4, 8, 3]);
/// let y = conv.predict(Array3::<f32>::zeros((2, 8, 10)))?;
/// assert_eq!(y.shape(), &[2, 4, 10]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Conv1d<E: Float> {
    /// The kernels, `[out_channels, in_channels / groups, k]`.
    pub weight: Array3<E>,
    /// The bias, `[out_channels]`, if the layer has one.
    pub bias: Option<Array1<E>>,
    args: Conv1dArgs,
}

impl<E: Float> Conv1d<E> {
    /// A convolution from `in_channels` to `out_channels` with a kernel of `kernel` taps and
    /// PyTorch's defaults otherwise (stride 1, no padding, dilation 1, one group, a bias).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        Self::builder(in_channels, out_channels, kernel).build(rng)
    }

    /// A builder for a convolution from `in_channels` to `out_channels` with a kernel of
    /// `kernel` taps.
    pub fn builder(in_channels: usize, out_channels: usize, kernel: usize) -> Conv1dBuilder<E> {
        Conv1dBuilder {
            in_channels,
            out_channels,
            kernel,
            args: Conv1dArgs::default(),
            bias: true,
            init: None,
            element: PhantomData,
        }
    }

    /// The number of input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1] * self.args.groups
    }

    /// The number of output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The number of taps of the kernel.
    pub fn kernel_size(&self) -> usize {
        self.weight.shape()[2]
    }

    /// The stride, padding, dilation and groups.
    pub fn args(&self) -> Conv1dArgs {
        self.args
    }
}

impl<E: Float> Module<E> for Conv1d<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let w = params.next()?;
        let b = self.bias.as_ref().map(|_| params.next()).transpose()?;
        let shape = tape.shape(x)?;
        let channels = self.in_channels();
        let batched = check_channels(self, &shape, 1, channels, "length")?;
        let x = lift(tape, x, &shape, batched)?;
        let y = tape.conv1d(x, w, b, self.args)?;
        unlift(tape, y, batched)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        let mut all = vec![self.weight.view().into_dyn()];
        all.extend(self.bias.as_ref().map(|b| b.view().into_dyn()));
        all
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        let mut all = vec![self.weight.view_mut().into_dyn()];
        all.extend(self.bias.as_mut().map(|b| b.view_mut().into_dyn()));
        all
    }

    fn parameter_names(&self) -> Vec<String> {
        weight_and_bias(self.bias.is_some())
    }
}

impl<E: Float> fmt::Display for Conv1d<E> {
    /// PyTorch's description: `Conv1d(8, 4, kernel_size=(3,), stride=(1,))`, then the
    /// settings that differ from the defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        write!(
            f,
            "Conv1d({}, {}, kernel_size=({},), stride=({},)",
            self.in_channels(),
            self.out_channels(),
            self.kernel_size(),
            a.stride
        )?;
        if a.padding != 0 {
            write!(f, ", padding=({},)", a.padding)?;
        }
        if a.dilation != 1 {
            write!(f, ", dilation=({},)", a.dilation)?;
        }
        describe_tail(f, a.groups, self.bias.is_some())
    }
}

/// Builds a [`Conv1d`]; see [`Conv1d::builder`].
#[derive(Debug, Clone)]
pub struct Conv1dBuilder<E> {
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    args: Conv1dArgs,
    bias: bool,
    init: Option<Init>,
    element: PhantomData<E>,
}

impl<E: Float> Conv1dBuilder<E> {
    /// The step between windows (default 1).
    pub fn stride(mut self, stride: usize) -> Self {
        self.args.stride = stride;
        self
    }

    /// The zeros added at each end (default 0).
    pub fn padding(mut self, padding: usize) -> Self {
        self.args.padding = padding;
        self
    }

    /// The step between a kernel's taps (default 1).
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.args.dilation = dilation;
        self
    }

    /// How many independent channel groups (default 1); it must divide both channel counts.
    pub fn groups(mut self, groups: usize) -> Self {
        self.args.groups = groups;
        self
    }

    /// Whether the layer adds a bias (default `true`).
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The weight's initialiser (default [`Init::pytorch_conv`]); the bias, if any, always
    /// starts from [`Init::FanInUniform`].
    pub fn init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// The layer, its weights drawn from `rng`; an error naming the setting if a size is zero,
    /// the groups do not divide the channels, or the weights cannot be allocated.
    pub fn build(self, rng: &mut Rng) -> Result<Conv1d<E>> {
        let a = self.args;
        check_settings(
            "Conv1d",
            [self.in_channels, self.out_channels, a.groups],
            [
                ("kernel_size", [self.kernel, 1]),
                ("stride", [a.stride, 1]),
                ("dilation", [a.dilation, 1]),
            ],
        )?;
        let dims = [self.out_channels, self.in_channels / a.groups, self.kernel];
        let (weight, bias) = draw(&dims, self.init, self.bias, rng)?;
        Ok(Conv1d {
            weight: weight
                .into_dimensionality::<Ix3>()
                .expect("sampled with three axes"),
            bias,
            args: a,
        })
    }
}

/// `weight`, and `bias` if there is one.
fn weight_and_bias(bias: bool) -> Vec<String> {
    let mut names = vec!["weight".to_string()];
    if bias {
        names.push("bias".to_string());
    }
    names
}

/// The end of a convolution's description: the groups if not 1, `bias=False` if none.
fn describe_tail(f: &mut fmt::Formatter<'_>, groups: usize, bias: bool) -> fmt::Result {
    if groups != 1 {
        write!(f, ", groups={groups}")?;
    }
    if !bias {
        f.write_str(", bias=False")?;
    }
    f.write_str(")")
}

/// Checks what a convolution's settings must satisfy whatever its input: positive channel
/// counts, kernel sizes, strides and dilations, and groups dividing both channel counts.
fn check_settings(
    layer: &str,
    [inputs, outputs, groups]: [usize; 3],
    sizes: [(&str, [usize; 2]); 3],
) -> Result<()> {
    let refuse = |m: String| Err(Error::InvalidConfig(format!("{layer}: {m}")));
    if inputs == 0 || outputs == 0 {
        return refuse(format!(
            "the channel counts must be positive, got {inputs} in and {outputs} out"
        ));
    }
    for (name, pair) in sizes {
        if pair.contains(&0) {
            return refuse(format!("{name} must be at least 1, got {}", Pair(pair)));
        }
    }
    if groups == 0 || inputs % groups != 0 || outputs % groups != 0 {
        return refuse(format!(
            "groups = {groups} must be at least 1 and divide both {inputs} input and {outputs} output channels"
        ));
    }
    Ok(())
}

/// The weight of `dims` (`[out, in / groups, k...]`) drawn from `init` (PyTorch's default
/// when `None`), then the bias if wanted, from `U(-1/√fan_in, 1/√fan_in)`.
fn draw<E: Float>(
    dims: &[usize],
    init: Option<Init>,
    bias: bool,
    rng: &mut Rng,
) -> Result<(ArrayD<E>, Option<Array1<E>>)> {
    let (fan_in, fan_out) = Init::conv_fans(dims)?;
    let weight = init
        .unwrap_or(Init::pytorch_conv())
        .sample(dims, fan_in, fan_out, rng)?;
    let bias = bias
        .then(|| Init::FanInUniform.sample(&dims[..1], fan_in, fan_out, rng))
        .transpose()?
        .map(|b| {
            b.into_dimensionality::<Ix1>()
                .expect("sampled with one axis")
        });
    Ok((weight, bias))
}

/// Checks that `shape` is a batch of inputs with `channels` channels and `spatial` spatial
/// axes (or one input without the batch axis), naming `layer` otherwise; whether it is a
/// batch.
fn check_channels(
    layer: &impl fmt::Display,
    shape: &Shape,
    spatial: usize,
    channels: usize,
    axes: &str,
) -> Result<bool> {
    let dims = shape.dims();
    let batched = dims.len() == spatial + 2;
    if !(batched || dims.len() == spatial + 1) || dims[dims.len() - spatial - 1] != channels {
        return Err(Error::Model(format!(
            "{layer} takes an input [batch, {channels}, {axes}] (or [{channels}, {axes}]), got {shape}"
        )));
    }
    Ok(batched)
}

/// `x`, given a batch axis of 1 if it has none.
fn lift<E: Float>(tape: &mut Tape<E>, x: NodeId, shape: &Shape, batched: bool) -> Result<NodeId> {
    if batched {
        return Ok(x);
    }
    let mut dims = vec![1];
    dims.extend_from_slice(shape.dims());
    Ok(tape.reshape(x, &dims)?)
}

/// `y` without the batch axis [`lift`] gave it.
fn unlift<E: Float>(tape: &mut Tape<E>, y: NodeId, batched: bool) -> Result<NodeId> {
    if batched {
        return Ok(y);
    }
    let dims = tape.shape(y)?.dims()[1..].to_vec();
    Ok(tape.reshape(y, &dims)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, array};

    #[test]
    fn conv2d_computes_a_cross_correlation_with_bias_stride_and_padding() {
        // One 3×3 image, one 2×2 kernel; the output's corner at (0, 0) is
        // 1·1 + 2·0 + 4·0 + 5·(-1) + 0.5 = -3.5.
        let conv = Conv2d {
            weight: array![[[[1.0, 0.0], [0.0, -1.0]]]],
            bias: Some(array![0.5]),
            args: Conv2dArgs::default(),
        };
        let x = Array::from_iter(1..=9)
            .mapv(f64::from)
            .into_shape_with_order((1, 1, 3, 3))
            .unwrap();
        let y = conv.predict(&x).unwrap();
        assert_eq!(y, array![[[[-3.5, -3.5], [-3.5, -3.5]]]].into_dyn());
        // Padding 1, stride 2: windows at -1 and 1 along each axis.
        let padded = Conv2d {
            args: Conv2dArgs {
                stride: [2, 2],
                padding: [1, 1],
                ..Conv2dArgs::default()
            },
            bias: None,
            ..conv.clone()
        };
        // (-1,-1): -x[0,0] = -1; (-1,1): -x[0,2] = -3; (1,-1): -x[2,0] = -7; (1,1): x[1,1]-x[2,2] = -4.
        let y = padded.predict(&x).unwrap();
        assert_eq!(y, array![[[[-1.0, -3.0], [-7.0, -4.0]]]].into_dyn());
        // One image without its batch axis gives its output without one.
        let one = x.into_shape_with_order((1, 3, 3)).unwrap();
        assert_eq!(conv.predict(&one).unwrap().shape(), &[1, 2, 2]);
    }

    #[test]
    fn conv1d_matches_the_op_and_takes_one_sequence() {
        let conv = Conv1d {
            weight: array![[[1.0, -1.0]], [[0.5, 0.5]]],
            bias: Some(array![0.0, 1.0]),
            args: Conv1dArgs::default(),
        };
        let x = array![[[1.0, 2.0, 4.0]]];
        // Channel 0: x[i] - x[i+1]; channel 1: (x[i] + x[i+1]) / 2 + 1.
        let y = conv.predict(&x).unwrap();
        assert_eq!(y, array![[[-1.0, -2.0], [2.5, 4.0]]].into_dyn());
        let one = conv.predict(array![[1.0, 2.0, 4.0]]).unwrap();
        assert_eq!(one, array![[-1.0, -2.0], [2.5, 4.0]].into_dyn());
    }

    #[test]
    fn initial_weights_follow_pytorch_bounds() {
        let mut rng = Rng::seed_from_u64(0);
        let conv = Conv2d::<f64>::builder(8, 16, [3, 5])
            .groups(2)
            .build(&mut rng)
            .unwrap();
        assert_eq!(conv.weight.shape(), &[16, 4, 3, 5]);
        let bound = 1.0 / (4.0f64 * 15.0).sqrt();
        let bias = conv.bias.as_ref().unwrap();
        assert!(conv.weight.iter().chain(bias).all(|w| w.abs() <= bound));
        // Spread over the whole range, not bunched near zero: U(-b, b) has variance b²/3.
        let var = conv.weight.iter().map(|w| w * w).sum::<f64>() / conv.weight.len() as f64;
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.2, "{var}");
        assert!(bias.iter().any(|b| b.abs() > bound / 2.0));
        let conv1 = Conv1d::<f64>::new(3, 2, 4, &mut rng).unwrap();
        let bound = 1.0 / 12f64.sqrt();
        assert!(conv1.weight.iter().all(|w| w.abs() <= bound));
        assert_eq!((conv.in_channels(), conv.out_channels()), (8, 16));
        assert_eq!(conv.kernel_size(), [3, 5]);
    }

    #[test]
    fn parameters_are_weight_then_bias_and_the_bias_is_optional() {
        let mut rng = Rng::seed_from_u64(1);
        let conv = Conv2d::<f32>::new(1, 4, 3, &mut rng).unwrap();
        assert_eq!(conv.parameter_names(), ["weight", "bias"]);
        let shapes: Vec<Vec<usize>> = conv
            .parameters()
            .iter()
            .map(|p| p.shape().to_vec())
            .collect();
        assert_eq!(shapes, [vec![4, 1, 3, 3], vec![4]]);
        let plain = Conv1d::<f32>::builder(2, 2, 1)
            .bias(false)
            .build(&mut rng)
            .unwrap();
        assert_eq!(plain.parameter_names(), ["weight"]);
        assert_eq!(plain.parameter_count(), 4);
        assert_eq!(
            plain.to_string(),
            "Conv1d(2, 2, kernel_size=(1,), stride=(1,), bias=False)"
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused_when_built() {
        let mut rng = Rng::seed_from_u64(0);
        let cases: [(Conv2dBuilder<f32>, &str); 5] = [
            (Conv2d::builder(0, 4, 3), "channel counts must be positive"),
            (
                Conv2d::builder(1, 4, [3, 0]),
                "kernel_size must be at least 1",
            ),
            (Conv2d::builder(1, 4, 3).stride(0), "stride must be"),
            (
                Conv2d::builder(1, 4, 3).dilation([1, 0]),
                "dilation must be",
            ),
            (
                Conv2d::builder(6, 4, 3).groups(3),
                "divide both 6 input and 4",
            ),
        ];
        for (builder, expected) in cases {
            let err = builder.build(&mut rng).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid setting: Conv2d: "),
                "{err}"
            );
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = Conv1d::<f32>::builder(4, 4, 2)
            .groups(0)
            .build(&mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("Conv1d: groups = 0"), "{err}");
        let err = Conv2d::<f32>::new(1 << 40, 1 << 40, 1 << 20, &mut rng).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
    }

    #[test]
    fn a_misshapen_input_is_an_error_naming_the_layer() {
        let mut rng = Rng::seed_from_u64(0);
        let conv = Conv2d::<f32>::builder(3, 8, 3)
            .padding(1)
            .build(&mut rng)
            .unwrap();
        let err = conv
            .predict(Array4::<f32>::zeros((2, 1, 8, 8)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "model: Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)) takes an \
             input [batch, 3, height, width] (or [3, height, width]), got [2, 1, 8, 8]"
        );
        assert!(
            conv.predict(ndarray::Array2::<f32>::zeros((2, 64)))
                .is_err()
        );
        // Too small for the kernel: the op's message, which names the sizes.
        let conv = Conv1d::<f32>::new(1, 1, 5, &mut rng).unwrap();
        let err = conv.predict(Array3::<f32>::zeros((1, 1, 3))).unwrap_err();
        assert!(err.to_string().contains("conv1d"), "{err}");
    }
}
