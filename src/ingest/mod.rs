//! Receiving carbon's protocols: parsing plaintext lines and pickled batches, and cleaning
//! metric names, before points reach the cache.

pub mod filter;
pub mod line;
pub mod name;
pub mod pickle;
pub mod receiver;
