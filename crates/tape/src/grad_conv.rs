//! The recorded VJPs of the convolutions. A convolution y = conv(x, w) is bilinear, so its
//! VJPs are linear in each operand: the input's is [`Op::Conv2dInputGrad`] (a transposed
//! convolution), the weight's [`Op::Conv2dWeightGrad`], ops whose own VJPs are again
//! convolutions and each other (in `grad.rs`), which closes the set at every order.
//! `conv1d` is `conv2d` on a height of 1, reached through reshapes, which are exact.
//!
//! [`Op::Conv2dInputGrad`]: wengert_ops::Op::Conv2dInputGrad
//! [`Op::Conv2dWeightGrad`]: wengert_ops::Op::Conv2dWeightGrad

use wengert_ops::{Conv1dArgs, Conv2dArgs, Float, Result};

use crate::{NodeId, Tape};

impl<E: Float> Tape<E> {
    /// y = conv(x, w) + b, channels on axis 1: db = Σ dy over every other axis.
    pub(crate) fn conv_bias_grad(&mut self, g: NodeId) -> Result<NodeId> {
        let mut d = self.sum_axis(g, 0)?;
        while self.node_shape(d).rank() > 1 {
            d = self.sum_axis(d, 1)?;
        }
        Ok(d)
    }

    /// y = conv1d(x, w) + b through input `k`: conv2d's rules on a height of 1.
    pub(crate) fn conv1d_vjp(
        &mut self,
        args: Conv1dArgs,
        (x, w, g): (NodeId, NodeId, NodeId),
        k: usize,
    ) -> Result<NodeId> {
        if k == 2 {
            return self.conv_bias_grad(g);
        }
        let args = Conv2dArgs {
            stride: [1, args.stride],
            padding: [0, args.padding],
            dilation: [1, args.dilation],
            groups: args.groups,
        };
        let g4 = self.with_unit_height(g)?;
        let x4 = self.with_unit_height(x)?;
        let w4 = self.with_unit_height(w)?;
        let (d, like) = if k == 0 {
            (self.conv2d_input_grad(g4, w4, x4, args)?, x)
        } else {
            (self.conv2d_weight_grad(x4, g4, w4, args)?, w)
        };
        self.reshape(d, self.node_shape(like).dims())
    }

    /// A 1-D convolution's operand `[A, B, L]` as `[A, B, 1, L]`.
    fn with_unit_height(&mut self, x: NodeId) -> Result<NodeId> {
        let mut dims = self.node_shape(x).dims().to_vec();
        dims.insert(dims.len() - 1, 1);
        self.reshape(x, &dims)
    }
}
