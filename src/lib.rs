//! Carbide: a Graphite-compatible time-series store.
//!
//! The crate is split by pipeline stage so that a module name says where a thing lives:
//! `whisper` is the on-disk file format, `schema` decides which retention and aggregation a new
//! metric gets, and `cli` holds the command-line front ends that sit on top of both.

pub mod cli;
pub mod config;
pub mod ingest;
pub mod pyfmt;
pub mod schema;
pub mod wal;
pub mod whisper;
