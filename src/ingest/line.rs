//! Carbon's plaintext protocol, without the sockets: framing a TCP byte stream into lines,
//! splitting UDP datagrams, parsing `metric value timestamp`, and the log text for a refused
//! line.
//!
//! What counts as a valid line is whatever carbon 1.1.10 on CPython 3.11 accepts
//! (`protocols.py`, spec §2.4): strict UTF-8, `line.strip().split()` on Python's Unicode
//! whitespace, exactly three fields, both numbers through Python's `float()` (see
//! [`crate::python::number`]). A NaN value is dropped silently; a timestamp whose `int()` is −1 means
//! "now"; timestamps stay `f64` as carbon keeps them.
//!
//! # Fatal and invalid lines
//! carbon does two different things with a bad line. A [`LineError::Invalid`] line (wrong
//! field count, a number `float()` refuses) is logged and skipped. A [`LineError::Fatal`] line
//! is one where carbon lets an exception escape: on TCP that closes the connection and loses
//! the rest of the read (invalid UTF-8, a NaN or ±inf timestamp with a non-NaN value); on UDP
//! it loses the rest of the datagram (a ±inf timestamp) or the whole datagram (invalid UTF-8).
//!
//! **Carbide's rule, a deliberate difference:** the receiver does not close a plaintext
//! connection for a fatal line; it refuses that line only and goes on with the next one,
//! because a plaintext connection must stay open after a bad line (a client's one stray byte
//! should not cost every point it sends after it). Likewise [`parse_datagram`] keeps the other
//! lines of a datagram. The types keep carbon's distinction so that the caller decides, and a
//! strict mode stays possible: stop at the first `Fatal`. Lines longer than 16384 bytes are
//! different: those still end the connection ([`FrameError`]), since there is no line to
//! resynchronise on without buffering without bound.
//!
//! The framer is built for the receive loop: it hands out slices of the caller's read buffer
//! and copies only the piece of a line that straddles two reads.

use std::borrow::Cow;
use std::ops::ControlFlow;

use crate::python;

/// Twisted's `LineOnlyReceiver.MAX_LENGTH`, which carbon does not change: the longest line,
/// in bytes, without its `\n`.
pub const MAX_LINE_LENGTH: usize = 16384;

/// carbon cuts a logged line to this many characters and appends `...`.
const LOG_LINE_CHARS: usize = 400;

/// One accepted point, owning its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// The metric name exactly as received (not yet cleaned, see [`super::name`]).
    pub name: String,
    /// Seconds since the epoch, as a float: `1700000000.5` stays fractional, as in carbon.
    pub timestamp: f64,
    /// Never NaN (NaN values are dropped); may be ±inf, which carbon also accepts.
    pub value: f64,
}

/// One accepted point, borrowing its name from the line, so that a hot loop can decide how to
/// store the name (intern it, look it up) before allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point<'a> {
    /// The metric name exactly as received.
    pub name: &'a str,
    /// See [`Datapoint::timestamp`].
    pub timestamp: f64,
    /// See [`Datapoint::value`].
    pub value: f64,
}

impl Point<'_> {
    /// The owned form.
    pub fn to_datapoint(&self) -> Datapoint {
        Datapoint {
            name: self.name.to_owned(),
            timestamp: self.timestamp,
            value: self.value,
        }
    }
}

/// Why a line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The bytes are not UTF-8 (Python's strict decoder; Rust's is the same).
    #[error("line is not valid UTF-8 (error after byte {valid_up_to})")]
    NotUtf8 {
        /// Bytes of the line (or datagram) that decoded before the error.
        valid_up_to: usize,
    },
    /// Not exactly three whitespace-separated fields (an empty line has zero).
    #[error("expected 3 fields (metric value timestamp), got {0}")]
    FieldCount(usize),
    /// The value is not a Python float literal.
    #[error("value is not a number")]
    BadValue,
    /// The timestamp is not a Python float literal.
    #[error("timestamp is not a number")]
    BadTimestamp,
    /// The timestamp is NaN (`int(nan)` raises `ValueError` in carbon).
    #[error("timestamp is NaN")]
    NanTimestamp,
    /// The timestamp is ±inf (`int(inf)` raises `OverflowError` in carbon).
    #[error("timestamp is infinite")]
    InfiniteTimestamp,
}

/// A refused line, classified by what carbon would have done next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// carbon logs `invalid line received from …` and goes on.
    #[error("invalid line: {0}")]
    Invalid(Reason),
    /// carbon lets an exception escape: the TCP connection is closed (rest of the read lost),
    /// or the rest of the UDP datagram is lost. Carbide refuses only this line (module doc).
    #[error("line carbon would fail on: {0}")]
    Fatal(Reason),
}

impl LineError {
    /// Would carbon have closed the connection (TCP) or given up the datagram (UDP)?
    pub fn is_fatal(&self) -> bool {
        matches!(self, LineError::Fatal(_))
    }

    /// The reason, whichever the class.
    pub fn reason(&self) -> Reason {
        match *self {
            LineError::Invalid(r) | LineError::Fatal(r) => r,
        }
    }
}

/// Which receiver's rules apply: they differ in how a NaN timestamp is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// Parses one TCP line (without its `\n`; a trailing `\r` is whitespace and stripped).
///
/// `Ok(None)` is a line carbon drops silently: a NaN value. `now` replaces a timestamp whose
/// `int()` is −1 (carbon uses `time.time()`).
pub fn parse_line(line: &[u8], now: f64) -> Result<Option<Datapoint>, LineError> {
    parse_line_ref(line, now).map(|p| p.map(|p| p.to_datapoint()))
}

/// [`parse_line`] without allocating: the name borrows from `line`.
#[inline]
pub fn parse_line_ref(line: &[u8], now: f64) -> Result<Option<Point<'_>>, LineError> {
    // carbon decodes before its try block, so bad UTF-8 is an escaping exception.
    let text = std::str::from_utf8(line).map_err(|e| {
        LineError::Fatal(Reason::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })
    })?;
    parse_text(text, now, Transport::Tcp)
}

/// Parses one line of a UDP datagram (already decoded and split by [`datagram_lines`]).
///
/// UDP differs from TCP in one place: carbon delivers the point inside its `try`, so a NaN
/// timestamp's `ValueError` is an [`Invalid`](LineError::Invalid) line there, while ±inf
/// (`OverflowError`) still escapes and is [`Fatal`](LineError::Fatal).
pub fn parse_datagram_line(line: &str, now: f64) -> Result<Option<Point<'_>>, LineError> {
    parse_text(line, now, Transport::Udp)
}

/// Parses one line of a TCP stream that is already known to be UTF-8 (the receiver checks a
/// whole read at once rather than line by line); otherwise the same as [`parse_line_ref`].
#[inline]
pub fn parse_line_str(text: &str, now: f64) -> Result<Option<Point<'_>>, LineError> {
    parse_text(text, now, Transport::Tcp)
}

/// The three fields of the usual line, `name SP value SP timestamp` with an optional final
/// `\r`, found in one pass; `None` for anything else (other whitespace, runs of spaces,
/// non-ASCII bytes, control characters), which the general Unicode split then handles. On
/// lines it accepts it gives exactly what `str.split()` gives.
#[inline]
fn split_simple(text: &str) -> Option<(&str, &str, &str)> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let b = text.as_bytes();
    let end = match b.last() {
        Some(b'\r') => b.len() - 1,
        _ => b.len(),
    };
    let body = b.get(..end)?;
    let mut spaces = [0usize; 2];
    let mut n = 0usize;
    let mut note = |i: usize, c: u8| -> Option<()> {
        if c != b' ' {
            return None;
        }
        *spaces.get_mut(n)? = i;
        n += 1;
        Some(())
    };
    // Eight bytes at a time: flag every byte that is not 0x21..=0x7f (its low seven bits
    // below 0x21, or its high bit set). `(x | HI) - 0x21…` cannot borrow across bytes, so
    // the flags are exact; only the few flagged bytes (the two spaces) are looked at.
    let mut words = body.chunks_exact(8);
    let mut base = 0usize;
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let x = u64::from_le_bytes(a);
        let mut flags = (!((x | HI).wrapping_sub(LO * 0x21)) | x) & HI;
        while flags != 0 {
            let k = (flags.trailing_zeros() / 8) as usize;
            note(base + k, *a.get(k)?)?;
            flags &= flags - 1;
        }
        base += 8;
    }
    for (k, &c) in words.remainder().iter().enumerate() {
        if !(0x21..=0x7f).contains(&c) {
            note(base + k, c)?;
        }
    }
    let [a, z] = spaces;
    // Exactly two single spaces with something on each side.
    if n != 2 || a == 0 || z == a + 1 || z + 1 == end {
        return None;
    }
    Some((text.get(..a)?, text.get(a + 1..z)?, text.get(z + 1..end)?))
}

#[inline]
fn parse_text(text: &str, now: f64, transport: Transport) -> Result<Option<Point<'_>>, LineError> {
    let (name, value, timestamp) = match split_simple(text) {
        Some(fields) => fields,
        None => {
            let mut fields = python::text::split(text);
            let (Some(name), Some(value), Some(timestamp), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                let n = python::text::split(text).count();
                return Err(LineError::Invalid(Reason::FieldCount(n)));
            };
            (name, value, timestamp)
        }
    };
    // carbon converts the timestamp first; both failures are the same ValueError to it.
    let timestamp =
        python::number::parse_float(timestamp).ok_or(LineError::Invalid(Reason::BadTimestamp))?;
    let value = python::number::parse_float(value).ok_or(LineError::Invalid(Reason::BadValue))?;
    // metricReceived: the NaN-value filter comes before int(timestamp).
    if value.is_nan() {
        return Ok(None);
    }
    let timestamp = if timestamp.is_nan() {
        return Err(match transport {
            Transport::Tcp => LineError::Fatal(Reason::NanTimestamp),
            Transport::Udp => LineError::Invalid(Reason::NanTimestamp),
        });
    } else if timestamp.is_infinite() {
        return Err(LineError::Fatal(Reason::InfiniteTimestamp));
    } else if python::number::int_is_minus_one(timestamp) {
        now
    } else {
        timestamp
    };
    Ok(Some(Point {
        name,
        timestamp,
        value,
    }))
}

/// carbon's `MIN_TIMESTAMP_RESOLUTION` step of the common filter: `int(ts) // r * r`
/// (truncate toward zero, then floor-divide); `r == 0` leaves `ts` alone. For |ts| ≥ 2^127,
/// far beyond any timestamp whisper can store, the value is only truncated.
pub fn apply_min_resolution(timestamp: f64, resolution: u64) -> f64 {
    if resolution == 0 || !timestamp.is_finite() {
        return timestamp;
    }
    let t = timestamp.trunc();
    if t.abs() >= 1.7e38 {
        return t;
    }
    let r = i128::from(resolution);
    let i = t as i128;
    (i.div_euclid(r) * r) as f64
}

/// The lines of a UDP datagram's text: Python's `str.splitlines()`.
pub fn datagram_lines(text: &str) -> python::text::SplitLines<'_> {
    python::text::splitlines(text)
}

/// A line [`parse_datagram`] refused, with its text for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// What is wrong and what carbon would have done.
    pub error: LineError,
    /// The line as received (the whole datagram, lossily decoded, for invalid UTF-8).
    pub line: String,
}

/// Parses a whole UDP datagram.
///
/// Invalid UTF-8 refuses the whole datagram (carbon decodes it in one go, and there is no
/// well-defined way to split undecodable bytes on Unicode line boundaries). Every other
/// refused line is refused alone, also a fatal one (module doc); a caller that wants carbon's
/// exact behaviour walks [`datagram_lines`] with [`parse_datagram_line`] and stops at a fatal
/// error instead.
pub fn parse_datagram(bytes: &[u8], now: f64) -> (Vec<Datapoint>, Vec<RejectedLine>) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let rejected = RejectedLine {
                error: LineError::Fatal(Reason::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                }),
                line: String::from_utf8_lossy(bytes).into_owned(),
            };
            return (Vec::new(), vec![rejected]);
        }
    };
    let mut points = Vec::new();
    let mut rejected = Vec::new();
    for line in datagram_lines(text) {
        match parse_datagram_line(line, now) {
            Ok(Some(p)) => points.push(p.to_datapoint()),
            Ok(None) => {}
            Err(error) => rejected.push(RejectedLine {
                error,
                line: line.to_owned(),
            }),
        }
    }
    (points, rejected)
}

/// carbon's log text for an invalid TCP line: `invalid line received from client <peer>,
/// ignoring [<line>]`. `peer` is carbon's `host:port` (`"%s:%d" % (host, port)`, no IPv6
/// brackets). carbon has no such message for a line that is not UTF-8 (it closes the
/// connection); Carbide logs those too, decoded lossily (U+FFFD for bad bytes).
pub fn invalid_line_message(peer: &str, line: &[u8]) -> String {
    format!(
        "invalid line received from client {peer}, ignoring [{}]",
        quote_line(&String::from_utf8_lossy(line))
    )
}

/// carbon's log text for an invalid UDP line: `invalid line received from <host>, ignoring
/// [<line>]` (host only, no `client`).
pub fn invalid_datagram_line_message(host: &str, line: &str) -> String {
    format!(
        "invalid line received from {host}, ignoring [{}]",
        quote_line(line)
    )
}

/// The bracketed part of carbon's message: over 400 characters (code points) cut to 400 plus
/// `...`, then stripped, then `repr()` without its quotes. The cut comes before the strip,
/// so a long line's leading whitespace is stripped but its cut end is not.
pub fn quote_line(line: &str) -> String {
    let cut: Cow<'_, str> = match line.char_indices().nth(LOG_LINE_CHARS) {
        Some((at, _)) => Cow::Owned(format!("{}...", line.get(..at).unwrap_or(line))),
        None => Cow::Borrowed(line),
    };
    python::text::repr_unquoted(python::text::strip(&cut))
}

/// Why a TCP stream can no longer be framed; the connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A complete line longer than the limit.
    #[error("line of {len} bytes exceeds the {max}-byte limit")]
    LineTooLong {
        /// Its length without the `\n`.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More than the limit buffered without a `\n`.
    #[error("{len} bytes without a newline exceed the {max}-byte line limit")]
    Unterminated {
        /// Bytes buffered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The framer already failed or was stopped; it delivers nothing more.
    #[error("the line stream was already closed")]
    Closed,
}

/// Splits a TCP byte stream into lines on `\n` only, the way Twisted's `LineOnlyReceiver`
/// does for carbon.
///
/// Lines that lie whole inside a chunk are passed as slices of it; only a line that
/// straddles chunks is copied into an internal buffer, whose capacity is kept. Chunking
/// cannot change the outcome: a line over the limit fails whether it arrives whole or in
/// pieces, and every line before it is delivered.
#[derive(Debug)]
pub struct LineFramer {
    partial: Vec<u8>,
    max_line: usize,
    closed: bool,
}

impl Default for LineFramer {
    fn default() -> Self {
        LineFramer::new()
    }
}

impl LineFramer {
    /// A framer with carbon's limit, [`MAX_LINE_LENGTH`].
    pub fn new() -> LineFramer {
        LineFramer::with_max_line(MAX_LINE_LENGTH)
    }

    /// A framer with another line limit (bytes, without the `\n`).
    pub fn with_max_line(max_line: usize) -> LineFramer {
        LineFramer {
            partial: Vec::new(),
            max_line,
            closed: false,
        }
    }

    /// Feeds one read's bytes and calls `on_line` for each complete line, in order, without
    /// its `\n`. `on_line` returns [`ControlFlow::Break`] to stop (for example a strict
    /// caller on a fatal line); the framer is then closed and the rest of the chunk dropped,
    /// as carbon drops the rest of a read.
    ///
    /// An error means the connection must be closed; the lines before the offending one have
    /// been delivered. Afterwards every call returns [`FrameError::Closed`].
    pub fn feed<F>(&mut self, chunk: &[u8], mut on_line: F) -> Result<(), FrameError>
    where
        F: FnMut(&[u8]) -> ControlFlow<()>,
    {
        self.feed_at(chunk, |line, _| on_line(line))
    }

    /// Frames and parses one read's bytes, checking UTF-8 once for the whole read instead of
    /// once per line: a line that lies whole in a valid stretch of `chunk` is valid too, as
    /// `\n` never occurs inside a multi-byte character. `on_line` gets each line's bytes (for
    /// the log) and what [`parse_line_ref`] makes of it; everything else is as in
    /// [`LineFramer::feed`].
    pub fn feed_parsed<F>(
        &mut self,
        chunk: &[u8],
        now: f64,
        mut on_line: F,
    ) -> Result<(), FrameError>
    where
        F: FnMut(&[u8], Result<Option<Point<'_>>, LineError>) -> ControlFlow<()>,
    {
        let valid = match std::str::from_utf8(chunk) {
            Ok(text) => text,
            // Only the valid prefix is used; its own check cannot fail.
            Err(e) => chunk
                .get(..e.valid_up_to())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
        };
        self.feed_at(chunk, |line, start| {
            let text = start.and_then(|s| valid.get(s..s + line.len()));
            let parsed = match text {
                Some(t) => parse_text(t, now, Transport::Tcp),
                None => parse_line_ref(line, now),
            };
            on_line(line, parsed)
        })
    }

    /// [`LineFramer::feed`], also telling where each line starts in `chunk` (`None` for a
    /// line put together from two reads).
    #[inline]
    fn feed_at<F>(&mut self, chunk: &[u8], mut on_line: F) -> Result<(), FrameError>
    where
        F: FnMut(&[u8], Option<usize>) -> ControlFlow<()>,
    {
        if self.closed {
            return Err(FrameError::Closed);
        }
        let max = self.max_line;
        let mut pos = 0usize;
        if !self.partial.is_empty() {
            let Some(nl) = find_newline(chunk) else {
                let len = self.partial.len().saturating_add(chunk.len());
                if len > max {
                    return Err(self.fail(FrameError::Unterminated { len, max }));
                }
                self.partial.extend_from_slice(chunk);
                return Ok(());
            };
            let head = chunk.get(..nl).unwrap_or_default();
            let len = self.partial.len().saturating_add(head.len());
            if len > max {
                return Err(self.fail(FrameError::LineTooLong { len, max }));
            }
            self.partial.extend_from_slice(head);
            let flow = on_line(&self.partial, None);
            self.partial.clear();
            if flow.is_break() {
                self.closed = true;
                return Ok(());
            }
            pos = nl + 1;
        }
        let mut rest = chunk.get(pos..).unwrap_or_default();
        while let Some(nl) = find_newline(rest) {
            let line = rest.get(..nl).unwrap_or_default();
            if line.len() > max {
                let len = line.len();
                return Err(self.fail(FrameError::LineTooLong { len, max }));
            }
            if on_line(line, Some(pos)).is_break() {
                self.closed = true;
                return Ok(());
            }
            pos += nl + 1;
            rest = rest.get(nl + 1..).unwrap_or_default();
        }
        if rest.len() > max {
            let len = rest.len();
            return Err(self.fail(FrameError::Unterminated { len, max }));
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Bytes of an unterminated line held back.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Has the framer failed or been stopped?
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// End of stream: an unterminated last line is never processed (as in carbon). Returns
    /// how many bytes were dropped so the caller may log it.
    pub fn finish(&mut self) -> usize {
        let dropped = self.partial.len();
        self.partial.clear();
        self.closed = true;
        dropped
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.closed = true;
        self.partial = Vec::new();
        e
    }
}

/// Position of the first `\n`, eight bytes at a time: std has no stable `memchr` for slices
/// and `iter().position` goes byte by byte, which showed up in the framing cost.
#[inline]
fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0usize;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w) ^ NL;
        // The classic zero-byte test; its lowest flagged byte is always a real zero.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(framer: &mut LineFramer, chunk: &[u8]) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
        let mut lines = Vec::new();
        let r = framer.feed(chunk, |l| {
            lines.push(l.to_vec());
            ControlFlow::Continue(())
        });
        (lines, r)
    }

    #[test]
    fn find_newline_matches_position() {
        let mut buf = vec![b'a'; 40];
        assert_eq!(find_newline(&buf), None);
        for i in 0..40 {
            buf[i] = b'\n';
            assert_eq!(find_newline(&buf), Some(i));
            for j in 0..=i {
                assert_eq!(find_newline(&buf[j..]), Some(i - j));
            }
            buf[i] = 0x8a; // high bit set, low bits of '\n': not a newline
            assert_eq!(find_newline(&buf), None);
            buf[i] = b'a';
        }
        assert_eq!(find_newline(b"\x0b\x09\n"), Some(2));
    }

    #[test]
    fn plain_line() {
        let p = parse_line(b"servers.web01.cpu.user 12.5 1700000000\r", 0.0);
        assert_eq!(
            p,
            Ok(Some(Datapoint {
                name: "servers.web01.cpu.user".into(),
                timestamp: 1_700_000_000.0,
                value: 12.5
            }))
        );
    }

    #[test]
    fn carbon_quirks() {
        let now = 1234.5;
        let ts = |l: &[u8]| parse_line(l, now).map(|p| p.map(|p| p.timestamp));
        assert_eq!(ts(b"a 1 -1"), Ok(Some(now)));
        assert_eq!(ts(b"a 1 -1.9"), Ok(Some(now)));
        assert_eq!(ts(b"a 1 -2"), Ok(Some(-2.0)));
        assert_eq!(ts(b"a 1 -0.5"), Ok(Some(-0.5)));
        assert_eq!(ts(b"a nan nan"), Ok(None));
        assert_eq!(ts(b"a 1 nan"), Err(LineError::Fatal(Reason::NanTimestamp)));
        assert_eq!(
            ts(b"a 1 -inf"),
            Err(LineError::Fatal(Reason::InfiniteTimestamp))
        );
        assert_eq!(
            ts(b"a 1 1e400"),
            Err(LineError::Fatal(Reason::InfiniteTimestamp))
        );
        assert_eq!(ts(b""), Err(LineError::Invalid(Reason::FieldCount(0))));
        assert_eq!(
            ts(b"a 1 2 3"),
            Err(LineError::Invalid(Reason::FieldCount(4)))
        );
        assert_eq!(ts(b"a x 2"), Err(LineError::Invalid(Reason::BadValue)));
        assert_eq!(ts(b"a x y"), Err(LineError::Invalid(Reason::BadTimestamp)));
        assert_eq!(
            ts(b"a 1 \xff"),
            Err(LineError::Fatal(Reason::NotUtf8 { valid_up_to: 4 }))
        );
        // U+00A0 and U+001C separate fields; fullwidth digits are digits.
        let p = parse_line("a\u{a0}1_0\u{1c}\u{ff11}7".as_bytes(), now);
        assert_eq!(
            p,
            Ok(Some(Datapoint {
                name: "a".into(),
                timestamp: 17.0,
                value: 10.0
            }))
        );
    }

    #[test]
    fn udp_differences() {
        assert_eq!(
            parse_datagram_line("a 1 nan", 0.0),
            Err(LineError::Invalid(Reason::NanTimestamp))
        );
        assert_eq!(
            parse_datagram_line("a 1 inf", 0.0),
            Err(LineError::Fatal(Reason::InfiniteTimestamp))
        );
        let (points, rejected) = parse_datagram(b"a 1 2\r\n\nb 1 inf\x0bc 3 4\xc2\x85", 0.0);
        let names: Vec<_> = points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(rejected.len(), 2);
        assert_eq!(rejected[0].line, "");
        assert_eq!(rejected[1].line, "b 1 inf");
        let (points, rejected) = parse_datagram(b"a 1 2\n\xff", 0.0);
        assert!(points.is_empty());
        assert!(rejected[0].error.is_fatal());
    }

    #[test]
    fn framing() {
        let mut f = LineFramer::with_max_line(8);
        let (l, r) = frame(&mut f, b"a 1 2\nb 1");
        assert_eq!((l, r), (vec![b"a 1 2".to_vec()], Ok(())));
        let (l, r) = frame(&mut f, b" 2\n\nc");
        assert_eq!((l, r), (vec![b"b 1 2".to_vec(), b"".to_vec()], Ok(())));
        assert_eq!(f.buffered(), 1);
        // Exactly the limit is fine; one more is not, and earlier lines still come out.
        let (l, r) = frame(&mut f, b"2345678\nx\n123456789\ny\n");
        assert_eq!(l, vec![b"c2345678".to_vec(), b"x".to_vec()]);
        assert_eq!(r, Err(FrameError::LineTooLong { len: 9, max: 8 }));
        assert_eq!(frame(&mut f, b"z\n").1, Err(FrameError::Closed));

        let mut f = LineFramer::with_max_line(8);
        let (l, r) = frame(&mut f, b"ok\n123456789");
        assert_eq!(l, vec![b"ok".to_vec()]);
        assert_eq!(r, Err(FrameError::Unterminated { len: 9, max: 8 }));

        let mut f = LineFramer::with_max_line(8);
        assert_eq!(frame(&mut f, b"1234").1, Ok(()));
        assert_eq!(
            frame(&mut f, b"56789").1,
            Err(FrameError::Unterminated { len: 9, max: 8 })
        );

        let mut f = LineFramer::new();
        assert_eq!(frame(&mut f, b"a 1 2").1, Ok(()));
        assert_eq!(f.finish(), 5);
    }

    #[test]
    fn simple_split_agrees_with_python_split() {
        let lines = [
            "a 1 2",
            "a 1 2\r",
            "a  1 2",
            " a 1 2",
            "a 1 2 ",
            "a 1",
            "a 1 2 3",
            "a\t1 2",
            "a 1 2\r\r",
            "é 1 2",
            "a\x0b1 2",
            "a 1 \r",
            "a\u{a0}1 2",
            "a 1 2\x7f",
            "\r",
            "",
            "a\x01 1 2",
            "a 1\r2",
        ];
        for line in lines {
            let general: Vec<&str> = python::text::split(line).collect();
            if let Some((a, b, c)) = split_simple(line) {
                assert_eq!(general, [a, b, c], "{line:?}");
            }
        }
        assert!(split_simple("servers.a.b 12.5 1700000000\r").is_some());
    }

    #[test]
    fn feed_parsed_matches_feed() {
        let mut bytes = "a 1 2\nbad\n\u{e9}.x 3 4\r\nb 1 ".as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\nc 5 6\n");
        bytes.extend_from_slice("d\u{e9} 7 8\n".as_bytes());
        bytes.extend_from_slice(b"e 1 2\n\xffz 1 2\nf 3 4\n");
        for split in 0..bytes.len() {
            let (a, b) = bytes.split_at(split);
            let mut one = LineFramer::new();
            let mut two = LineFramer::new();
            let mut expect = Vec::new();
            let mut got = Vec::new();
            for chunk in [a, b] {
                one.feed(chunk, |l| {
                    expect.push((l.to_vec(), parse_line(l, 9.0)));
                    ControlFlow::Continue(())
                })
                .unwrap();
                two.feed_parsed(chunk, 9.0, |l, p| {
                    got.push((l.to_vec(), p.map(|p| p.map(|p| p.to_datapoint()))));
                    ControlFlow::Continue(())
                })
                .unwrap();
            }
            assert_eq!(got, expect, "split at {split}");
        }
    }

    #[test]
    fn framing_stops_on_break() {
        let mut f = LineFramer::new();
        let mut seen = 0;
        let r = f.feed(b"a\nb\nc\n", |_| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((seen, r), (2, Ok(())));
        assert!(f.is_closed());
    }

    #[test]
    fn log_text() {
        assert_eq!(
            invalid_line_message("1.2.3.4:5678", b"  bad\tline\x01 'q' \r"),
            "invalid line received from client 1.2.3.4:5678, ignoring [bad\\tline\\x01 'q']"
        );
        assert_eq!(quote_line("'\"\\"), "\\'\"\\\\");
        let long = format!(" {}", "é".repeat(500));
        let q = quote_line(&long);
        assert_eq!(q, format!("{}...", "é".repeat(399)));
        assert_eq!(
            invalid_datagram_line_message("::1", "x\u{2028}"),
            "invalid line received from ::1, ignoring [x]"
        );
    }

    #[test]
    fn min_resolution() {
        assert_eq!(apply_min_resolution(1_700_000_007.9, 5), 1_700_000_005.0);
        assert_eq!(apply_min_resolution(-7.9, 5), -10.0);
        assert_eq!(apply_min_resolution(7.9, 0), 7.9);
    }
}
