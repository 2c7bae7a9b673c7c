//! Integration tests of the tape: every op's gradient against finite differences, the f32 path
//! against the f64 one, exact edge cases, errors, matmul against a naive product, and whole
//! networks (an MLP, a million-node chain, determinism across thread counts).
//!
//! `cargo test -p wengert-tape -- --nocapture report` prints the per-op gradient-check table.

#[macro_use]
mod strategies;
mod cases;
mod gradcheck_ops;
mod precision;
