//! The counting global allocator of every allocation test and of the benchmarks' W5:
//! `stats_alloc`'s instrumented system allocator, installed by [`count_allocations!`](crate::count_allocations), so that
//! no test writes an `unsafe impl GlobalAlloc` of its own.
//!
//! ```
//! use wengert_testkit::alloc::allocations;
//!
//! wengert_testkit::count_allocations!();
//!
//! fn main() {
//!     let before = allocations();
//!     let grown: Vec<u64> = (0..1000).collect();
//!     assert!(allocations() > before);
//!     let before = allocations();
//!     let sum: u64 = grown.iter().sum();
//!     assert_eq!((sum, allocations() - before), (499_500, 0));
//! }
//! ```
//!
//! The count is the whole process's: a test binary that counts holds one test (or runs its
//! tests in turn), so that no other thread allocates meanwhile.

pub use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};

/// Installs the counting allocator as the binary's global allocator (once per binary, at the
/// top level of its root module).
#[macro_export]
macro_rules! count_allocations {
    () => {
        #[global_allocator]
        static WENGERT_TESTKIT_COUNTING_ALLOCATOR: &$crate::alloc::StatsAlloc<
            ::std::alloc::System,
        > = &$crate::alloc::INSTRUMENTED_SYSTEM;
    };
}

/// Allocations (fresh and grown) made by the whole process so far, counted only when
/// [`count_allocations!`](crate::count_allocations) installed the allocator (0 otherwise).
pub fn allocations() -> u64 {
    let stats = INSTRUMENTED_SYSTEM.stats();
    (stats.allocations + stats.reallocations) as u64
}
