//! Batched matrix products `[..., m, k]·[..., k, n] → [..., m, n]` (`torch.matmul` for
//! operands of rank 2 and more), the batch axes broadcast as NumPy does, each product on
//! [`gemm`].
//!
//! Parallel and deterministic: the forward gives each output matrix to one task; each input
//! gradient gives each of its matrices to one task, which adds the products of every output
//! matrix it was broadcast to in the output's row-major order. Within a product, [`gemm`] is
//! bit-identical for any thread count, so the whole is too.

use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::matmul::gemm;
use super::walk::walk2;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const MATMUL: &str = "matmul";

/// Below this many multiply-adds in all, the batch runs on the calling thread (as [`gemm`]
/// does for one product: waking a worker costs more).
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// The batch layout of a product: the output's batch dims, and each operand's batch dims
/// aligned to them (1 on the axes it lacks) with their strides in matrices (0 on an axis the
/// operand is broadcast along).
#[derive(Debug, Clone, Copy)]
struct Plan {
    m: usize,
    k: usize,
    n: usize,
    rank: usize,
    batch: [usize; MAX_RANK],
    a_dims: [usize; MAX_RANK],
    b_dims: [usize; MAX_RANK],
    a_strides: [usize; MAX_RANK],
    b_strides: [usize; MAX_RANK],
    out: Shape,
}

impl Plan {
    fn new(a: &Shape, b: &Shape) -> Result<Plan> {
        for s in [a, b] {
            if s.rank() < 2 {
                return Err(Error::WrongRank {
                    op: MATMUL,
                    expected: "at least 2",
                    shape: *s,
                });
            }
        }
        let mismatch = Error::ShapeMismatch {
            op: MATMUL,
            lhs: *a,
            rhs: *b,
        };
        let (ad, bd) = (a.dims(), b.dims());
        let (ra, rb) = (ad.len() - 2, bd.len() - 2);
        let (m, k, k2, n) = (ad[ra], ad[ra + 1], bd[rb], bd[rb + 1]);
        if k != k2 {
            return Err(mismatch);
        }
        let rank = ra.max(rb);
        let align = |own: &[usize]| {
            let mut dims = [1usize; MAX_RANK];
            dims[rank - own.len()..rank].copy_from_slice(own);
            dims
        };
        let (a_dims, b_dims) = (align(&ad[..ra]), align(&bd[..rb]));
        let mut batch = [0usize; MAX_RANK];
        for i in 0..rank {
            batch[i] = match (a_dims[i], b_dims[i]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(mismatch),
            };
        }
        let mut out_dims = [0usize; MAX_RANK + 2];
        out_dims[..rank].copy_from_slice(&batch[..rank]);
        out_dims[rank] = m;
        out_dims[rank + 1] = n;
        let out = Shape::new(&out_dims[..rank + 2])?;
        Ok(Plan {
            m,
            k,
            n,
            rank,
            batch,
            a_dims,
            b_dims,
            a_strides: matrix_strides(&a_dims[..rank]),
            b_strides: matrix_strides(&b_dims[..rank]),
            out,
        })
    }

    /// The number of output matrices.
    fn count(&self) -> usize {
        self.batch[..self.rank].iter().product()
    }

    /// The matrix offsets (in matrices) into `a` and `b` of output matrix `j`.
    #[inline]
    fn operands(&self, mut j: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for axis in (0..self.rank).rev() {
            let i = j % self.batch[axis];
            j /= self.batch[axis];
            oa += i * self.a_strides[axis];
            ob += i * self.b_strides[axis];
        }
        (oa, ob)
    }
}

/// Row-major strides of `dims` in matrices, 0 on axes of length 1 (broadcast).
fn matrix_strides(dims: &[usize]) -> [usize; MAX_RANK] {
    let mut strides = [0usize; MAX_RANK];
    let mut acc = 1usize;
    for axis in (0..dims.len()).rev() {
        if dims[axis] != 1 {
            strides[axis] = acc;
        }
        acc = acc.saturating_mul(dims[axis]);
    }
    strides
}

/// The output shape `[...batch, m, n]`: both operands have rank 2 or more, `a`'s last axis is
/// `b`'s second-to-last, and the batch axes broadcast. Errors name both shapes.
///
/// ```
/// use wengert_ops::{kernels::batched_matmul::batched_matmul_shape, Shape};
/// let a = Shape::new(&[4, 1, 2, 3]).unwrap();
/// let b = Shape::new(&[5, 3, 7]).unwrap();
/// assert_eq!(batched_matmul_shape(&a, &b).unwrap().dims(), &[4, 5, 2, 7]);
/// ```
pub fn batched_matmul_shape(a: &Shape, b: &Shape) -> Result<Shape> {
    Ok(Plan::new(a, b)?.out)
}

fn view<E: Float>(data: &[E], rows: usize, cols: usize, at: usize) -> ArrayView2<'_, E> {
    let len = rows * cols;
    ArrayView2::from_shape((rows, cols), &data[at * len..(at + 1) * len])
        .expect("a batch holds whole matrices")
}

fn view_mut<E: Float>(data: &mut [E], rows: usize, cols: usize) -> ArrayViewMut2<'_, E> {
    ArrayViewMut2::from_shape((rows, cols), data).expect("a chunk is one matrix")
}

/// Runs `f(j, chunk)` on each `len`-element chunk of `out`, in parallel when the batch has
/// `macs` multiply-adds or more.
fn each_matrix<E: Float>(
    out: &mut [E],
    len: usize,
    macs: usize,
    f: impl Fn(usize, &mut [E]) + Sync + Send,
) {
    if len == 0 {
        return;
    }
    if macs >= PARALLEL_MIN_MACS && out.len() > len {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(j, c)| f(j, c));
    } else {
        for (j, c) in out.chunks_mut(len).enumerate() {
            f(j, c);
        }
    }
}

/// `out = a·b`, matrix by matrix (shapes as [`batched_matmul_shape`] checked).
pub fn batched_matmul<E: Float>(a: TensorRef<'_, E>, b: TensorRef<'_, E>, out: &mut [E]) {
    let Ok(p) = Plan::new(a.shape(), b.shape()) else {
        return;
    };
    let (ad, bd) = (a.data(), b.data());
    let macs = p.count().saturating_mul(p.m * p.k * p.n);
    each_matrix(out, p.m * p.n, macs, |j, c| {
        let (ia, ib) = p.operands(j);
        let (x, y) = (view(ad, p.m, p.k, ia), view(bd, p.k, p.n, ib));
        gemm(E::one(), x, y, E::zero(), view_mut(c, p.m, p.n));
    });
}

/// C = A·B per matrix: dA = Σ dC·Bᵀ (`index` 0), dB = Σ Aᵀ·dC (`index` 1), each sum over the
/// output matrices the operand's matrix was broadcast to, in the output's row-major order.
/// Adds into `gi` when `accumulate`, overwrites it otherwise.
pub fn batched_matmul_vjp<E: Float>(
    a: TensorRef<'_, E>,
    b: TensorRef<'_, E>,
    g: &[E],
    index: usize,
    gi: &mut [E],
    accumulate: bool,
) {
    let Ok(p) = Plan::new(a.shape(), b.shape()) else {
        return;
    };
    let (ad, bd) = (a.data(), b.data());
    let (rows, cols, own_dims) = if index == 0 {
        (p.m, p.k, p.a_dims)
    } else {
        (p.k, p.n, p.b_dims)
    };
    // The output's batch strides, in matrices, and the axes this operand was broadcast along.
    let out_strides = matrix_strides(&p.batch[..p.rank]);
    let mut free = [1usize; MAX_RANK];
    for axis in 0..p.rank {
        if own_dims[axis] == 1 {
            free[axis] = p.batch[axis];
        }
    }
    let macs = p.count().saturating_mul(p.m * p.k * p.n);
    each_matrix(gi, rows * cols, macs, |t, dst| {
        // The output matrices this one fed: its own index on the unbroadcast axes, every
        // index on the broadcast ones.
        let mut base = 0;
        let mut rest = t;
        for axis in (0..p.rank).rev() {
            let i = rest % own_dims[axis];
            rest /= own_dims[axis];
            base += i * out_strides[axis];
        }
        let mut first = !accumulate;
        walk2(&free[..p.rank], &out_strides, &[0; MAX_RANK], |_, o, _| {
            let j = base + o;
            let (ia, ib) = p.operands(j);
            let gj = view(g, p.m, p.n, j);
            let beta = if first { E::zero() } else { E::one() };
            first = false;
            let c = view_mut(dst, rows, cols);
            if index == 0 {
                gemm(E::one(), gj, view(bd, p.k, p.n, ib).t(), beta, c);
            } else {
                gemm(E::one(), view(ad, p.m, p.k, ia).t(), gj, beta, c);
            }
        });
        if first {
            // Broadcast to no output matrix at all (an empty batch axis): a zero gradient.
            dst.fill(E::zero());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// The product by the book: for every output element, its batch index mapped into each
    /// operand by NumPy's rules, then a dot product.
    fn naive(a: &[f64], sa: &Shape, b: &[f64], sb: &Shape, out: &Shape) -> Vec<f64> {
        let (ra, ro) = (sa.rank(), out.rank());
        let k = sa.dims()[ra - 1];
        let pick = |s: &Shape, idx: &[usize], i: usize, j: usize| {
            let r = s.rank();
            let off = ro - r;
            let mut own: Vec<usize> = (0..r - 2)
                .map(|a| if s.dims()[a] == 1 { 0 } else { idx[a + off] })
                .collect();
            own.push(i);
            own.push(j);
            ravel(&own, s.dims())
        };
        (0..out.numel())
            .map(|e| {
                let idx = unravel(e, out.dims());
                let (i, j) = (idx[ro - 2], idx[ro - 1]);
                (0..k)
                    .map(|p| a[pick(sa, &idx, i, p)] * b[pick(sb, &idx, p, j)])
                    .sum()
            })
            .collect()
    }

    fn check(da: &[usize], db: &[usize], seed: u64) -> f64 {
        let (sa, sb) = (shape(da), shape(db));
        let out = batched_matmul_shape(&sa, &sb).unwrap();
        let (a, b) = (values(sa.numel(), seed), values(sb.numel(), seed + 1));
        let run = |a: &[f64], b: &[f64]| {
            let mut y = vec![f64::NAN; out.numel()];
            batched_matmul(
                TensorRef::trusted(&sa, a),
                TensorRef::trusted(&sb, b),
                &mut y,
            );
            y
        };
        let got = run(&a, &b);
        for (x, y) in got.iter().zip(naive(&a, &sa, &b, &sb, &out)) {
            assert!((x - y).abs() < 1e-12, "{da:?} {db:?}");
        }
        let g = values(out.numel(), seed + 2);
        let mut worst = 0.0f64;
        for index in 0..2 {
            let f = |v: &[f64]| if index == 0 { run(v, &b) } else { run(&a, v) };
            let vjp = |v: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                let (x, y) = if index == 0 { (v, &b[..]) } else { (&a[..], v) };
                let (x, y) = (TensorRef::trusted(&sa, x), TensorRef::trusted(&sb, y));
                batched_matmul_vjp(x, y, g, index, gi, acc);
            };
            let at = if index == 0 { &a } else { &b };
            worst = worst.max(fd_error(&f, &vjp, at, &g));
        }
        worst
    }

    #[test]
    fn products_match_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        let cases: &[(&[usize], &[usize])] = &[
            (&[3, 2, 4], &[3, 4, 5]),
            (&[2, 3], &[4, 3, 2]),
            (&[4, 2, 3], &[3, 2]),
            (&[2, 1, 2, 3], &[3, 3, 4]),
            (&[1, 2, 3], &[2, 1, 3, 2]),
            (&[2, 3], &[3, 4]),
            (&[0, 2, 3], &[3, 4]),
            (&[2, 2, 0], &[2, 0, 3]),
            (&[2, 0, 3], &[1, 3, 2]),
            (&[1, 2, 3], &[0, 3, 2]),
        ];
        for &(da, db) in cases {
            let err = check(da, db, 4);
            assert!(err < FD_TOL, "{da:?} {db:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst batched matmul: {worst:e}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        for (da, db) in [
            (&[2usize, 3, 4][..], &[2usize, 5, 6][..]),
            (&[2, 3, 4], &[3, 4, 6]),
            (&[3], &[3, 4]),
        ] {
            let (sa, sb) = (shape(da), shape(db));
            let err = batched_matmul_shape(&sa, &sb).unwrap_err();
            assert!(
                matches!(err, Error::ShapeMismatch { op: MATMUL, lhs, rhs } if lhs == sa && rhs == sb)
                    || matches!(err, Error::WrongRank { op: MATMUL, .. }),
                "{da:?} {db:?}: {err}"
            );
        }
        let err = batched_matmul_shape(&shape(&[2, 1, 1, 1, 1, 3]), &shape(&[2, 1, 1, 1, 3, 4]));
        assert!(err.is_ok());
        let err = batched_matmul_shape(&shape(&[2, 1, 1, 1, 1, 3]), &shape(&[3, 4]));
        assert!(err.is_ok());
    }

    #[test]
    fn results_are_bit_identical_for_any_thread_count() {
        // Big enough to run the batch in parallel (and each product through gemm's own split).
        let (sa, sb) = (shape(&[4, 1, 32, 64]), shape(&[4, 64, 64]));
        let out = batched_matmul_shape(&sa, &sb).unwrap();
        let (a, b) = (values(sa.numel(), 1), values(sb.numel(), 2));
        let g = values(out.numel(), 3);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (ta, tb) = (
                    TensorRef::trusted(&sa, &a[..]),
                    TensorRef::trusted(&sb, &b[..]),
                );
                let mut y = vec![0.0; out.numel()];
                batched_matmul(ta, tb, &mut y);
                let mut da = vec![0.0; a.len()];
                let mut db = vec![0.0; b.len()];
                batched_matmul_vjp(ta, tb, &g, 0, &mut da, false);
                batched_matmul_vjp(ta, tb, &g, 1, &mut db, false);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&y), bits(&da), bits(&db))
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_broadcasts(
            batch_a in proptest::collection::vec(1usize..3, 0..3),
            batch_b in proptest::collection::vec(1usize..3, 0..3),
            m in 1usize..4, k in 0usize..4, n in 1usize..4,
            seed in 0u64..1000,
        ) {
            // Make the batches broadcast: where both have an axis, one of them is 1 or equal.
            let r = batch_a.len().min(batch_b.len());
            let mut ba = batch_a.clone();
            let la = ba.len();
            for i in 0..r {
                let (x, y) = (&mut ba[la - 1 - i], batch_b[batch_b.len() - 1 - i]);
                if *x != y && y != 1 {
                    *x = 1;
                }
            }
            let da: Vec<usize> = ba.iter().copied().chain([m, k]).collect();
            let db: Vec<usize> = batch_b.iter().copied().chain([k, n]).collect();
            prop_assert!(check(&da, &db, seed) < FD_TOL);
        }
    }
}
