//! Loaders: numeric CSV files and MNIST's IDX files, into a [`Dataset`](crate::Dataset).

mod csv;
mod idx;

pub use csv::{
    CsvOptions, Header, LabelColumn, Task, load_csv, load_csv_features, parse_csv,
    parse_csv_features,
};
pub use idx::{IdxArray, MAX_IDX_BYTES, load_mnist, read_idx};
