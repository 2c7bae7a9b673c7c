//! wengert's benchmarks: the reference workloads W1..W7 (`cargo xtask bench`) and the pieces the
//! criterion benchmarks share.
//!
//! - [`shared`]: the workloads' constants, seeded data, the digits set, the JSON line format;
//!   also compiled into the baselines and peers programs, which live outside the workspace.
//! - [`mlp`]: the W2/W4 network on the tape and by hand on the same kernels (`no-tape`).
//! - [`chain`]: W3's chain of tiny ops.
//! - [`cnn`]: W6's small CNN on the tape, and its convolutions' products alone.
//! - [`workloads`]: W2..W4 and W6 for the engines built here; [`memory`]: W5 (W1 runs in the
//!   baselines program, `benches/baselines`, all its engines in one process).
//! - [`record`], [`table`]: the records of `--json`, checked, and the printed table.
//! - [`scaling`]: the cost model of a data-parallel step (docs/SCALING.md), fitted to W7.
//! - [`w7`]: W7, W2's step data-parallel over MPI (the `mpi` feature; one process per rank).
//! - W5's allocations per step are counted by `wengert_testkit::alloc`, the allocator every
//!   allocation test uses.

#![deny(missing_docs)]

pub mod chain;
pub mod cnn;
pub mod hvp;
pub mod memory;
pub mod mlp;
pub mod record;
pub mod scaling;
pub mod shared;
pub mod table;
pub mod w7;
pub mod workloads;

#[cfg(test)]
mod tests {
    /// The reference workloads quoted in docs/BENCHMARKS.md are, line for line, the copy of the
    /// team's reference kept in benches/WORKLOADS.md.
    #[test]
    fn workloads_in_the_docs_match_the_copy() {
        let copy = include_str!("../WORKLOADS.md");
        let docs = include_str!("../../docs/BENCHMARKS.md");
        let quoted: Vec<&str> = docs
            .lines()
            .skip_while(|l| *l != "> # Reference workloads")
            .take_while(|l| l.starts_with('>'))
            .map(|l| l.strip_prefix("> ").unwrap_or(l.trim_start_matches('>')))
            .collect();
        let copy: Vec<&str> = copy.lines().collect();
        assert_eq!(quoted, copy);
    }
}
