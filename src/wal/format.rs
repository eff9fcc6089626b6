//! Byte layout of segment files: the header, the record frame and the point encoding.
//!
//! Kept apart from the writer and the replay so that both sides of the format sit next to
//! each other and are tested together; nothing here touches a file. Every decoder checks
//! every bound, because its input comes from disk and may be torn, flipped or not ours.

use super::{Point, PointRef};

/// First bytes of every segment file. The trailing newline catches text-mode mangling.
pub const MAGIC: [u8; 8] = *b"CARBWAL\n";
/// Format version written into new segments; replay refuses any other.
pub const VERSION: u32 = 1;
/// magic (8) + version (u32 LE) + flags (u32 LE, zero for now).
pub const HEADER_LEN: u64 = 16;
/// length (u32 LE) + crc32 of the payload (u32 LE).
pub const FRAME_LEN: usize = 8;
/// Largest payload accepted on write and believed on replay. A length field above it is
/// garbage, and refusing it keeps replay from allocating gigabytes for a flipped bit.
pub const MAX_PAYLOAD_LEN: usize = 256 << 20;
/// Smallest encoding of one point: a one-byte name tag and two f64.
const MIN_POINT_LEN: usize = 1 + 16;

pub fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// What the first bytes of a file say about it.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    Ok,
    /// Shorter than a header: a crash while the segment was being created.
    Short,
    /// Not a segment file at all.
    BadMagic,
    /// A segment written by another version of the format.
    Version(u32),
}

pub fn check_header(bytes: &[u8]) -> HeaderCheck {
    if bytes.len() < HEADER_LEN as usize {
        return HeaderCheck::Short;
    }
    if bytes[..8] != MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return HeaderCheck::Version(version);
    }
    HeaderCheck::Ok
}

/// Frames `points` as one record (length, crc, payload). Done by the submitting task, not
/// the writer thread, so that encoding and checksumming spread over all cores and the
/// writer only copies bytes.
pub fn encode_record<P: PointRef>(points: &[P]) -> Result<Vec<u8>, usize> {
    let estimate = FRAME_LEN
        + 4
        + points
            .iter()
            .map(|p| p.name().len() + 2 + 16)
            .sum::<usize>();
    let mut out = Vec::with_capacity(estimate);
    out.extend_from_slice(&[0u8; FRAME_LEN]);
    // A count that does not fit u32 would be refused by the payload limit anyway.
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    let mut previous: Option<&str> = None;
    for p in points {
        let name = p.name();
        if previous == Some(name) {
            // Tag 0 repeats the previous name: carbon batches often carry many points of
            // one metric, and this keeps them at 17 bytes each without a dictionary.
            out.push(0);
        } else {
            put_varint(&mut out, name.len() as u64 + 1);
            out.extend_from_slice(name.as_bytes());
            previous = Some(name);
        }
        out.extend_from_slice(&p.timestamp().to_le_bytes());
        out.extend_from_slice(&p.value().to_le_bytes());
    }
    let payload_len = out.len() - FRAME_LEN;
    if payload_len > MAX_PAYLOAD_LEN || points.len() > u32::MAX as usize {
        return Err(payload_len);
    }
    let crc = crc32fast::hash(&out[FRAME_LEN..]);
    out[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Why the bytes at some offset are not a good record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The file ends inside the frame or the payload: a write cut short.
    Torn {
        needed: u64,
        available: u64,
    },
    /// A zero or absurd length field.
    BadLength(u32),
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// The checksum matched but the payload does not decode. Only a writer bug or a
    /// crc collision gets here.
    Payload(&'static str),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Torn { needed, available } => write!(
                f,
                "torn record: needs {needed} bytes, {available} left in the file"
            ),
            RecordError::BadLength(n) => write!(f, "implausible record length {n}"),
            RecordError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            RecordError::Payload(why) => write!(f, "undecodable payload: {why}"),
        }
    }
}

/// Decodes the record starting at `bytes[0]`. Returns the points and the record's total
/// length (frame included). `bytes` must not be empty (the caller's end-of-file test).
pub fn decode_record(bytes: &[u8]) -> Result<(Vec<Point>, usize), RecordError> {
    let available = bytes.len() as u64;
    if bytes.len() < FRAME_LEN {
        return Err(RecordError::Torn {
            needed: FRAME_LEN as u64,
            available,
        });
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    // Zero is what a preallocated or hole-punched tail reads as, and no real record has
    // fewer than the four count bytes.
    if len < 4 || len as usize > MAX_PAYLOAD_LEN {
        return Err(RecordError::BadLength(len));
    }
    let total = FRAME_LEN + len as usize;
    if bytes.len() < total {
        return Err(RecordError::Torn {
            needed: total as u64,
            available,
        });
    }
    let payload = &bytes[FRAME_LEN..total];
    let computed = crc32fast::hash(payload);
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    let points = decode_payload(payload).map_err(RecordError::Payload)?;
    Ok((points, total))
}

fn decode_payload(payload: &[u8]) -> Result<Vec<Point>, &'static str> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let count = r.u32()? as usize;
    if count > (payload.len() - 4) / MIN_POINT_LEN {
        return Err("point count larger than the payload can hold");
    }
    let mut points: Vec<Point> = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = r.varint()?;
        let name = if tag == 0 {
            match points.last() {
                Some(p) => p.name.clone(),
                None => return Err("first point repeats a previous name"),
            }
        } else {
            let len = usize::try_from(tag - 1).map_err(|_| "name length overflow")?;
            let bytes = r.take(len)?;
            String::from_utf8(bytes.to_vec()).map_err(|_| "metric name is not UTF-8")?
        };
        let timestamp = r.f64()?;
        let value = r.f64()?;
        points.push(Point {
            name,
            timestamp,
            value,
        });
    }
    if r.pos != payload.len() {
        return Err("trailing bytes after the last point");
    }
    Ok(points)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("payload ends early")?;
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, &'static str> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 64 bits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, t: f64, v: f64) -> Point {
        Point {
            name: name.to_string(),
            timestamp: t,
            value: v,
        }
    }

    #[test]
    fn round_trip_with_repeated_and_long_names() {
        let long = "x".repeat(300);
        let points = vec![
            p("a.b", 1.0, 2.5),
            p("a.b", 2.0, f64::NAN),
            p(&long, 3.0, -1.0),
            p("a.b", 4.0, 1e300),
            p("", 5.0, 0.0),
        ];
        let rec = encode_record(&points).unwrap();
        let (back, len) = decode_record(&rec).unwrap();
        assert_eq!(len, rec.len());
        assert_eq!(back.len(), points.len());
        for (a, b) in back.iter().zip(&points) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.timestamp.to_bits(), b.timestamp.to_bits());
            assert_eq!(a.value.to_bits(), b.value.to_bits());
        }
        // The repeated name costs one byte, not its length.
        let single = encode_record(&points[..1]).unwrap().len();
        let double = encode_record(&points[..2]).unwrap().len();
        assert_eq!(double - single, 17);
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_rejected() {
        let rec = encode_record(&[p("m.one", 1.0, 1.0), p("m.two", 2.0, 2.0)]).unwrap();
        for cut in 1..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "cut at {cut}");
        }
        for bit in 0..rec.len() * 8 {
            let mut bad = rec.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match decode_record(&bad) {
                Err(_) => {}
                // A flip in the length that still leaves the record inside the buffer
                // cannot pass the checksum of a different slice, so any Ok is a bug.
                Ok(_) => panic!("flip of bit {bit} accepted"),
            }
        }
    }

    #[test]
    fn header_checks() {
        assert_eq!(check_header(&header()), HeaderCheck::Ok);
        assert_eq!(check_header(&header()[..10]), HeaderCheck::Short);
        assert_eq!(check_header(&[0u8; 16]), HeaderCheck::BadMagic);
        let mut h = header();
        h[8] = 9;
        assert_eq!(check_header(&h), HeaderCheck::Version(9));
    }
}
