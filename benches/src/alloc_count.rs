//! A global allocator that counts heap allocations, for W5's allocations per step.
//!
//! Install it in a binary with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`
//! and read [`allocations`] before and after the code measured.

#![allow(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; every method forwards to the system allocator"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting every `alloc`, `alloc_zeroed` and `realloc` call.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

/// The number of allocations (including reallocations) made so far by the whole process.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

// SAFETY: each method forwards its arguments unchanged to `System`, which upholds GlobalAlloc's
// contract; the counter is an atomic that never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds `new_size`'s rules.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static COUNTING: CountingAlloc = CountingAlloc;

    #[test]
    fn allocations_are_counted_and_memory_stays_usable() {
        let before = allocations();
        let mut v: Vec<u64> = Vec::with_capacity(4);
        v.extend([1, 2, 3, 4]);
        v.push(5); // grows: a realloc
        let z = vec![0u8; 1000]; // alloc_zeroed
        let counted = allocations() - before;
        // Other tests run on other threads and may allocate too: at least ours were counted.
        assert!(counted >= 3, "{counted}");
        assert_eq!(v.iter().sum::<u64>(), 15);
        assert!(z.iter().all(|&b| b == 0));
        let quiet_before = allocations();
        let sum: u64 = v.iter().map(|x| x * 2).sum();
        assert_eq!(sum, 30);
        assert!(allocations() >= quiet_before);
    }
}
