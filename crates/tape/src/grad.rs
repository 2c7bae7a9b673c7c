//! The recording sweep: [`Tape::record_grad`] walks the tape from a loss down as
//! [`backward`](Tape::backward) does, but applies each op's VJP *with tape ops*, so that every
//! gradient is a node on the same tape and can be differentiated again, to any order (PyTorch's
//! `torch.autograd.grad(..., create_graph=True)`).
//!
//! The elementwise ops' VJPs are their derivative rules, the same rows of the tables the
//! first-order sweep runs, run on [`Rec`](crate::record_arith) values that record an op per
//! operation. The other ops' VJPs are composed below of existing ops, each beside the formula
//! the first-order rule in `wengert_ops::Op` implements. Built on this: [`Tape::hvp`],
//! [`Tape::jvp`], [`Tape::jacobian`] and [`Tape::hessian`].

use ndarray::{Array2, ArrayD, IxDyn};
use wengert_ops::{Error, Float, Op, RecordedNode, Result, Shape, VjpRecorder};

use crate::node::{CustomOpId, NodeKind};
use crate::record_arith::{Recorder, Val};
use crate::{NodeId, Tape};

impl<E: Float> Tape<E> {
    /// The gradient of `loss` with respect to each node of `wrt`, recorded as nodes on this
    /// tape: each can be used in further ops and differentiated again (a Hessian-vector
    /// product, a gradient penalty, a Newton step). A non-scalar `loss` is summed.
    ///
    /// Each of `wrt` must need a gradient (a parameter, an input asked with
    /// [`retain_grad`](Tape::retain_grad), or an op on one); one the loss does not depend on
    /// gets zeros. A custom op on the way runs its
    /// [`record_vjp`](wengert_ops::CustomOp::record_vjp); one without is an error
    /// ([`Error::NotTwiceDifferentiable`]): use [`backward`](Tape::backward) for its
    /// first-order gradient.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// // y = x³: dy/dx = 3x², d²y/dx² = 6x
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![2.0])?;
    /// let y = tape.powf(x, 3.0)?;
    /// let loss = tape.sum(y)?;
    /// let [dx] = tape.record_grad(loss, &[x])?[..] else { unreachable!() };
    /// assert_eq!(tape.data(dx)?, &[12.0]);
    /// let dx_sum = tape.sum(dx)?;
    /// let [ddx] = tape.record_grad(dx_sum, &[x])?[..] else { unreachable!() };
    /// assert_eq!(tape.data(ddx)?, &[12.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn record_grad(&mut self, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
        self.check_ids(&[loss])?;
        let seed = self.ones_like(loss)?;
        self.record_vjp(loss, seed, wrt)
    }

    /// The vector-Jacobian product of `output` with `cotangent` (a node of `output`'s shape)
    /// with respect to each of `wrt`, recorded as nodes: [`record_grad`](Tape::record_grad)
    /// with a seed of your choosing.
    pub fn record_vjp(
        &mut self,
        output: NodeId,
        cotangent: NodeId,
        wrt: &[NodeId],
    ) -> Result<Vec<NodeId>> {
        self.check_ids(&[output, cotangent])?;
        self.check_ids(wrt)?;
        let (shape, seed_shape) = (self.node_shape(output), self.node_shape(cotangent));
        if shape != seed_shape {
            return Err(Error::ShapeMismatch {
                op: "record_vjp",
                lhs: shape,
                rhs: seed_shape,
            });
        }
        if !self.nodes[output.index()].requires_grad {
            return Err(Error::NoGradient { id: output.raw() });
        }
        if let Some(w) = wrt.iter().find(|w| !self.nodes[w.index()].requires_grad) {
            return Err(Error::NoGradient { id: w.raw() });
        }
        let out = output.index();
        let leads = self.leads_to(out, wrt);
        let mut grads: Vec<Option<NodeId>> = vec![None; out + 1];
        if leads[out] {
            grads[out] = Some(cotangent);
        }
        for i in (0..=out).rev() {
            let Some(g) = grads[i] else { continue };
            let node = self.nodes[i];
            match node.kind {
                NodeKind::Op(op) => {
                    for k in 0..node.inputs_len as usize {
                        let j = self.inputs_of(&node)[k];
                        if !self.takes_grad(&node, k) || !leads[j.index()] {
                            continue;
                        }
                        let here = NodeId::new(i as u32, node.epoch);
                        if let Some(share) = self.recorded_pullback(op, here, k, g)? {
                            grads[j.index()] = Some(match grads[j.index()] {
                                // Fan-out: the paths' shares add up, as a node.
                                Some(sum) => self.add(sum, share)?,
                                None => share,
                            });
                        }
                    }
                }
                NodeKind::Custom(id) => {
                    let inputs = self.inputs_of(&node).to_vec();
                    let here = NodeId::new(i as u32, node.epoch);
                    for (k, &j) in inputs.iter().enumerate() {
                        if !leads[j.index()] || !self.nodes[j.index()].requires_grad {
                            continue;
                        }
                        let share = self.custom_recorded_vjp(id, &inputs, here, g, k)?;
                        grads[j.index()] = Some(match grads[j.index()] {
                            Some(sum) => self.add(sum, share)?,
                            None => share,
                        });
                    }
                }
                NodeKind::Input | NodeKind::Parameter => {}
            }
        }
        wrt.iter()
            .map(|&w| match grads.get(w.index()).copied().flatten() {
                Some(g) => Ok(g),
                None => self.zeros_like(w),
            })
            .collect()
    }

    /// A custom op's [recorded VJP](wengert_ops::CustomOp::record_vjp) through input `k`, checked to have
    /// the input's shape.
    fn custom_recorded_vjp(
        &mut self,
        id: CustomOpId,
        inputs: &[NodeId],
        here: NodeId,
        g: NodeId,
        k: usize,
    ) -> Result<NodeId> {
        // The ops are lent out for the call, so that the op can be read while the tape records;
        // the recorder takes built-in ops only, so none is needed meanwhile.
        let ops = std::mem::take(&mut self.custom_ops);
        let op = &ops[id.0 as usize];
        let mut handles = inputs.to_vec();
        handles.extend([here, g]);
        let n = inputs.len();
        let locals: Vec<RecordedNode> = (0..n).map(RecordedNode::new).collect();
        let mut recorder = TapeRecorder {
            tape: self,
            handles,
        };
        let share = op.record_vjp(
            &mut recorder,
            &locals,
            RecordedNode::new(n),
            RecordedNode::new(n + 1),
            k,
        );
        let handles = recorder.handles;
        let name = op.name().to_string();
        self.custom_ops = ops;
        let share = *handles
            .get(share?.index())
            .ok_or(Error::NotTwiceDifferentiable { op: name.clone() })?;
        let (have, want) = (self.node_shape(share), self.node_shape(inputs[k]));
        if have != want {
            return Err(Error::Custom {
                op: name,
                message: format!(
                    "its recorded VJP for input {k} has shape {have}, the input has shape {want}"
                ),
            });
        }
        Ok(share)
    }

    /// Which nodes up to `out` a gradient can flow from into one of `wrt`: only their shares
    /// are recorded, so that a sweep for one weight records nothing for the data.
    fn leads_to(&self, out: usize, wrt: &[NodeId]) -> Vec<bool> {
        let mut leads = vec![false; out + 1];
        for w in wrt {
            if let Some(l) = leads.get_mut(w.index()) {
                *l = true;
            }
        }
        for i in 0..=out {
            if leads[i] {
                continue;
            }
            let node = &self.nodes[i];
            leads[i] = match node.kind {
                NodeKind::Op(_) => self
                    .inputs_of(node)
                    .iter()
                    .enumerate()
                    .any(|(k, j)| self.takes_grad(node, k) && leads[j.index()]),
                NodeKind::Custom(_) => self.inputs_of(node).iter().any(|j| leads[j.index()]),
                NodeKind::Input | NodeKind::Parameter => false,
            };
        }
        leads
    }

    /// Input `k`'s share of the gradient `g` of node `here` (an `op`), recorded; `None` for a
    /// share that is zero by construction.
    fn recorded_pullback(
        &mut self,
        op: Op,
        here: NodeId,
        k: usize,
        g: NodeId,
    ) -> Result<Option<NodeId>> {
        let node = self.nodes[here.index()];
        let [a, b] = node.inputs;
        let x = self.inputs_of(&node)[k];
        let x_shape = self.node_shape(x);
        let share = match op {
            // The derivative rule of the op's row, recorded.
            Op::Unary(unary) => {
                let cx = Recorder::new(self);
                let d = unary
                    .derivative(cx.node(g), cx.node(a), cx.node(here))
                    .map(|d| d.val);
                cx.take_error()?;
                match d {
                    Some(d) => return self.materialize(d, x),
                    None => return Ok(None),
                }
            }
            Op::Binary(binary) => {
                let cx = Recorder::new(self);
                let d = binary
                    .derivative(k, cx.node(g), cx.node(a), cx.node(b), cx.node(here))
                    .val;
                cx.take_error()?;
                match self.materialize(d, here)? {
                    // Summed over the axes the input was broadcast along.
                    Some(d) => self.sum_to(d, x)?,
                    None => return Ok(None),
                }
            }
            // C = A·B: dA = dC·Bᵀ, dB = Aᵀ·dC
            Op::MatMul => {
                if k == 0 {
                    let bt = self.transpose(b)?;
                    self.matmul(g, bt)?
                } else {
                    let at = self.transpose(a)?;
                    self.matmul(at, g)?
                }
            }
            // y = x·W + b: dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ_rows dy
            Op::Linear => {
                let inputs = self.inputs_of(&node);
                let (xs, w) = (inputs[0], inputs[1]);
                match k {
                    0 => {
                        let wt = self.transpose(w)?;
                        self.matmul(g, wt)?
                    }
                    1 => {
                        let xt = self.transpose(xs)?;
                        self.matmul(xt, g)?
                    }
                    _ => self.sum_to(g, x)?,
                }
            }
            // y = Σx: dx = dy
            Op::Sum => self.broadcast_like(g, x)?,
            // y = Σx / n: dx = dy / n
            Op::Mean => {
                let d = self.broadcast_like(g, x)?;
                self.mul_scalar(d, E::from_usize(x_shape.numel()).recip())?
            }
            // y = Σ_axis x: dx = dy broadcast along the axis
            Op::SumAxis { axis, keep_dim } => self.unreduce(g, x, axis, keep_dim)?,
            // y = mean_axis x: dx = dy / len broadcast along the axis
            Op::MeanAxis { axis, keep_dim } => {
                let d = self.unreduce(g, x, axis, keep_dim)?;
                let len = x_shape.dims()[axis];
                self.mul_scalar(d, E::from_usize(len).recip())?
            }
            // y = reshape x: dx = dy in the input's shape
            Op::Reshape(_) => self.reshape(g, x_shape.dims())?,
            // y = swap(x): dx = swap(dy)
            Op::Transpose { axis0, axis1 } => self.transpose_axes(g, axis0, axis1)?,
            // y = softmax x: dx = y·(dy - Σ dy·y)
            Op::Softmax => {
                let gy = self.mul(g, here)?;
                let s = self.sum_axis_keepdim(gy, x_shape.rank() - 1)?;
                let centred = self.sub(g, s)?;
                self.mul(here, centred)?
            }
            // y = log_softmax x: dx = dy - softmax(x)·Σ dy
            Op::LogSoftmax => {
                let p = self.softmax(a)?;
                let s = self.sum_axis_keepdim(g, x_shape.rank() - 1)?;
                let ps = self.mul(p, s)?;
                self.sub(g, ps)?
            }
            // L = mean (p - t)²: dp = dL·2(p - t)/n, dt = -dp
            Op::Mse => {
                let diff = self.sub(a, b)?;
                let scaled = self.mul(diff, g)?;
                let n = E::from_usize(self.node_shape(a).numel());
                let dp = self.mul_scalar(scaled, E::from_f64(2.0) / n)?;
                if k == 0 { dp } else { self.neg(dp)? }
            }
            // L = mean_b (lse(z_b) - z_b[label_b]): dz = dL·(softmax(z) - onehot(label)) / batch
            Op::CrossEntropy => self.cross_entropy_vjp(a, b, g)?,
            // y = concat(x_0, …, x_n) along the axis: dx_k = dy narrowed to x_k's block
            Op::Concat { axis } => {
                let inputs = self.inputs_of(&node);
                let before: usize = inputs[..k]
                    .iter()
                    .map(|i| self.nodes[i.index()].shape.dims()[axis])
                    .sum();
                let start = i64::try_from(before)
                    .map_err(|_| Error::TooManyElements { shape: node.shape })?;
                self.narrow(g, axis, start, x_shape.dims()[axis])?
            }
            // y = stack(x_0, …, x_n) along a new axis: dx_k = dy[.., k, ..], without the axis
            Op::Stack { axis } => {
                let start =
                    i64::try_from(k).map_err(|_| Error::TooManyElements { shape: node.shape })?;
                let d = self.narrow(g, axis, start, 1)?;
                self.reshape(d, x_shape.dims())?
            }
            // y = where(c, a, b): da = where(c, dy, 0), db = where(c, 0, dy), each summed to
            // its input's shape; none to c (not differentiable in it)
            Op::Where => {
                let cond = a;
                let zeros = self.zeros_like(g)?;
                let d = if k == 1 {
                    self.where_cond(cond, g, zeros)?
                } else {
                    self.where_cond(cond, zeros, g)?
                };
                self.sum_to(d, x)?
            }
            // The losses' rules with the weights (input 2) as constants, in `grad_rules.rs`.
            Op::WeightedLoss(loss) => {
                let w = self.inputs_of(&node)[2];
                match self.weighted_loss_vjp(loss, (a, b, w), k, g)? {
                    Some(share) => share,
                    None => return Ok(None),
                }
            }
            // The rules below are in `grad_rules.rs`, each beside its formula.
            Op::Reduce { op, axis, keep_dim } => {
                match self.reduce_vjp(op, axis, keep_dim, (a, here, g))? {
                    Some(share) => share,
                    None => return Ok(None),
                }
            }
            Op::SoftmaxAxis { axis } => self.softmax_axis_vjp(axis, here, g)?,
            Op::LogSoftmaxAxis { axis } => self.log_softmax_axis_vjp(axis, here, g)?,
            Op::Loss(loss) => match self.loss_vjp(loss, (a, b), k, g)? {
                Some(share) => share,
                None => return Ok(None),
            },
            // y = x repeated: dx = dy summed over the repeats
            Op::BroadcastTo(_) => self.sum_to(g, a)?,
            Op::Narrow {
                axis,
                start,
                length,
            } => self.narrow_vjp((a, g), axis, start, length)?,
            Op::IndexSelect { axis } => self.index_select_vjp((a, b, g), axis)?,
            Op::Gather { axis } => self.gather_vjp((a, b, g), axis)?,
            // y = index_add(src, idx): dsrc = index_select(dy, idx)
            Op::IndexAdd { axis, .. } => self.index_select(g, b, axis)?,
            // y = scatter_add(src, index): dsrc = gather(dy, index)
            Op::ScatterAdd { axis, .. } => self.gather(g, b, axis)?,
            Op::BatchedMatMul => self.batched_matmul_vjp((a, b, g), k)?,
            // y = x·mask/(1 - p): dx = dy·mask/(1 - p), the same op on the gradient
            Op::Dropout { p, seed } => self.dropout(g, p, seed)?,
            Op::Slice { axis, range } => match self.slice_vjp((a, g), axis, range)? {
                Some(share) => share,
                None => return Ok(None),
            },
            Op::Pad { pads, axes, .. } => self.pad_vjp((a, g), &pads[..axes as usize])?,
            // y = conv2d(x, w) + b, bilinear: dx = input_grad(dy, w), dw = weight_grad(x, dy),
            // db = Σ dy over the batch and the positions
            Op::Conv2d(args) => match k {
                0 => self.conv2d_input_grad(g, b, a, args)?,
                1 => self.conv2d_weight_grad(a, g, b, args)?,
                _ => self.conv_bias_grad(g)?,
            },
            // conv1d is conv2d on a height of 1: the same rules through reshapes, which are exact
            Op::Conv1d(args) => self.conv1d_vjp(args, (a, b, g), k)?,
            // y = input_grad(g, w) = Jₓᵀg, bilinear: dg = conv2d(dy, w), dw = weight_grad(dy, g)
            Op::Conv2dInputGrad(args) => {
                if k == 0 {
                    self.conv2d(g, b, None, args)?
                } else {
                    self.conv2d_weight_grad(g, a, b, args)?
                }
            }
            Op::Embedding { padding_idx } => self.embedding_vjp((a, b, g), padding_idx)?,
            // The fused rule composed from tape ops, in `grad_rules.rs`.
            Op::LayerNorm {
                axes, eps, gamma, ..
            } => {
                let w = gamma.then(|| self.inputs_of(&node)[1]);
                self.layer_norm_vjp((a, w, g), axes, eps, k)?
            }
            Op::BatchNorm {
                eps,
                training,
                gamma,
                beta,
            } => {
                let inputs = self.inputs_of(&node);
                let w = gamma.then(|| inputs[1]);
                let at = 1 + usize::from(gamma) + usize::from(beta);
                // The running estimates take no gradient (`differentiable_in`).
                if k >= at {
                    return Ok(None);
                }
                let running = (!training).then(|| (inputs[at], inputs[at + 1]));
                self.batch_norm_vjp((a, w, g), running, eps, k)?
            }
            // y = weight_grad(x, g) = J_wᵀg: dx = input_grad(g, dy), dg = conv2d(x, dy)
            Op::Conv2dWeightGrad(args) => {
                if k == 0 {
                    self.conv2d_input_grad(b, g, a, args)?
                } else {
                    self.conv2d(a, g, None, args)?
                }
            }
            // y = max_pool2d(x): dx = g scattered to each window's argmax of x
            Op::MaxPool2d(args) => self.max_pool2d_grad(a, g, args)?,
            // y = grad(x, g), linear in g: dg = select(x, dy); none to x (`differentiable_in`)
            Op::MaxPool2dGrad(args) => self.max_pool2d_select(a, g, args)?,
            // y = select(x, u), linear in u: du = grad(x, dy); none to x
            Op::MaxPool2dSelect(args) => self.max_pool2d_grad(a, g, args)?,
            // The average pools are linear: dx = their VJP op of g, whose VJP is the pool
            Op::AvgPool2d(args) => self.avg_pool2d_grad(g, a, args)?,
            Op::AdaptiveAvgPool2d(size) => self.adaptive_avg_pool2d_grad(g, a, size)?,
            Op::AvgPool2dGrad(args) => self.avg_pool2d(g, args)?,
            Op::AdaptiveAvgPool2dGrad(size) => self.adaptive_avg_pool2d(g, size)?,
        };
        Ok(Some(share))
    }

    /// A rule's result as a node of `like`'s shape: a literal `c` becomes `c` everywhere, and
    /// `None` if it is zero.
    fn materialize(&mut self, d: Val, like: NodeId) -> Result<Option<NodeId>> {
        match d {
            Val::Node(d) => Ok(Some(d)),
            Val::Lit(0.0) => Ok(None),
            Val::Lit(c) => {
                let ones = self.ones_like(like)?;
                Ok(Some(self.mul_scalar(ones, E::from_f64(c))?))
            }
        }
    }

    /// `d` summed over the axes it has beyond `like`'s shape (a broadcast operand's gradient),
    /// or broadcast up to it where it has fewer.
    pub(crate) fn sum_to(&mut self, mut d: NodeId, like: NodeId) -> Result<NodeId> {
        let target = self.node_shape(like);
        while self.node_shape(d).rank() > target.rank() {
            d = self.sum_axis(d, 0)?;
        }
        for axis in 0..target.rank() {
            let have = self.node_shape(d);
            if have.rank() == target.rank() && target.dims()[axis] == 1 && have.dims()[axis] != 1 {
                d = self.sum_axis_keepdim(d, axis)?;
            }
        }
        if self.node_shape(d) != target {
            d = self.broadcast_like(d, like)?;
        }
        Ok(d)
    }

    /// `g` broadcast to `like`'s shape.
    pub(crate) fn broadcast_like(&mut self, g: NodeId, like: NodeId) -> Result<NodeId> {
        let ones = self.ones_like(like)?;
        self.mul(ones, g)
    }

    /// The gradient `g` of a sum or mean along `axis` broadcast back along it.
    fn unreduce(&mut self, g: NodeId, x: NodeId, axis: usize, keep_dim: bool) -> Result<NodeId> {
        let g = if keep_dim {
            g
        } else {
            let mut dims = self.node_shape(x).dims().to_vec();
            dims[axis] = 1;
            self.reshape(g, &dims)?
        };
        self.broadcast_like(g, x)
    }

    /// Ones in `x`'s shape, as a node that follows `x` when the tape is replayed: `x⁰` of
    /// `x` detached (1 for every value, NaN and infinities included), so no input is added.
    pub(crate) fn ones_like(&mut self, x: NodeId) -> Result<NodeId> {
        let d = self.detach(x)?;
        self.powf(d, E::zero())
    }

    /// Zeros in `x`'s shape.
    pub(crate) fn zeros_like(&mut self, x: NodeId) -> Result<NodeId> {
        let ones = self.ones_like(x)?;
        self.mul_scalar(ones, E::zero())
    }

    pub(crate) fn node_shape(&self, id: NodeId) -> Shape {
        self.nodes[id.index()].shape
    }

    /// The Hessian-vector products `H·v` of `loss` with respect to `wrt`, `v` given as nodes of
    /// the same shapes (one per entry of `wrt`), recorded: the gradient of `Σ ⟨∇loss, v⟩`.
    /// Costs about two sweeps more than a gradient, never the Hessian itself.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// // loss = Σ x³: H = diag(6x)
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 2.0])?;
    /// let cube = tape.powf(x, 3.0)?;
    /// let loss = tape.sum(cube)?;
    /// let v = tape.input(array![1.0, 1.0])?;
    /// let hv = tape.hvp(loss, &[x], &[v])?;
    /// assert_eq!(tape.data(hv[0])?, &[6.0, 12.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hvp(&mut self, loss: NodeId, wrt: &[NodeId], v: &[NodeId]) -> Result<Vec<NodeId>> {
        if v.len() != wrt.len() {
            return Err(Error::WrongArity {
                op: "hvp".to_string(),
                expected: wrt.len(),
                got: v.len(),
            });
        }
        let grads = self.record_grad(loss, wrt)?;
        let dot = self.inner_product(&grads, v, "hvp")?;
        self.record_grad(dot, wrt)
    }

    /// `Σᵢ sum(aᵢ · bᵢ)`, each pair of one shape: a scalar node.
    fn inner_product(&mut self, a: &[NodeId], b: &[NodeId], op: &'static str) -> Result<NodeId> {
        self.check_ids(b)?;
        let mut total = None;
        for (&x, &y) in a.iter().zip(b) {
            let (sx, sy) = (self.node_shape(x), self.node_shape(y));
            if sx != sy {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: sx,
                    rhs: sy,
                });
            }
            let prod = self.mul(x, y)?;
            let s = self.sum(prod)?;
            total = Some(match total {
                Some(t) => self.add(t, s)?,
                None => s,
            });
        }
        total.ok_or(Error::WrongArity {
            op: op.to_string(),
            expected: 1,
            got: 0,
        })
    }

    /// The Jacobian-vector product (forward mode) of `output` with respect to `wrt` along the
    /// tangents (nodes of `wrt`'s shapes), recorded, by the double-VJP trick: the VJP with a
    /// cotangent `u` is linear in `u`, and the gradient of `⟨VJP(u), t⟩` with respect to `u`
    /// is `J·t`.
    pub fn jvp(&mut self, output: NodeId, wrt: &[NodeId], tangents: &[NodeId]) -> Result<NodeId> {
        if tangents.len() != wrt.len() {
            return Err(Error::WrongArity {
                op: "jvp".to_string(),
                expected: wrt.len(),
                got: tangents.len(),
            });
        }
        self.check_ids(&[output])?;
        let shape = self.node_shape(output);
        // Any value serves: the product is linear in `u`.
        let u = self.input(ArrayD::<E>::zeros(IxDyn(shape.dims())))?;
        self.retain_grad(u)?;
        let vjp = self.record_vjp(output, u, wrt)?;
        let dot = self.inner_product(&vjp, tangents, "jvp")?;
        Ok(self.record_grad(dot, &[u])?[0])
    }

    /// The Jacobian of `output` with respect to `wrt`, as a matrix of `output`'s element count
    /// by `wrt`'s (row-major order both ways): one recorded sweep per output element, each
    /// rewound after, so for small problems only. An output no gradient reaches (the gradient
    /// of a piecewise-linear loss, say) does not depend on `wrt`: its Jacobian is zeros.
    pub fn jacobian(&mut self, output: NodeId, wrt: NodeId) -> Result<Array2<E>> {
        self.check_ids(&[output, wrt])?;
        let (rows, cols) = (
            self.node_shape(output).numel(),
            self.node_shape(wrt).numel(),
        );
        let dims = self.node_shape(output).dims().to_vec();
        let mut jac = Array2::<E>::zeros((rows, cols));
        if !self.nodes[wrt.index()].requires_grad {
            return Err(Error::NoGradient { id: wrt.raw() });
        }
        if !self.nodes[output.index()].requires_grad {
            // No gradient reaches `output` (a gradient that is constant, as a piecewise-linear
            // function's): it does not depend on `wrt`.
            return Ok(jac);
        }
        let mark = self.mark();
        for r in 0..rows {
            let mut seed = ArrayD::<E>::zeros(IxDyn(&dims));
            seed.as_slice_mut().expect("a new array is contiguous")[r] = E::one();
            let seed = self.input(seed)?;
            let row = self.record_vjp(output, seed, &[wrt])?[0];
            for (c, &v) in self.data(row)?.iter().enumerate() {
                jac[[r, c]] = v;
            }
            self.rewind(mark)?;
        }
        Ok(jac)
    }

    /// The Hessian of the scalar `loss` with respect to `wrt`, as a square matrix of `wrt`'s
    /// element count: the Jacobian of the recorded gradient, for small problems.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// // loss = x₀² x₁: H = [[2x₁, 2x₀], [2x₀, 0]]
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![3.0, 5.0])?;
    /// let x0 = tape.reshape(x, &[2])?;
    /// let sq = tape.mul(x0, x0)?;
    /// let w = tape.input(array![0.0, 1.0])?;
    /// let x1 = tape.mul(x, w)?;
    /// let x1 = tape.sum(x1)?;
    /// let picked = tape.input(array![1.0, 0.0])?;
    /// let x0sq = tape.mul(sq, picked)?;
    /// let x0sq = tape.sum(x0sq)?;
    /// let loss = tape.mul(x0sq, x1)?;
    /// let h = tape.hessian(loss, x)?;
    /// assert_eq!(h, array![[10.0, 6.0], [6.0, 0.0]]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hessian(&mut self, loss: NodeId, wrt: NodeId) -> Result<Array2<E>> {
        self.check_ids(&[loss, wrt])?;
        let mark = self.mark();
        let grad = self.record_grad(loss, &[wrt])?[0];
        let h = self.jacobian(grad, wrt);
        self.rewind(mark)?;
        h
    }
}

/// The tape as a custom op's recorded VJP sees it: handles are positions in `handles`.
struct TapeRecorder<'t, E: Float> {
    tape: &'t mut Tape<E>,
    handles: Vec<NodeId>,
}

impl<E: Float> VjpRecorder<E> for TapeRecorder<'_, E> {
    fn record(&mut self, op: Op, inputs: &[RecordedNode]) -> Result<RecordedNode> {
        let ids = inputs
            .iter()
            .map(|h| {
                self.handles
                    .get(h.index())
                    .copied()
                    .ok_or(Error::UnknownNode {
                        id: h.index() as u32,
                        len: self.handles.len(),
                    })
            })
            .collect::<Result<Vec<NodeId>>>()?;
        let id = self.tape.record(op, &ids)?;
        self.handles.push(id);
        Ok(RecordedNode::new(self.handles.len() - 1))
    }
}
