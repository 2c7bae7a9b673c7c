//! Data-parallel training over MPI (the `mpi` feature): [`Mpi`] starts the MPI library for the
//! life of the process, [`MpiReducer`] is the [`GradientReducer`] that combines the processes'
//! gradients over it.
//!
//! Every process (rank) holds the whole model and runs the same [`Trainer`](crate::Trainer)
//! on the same data; rank `r` of `N` computes micro-batches `[r·K/N, (r+1)·K/N)` of each batch
//! (`K` = [`TrainConfig::accumulate`](crate::TrainConfig::accumulate)), and the reducer
//! combines the ranks' sums by recursive doubling, which follows the same tree as one process
//! summing all `K` (see [`crate::reduce`]). So `N` = 1, 2, 4, ... processes end with weights
//! bit-identical to one process run with the same `K`, whatever each one's thread count.
//!
//! ```no_run
//! # fn main() -> wengert_train::Result<()> {
//! use wengert_train::mpi::Mpi;
//! use wengert_train::{Adam, Mlp, TrainConfig, Trainer, datasets};
//!
//! let mpi = Mpi::init()?;
//! let data = datasets::digits::<f32>()?;
//! mpi.check_same("data", 0x5eed)?; // a hash of what each rank loaded
//! let config = TrainConfig { batch_size: 64, accumulate: 4, ..TrainConfig::default() };
//! let mut model = Mlp::builder(&[64, 32, 10]).seed(0).build()?;
//! Trainer::new(config, Adam::new(1e-3).unwrap())
//!     .with_reducer(mpi.reducer())
//!     .fit(&mut model, &data, None)?;
//! # Ok(())
//! # }
//! ```

mod buckets;

use std::ops::Range;

use mpi::Threading;
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::point_to_point::send_receive_into;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use wengert_ops::Float;

use crate::reduce::add_into;
use crate::{Error, GradientReducer, Result, Sweep};
use buckets::Exchange;

/// The MPI library, started by [`Mpi::init`] and finalised when this is dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    /// Kept for its `Drop`, which finalises MPI (after `world` is gone).
    _universe: Universe,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank())
            .field("ranks", &self.ranks())
            .finish()
    }
}

impl Mpi {
    /// Starts MPI (once per process). The trainer may call it from another thread than this
    /// one, one call at a time, so the library is asked for that (`MPI_THREAD_SERIALIZED`).
    ///
    /// Errors if MPI was started already, or offers too little thread support.
    pub fn init() -> Result<Mpi> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Distributed("MPI was already started".into()))?;
        if threading < Threading::Serialized {
            return Err(Error::Distributed(format!(
                "the MPI library offers thread support {threading:?}; training needs \
                 Serialized (calls from the training thread)"
            )));
        }
        let world = universe.world();
        Ok(Mpi {
            world,
            _universe: universe,
        })
    }

    /// This process's rank in `MPI_COMM_WORLD`, from 0.
    pub fn rank(&self) -> usize {
        usize::try_from(self.world.rank()).unwrap_or(0)
    }

    /// How many processes `MPI_COMM_WORLD` holds.
    pub fn ranks(&self) -> usize {
        usize::try_from(self.world.size()).unwrap_or(1)
    }

    /// The reducer to hand to [`Trainer::with_reducer`](crate::Trainer::with_reducer).
    pub fn reducer<E: Float + Equivalence>(&self) -> MpiReducer<'_, E> {
        MpiReducer {
            world: &self.world,
            rank: self.rank(),
            ranks: self.ranks(),
            partner: Vec::new(),
            partner_stats: Vec::new(),
            staging: Vec::new(),
        }
    }

    /// Checks that every rank passes the same `fingerprint` of `what` (a hash of the data, the
    /// settings, the binary): a collective call, so every rank must make it, in the same
    /// order. Every rank gets the same answer, an error naming the ranks that differ from
    /// rank 0.
    pub fn check_same(&self, what: &str, fingerprint: u64) -> Result<()> {
        let mut all = vec![0u64; self.ranks()];
        self.world.all_gather_into(&fingerprint, &mut all[..]);
        let differ: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|&(_, f)| *f != all[0])
            .map(|(r, _)| r.to_string())
            .collect();
        if differ.is_empty() {
            return Ok(());
        }
        let one = differ.len() == 1;
        Err(Error::Distributed(format!(
            "rank {} differ{} from rank 0 in {} {what} (fingerprints {}): every rank must run \
             the same binary with the same settings on the same data",
            differ.join(", "),
            if one { "s" } else { "" },
            if one { "its" } else { "their" },
            all.iter()
                .map(|f| format!("{f:016x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )))
    }

    /// Ends every process of the job at once (`MPI_Abort`), with this exit code: what a rank
    /// that failed does, so that no other waits for it forever.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// The [`GradientReducer`] over MPI: recursive doubling with `MPI_Sendrecv`, `log₂ N`
/// exchanges of the whole gradient per step, every rank ending with the same bits. (MPI's own
/// `MPI_Allreduce` is not used: it sums in an order of its choosing.) Overlapped
/// ([`Trainer::overlap_reduction`](crate::Trainer::overlap_reduction)), each bucket runs the
/// same recursive doubling on its own with `MPI_Isend`/`MPI_Irecv`, posted as the sweep hands
/// it over and tested whenever the sweep calls back; the step waits for what is left after
/// the sweep. A sweep that fails waits for the exchanges under way before returning its
/// error (MPI cannot take buffers back): the others' must end too, as `MPI_Abort` does.
pub struct MpiReducer<'w, E> {
    world: &'w SimpleCommunicator,
    rank: usize,
    ranks: usize,
    /// The partner's partial sums, received in place each step.
    partner: Vec<E>,
    partner_stats: Vec<f64>,
    /// The buffers of an overlapped step's exchanges, every bucket's own.
    staging: Vec<E>,
}

impl<E> std::fmt::Debug for MpiReducer<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiReducer")
            .field("rank", &self.rank)
            .field("ranks", &self.ranks)
            .finish()
    }
}

impl<E: Float + Equivalence> GradientReducer<E> for MpiReducer<'_, E> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn all_reduce(&mut self, grads: &mut [E], stats: &mut [f64]) -> Result<()> {
        if i32::try_from(grads.len()).is_err() {
            return Err(Error::Distributed(format!(
                "{} gradient elements do not fit in one MPI message (at most 2³¹ - 1)",
                grads.len()
            )));
        }
        self.partner.resize(grads.len(), E::zero());
        self.partner_stats.resize(stats.len(), 0.0);
        let mut step = 1;
        while step < self.ranks {
            let other = self.rank ^ step;
            let process = self
                .world
                .process_at_rank(i32::try_from(other).unwrap_or(i32::MAX));
            send_receive_into(&grads[..], &process, &mut self.partner[..], &process);
            send_receive_into(&stats[..], &process, &mut self.partner_stats[..], &process);
            if self.rank < other {
                add_into(grads, &self.partner);
                add_into(stats, &self.partner_stats);
            } else {
                // The lower rank's sum first, as on the lower rank.
                add_into(&mut self.partner, grads);
                grads.copy_from_slice(&self.partner);
                add_into(&mut self.partner_stats, stats);
                stats.copy_from_slice(&self.partner_stats);
            }
            step *= 2;
        }
        Ok(())
    }

    fn all_reduce_overlapped(
        &mut self,
        buckets: &[Range<usize>],
        grads: &mut [E],
        stats: &mut [f64],
        sweep: &mut Sweep<'_, E>,
    ) -> Result<()> {
        let levels = self.ranks.trailing_zeros() as usize;
        let len = buckets.iter().map(|r| r.len()).sum::<usize>();
        let staging_len = len
            .checked_mul(2 * levels + 1)
            .ok_or_else(|| Error::Distributed("the exchange buffers overflow".into()))?;
        self.staging.resize(staging_len, E::zero());
        let (world, rank, ranks) = (self.world, self.rank, self.ranks);
        let staging = &mut self.staging[..];
        mpi::request::scope(|scope| {
            let mut exchange = Exchange::new(world, scope, rank, ranks, buckets, staging)?;
            let swept = sweep(&mut exchange, stats);
            // Every exchange under way completes before the buffers are let go.
            let finished = exchange.finish(grads);
            swept.and(finished)
        })?;
        // The totals are a few numbers: exchanged once, after the sweep.
        self.all_reduce(&mut [], stats)
    }
}
