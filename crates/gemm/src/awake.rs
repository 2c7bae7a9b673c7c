//! Keeping a pool's other threads awake between products, so that a product's fork finds them
//! running rather than asleep.
//!
//! rayon puts an idle worker to sleep after a few rounds of looking for work, and waking it
//! again costs 45-115 µs on a 2-vCPU KVM guest (`PERFORMANCE.md`): more than a product of a
//! small training step. A step runs its products with serial work between them (the loss, the
//! last narrow layer, the update), long enough for the workers to fall asleep, so every step
//! paid that wake-up once or twice. OpenMP's workers, PyTorch's, spin instead.
//!
//! [`stay_awake`] gives every other thread of the pool a job that keeps looking for work
//! (`rayon::yield_now`, which runs any job it finds, a product's half among them) until the
//! body returns. No job is allocated per product: the one broadcast is allocated per call.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a waiting thread spins without finding work before it starts to nap: the gaps
/// between a step's products are well under a millisecond, a pause between epochs or a
/// stalled body is longer, and should not burn the other cores.
const SPIN_FOR: Duration = Duration::from_millis(2);

/// A napping thread's sleep: long enough to leave its core to others, short enough that a
/// product after a long pause still finds it soon.
const NAP: Duration = Duration::from_micros(100);

/// How many unsuccessful looks for work between readings of the clock.
const LOOKS_PER_CLOCK: u32 = 64;

/// Runs `body` on the calling thread while the other threads of the current rayon pool wait
/// for work by spinning instead of sleeping, and returns what it returns.
///
/// For a training loop on a multi-core machine: each parallel product then starts without
/// waking a thread. The waiting threads run any job the pool gets, so nothing waits on them;
/// they nap after 2 ms without work, and stop when `body` returns or unwinds. Results are
/// unchanged (every product computes each element the same way on any thread). Call it from
/// inside the pool the loop runs in (`pool.install`); from outside, it keeps the global pool's
/// threads awake, all of them. With one thread it just calls `body`.
///
/// ```
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let sum = pool.install(|| {
///     wengert_gemm::stay_awake(|| {
///         let a = ndarray::Array2::<f32>::ones((256, 256));
///         let mut c = ndarray::Array2::<f32>::zeros((256, 256));
///         let mut sum = 0.0;
///         for _ in 0..3 {
///             wengert_gemm::gemm(1.0, a.view(), a.view(), 0.0, c.view_mut()).unwrap();
///             sum += c[[0, 0]];
///         }
///         sum
///     })
/// });
/// assert_eq!(sum, 3.0 * 256.0);
/// ```
pub fn stay_awake<R>(body: impl FnOnce() -> R) -> R {
    stay_awake_counted(|_| body())
}

/// [`stay_awake`], handing `body` the number of threads waiting so far (for the tests).
fn stay_awake_counted<R>(body: impl FnOnce(&AtomicUsize) -> R) -> R {
    let waiting = AtomicUsize::new(0);
    if rayon::current_num_threads() < 2 {
        return body(&waiting);
    }
    let done = AtomicBool::new(false);
    let caller = rayon::current_thread_index();
    rayon::in_place_scope(|scope| {
        scope.spawn_broadcast(|_, context| {
            // The caller's own copy is run only when it looks for work: at the end of the
            // scope, or while it waits inside a product, where waiting for `body` would never
            // end.
            if Some(context.index()) != caller {
                waiting.fetch_add(1, Ordering::Relaxed);
                wait_for_work(&done);
            }
        });
        let _stop = StopOnDrop(&done);
        body(&waiting)
    })
}

/// Sets the flag when dropped, on return or unwind alike, so that a panicking body still lets
/// the waiting threads go (the scope waits for them before it passes the panic on).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs whatever work the pool has until `done`: spinning while work came within [`SPIN_FOR`],
/// napping after.
fn wait_for_work(done: &AtomicBool) {
    let mut last_work = Instant::now();
    let mut looks = 0u32;
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            looks = 0;
            last_work = Instant::now();
            continue;
        }
        looks += 1;
        if looks < LOOKS_PER_CLOCK {
            std::hint::spin_loop();
            continue;
        }
        looks = 0;
        if last_work.elapsed() >= SPIN_FOR {
            std::thread::sleep(NAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn the_body_runs_once_on_the_calling_thread_and_its_value_is_returned() {
        let pool = pool(3);
        let (value, thread) = pool.install(|| {
            let caller = rayon::current_thread_index();
            let value = stay_awake(|| (41 + 1, rayon::current_thread_index()));
            assert_eq!(value.1, caller);
            value
        });
        assert_eq!(value, 42);
        assert!(thread.is_some());
    }

    #[test]
    fn every_other_thread_waits_while_the_body_runs_and_runs_its_parallel_work() {
        let pool = pool(3);
        let (waited, ran_elsewhere) = pool.install(|| {
            let caller = rayon::current_thread_index();
            stay_awake_counted(|waiting| {
                // A liveness bound, not a timing: the two broadcast jobs start within
                // microseconds; a body whose threads never wait would hit it.
                let deadline = Instant::now() + Duration::from_secs(20);
                while waiting.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                // The waiting threads take the body's forked halves (no thread is idle in
                // rayon's sense, so nothing else could).
                let ran_elsewhere = (0..100).any(|_| {
                    let (_, other) = rayon::join(
                        || std::thread::sleep(Duration::from_micros(100)),
                        rayon::current_thread_index,
                    );
                    other != caller
                });
                (waiting.load(Ordering::Relaxed), ran_elsewhere)
            })
        });
        assert_eq!(waited, 2);
        assert!(ran_elsewhere);
    }

    #[test]
    fn a_panicking_body_lets_the_waiting_threads_go_and_the_panic_through() {
        let pool = pool(2);
        let caught =
            pool.install(|| std::panic::catch_unwind(|| stay_awake(|| panic!("the body's panic"))));
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the body's panic"));
        // The pool is usable afterwards: no thread is left spinning on a job.
        assert_eq!(pool.install(|| rayon::join(|| 1, || 2)), (1, 2));
    }

    #[test]
    fn nested_calls_and_calls_from_outside_any_pool_return() {
        let pool = pool(2);
        let inner = pool.install(|| stay_awake(|| stay_awake(|| rayon::join(|| 3, || 4))));
        assert_eq!(inner, (3, 4));
        assert_eq!(stay_awake(|| 5), 5);
    }

    #[test]
    fn one_thread_just_calls_the_body() {
        assert_eq!(pool(1).install(|| stay_awake(|| 6)), 6);
    }
}
