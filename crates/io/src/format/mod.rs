//! The on-disk types, one module per format version, kept apart from the engine's in-memory
//! types so that the engine can change without breaking files. Loading converts a version's
//! types into the in-memory ones, checking everything; saving converts the other way.
//!
//! They are public so that tools (and tests, and fuzzers) can build files by hand, including
//! invalid ones.

pub mod v1;
