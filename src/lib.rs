//! Carbide: a Graphite-compatible time-series store.
//!
//! The crate is split by pipeline stage so that a module name says where a thing lives:
//! `ingest` parses what clients send, `wal` makes accepted points durable, `whisper` is the
//! on-disk file format, `schema` decides which retention and aggregation a new
//! metric gets, and `cli` holds the command-line front ends that sit on top of both.

pub mod cache;
pub mod carbonlink;
pub mod cli;
pub mod config;
pub mod http;
pub mod index;
pub mod ingest;
pub mod persist;
pub mod python;
pub mod query;
pub mod schema;
pub mod serve;
pub mod wal;
pub mod whisper;
