//! [`Error`]: every way saving or loading can fail, as data with a reason.

use std::fmt;
use std::path::PathBuf;

use wengert_ops::Shape;

use crate::FileKind;

/// An error from saving, loading or replaying a file.
///
/// Loading never trusts the file: each check it makes has its own variant, so a caller (or a
/// test) can tell a truncated download from a forward reference in a hand-edited tape.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused a read, write, sync or rename.
    Io {
        /// What was being done (`"read"`, `"write"`, `"rename"`, ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is larger than [`LoadOptions::max_file_bytes`](crate::LoadOptions) allows.
    FileTooLarge {
        /// The file's size in bytes.
        size: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// The file is too short to hold the container header.
    TooShort {
        /// The file's length in bytes.
        len: usize,
        /// The header's length.
        header: usize,
    },
    /// The file does not start with wengert's magic bytes.
    BadMagic {
        /// The first bytes found.
        found: [u8; 8],
    },
    /// A wengert file of another kind (a weights file given where a tape was expected).
    WrongKind {
        /// The kind the caller asked for.
        expected: FileKind,
        /// The kind tag found in the header.
        found: [u8; 4],
    },
    /// A format version this build does not know (written by a newer wengert, or corrupt).
    UnsupportedVersion {
        /// The file's kind.
        kind: FileKind,
        /// The version in the header.
        version: u32,
        /// The newest version this build reads.
        newest: u32,
    },
    /// The header's payload length disagrees with the bytes that follow it.
    LengthMismatch {
        /// The length the header declares.
        declared: u64,
        /// The number of bytes after the header.
        actual: u64,
    },
    /// The payload's CRC-32 is not the one in the header: the file is corrupt.
    ChecksumMismatch {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the payload as read.
        computed: u32,
    },
    /// The payload is not a valid encoding of the file's type.
    Decode {
        /// The decoder's reason.
        reason: String,
    },
    /// Decoding would claim more memory than the payload's size justifies.
    LimitExceeded {
        /// The byte limit decoding ran under.
        limit: usize,
    },
    /// The payload holds bytes after the encoded value.
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// The file's element type is not the one asked for.
    ElementTypeMismatch {
        /// The element type asked for (`"f32"` or `"f64"`).
        expected: &'static str,
        /// The element type found.
        found: &'static str,
    },
    /// A shape with more axes than the engine supports.
    RankTooHigh {
        /// Which array (`node 3`, `tensor "w1"`).
        what: String,
        /// Its number of axes.
        rank: usize,
        /// The largest supported.
        max: usize,
    },
    /// A shape whose element count overflows (for example rows · cols past `usize::MAX`).
    ElementCountOverflow {
        /// Which array.
        what: String,
        /// Its dimensions as stored.
        dims: Vec<u64>,
    },
    /// An array's data does not hold as many elements as its shape says.
    DataLength {
        /// Which array.
        what: String,
        /// The element count of its shape.
        expected: usize,
        /// The number of elements stored.
        found: usize,
    },
    /// An op node with the wrong number of inputs for its op.
    WrongArity {
        /// The node.
        node: u32,
        /// The op's name.
        op: &'static str,
        /// How many inputs the op takes.
        expected: usize,
        /// How many the file gives.
        found: usize,
    },
    /// A node that names itself as an input (a cycle of length one).
    SelfReference {
        /// The node.
        node: u32,
    },
    /// A node whose input is recorded after it: the list is not in evaluation order.
    ForwardReference {
        /// The node.
        node: u32,
        /// The later node it names as input.
        input: u32,
    },
    /// A node id past the end of the node list.
    NodeOutOfRange {
        /// Where the id appears (`input 0 of node 4`, `output "loss"`).
        what: String,
        /// The id.
        id: u32,
        /// The number of nodes.
        len: usize,
    },
    /// Shape inference refuses a node's input shapes.
    ShapeInference {
        /// The node.
        node: u32,
        /// The engine's reason.
        source: wengert_ops::Error,
    },
    /// A node's stored shape is not the one its op computes from its inputs.
    ShapeMismatch {
        /// The node.
        node: u32,
        /// The shape in the file.
        stored: Shape,
        /// The shape inferred from the inputs.
        inferred: Shape,
    },
    /// A name given to a node of another role (an "input" that is a parameter).
    WrongRole {
        /// The name.
        name: String,
        /// The node it names.
        node: u32,
        /// The role the list requires (`"input"`, `"parameter"`).
        expected: &'static str,
    },
    /// A name used twice.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An empty name.
    EmptyName,
    /// Names of a map not in strictly increasing order (each map has one encoding).
    NamesOutOfOrder {
        /// The first name out of order.
        name: String,
    },
    /// An input or parameter node with no name (or with two).
    Unnamed {
        /// The node.
        node: u32,
        /// Its role.
        role: &'static str,
    },
    /// A tape holding a custom op cannot be saved: its code is not data.
    CustomOp {
        /// The node holding it.
        node: u32,
        /// The custom op's name.
        name: String,
    },
    /// A built-in op this version of the format has no encoding for.
    UnsupportedOp {
        /// The node.
        node: u32,
        /// The op's name.
        op: &'static str,
    },
    /// No input, parameter, output or array of that name.
    UnknownName {
        /// The name asked for.
        name: String,
    },
    /// Replaying needs an input that was not fed.
    MissingInput {
        /// The input's name.
        name: String,
    },
    /// A replacement array whose shape differs from the stored one.
    ParameterShape {
        /// The parameter.
        name: String,
        /// Its stored shape.
        expected: Vec<usize>,
        /// The shape given.
        found: Vec<usize>,
    },
    /// A replay would hold more memory than its budget
    /// ([`ReplayOptions::max_bytes`](crate::ReplayOptions)) allows; nothing was recorded.
    ReplayTooLarge {
        /// The bytes it would hold ([`ReplayPlan::bytes`](crate::ReplayPlan::bytes), plus what
        /// the caller said it holds per row).
        needed: u128,
        /// The budget.
        budget: u64,
        /// The batch size planned, when the caller was choosing one (`Some(1)`: even one
        /// example is too large).
        batch: Option<usize>,
    },
    /// The engine refused an op while replaying (a bad input shape, a label out of range).
    Engine {
        /// The engine's error.
        source: wengert_ops::Error,
    },
    /// A safetensors file the `safetensors` crate refuses, or that cannot be written.
    Safetensors {
        /// The crate's reason.
        reason: String,
    },
    /// An output path that names something other than a regular file (a directory, a device,
    /// a pipe): replacing it atomically would destroy it, so it is left alone.
    NotARegularFile {
        /// The path, after following symbolic links.
        path: PathBuf,
        /// What it is (`"a directory"`, `"a character device"`, ...).
        kind: &'static str,
    },
    /// Another process holds the lock on a directory (another run is writing there).
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// The process id the holder wrote into the lock file, when it can be read.
        holder: Option<u32>,
    },
    /// A checkpoint of another run is where this run would save one: it is not overwritten.
    ForeignCheckpoint {
        /// The other run's checkpoint.
        path: PathBuf,
        /// The other run's identity (`None` for a checkpoint written before runs had one).
        run: Option<String>,
    },
    /// A name reserved by the file format (safetensors' `__metadata__`).
    ReservedName {
        /// The name.
        name: String,
    },
    /// A safetensors tensor of an element type that cannot be read as the one asked for.
    UnsupportedDtype {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: String,
        /// The element type asked for.
        expected: &'static str,
    },
    /// A tape's metadata breaks a rule: a key that is empty, too long, not printable ASCII,
    /// repeated or out of order, or more entries or bytes than allowed.
    Metadata {
        /// What is wrong, naming the key.
        reason: String,
    },
    /// A saved op's parameter is one the engine refuses to record (a NaN slope, a
    /// non-positive softplus beta, a NaN clamp bound).
    OpParameter {
        /// The node.
        node: u32,
        /// The engine's reason.
        source: wengert_ops::Error,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::FileTooLarge { size, max } => write!(
                f,
                "the file holds {size} bytes, more than the {max} bytes allowed"
            ),
            Error::TooShort { len, header } => write!(
                f,
                "the file holds {len} bytes, too few for the {header}-byte header: it is truncated"
            ),
            Error::BadMagic { found } => write!(
                f,
                "not a wengert file: it starts with {found:02x?}, not the wengert magic bytes"
            ),
            Error::WrongKind { expected, found } => write!(
                f,
                "expected a {expected} file, but the header says {:?}",
                String::from_utf8_lossy(found)
            ),
            Error::UnsupportedVersion {
                kind,
                version,
                newest,
            } => write!(
                f,
                "{kind} format version {version} is not supported (this build reads versions 1 to {newest})"
            ),
            Error::LengthMismatch { declared, actual } => write!(
                f,
                "the header declares a {declared}-byte payload but {actual} bytes follow it: the file is truncated or corrupt"
            ),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt"
            ),
            Error::Decode { reason } => write!(f, "the payload cannot be decoded: {reason}"),
            Error::LimitExceeded { limit } => write!(
                f,
                "the payload claims more than the {limit} bytes its size allows: the file is corrupt"
            ),
            Error::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes follow the payload's value")
            }
            Error::ElementTypeMismatch { expected, found } => {
                write!(f, "the file holds {found} elements, not {expected}")
            }
            Error::RankTooHigh { what, rank, max } => {
                write!(f, "{what} has {rank} axes, more than the {max} supported")
            }
            Error::ElementCountOverflow { what, dims } => {
                write!(f, "{what}: the element count of shape {dims:?} overflows")
            }
            Error::DataLength {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: its shape needs {expected} elements but {found} are stored"
            ),
            Error::WrongArity {
                node,
                op,
                expected,
                found,
            } => write!(
                f,
                "node {node}: {op} takes {expected} inputs, the file gives {found}"
            ),
            Error::SelfReference { node } => write!(f, "node {node} names itself as an input"),
            Error::ForwardReference { node, input } => write!(
                f,
                "node {node} names node {input}, recorded after it, as an input"
            ),
            Error::NodeOutOfRange { what, id, len } => {
                write!(f, "{what} names node {id}, but the tape holds {len} nodes")
            }
            Error::ShapeInference { node, source } => write!(f, "node {node}: {source}"),
            Error::ShapeMismatch {
                node,
                stored,
                inferred,
            } => write!(
                f,
                "node {node}: the file says shape {stored} but its inputs give {inferred}"
            ),
            Error::WrongRole {
                name,
                node,
                expected,
            } => write!(
                f,
                "\"{name}\" names node {node}, which is not an {expected}"
            ),
            Error::DuplicateName { name } => write!(f, "the name \"{name}\" is used twice"),
            Error::EmptyName => write!(f, "a name is empty"),
            Error::NamesOutOfOrder { name } => {
                write!(f, "\"{name}\" is out of order: names must be sorted")
            }
            Error::Unnamed { node, role } => {
                write!(f, "{role} node {node} does not have exactly one name")
            }
            Error::CustomOp { node, name } => write!(
                f,
                "node {node} is the custom op \"{name}\", which cannot be saved (its code is not data)"
            ),
            Error::UnsupportedOp { node, op } => {
                write!(
                    f,
                    "node {node}: op {op} has no encoding in this format version"
                )
            }
            Error::UnknownName { name } => write!(f, "nothing is named \"{name}\""),
            Error::MissingInput { name } => {
                write!(f, "input \"{name}\" is needed but was not given")
            }
            Error::ParameterShape {
                name,
                expected,
                found,
            } => write!(
                f,
                "parameter \"{name}\" has shape {expected:?}, the replacement has {found:?}"
            ),
            Error::ReplayTooLarge {
                needed,
                budget,
                batch,
            } => {
                match batch {
                    Some(1) => write!(f, "replaying one example")?,
                    Some(n) => write!(f, "replaying a batch of {n}")?,
                    None => write!(f, "replaying the tape")?,
                }
                write!(
                    f,
                    " needs {needed} bytes, more than the budget of {budget} bytes"
                )
            }
            Error::Engine { source } => write!(f, "{source}"),
            Error::Safetensors { reason } => write!(f, "safetensors: {reason}"),
            Error::NotARegularFile { path, kind } => write!(
                f,
                "cannot replace {}: it is {kind}, not a regular file",
                path.display()
            ),
            Error::Locked { dir, holder } => {
                write!(f, "{} is locked by another run", dir.display())?;
                if let Some(pid) = holder {
                    write!(f, " (process {pid})")?;
                }
                Ok(())
            }
            Error::ForeignCheckpoint { path, run } => write!(
                f,
                "{} is a checkpoint of another run ({}); it is left as it is",
                path.display(),
                run.as_deref()
                    .map_or("one without a run identity".to_string(), |r| format!(
                        "run {r}"
                    ))
            ),
            Error::ReservedName { name } => {
                write!(f, "the name \"{name}\" is reserved by the file format")
            }
            Error::Metadata { reason } => write!(f, "metadata: {reason}"),
            Error::UnsupportedDtype {
                name,
                dtype,
                expected,
            } => write!(
                f,
                "safetensors tensor \"{name}\" holds {dtype}, which cannot be read as {expected}"
            ),
            Error::OpParameter { node, source } => write!(f, "node {node}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::ShapeInference { source, .. }
            | Error::OpParameter { source, .. }
            | Error::Engine { source } => Some(source),
            _ => None,
        }
    }
}

impl From<wengert_ops::Error> for Error {
    fn from(source: wengert_ops::Error) -> Self {
        Error::Engine { source }
    }
}

/// The result type of saving and loading.
pub type Result<T, E = Error> = std::result::Result<T, E>;
