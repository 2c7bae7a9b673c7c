//! Metrics: [`accuracy`], [`argmax_rows`] and the [`ConfusionMatrix`].

use std::fmt;

use ndarray::ArrayView2;
use wengert_ops::Float;

/// The index of each row's largest element (the first, on a tie; a NaN is never chosen over
/// a number). An empty row gives 0.
pub fn argmax_rows<E: Float>(scores: ArrayView2<'_, E>) -> Vec<usize> {
    scores.rows().into_iter().map(|row| argmax(row)).collect()
}

/// The index of the largest element, as [`argmax_rows`] picks it for a row.
pub(crate) fn argmax<'a, E: Float>(row: impl IntoIterator<Item = &'a E>) -> usize {
    let mut best = 0;
    let mut best_value = E::neg_infinity();
    for (i, &v) in row.into_iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

/// The fraction of `predicted` equal to `actual`, elementwise; 0 for empty input.
///
/// ```
/// assert_eq!(wengert_train::accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
/// ```
pub fn accuracy(predicted: &[usize], actual: &[usize]) -> f64 {
    let n = predicted.len().min(actual.len());
    if n == 0 {
        return 0.0;
    }
    let correct = predicted.iter().zip(actual).filter(|(p, a)| p == a).count();
    correct as f64 / n as f64
}

/// Counts of (actual class, predicted class) pairs: row `i`, column `j` counts the examples of
/// class `i` predicted as `j`.
///
/// ```
/// use wengert_train::ConfusionMatrix;
/// let mut m = ConfusionMatrix::new(2);
/// m.add(0, 0);
/// m.add(1, 0);
/// m.add(1, 1);
/// assert_eq!(m.get(1, 0), 1);
/// assert!((m.accuracy() - 2.0 / 3.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// A matrix counting these pairs; pairs naming a class out of range are skipped.
    pub fn from_predictions(classes: usize, actual: &[usize], predicted: &[usize]) -> Self {
        let mut m = ConfusionMatrix::new(classes);
        for (&a, &p) in actual.iter().zip(predicted) {
            m.add(a, p);
        }
        m
    }

    /// Counts one example of class `actual` predicted as `predicted` (ignored if either is out
    /// of range).
    pub fn add(&mut self, actual: usize, predicted: usize) {
        if actual < self.classes && predicted < self.classes {
            self.counts[actual * self.classes + predicted] += 1;
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The count of class `actual` predicted as `predicted` (0 out of range).
    pub fn get(&self, actual: usize, predicted: usize) -> u64 {
        if actual < self.classes && predicted < self.classes {
            self.counts[actual * self.classes + predicted]
        } else {
            0
        }
    }

    /// The counts as rows (actual class) of columns (predicted class).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.classes.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// The number of examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The fraction on the diagonal; 0 when empty.
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let diagonal: u64 = (0..self.classes).map(|i| self.get(i, i)).sum();
        diagonal as f64 / total as f64
    }
}

impl fmt::Display for ConfusionMatrix {
    /// A table with actual classes down and predicted classes across.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .map(|c| c.to_string().len())
            .chain([self.classes.saturating_sub(1).to_string().len()])
            .max()
            .unwrap_or(1)
            .max(3);
        writeln!(f, "rows: actual class; columns: predicted class")?;
        write!(f, "{:>8}", "")?;
        for j in 0..self.classes {
            write!(f, " {j:>width$}")?;
        }
        for i in 0..self.classes {
            writeln!(f)?;
            write!(f, "{i:>8}")?;
            for j in 0..self.classes {
                write!(f, " {:>width$}", self.get(i, j))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn argmax_takes_the_first_maximum_and_skips_nan() {
        let s = array![[1.0, 3.0, 3.0], [f64::NAN, -1.0, -2.0], [0.0, 0.0, 0.5]];
        assert_eq!(argmax_rows(s.view()), [1, 1, 2]);
    }

    #[test]
    fn confusion_matrix_counts_and_prints() {
        let m = ConfusionMatrix::from_predictions(3, &[0, 1, 2, 2, 9], &[0, 2, 2, 2, 0]);
        assert_eq!(m.total(), 4);
        assert_eq!(m.rows(), vec![vec![1, 0, 0], vec![0, 0, 1], vec![0, 0, 2]]);
        assert_eq!(m.accuracy(), 0.75);
        let text = m.to_string();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(
            text.lines().last().unwrap().ends_with("0   0   2"),
            "{text}"
        );
        assert_eq!(accuracy(&[], &[]), 0.0);
    }
}
