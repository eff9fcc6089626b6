//! The render engine: what graphite-web's `render/` does. A target string is parsed (`parser`)
//! into an expression (`ast`), evaluated (`eval`) against a source of series (the index, the
//! cache and whisper files, behind `eval::SeriesSource`), and the functions (`functions`) work on
//! `series::Series` the way graphite-web 1.1.10's do, nulls, names and steps included. Times in
//! requests are parsed by `time`.

pub mod ast;
pub mod consolidate;
pub mod error;
pub mod eval;
pub mod functions;
pub mod parser;
pub mod series;
pub mod sort;
pub mod store;
pub mod time;
pub mod value;

pub use error::QueryError;
pub use series::Series;
pub use value::Value;
