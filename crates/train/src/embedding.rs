//! [`Embedding`]: a learned vector per token, looked up by index.

use std::fmt;

use ndarray::{Array2, ArrayViewD, ArrayViewMutD, Ix2};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Init, Module, ParameterIds, Result, Rng};

/// A lookup table of `num` vectors of `dim` (PyTorch's `nn.Embedding`): an input of token
/// indices (whole numbers stored as floats, any shape: the trainer's `[batch, positions]`)
/// gives `[...input, dim]`, each index replaced by its row of `weight`. The table starts
/// from `N(0, 1)`, as in PyTorch; the row of `padding_idx`, if given, starts at zero and gets
/// no gradient, so it stays zero while training. An index that is not a whole number below
/// `num` is an error naming its position.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Embedding, Module, Rng};
///
/// let mut rng = Rng::seed_from_u64(0);
/// let embed = Embedding::<f32>::new(10, 3, Some(0), &mut rng)?;
/// assert_eq!(embed.to_string(), "Embedding(10, 3, padding_idx=0)");
/// let y = embed.predict(&array![[0.0f32, 4.0], [4.0, 9.0]])?;
/// assert_eq!(y.shape(), &[2, 2, 3]);
/// assert_eq!(y.as_slice().unwrap()[..3], [0.0, 0.0, 0.0]); // the padding row
/// assert!(embed.predict(&array![[10.0f32]]).is_err());
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding<E: Float> {
    /// The table, `[num, dim]`: row `i` is token `i`'s vector.
    pub weight: Array2<E>,
    padding_idx: Option<usize>,
}

impl<E: Float> Embedding<E> {
    /// A table of `num` vectors of `dim`, drawn from `N(0, 1)` with `rng`, the row
    /// `padding_idx` (if any) zeroed; an error if a size is zero, `padding_idx` names no row,
    /// or the table cannot be allocated.
    pub fn new(num: usize, dim: usize, padding_idx: Option<usize>, rng: &mut Rng) -> Result<Self> {
        if num == 0 || dim == 0 {
            return Err(Error::InvalidConfig(format!(
                "Embedding: the table needs at least one row and one column, got {num} × {dim}"
            )));
        }
        let table = Init::Normal { std: 1.0 }.sample(&[num, dim], num, dim, rng)?;
        Self::from_table(
            table
                .into_dimensionality::<Ix2>()
                .expect("sampled with two axes"),
            padding_idx,
        )
    }

    /// An embedding with the given table `[num, dim]` (pretrained vectors, say); the row
    /// `padding_idx`, if any, is zeroed. An error if the table is empty or `padding_idx`
    /// names no row.
    pub fn from_table(mut weight: Array2<E>, padding_idx: Option<usize>) -> Result<Self> {
        let (num, dim) = weight.dim();
        if num == 0 || dim == 0 {
            return Err(Error::InvalidConfig(format!(
                "Embedding: the table needs at least one row and one column, got {num} × {dim}"
            )));
        }
        if let Some(p) = padding_idx {
            if p >= num {
                return Err(Error::InvalidConfig(format!(
                    "Embedding: padding_idx {p} names no row of a table of {num}"
                )));
            }
            weight.row_mut(p).fill(E::zero());
        }
        Ok(Embedding {
            weight,
            padding_idx,
        })
    }

    /// The number of vectors (tokens).
    pub fn num_embeddings(&self) -> usize {
        self.weight.nrows()
    }

    /// The length of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.ncols()
    }

    /// The row that gets no gradient, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }
}

impl<E: Float> Module<E> for Embedding<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let table = params.next()?;
        tape.embedding(table, x, self.padding_idx)
            .map_err(|e| Error::Model(format!("{self}: {e}")))
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        vec![self.weight.view().into_dyn()]
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        vec![self.weight.view_mut().into_dyn()]
    }

    fn parameter_names(&self) -> Vec<String> {
        vec!["weight".into()]
    }
}

impl<E: Float> fmt::Display for Embedding<E> {
    /// PyTorch's description, `Embedding(10, 3)`, with the padding row if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Embedding({}, {}",
            self.num_embeddings(),
            self.embedding_dim()
        )?;
        if let Some(p) = self.padding_idx {
            write!(f, ", padding_idx={p}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn looks_up_rows_and_sums_the_gradients_of_repeats_but_not_of_padding() {
        let embed =
            Embedding::from_table(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], Some(1)).unwrap();
        assert_eq!(embed.weight.row(1).to_vec(), [0.0, 0.0]);
        let y = embed.predict(&array![[2.0, 1.0, 0.0]]).unwrap();
        assert_eq!(y, array![[[5.0, 6.0], [0.0, 0.0], [1.0, 2.0]]].into_dyn());
        let mut tape = Tape::new();
        let idx = tape.input(array![2.0, 1.0, 2.0]).unwrap();
        let out = embed.apply(&mut tape, idx).unwrap();
        let loss = tape.sum(out).unwrap();
        let table = tape.parameters().next().unwrap();
        let grads = tape.backward(loss).unwrap();
        assert_eq!(grads.data(table).unwrap(), &[0.0, 0.0, 0.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn the_table_starts_standard_normal_with_the_padding_row_zero() {
        let mut rng = Rng::seed_from_u64(0);
        let embed = Embedding::<f64>::new(200, 50, Some(7), &mut rng).unwrap();
        assert!(embed.weight.row(7).iter().all(|&v| v == 0.0));
        let n = (199 * 50) as f64;
        let mean = embed.weight.sum() / n;
        let var = embed.weight.iter().map(|v| v * v).sum::<f64>() / n - mean * mean;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert_eq!(embed.parameter_names(), ["weight"]);
        assert_eq!((embed.num_embeddings(), embed.embedding_dim()), (200, 50));
    }

    #[test]
    fn bad_settings_and_indices_are_errors_naming_the_layer() {
        let mut rng = Rng::seed_from_u64(0);
        let cases = [
            (
                Embedding::<f32>::new(0, 3, None, &mut rng),
                "at least one row",
            ),
            (
                Embedding::<f32>::new(3, 3, Some(3), &mut rng),
                "padding_idx 3 names no row",
            ),
        ];
        for (result, expected) in cases {
            let err = result.unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let embed = Embedding::<f32>::new(4, 2, None, &mut rng).unwrap();
        for bad in [4.0, -1.0, 1.5, f32::NAN] {
            let err = embed.predict(&array![[0.0f32, bad]]).unwrap_err();
            assert!(
                err.to_string().starts_with("model: Embedding(4, 2): "),
                "{err}"
            );
        }
    }
}
