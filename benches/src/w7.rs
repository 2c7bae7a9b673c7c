//! W7: W2's training step at batch 1024, data-parallel over MPI. Each of `N` processes (ranks)
//! holds the whole network, takes `1024 / N` rows of the global batch, sweeps back on its own
//! tape, then the ranks combine their gradients with wengert-train's `MpiReducer` (recursive
//! doubling, the trainer's bit-identical order) and every rank applies the same SGD step.
//!
//! The runner starts this under `mpirun` once per configuration (1 process × 1 thread,
//! 1 × 2, 2 × 1 on this machine's two cores); rank 0 prints the record. Reducing is timed
//! apart: it covers the flattening of the tape's gradients, the exchange (including any wait
//! for a slower rank) and the averaging, so `reduce_share` is what a step loses to being
//! spread out, compute imbalance included. `exchange_ms` is the transport alone: the same
//! reduction run back to back after the steps, with no compute between to wait for.
//!
//! With more than one process each run measures the step twice, as two records: reducing
//! once after the sweep (`overlap=0`), and overlapped (`overlap=1`), in buckets of
//! [`W7_BUCKET_MIB`] handed to the reducer as the sweep finishes them (PyTorch DDP's scheme);
//! there `reduce_ms` is what is left of the reduction after the sweep ends.
//!

#[cfg(feature = "mpi")]
pub use rank::w7_rank;

/// W7's global batch, split evenly across the processes.
pub const W7_BATCH: usize = 1024;

/// The buckets of W7's overlapped reduction, in MiB: W2's 2.6 MiB gradient in two (the last
/// two layers, then the first).
pub const W7_BUCKET_MIB: usize = 1;

/// The `(processes, threads per process)` configurations W7 measures on a machine with `cores`
/// cores: one process on one thread and on all of them, and as many one-thread processes as
/// there are cores (a power of two, as the reducer needs, dividing the batch).
pub fn configurations(cores: usize) -> Vec<(usize, usize)> {
    let mut spread = 1;
    while spread * 2 <= cores && W7_BATCH.is_multiple_of(spread * 2) {
        spread *= 2;
    }
    let mut configs = vec![(1, 1)];
    if cores > 1 {
        configs.push((1, cores));
    }
    if spread > 1 {
        configs.push((spread, 1));
    }
    configs
}

#[cfg(feature = "mpi")]
mod rank {
    use std::time::Instant;

    use wengert_train::GradientReducer;
    use wengert_train::mpi::Mpi;
    use wengert_train::reduce::plan_buckets;

    use super::{W7_BATCH, W7_BUCKET_MIB};
    use crate::mlp::{Mlp, Sgd, TapeMlp};
    use crate::record::Record;
    use crate::shared::{Effort, Rng, SEED, W2_LAYERS, W2_LR, label_vec, median, normal_vec};

    fn err(e: impl std::fmt::Display) -> String {
        format!("wengert failed: {e}")
    }

    /// Runs W7 in this process as one rank of an MPI job whose kernels use `threads` workers.
    /// Returns rank 0's records (none on the other ranks): reducing after the sweep, and with
    /// more than one process overlapped too.
    pub fn w7_rank(threads: usize, effort: Effort) -> Result<Vec<Record>, String> {
        let mpi = Mpi::init().map_err(err)?;
        let (rank, ranks) = (mpi.rank(), mpi.ranks());
        if !ranks.is_power_of_two() || !W7_BATCH.is_multiple_of(ranks) {
            return Err(format!(
                "W7 splits a batch of {W7_BATCH} over a power of two of processes, not {ranks}"
            ));
        }
        // Every rank draws the whole global batch from the shared stream and keeps its rows, so
        // the job trains on exactly W2's data whatever N is.
        let mut rng = Rng::new(SEED);
        let x = normal_vec(&mut rng, W7_BATCH * W2_LAYERS[0]);
        let labels = label_vec(&mut rng, W7_BATCH, W2_LAYERS[3]);
        let init = Mlp::new(&W2_LAYERS, &mut rng);
        let rows = W7_BATCH / ranks;
        let first = rank * rows;
        let x = &x[first * W2_LAYERS[0]..(first + rows) * W2_LAYERS[0]];
        let labels = &labels[first..first + rows];

        let mut net = TapeMlp::new(&init).map_err(err)?;
        let mut flat = vec![0.0f32; init.parameter_count()];
        let mut stats = [0.0f64; 1];
        let mut reducer = mpi.reducer::<f32>();
        let mut sgd = Sgd { lr: W2_LR };
        // Each rank's loss is the mean over its rows; the global mean's gradient is the mean of
        // the ranks' (equal shares).
        let scale = 1.0 / ranks as f32;
        let (warmup, steps) = (effort.w2_warmup(), effort.w2_steps());
        // The kernels' pool is the process's global one (the reducer borrows MPI's communicator,
        // which may not cross into a pool's closure); each rank is a process of its own.
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| format!("could not start {threads} threads: {e}"))?;
        let sizes: Vec<usize> = (init.params.iter())
            .flat_map(|(w, b)| [w.len(), b.len()])
            .collect();
        let offsets: Vec<usize> = (sizes.iter())
            .scan(0, |at, &n| {
                *at += n;
                Some(*at - n)
            })
            .collect();
        let (ranges, of_param) = plan_buckets(&sizes, W7_BUCKET_MIB << 20 >> 2);
        let mut local = vec![0.0f32; flat.len()];
        let modes: &[bool] = if ranks > 1 { &[false, true] } else { &[false] };
        let mut measured = Vec::new();
        for &overlap in modes {
            let (mut step_ms, mut reduce_ms) =
                (Vec::with_capacity(steps), Vec::with_capacity(steps));
            for i in 0..warmup + steps {
                let start = Instant::now();
                let reduce_start;
                if overlap {
                    let mut swept = start;
                    let mut left = vec![0usize; ranges.len()];
                    for &b in &of_param {
                        left[b] += 1;
                    }
                    reducer
                        .all_reduce_overlapped(&ranges, &mut flat, &mut stats, &mut |sink, st| {
                            let mut failure = None;
                            let loss = net
                                .gradients_with(x, labels, |k, g| {
                                    let at = offsets[k];
                                    local[at..at + g.len()].copy_from_slice(g);
                                    let b = of_param[k];
                                    left[b] -= 1;
                                    let handed = if left[b] == 0 {
                                        sink.ready(b, &local[ranges[b].clone()])
                                    } else {
                                        sink.progress()
                                    };
                                    if let Err(e) = handed {
                                        failure.get_or_insert(e);
                                    }
                                })
                                .map_err(wengert_train::Error::from)?;
                            st[0] = f64::from(loss);
                            swept = Instant::now();
                            failure.map_or(Ok(()), Err)
                        })
                        .map_err(err)?;
                    reduce_start = swept;
                } else {
                    let loss = net.gradients(x, labels).map_err(err)?;
                    reduce_start = Instant::now();
                    net.copy_gradients(&mut flat);
                    stats[0] = f64::from(loss);
                    reducer.all_reduce(&mut flat, &mut stats).map_err(err)?;
                }
                for g in &mut flat {
                    *g *= scale;
                }
                let reduce_end = Instant::now();
                net.apply(&flat, &mut sgd);
                if i >= warmup {
                    step_ms.push(start.elapsed().as_secs_f64() * 1e3);
                    reduce_ms.push((reduce_end - reduce_start).as_secs_f64() * 1e3);
                }
            }
            measured.push((overlap, step_ms, reduce_ms));
        }

        // The exchange alone: back-to-back reductions of the whole gradient, which keep the
        // ranks in step with each other, so no rank waits for another's compute. The cost
        // model of docs/SCALING.md takes the transport's figures from this.
        let mut exchange_ms = Vec::with_capacity(steps);
        for _ in 0..steps {
            let start = Instant::now();
            reducer.all_reduce(&mut flat, &mut stats).map_err(err)?;
            exchange_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }

        // The ranks must have stepped alike: the same bits of every weight everywhere.
        let mut weights = Mlp::new(&W2_LAYERS, &mut Rng::new(SEED));
        net.write_back(&mut weights).map_err(err)?;
        mpi.check_same("weights after W7", fingerprint(&weights))
            .map_err(err)?;

        if rank != 0 {
            return Ok(Vec::new());
        }
        let exchange = median(&mut exchange_ms);
        let gradient_mib = (flat.len() * std::mem::size_of::<f32>()) as f64 / (1024.0 * 1024.0);
        let mut records = Vec::new();
        for (overlap, mut step_ms, mut reduce_ms) in measured {
            let (step, reduce) = (median(&mut step_ms), median(&mut reduce_ms));
            let mut params = vec![("batch", W7_BATCH as u64), ("processes", ranks as u64)];
            if ranks > 1 {
                params.push(("overlap", u64::from(overlap)));
            }
            records.push(Record::new(
                "W7",
                "wengert",
                threads,
                &params,
                &[
                    ("ms_per_step", step),
                    ("samples_per_s", W7_BATCH as f64 / step * 1e3),
                    ("reduce_ms", reduce),
                    ("reduce_share", reduce / step),
                    ("exchange_ms", exchange),
                    ("gradient_mib", gradient_mib),
                ],
            ));
        }
        Ok(records)
    }

    /// FNV-1a over every weight's bits.
    fn fingerprint(mlp: &Mlp) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for (w, b) in &mlp.params {
            for v in w.iter().chain(b) {
                for byte in v.to_bits().to_le_bytes() {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cores_give_the_three_configurations_of_the_workload() {
        assert_eq!(configurations(2), vec![(1, 1), (1, 2), (2, 1)]);
        assert_eq!(configurations(1), vec![(1, 1)]);
        assert_eq!(configurations(6), vec![(1, 1), (1, 6), (4, 1)]);
    }
}
