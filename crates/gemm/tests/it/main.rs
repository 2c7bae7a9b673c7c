//! Integration tests of wengert-gemm: products against a naive f64 reference on every layout,
//! across every blocking boundary, bit-identical on any thread count, and the edge cases.
//! (The allocation count lives in its own binary, `tests/alloc.rs`: its counting allocator must
//! not see other tests' threads.)

mod bias;
mod common;
mod determinism;
mod edges;
mod in_place;
mod kernels;
mod large;
mod narrow;
mod reference;
