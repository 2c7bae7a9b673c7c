//! wengert: reverse-mode automatic differentiation on a tape (a Wengert list).
//!
//! A forward pass records each operation on a [`Tape`]; [`Tape::backward`] walks the tape once
//! in reverse, applying each op's vector-Jacobian product, and returns the gradient of a scalar
//! loss with respect to every parameter. This crate re-exports the engine's public API, so an
//! embedding crate needs this one dependency.
//!
//! - [`Graph`], [`Var`], [`Grads`]: recording with handles, so that a forward pass reads
//!   `x.matmul(&w)?.add(&b)?.relu()?` and a gradient `grads[&w]`.
//! - [`Tape`], [`NodeId`], [`Gradients`]: recording and differentiating by node id.
//! - [`Op`], [`CustomOp`]: the built-in ops and the trait for your own.
//! - [`gradcheck()`], [`gradcheck_custom`]: compare any computation's (or custom op's)
//!   gradients with finite differences.
//! - [`Error`]: every failure, typed; nothing panics on bad input.
//! - [`stay_awake`]: a training loop's body run with the thread pool's other threads kept
//!   awake between matrix products (the [`train::Trainer`] does it itself).
//! - [`io`]: saving and loading tapes, weights and checkpoints.
//! - [`train`]: models, optimisers, data and the training loop (the `wengert-train` crate).
//!
//! ```
//! use ndarray::array;
//! use wengert::Tape;
//!
//! # fn main() -> wengert::Result<()> {
//! // One step of gradient descent on a tiny two-layer network.
//! let mut tape = Tape::<f32>::new();
//! let x = tape.input(array![[0.0f32, 1.0], [1.0, 1.0]])?;
//! let labels = tape.labels(&[1, 0])?;
//! let w1 = tape.parameter(array![[0.5f32, -0.3, 0.1], [0.2, 0.4, -0.6]])?;
//! let b1 = tape.parameter(array![0.0f32, 0.0, 0.0])?;
//! let w2 = tape.parameter(array![[0.3f32, -0.2], [-0.5, 0.6], [0.1, 0.1]])?;
//!
//! let z1 = tape.matmul(x, w1)?;
//! let z1 = tape.add(z1, b1)?;
//! let h = tape.relu(z1)?;
//! let logits = tape.matmul(h, w2)?;
//! let loss = tape.cross_entropy(logits, labels)?;
//!
//! let grads = tape.backward(loss)?;
//! assert_eq!(grads.get(w1).unwrap().shape(), &[2, 3]);
//! assert!(tape.item(loss)? > 0.0);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub use wengert_ops::{
    Arith, BinaryOp, Conv1dArgs, Conv2dArgs, CrossEntropyOptions, CustomOp, Distance, Error, Float,
    LossOp, MAX_RANK, Num, Op, Operands, Pool2dArgs, ReduceOp, Reduction, Result, Shape, Shapes,
    SliceAxis, Targets, TensorRef, UnaryOp, kernels, select, stay_awake,
};
pub use wengert_tape::gradcheck::{GradcheckMethod, Mismatch};
pub use wengert_tape::{
    CustomOpId, GradcheckOptions, GradcheckReport, Gradients, Grads, Graph, IntoValue, Mark,
    NodeId, NodeKind, Shaped, Tape, Var, gradcheck, gradcheck_custom,
};

/// Saving and loading: tapes, weights (also as safetensors) and checkpoints, validated on load
/// and written atomically.
pub use wengert_io as io;
/// Training: layers, losses, optimisers, data sets and loaders, and the [`train::Trainer`] loop.
pub use wengert_train as train;

/// The `ndarray` version wengert is built on, re-exported so that embedders use the same one.
pub use ndarray;

// The README's examples are compiled and run as doc tests, so that they stay true. The file is
// the workspace README, linked into the package so that the published crate holds it too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The guide's snippets likewise (`docs/GUIDE.md`, linked into the package the same way).
#[cfg(doctest)]
#[doc = include_str!("../GUIDE.md")]
struct GuideDoctests;
