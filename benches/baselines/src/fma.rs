//! The machine's fused multiply-add peak, measured rather than derived.
//!
//! The loop is portable Rust: `f32::mul_add` on 12 independent accumulators of 8 lanes each.
//! Built with `-C target-cpu=native` (as `cargo xtask bench` builds this package), LLVM keeps
//! each accumulator in one 256-bit register and emits one `vfmadd` per accumulator and
//! iteration (check with `objdump -d` on the binary: the hot loop is 12 `vfmadd…ps ymm`
//! and a counter). Twelve chains cover the FMA latency (4 cycles) times the FMA pipes (2) of
//! current x86 cores, so the loop runs at the pipes' throughput: the peak any sgemm can reach.
//! Without FMA in the target, `mul_add` becomes a libm call and the figure collapses: that is
//! why the target CPU matters here and nowhere else.

use std::hint::black_box;

/// Lanes of one accumulator: one 256-bit register of f32.
const LANES: usize = 8;
/// Independent accumulators.
const CHAINS: usize = 12;
/// Loop iterations of one timed block per thread.
const ITERS: usize = 4_000_000;

/// Runs `iters` rounds of `acc = acc·a + b` on every lane of every accumulator; returns the sum
/// of the accumulators so the work cannot be optimised away.
pub fn fma_block(iters: usize, start: f32) -> f32 {
    let a = black_box(0.999_999_f32);
    let b = black_box(1e-7_f32);
    let mut acc = [[start; LANES]; CHAINS];
    for _ in 0..iters {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = v.mul_add(a, b);
            }
        }
    }
    acc.iter().flatten().sum()
}

/// Floating-point operations of one block (a multiply and an add per FMA).
fn block_flops(iters: usize) -> f64 {
    (iters * CHAINS * LANES * 2) as f64
}

/// GFLOP/s of `threads` threads each running FMA blocks at once: the median over `seconds`.
pub fn peak_gflops(threads: usize, seconds: f64) -> f64 {
    let time = crate::shared::time_median(seconds, || {
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || black_box(fma_block(ITERS, t as f32 * 1e-3)));
            }
        });
    });
    threads as f64 * block_flops(ITERS) / time / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_computes_its_recurrence() {
        // Each lane follows v ← fma(v, a, b) on its own; compare one lane to a scalar loop.
        let mut v = 0.5f32;
        for _ in 0..1000 {
            v = v.mul_add(0.999_999, 1e-7);
        }
        let total = fma_block(1000, 0.5);
        let expected = v * (LANES * CHAINS) as f32;
        assert!(
            (total - expected).abs() <= 1e-5 * expected,
            "{total} {expected}"
        );
        assert_eq!(block_flops(10), 1920.0);
    }
}
