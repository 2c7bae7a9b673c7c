//! proptest strategies: shapes of 1..=8 per axis, values kept away from each op's kinks and
//! singularities, and a [`Problem`] strategy per op.
//!
//! Every drawn value is exact in f32, so the f32-against-f64 comparison sees the same inputs on
//! both sides.

use std::ops::RangeInclusive;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

use wengert_tape::{
    BinaryOp, CrossEntropyOptions, Distance, LossOp, ReduceOp, Reduction, Targets, UnaryOp,
};

use crate::cases::{Case, Problem, Values, binary_entry, unary_entry};

/// Cases per proptest: 256 draws of each op in the gradient checks and again in the
/// f32-against-f64 comparison: about 40 s of CPU in the default test profile for 25 ops, most of
/// it in the gradient checks (each draw is checked once and with fan-out). With shapes of at
/// most 8 per axis, 256 draws reach every rank, broadcast pattern and axis many times over.
pub const CASES: u32 = 256;

/// Each axis of a drawn shape has 1..=8 elements.
pub const MAX_DIM: usize = 8;

fn f32_exact(v: f64) -> f64 {
    v as f32 as f64
}

/// Any value in [-2, 2].
pub fn general() -> BoxedStrategy<f64> {
    (-2.0..2.0f64).prop_map(f32_exact).boxed()
}

/// A value whose magnitude is in [lo, hi], of either sign: away from zero (ReLU's kink, a
/// divisor's pole).
pub fn away_from_zero(lo: f64, hi: f64) -> BoxedStrategy<f64> {
    (lo..hi, any::<bool>())
        .prop_map(|(m, negative)| f32_exact(if negative { -m } else { m }))
        .boxed()
}

/// A value in [0.1, 3]: inside log's domain, away from its pole.
pub fn positive() -> BoxedStrategy<f64> {
    (0.1..3.0f64).prop_map(f32_exact).boxed()
}

/// Dimensions of a shape whose rank is in `ranks`.
pub fn dims(ranks: RangeInclusive<usize>) -> BoxedStrategy<Vec<usize>> {
    prop::collection::vec(1..=MAX_DIM, ranks).boxed()
}

/// An array of the given dimensions with elements drawn from `values`.
pub fn array(dims: Vec<usize>, values: BoxedStrategy<f64>) -> BoxedStrategy<ArrayD<f64>> {
    let n: usize = dims.iter().product();
    prop::collection::vec(values, n)
        .prop_map(move |data| {
            ArrayD::from_shape_vec(IxDyn(&dims), data).expect("sized to the shape")
        })
        .boxed()
}

/// An array of rank in `ranks`.
pub fn any_array(
    ranks: RangeInclusive<usize>,
    values: BoxedStrategy<f64>,
) -> BoxedStrategy<ArrayD<f64>> {
    dims(ranks)
        .prop_flat_map(move |d| array(d, values.clone()))
        .boxed()
}

/// Two shapes that broadcast together: equal shapes, the named patterns (a bias add
/// `[m, n] + [n]`, an outer `[m, 1] + [1, n]`, a scalar on either side) and general ones, where
/// each operand drops some leading axes of a common shape and has length 1 on others.
pub fn broadcast_pair() -> BoxedStrategy<(Vec<usize>, Vec<usize>)> {
    let general = dims(1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (
                Just(d),
                prop::collection::vec(any::<bool>(), r),
                0..=r,
                prop::collection::vec(any::<bool>(), r),
                0..=r,
            )
        })
        .prop_map(|(d, ones_a, drop_a, ones_b, drop_b)| {
            let operand = |ones: &[bool], drop: usize| -> Vec<usize> {
                d.iter()
                    .zip(ones)
                    .skip(drop)
                    .map(|(&n, &one)| if one { 1 } else { n })
                    .collect()
            };
            (operand(&ones_a, drop_a), operand(&ones_b, drop_b))
        });
    prop_oneof![
        dims(0..=3).prop_map(|d| (d.clone(), d)),
        (1..=MAX_DIM, 1..=MAX_DIM).prop_map(|(m, n)| (vec![m, n], vec![n])),
        (1..=MAX_DIM, 1..=MAX_DIM).prop_map(|(m, n)| (vec![m, 1], vec![1, n])),
        dims(1..=3).prop_map(|d| (d, vec![])),
        dims(1..=3).prop_map(|d| (vec![], d)),
        general,
    ]
    .boxed()
}

/// The values of a test entry.
pub fn values(v: Values) -> BoxedStrategy<f64> {
    match v {
        Values::General => general(),
        Values::AwayFromZero(lo, hi) => away_from_zero(lo, hi),
        Values::Positive => positive(),
        Values::Grid(offset) => (-16..=16i32)
            .prop_map(move |k| f64::from(k) / 8.0 + offset)
            .boxed(),
    }
}

/// A one-input elementwise op on arrays of rank 0..=3, with the values of its test entry.
pub fn unary_op(op: UnaryOp) -> BoxedStrategy<Problem> {
    unary(Case::Unary(op), values(unary_entry::<f64>(op).0))
}

/// A two-input elementwise op on broadcasting operands, with the values of its test entry.
pub fn binary_op(op: BinaryOp) -> BoxedStrategy<Problem> {
    let [lhs, rhs] = binary_entry::<f64>(op).0.map(values);
    broadcast_pair()
        .prop_flat_map(move |(a, b)| (array(a, lhs.clone()), array(b, rhs.clone())))
        .prop_map(move |(a, b)| Problem::new(Case::Binary(op), vec![a, b]))
        .boxed()
}

/// A binary op on two operands of one shape (mse, the custom op).
pub fn same_shape(case: Case, ranks: RangeInclusive<usize>) -> BoxedStrategy<Problem> {
    dims(ranks)
        .prop_flat_map(|d| (array(d.clone(), general()), array(d, general())))
        .prop_map(move |(a, b)| Problem::new(case.clone(), vec![a, b]))
        .boxed()
}

/// A one-operand op on arrays of rank 0..=3.
pub fn unary(case: Case, values: BoxedStrategy<f64>) -> BoxedStrategy<Problem> {
    any_array(0..=3, values)
        .prop_map(move |x| Problem::new(case.clone(), vec![x]))
        .boxed()
}

/// `[m, k]·[k, n]`.
pub fn matmul() -> BoxedStrategy<Problem> {
    (1..=MAX_DIM, 1..=MAX_DIM, 1..=MAX_DIM)
        .prop_flat_map(|(m, k, n)| (array(vec![m, k], general()), array(vec![k, n], general())))
        .prop_map(|(a, b)| Problem::new(Case::MatMul, vec![a, b]))
        .boxed()
}

/// `[m, k]·[k, n] + [n]`.
pub fn linear() -> BoxedStrategy<Problem> {
    (1..=MAX_DIM, 1..=MAX_DIM, 1..=MAX_DIM)
        .prop_flat_map(|(m, k, n)| {
            (
                array(vec![m, k], general()),
                array(vec![k, n], general()),
                array(vec![n], general()),
            )
        })
        .prop_map(|(x, w, b)| Problem::new(Case::Linear, vec![x, w, b]))
        .boxed()
}

/// A reduction along a drawn axis of a rank 1..=4 array, with `keep_dim` drawn.
pub fn along_axis(mean: bool) -> BoxedStrategy<Problem> {
    dims(1..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (array(d, general()), 0..r, any::<bool>())
        })
        .prop_map(move |(x, axis, keep_dim)| {
            let case = if mean {
                Case::MeanAxis { axis, keep_dim }
            } else {
                Case::SumAxis { axis, keep_dim }
            };
            Problem::new(case, vec![x])
        })
        .boxed()
}

/// A reshape to a permutation of the dimensions, with two neighbours merged when `merge` picks
/// a pair (so the rank changes too).
pub fn reshape() -> BoxedStrategy<Problem> {
    dims(0..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (array(d.clone(), general()), Just(d).prop_shuffle(), 0..=r)
        })
        .prop_map(|(x, mut to, merge)| {
            if merge + 1 < to.len() {
                let merged = to[merge] * to.remove(merge + 1);
                to[merge] = merged;
            }
            Problem::new(Case::Reshape(to), vec![x])
        })
        .boxed()
}

/// The named transpose on rank 2..=4, or two drawn axes (possibly equal) exchanged.
pub fn transpose(named: bool) -> BoxedStrategy<Problem> {
    dims(2..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (array(d, general()), 0..r, 0..r)
        })
        .prop_map(move |(x, a, b)| {
            let case = if named {
                Case::Transpose
            } else {
                Case::TransposeAxes(a, b)
            };
            Problem::new(case, vec![x])
        })
        .boxed()
}

/// Softmax or log-softmax over the last axis of a rank 1..=3 array.
pub fn softmax(case: Case) -> BoxedStrategy<Problem> {
    any_array(1..=3, (-3.0..3.0f64).prop_map(f32_exact).boxed())
        .prop_map(move |x| Problem::new(case.clone(), vec![x]))
        .boxed()
}

/// Softmax or log-softmax (`log`) along a drawn axis of a rank 1..=4 array.
pub fn softmax_along(log: bool) -> BoxedStrategy<Problem> {
    dims(1..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (array(d, (-3.0..3.0f64).prop_map(f32_exact).boxed()), 0..r)
        })
        .prop_map(move |(x, axis)| {
            let case = if log {
                Case::LogSoftmaxAxis(axis)
            } else {
                Case::SoftmaxAxis(axis)
            };
            Problem::new(case, vec![x])
        })
        .boxed()
}

/// Any of the three reductions.
pub fn reduction_kind() -> BoxedStrategy<Reduction> {
    prop_oneof![
        Just(Reduction::Mean),
        Just(Reduction::Sum),
        Just(Reduction::None)
    ]
    .boxed()
}

/// A loss of the difference on two operands of one shape (rank 0..=3). Predictions on the
/// eighths and targets a sixteenth off them: the difference is never 0 nor a multiple of 1/8,
/// so never within a finite-difference step of a kink (0, and `beta` = 1, `delta` = 0.5).
pub fn distance_loss(distance: Distance) -> BoxedStrategy<Problem> {
    (dims(0..=3), reduction_kind())
        .prop_flat_map(|(d, r)| {
            let grid = |offset| values(Values::Grid(offset));
            (array(d.clone(), grid(0.0)), array(d, grid(0.0625)), Just(r))
        })
        .prop_map(move |(x, t, reduction)| {
            let loss = LossOp::Distance {
                distance,
                reduction,
            };
            Problem::new(Case::Loss(loss), vec![x, t])
        })
        .boxed()
}

/// Binary cross-entropy with logits: logits in [-2, 2], targets in [0, 1], one shape.
pub fn bce_with_logits() -> BoxedStrategy<Problem> {
    (dims(0..=3), reduction_kind())
        .prop_flat_map(|(d, r)| {
            let unit = (0.0..1.0f64).prop_map(f32_exact).boxed();
            (array(d.clone(), general()), array(d, unit), Just(r))
        })
        .prop_map(|(x, t, reduction)| {
            Problem::new(Case::Loss(LossOp::BceWithLogits { reduction }), vec![x, t])
        })
        .boxed()
}

/// The class-index losses: an input of rank 1..=3 with classes on axis 1 (axis 0 for a
/// vector), targets drawn in range without the class axis, some set to the ignored index
/// -100 (never the first, so that a mean has a divisor). `smoothing` draws label smoothing
/// (cross-entropy only).
pub fn class_loss(cross_entropy: bool) -> BoxedStrategy<Problem> {
    (dims(1..=3), reduction_kind(), any::<bool>(), any::<bool>())
        .prop_flat_map(|(d, reduction, ignore, smooth)| {
            let class_axis = usize::from(d.len() >= 2);
            let classes = d[class_axis];
            let mut rest = d.clone();
            rest.remove(class_axis);
            let n: usize = rest.iter().product();
            let targets = prop::collection::vec((0..classes, any::<bool>()), n);
            let x = array(d, (-3.0..3.0f64).prop_map(f32_exact).boxed());
            (x, Just(rest), targets, Just((reduction, ignore, smooth)))
        })
        .prop_map(move |(x, rest, targets, (reduction, ignore, smooth))| {
            let ignore_index = ignore.then_some(-100);
            let data = targets
                .iter()
                .enumerate()
                .map(|(j, &(k, skip))| {
                    if ignore && skip && j > 0 {
                        -100.0
                    } else {
                        k as f64
                    }
                })
                .collect();
            let targets = ArrayD::from_shape_vec(IxDyn(&rest), data).expect("sized");
            let loss = if cross_entropy {
                LossOp::CrossEntropy(CrossEntropyOptions {
                    targets: Targets::Classes,
                    ignore_index,
                    label_smoothing: if smooth { 0.1 } else { 0.0 },
                    reduction,
                })
            } else {
                LossOp::Nll {
                    ignore_index,
                    reduction,
                }
            };
            Problem::new(Case::ClassLoss(loss, targets), vec![x])
        })
        .boxed()
}

/// Cross-entropy against probability targets (positive, of the logits' shape, rank 1..=2),
/// label smoothing drawn: both operands get a gradient. Rank 3 would give summed losses in the
/// hundreds, whose finite differences are rounding noise at the tolerance.
pub fn soft_cross_entropy() -> BoxedStrategy<Problem> {
    (dims(1..=2), reduction_kind(), any::<bool>())
        .prop_flat_map(|(d, r, smooth)| {
            let z = array(d.clone(), (-3.0..3.0f64).prop_map(f32_exact).boxed());
            let t = array(d, (0.0..1.0f64).prop_map(f32_exact).boxed());
            (z, t, Just((r, smooth)))
        })
        .prop_map(|(z, t, (reduction, smooth))| {
            let loss = LossOp::CrossEntropy(CrossEntropyOptions {
                targets: Targets::Probabilities,
                ignore_index: None,
                label_smoothing: if smooth { 0.2 } else { 0.0 },
                reduction,
            });
            Problem::new(Case::Loss(loss), vec![z, t])
        })
        .boxed()
}

/// The reshape-based shape ops on rank 0..=4: `squeeze` of a drawn axis (length 1 or not),
/// `unsqueeze` at a drawn place, `flatten` of a drawn range.
pub fn reshaping() -> BoxedStrategy<Problem> {
    let with_ones = prop::collection::vec(prop_oneof![Just(1usize), 1..=MAX_DIM], 1..=4);
    prop_oneof![
        with_ones
            .prop_flat_map(|d| {
                let r = d.len();
                (array(d, general()), 0..r)
            })
            .prop_map(|(x, a)| Problem::new(Case::Squeeze(a), vec![x])),
        dims(0..=4)
            .prop_flat_map(|d| {
                let r = d.len();
                (array(d, general()), 0..=r)
            })
            .prop_map(|(x, a)| Problem::new(Case::Unsqueeze(a), vec![x])),
        dims(1..=4)
            .prop_flat_map(|d| {
                let r = d.len();
                (array(d, general()), 0..r, 0..r)
            })
            .prop_map(|(x, a, b)| Problem::new(Case::Flatten(a.min(b), a.max(b)), vec![x])),
    ]
    .boxed()
}

/// `broadcast_to` of an operand of [`broadcast_pair`] to the pair's common shape.
pub fn broadcast_to() -> BoxedStrategy<Problem> {
    broadcast_pair()
        .prop_flat_map(|(a, b)| {
            let r = a.len().max(b.len());
            let at = |d: &[usize], i: usize| (i + d.len()).checked_sub(r).map_or(1, |k| d[k]);
            let to: Vec<usize> = (0..r).map(|i| at(&a, i).max(at(&b, i))).collect();
            (array(a, general()), Just(to))
        })
        .prop_map(|(x, to)| Problem::new(Case::BroadcastTo(to), vec![x]))
        .boxed()
}

/// `narrow` of a drawn in-range window of a drawn axis, the start from either end.
pub fn narrow() -> BoxedStrategy<Problem> {
    dims(1..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r)
        })
        .prop_flat_map(|(d, axis)| {
            let len = d[axis];
            (array(d, general()), Just(axis), 0..=len).prop_flat_map(move |(x, axis, start)| {
                (
                    Just(x),
                    Just(axis),
                    Just(start),
                    0..=len - start,
                    any::<bool>(),
                )
            })
        })
        .prop_map(|(x, axis, start, length, from_end)| {
            let len = x.shape()[axis] as i64;
            let start = if from_end && start < len as usize {
                start as i64 - len
            } else {
                start as i64
            };
            Problem::new(
                Case::Narrow {
                    axis,
                    start,
                    length,
                },
                vec![x],
            )
        })
        .boxed()
}

/// `index_select` along a drawn axis at 0..=8 drawn positions (repeats included).
pub fn index_select() -> BoxedStrategy<Problem> {
    dims(1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r)
        })
        .prop_flat_map(|(d, axis)| {
            let len = d[axis];
            (
                array(d, general()),
                Just(axis),
                prop::collection::vec(0..len, 0..=MAX_DIM),
            )
        })
        .prop_map(|(x, axis, indices)| Problem::new(Case::IndexSelect { axis, indices }, vec![x]))
        .boxed()
}

/// `gather` along a drawn axis with an index of `x`'s rank, each length at most `x`'s off the
/// axis and 1..=8 along it, positions drawn in range.
pub fn gather() -> BoxedStrategy<Problem> {
    dims(1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r)
        })
        .prop_flat_map(|(d, axis)| {
            let index_dims: Vec<BoxedStrategy<usize>> = d
                .iter()
                .enumerate()
                .map(|(a, &n)| {
                    if a == axis {
                        (1..=MAX_DIM).boxed()
                    } else {
                        (1..=n).boxed()
                    }
                })
                .collect();
            (array(d, general()), Just(axis), index_dims)
        })
        .prop_flat_map(|(x, axis, index_dims)| {
            let len = x.shape()[axis];
            let n: usize = index_dims.iter().product();
            (
                Just(x),
                Just(axis),
                Just(index_dims),
                prop::collection::vec(0..len, n),
            )
        })
        .prop_map(|(x, axis, index_dims, positions)| {
            let data = positions.iter().map(|&p| p as f64).collect();
            let index = ArrayD::from_shape_vec(IxDyn(&index_dims), data).expect("sized");
            Problem::new(Case::Gather { axis, index }, vec![x])
        })
        .boxed()
}

/// `index_add` of a rank 1..=3 source along a drawn axis into a length of 1..=8, at drawn
/// positions (one per slice of the source, repeats included).
pub fn index_add() -> BoxedStrategy<Problem> {
    dims(1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r, 1..=MAX_DIM)
        })
        .prop_flat_map(|(d, axis, len)| {
            let k = d[axis];
            (
                array(d, general()),
                Just(axis),
                Just(len),
                prop::collection::vec(0..len, k),
            )
        })
        .prop_map(|(src, axis, len, indices)| {
            Problem::new(Case::IndexAdd { axis, len, indices }, vec![src])
        })
        .boxed()
}

/// `scatter_add` of a rank 1..=3 source along a drawn axis into a length of 1..=8, with a
/// position drawn for every element (repeats included).
pub fn scatter_add() -> BoxedStrategy<Problem> {
    dims(1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            let n: usize = d.iter().product();
            (Just(d), 0..r, 1..=MAX_DIM, Just(n))
        })
        .prop_flat_map(|(d, axis, len, n)| {
            (
                array(d.clone(), general()),
                Just(axis),
                Just(len),
                prop::collection::vec(0..len, n),
            )
        })
        .prop_map(|(src, axis, len, positions)| {
            let data = positions.iter().map(|&p| p as f64).collect();
            let index = ArrayD::from_shape_vec(src.raw_dim(), data).expect("sized");
            Problem::new(Case::ScatterAdd { axis, len, index }, vec![src])
        })
        .boxed()
}

/// `[..., m, k]·[..., k, n]` with batch axes (rank 1..=2 on one side at least, lengths 1..=3)
/// that broadcast: each operand drops some leading batch axes and has length 1 on others.
pub fn batched_matmul() -> BoxedStrategy<Problem> {
    let batch = prop::collection::vec(1..=3usize, 1..=2);
    (
        batch,
        any::<[bool; 2]>(),
        any::<[bool; 2]>(),
        0..=2usize,
        (1..=4usize, 1..=4usize, 1..=4usize),
    )
        .prop_flat_map(|(batch, ones_a, ones_b, drop, (m, k, n))| {
            let operand = |ones: [bool; 2], drop: usize, tail: [usize; 2]| -> Vec<usize> {
                let mut d: Vec<usize> = batch
                    .iter()
                    .zip(ones)
                    .skip(drop)
                    .map(|(&n, one)| if one { 1 } else { n })
                    .collect();
                d.extend(tail);
                d
            };
            // Only one side drops batch axes, so one keeps rank 3 or more.
            let (drop_a, drop_b) = if drop % 2 == 0 { (drop, 0) } else { (0, drop) };
            (
                array(operand(ones_a, drop_a, [m, k]), general()),
                array(operand(ones_b, drop_b, [k, n]), general()),
            )
        })
        .prop_map(|(a, b)| Problem::new(Case::BatchedMatMul, vec![a, b]))
        .boxed()
}

/// Dropout with a drawn probability (0 and 1 included) and seed on rank 0..=3.
pub fn dropout() -> BoxedStrategy<Problem> {
    let p = prop_oneof![Just(0.0), Just(1.0), 0.0..1.0f64];
    (any_array(0..=3, general()), p, any::<u64>())
        .prop_map(|(x, p, seed)| Problem::new(Case::Dropout { p, seed }, vec![x]))
        .boxed()
}

/// A slice of the leading 1..=rank axes of a rank 1..=4 array: bounds in -10..10 (so out of
/// range and negative ones too) or "to the end", steps 1..=3.
pub fn slice() -> BoxedStrategy<Problem> {
    let bound = prop_oneof![Just(i64::MAX), -10..10i64];
    let range = (-10..10i64, bound, 1..=3i64)
        .prop_map(|(start, end, step)| wengert_tape::SliceAxis { start, end, step });
    dims(1..=4)
        .prop_flat_map(move |d| {
            let r = d.len();
            (
                array(d, general()),
                prop::collection::vec(range.clone(), 1..=r),
            )
        })
        .prop_map(|(x, ranges)| Problem::new(Case::Slice(ranges), vec![x]))
        .boxed()
}

/// A constant pad of 0..=2 elements on each side of each axis of a rank 0..=3 array.
pub fn pad() -> BoxedStrategy<Problem> {
    dims(0..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (
                array(d, general()),
                prop::collection::vec((0..=2usize, 0..=2usize), r),
                general(),
            )
        })
        .prop_map(|(x, pads, value)| Problem::new(Case::Pad(pads, value), vec![x]))
        .boxed()
}

/// Logits `[batch, classes]` and labels drawn in range.
pub fn cross_entropy() -> BoxedStrategy<Problem> {
    (1..=MAX_DIM, 1..=MAX_DIM)
        .prop_flat_map(|(batch, classes)| {
            (
                array(
                    vec![batch, classes],
                    (-3.0..3.0f64).prop_map(f32_exact).boxed(),
                ),
                prop::collection::vec(0..classes, batch),
            )
        })
        .prop_map(|(z, labels)| Problem::new(Case::CrossEntropy(labels), vec![z]))
        .boxed()
}

/// A reduction of a rank 0..=`max_rank` array over all elements or a drawn axis, `keep_dim`
/// drawn. Values per op: distinct (a shuffled grid of sixteenths) for the extremes, whose
/// gradient jumps at a tie; of magnitude 0.5..1.5 for a product; away from 0 for a norm (its
/// kink). A variance's correction is `op`'s, lowered to 0 where a lane is too short for it.
pub fn reduction(op: ReduceOp, max_rank: usize) -> BoxedStrategy<Problem> {
    let extreme = matches!(
        op,
        ReduceOp::Amax | ReduceOp::Amin | ReduceOp::MaxAt | ReduceOp::MinAt
    );
    dims(0..=max_rank)
        .prop_flat_map(move |d| {
            let n: usize = d.iter().product();
            let r = d.len();
            let x = if extreme {
                Just((0..n).collect::<Vec<_>>())
                    .prop_shuffle()
                    .prop_map({
                        let d = d.clone();
                        move |k| {
                            let data = k.iter().map(|&k| k as f64 / 16.0 - 2.0).collect();
                            ArrayD::from_shape_vec(IxDyn(&d), data).expect("sized to the shape")
                        }
                    })
                    .boxed()
            } else {
                let values = match op {
                    ReduceOp::Prod => away_from_zero(0.5, 1.5),
                    ReduceOp::Norm => away_from_zero(0.1, 2.0),
                    _ => general(),
                };
                array(d.clone(), values)
            };
            let axis = if r == 0 {
                Just(None).boxed()
            } else {
                prop_oneof![Just(None), (0..r).prop_map(Some)].boxed()
            };
            (x, axis, any::<bool>())
        })
        .prop_map(move |(x, axis, keep_dim)| {
            let len = axis.map_or(x.len(), |a| x.shape()[a]);
            let fit = |c: f64| if (len as f64) > c { c } else { 0.0 };
            let op = match op {
                ReduceOp::Var(c) => ReduceOp::Var(fit(c)),
                ReduceOp::Std(c) => ReduceOp::Std(fit(c)),
                other => other,
            };
            Problem::new(Case::Reduce { op, axis, keep_dim }, vec![x])
        })
        .boxed()
}

/// One spatial axis of a convolution: its input length and (kernel, stride, padding,
/// dilation), the input long enough for the dilated kernel once padded.
fn conv_axis() -> BoxedStrategy<(usize, [usize; 4])> {
    (1..=3usize, 1..=2usize, 0..=1usize, 1..=2usize, 0..=2usize)
        .prop_map(|(k, stride, pad, dilation, extra)| {
            let reach = (k - 1) * dilation + 1;
            let len = (reach + extra).saturating_sub(2 * pad).max(1);
            (len, [k, stride, pad, dilation])
        })
        .boxed()
}

/// `conv2d` (or `conv1d`) of a batch of 1..=2, 1..=2 groups of 1..=2 input and output
/// channels each, spatial axes of up to 6 with kernels of 1..=3, strides and dilations of
/// 1..=2 and padding of 0..=1, with a bias or not.
pub fn conv(one_d: bool) -> BoxedStrategy<Problem> {
    (
        (1..=2usize, 1..=2usize, 1..=2usize, 1..=2usize),
        conv_axis(),
        conv_axis(),
        any::<bool>(),
    )
        .prop_flat_map(move |((n, groups, cg, og), (h, hk), (w, wk), bias)| {
            let (c, o) = (groups * cg, groups * og);
            let (x, k) = if one_d {
                (vec![n, c, w], vec![o, cg, wk[0]])
            } else {
                (vec![n, c, h, w], vec![o, cg, hk[0], wk[0]])
            };
            let bias = if bias { 1 } else { 0 };
            (
                array(x, general()),
                array(k, general()),
                prop::collection::vec(array(vec![o], general()), bias),
                Just((groups, hk, wk)),
            )
        })
        .prop_map(move |(x, k, bias, (groups, hk, wk))| {
            let case = if one_d {
                Case::Conv1d(wengert_tape::Conv1dArgs {
                    stride: wk[1],
                    padding: wk[2],
                    dilation: wk[3],
                    groups,
                })
            } else {
                Case::Conv2d(wengert_tape::Conv2dArgs {
                    stride: [hk[1], wk[1]],
                    padding: [hk[2], wk[2]],
                    dilation: [hk[3], wk[3]],
                    groups,
                })
            };
            Problem::new(case, [x, k].into_iter().chain(bias).collect())
        })
        .boxed()
}

/// A drawn `conv2d` turned into one of its VJP ops: `conv2d_input_grad(g, w)` or (with
/// `weight`) `conv2d_weight_grad(x, g)`, `g` drawn in the convolution's output shape.
pub fn conv_grad(weight: bool) -> BoxedStrategy<Problem> {
    conv(false)
        .prop_flat_map(move |p| {
            let Case::Conv2d(args) = p.case else {
                unreachable!("conv(false) draws conv2d")
            };
            let (x, w) = (p.inputs[0].shape().to_vec(), p.inputs[1].shape().to_vec());
            let spatial = |axis: usize| {
                let reach = args.dilation[axis] * (w[axis + 2] - 1) + 1;
                (x[axis + 2] + 2 * args.padding[axis] - reach) / args.stride[axis] + 1
            };
            let out = vec![x[0], w[0], spatial(0), spatial(1)];
            let (xa, wa) = (p.inputs[0].clone(), p.inputs[1].clone());
            array(out, general()).prop_map(move |g| {
                if weight {
                    let case = Case::Conv2dWeightGrad(args, w.clone());
                    Problem::new(case, vec![xa.clone(), g])
                } else {
                    let case = Case::Conv2dInputGrad(args, x.clone());
                    Problem::new(case, vec![g, wa.clone()])
                }
            })
        })
        .boxed()
}

/// Which pooling [`pool`] draws.
#[derive(Debug, Clone, Copy)]
pub enum PoolKind {
    Max,
    Avg,
    Adaptive,
}

/// One pooled axis: its length and (kernel, stride, padding), padding at most half the kernel
/// and the input at least the kernel once padded.
fn pool_axis() -> BoxedStrategy<(usize, [usize; 3])> {
    (1..=3usize, 1..=2usize, 0..=1usize, 0..=3usize)
        .prop_map(|(k, stride, pad, extra)| {
            let pad = pad.min(k / 2);
            ((k + extra).saturating_sub(2 * pad).max(1), [k, stride, pad])
        })
        .boxed()
}

/// A pooling of a `[C, H, W]` or `[N, C, H, W]` input (1..=2 of each of N and C), its values
/// distinct and at least 1/64 apart (a max pool's tie is a kink), with windows from
/// [`pool_axis`] or an adaptive size of 1..=4 per axis.
pub fn pool(kind: PoolKind) -> BoxedStrategy<Problem> {
    (
        (1..=2usize, 1..=2usize, any::<bool>()),
        pool_axis(),
        pool_axis(),
        (any::<bool>(), 1..=4usize, 1..=4usize),
    )
        .prop_flat_map(
            move |((n, c, batched), (h, hk), (w, wk), (counted, sh, sw))| {
                let dims = if batched {
                    vec![n, c, h, w]
                } else {
                    vec![c, h, w]
                };
                let len: usize = dims.iter().product();
                let distinct: Vec<f64> = (0..len)
                    .map(|i| (i as f64 - len as f64 / 2.0) / 64.0)
                    .collect();
                (
                    Just(dims),
                    Just(distinct).prop_shuffle(),
                    Just((hk, wk, counted, [sh, sw])),
                )
            },
        )
        .prop_map(move |(dims, values, (hk, wk, counted, size))| {
            let x = ArrayD::from_shape_vec(IxDyn(&dims), values).expect("sized");
            let args = wengert_tape::Pool2dArgs {
                kernel: [hk[0], wk[0]],
                stride: [hk[1], wk[1]],
                padding: [hk[2], wk[2]],
                count_include_pad: counted,
            };
            let case = match kind {
                PoolKind::Max => Case::MaxPool2d(args),
                PoolKind::Avg => Case::AvgPool2d(args),
                PoolKind::Adaptive => Case::AdaptiveAvgPool2d(size),
            };
            Problem::new(case, vec![x])
        })
        .boxed()
}

/// `embedding` of a table of 1..=6 rows of 1..=4 columns at indices of rank 0..=2 (axes of
/// 1..=4; repeats likely). With `padding_picked`, `padding_idx` is a row the indices pick (its
/// gradient is 0 by definition, not the finite differences': for the checks of the recorded
/// VJP); without, a row they do not pick, or none.
pub fn embedding(padding_picked: bool) -> BoxedStrategy<Problem> {
    (
        1..=6usize,
        1..=4usize,
        prop::collection::vec(1..=4usize, 0..=2),
    )
        .prop_flat_map(|(num, dim, idx_dims)| {
            let positions: usize = idx_dims.iter().product();
            (
                array(vec![num, dim], general()),
                prop::collection::vec(0..num, positions),
                Just(idx_dims),
                0..num,
            )
        })
        .prop_map(move |(table, rows, idx_dims, drawn)| {
            let padding_idx = if padding_picked {
                Some(rows[drawn % rows.len()])
            } else {
                (drawn..table.shape()[0]).find(|r| !rows.contains(r))
            };
            let data = rows.iter().map(|&r| r as f64).collect();
            let indices = ArrayD::from_shape_vec(idx_dims, data).expect("sized");
            Problem::new(
                Case::Embedding {
                    padding_idx,
                    indices,
                },
                vec![table],
            )
        })
        .boxed()
}

/// `layer_norm` of an array of rank 1..=3 (axes of 1..=4) over 1..=rank trailing axes, with
/// or without `gamma` and `beta` of the trailing shape, eps 0.1 or 1 (a drawn row of nearly
/// equal values is ill-conditioned at PyTorch's 1e-5, for finite differences and for f32
/// against f64 alike; the report's fixed, spread rows use 1e-5).
pub fn layer_norm() -> BoxedStrategy<Problem> {
    prop::collection::vec(1..=4usize, 1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 1..=r, any::<bool>(), any::<bool>(), any::<bool>())
        })
        .prop_flat_map(|(d, axes, gamma, beta, small_eps)| {
            let trailing = d[d.len() - axes..].to_vec();
            let count = usize::from(gamma) + usize::from(beta);
            (
                array(d, general()),
                prop::collection::vec(array(trailing, general()), count),
                Just((axes, gamma, beta, if small_eps { 0.1 } else { 1.0 })),
            )
        })
        .prop_map(|(x, affine, (axes, gamma, beta, eps))| {
            let case = Case::LayerNorm {
                axes,
                eps,
                gamma,
                beta,
            };
            Problem::new(case, [x].into_iter().chain(affine).collect())
        })
        .boxed()
}

/// A drawn pooling turned into one of the pools' VJP ops, its operand drawn in the shape
/// the op takes (the pooled one, or x's for `max_pool2d_select`); a max pool's x is held.
pub fn pool_grad(kind: PoolKind, select: bool) -> BoxedStrategy<Problem> {
    pool(kind)
        .prop_flat_map(move |p| {
            let x = p.inputs[0].clone();
            let dims = x.shape().to_vec();
            let rank = dims.len();
            let pooled = |args: &wengert_tape::Pool2dArgs| {
                let mut out = dims.clone();
                for axis in 0..2 {
                    let len = dims[rank - 2 + axis] + 2 * args.padding[axis];
                    out[rank - 2 + axis] = (len - args.kernel[axis]) / args.stride[axis] + 1;
                }
                out
            };
            let (case, operand) = match p.case {
                Case::MaxPool2d(args) if select => (Case::MaxPool2dSelect(args, x), dims.clone()),
                Case::MaxPool2d(args) => (Case::MaxPool2dGrad(args, x), pooled(&args)),
                Case::AvgPool2d(args) => (Case::AvgPool2dGrad(args, dims.clone()), pooled(&args)),
                Case::AdaptiveAvgPool2d(size) => {
                    let mut out = dims.clone();
                    out[rank - 2..].copy_from_slice(&size);
                    (Case::AdaptiveAvgPool2dGrad(size, dims.clone()), out)
                }
                _ => unreachable!("pool draws pools"),
            };
            array(operand, general()).prop_map(move |g| Problem::new(case.clone(), vec![g]))
        })
        .boxed()
}

/// `batch_norm` of an array `[N, C, ...]` of rank 2..=4 (axes of 1..=3, at least 2 values
/// per channel in training), with or without `gamma` and `beta` `[C]`, in training or in
/// evaluation by drawn running estimates (a positive variance), eps 0.1 or 1 (a channel of
/// nearly equal values is ill-conditioned at PyTorch's 1e-5, as for `layer_norm`).
pub fn batch_norm() -> BoxedStrategy<Problem> {
    (prop::collection::vec(1..=3usize, 2..=4), any::<bool>())
        .prop_map(|(mut d, training)| {
            if training && d[0] * d[2..].iter().product::<usize>() < 2 {
                d[0] = 2;
            }
            (d, training)
        })
        .prop_flat_map(|(d, training)| {
            let c = d[1];
            let running = (
                array(vec![c], general()),
                array(vec![c], positive()),
                Just(training),
            )
                .prop_map(|(m, v, training)| (!training).then_some((m, v)));
            let flags = (any::<bool>(), any::<bool>(), any::<bool>());
            (Just(d), flags, running)
        })
        .prop_flat_map(|(d, (gamma, beta, small_eps), running)| {
            let c = d[1];
            let count = usize::from(gamma) + usize::from(beta);
            (
                array(d, general()),
                prop::collection::vec(array(vec![c], general()), count),
                Just((gamma, beta, if small_eps { 0.1 } else { 1.0 }, running)),
            )
        })
        .prop_map(|(x, affine, (gamma, beta, eps, running))| {
            let case = Case::BatchNorm {
                eps,
                gamma,
                beta,
                running,
            };
            Problem::new(case, [x].into_iter().chain(affine).collect())
        })
        .boxed()
}

/// `concat` of 1..=4 arrays of rank 1..=3 along a drawn axis, each with its own length 1..=4
/// there.
pub fn concat() -> BoxedStrategy<Problem> {
    dims(1..=3)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r, prop::collection::vec(1..=4usize, 1..=4))
        })
        .prop_flat_map(|(d, axis, lengths)| {
            let arrays: Vec<_> = lengths
                .into_iter()
                .map(|n| {
                    let mut d = d.clone();
                    d[axis] = n;
                    array(d, general())
                })
                .collect();
            (arrays, Just(axis))
        })
        .prop_map(|(arrays, axis)| Problem::new(Case::Concat(axis), arrays))
        .boxed()
}

/// `stack` of 1..=4 arrays of one shape of rank 0..=3 along a new axis drawn in `0..=rank`.
pub fn stack() -> BoxedStrategy<Problem> {
    (dims(0..=3), 1..=4usize)
        .prop_flat_map(|(d, count)| {
            let r = d.len();
            let arrays = prop::collection::vec(array(d, general()), count);
            (arrays, 0..=r)
        })
        .prop_map(|(arrays, axis)| Problem::new(Case::Stack(axis), arrays))
        .boxed()
}

/// `where_cond` on a broadcasting pair, the condition (zeros and non-zeros) of either
/// operand's shape, of none (a scalar) or of a shape that broadcasts both.
pub fn where_cond() -> BoxedStrategy<Problem> {
    (broadcast_pair(), 0..4usize)
        .prop_flat_map(|((a, b), which)| {
            let rank = a.len().max(b.len());
            let wide: Vec<usize> = (0..rank)
                .map(|i| {
                    let at = |d: &[usize]| (i + d.len()).checked_sub(rank).map_or(1, |j| d[j]);
                    at(&a).max(at(&b))
                })
                .collect();
            let c = [a.clone(), b.clone(), vec![], wide][which].clone();
            let mask = prop_oneof![Just(0.0), Just(1.0), Just(-2.5)].boxed();
            (array(c, mask), array(a, general()), array(b, general()))
        })
        .prop_map(|(c, a, b)| Problem::new(Case::Where(c), vec![a, b]))
        .boxed()
}

/// Binary cross-entropy with a positive `pos_weight` of the last axis's length.
pub fn weighted_bce() -> BoxedStrategy<Problem> {
    (dims(0..=3), reduction_kind())
        .prop_flat_map(|(d, r)| {
            let unit = (0.0..1.0f64).prop_map(f32_exact).boxed();
            let columns = d.last().copied().unwrap_or(1);
            (
                array(d.clone(), general()),
                array(d, unit),
                array(vec![columns], positive()),
                Just(r),
            )
        })
        .prop_map(|(x, t, weight, reduction)| {
            let case = Case::WeightedLoss {
                loss: LossOp::BceWithLogits { reduction },
                targets: None,
                weight,
            };
            Problem::new(case, vec![x, t])
        })
        .boxed()
}

/// [`class_loss`] with positive class weights.
pub fn weighted_class_loss(cross_entropy: bool) -> BoxedStrategy<Problem> {
    class_loss(cross_entropy)
        .prop_flat_map(|p| {
            let d = p.inputs[0].shape().to_vec();
            let classes = d[usize::from(d.len() >= 2)];
            (Just(p), array(vec![classes], positive()))
        })
        .prop_map(|(p, weight)| {
            let Case::ClassLoss(loss, targets) = p.case else {
                unreachable!("class_loss draws class losses")
            };
            let case = Case::WeightedLoss {
                loss,
                targets: Some(targets),
                weight,
            };
            Problem::new(case, p.inputs)
        })
        .boxed()
}

/// [`soft_cross_entropy`] with positive class weights.
pub fn weighted_soft_cross_entropy() -> BoxedStrategy<Problem> {
    soft_cross_entropy()
        .prop_flat_map(|p| {
            let d = p.inputs[0].shape().to_vec();
            let classes = d[usize::from(d.len() >= 2)];
            (Just(p), array(vec![classes], positive()))
        })
        .prop_map(|(p, weight)| {
            let Case::Loss(loss) = p.case else {
                unreachable!("soft_cross_entropy draws a loss")
            };
            let case = Case::WeightedLoss {
                loss,
                targets: None,
                weight,
            };
            Problem::new(case, p.inputs)
        })
        .boxed()
}

/// Calls `$then! { name => strategy, ... }` with every op's strategy apart from the elementwise
/// ones (each harness runs those over `UnaryOp::ALL` and `BinaryOp::ALL`), so that the gradient
/// checks and the f32 comparison share one list and one test per op. The strategies are written
/// against the aliases `s` (this module) and `Case`, which `$then` must bring into scope where
/// it expands them (test names such as `matmul` would shadow the strategy functions).
macro_rules! for_each_op {
    ($then:ident) => {
        $then! {
            matmul => s::matmul(),
            linear => s::linear(),
            sum => s::unary(Case::Sum, s::general()),
            mean => s::unary(Case::Mean, s::general()),
            sum_axis => s::along_axis(false),
            mean_axis => s::along_axis(true),
            reshape => s::reshape(),
            transpose => s::transpose(true),
            transpose_axes => s::transpose(false),
            softmax => s::softmax(Case::Softmax),
            log_softmax => s::softmax(Case::LogSoftmax),
            mse => s::same_shape(Case::Mse, 0..=3),
            cross_entropy => s::cross_entropy(),
            custom_op => s::same_shape(Case::Custom, 0..=3),
            amax => s::reduction(wengert_tape::ReduceOp::Amax, 3),
            amin => s::reduction(wengert_tape::ReduceOp::Amin, 3),
            max_dim => s::reduction(wengert_tape::ReduceOp::MaxAt, 3),
            min_dim => s::reduction(wengert_tape::ReduceOp::MinAt, 3),
            logsumexp => s::reduction(wengert_tape::ReduceOp::LogSumExp, 3),
            // Rank 2 at most: a product of 512 factors near 1.5 overflows f32.
            prod => s::reduction(wengert_tape::ReduceOp::Prod, 2),
            var => s::reduction(wengert_tape::ReduceOp::Var(1.0), 3),
            var_biased => s::reduction(wengert_tape::ReduceOp::Var(0.0), 3),
            std => s::reduction(wengert_tape::ReduceOp::Std(1.0), 3),
            std_biased => s::reduction(wengert_tape::ReduceOp::Std(0.0), 3),
            norm => s::reduction(wengert_tape::ReduceOp::Norm, 3),
            softmax_axis => s::softmax_along(false),
            log_softmax_axis => s::softmax_along(true),
            l1_loss => s::distance_loss(wengert_tape::Distance::L1),
            smooth_l1_loss => s::distance_loss(wengert_tape::Distance::SmoothL1 { beta: 1.0 }),
            huber_loss => s::distance_loss(wengert_tape::Distance::Huber { delta: 0.5 }),
            binary_cross_entropy_with_logits => s::bce_with_logits(),
            nll_loss => s::class_loss(false),
            cross_entropy_with_classes => s::class_loss(true),
            cross_entropy_with_probabilities => s::soft_cross_entropy(),
            squeeze_unsqueeze_flatten => s::reshaping(),
            broadcast_to => s::broadcast_to(),
            narrow => s::narrow(),
            index_select => s::index_select(),
            gather => s::gather(),
            batched_matmul => s::batched_matmul(),
            dropout => s::dropout(),
            slice => s::slice(),
            pad => s::pad(),
            concat => s::concat(),
            stack => s::stack(),
            where_cond => s::where_cond(),
            binary_cross_entropy_with_logits_weighted => s::weighted_bce(),
            nll_loss_weighted => s::weighted_class_loss(false),
            cross_entropy_weighted => s::weighted_class_loss(true),
            cross_entropy_weighted_probabilities => s::weighted_soft_cross_entropy(),
            index_add => s::index_add(),
            scatter_add => s::scatter_add(),
            conv2d => s::conv(false),
            conv1d => s::conv(true),
            max_pool2d => s::pool(s::PoolKind::Max),
            avg_pool2d => s::pool(s::PoolKind::Avg),
            adaptive_avg_pool2d => s::pool(s::PoolKind::Adaptive),
            embedding => s::embedding(false),
            layer_norm => s::layer_norm(),
            batch_norm => s::batch_norm(),
            conv2d_input_grad => s::conv_grad(false),
            conv2d_weight_grad => s::conv_grad(true),
            max_pool2d_grad => s::pool_grad(s::PoolKind::Max, false),
            max_pool2d_select => s::pool_grad(s::PoolKind::Max, true),
            avg_pool2d_grad => s::pool_grad(s::PoolKind::Avg, false),
            adaptive_avg_pool2d_grad => s::pool_grad(s::PoolKind::Adaptive, false),
        }
    };
}

/// Runs `check` on [`CASES`] draws of `strategy`, panicking with proptest's shrunk
/// counterexample if one fails.
pub fn run<T: std::fmt::Debug>(
    strategy: BoxedStrategy<T>,
    check: impl Fn(&T) -> Result<(), proptest::test_runner::TestCaseError>,
) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(CASES));
    if let Err(e) = runner.run(&strategy, |value| check(&value)) {
        panic!("{e}");
    }
}
