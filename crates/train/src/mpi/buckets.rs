//! The overlapped reduction over MPI: each bucket runs its own recursive doubling with
//! non-blocking sends and receives, started when the sweep hands it over and moved on
//! whenever the sweep calls back, so the exchanges run while the sweep computes.

use std::ops::Range;

use mpi::datatype::Equivalence;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{LocalScope, Request};
use mpi::topology::SimpleCommunicator;
use mpi::traits::Communicator;
use wengert_ops::Float;

use crate::reduce::{BucketSink, check_bucket, unfinished};
use crate::{Error, Result};

/// MPI guarantees tags up to this (`MPI_TAG_UB` is at least 32767).
const MAX_TAG: usize = 32767;

type Pending<'a, 's, E> = Request<'a, [E], &'s LocalScope<'a>>;

/// Where one bucket is in its recursive doubling.
enum Stage<'a, 's, E> {
    /// Not handed over yet; its free buffers: the sums after each level (`levels + 1`, the
    /// first for the rank's own) and the partner's at each level, popped from the end.
    Waiting {
        mine: Vec<&'a mut [E]>,
        theirs: Vec<&'a mut [E]>,
    },
    /// Exchanging level `level`'s sums.
    Exchanging {
        level: usize,
        sums: &'a [E],
        send: Option<Pending<'a, 's, E>>,
        receive: Option<Pending<'a, 's, E>>,
        received: Option<&'a [E]>,
        mine: Vec<&'a mut [E]>,
        theirs: Vec<&'a mut [E]>,
    },
    /// Summed over every rank.
    Done(&'a [E]),
}

/// The sink of an overlapped MPI step, living for one `mpi::request::scope`.
pub(super) struct Exchange<'a, 's, E> {
    world: &'s SimpleCommunicator,
    scope: &'s LocalScope<'a>,
    rank: usize,
    levels: usize,
    buckets: &'s [Range<usize>],
    seen: Vec<bool>,
    stages: Vec<Stage<'a, 's, E>>,
}

impl<'a, 's, E: Float + Equivalence> Exchange<'a, 's, E> {
    /// Buffers cut from `staging` (`(2·levels + 1) ×` the gradient's length) for every bucket.
    pub(super) fn new(
        world: &'s SimpleCommunicator,
        scope: &'s LocalScope<'a>,
        rank: usize,
        ranks: usize,
        buckets: &'s [Range<usize>],
        staging: &'a mut [E],
    ) -> Result<Self> {
        let levels = ranks.trailing_zeros() as usize;
        if buckets.len() * levels.max(1) > MAX_TAG {
            return Err(Error::Distributed(format!(
                "{} buckets over {ranks} processes need more message tags than MPI promises: \
                 use larger buckets",
                buckets.len()
            )));
        }
        let mut rest = staging;
        let mut stages = Vec::with_capacity(buckets.len());
        for range in buckets {
            if i32::try_from(range.len()).is_err() {
                return Err(Error::Distributed(format!(
                    "a bucket of {} elements does not fit in one MPI message",
                    range.len()
                )));
            }
            let mut take = || {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(range.len());
                rest = tail;
                head
            };
            let mut mine: Vec<&'a mut [E]> = (0..=levels).map(|_| take()).collect();
            let mut theirs: Vec<&'a mut [E]> = (0..levels).map(|_| take()).collect();
            mine.reverse();
            theirs.reverse();
            stages.push(Stage::Waiting { mine, theirs });
        }
        Ok(Exchange {
            world,
            scope,
            rank,
            levels,
            seen: vec![false; buckets.len()],
            buckets,
            stages,
        })
    }

    /// Posts level `level`'s exchange of bucket `b`'s `sums`, or ends the bucket after the last.
    fn start(
        &self,
        b: usize,
        level: usize,
        sums: &'a [E],
        mine: Vec<&'a mut [E]>,
        mut theirs: Vec<&'a mut [E]>,
    ) -> Stage<'a, 's, E> {
        if level == self.levels {
            return Stage::Done(sums);
        }
        let other = self.rank ^ (1 << level);
        let process = self
            .world
            .process_at_rank(i32::try_from(other).unwrap_or(i32::MAX));
        let tag = i32::try_from(b * self.levels + level).unwrap_or(0);
        let buffer = theirs.pop().expect("one receive buffer per level");
        let receive = process.immediate_receive_into_with_tag(self.scope, buffer, tag);
        let send = process.immediate_send_with_tag(self.scope, sums, tag);
        Stage::Exchanging {
            level,
            sums,
            send: Some(send),
            receive: Some(receive),
            received: None,
            mine,
            theirs,
        }
    }

    /// Moves bucket `b` on as far as its exchanges allow; with `block`, to the end.
    fn advance(&mut self, b: usize, block: bool) {
        loop {
            let stage = std::mem::replace(&mut self.stages[b], Stage::Done(&[]));
            let Stage::Exchanging {
                level,
                sums,
                mut send,
                mut receive,
                mut received,
                mut mine,
                theirs,
            } = stage
            else {
                self.stages[b] = stage;
                return;
            };
            if let Some(request) = send.take() {
                send = if block {
                    request.wait();
                    None
                } else {
                    request.test().err()
                };
            }
            if let Some(request) = receive.take() {
                if block {
                    received = Some(request.wait_for_data());
                } else {
                    match request.test_with_data() {
                        Ok((_, data)) => received = Some(data),
                        Err(request) => receive = Some(request),
                    }
                }
            }
            let (None, Some(partner)) = (&send, received) else {
                self.stages[b] = Stage::Exchanging {
                    level,
                    sums,
                    send,
                    receive,
                    received,
                    mine,
                    theirs,
                };
                return;
            };
            // The lower rank's sums first, as `all_reduce` adds them.
            let next = mine.pop().expect("one sum buffer per level");
            let lower_first = self.rank & (1 << level) == 0;
            let (lower, upper) = if lower_first {
                (sums, partner)
            } else {
                (partner, sums)
            };
            for ((n, &l), &u) in next.iter_mut().zip(lower).zip(upper) {
                *n = l + u;
            }
            self.stages[b] = self.start(b, level + 1, next, mine, theirs);
        }
    }

    /// Waits for every bucket and copies the sums into `grads`. Errors (after waiting for
    /// what is under way) if the sweep left a bucket out.
    pub(super) fn finish(mut self, grads: &mut [E]) -> Result<()> {
        for b in 0..self.stages.len() {
            self.advance(b, true);
        }
        if let Some(b) = self.seen.iter().position(|&s| !s) {
            return Err(unfinished(b));
        }
        for (stage, range) in self.stages.iter().zip(self.buckets) {
            if let Stage::Done(sums) = stage {
                grads[range.clone()].copy_from_slice(sums);
            }
        }
        Ok(())
    }
}

impl<E: Float + Equivalence> BucketSink<E> for Exchange<'_, '_, E> {
    fn ready(&mut self, index: usize, sums: &[E]) -> Result<()> {
        check_bucket(self.buckets, &mut self.seen, index, sums.len())?;
        let stage = std::mem::replace(&mut self.stages[index], Stage::Done(&[]));
        let Stage::Waiting { mut mine, theirs } = stage else {
            unreachable!("a bucket is handed over once, checked above");
        };
        let own = mine.pop().expect("the rank's own sums");
        own.copy_from_slice(sums);
        self.stages[index] = self.start(index, 0, own, mine, theirs);
        self.progress()
    }

    fn progress(&mut self) -> Result<()> {
        for b in 0..self.stages.len() {
            self.advance(b, false);
        }
        Ok(())
    }
}
