//! Training across processes: under `mpirun` (with the `mpi` feature) this process is one rank
//! of several; only rank 0 prints and writes files; every rank checks at start-up that the
//! others run the same binary with the same settings on the same data; a rank that fails ends
//! the whole job. Without the feature, or outside `mpirun`, there is one rank.

use std::sync::atomic::{AtomicBool, Ordering};

use wengert_train::Trainer;

use crate::E;

/// Whether this process prints its report (rank 0, or the only process).
static PRINTS: AtomicBool = AtomicBool::new(true);

/// Whether this process prints its report: `say!` is silent on ranks other than 0.
pub fn prints() -> bool {
    PRINTS.load(Ordering::Relaxed)
}

/// The processes training together, as this one sees them.
pub struct World {
    #[cfg(feature = "mpi")]
    mpi: Option<wengert_train::mpi::Mpi>,
}

impl World {
    /// Joins the job's other ranks if `mpirun` (or another MPI launcher) started this process
    /// and the binary has the `mpi` feature; otherwise the only rank. A binary without the
    /// feature under a launcher refuses, rather than train N unrelated copies.
    pub fn start() -> Result<World, String> {
        let launched = launched_by_mpi();
        #[cfg(feature = "mpi")]
        {
            let mpi = if launched {
                Some(wengert_train::mpi::Mpi::init().map_err(|e| e.to_string())?)
            } else {
                None
            };
            let world = World { mpi };
            PRINTS.store(world.rank() == 0, Ordering::Relaxed);
            Ok(world)
        }
        #[cfg(not(feature = "mpi"))]
        {
            if launched
                .then(launched_size)
                .flatten()
                .is_some_and(|n| n > 1)
            {
                return Err(
                    "started by mpirun with several processes, but this wengert was built \
                     without MPI: build it with `--features mpi` (see the README)"
                        .into(),
                );
            }
            Ok(World {})
        }
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            return mpi.rank();
        }
        0
    }

    /// How many processes train together.
    pub fn ranks(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            return mpi.ranks();
        }
        1
    }

    /// Whether this process writes the run's files (rank 0).
    pub fn writes(&self) -> bool {
        self.rank() == 0
    }

    /// `trainer`, sharing its steps with the other ranks, reducing in buckets of
    /// `bucket_mib` mebibytes during the sweep (0: once after it); errors on a size that is
    /// negative, not a number or above 1 GiB.
    pub fn attach<'a>(
        &'a self,
        trainer: Trainer<'a, E>,
        bucket_mib: f64,
    ) -> Result<Trainer<'a, E>, String> {
        if !(0.0..=1024.0).contains(&bucket_mib) {
            return Err(format!(
                "--bucket-mib must be between 0 and 1024 (MiB), got {bucket_mib}"
            ));
        }
        // Rounded to whole bytes: the bucket planner counts elements.
        let trainer = trainer.overlap_reduction((bucket_mib * 1024.0 * 1024.0).round() as usize);
        Ok(self.share(trainer))
    }

    fn share<'a>(&'a self, trainer: Trainer<'a, E>) -> Trainer<'a, E> {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            return trainer.with_reducer(mpi.reducer::<E>());
        }
        trainer
    }

    /// Refuses to go on unless every rank has the same `bytes` for `what`: a collective step,
    /// made by every rank in the same order.
    pub fn check_same(&self, what: &str, bytes: &[u8]) -> Result<(), String> {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            return mpi
                .check_same(what, fnv1a(bytes))
                .map_err(|e| e.to_string());
        }
        let _ = (what, bytes);
        Ok(())
    }

    /// The fingerprint of the running binary, which every rank must share.
    pub fn check_same_binary(&self) -> Result<(), String> {
        if self.ranks() == 1 {
            return Ok(());
        }
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let bytes = std::fs::read(&exe).map_err(|e| format!("{}: {e}", exe.display()))?;
        self.check_same("binary", &bytes)
    }

    /// The end of this rank's run: with several ranks, an error is printed with the rank's
    /// number and ends every rank of the job at once (`MPI_Abort`), so that none waits for
    /// this one forever.
    pub fn finish(&self, result: Result<(), String>) -> Result<(), String> {
        #[cfg(feature = "mpi")]
        if let (Err(message), Some(mpi)) = (&result, &self.mpi)
            && mpi.ranks() > 1
        {
            eprintln!("error: rank {} of {}: {message}", mpi.rank(), mpi.ranks());
            mpi.abort(1);
        }
        result
    }
}

/// Whether an MPI launcher started this process (Open MPI, MPICH's Hydra, PMIx).
fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The number of processes the launcher started, where it says.
#[cfg(not(feature = "mpi"))]
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// FNV-1a, 64 bits: a fingerprint to compare across ranks (not a defence against forgery).
#[cfg(feature = "mpi")]
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
