//! Encoding and decoding of the header, exactly as whisper.py packs it (`!2LfL`, `!3L`, `!Ld`).

use serde::Serialize;

use super::AggregationMethod;

/// Bytes of the metadata block: aggregation type, max retention, xFilesFactor, archive count.
pub const METADATA_SIZE: usize = 16;
/// Bytes of one archive record: offset, seconds per point, points.
pub const ARCHIVE_INFO_SIZE: usize = 12;
/// Bytes of one point: u32 interval + f64 value.
pub const POINT_SIZE: usize = 12;

/// One archive as the header describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveInfo {
    pub offset: u32,
    pub seconds_per_point: u32,
    pub points: u32,
    pub retention: u64,
    pub size: u64,
}

impl ArchiveInfo {
    pub fn new(offset: u32, seconds_per_point: u32, points: u32) -> Self {
        ArchiveInfo {
            offset,
            seconds_per_point,
            points,
            retention: u64::from(seconds_per_point) * u64::from(points),
            size: u64::from(points) * POINT_SIZE as u64,
        }
    }

    /// Byte offset just past this archive's data.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.size
    }
}

/// A whisper file's header, in whisper.py's `info()` shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub aggregation_method: AggregationMethod,
    pub max_retention: u32,
    /// Stored as f32 in the file; kept as f32 so that printing it widened gives whisper.py's
    /// `0.10000000149011612`.
    pub x_files_factor: f32,
    pub archives: Vec<ArchiveInfo>,
}

impl serde::Serialize for AggregationMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Why a header could not be decoded; the caller adds the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The metadata block is short or its values are out of range.
    Metadata,
    /// Archive record `i` is short.
    Archive(usize),
}

impl HeaderError {
    /// whisper.py's message for this failure.
    pub fn message(&self) -> String {
        match self {
            HeaderError::Metadata => "Unable to read header".to_string(),
            HeaderError::Archive(i) => format!("Unable to read archive{i} metadata"),
        }
    }
}

impl Header {
    /// Size of the header of a file with `archives` archives.
    pub fn size_for(archives: usize) -> usize {
        METADATA_SIZE + ARCHIVE_INFO_SIZE * archives
    }

    /// Size of this header in bytes.
    pub fn size(&self) -> usize {
        Self::size_for(self.archives.len())
    }

    /// Decodes a header from the start of a file. Checks what whisper.py checks (the metadata
    /// is present, the method is known, xFilesFactor is in [0, 1], each archive record is
    /// present) and nothing else: archive bounds are checked where data is read.
    pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
        let meta = bytes.get(..METADATA_SIZE).ok_or(HeaderError::Metadata)?;
        let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let aggregation_method =
            AggregationMethod::from_code(word(meta, 0)).ok_or(HeaderError::Metadata)?;
        let max_retention = word(meta, 4);
        let x_files_factor = f32::from_bits(word(meta, 8));
        if !(0.0..=1.0).contains(&x_files_factor) {
            return Err(HeaderError::Metadata);
        }
        let count = word(meta, 12) as usize;
        let mut archives = Vec::with_capacity(count.min(1024));
        for i in 0..count {
            let start = METADATA_SIZE + i * ARCHIVE_INFO_SIZE;
            let rec = bytes
                .get(start..start + ARCHIVE_INFO_SIZE)
                .ok_or(HeaderError::Archive(i))?;
            archives.push(ArchiveInfo::new(word(rec, 0), word(rec, 4), word(rec, 8)));
        }
        Ok(Header {
            aggregation_method,
            max_retention,
            x_files_factor,
            archives,
        })
    }

    /// Encodes the metadata block.
    pub fn encode_metadata(&self) -> [u8; METADATA_SIZE] {
        let mut out = [0u8; METADATA_SIZE];
        out[0..4].copy_from_slice(&self.aggregation_method.code().to_be_bytes());
        out[4..8].copy_from_slice(&self.max_retention.to_be_bytes());
        out[8..12].copy_from_slice(&self.x_files_factor.to_bits().to_be_bytes());
        out[12..16].copy_from_slice(&(self.archives.len() as u32).to_be_bytes());
        out
    }

    /// Encodes the whole header: metadata then the archive records.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&self.encode_metadata());
        for a in &self.archives {
            out.extend_from_slice(&a.offset.to_be_bytes());
            out.extend_from_slice(&a.seconds_per_point.to_be_bytes());
            out.extend_from_slice(&a.points.to_be_bytes());
        }
        out
    }
}

/// Decodes one 12-byte point.
pub fn decode_point(b: &[u8]) -> (u32, f64) {
    let ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let v = f64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
    (ts, v)
}

/// Encodes one point into `out` (12 bytes).
pub fn encode_point(out: &mut Vec<u8>, ts: u32, value: f64) {
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}
