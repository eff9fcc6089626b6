//! Reading the log back at start-up: verify every record, cut a torn tail off the last
//! segment, skip the unreadable rest of an older one, and hand back the points.
//!
//! The rules follow from how the writer appends. A crash can only tear the end of what was
//! being written, which is the end of the newest segment: everything after the first bad
//! record there was never acknowledged under policy `batch` (an acknowledgement needs an
//! fsync covering all earlier bytes, which would have made the bad record whole), so the
//! file is truncated at that record and writing resumes cleanly. Damage inside an older,
//! sealed segment is media corruption or a tail the writer abandoned after a write error;
//! past a bad length field the record boundaries are unknown, and hunting for the next
//! plausible frame could replay bytes that were never a record (points never sent), so the
//! rest of that segment is skipped, loudly, and replay goes on with the next segment.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::format::{self, HeaderCheck, HEADER_LEN};
use super::{segment_path, Lsn, Point, WalError};

/// One record read back from the log.
#[derive(Debug, Clone)]
pub struct RecoveredBatch {
    pub lsn: Lsn,
    pub points: Vec<Point>,
}

/// A problem replay found and what it did about it.
#[derive(Debug, Clone)]
pub struct Corruption {
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
    pub action: CorruptionAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptionAction {
    /// The newest segment was truncated to `offset`.
    Truncated,
    /// The rest of an older segment, from `offset`, was not replayed.
    SkippedRest,
    /// A file shorter than a header (a crash during creation) was removed.
    RemovedEmpty,
    /// A file with a segment name but not a segment header was renamed to `*.corrupt`.
    RenamedAside,
}

/// What the start-up replay recovered. The server re-inserts `batches` into its cache
/// tagged with `lsn.segment`, exactly as for freshly appended batches, and reports them
/// persisted the same way; until then their segments stay on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Records in log order (segment, then offset).
    pub batches: Vec<RecoveredBatch>,
    pub segments: usize,
    pub points: u64,
    pub corruptions: Vec<Corruption>,
}

impl Recovered {
    /// All points in log order, for a caller that does not track segments itself.
    pub fn points(&self) -> impl Iterator<Item = (Lsn, &Point)> {
        self.batches
            .iter()
            .flat_map(|b| b.points.iter().map(move |p| (b.lsn, p)))
    }
}

/// A replayed segment for the segment table.
pub(crate) struct ReplayedSegment {
    pub seq: u64,
    pub points: u64,
}

pub(crate) struct Scan {
    pub recovered: Recovered,
    pub segments: Vec<ReplayedSegment>,
    /// Sequence number for the first segment the writer creates.
    pub next_seq: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses `00000000000000000042.wal`; anything else in the directory is not ours.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn scan(dir: &Path) -> Result<Scan, WalError> {
    let mut seqs = Vec::new();
    let mut highest = 0u64;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_segment_name(name) {
            seqs.push(seq);
        } else if let Some(seq) = name.strip_suffix(".corrupt").and_then(parse_segment_name) {
            // Never reuse the number of a file set aside, so that it cannot be mistaken
            // for, or overwrite, a newer segment.
            highest = highest.max(seq);
        }
    }
    seqs.sort_unstable();
    if let Some(&last) = seqs.last() {
        highest = highest.max(last);
    }

    let mut out = Scan {
        recovered: Recovered::default(),
        segments: Vec::new(),
        next_seq: highest + 1,
    };
    for (i, &seq) in seqs.iter().enumerate() {
        let is_last = i + 1 == seqs.len();
        scan_segment(dir, seq, is_last, &mut out)?;
    }
    out.recovered.segments = out.segments.len();
    Ok(out)
}

fn scan_segment(dir: &Path, seq: u64, is_last: bool, out: &mut Scan) -> Result<(), WalError> {
    let path = segment_path(dir, seq);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    match format::check_header(&bytes) {
        HeaderCheck::Ok => {}
        HeaderCheck::Short => {
            // Only the header had been (partly) written: no record can be in it.
            tracing::warn!(file = %path.display(), len = bytes.len(), "wal: removing segment shorter than its header");
            fs::remove_file(&path).map_err(io_err(&path))?;
            out.recovered.corruptions.push(Corruption {
                path,
                offset: 0,
                reason: format!("{} bytes, shorter than the header", bytes.len()),
                action: CorruptionAction::RemovedEmpty,
            });
            return Ok(());
        }
        HeaderCheck::BadMagic => {
            // Kept, not deleted: it is somebody's data, just not a segment.
            let aside = path.with_extension("wal.corrupt");
            tracing::warn!(file = %path.display(), moved_to = %aside.display(), "wal: file is not a segment (bad magic), setting it aside");
            fs::rename(&path, &aside).map_err(io_err(&path))?;
            out.recovered.corruptions.push(Corruption {
                path,
                offset: 0,
                reason: "bad magic".to_string(),
                action: CorruptionAction::RenamedAside,
            });
            return Ok(());
        }
        HeaderCheck::Version(version) => {
            // A newer carbide's log: refusing to start beats dropping what it holds.
            return Err(WalError::UnsupportedVersion { path, version });
        }
    }

    let mut offset = HEADER_LEN as usize;
    let mut points_in_segment = 0u64;
    while offset < bytes.len() {
        match format::decode_record(&bytes[offset..]) {
            Ok((points, len)) => {
                points_in_segment += points.len() as u64;
                out.recovered.points += points.len() as u64;
                out.recovered.batches.push(RecoveredBatch {
                    lsn: Lsn {
                        segment: seq,
                        offset: offset as u64,
                    },
                    points,
                });
                offset += len;
            }
            Err(e) => {
                let dropped = bytes.len() - offset;
                let action = if is_last {
                    tracing::warn!(file = %path.display(), offset, dropped_bytes = dropped, error = %e,
                        "wal: torn or corrupt tail in the newest segment, truncating");
                    truncate(&path, offset as u64)?;
                    CorruptionAction::Truncated
                } else {
                    tracing::warn!(file = %path.display(), offset, skipped_bytes = dropped, error = %e,
                        "wal: corrupt record in an older segment, skipping the rest of it");
                    CorruptionAction::SkippedRest
                };
                out.recovered.corruptions.push(Corruption {
                    path: path.clone(),
                    offset: offset as u64,
                    reason: e.to_string(),
                    action,
                });
                break;
            }
        }
    }
    out.segments.push(ReplayedSegment {
        seq,
        points: points_in_segment,
    });
    Ok(())
}

fn truncate(path: &Path, len: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    file.set_len(len).map_err(io_err(path))?;
    // Durable before new segments follow it, or a power loss could bring the bad tail back
    // behind records written later.
    file.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(parse_segment_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_segment_name("0000000000000000042.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.wal.corrupt"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name("LOCK"), None);
    }
}
