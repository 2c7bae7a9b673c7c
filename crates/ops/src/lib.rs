//! The operations of wengert: each a forward rule and a vector-Jacobian (VJP) rule.
//!
//! This crate is the leaf of the engine. It knows nothing of the tape, of files or of
//! training: it turns input arrays into an output array ([`Op::forward`]) and an output's
//! gradient into its inputs' gradients ([`Op::vjp`]), checking shapes first
//! ([`Op::output_shape`]).
//!
//! - [`Op`]: the closed set of built-in ops, held as data; the elementwise ones are
//!   [`UnaryOp`] and [`BinaryOp`], each op a row of a table with its forward rule beside its
//!   derivative rule.
//! - [`Arith`]: the arithmetic those rules are written in ([`Num`] runs them on floats).
//! - [`CustomOp`]: the trait for ops users define themselves.
//! - [`Float`]: the element types (`f32`, `f64`).
//! - [`Shape`], [`TensorRef`]: shapes held inline and borrowed row-major arrays;
//!   [`Shapes`] and [`Operands`], an op's inputs read by position.
//! - [`Error`]: every failure as a typed value.
//! - [`gemm`]: the parallel, deterministic matrix product every matmul runs on, for a product
//!   by hand on the engine's own kernel. The other kernels are the ops' business.
//!
//! ```
//! use wengert_ops::{Op, Shape, TensorRef, UnaryOp};
//!
//! let relu = Op::Unary(UnaryOp::Relu);
//! let s = Shape::new(&[2]).unwrap();
//! let x = [-1.0f64, 2.0];
//! let out_shape = relu.output_shape(&[&s]).unwrap();
//! let mut y = vec![0.0; out_shape.numel()];
//! relu.forward(&[TensorRef::new(&s, &x).unwrap()], &mut y).unwrap();
//! assert_eq!(y, [0.0, 2.0]);
//!
//! // The VJP adds dy·[x > 0] into the input's gradient.
//! let mut dx = vec![0.0; 2];
//! let yref = TensorRef::new(&out_shape, &y).unwrap();
//! relu.vjp(&[TensorRef::new(&s, &x).unwrap()], yref, &[1.0, 1.0], 0, &mut dx);
//! assert_eq!(dx, [0.0, 1.0]);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod arith;
mod custom;
mod elementwise;
mod error;
mod float;
mod folded;
// Not part of the API (users reach the arithmetic through `Op`): public only, and hidden, so
// that this crate's integration tests can test the kernels not yet wired into `Op`
// (`tests/it/pending_kernels.rs`).
#[doc(hidden)]
pub mod kernels;
mod loss_op;
mod op;
mod operands;
mod reduce_op;
mod shape;
mod tensor;

pub use arith::{Arith, Num, select};
pub use custom::{CustomOp, RecordedNode, VjpRecorder};
pub use elementwise::{BinaryOp, UnaryOp};
pub use error::{Error, Result};
pub use float::Float;
pub use folded::FoldedUpdate;
pub use kernels::class_loss::{CrossEntropyOptions, Targets};
pub use kernels::conv::{Conv1dArgs, Conv2dArgs};
pub use kernels::matmul::{gemm, try_gemm};
pub use kernels::pointwise_loss::Distance;
pub use kernels::pool::Pool2dArgs;
pub use kernels::reduction::Reduction;
pub use kernels::slice::SliceAxis;
pub use loss_op::LossOp;
pub use op::Op;
pub use operands::{Operands, Shapes};
pub use reduce_op::ReduceOp;
pub use shape::{MAX_RANK, Shape};
pub use tensor::TensorRef;
pub use wengert_gemm::stay_awake;
