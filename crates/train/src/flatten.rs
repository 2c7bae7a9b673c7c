//! [`Flatten`]: every axis after the batch axis into one.

use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Module, ParameterIds, Result};

/// Flattens `[batch, d1, d2, ...]` into `[batch, d1·d2·...]` (PyTorch's `nn.Flatten()`): the
/// step from a convolution's feature maps to a linear layer.
///
/// ```
/// use ndarray::Array4;
/// use wengert_train::{Flatten, Module};
/// let y = Flatten.predict(&Array4::<f32>::zeros((2, 3, 4, 5)))?;
/// assert_eq!(y.shape(), &[2, 60]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flatten;

impl<E: Float> Module<E> for Flatten {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        _params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let rank = tape.shape(x)?.rank();
        if rank < 2 {
            return Err(Error::Model(format!(
                "Flatten needs a batch axis and at least one more, got an input of rank {rank}"
            )));
        }
        Ok(tape.flatten(x, 1, rank - 1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array1, Array2, Array3};

    #[test]
    fn flattens_in_row_major_order_and_needs_a_batch_axis() {
        let x = Array::from_iter(0..24).mapv(f64::from);
        let y = Flatten
            .predict(x.clone().into_shape_with_order((2, 3, 4)).unwrap())
            .unwrap();
        assert_eq!(y, x.into_shape_with_order((2, 12)).unwrap().into_dyn());
        let same = Array2::<f32>::ones((3, 2));
        assert_eq!(Flatten.predict(&same).unwrap(), same.into_dyn());
        let err = Flatten.predict(Array1::<f32>::ones(4)).unwrap_err();
        assert!(err.to_string().contains("rank 1"), "{err}");
        assert_eq!(
            Flatten
                .predict(Array3::<f32>::zeros((0, 2, 2)))
                .unwrap()
                .shape(),
            &[0, 4]
        );
    }
}
