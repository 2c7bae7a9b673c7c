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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a waiting thread spins without finding work before it starts to nap: the gaps
/// between a step's products are well under a millisecond.
const SPIN_FOR: Duration = Duration::from_millis(2);

/// A napping thread's sleep: long enough to leave its core to others, short enough that a
/// product after a pause still finds it soon.
const NAP: Duration = Duration::from_micros(100);

/// After this long without work a waiting thread goes back to rayon (which lets it sleep):
/// a pause this long (an epoch's end, I/O) costs far more than one wake-up. It also bounds
/// the one way a waiting job can stall other work: rayon may run it on top of a job that
/// another thread waits for, where it would otherwise wait for `body` forever.
const IDLE_LIMIT: Duration = Duration::from_millis(20);

/// How many unsuccessful looks for work between readings of the clock.
const LOOKS_PER_CLOCK: u32 = 64;

/// Set while a call keeps threads awake: one call at a time does (see [`stay_awake`]).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Runs `body` on the calling thread while the other threads of the current rayon pool wait
/// for work by spinning instead of sleeping, and returns what it returns.
///
/// For a training loop on a multi-core machine: each parallel product then starts without
/// waking a thread. The waiting threads run any job the pool gets, so nothing waits on them;
/// they nap after 2 ms without work and go back to rayon after 20 ms (call it again after a
/// longer pause: wengert-train's `Trainer` calls it once per epoch), and stop when `body`
/// returns or unwinds. Results are unchanged (every product computes each element the same
/// way on any thread).
///
/// It only acts on a thread of a pool of more than one (`pool.install`): from outside any
/// pool, or on one thread, it just calls `body`. One call acts at a time in the process: a
/// call made while another is active (nested, or from another thread) just calls `body`, since
/// two bodies whose waiting jobs each ran on top of the other's work would stall each other.
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
    let waiting = Arc::new(AtomicUsize::new(0));
    let caller = match rayon::current_thread_index() {
        Some(index) if rayon::current_num_threads() > 1 => index,
        _ => return body(&waiting),
    };
    if ACTIVE
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return body(&waiting);
    }
    let done = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(&done);
    {
        let (done, waiting) = (Arc::clone(&done), Arc::clone(&waiting));
        // Not scoped: the call never waits for the other threads to take their copies (one
        // may be busy outside rayon); a copy taken after `body` returned sees `done` and ends.
        rayon::spawn_broadcast(move |context| {
            // The caller's own copy runs only when it looks for work: while it waits inside a
            // product, where waiting for `body` would never end, or after `body`.
            if context.index() != caller {
                waiting.fetch_add(1, Ordering::Relaxed);
                wait_for_work(&done);
            }
        });
    }
    body(&waiting)
}

/// Ends the call when dropped, on return or unwind alike: the waiting threads stop, and the
/// next call may act.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        ACTIVE.store(false, Ordering::Release);
    }
}

/// Runs whatever work the pool has until `done` or [`IDLE_LIMIT`] without any: spinning while
/// work came within [`SPIN_FOR`], napping after.
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
        let idle = last_work.elapsed();
        if idle >= IDLE_LIMIT {
            return;
        }
        if idle >= SPIN_FOR {
            std::thread::sleep(NAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One call acts at a time in the process: the tests that watch one acting take turns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn turn() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// Waits (a liveness bound, not a timing: the broadcast jobs start within microseconds)
    /// until `count` threads wait, and returns how many do.
    fn until_waiting(waiting: &AtomicUsize, count: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while waiting.load(Ordering::Relaxed) < count && Instant::now() < deadline {
            std::thread::yield_now();
        }
        waiting.load(Ordering::Relaxed)
    }

    #[test]
    fn the_body_runs_once_on_the_calling_thread_and_its_value_is_returned() {
        let _turn = turn();
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
        let _turn = turn();
        let pool = pool(3);
        let (waited, ran_elsewhere) = pool.install(|| {
            let caller = rayon::current_thread_index();
            stay_awake_counted(|waiting| {
                let waited = until_waiting(waiting, 2);
                // The waiting threads take the body's forked halves (no thread is idle in
                // rayon's sense, so nothing else could).
                let ran_elsewhere = (0..100).any(|_| {
                    let (_, other) = rayon::join(
                        || std::thread::sleep(Duration::from_micros(100)),
                        rayon::current_thread_index,
                    );
                    other != caller
                });
                (waited, ran_elsewhere)
            })
        });
        assert_eq!(waited, 2);
        assert!(ran_elsewhere);
    }

    #[test]
    fn a_panicking_body_lets_the_waiting_threads_go_and_the_next_call_act() {
        let _turn = turn();
        let pool = pool(2);
        let caught =
            pool.install(|| std::panic::catch_unwind(|| stay_awake(|| panic!("the body's panic"))));
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the body's panic"));
        // The pool works afterwards, and the next call keeps its other thread waiting.
        assert_eq!(pool.install(|| rayon::join(|| 1, || 2)), (1, 2));
        let waited = pool.install(|| stay_awake_counted(|waiting| until_waiting(waiting, 1)));
        assert_eq!(waited, 1);
    }

    #[test]
    fn a_call_inside_an_active_one_and_calls_from_outside_any_pool_just_run_the_body() {
        let _turn = turn();
        let pool = pool(2);
        let inner = pool.install(|| {
            stay_awake(|| {
                let inner = stay_awake_counted(|waiting| {
                    // Its own count: none of its copies exist.
                    (rayon::join(|| 3, || 4), waiting.load(Ordering::Relaxed))
                });
                assert!(ACTIVE.load(Ordering::Relaxed));
                inner
            })
        });
        assert_eq!(inner, ((3, 4), 0));
        assert_eq!(
            stay_awake_counted(|waiting| (5, waiting.load(Ordering::Relaxed))),
            (5, 0)
        );
        assert!(!ACTIVE.load(Ordering::Relaxed));
    }

    #[test]
    fn two_bodies_in_one_pool_at_once_both_finish() {
        let _turn = turn();
        // Before the one-call rule, each body's waiting job could run on the other body's
        // thread while it waited inside a product, and neither would end.
        let pool = pool(4);
        let product = || {
            let a = ndarray::Array2::<f32>::from_elem((192, 192), 0.5);
            let mut c = ndarray::Array2::<f32>::zeros((192, 192));
            for _ in 0..20 {
                crate::gemm(1.0, a.view(), a.view(), 0.0, c.view_mut()).unwrap();
            }
            c[[0, 0]]
        };
        let (x, y) = pool.install(|| rayon::join(|| stay_awake(product), || stay_awake(product)));
        assert_eq!((x, y), (48.0, 48.0));
    }

    #[test]
    fn one_thread_just_calls_the_body() {
        let _turn = turn();
        assert_eq!(pool(1).install(|| stay_awake(|| 6)), 6);
    }
}
