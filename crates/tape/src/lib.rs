//! The tape of wengert: record a computation, then sweep it backwards for gradients.
//!
//! - [`Graph`] and [`Var`]: the same tape behind handles, so that a forward pass reads
//!   `x.matmul(&w)?.add(&b)?.relu()?` and `(&a + &b)?`; [`Grads`] reads `grads[&w]`.
//! - [`Tape`]: an append-only arena of nodes addressed by [`NodeId`]s. Recording an op checks
//!   shapes, runs the forward rule and appends a node; [`Tape::backward`] walks the arena once in
//!   reverse and applies each op's vector-Jacobian rule.
//! - [`Gradients`]: what a sweep returns, read by node id.
//! - [`Tape::record_grad`]: the sweep recorded on the tape, so that a gradient can be
//!   differentiated again ([`Tape::hvp`], [`Tape::jvp`], [`Tape::jacobian`], [`Tape::hessian`]).
//! - [`IntoValue`]: what a leaf accepts (owned arrays are moved in, borrowed ones copied).
//! - [`gradcheck()`]: checks a computation's gradients against central finite differences;
//!   [`gradcheck_custom`] a custom op's.
//!
//! ```
//! use ndarray::array;
//! use wengert_tape::Tape;
//!
//! # fn main() -> wengert_tape::Result<()> {
//! // loss = mean((tanh(x·w + b) - y)²)
//! let mut tape = Tape::<f64>::new();
//! let x = tape.input(array![[0.0, 1.0], [1.0, 0.0]])?;
//! let y = tape.input(array![[1.0], [0.0]])?;
//! let w = tape.parameter(array![[0.3], [-0.2]])?;
//! let b = tape.parameter(array![0.1])?;
//! let xw = tape.matmul(x, w)?;
//! let z = tape.add(xw, b)?;
//! let h = tape.tanh(z)?;
//! let loss = tape.mse(h, y)?;
//!
//! let grads = tape.backward(loss)?;
//! assert_eq!(grads.get(w).unwrap().shape(), &[2, 1]);
//! assert_eq!(grads.get(b).unwrap().shape(), &[1]);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backward;
mod fold;
mod grad;
mod grad_conv;
mod grad_rules;
pub mod gradcheck;
mod id;
mod node;
mod ops;
mod record_arith;
mod source;
mod tape;
mod var;
mod var_grad;

pub use backward::Gradients;
pub use gradcheck::{GradcheckOptions, GradcheckReport, gradcheck, gradcheck_custom};
pub use id::NodeId;
pub use node::{CustomOpId, NodeKind};
pub use source::{IntoValue, Shaped};
pub use tape::{Mark, Tape};
pub use var::{Grads, Graph, Var};
pub use wengert_ops::{
    BinaryOp, Conv1dArgs, Conv2dArgs, CrossEntropyOptions, CustomOp, Distance, Error, Float,
    FoldedUpdate, LossOp, Op, Pool2dArgs, RecordedNode, ReduceOp, Reduction, Result, Shape,
    SliceAxis, Targets, UnaryOp, VjpRecorder,
};
