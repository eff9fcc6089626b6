//! The whisper file format, byte for byte as whisper.py 1.1.10 reads and writes it.
//!
//! Everything Carbide stores lands here, and an operator's existing Graphite tree must keep
//! working in both directions, so this module reproduces whisper.py's behaviour including its
//! quirks (documented where they are reproduced). Files are big-endian: a 16-byte metadata
//! block, one 12-byte record per archive, then each archive's 12-byte points.

mod aggregation;
mod error;
mod file;
mod fill;
mod format;
mod merge;
mod pages;
mod resize;
pub mod retention;

pub use aggregation::AggregationMethod;
pub use error::WhisperError;
pub use file::{
    create, fetch, info, now_epoch, set_aggregation_method, set_x_files_factor, update,
    update_many, validate_archive_list, CreateOptions, FetchResult, WhisperFile, WriteOptions,
};
pub use fill::{fill, fill_range};
pub use format::{ArchiveInfo, Header, ARCHIVE_INFO_SIZE, METADATA_SIZE, POINT_SIZE};
pub use merge::{diff, merge, ArchiveDiff};
pub use resize::{create_with_method_name, resize, with_suffix, ResizeEvent, ResizeOptions};

/// Result alias for whisper operations.
pub type Result<T> = std::result::Result<T, WhisperError>;
