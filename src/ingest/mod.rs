//! Receiving carbon's protocols: parsing plaintext lines and pickled batches, and cleaning
//! metric names, before points reach the cache.

pub mod line;
pub mod name;
pub mod pickle;
pub mod receiver;
/// Transitional alias for `src/ingest/pickle.rs`, which still calls `pyfloat::parse`; delete
/// once it calls [`crate::python::number::parse_float`].
pub(crate) mod pyfloat {
    pub(crate) use crate::python::number::parse_float as parse;
}
