//! [`Sequential`]: modules applied one after another, each output the next one's input.

use std::fmt;

use ndarray::{ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Module, ParameterIds, Result, prefixed};

/// A layer held by a [`Sequential`]: any module that can move between threads.
pub type BoxedModule<E> = Box<dyn Module<E> + Send + Sync>;

/// Modules applied in order (PyTorch's `nn.Sequential`); its parts are named `0`, `1`, ...,
/// so the parameters are `0.weight`, `0.bias`, `2.weight`, ..., and a model holding it as
/// `layers` names them `layers.0.weight` (with [`prefixed`]). Empty, it is the identity.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Activation, Dropout, Init, Linear, Module, Rng, Sequential};
///
/// let mut rng = Rng::seed_from_u64(0);
/// let model = Sequential::<f64>::new()
///     .push(Linear::new(2, 8, Init::HeNormal, &mut rng)?)
///     .push(Activation::Relu)
///     .push(Dropout::new(0.5)?)
///     .push(Linear::new(8, 3, Init::GlorotUniform, &mut rng)?);
/// assert_eq!(model.len(), 4);
/// assert_eq!(model.parameter_names(), ["0.weight", "0.bias", "3.weight", "3.bias"]);
/// assert_eq!(model.predict(&array![[0.5, -1.0]])?.shape(), &[1, 3]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub struct Sequential<E: Float> {
    layers: Vec<BoxedModule<E>>,
}

impl<E: Float> Sequential<E> {
    /// An empty sequence.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// The sequence with `layer` appended.
    pub fn push(mut self, layer: impl Module<E> + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// The sequence with an already boxed `layer` appended.
    pub fn push_boxed(mut self, layer: BoxedModule<E>) -> Self {
        self.layers.push(layer);
        self
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there is no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layer at `index`, if there is one.
    pub fn layer(&self, index: usize) -> Option<&(dyn Module<E> + Send + Sync)> {
        self.layers.get(index).map(|l| &**l)
    }

    /// The layer at `index`, mutably, if there is one.
    pub fn layer_mut(
        &mut self,
        index: usize,
    ) -> Option<&mut (dyn Module<E> + Send + Sync + 'static)> {
        self.layers.get_mut(index).map(|l| &mut **l)
    }

    /// The names of the layers' tensors, each under its layer's index.
    fn names(&self, of: impl Fn(&dyn Module<E>) -> Vec<String>) -> Vec<String> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| prefixed(&i.to_string(), of(&**layer)))
            .collect()
    }
}

impl<E: Float> Default for Sequential<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Float> fmt::Debug for Sequential<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequential")
            .field("layers", &self.layers.len())
            .field("parameters", &self.parameter_count())
            .finish()
    }
}

impl<E: Float> Module<E> for Sequential<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        self.layers
            .iter()
            .try_fold(x, |h, layer| layer.forward(tape, params, h))
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        self.layers.iter().flat_map(|l| l.parameters()).collect()
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.parameters_mut())
            .collect()
    }

    fn parameter_names(&self) -> Vec<String> {
        self.names(|l| l.parameter_names())
    }

    fn buffers(&self) -> Vec<ArrayViewD<'_, E>> {
        self.layers.iter().flat_map(|l| l.buffers()).collect()
    }

    fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.buffers_mut())
            .collect()
    }

    fn buffer_names(&self) -> Vec<String> {
        self.names(|l| l.buffer_names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Linear};
    use ndarray::{Array1, array};

    fn linear(w: ndarray::Array2<f64>, b: Array1<f64>) -> Linear<f64> {
        Linear { weight: w, bias: b }
    }

    #[test]
    fn applies_its_layers_in_order() {
        let model = Sequential::new()
            .push(linear(array![[1.0, -1.0]], array![0.0, 0.5]))
            .push(Activation::Relu)
            .push(linear(array![[2.0], [3.0]], array![1.0]));
        // x = 2: [2, -2] + [0, 0.5] = [2, -1.5], relu [2, 0], 2·2 + 0 + 1 = 5.
        assert_eq!(
            model.predict(&array![[2.0]]).unwrap(),
            array![[5.0]].into_dyn()
        );
        assert_eq!(model.parameter_count(), 2 + 2 + 2 + 1);
        assert_eq!(
            Sequential::<f64>::new().predict(&array![[2.0]]).unwrap(),
            array![[2.0]].into_dyn()
        );
        assert!(model.layer(1).unwrap().parameters().is_empty());
        assert!(model.layer(3).is_none());
    }

    #[test]
    fn nested_sequences_name_their_parameters_by_path() {
        let inner = Sequential::new().push(linear(array![[1.0]], array![0.0]));
        let mut model = Sequential::new().push(Activation::Tanh).push(inner);
        assert_eq!(model.parameter_names(), ["1.0.weight", "1.0.bias"]);
        let names: Vec<String> = model
            .named_parameters()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, model.parameter_names());
        model.parameters_mut()[1].fill(4.0);
        assert_eq!(model.parameters()[1], array![4.0].into_dyn());
        assert!(model.buffer_names().is_empty());
    }
}
