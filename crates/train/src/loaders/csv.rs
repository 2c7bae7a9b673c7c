//! Numeric CSV: every field a number, one column holding the label or target.

use std::cell::Cell;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ndarray::Array2;
use wengert_ops::Float;

use crate::data::MAX_CLASSES;
use crate::{Dataset, Error, Result};

/// Which column holds the label (or regression target).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column (the default).
    #[default]
    Last,
    /// The column at this index, counted from 0.
    Index(usize),
    /// The column with this name in the header.
    Name(String),
}

impl FromStr for LabelColumn {
    type Err = Error;

    /// `last` or `-1` for the last column, a number for an index from 0, anything else for a
    /// name in the header.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::InvalidConfig("an empty label column".into()));
        }
        Ok(match s {
            "last" | "-1" => LabelColumn::Last,
            _ => match s.parse::<usize>() {
                Ok(i) => LabelColumn::Index(i),
                Err(_) => LabelColumn::Name(s.to_string()),
            },
        })
    }
}

impl fmt::Display for LabelColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelColumn::Last => f.write_str("last"),
            LabelColumn::Index(i) => write!(f, "{i}"),
            LabelColumn::Name(n) => f.write_str(n),
        }
    }
}

/// Whether the first line is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Header {
    /// A header if any field of the first line does not parse as a number (the default).
    #[default]
    Auto,
    /// The first line is a header.
    Present,
    /// Every line is data.
    Absent,
}

/// What the label column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Class indices `0, 1, ...`; the number of classes is the largest label plus one.
    #[default]
    Classification,
    /// A numeric regression target.
    Regression,
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsvOptions {
    /// The label column (default: the last).
    pub label_column: LabelColumn,
    /// Whether there is a header line (default: detected).
    pub header: Header,
    /// Classification or regression (default: classification).
    pub task: Task,
}

/// Reads a numeric CSV file into a data set; see [`parse_csv`].
pub fn load_csv<E: Float>(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset<E>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    parse_csv(&text, path, options)
}

/// Parses numeric CSV `text` (named `source` in errors) into a data set.
///
/// Fields are separated by commas; blank lines are skipped; a field may be wrapped in double
/// quotes. Every error names the line: a row with the wrong number of fields, a field that is
/// not a finite number, a label that is not a class index.
///
/// ```
/// use wengert_train::loaders::{parse_csv, CsvOptions};
/// let text = "x,y,label\n0.5,1,0\n-2,3e-1,2\n";
/// let data = parse_csv::<f32>(text, "inline.csv".as_ref(), &CsvOptions::default())?;
/// assert_eq!((data.len(), data.n_features(), data.classes()), (2, 2, Some(3)));
///
/// let err = parse_csv::<f32>("1,2\n3,x\n", "bad.csv".as_ref(), &CsvOptions::default()).unwrap_err();
/// assert_eq!(err.to_string(), "bad.csv, line 2: field 2 (`x`) is not a number");
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn parse_csv<E: Float>(text: &str, source: &Path, options: &CsvOptions) -> Result<Dataset<E>> {
    // Set by the first row, read by every row.
    let label_at = Cell::new(0);
    let mut features: Vec<E> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    let mut targets: Vec<E> = Vec::new();
    let (rows, w) = for_each_row(
        text,
        source,
        options.header,
        |line_no, width, header| {
            if width < 2 {
                return Err(parse_error(
                    source,
                    line_no,
                    format!("{width} field; a row needs features and a label"),
                ));
            }
            label_at.set(
                resolve_label(&options.label_column, width, header)
                    .map_err(|m| parse_error(source, 0, m))?,
            );
            Ok(())
        },
        |line_no, fields| {
            for (k, field) in fields.iter().enumerate() {
                let x = number(source, line_no, k, field)?;
                if k != label_at.get() {
                    features.push(E::from_f64(x));
                    continue;
                }
                match options.task {
                    Task::Regression => targets.push(E::from_f64(x)),
                    Task::Classification => {
                        if x < 0.0 || x.fract() != 0.0 || x >= MAX_CLASSES as f64 {
                            return Err(parse_error(
                                source,
                                line_no,
                                format!(
                                    "label `{}` is out of range: a class label is a whole \
                                     number from 0 to {}",
                                    field.trim(),
                                    MAX_CLASSES - 1
                                ),
                            ));
                        }
                        labels.push(x as usize);
                    }
                }
            }
            Ok(())
        },
    )?;
    let features = Array2::from_shape_vec((rows, w - 1), features).expect("rows of equal width");
    match options.task {
        Task::Classification => {
            let classes = labels.iter().max().map_or(1, |m| m + 1);
            Dataset::classification(features, labels, classes)
        }
        Task::Regression => {
            let targets = Array2::from_shape_vec((rows, 1), targets).expect("one per row");
            Dataset::regression(features, targets)
        }
    }
}

/// Reads a numeric CSV file of features only (no label column); see [`parse_csv_features`].
pub fn load_csv_features<E: Float>(path: impl AsRef<Path>, header: Header) -> Result<Array2<E>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    parse_csv_features(&text, path, header)
}

/// Parses numeric CSV `text` (named `source` in errors) whose every column is a feature, as
/// for a prediction: `[rows, columns]`. The rules are [`parse_csv`]'s, with no label.
///
/// ```
/// use wengert_train::loaders::{parse_csv_features, Header};
/// let x = parse_csv_features::<f32>("a,b\n1,2\n3,4.5\n", "in.csv".as_ref(), Header::Auto)?;
/// assert_eq!(x, ndarray::array![[1.0, 2.0], [3.0, 4.5]]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn parse_csv_features<E: Float>(
    text: &str,
    source: &Path,
    header: Header,
) -> Result<Array2<E>> {
    let mut values: Vec<E> = Vec::new();
    let (rows, width) = for_each_row(
        text,
        source,
        header,
        |_, _, _| Ok(()),
        |line_no, fields| {
            for (k, field) in fields.iter().enumerate() {
                values.push(E::from_f64(number(source, line_no, k, field)?));
            }
            Ok(())
        },
    )?;
    Ok(Array2::from_shape_vec((rows, width), values).expect("rows of equal width"))
}

/// Walks the data rows of CSV `text` (after the header, if there is one): `first` sees the
/// first row's line number and width and the header, then `row` sees every row's line number
/// and fields, each row checked to have the first's width (and the header's). Returns the
/// number of rows and their width; no rows at all is an error.
fn for_each_row<'t>(
    text: &'t str,
    source: &Path,
    header: Header,
    mut first: impl FnMut(usize, usize, Option<&[String]>) -> Result<()>,
    mut row: impl FnMut(usize, &[&'t str]) -> Result<()>,
) -> Result<(usize, usize)> {
    let mut lines = data_lines(text).peekable();
    let header_fields = detect_header(header, lines.peek().copied());
    if header_fields.is_some() {
        lines.next();
    }
    let mut width: Option<(usize, usize)> = None; // (fields, line that set it)
    let mut rows = 0usize;
    let mut fields: Vec<&str> = Vec::new();
    for (line_no, line) in lines {
        fields.clear();
        fields.extend(split(line));
        match width {
            None => {
                if let Some(h) = &header_fields
                    && h.len() != fields.len()
                {
                    return Err(parse_error(
                        source,
                        line_no,
                        format!("{} fields, but the header has {}", fields.len(), h.len()),
                    ));
                }
                first(line_no, fields.len(), header_fields.as_deref())?;
                width = Some((fields.len(), line_no));
            }
            Some((w, set_on)) if w != fields.len() => {
                return Err(parse_error(
                    source,
                    line_no,
                    format!("{} fields, but line {set_on} has {w}", fields.len()),
                ));
            }
            Some(_) => {}
        }
        row(line_no, &fields)?;
        rows += 1;
    }
    match width {
        Some((w, _)) => Ok((rows, w)),
        None => Err(parse_error(source, 0, "no data rows".into())),
    }
}

/// A field's finite number, or an error naming the line and field.
fn number(source: &Path, line_no: usize, k: usize, field: &str) -> Result<f64> {
    parse_number(field).ok_or_else(|| {
        parse_error(
            source,
            line_no,
            format!("field {} (`{}`) is not a number", k + 1, field.trim()),
        )
    })
}

fn parse_error(source: &Path, line: usize, message: String) -> Error {
    Error::Parse {
        path: source.to_path_buf(),
        line,
        message,
    }
}

/// The file as UTF-8 text.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: 0,
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// The non-blank lines with their numbers (from 1), line endings trimmed.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// The header's fields, if the first line is one.
fn detect_header(header: Header, first: Option<(usize, &str)>) -> Option<Vec<String>> {
    match (header, first) {
        (_, None) | (Header::Absent, _) => None,
        (Header::Present, Some((_, l))) => Some(split(l).map(str::to_string).collect()),
        (Header::Auto, Some((_, l))) => {
            let fields: Vec<&str> = split(l).collect();
            // `nan` and `inf` parse, so a data row holding one is not taken for a header.
            let numeric = fields.iter().all(|f| f.parse::<f64>().is_ok());
            (!numeric).then(|| fields.into_iter().map(str::to_string).collect())
        }
    }
}

fn split(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|f| {
        let f = f.trim();
        f.strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or(f)
    })
}

/// A finite number, or `None` (so `nan` and `inf` are refused like any other non-number).
fn parse_number(field: &str) -> Option<f64> {
    field.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

fn resolve_label(
    column: &LabelColumn,
    width: usize,
    header: Option<&[String]>,
) -> std::result::Result<usize, String> {
    match column {
        LabelColumn::Last => Ok(width - 1),
        LabelColumn::Index(i) if *i < width => Ok(*i),
        LabelColumn::Index(i) => Err(format!(
            "label column {i} is out of range: rows have {width} fields (columns 0 to {})",
            width - 1
        )),
        LabelColumn::Name(name) => match header {
            None => Err(format!(
                "label column `{name}` named, but the file has no header"
            )),
            Some(h) => h.iter().position(|f| f == name).ok_or_else(|| {
                format!("no column named `{name}` in the header ({})", h.join(", "))
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, options: &CsvOptions) -> Result<Dataset<f64>> {
        parse_csv(text, Path::new("t.csv"), options)
    }

    #[test]
    fn reads_headers_label_columns_and_blank_lines() {
        let text = "a,label,b\r\n1,0,2\n\n3,1,4\n";
        let by_name = CsvOptions {
            label_column: LabelColumn::Name("label".into()),
            ..CsvOptions::default()
        };
        let d = parse(text, &by_name).unwrap();
        assert_eq!(d.features(), ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(d.labels().unwrap(), [0, 1]);
        let by_index = CsvOptions {
            label_column: LabelColumn::Index(1),
            header: Header::Present,
            ..CsvOptions::default()
        };
        assert_eq!(parse(text, &by_index).unwrap(), d);
        let no_header = CsvOptions::default();
        let d = parse("1,2,0\n3,4,1\n", &no_header).unwrap();
        assert_eq!(d.len(), 2);
        let regression = CsvOptions {
            task: Task::Regression,
            ..CsvOptions::default()
        };
        let d = parse("1,2,0.5\n3,4,-1.5\n", &regression).unwrap();
        assert_eq!(d.n_outputs(), 1);
        assert_eq!(d.classes(), None);
    }

    #[test]
    fn features_only_files_keep_every_column_and_name_bad_lines() {
        let read = |t: &str, h: Header| parse_csv_features::<f64>(t, Path::new("f.csv"), h);
        assert_eq!(
            read("1,2\n3,4\n", Header::Auto).unwrap(),
            ndarray::array![[1.0, 2.0], [3.0, 4.0]]
        );
        assert_eq!(read("7\n", Header::Absent).unwrap().dim(), (1, 1));
        let msg = |t: &str| read(t, Header::Auto).unwrap_err().to_string();
        assert_eq!(
            msg("a,b\n1,2\n3\n"),
            "f.csv, line 3: 1 fields, but line 2 has 2"
        );
        assert_eq!(
            msg("a,b\n1,2,3\n"),
            "f.csv, line 2: 3 fields, but the header has 2"
        );
        assert_eq!(
            msg("1,2\n1,y\n"),
            "f.csv, line 2: field 2 (`y`) is not a number"
        );
        assert_eq!(msg("a,b\n"), "f.csv: no data rows");
    }

    #[test]
    fn errors_name_the_line() {
        let opts = CsvOptions::default();
        let msg = |t: &str| parse(t, &opts).unwrap_err().to_string();
        assert_eq!(
            msg("1,2,0\n1,2\n"),
            "t.csv, line 2: 2 fields, but line 1 has 3"
        );
        assert_eq!(
            msg("h1,h2\n1,0\n\n1,x\n"),
            "t.csv, line 4: field 2 (`x`) is not a number"
        );
        assert_eq!(
            msg("1,nan,0\n"),
            "t.csv, line 1: field 2 (`nan`) is not a number"
        );
        assert!(msg("1,2,-1\n").starts_with("t.csv, line 1: label `-1` is out of range"));
        assert!(msg("1,2,0.5\n").contains("label `0.5` is out of range"));
        assert!(msg("1,2,70000\n").contains("out of range"));
        assert_eq!(msg(""), "t.csv: no data rows");
        assert_eq!(msg("a,b\n"), "t.csv: no data rows");
        let named = CsvOptions {
            label_column: LabelColumn::Name("y".into()),
            ..CsvOptions::default()
        };
        assert!(
            parse("1,2\n", &named)
                .unwrap_err()
                .to_string()
                .contains("no header")
        );
        let far = CsvOptions {
            label_column: LabelColumn::Index(5),
            ..CsvOptions::default()
        };
        assert!(
            parse("1,2\n", &far)
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        assert_eq!("-1".parse::<LabelColumn>().unwrap(), LabelColumn::Last);
        assert_eq!("3".parse::<LabelColumn>().unwrap(), LabelColumn::Index(3));
    }
}
