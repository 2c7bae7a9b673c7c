//! CSV data: numeric feature columns and one label column (a class index, a class name or a
//! regression target), read with the `csv` crate.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use ndarray::Array2;
use wengert_ops::Float;

use super::for_terminal;
use crate::data::MAX_CLASSES;
use crate::{Dataset, Error, Result};

/// The largest CSV file read by default (256 MiB): a file past it is refused, whether its
/// size is known beforehand or only found while reading (a pipe, `/dev/zero`). In memory the
/// features take at most twice the file's bytes in `f32` (a field is at least a digit and a
/// comma), four times in `f64`.
pub const DEFAULT_MAX_CSV_BYTES: u64 = 256 << 20;

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
    /// name in the header. A header that makes the choice ambiguous (a column named `last`
    /// or `3` that is not that column, a name used twice) is refused when the file is read.
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

/// Whether the first row is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Header {
    /// The first row is a header when none of its fields is empty or a number (the
    /// default). A row such as `0x1,2,0`, `1_0,2,0` or `1,,0` is therefore data, and is
    /// refused for its malformed field rather than silently dropped as a header.
    #[default]
    Auto,
    /// The first row is a header.
    Present,
    /// Every row is data.
    Absent,
}

/// What the label column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Class labels (see [`Labels`]).
    #[default]
    Classification,
    /// A numeric regression target.
    Regression,
}

/// How class labels are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Labels {
    /// Class indices `0, 1, ...` when every label is a whole number (the classes are then
    /// the largest plus one); otherwise every label is a class name, and the names, sorted
    /// by their bytes, are classes `0, 1, ...` (kept in [`Dataset::class_names`]). The default.
    #[default]
    Detect,
    /// Class indices only, each below `classes` when it is given (a model's class count).
    Indices {
        /// The number of classes, if known beforehand.
        classes: Option<usize>,
    },
    /// Class names only, each one of these: class `i` is `names[i]` (a model's classes).
    Names(Vec<String>),
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column (default: the last).
    pub label_column: LabelColumn,
    /// Whether there is a header row (default: detected).
    pub header: Header,
    /// Classification or regression (default: classification).
    pub task: Task,
    /// How class labels are read (default: detected).
    pub labels: Labels,
    /// The largest file read, in bytes (default [`DEFAULT_MAX_CSV_BYTES`]).
    pub max_bytes: u64,
    /// The most feature columns a row may have (default: no limit). A wider file is refused
    /// at its first row, before the rest is parsed: a caller sizes this from the memory a
    /// first layer that wide would take.
    pub max_features: Option<usize>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: LabelColumn::default(),
            header: Header::default(),
            task: Task::default(),
            labels: Labels::default(),
            max_bytes: DEFAULT_MAX_CSV_BYTES,
            max_features: None,
        }
    }
}

/// Reads a CSV file into a data set; see [`parse_csv`] for the rules. A file larger than
/// `options.max_bytes` is refused, before reading when its size is known.
pub fn load_csv<E: Float>(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset<E>> {
    let path = path.as_ref();
    read_labelled(&read_limited(path, options.max_bytes)?, path, options)
}

/// Parses CSV `text` (named `source` in errors) into a data set.
///
/// Fields are separated by commas and may be quoted (`"1,5"` is one field, `""` inside
/// quotes is a quote); surrounding spaces are trimmed; blank lines are skipped; a UTF-8
/// byte-order mark is dropped. Every feature is a finite number. A label is a class index,
/// a class name or a number, as [`CsvOptions::labels`] and [`CsvOptions::task`] say.
/// Every error names the 1-based line, with the file's text escaped ([`for_terminal`]).
///
/// ```
/// use wengert_train::loaders::{parse_csv, CsvOptions};
/// let text = "x,y,label\n0.5,1,0\n-2,3e-1,2\n";
/// let data = parse_csv::<f32>(text, "inline.csv".as_ref(), &CsvOptions::default())?;
/// assert_eq!((data.len(), data.n_features(), data.classes()), (2, 2, Some(3)));
///
/// let iris = "5.1,3.5,setosa\n6.3,2.9,virginica\n5.9,3.0,\"versicolor\"\n";
/// let data = parse_csv::<f32>(iris, "iris.csv".as_ref(), &CsvOptions::default())?;
/// assert_eq!(data.class_names().unwrap(), ["setosa", "versicolor", "virginica"]);
/// assert_eq!(data.labels().unwrap(), [0, 2, 1]);
///
/// let err = parse_csv::<f32>("1,2,0\n3,x,1\n", "bad.csv".as_ref(), &CsvOptions::default()).unwrap_err();
/// assert_eq!(err.to_string(), "bad.csv, line 2: field 2 (`x`) is not a number");
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn parse_csv<E: Float>(text: &str, source: &Path, options: &CsvOptions) -> Result<Dataset<E>> {
    read_labelled(text.as_bytes(), source, options)
}

/// Reads a CSV file of features only (no label column); see [`parse_csv_features`].
pub fn load_csv_features<E: Float>(path: impl AsRef<Path>, header: Header) -> Result<Array2<E>> {
    let path = path.as_ref();
    read_features(&read_limited(path, DEFAULT_MAX_CSV_BYTES)?, path, header)
}

/// Parses CSV `text` (named `source` in errors) whose every column is a feature, as for a
/// prediction: `[rows, columns]`. The rules are [`parse_csv`]'s, with no label.
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
    read_features(text.as_bytes(), source, header)
}

fn read_features<E: Float>(text: &[u8], source: &Path, header: Header) -> Result<Array2<E>> {
    let mut values: Vec<E> = Vec::new();
    let (rows, width) = for_each_row(
        text,
        source,
        header,
        |_, _, _| Ok(()),
        |line, fields| {
            for (k, field) in fields.iter().enumerate() {
                values.push(E::from_f64(number(source, line, k, field)?));
            }
            Ok(())
        },
    )?;
    Ok(Array2::from_shape_vec((rows, width), values).expect("rows of equal width"))
}

fn read_labelled<E: Float>(text: &[u8], source: &Path, options: &CsvOptions) -> Result<Dataset<E>> {
    // Counted on the raw bytes first: parsing a row of ten million fields costs far more
    // memory than the row itself.
    if let Some(max) = options.max_features
        && let Some((line, width)) = first_record_width(text)
        && width.saturating_sub(1) > max
    {
        return Err(too_wide(source, line, width - 1, max));
    }
    let label_at = Cell::new(0);
    let mut features: Vec<E> = Vec::new();
    let mut targets: Vec<E> = Vec::new();
    let mut labels = LabelTable::default();
    let (rows, width) = for_each_row(
        text,
        source,
        options.header,
        |line, width, header| {
            if width < 2 {
                return Err(parse_error(
                    source,
                    line,
                    format!("{width} field; a row needs features and a label"),
                ));
            }
            if let Some(max) = options.max_features
                && width - 1 > max
            {
                return Err(too_wide(source, line, width - 1, max));
            }
            label_at.set(
                resolve_label(&options.label_column, width, header)
                    .map_err(|m| parse_error(source, 0, m))?,
            );
            Ok(())
        },
        |line, fields| {
            for (k, field) in fields.iter().enumerate() {
                if k != label_at.get() {
                    features.push(E::from_f64(number(source, line, k, field)?));
                } else if options.task == Task::Regression {
                    targets.push(E::from_f64(number(source, line, k, field)?));
                } else {
                    labels
                        .push(field, line)
                        .map_err(|m| parse_error(source, line, m))?;
                }
            }
            Ok(())
        },
    )?;
    let features = Array2::from_shape_vec((rows, width - 1), features).expect("equal widths");
    if options.task == Task::Regression {
        let targets = Array2::from_shape_vec((rows, 1), targets).expect("one per row");
        return Dataset::regression(features, targets);
    }
    let (indices, classes, names) = labels
        .classes(&options.labels)
        .map_err(|(line, m)| parse_error(source, line, m))?;
    let data = Dataset::classification(features, indices, classes)?;
    match names {
        Some(names) => data.with_class_names(names),
        None => Ok(data),
    }
}

/// The labels as read: each distinct text once (at most [`MAX_CLASSES`] of them), with the
/// line it first appeared on, and every row's text as an index into them.
#[derive(Default)]
struct LabelTable {
    texts: Vec<(String, usize)>,
    ids: HashMap<String, usize>,
    rows: Vec<usize>,
}

/// Class indices, the class count and the class names if the labels were names; or the line
/// and message of a bad label.
type Classes = (Vec<usize>, usize, Option<Vec<String>>);

impl LabelTable {
    fn push(&mut self, text: &str, line: usize) -> std::result::Result<(), String> {
        let id = match self.ids.get(text) {
            Some(&id) => id,
            None => {
                if self.texts.len() == MAX_CLASSES {
                    return Err(format!(
                        "label `{}` is the {}th distinct label: there may be at most \
                         {MAX_CLASSES} classes",
                        for_terminal(text),
                        MAX_CLASSES + 1
                    ));
                }
                self.ids.insert(text.to_string(), self.texts.len());
                self.texts.push((text.to_string(), line));
                self.texts.len() - 1
            }
        };
        self.rows.push(id);
        Ok(())
    }

    /// Maps every distinct label to a class, as `labels` says.
    fn classes(self, labels: &Labels) -> std::result::Result<Classes, (usize, String)> {
        let numeric = |(text, line): &(String, usize), below: Option<usize>| {
            let limit = below.unwrap_or(MAX_CLASSES);
            match text.parse::<f64>() {
                Ok(x) if x >= 0.0 && x.fract() == 0.0 && x < limit as f64 => Ok(x as usize),
                _ => Err((
                    *line,
                    format!(
                        "label `{}` is out of range: a class label here is a whole number \
                         from 0 to {}{}",
                        for_terminal(text),
                        limit.saturating_sub(1),
                        if below.is_some() {
                            format!(" (the model knows {limit} classes)")
                        } else {
                            String::new()
                        }
                    ),
                )),
            }
        };
        let all_numbers = self.texts.iter().all(|(t, _)| t.parse::<f64>().is_ok());
        let (class_of, classes, names): (Vec<usize>, usize, Option<Vec<String>>) = match labels {
            Labels::Indices { classes } => {
                let class_of = self
                    .texts
                    .iter()
                    .map(|t| numeric(t, *classes))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let count = classes.unwrap_or_else(|| class_of.iter().max().map_or(1, |m| m + 1));
                (class_of, count, None)
            }
            Labels::Detect if all_numbers => {
                let class_of = self
                    .texts
                    .iter()
                    .map(|t| numeric(t, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let count = class_of.iter().max().map_or(1, |m| m + 1);
                (class_of, count, None)
            }
            Labels::Detect => {
                let mut sorted: Vec<&str> = self.texts.iter().map(|(t, _)| t.as_str()).collect();
                sorted.sort_unstable();
                let class_of = self
                    .texts
                    .iter()
                    .map(|(t, _)| sorted.binary_search(&t.as_str()).expect("a sorted name"))
                    .collect();
                let names: Vec<String> = sorted.iter().map(|s| s.to_string()).collect();
                (class_of, names.len(), Some(names))
            }
            Labels::Names(known) => {
                let index: HashMap<&str, usize> = known
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.as_str(), i))
                    .collect();
                let class_of = self
                    .texts
                    .iter()
                    .map(|(t, line)| {
                        index.get(t.as_str()).copied().ok_or_else(|| {
                            (
                                *line,
                                format!(
                                    "label `{}` is not one of the model's {} classes ({})",
                                    for_terminal(t),
                                    known.len(),
                                    name_list(known)
                                ),
                            )
                        })
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                (class_of, known.len(), Some(known.clone()))
            }
        };
        if let Some(empty) = self.texts.iter().find(|(t, _)| t.is_empty())
            && names.is_some()
        {
            return Err((empty.1, "an empty label".into()));
        }
        let indices = self.rows.iter().map(|&id| class_of[id]).collect();
        Ok((indices, classes.max(1), names))
    }
}

/// Up to eight names, escaped, then how many more.
fn name_list(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(8).map(|n| for_terminal(n)).collect();
    if names.len() > 8 {
        shown.push(format!("and {} more", names.len() - 8));
    }
    shown.join(", ")
}

/// Walks the data rows (after the header, if there is one): `first` sees the first row's
/// line and width and the header, then `row` sees every row's line and fields, each row
/// checked to have the first's width (and the header's). Returns the number of rows and
/// their width; no rows at all is an error.
fn for_each_row(
    text: &[u8],
    source: &Path,
    header: Header,
    mut first: impl FnMut(usize, usize, Option<&[String]>) -> Result<()>,
    mut row: impl FnMut(usize, &csv::StringRecord) -> Result<()>,
) -> Result<(usize, usize)> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut lines = Lines::new(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut record = csv::StringRecord::new();
    let mut header_fields: Option<Vec<String>> = None;
    let mut width: Option<(usize, usize)> = None; // (fields, the line that set it)
    let mut rows = 0usize;
    let mut seen_first = false;
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(source, &mut lines, e))?
    {
        let line = record
            .position()
            .map_or(0, |p| lines.of_record_at(p.byte() as usize));
        if record.len() == 1 && record[0].is_empty() {
            continue; // a line of spaces
        }
        if !seen_first {
            seen_first = true;
            if is_header(header, &record) {
                header_fields = Some(record.iter().map(str::to_string).collect());
                continue;
            }
        }
        let fields = &record;
        match width {
            None => {
                if let Some(h) = &header_fields
                    && h.len() != fields.len()
                {
                    return Err(parse_error(
                        source,
                        line,
                        format!("{} fields, but the header has {}", fields.len(), h.len()),
                    ));
                }
                first(line, fields.len(), header_fields.as_deref())?;
                width = Some((fields.len(), line));
            }
            Some((w, set_on)) if w != fields.len() => {
                return Err(parse_error(
                    source,
                    line,
                    format!("{} fields, but line {set_on} has {w}", fields.len()),
                ));
            }
            Some(_) => {}
        }
        let first_row = rows == 0 && header == Header::Auto && header_fields.is_none();
        row(line, fields).map_err(|e| match e {
            // Say why a malformed first row was not taken for a header.
            Error::Parse {
                path,
                line,
                message,
            } if first_row => Error::Parse {
                path,
                line,
                message: format!(
                    "{message} (the first row is read as data: a header has no field that is \
                     empty or a number; if it is a header, say so: --header yes)"
                ),
            },
            e => e,
        })?;
        rows += 1;
    }
    match width {
        Some((w, _)) => Ok((rows, w)),
        None => Err(parse_error(source, 0, "no data rows".into())),
    }
}

/// The documented rule of [`Header`].
fn is_header(header: Header, record: &csv::StringRecord) -> bool {
    match header {
        Header::Present => true,
        Header::Absent => false,
        // `nan` and `inf` parse, so a data row holding one is not taken for a header.
        Header::Auto => record
            .iter()
            .all(|f| !f.is_empty() && f.parse::<f64>().is_err()),
    }
}

/// The file's bytes, refused if it is larger than `max_bytes`: by its size before reading,
/// and by what is read while reading (a file that grows, a device, a pipe), so memory never
/// exceeds the limit by more than a byte.
fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size > max_bytes {
        return Err(too_large(path, max_bytes));
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(path, max_bytes));
    }
    Ok(bytes)
}

fn too_large(path: &Path, max_bytes: u64) -> Error {
    parse_error(
        path,
        0,
        format!("larger than {max_bytes} bytes, the most a CSV file may hold"),
    )
}

fn too_wide(source: &Path, line: usize, features: usize, max: usize) -> Error {
    parse_error(
        source,
        line,
        format!("{features} feature columns, more than the {max} allowed"),
    )
}

/// The line and field count of the first record that is not blank, from the raw bytes:
/// commas outside double quotes separate fields, a line ending outside them ends the record.
fn first_record_width(text: &[u8]) -> Option<(usize, usize)> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut line = 1;
    let mut start = 0;
    // Skip blank lines (and lines of spaces, as the reader does).
    loop {
        let end = text[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| start + i);
        if text[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
            break;
        }
        if end == text.len() {
            return None;
        }
        start = end + 1;
        line += 1;
    }
    let mut fields = 1;
    let mut quoted = false;
    for &b in &text[start..] {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => fields += 1,
            b'\n' | b'\r' if !quoted => break,
            _ => {}
        }
    }
    Some((line, fields))
}

/// The 1-based line each record starts on. The `csv` crate's own count is off where blank
/// lines or CR-LF endings come before a record (a record's position is where the previous
/// one ended), so lines are counted here from the records' byte offsets, in one pass.
struct Lines<'a> {
    text: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Lines {
            text,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the first byte at or after `start` that is not a line ending; `start`
    /// never decreases from call to call.
    fn of_record_at(&mut self, start: usize) -> usize {
        let mut end = start.max(self.offset).min(self.text.len());
        while end < self.text.len() && matches!(self.text[end], b'\n' | b'\r') {
            end += 1;
        }
        self.line += self.text[self.offset..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = end;
        self.line
    }
}

fn csv_error(source: &Path, lines: &mut Lines<'_>, err: csv::Error) -> Error {
    let line = err
        .position()
        .map_or(0, |p| lines.of_record_at(p.byte() as usize));
    match err.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(source, e),
        csv::ErrorKind::Utf8 { pos, err } => parse_error(
            source,
            pos.map_or(line, |p| lines.of_record_at(p.byte() as usize)),
            format!("field {} is not UTF-8 text", err.field() + 1),
        ),
        other => parse_error(source, line, format!("{other:?}")),
    }
}

/// A field's finite number, or an error naming the line and field.
fn number(source: &Path, line: usize, k: usize, field: &str) -> Result<f64> {
    field
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| {
            parse_error(
                source,
                line,
                format!(
                    "field {} (`{}`) is not a number",
                    k + 1,
                    for_terminal(field)
                ),
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

/// The label's column: ambiguous choices are refused.
fn resolve_label(
    column: &LabelColumn,
    width: usize,
    header: Option<&[String]>,
) -> std::result::Result<usize, String> {
    let named = |name: &str| -> Vec<usize> {
        header
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .filter(|(_, h)| h.as_str() == name)
            .map(|(i, _)| i)
            .collect()
    };
    // A header column named like the choice, somewhere else than the choice, makes it
    // ambiguous: which did the user mean?
    let unambiguous = |said: &str, meaning: usize| -> std::result::Result<usize, String> {
        match named(said).iter().find(|&&i| i != meaning) {
            Some(&other) => Err(format!(
                "label column `{said}` is ambiguous: it means column {meaning}, but the header \
                 names column {other} `{said}`; give that column's index instead"
            )),
            None => Ok(meaning),
        }
    };
    match column {
        LabelColumn::Last => {
            unambiguous("last", width - 1)?;
            unambiguous("-1", width - 1)
        }
        LabelColumn::Index(i) if *i < width => unambiguous(&i.to_string(), *i),
        LabelColumn::Index(i) => Err(format!(
            "label column {i} is out of range: rows have {width} fields (columns 0 to {})",
            width - 1
        )),
        LabelColumn::Name(name) => match header {
            None => Err(format!(
                "label column `{}` named, but the file has no header",
                for_terminal(name)
            )),
            Some(h) => match named(name).as_slice() {
                [i] => Ok(*i),
                [] => Err(format!(
                    "no column named `{}` in the header ({})",
                    for_terminal(name),
                    name_list(h)
                )),
                several => Err(format!(
                    "label column `{}` is ambiguous: the header names {} columns so \
                     (columns {several:?}); give a column's index instead",
                    for_terminal(name),
                    several.len()
                )),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, options: &CsvOptions) -> Result<Dataset<f64>> {
        parse_csv(text, Path::new("t.csv"), options)
    }

    fn msg(text: &str, options: &CsvOptions) -> String {
        parse(text, options).unwrap_err().to_string()
    }

    #[test]
    fn reads_headers_label_columns_and_blank_lines() {
        let text = "a,label,b\r\n1,0,2\n\n  \n3,1,4\n";
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
        let d = parse("1,2,0\n3,4,1\n", &CsvOptions::default()).unwrap();
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
    fn quoting_and_a_byte_order_mark_are_understood() {
        let text =
            "\u{feff}\"a\",\"b, c\",label\n\"1\",\" 2 \",\"setosa\"\n3,4,\"vir\"\"ginica\"\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.features(), ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(d.class_names().unwrap(), ["setosa", "vir\"ginica"]);
        // With the mark, a file with no header starts with a number, not `\u{feff}1`.
        let d = parse("\u{feff}1,2,0\n3,4,1\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn a_first_row_with_a_number_or_an_empty_field_is_data() {
        for (text, bad) in [
            ("0x1,2,0\n3,4,1\n", "`0x1`"),
            ("1_0,2,0\n3,4,1\n", "`1_0`"),
            ("1,,0\n3,4,1\n", "``"),
        ] {
            let m = msg(text, &CsvOptions::default());
            assert!(m.starts_with("t.csv, line 1: field"), "{m}");
            assert!(m.contains(bad), "{m}");
            assert!(m.contains("if it is a header, say so"), "{m}");
        }
        // A header of names only is still found.
        assert_eq!(
            parse("x,y,z\n1,2,0\n", &CsvOptions::default())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn string_labels_are_sorted_names_and_a_models_names_are_kept() {
        let text = "1,b\n2,a\n3,c\n4,a\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.class_names().unwrap(), ["a", "b", "c"]);
        assert_eq!(d.labels().unwrap(), [1, 0, 2, 0]);
        let known = CsvOptions {
            labels: Labels::Names(vec!["c".into(), "b".into(), "a".into(), "z".into()]),
            ..CsvOptions::default()
        };
        let d = parse(text, &known).unwrap();
        assert_eq!(d.labels().unwrap(), [1, 2, 0, 2]);
        assert_eq!(d.classes(), Some(4));
        let m = msg("1,a\n2,q\u{1b}[2J\n", &known);
        assert!(
            m.starts_with("t.csv, line 2: label `q\\u{1b}[2J` is not one of the model's 4 classes"),
            "{m}"
        );
        let indices = CsvOptions {
            labels: Labels::Indices { classes: Some(3) },
            ..CsvOptions::default()
        };
        assert_eq!(parse("1,2\n2,0\n", &indices).unwrap().classes(), Some(3));
        let m = msg("1,0\n1,1\n\n1,3\n", &indices);
        assert!(
            m.starts_with("t.csv, line 4: label `3` is out of range"),
            "{m}"
        );
        assert!(m.contains("the model knows 3 classes"), "{m}");
        let m = msg("1,0\n1,setosa\n", &indices);
        assert!(m.starts_with("t.csv, line 2: label `setosa`"), "{m}");
    }

    #[test]
    fn the_class_count_is_bounded() {
        let text: String = (0..=MAX_CLASSES).map(|i| format!("1,c{i}\n")).collect();
        let m = msg(&text, &CsvOptions::default());
        assert!(
            m.starts_with(&format!(
                "t.csv, line {}: label `c{MAX_CLASSES}`",
                MAX_CLASSES + 1
            )),
            "{m}"
        );
        assert!(m.contains("at most 1024 classes"), "{m}");
        let m = msg("1,0\n2,65535\n", &CsvOptions::default());
        assert!(
            m.starts_with("t.csv, line 2: label `65535` is out of range"),
            "{m}"
        );
    }

    #[test]
    fn a_file_too_wide_is_refused_at_its_first_row() {
        let narrow = CsvOptions {
            max_features: Some(2),
            ..CsvOptions::default()
        };
        assert_eq!(parse("1,2,0\n", &narrow).unwrap().n_features(), 2);
        let m = msg("\n1,2,3,0\n1,2,3,x,y\n", &narrow);
        assert_eq!(
            m,
            "t.csv, line 2: 3 feature columns, more than the 2 allowed"
        );
    }

    #[test]
    fn ambiguous_label_columns_are_refused() {
        let named = |s: &str| CsvOptions {
            label_column: s.parse().unwrap(),
            ..CsvOptions::default()
        };
        let m = msg("last,b,c\n1,2,0\n", &named("last"));
        assert!(m.contains("label column `last` is ambiguous"), "{m}");
        // A header with a number in it must be declared (the rule of `Header::Auto`).
        let declared = CsvOptions {
            header: Header::Present,
            ..named("3")
        };
        let m = msg("a,3,c,d\n1,2,0,5\n", &declared);
        assert!(m.contains("label column `3` is ambiguous"), "{m}");
        let m = msg("y,b,y\n1,2,0\n", &named("y"));
        assert!(m.contains("label column `y` is ambiguous"), "{m}");
        // Named like what it is: not ambiguous.
        assert_eq!(parse("a,b,last\n1,2,0\n", &named("last")).unwrap().len(), 1);
        let declared = CsvOptions {
            header: Header::Present,
            ..named("1")
        };
        assert_eq!(parse("a,1,c\n1,0,2\n", &declared).unwrap().len(), 1);
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
        assert_eq!(
            msg("1,2,0\n1,2\n", &opts),
            "t.csv, line 2: 2 fields, but line 1 has 3"
        );
        assert_eq!(
            msg("h1,h2,h3\n1,2,0\n\n1,x,0\n", &opts),
            "t.csv, line 4: field 2 (`x`) is not a number"
        );
        assert!(
            msg("1,nan,0\n", &opts).starts_with("t.csv, line 1: field 2 (`nan`) is not a number")
        );
        assert!(msg("1,2,-1\n", &opts).starts_with("t.csv, line 1: label `-1` is out of range"));
        assert!(msg("1,2,0\n1,2,0.5\n", &opts).starts_with("t.csv, line 2: label `0.5`"));
        assert!(msg("1,2,70000\n", &opts).contains("out of range"));
        assert_eq!(msg("", &opts), "t.csv: no data rows");
        assert_eq!(msg("a,b\n", &opts), "t.csv: no data rows");
        assert!(msg("\"1,2\n", &opts).starts_with("t.csv"));
        // A quoted field spanning lines: the next row's line is still right.
        assert!(
            msg("1,\"a\nb\",0\n1,x,0\n", &opts)
                .starts_with("t.csv, line 1: field 2 (`a\\nb`) is not a number")
        );
        assert_eq!(
            msg("1,0,0\n1,\"a\nb\",0\n1,x,0\n", &opts),
            "t.csv, line 2: field 2 (`a\\nb`) is not a number"
        );
        let named = CsvOptions {
            label_column: LabelColumn::Name("y".into()),
            ..CsvOptions::default()
        };
        assert!(msg("1,2\n", &named).contains("no header"));
        let far = CsvOptions {
            label_column: LabelColumn::Index(5),
            ..CsvOptions::default()
        };
        assert!(msg("1,2\n", &far).contains("out of range"));
        assert_eq!("-1".parse::<LabelColumn>().unwrap(), LabelColumn::Last);
        assert_eq!("3".parse::<LabelColumn>().unwrap(), LabelColumn::Index(3));
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_line() {
        let bytes = b"1,2,0\n\n1,\xff,0\n";
        let err = read_labelled::<f32>(&bytes[..], Path::new("u.csv"), &CsvOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("u.csv, line 3: field 2 is not UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn lines_are_counted_past_blank_lines_crlf_and_quoted_newlines() {
        let opts = CsvOptions::default();
        for (text, line) in [
            ("1,0\n1,1\n\n1,x,0\n", 4),
            ("1,0\r\n\r\n\r\n1,x,0\r\n", 4),
            ("1,\"a\nb\"\n\n\n1,x,0\n", 5),
            ("\u{feff}\n\n1,0\n  \n1,x,0\n", 5),
        ] {
            let m = msg(text, &opts);
            assert!(
                m.starts_with(&format!("t.csv, line {line}: 3 fields")),
                "{text:?}: {m}"
            );
        }
    }
}
