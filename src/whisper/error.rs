use std::io;
use std::path::PathBuf;

/// Every way a whisper operation can fail. The messages are whisper.py's own texts, so that the
/// `carbide whisper` tools print what operators' scripts already expect.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// whisper.py's `InvalidConfiguration`: a bad archive list, or a file that already exists.
    #[error("{0}")]
    InvalidConfiguration(String),
    /// whisper.py's `InvalidAggregationMethod`.
    #[error("Unrecognized aggregation method: {0}")]
    InvalidAggregationMethod(String),
    /// whisper.py's `InvalidXFilesFactor`; the text says why.
    #[error("{0}")]
    InvalidXFilesFactor(String),
    /// whisper.py's `CorruptWhisperFile`: the header or the data cannot be read.
    #[error("{message} ({path})")]
    Corrupt { path: PathBuf, message: String },
    /// whisper.py's `TimestampNotCovered`.
    #[error("Timestamp not covered by any archives in this database.")]
    TimestampNotCovered,
    /// whisper.py's `InvalidTimeInterval`.
    #[error("Invalid time interval: from time '{from}' is after until time '{until}'")]
    InvalidTimeInterval { from: i64, until: i64 },
    /// `archiveToSelect` names a precision the file does not have.
    #[error("Invalid granularity: {0}")]
    InvalidGranularity(i64),
    /// A timestamp or interval that does not fit the file's 32-bit fields.
    #[error("timestamp {0} does not fit in a whisper point (0..=4294967295)")]
    TimestampOutOfRange(i64),
    /// merge/diff of two files whose archive lists differ.
    #[error("{0}")]
    Unalike(String),
    /// merge with time_to before time_from.
    #[error("{0}")]
    InvalidArgument(String),
    /// An operating-system error, with the file it happened on.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl WhisperError {
    pub(crate) fn io(path: &std::path::Path, source: io::Error) -> Self {
        WhisperError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &std::path::Path, message: impl Into<String>) -> Self {
        WhisperError::Corrupt {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
