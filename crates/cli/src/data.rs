//! Reading CSV files as the commands' options say (`--label-column`, `--header`).

use std::path::Path;

use wengert_train::Dataset;
use wengert_train::loaders::{CsvOptions, Header, LabelColumn, Labels, load_csv};

use crate::E;
use crate::args::HeaderArg;
use crate::run_info::check_class_name;

/// A labelled CSV file, with `--label-column` and `--header`, its labels read as `labels`
/// says, at most `max_features` wide. Class names must be printable (they are printed, and
/// written into predictions).
pub fn load_labelled_csv(
    path: &Path,
    label_column: &str,
    header: HeaderArg,
    labels: Labels,
    max_features: Option<usize>,
) -> Result<Dataset<E>, String> {
    let options = CsvOptions {
        label_column: label_column
            .parse::<LabelColumn>()
            .map_err(|e| e.to_string())?,
        header: header_option(header),
        labels,
        max_features,
        ..CsvOptions::default()
    };
    let data = load_csv::<E>(path, &options).map_err(|e| e.to_string())?;
    for name in data.class_names().unwrap_or(&[]) {
        check_class_name(name).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(data)
}

/// `--header` as the loader's option.
pub fn header_option(header: HeaderArg) -> Header {
    match header {
        HeaderArg::Auto => Header::Auto,
        HeaderArg::Yes => Header::Present,
        HeaderArg::No => Header::Absent,
    }
}
