//! The checks every optimiser shares: its settings when it is built, and the parameters and
//! per-parameter buffers at every step.

use ndarray::{ArrayD, ArrayViewMutD};
use wengert_ops::{Float, Shape};

use crate::{Error, Result};

/// Checks a learning rate: finite and not negative.
pub(super) fn check_rate(lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "the learning rate must be finite and not negative, got {lr}"
        )))
    }
}

/// Checks a setting that must be finite and not negative.
pub(super) fn non_negative(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "the {name} must be finite and not negative, got {value}"
        )))
    }
}

/// Checks that `grads` match `params` one for one, and returns their shapes.
pub(super) fn check_shapes<E: Float>(
    params: &[ArrayViewMutD<'_, E>],
    grads: &[ArrayD<E>],
) -> Result<Vec<Shape>> {
    if params.len() != grads.len() {
        return Err(Error::Model(format!(
            "{} parameters but {} gradients",
            params.len(),
            grads.len()
        )));
    }
    let mut shapes = Vec::with_capacity(params.len());
    for (i, (p, g)) in params.iter().zip(grads).enumerate() {
        if p.shape() != g.shape() {
            return Err(Error::Model(format!(
                "parameter {i} has shape {:?} but its gradient {:?}",
                p.shape(),
                g.shape()
            )));
        }
        shapes.push(Shape::new(p.shape())?);
    }
    Ok(shapes)
}

/// Checks that the per-parameter `state` (if any yet) fits parameters of `shapes`.
pub(super) fn check_state<E: Float>(shapes: &[Shape], state: &[ArrayD<E>]) -> Result<()> {
    if state.is_empty() {
        return Ok(());
    }
    if state.len() != shapes.len() {
        return Err(Error::Model(format!(
            "the optimiser saw {} parameters before and {} now",
            state.len(),
            shapes.len()
        )));
    }
    for (i, (s, shape)) in state.iter().zip(shapes).enumerate() {
        if s.shape() != shape.dims() {
            return Err(Error::Model(format!(
                "parameter {i} changed shape from {:?} to {:?} between steps",
                s.shape(),
                shape.dims()
            )));
        }
    }
    Ok(())
}

pub(super) fn zeros_like<E: Float>(shapes: &[Shape]) -> Vec<ArrayD<E>> {
    shapes.iter().map(|s| ArrayD::zeros(s.dims())).collect()
}

/// The state buffer of parameter `index` as a slice of `len` elements, or an error naming the
/// mismatch (an `update` outside the list its `begin_step` was given).
pub(super) fn buffer<E: Float>(
    buffers: &mut [ArrayD<E>],
    index: usize,
    len: usize,
) -> Result<&mut [E]> {
    let count = buffers.len();
    let b = buffers
        .get_mut(index)
        .and_then(|b| b.as_slice_mut())
        .ok_or_else(|| {
            Error::Model(format!(
                "update of parameter {index}, but the step began with {count}"
            ))
        })?;
    if b.len() != len {
        return Err(Error::Model(format!(
            "parameter {index} has {len} elements, but {} when the step began",
            b.len()
        )));
    }
    Ok(b)
}

/// Checks that a parameter and its gradient have the same length.
pub(super) fn same_length(index: usize, param: usize, grad: usize) -> Result<()> {
    if param != grad {
        return Err(Error::Model(format!(
            "parameter {index} has {param} elements but its gradient {grad}"
        )));
    }
    Ok(())
}
