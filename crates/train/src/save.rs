//! Saving a model's parameters to a weights file, and loading them into a model of the same
//! architecture: PyTorch's `torch.save(model.state_dict())` and `load_state_dict`.

use std::path::Path;

use wengert_io::{Element, LoadOptions, Weights, load_weights, save_weights};

use crate::{Error, Module, Result};

/// Saves `model`'s parameters to a weights file at `path` (written atomically), one array per
/// parameter named by its place in [`Module::parameters`] (`param.0`, `param.1`, ...).
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
