//! Saving a model's state to a file and loading it into a model of the same architecture:
//! PyTorch's `torch.save(model.state_dict())` and `load_state_dict`.
//!
//! [`state_dict`] names every parameter and buffer ([`Module::named_parameters`],
//! [`Module::named_buffers`]); [`save_state`] and [`save_safetensors`] write it as a wengert
//! weights file or a safetensors file, and [`load_state`], [`load_safetensors`] and
//! [`load_state_dict`] check a whole state against the model (every name there, of its
//! shape, and nothing else) before changing anything. [`save_parameters`] and
//! [`load_parameters`] keep the older form: parameters alone, by position.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD};
use wengert_io::{
    Element, LoadOptions, Weights, export_safetensors, import_safetensors, load_weights,
    save_weights,
};
use wengert_ops::Float;

use crate::names::check_unique;
use crate::{Error, Module, Result};

/// The model's state: its parameters and buffers, copied, by name (PyTorch's
/// `model.state_dict()`). An error if the model's names are not one per tensor, or a name is
/// repeated (a buffer and a parameter may not share one).
///
/// ```
/// use wengert_train::{Mlp, state_dict};
/// let model = Mlp::<f32>::builder(&[3, 2]).build()?;
/// let state = state_dict(&model)?;
/// assert_eq!(state.keys().collect::<Vec<_>>(), ["layers.0.bias", "layers.0.weight"]);
/// assert_eq!(state["layers.0.weight"].shape(), &[3, 2]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn state_dict<E: Float, M: Module<E> + ?Sized>(model: &M) -> Result<Weights<E>> {
    Ok(named_tensors(model)?
        .into_iter()
        .map(|(name, t)| (name, t.to_owned()))
        .collect())
}

/// Sets the model's parameters and buffers from `state` (PyTorch's `load_state_dict` with
/// `strict=True`): `state` must hold every tensor the model names, of the model's shape, and
/// nothing else. Otherwise an error names the first tensor, in the model's order, that is
/// missing or of another shape (or the first name the model does not have), and the model is
/// left unchanged.
///
/// ```
/// use wengert_train::{Mlp, load_state_dict, state_dict};
/// let trained = Mlp::<f32>::builder(&[3, 2]).seed(1).build()?;
/// let mut state = state_dict(&trained)?;
/// let mut fresh = Mlp::<f32>::builder(&[3, 2]).seed(2).build()?;
/// load_state_dict(&mut fresh, &state)?;
/// assert_eq!(fresh, trained);
/// state.remove("layers.0.bias");
/// let err = load_state_dict(&mut fresh, &state).unwrap_err();
/// assert_eq!(err.to_string(), "model: the state holds no `layers.0.bias` (shape [2])");
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn load_state_dict<E: Float, M: Module<E> + ?Sized>(
    model: &mut M,
    state: &Weights<E>,
) -> Result<()> {
    load_from(model, state, "the state")
}

/// Saves the model's [`state_dict`] to a wengert weights file at `path`, atomically.
///
/// ```
/// use wengert_train::{Activation, Init, Linear, Rng, Sequential, load_state, save_state};
///
/// let path = std::env::temp_dir().join(format!("wengert-state-doc-{}.weights", std::process::id()));
/// let build = |seed| -> wengert_train::Result<Sequential<f32>> {
///     let mut rng = Rng::seed_from_u64(seed);
///     Ok(Sequential::new()
///         .push(Linear::new(4, 8, Init::HeNormal, &mut rng)?)
///         .push(Activation::Relu)
///         .push(Linear::new(8, 2, Init::GlorotUniform, &mut rng)?))
/// };
/// let model = build(0)?;
/// save_state(&model, &path)?;
/// let mut loaded = build(1)?;
/// load_state(&mut loaded, &path)?;
/// assert_eq!(wengert_train::state_dict(&loaded)?, wengert_train::state_dict(&model)?);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn save_state<E: Element, M: Module<E> + ?Sized>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    Ok(save_weights(path, &state_dict(model)?)?)
}

/// Loads a state saved by [`save_state`] (or any weights file with the model's names) into
/// the model, checked as [`load_state_dict`] checks it; errors name the file.
pub fn load_state<E: Element, M: Module<E> + ?Sized>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let state = load_weights::<E>(path, &LoadOptions::default())?;
    load_from(model, &state, &path.display().to_string())
}

/// Saves the model's [`state_dict`] as a safetensors file at `path`, atomically, for
/// PyTorch, JAX or candle. The arrays keep wengert's layout: a [`Linear`](crate::Linear)
/// weight is `[inputs, outputs]`, the transpose of PyTorch's.
pub fn save_safetensors<E: Element, M: Module<E> + ?Sized>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    Ok(export_safetensors(path, &state_dict(model)?)?)
}

/// Loads a safetensors file with the model's names into the model, checked as
/// [`load_state_dict`] checks it; errors name the file.
pub fn load_safetensors<E: Element, M: Module<E> + ?Sized>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let state = import_safetensors::<E>(path, &LoadOptions::default())?;
    load_from(model, &state, &path.display().to_string())
}

/// [`load_state_dict`], with `source` (the state, a file) named in errors.
fn load_from<E: Float, M: Module<E> + ?Sized>(
    model: &mut M,
    state: &Weights<E>,
    source: &str,
) -> Result<()> {
    let expected: BTreeMap<String, Vec<usize>> = named_tensors(model)?
        .into_iter()
        .map(|(name, t)| (name, t.shape().to_vec()))
        .collect();
    // In the model's order, so that the error names the first tensor that does not fit.
    for name in model.parameter_names().iter().chain(&model.buffer_names()) {
        let shape = &expected[name];
        match state.get(name) {
            Some(t) if t.shape() == shape.as_slice() => {}
            Some(t) => {
                return Err(Error::Model(format!(
                    "{source}'s `{name}` has shape {:?}, the model's {shape:?}",
                    t.shape()
                )));
            }
            None => {
                return Err(Error::Model(format!(
                    "{source} holds no `{name}` (shape {shape:?})"
                )));
            }
        }
    }
    if let Some(extra) = state.keys().find(|k| !expected.contains_key(*k)) {
        return Err(Error::Model(format!(
            "{source} holds `{extra}`, which the model does not have"
        )));
    }
    let tensor = |name: &String| -> &ArrayD<E> { &state[name] };
    let parameter_names = model.parameter_names();
    let buffer_names = model.buffer_names();
    for (mut p, name) in model.parameters_mut().into_iter().zip(&parameter_names) {
        p.assign(tensor(name));
    }
    for (mut b, name) in model.buffers_mut().into_iter().zip(&buffer_names) {
        b.assign(tensor(name));
    }
    Ok(())
}

/// Every tensor's name, parameters then buffers, or an error if the names are not one per
/// tensor or a name is repeated.
fn named_tensors<E: Float, M: Module<E> + ?Sized>(
    model: &M,
) -> Result<Vec<(String, ArrayViewD<'_, E>)>> {
    let mut tensors = model.named_parameters()?;
    tensors.extend(model.named_buffers()?);
    check_unique("tensor", tensors.iter().map(|(n, _)| n))?;
    Ok(tensors)
}

/// Saves `model`'s parameters to a weights file at `path` (written atomically), one array per
/// parameter named by its place in [`Module::parameters`] (`param.0`, `param.1`, ...); for
/// the whole state, by name, see [`save_state`].
///
/// ```
/// use wengert_train::{Mlp, load_parameters, save_parameters};
///
/// let path = std::env::temp_dir().join(format!("wengert-save-doc-{}.weights", std::process::id()));
/// let model = Mlp::<f32>::builder(&[2, 8, 2]).seed(7).build()?;
/// save_parameters(&model, &path)?;
/// let mut loaded = Mlp::<f32>::builder(&[2, 8, 2]).seed(99).build()?;
/// load_parameters(&mut loaded, &path)?;
/// assert_eq!(loaded, model);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn save_parameters<E: Element, M: Module<E> + ?Sized>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let weights: Weights<E> = model
        .parameters()
        .iter()
        .enumerate()
        .map(|(i, p)| (name(i), p.to_owned()))
        .collect();
    Ok(save_weights(path, &weights)?)
}

/// Loads parameters saved by [`save_parameters`] into `model`, which must have as many
/// parameters, of the same shapes. Errors, changing nothing, if the file does not fit.
pub fn load_parameters<E: Element, M: Module<E> + ?Sized>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let weights = load_weights::<E>(path, &LoadOptions::default())?;
    let mut params = model.parameters_mut();
    if weights.len() != params.len() {
        return Err(Error::Model(format!(
            "{} holds {} arrays, the model has {} parameters",
            path.display(),
            weights.len(),
            params.len()
        )));
    }
    for (i, p) in params.iter().enumerate() {
        match weights.get(&name(i)) {
            Some(w) if w.shape() == p.shape() => {}
            Some(w) => {
                return Err(Error::Model(format!(
                    "{}: parameter {i} has shape {:?} in the file, {:?} in the model",
                    path.display(),
                    w.shape(),
                    p.shape()
                )));
            }
            None => {
                return Err(Error::Model(format!(
                    "{} holds no {} (not saved by save_parameters?)",
                    path.display(),
                    name(i)
                )));
            }
        }
    }
    for (i, p) in params.iter_mut().enumerate() {
        p.assign(&weights[&name(i)]);
    }
    Ok(())
}

/// The name of parameter `i` in a weights file.
fn name(i: usize) -> String {
    format!("param.{i}")
}
