//! [`Unflatten`]: one axis split into several, the inverse of [`Flatten`](crate::Flatten).

use std::fmt;

use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Module, ParameterIds, Result};

/// Splits axis `axis` into `sizes` (PyTorch's `nn.Unflatten(dim, unflattened_size)`): the
/// step from the trainer's flat rows, `[batch, 64]`, to images, `[batch, 1, 8, 8]`, with
/// `Unflatten::new(1, &[1, 8, 8])`. The elements keep their row-major order; the sizes'
/// product must be the axis's length.
///
/// ```
/// use ndarray::Array2;
/// use wengert_train::{Module, Unflatten};
///
/// let to_images = Unflatten::new(1, &[1, 8, 8])?;
/// let y = to_images.predict(Array2::<f32>::zeros((5, 64)))?;
/// assert_eq!(y.shape(), &[5, 1, 8, 8]);
/// assert!(to_images.predict(Array2::<f32>::zeros((5, 63))).is_err());
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unflatten {
    axis: usize,
    sizes: Vec<usize>,
}

impl Unflatten {
    /// Splits `axis` into `sizes`; an error if `sizes` is empty.
    pub fn new(axis: usize, sizes: &[usize]) -> Result<Self> {
        if sizes.is_empty() {
            return Err(Error::InvalidConfig(
                "Unflatten: the sizes to split an axis into must not be empty".to_string(),
            ));
        }
        Ok(Unflatten {
            axis,
            sizes: sizes.to_vec(),
        })
    }

    /// The axis it splits.
    pub fn axis(&self) -> usize {
        self.axis
    }

    /// The sizes the axis becomes.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

impl<E: Float> Module<E> for Unflatten {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        _params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let shape = tape.shape(x)?;
        let dims = shape.dims();
        let product = self
            .sizes
            .iter()
            .try_fold(1usize, |acc, &s| acc.checked_mul(s));
        let fits = matches!((dims.get(self.axis), product), (Some(&len), Some(p)) if len == p);
        if !fits {
            return Err(Error::Model(format!(
                "{self} takes an input whose axis {} has {} elements, got {shape}",
                self.axis,
                self.sizes
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" × ")
            )));
        }
        let mut to = dims[..self.axis].to_vec();
        to.extend_from_slice(&self.sizes);
        to.extend_from_slice(&dims[self.axis + 1..]);
        Ok(tape.reshape(x, &to)?)
    }
}

impl fmt::Display for Unflatten {
    /// PyTorch's description, `Unflatten(dim=1, unflattened_size=(1, 8, 8))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<String> = self.sizes.iter().map(usize::to_string).collect();
        let sizes = match sizes.as_slice() {
            [one] => format!("({one},)"),
            _ => format!("({})", sizes.join(", ")),
        };
        write!(f, "Unflatten(dim={}, unflattened_size={sizes})", self.axis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flatten;
    use ndarray::{Array, Array2};

    #[test]
    fn splits_an_axis_in_row_major_order_and_flatten_undoes_it() {
        let x = Array::from_iter(0..24)
            .mapv(f64::from)
            .into_shape_with_order((2, 12))
            .unwrap();
        let y = Unflatten::new(1, &[3, 2, 2]).unwrap().predict(&x).unwrap();
        assert_eq!(
            y,
            x.clone()
                .into_shape_with_order((2, 3, 2, 2))
                .unwrap()
                .into_dyn()
        );
        assert_eq!(Flatten.predict(&y).unwrap(), x.clone().into_dyn());
        // The first axis too, and a trailing axis kept after the split.
        let y = Unflatten::new(0, &[1, 2]).unwrap().predict(&x).unwrap();
        assert_eq!(y.shape(), &[1, 2, 12]);
    }

    #[test]
    fn sizes_that_do_not_fit_are_errors_naming_the_layer() {
        let layer = Unflatten::new(1, &[1, 8, 8]).unwrap();
        let err = layer.predict(Array2::<f32>::zeros((2, 60))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model: Unflatten(dim=1, unflattened_size=(1, 8, 8)) takes an input whose axis 1 \
             has 1 × 8 × 8 elements, got [2, 60]"
        );
        let past = Unflatten::new(2, &[4]).unwrap();
        assert!(past.predict(Array2::<f32>::zeros((2, 4))).is_err());
        let huge = Unflatten::new(1, &[usize::MAX, 2]).unwrap();
        assert!(huge.predict(Array2::<f32>::zeros((1, 2))).is_err());
        assert!(Unflatten::new(1, &[]).is_err());
    }
}
