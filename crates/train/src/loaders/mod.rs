//! Loaders: CSV files and MNIST's IDX files, into a [`Dataset`](crate::Dataset).

mod csv;
mod idx;
mod terminal;

pub use csv::{
    CsvOptions, DEFAULT_MAX_CSV_BYTES, Header, LabelColumn, Labels, Task, load_csv,
    load_csv_features, parse_csv, parse_csv_features,
};
pub use idx::{
    IdxArray, MAX_IDX_BYTES, MAX_MNIST_FEATURE_BYTES, load_mnist, load_mnist_test, read_idx,
};
pub use terminal::for_terminal;
