//! Integration tests of the ops crate's kernels, through their public API.

mod gemm;
mod model_kernels;
mod overwrite;
mod pending_kernels;
