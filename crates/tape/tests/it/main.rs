//! Integration tests of the tape: every op's gradient against finite differences, the f32 path
//! against the f64 one, exact edge cases, errors, matmul against a naive product, whole
//! networks (an MLP, a million-node chain, determinism across thread counts) and a report.
//!
//! `cargo test -p wengert-tape --test it report:: -- --nocapture` prints the per-op table.

#[macro_use]
mod strategies;
mod cases;
mod edge_cases;
mod errors;
mod final_grads;
mod fold;
mod gradcheck_ops;
mod gradgrad;
mod handles;
mod higher_order;
mod higher_order_rules;
mod ids;
mod layers;
mod leaves;
mod linear;
mod losses;
mod matmul;
mod network;
mod persistent;
mod pointwise;
mod precision;
mod reductions;
mod regressions;
mod report;
mod shape_ops;
mod util;
