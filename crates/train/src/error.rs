//! [`Error`]: everything that can go wrong while loading data or training, as data.

use std::fmt;
use std::path::PathBuf;

/// An error from loading data, configuring a run or training.
///
/// Each variant's message fits on one line and names what a person needs to find the fault:
/// the file and line of a malformed row, the step at which the loss stopped being finite.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The engine refused an operation (a shape mismatch, a label out of range, ...).
    Engine(wengert_ops::Error),
    /// The loss became NaN or infinite: training diverged.
    NonFiniteLoss {
        /// The epoch, counted from 1.
        epoch: usize,
        /// The optimiser step, counted from 1 over the whole run.
        step: usize,
        /// The value the loss took.
        loss: f64,
    },
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A data file is malformed.
    Parse {
        /// The file (or the name of an embedded data set).
        path: PathBuf,
        /// The line, counted from 1 (0 where the fault is not on one line).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Data that cannot be used as given (lengths disagree, a label names no class, ...).
    InvalidData(String),
    /// A setting that cannot work (a zero batch size, a split fraction outside [0, 1), ...).
    InvalidConfig(String),
    /// A model whose recorded parameters do not match what it reports.
    Model(String),
    /// A checkpoint whose trainer state is missing or malformed.
    Checkpoint(String),
    /// A file of wengert's own (weights, a checkpoint) could not be written or read.
    File(wengert_io::Error),
    /// Processes training together (through a
    /// [`GradientReducer`](crate::GradientReducer)) disagree, or cannot reach each other.
    Distributed(String),
}

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Engine(e) => write!(f, "{e}"),
            Error::File(e) => write!(f, "{e}"),
            Error::NonFiniteLoss { epoch, step, loss } => write!(
                f,
                "the loss became {loss} at step {step} (epoch {epoch}): training diverged; \
                 try a smaller learning rate"
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Parse {
                path,
                line: 0,
                message,
            } => write!(f, "{}: {message}", path.display()),
            Error::Parse {
                path,
                line,
                message,
            } => write!(f, "{}, line {line}: {message}", path.display()),
            Error::InvalidData(m) => write!(f, "invalid data: {m}"),
            Error::InvalidConfig(m) => write!(f, "invalid setting: {m}"),
            Error::Model(m) => write!(f, "model: {m}"),
            Error::Checkpoint(m) => write!(f, "checkpoint: {m}"),
            Error::Distributed(m) => write!(f, "distributed training: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Engine(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::File(e) => Some(e),
            _ => None,
        }
    }
}

impl From<wengert_ops::Error> for Error {
    fn from(e: wengert_ops::Error) -> Self {
        Error::Engine(e)
    }
}

impl From<wengert_io::Error> for Error {
    fn from(e: wengert_io::Error) -> Self {
        Error::File(e)
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
