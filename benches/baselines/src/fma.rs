//! The machine's fused multiply-add peak, measured rather than derived.
//!
//! The loop is portable Rust: `f32::mul_add` on 12 independent accumulators of 8 lanes each,
//! compiled for AVX and FMA (`#[target_feature]`, chosen at run time, as the engines choose
//! their kernels: the package is built without a target-cpu flag, like wengert). LLVM keeps
//! each accumulator in one 256-bit register and emits one `vfmadd` per accumulator and
//! iteration (check with `objdump -d` on the binary: the hot loop is 12 `vfmadd…ps ymm` and a
//! counter). Twelve chains cover the FMA latency (4 cycles) times the FMA pipes (2) of current
//! x86 cores, so the loop runs at the pipes' throughput: the peak any sgemm can reach. Without
//! FMA, `mul_add` is a libm call and the loop measures nothing useful: [`available`] says so.

use std::hint::black_box;

/// Lanes of one accumulator: one 256-bit register of f32.
const LANES: usize = 8;
/// Independent accumulators.
const CHAINS: usize = 12;
/// Loop iterations of one timed block per thread: about 4 ms, long beside the cost of handing
/// the block to a pool's threads, short beside W1's budget when it takes turns with products.
pub const ITERS: usize = 2_000_000;

/// Whether the CPU has the fused multiply-add the loop measures.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// Runs `iters` rounds of `acc = acc·a + b` on every lane of every accumulator; returns the sum
/// of the accumulators so the work cannot be optimised away.
pub fn fma_block(iters: usize, start: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: `fma_block_avx` only requires the CPU features it is compiled for, AVX and
        // FMA, and `available` has just detected both.
        return unsafe { fma_block_avx(iters, start) };
    }
    fma_loop(iters, start)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
fn fma_block_avx(iters: usize, start: f32) -> f32 {
    fma_loop(iters, start)
}

#[inline(always)]
fn fma_loop(iters: usize, start: f32) -> f32 {
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

/// Floating-point operations of one block (a multiply and an add per FMA) on one thread.
pub fn block_flops(iters: usize) -> f64 {
    (iters * CHAINS * LANES * 2) as f64
}

/// One block of [`ITERS`] on every thread of `pool` at once.
pub fn run_on(pool: &rayon::ThreadPool) {
    black_box(pool.broadcast(|ctx| fma_block(ITERS, ctx.index() as f32 * 1e-3)));
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
        assert_eq!(fma_loop(1000, 0.5), total);
    }
}
