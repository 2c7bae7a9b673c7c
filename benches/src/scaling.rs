//! The cost model of a data-parallel step behind `docs/SCALING.md`: compute from a measured
//! rate, the reduction from a transport's latency and bandwidth, with and without overlapping
//! the reduction with the backward sweep. `wengert-bench scaling W7.json` fits the transport to
//! a W7 run's exchanges, checks the model against the run's steps, and prints the predictions
//! for larger jobs.

use crate::record::Record;

/// How the ranks combine their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// What wengert does today (`MpiReducer`): `log₂ N` rounds, each exchanging the whole
    /// gradient with one partner. Bit-identical for any `N`, but every round moves all of it.
    RecursiveDoubling,
    /// The ring all-reduce (NCCL, Horovod): `2(N - 1)` rounds of `S / N` bytes each.
    Ring,
    /// Recursive halving then doubling (Rabenseifner): `2 log₂ N` rounds moving the ring's
    /// `2(N - 1)/N · S` bytes in all. It pairs ranks in the same tree as recursive doubling, so
    /// each element is still summed in one fixed order: the bit-identical choice at scale.
    HalvingDoubling,
}

/// A link between ranks: the time of an empty message and the rate of a long one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Seconds per message (latency, `α`).
    pub latency_s: f64,
    /// Bytes per second (bandwidth, `β`).
    pub bytes_per_s: f64,
}

impl Link {
    /// A link of `gbit` Gbit/s with `latency_us` µs per message.
    pub fn gbit(gbit: f64, latency_us: f64) -> Link {
        Link {
            latency_s: latency_us * 1e-6,
            bytes_per_s: gbit * 1e9 / 8.0,
        }
    }
}

/// Seconds to all-reduce `bytes` over `ranks` ranks (a power of two) with `algorithm`.
pub fn reduce_seconds(algorithm: Algorithm, ranks: usize, bytes: f64, link: Link) -> f64 {
    if ranks <= 1 {
        return 0.0;
    }
    let n = ranks as f64;
    let rounds = n.log2();
    let (messages, volume) = match algorithm {
        Algorithm::RecursiveDoubling => (rounds, rounds * bytes),
        Algorithm::Ring => (2.0 * (n - 1.0), 2.0 * (n - 1.0) / n * bytes),
        Algorithm::HalvingDoubling => (2.0 * rounds, 2.0 * (n - 1.0) / n * bytes),
    };
    messages * link.latency_s + volume / link.bytes_per_s
}

/// One data-parallel job: a model, how much each rank computes per step, and how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    /// Gradient bytes (4 per f32 parameter).
    pub gradient_bytes: f64,
    /// FLOPs of one rank's forward and backward per step.
    pub flops_per_rank: f64,
    /// FLOP/s a rank sustains.
    pub rank_flops_per_s: f64,
}

/// A step's time, split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTime {
    /// Forward and backward on the rank's share.
    pub compute_s: f64,
    /// The reduction.
    pub reduce_s: f64,
    /// The step without overlap: compute, then reduce.
    pub serial_s: f64,
    /// The step with the reduction overlapping the backward sweep (two thirds of the
    /// compute), in buckets each reduced on its own (so each pays the latency): the forward,
    /// then the longer of the backward and all buckets' reductions but the last, then the
    /// last, which can only start when the sweep ends.
    pub overlapped_s: f64,
}

impl Job {
    /// The step's time on `ranks` ranks over `link`, reduced with `algorithm` in `buckets`
    /// buckets when overlapped.
    pub fn step(&self, ranks: usize, link: Link, algorithm: Algorithm, buckets: usize) -> StepTime {
        let compute_s = self.flops_per_rank / self.rank_flops_per_s;
        let reduce_s = reduce_seconds(algorithm, ranks, self.gradient_bytes, link);
        let backward_s = compute_s * 2.0 / 3.0;
        let buckets = buckets.max(1);
        let bucket_s = reduce_seconds(algorithm, ranks, self.gradient_bytes / buckets as f64, link);
        StepTime {
            compute_s,
            reduce_s,
            serial_s: compute_s + reduce_s,
            overlapped_s: (compute_s - backward_s)
                + backward_s.max((buckets - 1) as f64 * bucket_s)
                + bucket_s,
        }
    }
}

/// The transport a W7 run measured: bandwidth fitted to its `exchange_ms` (one exchange of the
/// whole gradient per `log₂ N` round, recursive doubling), the latency taken as given (one run
/// measures one message size, so it cannot separate the two).
pub fn fit_link(exchange_s: f64, ranks: usize, bytes: f64, assumed_latency_s: f64) -> Link {
    let rounds = (ranks as f64).log2().max(1.0);
    let per_round = exchange_s / rounds;
    let wire = (per_round - assumed_latency_s).max(per_round * 0.1);
    Link {
        latency_s: assumed_latency_s,
        bytes_per_s: bytes / wire,
    }
}

/// W7's figures for `processes` ranks of `threads` threads each, if the run has them.
pub fn w7_record(records: &[Record], processes: u64, threads: u64) -> Option<&Record> {
    records.iter().find(|r| {
        r.workload == "W7"
            && r.threads == threads
            && r.params.get("processes") == Some(&processes)
            && r.params.get("overlap").is_none_or(|&o| o == 0)
    })
}

/// A job as a function of its rank count.
type JobOf<'a> = Box<dyn Fn(usize) -> Job + 'a>;

/// Latency assumed for the loopback fit: one W7 run gives one message size, so the fit takes
/// the shared-memory transport's latency as given (a few µs) and solves for bandwidth.
pub const LOOPBACK_LATENCY_S: f64 = 5e-6;

/// The links of the predictions: 10 Gbit/s Ethernet under TCP (about 25 µs per message) and
/// 100 Gbit/s InfiniBand or RoCE (about 2 µs).
pub const LINKS: [(&str, f64, f64); 2] = [("10 Gbit/s", 10.0, 25.0), ("100 Gbit/s", 100.0, 2.0)];

/// The rank counts of the predictions.
pub const RANKS: [usize; 3] = [8, 64, 512];

/// Gradient buckets of the overlapped predictions (PyTorch DDP's default is 25 MiB; W2's
/// gradient is 2.6 MiB, so this many buckets of a few hundred KiB).
pub const BUCKETS: usize = 8;

/// The model's report on W7 `records` (one run's, plus any `processes=4` record run by hand):
/// the fitted transport, the check against every measured multi-process step, and the
/// predictions. `step_flops(batch)` is the FLOPs of W2's step on `batch` rows.
pub fn report(records: &[Record], step_flops: impl Fn(usize) -> f64) -> Result<String, String> {
    use std::fmt::Write as _;
    let one = w7_record(records, 1, 1).ok_or("no W7 record of 1 process × 1 thread")?;
    let batch = one.params.get("batch").copied().unwrap_or(1024) as usize;
    let rate = step_flops(batch) / (one.figures["ms_per_step"] * 1e-3);
    let two = w7_record(records, 2, 1).ok_or("no W7 record of 2 processes × 1 thread")?;
    let bytes = two.figures["gradient_mib"] * 1024.0 * 1024.0;
    let link = fit_link(
        two.figures["exchange_ms"] * 1e-3,
        2,
        bytes,
        LOOPBACK_LATENCY_S,
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rank rate (W7 1 × 1): {:.1} GFLOP/s; gradient {:.2} MiB; loopback fitted from 2 × 1's \
         exchange ({:.3} ms): {:.2} GB/s at {:.0} µs per message\n",
        rate * 1e-9,
        two.figures["gradient_mib"],
        two.figures["exchange_ms"],
        link.bytes_per_s * 1e-9,
        link.latency_s * 1e6
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        out,
        "| measured | compute (model) | reduce (model) | step (model) | step (measured) | \
         exchange (model) | exchange (measured) |\n|---|---|---|---|---|---|---|"
    );
    for r in records
        .iter()
        .filter(|r| r.workload == "W7" && r.params.get("processes").is_some_and(|&p| p > 1))
    {
        let ranks = r.params["processes"] as usize;
        // More ranks than cores share them: each computes at its share of the cores.
        let share = (cores as f64 / ranks as f64).min(1.0);
        let job = Job {
            gradient_bytes: bytes,
            flops_per_rank: step_flops(batch / ranks),
            rank_flops_per_s: rate * share,
        };
        let t = job.step(ranks, link, Algorithm::RecursiveDoubling, 1);
        let _ = writeln!(
            out,
            "| {ranks} × {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.3} ms | {:.3} ms |",
            r.threads,
            t.compute_s * 1e3,
            t.reduce_s * 1e3,
            t.serial_s * 1e3,
            r.figures["ms_per_step"],
            t.reduce_s * 1e3,
            r.figures["exchange_ms"],
        );
    }
    // (name, strong scaling: one global batch split over the ranks, job of the rank count)
    let jobs: [(&str, bool, JobOf<'_>); 2] = [
        (
            "W2, global batch 1024 split over the ranks",
            true,
            Box::new(|ranks| Job {
                gradient_bytes: bytes,
                flops_per_rank: step_flops((batch / ranks).max(1)),
                rank_flops_per_s: rate,
            }),
        ),
        (
            "100M parameters, 32 examples per rank (6 FLOPs per parameter and example)",
            false,
            Box::new(|_| Job {
                gradient_bytes: 4e8,
                flops_per_rank: 6.0 * 1e8 * 32.0,
                rank_flops_per_s: rate,
            }),
        ),
    ];
    for (name, strong, job) in &jobs {
        let _ = writeln!(
            out,
            "\n{name}: efficiency (compute ÷ step; for W2, the one-rank step ÷ N steps)\n\n\
             | link | ranks | compute | doubling | doubling, overlapped | halving-doubling | \
             halving-doubling, overlapped | ring |\n|---|---|---|---|---|---|---|---|"
        );
        for (label, gbit, latency_us) in LINKS {
            let link = Link::gbit(gbit, latency_us);
            for ranks in RANKS {
                let j = job(ranks);
                // Strong scaling divides one rank's whole-batch compute among N; weak scaling
                // keeps each rank's compute, so its ideal step is its own compute.
                let ideal = if *strong {
                    job(1).flops_per_rank / rate / ranks as f64
                } else {
                    j.flops_per_rank / rate
                };
                let eff = |alg| {
                    let t = j.step(ranks, link, alg, BUCKETS);
                    (ideal / t.serial_s, ideal / t.overlapped_s)
                };
                let (d, d_o) = eff(Algorithm::RecursiveDoubling);
                let (h, h_o) = eff(Algorithm::HalvingDoubling);
                let (ring, _) = eff(Algorithm::Ring);
                let _ = writeln!(
                    out,
                    "| {label} | {ranks} | {:.3} ms | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% |",
                    j.flops_per_rank / rate * 1e3,
                    d * 100.0,
                    d_o * 100.0,
                    h * 100.0,
                    h_o * 100.0,
                    ring * 100.0
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn one_rank_reduces_nothing_and_two_exchange_the_gradient_once() {
        let link = Link::gbit(8.0, 10.0); // 1 GB/s
        for alg in [
            Algorithm::RecursiveDoubling,
            Algorithm::Ring,
            Algorithm::HalvingDoubling,
        ] {
            assert_eq!(reduce_seconds(alg, 1, 1e9, link), 0.0);
        }
        // Two ranks: doubling sends all of it once; ring and halving-doubling half of it twice.
        assert!(close(
            reduce_seconds(Algorithm::RecursiveDoubling, 2, 1e9, link),
            1e-5 + 1.0
        ));
        assert!(close(
            reduce_seconds(Algorithm::Ring, 2, 1e9, link),
            2e-5 + 1.0
        ));
        assert!(close(
            reduce_seconds(Algorithm::HalvingDoubling, 2, 1e9, link),
            2e-5 + 1.0
        ));
    }

    #[test]
    fn at_scale_doubling_moves_log_n_gradients_and_the_others_two() {
        let link = Link {
            latency_s: 0.0,
            bytes_per_s: 1.0,
        };
        assert!(close(
            reduce_seconds(Algorithm::RecursiveDoubling, 512, 1.0, link),
            9.0
        ));
        assert!(close(
            reduce_seconds(Algorithm::Ring, 512, 1.0, link),
            2.0 * 511.0 / 512.0
        ));
        assert!(close(
            reduce_seconds(Algorithm::HalvingDoubling, 512, 1.0, link),
            2.0 * 511.0 / 512.0
        ));
    }

    #[test]
    fn overlap_hides_a_reduction_shorter_than_the_backward_sweep() {
        let job = Job {
            gradient_bytes: 1e6,
            flops_per_rank: 3e9,
            rank_flops_per_s: 1e9, // 3 s of compute, 2 s of it backward
        };
        let link = Link {
            latency_s: 0.0,
            bytes_per_s: 1e6, // 1 s to exchange it all between two ranks
        };
        let t = job.step(2, link, Algorithm::RecursiveDoubling, 4);
        assert!(close(t.serial_s, 4.0));
        // The backward hides the reduction but for the last of 4 buckets.
        assert!(close(t.overlapped_s, 3.25));
    }

    #[test]
    fn a_fitted_link_reproduces_the_exchange_it_was_fitted_to() {
        let link = fit_link(0.004, 4, 2e6, 1e-5);
        let again = reduce_seconds(Algorithm::RecursiveDoubling, 4, 2e6, link);
        assert!(close(again, 0.004));
    }
}
