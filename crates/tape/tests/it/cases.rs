//! The ops under test as data: one [`Case`] drives the f64 gradient checks, the f32-against-f64
//! comparison and the report, so every op is exercised the same way by each of them.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use wengert_tape::{
    BinaryOp, CustomOp, CustomOpId, Error, Float, GradcheckOptions, GradcheckReport, LossOp,
    NodeId, ReduceOp, Result, Shape, Tape, UnaryOp, gradcheck,
};

/// One op with its non-array arguments. Array operands are the [`Problem`]'s inputs, recorded
/// as parameters in order; cross-entropy's labels are part of the case (they are inputs, not
/// parameters: no gradient is defined for them).
#[derive(Debug, Clone, PartialEq)]
pub enum Case {
    /// A one-input elementwise op, through its [`unary_entry`].
    Unary(UnaryOp),
    /// A two-input elementwise op, through its [`binary_entry`].
    Binary(BinaryOp),
    MatMul,
    /// `linear(x, w, b)`.
    Linear,
    Sum,
    Mean,
    SumAxis {
        axis: usize,
        keep_dim: bool,
    },
    MeanAxis {
        axis: usize,
        keep_dim: bool,
    },
    Reshape(Vec<usize>),
    /// The named `transpose` (the last two axes).
    Transpose,
    TransposeAxes(usize, usize),
    Softmax,
    LogSoftmax,
    Mse,
    CrossEntropy(Vec<usize>),
    /// [`MulSquare`], recorded through the custom-op API.
    Custom,
    /// A reduction over all elements (`None`) or one axis, through its named method
    /// (`MaxAt`/`MinAt` through `max_dim`/`min_dim`, whose values it checks).
    Reduce {
        op: ReduceOp,
        axis: Option<usize>,
        keep_dim: bool,
    },
    SoftmaxAxis(usize),
    LogSoftmaxAxis(usize),
    /// A loss whose prediction and target are both parameters (a distance, binary
    /// cross-entropy, cross-entropy with probabilities).
    Loss(LossOp),
    /// A loss of a parameter against class indices (held here, fed as an input: no gradient
    /// is defined for them).
    ClassLoss(LossOp, ArrayD<f64>),
    Squeeze(usize),
    Unsqueeze(usize),
    Flatten(usize, usize),
    BroadcastTo(Vec<usize>),
    Narrow {
        axis: usize,
        start: i64,
        length: usize,
    },
    /// `index_select` at the positions held here (fed as labels: no gradient).
    IndexSelect {
        axis: usize,
        indices: Vec<usize>,
    },
    /// `gather` with the index array held here (fed as an input).
    Gather {
        axis: usize,
        index: ArrayD<f64>,
    },
    /// `matmul` on operands of which one has rank 3 or more.
    BatchedMatMul,
    Dropout {
        p: f64,
        seed: u64,
    },
    Slice(Vec<wengert_tape::SliceAxis>),
    Pad(Vec<(usize, usize)>, f64),
    /// `concat` of every operand along the axis.
    Concat(usize),
    /// `stack` of every operand along a new axis.
    Stack(usize),
    /// `where_cond` with the condition held here (fed as an input: no gradient) and the two
    /// operands.
    Where(ArrayD<f64>),
    /// A loss with weights held here (fed as an input: no gradient): against class indices
    /// held here (fed as an input) if given, else against the second operand.
    WeightedLoss {
        loss: LossOp,
        targets: Option<ArrayD<f64>>,
        weight: ArrayD<f64>,
    },
    /// `index_add` into length `len` at the positions held here (fed as labels).
    IndexAdd {
        axis: usize,
        len: usize,
        indices: Vec<usize>,
    },
    /// `scatter_add` into length `len` with the index array held here (fed as an input).
    ScatterAdd {
        axis: usize,
        len: usize,
        index: ArrayD<f64>,
    },
    /// `conv2d` of the first operand with the second, the third the bias if there is one.
    Conv2d(wengert_tape::Conv2dArgs),
    /// `conv1d` of the first operand with the second, the third the bias if there is one.
    Conv1d(wengert_tape::Conv1dArgs),
    MaxPool2d(wengert_tape::Pool2dArgs),
    AvgPool2d(wengert_tape::Pool2dArgs),
    AdaptiveAvgPool2d([usize; 2]),
    /// `embedding` of the operand (the table) at the indices held here (fed as an input).
    Embedding {
        padding_idx: Option<usize>,
        indices: ArrayD<f64>,
    },
    /// `layer_norm` of the first operand over its trailing `axes`, then `gamma` and `beta`
    /// among the operands, in that order, when set.
    LayerNorm {
        axes: usize,
        eps: f64,
        gamma: bool,
        beta: bool,
    },
    /// `batch_norm` of the first operand, then `gamma` and `beta` among the operands, in that
    /// order, when set; in evaluation by the running mean and variance held here (fed as
    /// inputs: no gradient), in training when there are none.
    BatchNorm {
        eps: f64,
        gamma: bool,
        beta: bool,
        running: Option<(ArrayD<f64>, ArrayD<f64>)>,
    },
    /// `conv2d_input_grad` of the first operand (a gradient of the output) with the second
    /// (the weight), giving an input of the shape held here.
    Conv2dInputGrad(wengert_tape::Conv2dArgs, Vec<usize>),
    /// `conv2d_weight_grad` of the first operand (the input) with the second (a gradient of
    /// the output), giving a weight of the shape held here.
    Conv2dWeightGrad(wengert_tape::Conv2dArgs, Vec<usize>),
    /// `max_pool2d_grad` of the x held here (fed as an input) and the operand, a gradient of
    /// the pooled output.
    MaxPool2dGrad(wengert_tape::Pool2dArgs, ArrayD<f64>),
    /// `max_pool2d_select` of the x held here (fed as an input) and the operand, of x's shape.
    MaxPool2dSelect(wengert_tape::Pool2dArgs, ArrayD<f64>),
    /// `avg_pool2d_grad` of the operand, giving the input shape held here.
    AvgPool2dGrad(wengert_tape::Pool2dArgs, Vec<usize>),
    /// `adaptive_avg_pool2d_grad` of the operand, giving the input shape held here.
    AdaptiveAvgPool2dGrad([usize; 2], Vec<usize>),
}

/// Where an operand's values are drawn: everywhere in [-2, 2], or kept away from an op's kink
/// or pole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values {
    /// Any value in [-2, 2].
    General,
    /// A magnitude in [lo, hi], either sign: away from 0 (a kink, a pole).
    AwayFromZero(f64, f64),
    /// A value in [0.1, 3].
    Positive,
    /// `k/8 + offset` for a whole `k` in [-16, 16]: two operands with offsets 1/16 apart are
    /// never within a finite-difference step of each other (a kink of maximum and minimum).
    Grid(f64),
}

/// Records an op on a tape through its named method.
pub type Record1<E> = Box<dyn Fn(&mut Tape<E>, NodeId) -> Result<NodeId>>;
/// Records a two-input op on a tape through its named method.
pub type Record2<E> = Box<dyn Fn(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>>;

fn entry1<E: Float>(
    values: Values,
    record: impl Fn(&mut Tape<E>, NodeId) -> Result<NodeId> + 'static,
) -> (Values, Record1<E>) {
    (values, Box::new(record))
}

fn entry2<E: Float>(
    values: [Values; 2],
    record: impl Fn(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId> + 'static,
) -> ([Values; 2], Record2<E>) {
    (values, Box::new(record))
}

/// The test entry of every one-input elementwise op: the values its gradient is checked on and
/// its named method. Exhaustive: a new op in the table does not compile until it has an entry,
/// and then every harness (gradient checks, fan-out, f32 against f64, overwrite, the report)
/// runs it through `UnaryOp::ALL`.
pub fn unary_entry<E: Float>(op: UnaryOp) -> (Values, Record1<E>) {
    use Values::*;
    match op {
        UnaryOp::AddScalar(c) => entry1(General, move |t, x| t.add_scalar(x, E::from_f64(c))),
        UnaryOp::MulScalar(c) => entry1(General, move |t, x| t.mul_scalar(x, E::from_f64(c))),
        UnaryOp::Neg => entry1(General, |t, x| t.neg(x)),
        UnaryOp::Relu => entry1(AwayFromZero(0.01, 2.0), |t, x| t.relu(x)),
        UnaryOp::Tanh => entry1(General, |t, x| t.tanh(x)),
        UnaryOp::Sigmoid => entry1(General, |t, x| t.sigmoid(x)),
        UnaryOp::Exp => entry1(General, |t, x| t.exp(x)),
        UnaryOp::Log => entry1(Positive, |t, x| t.log(x)),
        UnaryOp::Detach => entry1(General, |t, x| t.detach(x)),
        UnaryOp::Sqrt => entry1(Positive, |t, x| t.sqrt(x)),
        UnaryOp::Rsqrt => entry1(Positive, |t, x| t.rsqrt(x)),
        UnaryOp::Abs => entry1(AwayFromZero(0.01, 2.0), |t, x| t.abs(x)),
        UnaryOp::Square => entry1(General, |t, x| t.square(x)),
        UnaryOp::Powf(p) => entry1(Positive, move |t, x| t.powf(x, E::from_f64(p))),
        UnaryOp::Sin => entry1(General, |t, x| t.sin(x)),
        UnaryOp::Cos => entry1(General, |t, x| t.cos(x)),
        UnaryOp::Log1p => entry1(Positive, |t, x| t.log1p(x)),
        UnaryOp::Expm1 => entry1(General, |t, x| t.expm1(x)),
        UnaryOp::Softplus(beta, threshold) => entry1(General, move |t, x| {
            t.softplus_with(x, E::from_f64(beta), E::from_f64(threshold))
        }),
        UnaryOp::LeakyRelu(slope) => entry1(AwayFromZero(0.01, 2.0), move |t, x| {
            t.leaky_relu(x, E::from_f64(slope))
        }),
        UnaryOp::Elu(alpha) => entry1(AwayFromZero(0.01, 2.0), move |t, x| {
            t.elu(x, E::from_f64(alpha))
        }),
        UnaryOp::Silu => entry1(General, |t, x| t.silu(x)),
        // Off the eighths, so never within a finite-difference step of the example bounds,
        // -0.5 and 1 (where the gradient jumps).
        UnaryOp::Clamp(min, max) => entry1(Grid(0.0625), move |t, x| {
            let bound = |b: f64| b.is_finite().then(|| E::from_f64(b));
            t.clamp(x, bound(min), bound(max))
        }),
        UnaryOp::Sign => entry1(AwayFromZero(0.01, 2.0), |t, x| t.sign(x)),
        UnaryOp::Erf => entry1(General, |t, x| t.erf(x)),
        UnaryOp::Gelu => entry1(General, |t, x| t.gelu(x)),
        UnaryOp::GeluTanh => entry1(General, |t, x| t.gelu_tanh(x)),
    }
}

/// The test entry of every two-input elementwise op: the values of each operand and its named
/// method. Exhaustive, as [`unary_entry`].
pub fn binary_entry<E: Float>(op: BinaryOp) -> ([Values; 2], Record2<E>) {
    use Values::*;
    match op {
        BinaryOp::Add => entry2([General, General], |t, a, b| t.add(a, b)),
        BinaryOp::Sub => entry2([General, General], |t, a, b| t.sub(a, b)),
        BinaryOp::Mul => entry2([General, General], |t, a, b| t.mul(a, b)),
        BinaryOp::Div => entry2([General, AwayFromZero(0.5, 2.0)], |t, a, b| t.div(a, b)),
        BinaryOp::Maximum => entry2([Grid(0.0), Grid(0.0625)], |t, a, b| t.maximum(a, b)),
        BinaryOp::Minimum => entry2([Grid(0.0), Grid(0.0625)], |t, a, b| t.minimum(a, b)),
        BinaryOp::Pow => entry2([Positive, General], |t, a, b| t.pow(a, b)),
        // On the same grid, so that ties (where eq, le and ge hold) occur.
        BinaryOp::Eq => entry2([Grid(0.0), Grid(0.0)], |t, a, b| t.eq(a, b)),
        BinaryOp::Lt => entry2([Grid(0.0), Grid(0.0)], |t, a, b| t.lt(a, b)),
        BinaryOp::Le => entry2([Grid(0.0), Grid(0.0)], |t, a, b| t.le(a, b)),
        BinaryOp::Gt => entry2([Grid(0.0), Grid(0.0)], |t, a, b| t.gt(a, b)),
        BinaryOp::Ge => entry2([Grid(0.0), Grid(0.0)], |t, a, b| t.ge(a, b)),
    }
}

impl Case {
    /// The op's name as the report prints it.
    pub fn name(&self) -> String {
        match self {
            // The name with any parameters: `add_scalar(0.75)`.
            Case::Unary(op) => {
                let debug = format!("{op:?}");
                let params = debug.find('(').map_or("", |i| &debug[i..]);
                format!("{}{params}", op.name())
            }
            Case::Binary(op) => op.name().into(),
            Case::MatMul => "matmul".into(),
            Case::Linear => "linear".into(),
            Case::Sum => "sum".into(),
            Case::Mean => "mean".into(),
            Case::SumAxis { axis, keep_dim } => format!("sum_axis({axis}, keep_dim={keep_dim})"),
            Case::MeanAxis { axis, keep_dim } => {
                format!("mean_axis({axis}, keep_dim={keep_dim})")
            }
            Case::Reshape(to) => format!("reshape(to {to:?})"),
            Case::Transpose => "transpose".into(),
            Case::TransposeAxes(a, b) => format!("transpose_axes({a}, {b})"),
            Case::Softmax => "softmax".into(),
            Case::LogSoftmax => "log_softmax".into(),
            Case::Mse => "mse".into(),
            Case::CrossEntropy(_) => "cross_entropy".into(),
            Case::Custom => "custom (a·b²)".into(),
            Case::Reduce { op, axis, keep_dim } => {
                let debug = format!("{op:?}");
                let params = debug.find('(').map_or("", |i| &debug[i..]);
                format!("{}{params}(axis {axis:?}, keep_dim={keep_dim})", op.name())
            }
            Case::SoftmaxAxis(axis) => format!("softmax_axis({axis})"),
            Case::LogSoftmaxAxis(axis) => format!("log_softmax_axis({axis})"),
            Case::Loss(loss) | Case::ClassLoss(loss, _) => format!("{loss:?}"),
            Case::Squeeze(axis) => format!("squeeze({axis})"),
            Case::Unsqueeze(axis) => format!("unsqueeze({axis})"),
            Case::Flatten(start, end) => format!("flatten({start}, {end})"),
            Case::BroadcastTo(dims) => format!("broadcast_to({dims:?})"),
            Case::Narrow {
                axis,
                start,
                length,
            } => format!("narrow({axis}, {start}, {length})"),
            Case::IndexSelect { axis, indices } => format!("index_select({axis}, {indices:?})"),
            Case::Gather { axis, .. } => format!("gather({axis})"),
            Case::BatchedMatMul => "matmul (batched)".into(),
            Case::Dropout { p, seed } => format!("dropout({p}, seed {seed})"),
            Case::Slice(ranges) => format!("slice({ranges:?})"),
            Case::Pad(pads, value) => format!("pad({pads:?}, {value})"),
            Case::Concat(axis) => format!("concat(axis {axis})"),
            Case::Stack(axis) => format!("stack(axis {axis})"),
            Case::Where(_) => "where_cond".into(),
            Case::WeightedLoss { loss, .. } => format!("{loss:?} weighted"),
            Case::IndexAdd { axis, len, indices } => {
                format!("index_add({axis}, len {len}, {indices:?})")
            }
            Case::ScatterAdd { axis, len, .. } => format!("scatter_add({axis}, len {len})"),
            Case::Conv2d(args) => format!("conv2d({args:?})"),
            Case::Conv1d(args) => format!("conv1d({args:?})"),
            Case::MaxPool2d(args) => format!("max_pool2d({args:?})"),
            Case::AvgPool2d(args) => format!("avg_pool2d({args:?})"),
            Case::AdaptiveAvgPool2d(size) => format!("adaptive_avg_pool2d({size:?})"),
            Case::Embedding {
                padding_idx,
                indices,
            } => format!("embedding(padding_idx {padding_idx:?}, {indices:?})"),
            Case::LayerNorm {
                axes,
                eps,
                gamma,
                beta,
            } => format!("layer_norm(axes {axes}, eps {eps}, gamma {gamma}, beta {beta})"),
            Case::BatchNorm {
                eps,
                gamma,
                beta,
                running,
            } => {
                let mode = if running.is_some() {
                    "evaluation"
                } else {
                    "training"
                };
                format!("batch_norm(eps {eps}, gamma {gamma}, beta {beta}, {mode})")
            }
            Case::Conv2dInputGrad(args, input) => format!("conv2d_input_grad({args:?}, {input:?})"),
            Case::Conv2dWeightGrad(args, weight) => {
                format!("conv2d_weight_grad({args:?}, {weight:?})")
            }
            Case::MaxPool2dGrad(args, _) => format!("max_pool2d_grad({args:?})"),
            Case::MaxPool2dSelect(args, _) => format!("max_pool2d_select({args:?})"),
            Case::AvgPool2dGrad(args, input) => format!("avg_pool2d_grad({args:?}, {input:?})"),
            Case::AdaptiveAvgPool2dGrad(size, input) => {
                format!("adaptive_avg_pool2d_grad({size:?}, {input:?})")
            }
        }
    }

    /// Records the op on `tape` with `params` as its array operands. `custom` caches the
    /// custom op's registration, since a gradient check records many times on one tape.
    pub fn record<E: Float>(
        &self,
        tape: &mut Tape<E>,
        params: &[NodeId],
        custom: &mut Option<CustomOpId>,
    ) -> Result<NodeId> {
        let p = params;
        match self {
            Case::Unary(op) => (unary_entry::<E>(*op).1)(tape, p[0]),
            Case::Binary(op) => (binary_entry::<E>(*op).1)(tape, p[0], p[1]),
            Case::MatMul => tape.matmul(p[0], p[1]),
            Case::Linear => tape.linear(p[0], p[1], p[2]),
            Case::Sum => tape.sum(p[0]),
            Case::Mean => tape.mean(p[0]),
            Case::SumAxis { axis, keep_dim } if *keep_dim => tape.sum_axis_keepdim(p[0], *axis),
            Case::SumAxis { axis, .. } => tape.sum_axis(p[0], *axis),
            Case::MeanAxis { axis, keep_dim } if *keep_dim => tape.mean_axis_keepdim(p[0], *axis),
            Case::MeanAxis { axis, .. } => tape.mean_axis(p[0], *axis),
            Case::Reshape(to) => tape.reshape(p[0], to),
            Case::Transpose => tape.transpose(p[0]),
            Case::TransposeAxes(a, b) => tape.transpose_axes(p[0], *a, *b),
            Case::Softmax => tape.softmax(p[0]),
            Case::LogSoftmax => tape.log_softmax(p[0]),
            Case::Mse => tape.mse(p[0], p[1]),
            Case::CrossEntropy(labels) => {
                let labels = tape.labels(labels)?;
                tape.cross_entropy(p[0], labels)
            }
            Case::Custom => {
                let id = *custom.get_or_insert_with(|| tape.register_custom(Box::new(MulSquare)));
                tape.custom(id, &[p[0], p[1]])
            }
            Case::Reduce { op, axis, keep_dim } => record_reduce(tape, *op, p[0], *axis, *keep_dim),
            Case::SoftmaxAxis(axis) => tape.softmax_axis(p[0], *axis),
            Case::LogSoftmaxAxis(axis) => tape.log_softmax_axis(p[0], *axis),
            Case::Loss(loss) => record_loss(tape, *loss, p[0], p[1]),
            Case::ClassLoss(loss, targets) => {
                let targets = tape.input(targets.mapv(E::from_f64))?;
                record_loss(tape, *loss, p[0], targets)
            }
            Case::Squeeze(axis) => tape.squeeze(p[0], *axis),
            Case::Unsqueeze(axis) => tape.unsqueeze(p[0], *axis),
            Case::Flatten(start, end) => tape.flatten(p[0], *start, *end),
            Case::BroadcastTo(dims) => tape.broadcast_to(p[0], dims),
            Case::Narrow {
                axis,
                start,
                length,
            } => tape.narrow(p[0], *axis, *start, *length),
            Case::IndexSelect { axis, indices } => {
                let indices = tape.labels(indices)?;
                tape.index_select(p[0], indices, *axis)
            }
            Case::Gather { axis, index } => {
                let index = tape.input(index.mapv(E::from_f64))?;
                tape.gather(p[0], index, *axis)
            }
            Case::BatchedMatMul => tape.matmul(p[0], p[1]),
            Case::Dropout { p: prob, seed } => tape.dropout(p[0], *prob, *seed),
            Case::Slice(ranges) => tape.slice(p[0], ranges),
            Case::Pad(pads, value) => tape.pad(p[0], pads, E::from_f64(*value)),
            Case::Concat(axis) => tape.concat(p, *axis),
            Case::Stack(axis) => tape.stack(p, *axis),
            Case::Where(cond) => {
                let cond = tape.input(cond.mapv(E::from_f64))?;
                tape.where_cond(cond, p[0], p[1])
            }
            Case::WeightedLoss {
                loss,
                targets,
                weight,
            } => {
                let t = match targets {
                    Some(t) => tape.input(t.mapv(E::from_f64))?,
                    None => p[1],
                };
                let w = tape.input(weight.mapv(E::from_f64))?;
                record_weighted_loss(tape, *loss, p[0], t, w)
            }
            Case::IndexAdd { axis, len, indices } => {
                let indices = tape.labels(indices)?;
                tape.index_add(p[0], indices, *axis, *len)
            }
            Case::ScatterAdd { axis, len, index } => {
                let index = tape.input(index.mapv(E::from_f64))?;
                tape.scatter_add(p[0], index, *axis, *len)
            }
            Case::Conv2d(args) => tape.conv2d(p[0], p[1], p.get(2).copied(), *args),
            Case::Conv1d(args) => tape.conv1d(p[0], p[1], p.get(2).copied(), *args),
            Case::MaxPool2d(args) => tape.max_pool2d(p[0], *args),
            Case::AvgPool2d(args) => tape.avg_pool2d(p[0], *args),
            Case::AdaptiveAvgPool2d(size) => tape.adaptive_avg_pool2d(p[0], *size),
            Case::Embedding {
                padding_idx,
                indices,
            } => {
                let indices = tape.input(indices.mapv(E::from_f64))?;
                tape.embedding(p[0], indices, *padding_idx)
            }
            Case::LayerNorm {
                axes,
                eps,
                gamma,
                beta,
            } => {
                let gamma_id = gamma.then(|| p[1]);
                let beta_id = beta.then(|| p[1 + usize::from(*gamma)]);
                tape.layer_norm(p[0], gamma_id, beta_id, *axes, *eps)
            }
            Case::BatchNorm {
                eps,
                gamma,
                beta,
                running,
            } => {
                let gamma_id = gamma.then(|| p[1]);
                let beta_id = beta.then(|| p[1 + usize::from(*gamma)]);
                match running {
                    None => tape.batch_norm(p[0], gamma_id, beta_id, *eps),
                    Some((mean, var)) => {
                        let mean = tape.input(mean.mapv(E::from_f64))?;
                        let var = tape.input(var.mapv(E::from_f64))?;
                        tape.batch_norm_eval(p[0], gamma_id, beta_id, mean, var, *eps)
                    }
                }
            }
            Case::Conv2dInputGrad(args, input) => {
                let like = tape.input(ArrayD::<E>::zeros(IxDyn(input)))?;
                tape.conv2d_input_grad(p[0], p[1], like, *args)
            }
            Case::Conv2dWeightGrad(args, weight) => {
                let like = tape.input(ArrayD::<E>::zeros(IxDyn(weight)))?;
                tape.conv2d_weight_grad(p[0], p[1], like, *args)
            }
            Case::MaxPool2dGrad(args, x) => {
                let x = tape.input(x.mapv(E::from_f64))?;
                tape.max_pool2d_grad(x, p[0], *args)
            }
            Case::MaxPool2dSelect(args, x) => {
                let x = tape.input(x.mapv(E::from_f64))?;
                tape.max_pool2d_select(x, p[0], *args)
            }
            Case::AvgPool2dGrad(args, input) => {
                let like = tape.input(ArrayD::<E>::zeros(IxDyn(input)))?;
                tape.avg_pool2d_grad(p[0], like, *args)
            }
            Case::AdaptiveAvgPool2dGrad(size, input) => {
                let like = tape.input(ArrayD::<E>::zeros(IxDyn(input)))?;
                tape.adaptive_avg_pool2d_grad(p[0], like, *size)
            }
        }
    }
}

/// Records a reduction through its named method. Exhaustive, so that a new reduction does not
/// compile until it has a way onto the tape here.
fn record_reduce<E: Float>(
    tape: &mut Tape<E>,
    op: ReduceOp,
    x: NodeId,
    axis: Option<usize>,
    keep_dim: bool,
) -> Result<NodeId> {
    // `max_dim` and `min_dim` need an axis: over all elements their values are checked on the
    // flattened array's axis 0.
    let along = |tape: &mut Tape<E>| -> Result<(NodeId, usize)> {
        match axis {
            Some(a) => Ok((x, a)),
            None => {
                let n = tape.shape(x)?.numel();
                Ok((tape.reshape(x, &[n])?, 0))
            }
        }
    };
    match op {
        ReduceOp::Amax => tape.amax(x, axis, keep_dim),
        ReduceOp::Amin => tape.amin(x, axis, keep_dim),
        ReduceOp::MaxAt => {
            let (x, a) = along(tape)?;
            Ok(tape.max_dim(x, a, keep_dim)?.0)
        }
        ReduceOp::MinAt => {
            let (x, a) = along(tape)?;
            Ok(tape.min_dim(x, a, keep_dim)?.0)
        }
        ReduceOp::ArgMax => tape.argmax(x, axis, keep_dim),
        ReduceOp::ArgMin => tape.argmin(x, axis, keep_dim),
        ReduceOp::LogSumExp => tape.logsumexp(x, axis, keep_dim),
        ReduceOp::Prod => tape.prod(x, axis, keep_dim),
        ReduceOp::Var(c) => tape.var(x, axis, c, keep_dim),
        ReduceOp::Std(c) => tape.std(x, axis, c, keep_dim),
        ReduceOp::Norm => tape.norm(x, axis, keep_dim),
    }
}

/// Records a loss through its named method. Exhaustive, as [`record_reduce`].
fn record_loss<E: Float>(tape: &mut Tape<E>, loss: LossOp, x: NodeId, t: NodeId) -> Result<NodeId> {
    use wengert_tape::Distance;
    match loss {
        LossOp::Distance {
            distance,
            reduction,
        } => match distance {
            Distance::L1 => tape.l1_loss(x, t, reduction),
            Distance::SmoothL1 { beta } => tape.smooth_l1_loss(x, t, beta, reduction),
            Distance::Huber { delta } => tape.huber_loss(x, t, delta, reduction),
        },
        LossOp::BceWithLogits { reduction } => {
            tape.binary_cross_entropy_with_logits(x, t, reduction)
        }
        LossOp::Nll {
            ignore_index,
            reduction,
        } => tape.nll_loss(x, t, ignore_index, reduction),
        LossOp::CrossEntropy(options) => tape.cross_entropy_with(x, t, options),
    }
}

/// Records a loss with weights through its named method. Exhaustive, as [`record_reduce`]; a
/// distance loss takes no weights, and is refused.
fn record_weighted_loss<E: Float>(
    tape: &mut Tape<E>,
    loss: LossOp,
    x: NodeId,
    t: NodeId,
    w: NodeId,
) -> Result<NodeId> {
    match loss {
        LossOp::Distance { .. } => tape.record(wengert_tape::Op::WeightedLoss(loss), &[x, t, w]),
        LossOp::BceWithLogits { reduction } => {
            tape.binary_cross_entropy_with_logits_weighted(x, t, w, reduction)
        }
        LossOp::Nll {
            ignore_index,
            reduction,
        } => tape.nll_loss_weighted(x, t, w, ignore_index, reduction),
        LossOp::CrossEntropy(options) => tape.cross_entropy_weighted(x, t, w, options),
    }
}

/// An op and the values of its array operands.
#[derive(Debug, Clone)]
pub struct Problem {
    pub case: Case,
    pub inputs: Vec<ArrayD<f64>>,
}

impl Problem {
    pub fn new(case: Case, inputs: Vec<ArrayD<f64>>) -> Problem {
        Problem { case, inputs }
    }

    /// The f64 gradient check with the default options (tolerance 1e-7 + 1e-6·|numeric|).
    pub fn gradcheck(&self) -> Result<GradcheckReport> {
        let mut custom = None;
        gradcheck(
            |tape, params| self.case.record(tape, params, &mut custom),
            &self.inputs,
            &GradcheckOptions::default(),
        )
    }

    /// The same check on `op(x) + op(x)`: every operand feeds two nodes, so a VJP that
    /// overwrote its input's gradient instead of adding to it would come out half as large.
    pub fn gradcheck_fan_out(&self) -> Result<GradcheckReport> {
        let mut custom = None;
        gradcheck(
            |tape, params| {
                let first = self.case.record(tape, params, &mut custom)?;
                let second = self.case.record(tape, params, &mut custom)?;
                tape.add(first, second)
            },
            &self.inputs,
            &GradcheckOptions::default(),
        )
    }

    /// The output's elements and each operand's gradient under the seed [`cotangent`], computed
    /// in `E` and widened to f64.
    pub fn evaluate<E: Float>(&self) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
        let mut tape = Tape::<E>::new();
        let params = self
            .inputs
            .iter()
            .map(|x| tape.parameter(x.mapv(E::from_f64)))
            .collect::<Result<Vec<_>>>()?;
        let out = self.case.record(&mut tape, &params, &mut None)?;
        let value = widen(tape.data(out)?);
        let shape = tape.shape(out)?;
        if !tape.requires_grad(out)? {
            // No gradient reaches the output (a detached one): backward refuses it, and its
            // derivative with respect to every input is zero.
            let zeros = self.inputs.iter().map(|x| vec![0.0; x.len()]).collect();
            return Ok((value, zeros));
        }
        let seed = cotangent::<E>(&shape);
        let grads = tape.backward_with_seed(out, seed.view())?;
        let grads = params
            .iter()
            .map(|&p| widen(grads.data(p).expect("every parameter has a gradient")))
            .collect();
        Ok((value, grads))
    }
}

pub fn widen<E: Float>(x: &[E]) -> Vec<f64> {
    x.iter().map(|&v| v.to_f64()).collect()
}

/// A fixed, non-constant seed gradient (a constant one would hide softmax's VJP, whose rows
/// then sum to zero). Every value is exact in f32.
pub fn cotangent<E: Float>(shape: &Shape) -> ArrayD<E> {
    let data = (0..shape.numel())
        .map(|i| E::from_f64((i % 7) as f64 / 2.0 - 1.25))
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape.dims()), data).expect("sized to the shape")
}

/// A user-defined op, `y = a·b²` elementwise on operands of one shape, with its VJP written by
/// hand: what a user of the `CustomOp` trait would write.
pub struct MulSquare;

impl<E: Float> CustomOp<E> for MulSquare {
    fn name(&self) -> &str {
        "mul_square"
    }

    fn arity(&self) -> usize {
        2
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        if !inputs[0].same_as(inputs[1]) {
            return Err(Error::ShapeMismatch {
                op: "mul_square",
                lhs: *inputs[0],
                rhs: *inputs[1],
            });
        }
        Ok(*inputs[0])
    }

    fn forward(&self, inputs: &[ArrayViewD<'_, E>], mut out: ArrayViewMutD<'_, E>) -> Result<()> {
        ndarray::Zip::from(&mut out)
            .and(&inputs[0])
            .and(&inputs[1])
            .for_each(|y, &a, &b| *y = a * b * b);
        Ok(())
    }

    // y = a·b²: da = dy·b², db = dy·2ab
    fn vjp(
        &self,
        inputs: &[ArrayViewD<'_, E>],
        _output: ArrayViewD<'_, E>,
        grad_output: ArrayViewD<'_, E>,
        input_index: usize,
        mut grad_input: ArrayViewMutD<'_, E>,
    ) {
        let two = E::from_f64(2.0);
        ndarray::Zip::from(&mut grad_input)
            .and(&inputs[0])
            .and(&inputs[1])
            .and(&grad_output)
            .for_each(|d, &a, &b, &g| {
                *d += if input_index == 0 {
                    g * b * b
                } else {
                    g * two * a * b
                }
            });
    }
}
