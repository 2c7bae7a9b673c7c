//! Metrics: [`accuracy`], [`argmax_rows`] and the [`ConfusionMatrix`].

use std::collections::BTreeMap;
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
/// Only the pairs that occur are stored, so memory follows the examples counted, never
/// `classes²` (a model that claims a million classes costs nothing until it is used). The
/// dense [`rows`](ConfusionMatrix::rows) are `classes²` numbers; the [`Display`](fmt::Display)
/// form is a table up to [`MAX_TABLE_CLASSES`] classes and a list of the most frequent
/// confusions beyond.
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
    counts: BTreeMap<(usize, usize), u64>,
}

/// The most classes [`ConfusionMatrix`]'s `Display` prints as a full table.
pub const MAX_TABLE_CLASSES: usize = 32;

/// How many of the most frequent confusions `Display` lists past [`MAX_TABLE_CLASSES`].
const LISTED_CONFUSIONS: usize = 10;

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: BTreeMap::new(),
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
            *self.counts.entry((actual, predicted)).or_insert(0) += 1;
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The count of class `actual` predicted as `predicted` (0 out of range).
    pub fn get(&self, actual: usize, predicted: usize) -> u64 {
        self.counts.get(&(actual, predicted)).copied().unwrap_or(0)
    }

    /// The counts as rows (actual class) of columns (predicted class): `classes²` numbers,
    /// for a caller that has bounded the classes (a data set holds at most
    /// [`MAX_CLASSES`](crate::MAX_CLASSES)).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        let mut rows = vec![vec![0; self.classes]; self.classes];
        for (&(a, p), &n) in &self.counts {
            rows[a][p] = n;
        }
        rows
    }

    /// The number of examples counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The number counted on the diagonal (predicted right).
    pub fn correct(&self) -> u64 {
        self.counts
            .iter()
            .filter(|((a, p), _)| a == p)
            .map(|(_, n)| n)
            .sum()
    }

    /// The fraction on the diagonal; 0 when empty.
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        self.correct() as f64 / total as f64
    }

    /// The off-diagonal pairs, most frequent first (ties in class order): `(actual,
    /// predicted, count)`.
    pub fn confusions(&self) -> Vec<(usize, usize, u64)> {
        let mut pairs: Vec<(usize, usize, u64)> = self
            .counts
            .iter()
            .filter(|((a, p), _)| a != p)
            .map(|(&(a, p), &n)| (a, p, n))
            .collect();
        pairs.sort_by(|x, y| y.2.cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
        pairs
    }
}

impl fmt::Display for ConfusionMatrix {
    /// A table with actual classes down and predicted classes across; past
    /// [`MAX_TABLE_CLASSES`] classes, the most frequent confusions instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.classes > MAX_TABLE_CLASSES {
            let confusions = self.confusions();
            write!(
                f,
                "{} classes, too many to tabulate; {} of {} examples on the diagonal, {} \
                 distinct confusions",
                self.classes,
                self.correct(),
                self.total(),
                confusions.len()
            )?;
            for (a, p, n) in confusions.into_iter().take(LISTED_CONFUSIONS) {
                write!(f, "\n  actual {a} predicted as {p}: {n}")?;
            }
            return Ok(());
        }
        let width = self
            .counts
            .values()
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

    #[test]
    fn a_huge_class_count_costs_neither_memory_nor_output() {
        // Sparse: a million classes and three examples hold three counts.
        let mut m = ConfusionMatrix::new(1_000_000);
        m.add(0, 0);
        m.add(999_999, 3);
        m.add(999_999, 3);
        assert_eq!((m.total(), m.correct(), m.get(999_999, 3)), (3, 1, 2));
        assert_eq!(m.confusions(), [(999_999, 3, 2)]);
        let text = m.to_string();
        assert!(text.len() < 400, "{text}");
        assert!(text.contains("too many to tabulate"), "{text}");
        assert!(text.contains("actual 999999 predicted as 3: 2"), "{text}");
        let table = ConfusionMatrix::new(MAX_TABLE_CLASSES).to_string();
        assert_eq!(table.lines().count(), MAX_TABLE_CLASSES + 2);
    }
}
