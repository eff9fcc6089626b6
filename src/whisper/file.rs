//! Opening, creating, updating and fetching whisper files.

use std::path::Path;

use super::{AggregationMethod, Header, Result};

/// Switches that carbon sets for every write (WHISPER_LOCK_WRITES, WHISPER_AUTOFLUSH).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Take a blocking exclusive flock for the duration of the write.
    pub lock: bool,
    /// fsync after the write.
    pub autoflush: bool,
}

/// What `create` needs besides the archive list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CreateOptions {
    pub x_files_factor: f64,
    pub aggregation_method: AggregationMethod,
    /// Seek to the end and write one byte instead of writing zeros.
    pub sparse: bool,
    /// posix_fallocate the data area.
    pub fallocate: bool,
    pub write: WriteOptions,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            x_files_factor: 0.5,
            aggregation_method: AggregationMethod::Average,
            sparse: false,
            fallocate: false,
            write: WriteOptions::default(),
        }
    }
}

/// A fetch result: the time span `(start, end]` stepped by `step`, one value per slot.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchResult {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
}

/// An open whisper file with its header decoded.
pub struct WhisperFile {
    _private: (),
}

impl WhisperFile {
    /// Opens a file for reading (`write` false) or reading and writing.
    pub fn open(_path: &Path, _write: bool) -> Result<WhisperFile> {
        todo!()
    }

    pub fn header(&self) -> &Header {
        todo!()
    }
}

/// whisper.py's `validateArchiveList`: sorts by precision and checks the rules, in its order.
pub fn validate_archive_list(_archives: &mut [(u32, u32)]) -> Result<()> {
    todo!()
}

/// whisper.py's `create`.
pub fn create(_path: &Path, _archives: &[(u32, u32)], _opts: &CreateOptions) -> Result<()> {
    todo!()
}

/// whisper.py's `info` (without fileSize).
pub fn info(_path: &Path) -> Result<Header> {
    todo!()
}

/// whisper.py's `update`: one point. `timestamp` and `now` default to the current time.
pub fn update(
    _path: &Path,
    _value: f64,
    _timestamp: Option<i64>,
    _now: Option<i64>,
    _opts: WriteOptions,
) -> Result<()> {
    todo!()
}

/// whisper.py's `update_many`: `(timestamp, value)` points in any order.
pub fn update_many(
    _path: &Path,
    _points: &[(i64, f64)],
    _now: Option<i64>,
    _opts: WriteOptions,
) -> Result<()> {
    todo!()
}

/// whisper.py's `fetch`. `archive_to_select` is a precision in seconds. `Ok(None)` when the
/// interval lies wholly outside the retention.
pub fn fetch(
    _path: &Path,
    _from: i64,
    _until: Option<i64>,
    _now: Option<i64>,
    _archive_to_select: Option<i64>,
) -> Result<Option<FetchResult>> {
    todo!()
}

/// whisper.py's `setAggregationMethod`; returns the old method.
pub fn set_aggregation_method(
    _path: &Path,
    _method: AggregationMethod,
    _x_files_factor: Option<f64>,
    _opts: WriteOptions,
) -> Result<AggregationMethod> {
    todo!()
}

/// whisper.py's `setXFilesFactor`; returns the old value.
pub fn set_x_files_factor(_path: &Path, _x_files_factor: f64, _opts: WriteOptions) -> Result<f32> {
    todo!()
}
