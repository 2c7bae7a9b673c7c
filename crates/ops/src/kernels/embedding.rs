//! `embedding`: rows of a `[num, dim]` table picked by indices stored as floats
//! (`torch.nn.functional.embedding`). The output has the indices' shape followed by `dim`.
//!
//! An index must be a whole number in `0..num`; anything else is an
//! [`IndexOutOfRange`](Error::IndexOutOfRange) error from the forward, naming its position,
//! and the output is left untouched. The VJP scatter-adds the output's gradient into the
//! table's rows in the indices' row-major order, so repeated indices add up in the same order
//! on every run. As in PyTorch, an optional `padding_idx` row receives no gradient.

use super::unary::store;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const EMBEDDING: &str = "embedding";

/// The output shape `[...indices, dim]` for a `table` `[num, dim]`; `padding_idx`, when given,
/// must name a row.
///
/// ```
/// use wengert_ops::kernels::embedding::embedding_shape;
/// use wengert_ops::Shape;
/// let idx = Shape::new(&[32, 16]).unwrap();
/// let table = Shape::new(&[100, 8]).unwrap();
/// assert_eq!(embedding_shape(&idx, &table, None).unwrap().dims(), &[32, 16, 8]);
/// ```
pub fn embedding_shape(
    indices: &Shape,
    table: &Shape,
    padding_idx: Option<usize>,
) -> Result<Shape> {
    if table.rank() != 2 {
        return Err(Error::WrongRank {
            op: EMBEDDING,
            expected: "2 (the table [num, dim])",
            shape: *table,
        });
    }
    let (num, dim) = (table.dims()[0], table.dims()[1]);
    if let Some(p) = padding_idx.filter(|&p| p >= num) {
        return Err(Error::InvalidArgument {
            op: EMBEDDING,
            argument: "padding_idx",
            value: p as f64,
            requirement: format!("it must name a row of the table {table}"),
        });
    }
    let r = indices.rank();
    if r + 1 > MAX_RANK {
        return Err(Error::RankTooHigh {
            rank: r + 1,
            max: MAX_RANK,
        });
    }
    let mut dims = [0usize; MAX_RANK];
    dims[..r].copy_from_slice(indices.dims());
    dims[r] = dim;
    Shape::new(&dims[..=r])
}

/// The row index `v` names in a table of `num` rows, or the error saying it names none.
#[inline]
fn row<E: Float>(at: usize, v: E, num: usize) -> Result<usize> {
    let f = Float::to_f64(v);
    if f >= 0.0 && f.fract() == 0.0 && f < num as f64 {
        Ok(f as usize)
    } else {
        Err(Error::IndexOutOfRange {
            op: EMBEDDING,
            position: at,
            index: f,
            len: num,
        })
    }
}

/// `out[p, :] = table[indices[p], :]` for every position `p` (shapes as [`embedding_shape`]
/// checked). Every index is checked before anything is written.
pub fn embedding<E: Float>(table: TensorRef<'_, E>, indices: &[E], out: &mut [E]) -> Result<()> {
    let (num, dim) = (table.shape().dims()[0], table.shape().dims()[1]);
    for (at, &v) in indices.iter().enumerate() {
        row(at, v, num)?;
    }
    if dim == 0 {
        return Ok(());
    }
    let data = table.data();
    for (dst, &v) in out.chunks_exact_mut(dim).zip(indices) {
        let r = Float::to_f64(v) as usize;
        dst.copy_from_slice(&data[r * dim..(r + 1) * dim]);
    }
    Ok(())
}

/// y = embedding(table, idx): `dtable[idx[p], :] += dy[p, :]` for each position `p` in order,
/// skipping `padding_idx`'s row. Adds into `gi` when `ACC`, overwrites it otherwise (rows no
/// index names get 0). Indices are as [`embedding`] checked them; a bad one sends nothing.
pub fn embedding_vjp<E: Float, const ACC: bool>(
    table: &Shape,
    indices: &[E],
    padding_idx: Option<usize>,
    g: &[E],
    gi: &mut [E],
) {
    let (num, dim) = (table.dims()[0], table.dims()[1]);
    if !ACC {
        gi[..num * dim].fill(E::zero());
    }
    if dim == 0 {
        return;
    }
    for (at, (src, &v)) in g.chunks_exact(dim).zip(indices).enumerate() {
        let Ok(r) = row(at, v, num) else { continue };
        if Some(r) == padding_idx {
            continue;
        }
        for (d, &s) in gi[r * dim..(r + 1) * dim].iter_mut().zip(src) {
            store::<E, true>(d, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    #[test]
    fn rows_are_gathered_and_gradients_scattered_in_order() {
        let t = shape(&[3, 2]);
        let table = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let idx = [2.0, 0.0, 2.0, 1.0];
        let out = embedding_shape(&shape(&[2, 2]), &t, None).unwrap();
        assert_eq!(out.dims(), &[2, 2, 2]);
        let mut y = [0.0; 8];
        embedding(TensorRef::trusted(&t, &table), &idx, &mut y).unwrap();
        assert_eq!(y, [5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 3.0, 4.0]);
        let g = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
        let mut gi = [f64::NAN; 6];
        embedding_vjp::<f64, false>(&t, &idx, None, &g, &mut gi);
        assert_eq!(gi, [2.0, 20.0, 4.0, 40.0, 4.0, 40.0]);
        // padding_idx 2 gets nothing; ACC adds to what is there.
        let mut gi = [1.0; 6];
        embedding_vjp::<f64, true>(&t, &idx, Some(2), &g, &mut gi);
        assert_eq!(gi, [3.0, 21.0, 5.0, 41.0, 1.0, 1.0]);
    }

    #[test]
    fn bad_indices_are_errors_that_write_nothing() {
        let t = shape(&[3, 2]);
        let table = values(6, 1);
        for (bad, at) in [
            (3.0, 1),
            (-1.0, 0),
            (1.5, 2),
            (f64::NAN, 1),
            (f64::INFINITY, 0),
        ] {
            let mut idx = [0.0, 1.0, 2.0];
            idx[at] = bad;
            let mut y = [7.0; 6];
            let err = embedding(TensorRef::trusted(&t, &table), &idx, &mut y).unwrap_err();
            assert!(
                matches!(err, Error::IndexOutOfRange { op: EMBEDDING, position, len: 3, .. } if position == at),
                "{bad}: {err}"
            );
            assert_eq!(y, [7.0; 6]);
        }
        let err =
            embedding(TensorRef::trusted(&t, &table), &[0.0, 3.0], &mut [0.0; 4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "embedding: index 3 at position 1 is not a whole number in 0..3"
        );
        assert!(matches!(
            embedding_shape(&shape(&[2]), &shape(&[3]), None),
            Err(Error::WrongRank { op: EMBEDDING, .. })
        ));
        assert!(matches!(
            embedding_shape(&shape(&[2]), &t, Some(3)),
            Err(Error::InvalidArgument {
                argument: "padding_idx",
                ..
            })
        ));
        assert!(matches!(
            embedding_shape(&shape(&[1, 1, 1, 1, 1, 1]), &t, None),
            Err(Error::RankTooHigh { rank: 7, .. })
        ));
    }

    fn fd(num: usize, dim: usize, idx: &[f64], padding_idx: Option<usize>, seed: u64) -> f64 {
        let t = shape(&[num, dim]);
        let table = values(num * dim, seed);
        let f = |table: &[f64]| {
            let mut y = vec![f64::NAN; idx.len() * dim];
            embedding(TensorRef::trusted(&t, table), idx, &mut y).unwrap();
            // A padding row's gradient is defined as 0: hold it fixed, as PyTorch's users do.
            if let Some(p) = padding_idx {
                for (k, &v) in idx.iter().enumerate() {
                    if v as usize == p {
                        y[k * dim..(k + 1) * dim].fill(0.0);
                    }
                }
            }
            y
        };
        let g = values(idx.len() * dim, seed + 1);
        fd_error(
            &f,
            &|_, g, gi, acc| {
                if acc {
                    embedding_vjp::<f64, true>(&t, idx, padding_idx, g, gi);
                } else {
                    embedding_vjp::<f64, false>(&t, idx, padding_idx, g, gi);
                }
            },
            &table,
            &g,
        )
    }

    #[test]
    fn the_vjp_matches_finite_differences() {
        let mut worst = 0.0f64;
        for (num, dim, idx, p) in [
            (5, 3, &[0.0, 4.0, 4.0, 2.0, 0.0][..], None),
            (5, 3, &[0.0, 4.0, 4.0, 2.0, 0.0], Some(4)),
            (1, 1, &[0.0], None),
            (4, 2, &[], None),
            (3, 0, &[1.0, 2.0], None),
        ] {
            let err = fd(num, dim, idx, p, 3);
            assert!(err < FD_TOL, "{num} {dim} {idx:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst embedding: {worst:e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_lookups(
            num in 1usize..6, dim in 1usize..4,
            picks in proptest::collection::vec(0usize..100, 0..8), seed in 0u64..1000,
        ) {
            let idx: Vec<f64> = picks.iter().map(|&p| (p % num) as f64).collect();
            prop_assert!(fd(num, dim, &idx, None, seed) < FD_TOL);
        }
    }
}
