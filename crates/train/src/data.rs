//! [`Dataset`]: examples held in memory, their seeded split, and feature scaling.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use wengert_ops::{Float, Shape};
use wengert_tape::IntoValue;

use crate::{Error, Result, Rng};

/// The largest number of classes a data set may have (1024); a larger label is taken for a
/// mistake. It bounds what depends on the class count squared: a dense confusion matrix of
/// 1024² counts is 8 MiB.
pub const MAX_CLASSES: usize = 1 << 10;

/// What each example should produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets<E: Float> {
    /// A class index per example, each below `classes`.
    Classes {
        /// The labels, one per example.
        labels: Vec<usize>,
        /// The number of classes.
        classes: usize,
    },
    /// Regression targets, `[examples, outputs]`.
    Values(Array2<E>),
}

/// Examples in memory: features `[examples, features]` and their [`Targets`].
///
/// Training draws mini-batches from it; the batch size decides the flavour of gradient
/// descent (see [`TrainConfig::batch_size`](crate::TrainConfig::batch_size)).
///
/// ```
/// use ndarray::array;
/// use wengert_train::Dataset;
/// let data = Dataset::classification(array![[0.0f32, 1.0], [1.0, 0.0], [1.0, 1.0]], vec![1, 1, 0], 2)?;
/// let (train, valid) = data.split(1.0 / 3.0, 42)?;
/// assert_eq!((train.len(), valid.len()), (2, 1));
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset<E: Float> {
    features: Array2<E>,
    targets: Targets<E>,
    /// A name per class, for labels that were strings in the file.
    class_names: Option<Vec<String>>,
}

impl<E: Float> Dataset<E> {
    /// A classification data set; errors if the lengths differ, a label is not below
    /// `classes`, or a feature is not finite.
    pub fn classification(features: Array2<E>, labels: Vec<usize>, classes: usize) -> Result<Self> {
        if features.nrows() != labels.len() {
            return Err(Error::InvalidData(format!(
                "{} feature rows but {} labels",
                features.nrows(),
                labels.len()
            )));
        }
        if classes == 0 || classes > MAX_CLASSES {
            return Err(Error::InvalidData(format!(
                "{classes} classes (expected 1 to {MAX_CLASSES})"
            )));
        }
        if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
            return Err(Error::InvalidData(format!(
                "label {label} of example {row} is out of range for {classes} classes"
            )));
        }
        check_finite(features.view())?;
        Ok(Dataset {
            features,
            targets: Targets::Classes { labels, classes },
            class_names: None,
        })
    }

    /// A regression data set; errors if the row counts differ or a value is not finite.
    pub fn regression(features: Array2<E>, targets: Array2<E>) -> Result<Self> {
        if features.nrows() != targets.nrows() {
            return Err(Error::InvalidData(format!(
                "{} feature rows but {} target rows",
                features.nrows(),
                targets.nrows()
            )));
        }
        check_finite(features.view())?;
        check_finite(targets.view())?;
        Ok(Dataset {
            features,
            targets: Targets::Values(targets),
            class_names: None,
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of features per example.
    pub fn n_features(&self) -> usize {
        self.features.ncols()
    }

    /// The number of outputs a model needs: the classes, or the regression targets' width.
    pub fn n_outputs(&self) -> usize {
        match &self.targets {
            Targets::Classes { classes, .. } => *classes,
            Targets::Values(v) => v.ncols(),
        }
    }

    /// The number of classes, for a classification set.
    pub fn classes(&self) -> Option<usize> {
        match &self.targets {
            Targets::Classes { classes, .. } => Some(*classes),
            Targets::Values(_) => None,
        }
    }

    /// The labels, for a classification set.
    pub fn labels(&self) -> Option<&[usize]> {
        match &self.targets {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Values(_) => None,
        }
    }

    /// The same classification set with a name for each class (class `i` is `names[i]`):
    /// labels that were strings in a file. Errors on a regression set, on a count other than
    /// the classes', and on an empty or repeated name.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_train::Dataset;
    /// let data = Dataset::classification(array![[0.0f32], [1.0]], vec![1, 0], 2)?
    ///     .with_class_names(vec!["cat".into(), "dog".into()])?;
    /// assert_eq!(data.class_names().unwrap()[data.labels().unwrap()[0]], "dog");
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        let Some(classes) = self.classes() else {
            return Err(Error::InvalidData(
                "class names given for a regression set".into(),
            ));
        };
        if names.len() != classes {
            return Err(Error::InvalidData(format!(
                "{} class names for {classes} classes",
                names.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in &names {
            if name.is_empty() || !seen.insert(name.as_str()) {
                return Err(Error::InvalidData(format!(
                    "class name `{}` is empty or repeated",
                    name.escape_debug()
                )));
            }
        }
        self.class_names = Some(names);
        Ok(self)
    }

    /// The classes' names, if the labels were names (class `i` is `names[i]`).
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// The features, `[examples, features]`.
    pub fn features(&self) -> ArrayView2<'_, E> {
        self.features.view()
    }

    /// The targets.
    pub fn targets(&self) -> &Targets<E> {
        &self.targets
    }

    /// The examples at `indices`, in that order (an index may repeat); errors on an index out
    /// of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::InvalidData(format!(
                "example {bad} out of range for {} examples",
                self.len()
            )));
        }
        let features = self.features.select(Axis(0), indices);
        let targets = match &self.targets {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                classes: *classes,
            },
            Targets::Values(v) => Targets::Values(v.select(Axis(0), indices)),
        };
        Ok(Dataset {
            features,
            targets,
            class_names: self.class_names.clone(),
        })
    }

    /// Splits the examples at random into `(rest, held_out)`, holding out `round(fraction·n)`
    /// of them; the same seed gives the same split. `fraction` must be in `[0, 1)`.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::InvalidConfig(format!(
                "a split fraction must be at least 0 and below 1, got {fraction}"
            )));
        }
        let n = self.len();
        let held = ((fraction * n as f64).round() as usize).min(n);
        let mut order: Vec<usize> = (0..n).collect();
        Rng::with_stream(seed, crate::rng_streams::SPLIT).shuffle(&mut order);
        let (held_out, rest) = order.split_at(held);
        Ok((self.subset(rest)?, self.subset(held_out)?))
    }

    /// The same examples with each feature mapped through `scaler`.
    pub fn scaled(&self, scaler: &Standardizer<E>) -> Result<Self> {
        let mut out = self.clone();
        scaler.apply(&mut out.features)?;
        Ok(out)
    }

    /// The labels of the examples at `indices`, into `labels` (reusing it); nothing for a
    /// regression set.
    pub(crate) fn gather_labels(&self, indices: &[usize], labels: &mut Vec<usize>) {
        labels.clear();
        if let Targets::Classes { labels: l, .. } = &self.targets {
            labels.extend(indices.iter().map(|&i| l[i]));
        }
    }

    /// The feature rows at `indices`, as a value a tape writes straight into a node's buffer.
    pub(crate) fn feature_rows<'a>(&'a self, indices: &'a [usize]) -> Rows<'a, E> {
        Rows {
            matrix: self.features.view(),
            indices,
        }
    }

    /// The regression targets' rows at `indices` (none for a classification set).
    pub(crate) fn target_rows<'a>(&'a self, indices: &'a [usize]) -> Option<Rows<'a, E>> {
        match &self.targets {
            Targets::Values(v) => Some(Rows {
                matrix: v.view(),
                indices,
            }),
            Targets::Classes { .. } => None,
        }
    }
}

/// Some rows of a matrix, in the order of `indices`: a batch, copied by the tape straight into
/// the buffer of the input node it records (no staging copy, no allocation once the buffer has
/// grown).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows<'a, E> {
    matrix: ArrayView2<'a, E>,
    indices: &'a [usize],
}

impl<E: Float> IntoValue<E> for Rows<'_, E> {
    fn write_into(self, buf: &mut Vec<E>) -> wengert_ops::Result<Shape> {
        buf.clear();
        for &i in self.indices {
            let row = self.matrix.row(i);
            match row.as_slice() {
                Some(slice) => buf.extend_from_slice(slice),
                None => buf.extend(row.iter().copied()),
            }
        }
        Shape::new(&[self.indices.len(), self.matrix.ncols()])
    }
}

fn check_finite<E: Float>(a: ArrayView2<'_, E>) -> Result<()> {
    if let Some(((row, col), _)) = a.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(Error::InvalidData(format!(
            "the value at row {row}, column {col} is not finite"
        )));
    }
    Ok(())
}

/// Per-feature standardisation, `(x - mean) / std`, fitted on training data and applied to
/// every split. A constant feature (`std = 0`) is only centred.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer<E: Float> {
    /// Each feature's mean.
    pub mean: Array1<E>,
    /// Each feature's population standard deviation (1 where it is 0).
    pub std: Array1<E>,
}

impl<E: Float> Standardizer<E> {
    /// The means and standard deviations of `features`' columns (computed in `f64`).
    pub fn fit(features: ArrayView2<'_, E>) -> Self {
        let n = features.nrows().max(1) as f64;
        let mut mean = Array1::zeros(features.ncols());
        let mut std = Array1::zeros(features.ncols());
        for (j, col) in features.columns().into_iter().enumerate() {
            let m = col.iter().map(|&x| Float::to_f64(x)).sum::<f64>() / n;
            let var = col
                .iter()
                .map(|&x| (Float::to_f64(x) - m).powi(2))
                .sum::<f64>()
                / n;
            let s = var.sqrt();
            mean[j] = E::from_f64(m);
            std[j] = E::from_f64(if s > 0.0 { s } else { 1.0 });
        }
        Standardizer { mean, std }
    }

    /// Standardises `features` in place; errors if the column count differs from the fit's.
    pub fn apply(&self, features: &mut Array2<E>) -> Result<()> {
        if features.ncols() != self.mean.len() {
            return Err(Error::InvalidData(format!(
                "{} features, but the scaler was fitted on {}",
                features.ncols(),
                self.mean.len()
            )));
        }
        for mut row in features.rows_mut() {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn toy() -> Dataset<f64> {
        let x = Array2::from_shape_fn((10, 2), |(i, j)| (i * 2 + j) as f64);
        Dataset::classification(x, (0..10).map(|i| i % 3).collect(), 3).unwrap()
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let d = toy();
        let (a, b) = d.split(0.3, 1).unwrap();
        let (a2, b2) = d.split(0.3, 1).unwrap();
        assert_eq!((a.len(), b.len()), (7, 3));
        assert_eq!((&a, &b), (&a2, &b2));
        let mut firsts: Vec<f64> = a
            .features()
            .column(0)
            .iter()
            .chain(b.features().column(0).iter())
            .copied()
            .collect();
        firsts.sort_by(f64::total_cmp);
        assert_eq!(firsts, (0..10).map(|i| (2 * i) as f64).collect::<Vec<_>>());
        let (_, c) = d.split(0.3, 2).unwrap();
        assert_ne!(b, c);
        assert!(d.split(1.0, 0).is_err());
        assert!(d.split(-0.1, 0).is_err());
        assert_eq!(d.split(0.0, 0).unwrap().1.len(), 0);
    }

    #[test]
    fn bad_data_is_refused() {
        let x = array![[1.0f32, 2.0], [3.0, 4.0]];
        assert!(Dataset::classification(x.clone(), vec![0], 2).is_err());
        assert!(Dataset::classification(x.clone(), vec![0, 2], 2).is_err());
        assert!(Dataset::regression(x.clone(), array![[1.0f32]]).is_err());
        let nan = array![[1.0f32, f32::NAN]];
        let err = Dataset::classification(nan, vec![0], 1).unwrap_err();
        assert!(err.to_string().contains("row 0, column 1"), "{err}");
        assert!(toy().subset(&[10]).is_err());
    }

    #[test]
    fn standardizer_centres_and_scales() {
        let x = array![[1.0, 5.0], [3.0, 5.0]];
        let s = Standardizer::fit(x.view());
        let mut y = x.clone();
        s.apply(&mut y).unwrap();
        assert_eq!(y, array![[-1.0, 0.0], [1.0, 0.0]]);
        assert!(s.apply(&mut array![[1.0]]).is_err());
    }
}
