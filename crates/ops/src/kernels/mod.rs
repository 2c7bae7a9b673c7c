//! The arithmetic behind the ops, on row-major slices.
//!
//! Every kernel is deterministic: each output element is computed by one thread in one fixed
//! order, so results are bit-identical whatever the number of threads.

pub mod batched_matmul;
pub mod binary;
pub mod broadcast_to;
#[cfg(test)]
mod check;
pub mod class_loss;
pub mod concat;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod extrema;
pub mod indexing;
pub mod lanes;
pub mod layout;
pub mod logsumexp;
pub mod loss;
pub mod matmul;
pub mod moments;
pub mod norm;
pub mod pad;
pub mod pointwise_loss;
pub mod pool;
pub mod product;
pub mod reduce;
pub mod reduction;
pub mod scatter;
pub mod select;
pub mod slice;
pub mod softmax;
pub mod softmax_axis;
pub mod unary;
mod walk;
