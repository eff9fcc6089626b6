//! Carbon's pickle protocol (TCP 2004), decoded the way carbon 1.1.10 on CPython 3.11 does,
//! without ever executing anything a pickle asks for.
//!
//! Owns three layers, each a separate concern because each fails differently in carbon:
//! - [`FrameDecoder`]: Twisted's `Int32StringReceiver` framing. A length prefix above the
//!   maximum closes the connection before any payload is read.
//! - [`unpickle`] (in `unpickler`): `SafeUnpickler.loads`. Its exceptions either make carbon
//!   log `invalid pickle received from <peer>, error: "<exc>", ignoring` and skip the frame,
//!   or escape and close the connection — which one depends on the Python exception type, so
//!   errors carry that type ([`ExcKind`]).
//! - [`decode_frame`]: `MetricPickleReceiver.stringReceived`: iterate the payload, unpack each
//!   item as `(metric, (timestamp, value))`, `float()` both, require a `str` metric.
//!
//! Bounds: a frame is at most the configured maximum; everything built from it is linear in
//! its length (see [`Limits`]); nothing recurses on input depth. The specification is
//! `shared/spec/whisper-carbon.md` §2.4; tests compare against CPython running carbon's own
//! `SafeUnpickler`.

mod bigint;
mod text;
mod unpickler;
mod value;

use std::fmt;
use std::ops::ControlFlow;

pub use bigint::Int;
pub use unpickler::Loaded;
pub use value::{float_repr, Arena, Id, Node, Table};

/// carbon's `PICKLE_RECEIVER_MAX_LENGTH` default; a frame of exactly this length is accepted.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 1_048_576;

/// The Python exception types the pickle path can raise. Carbon's `except` clause names
/// some of them; the rest escape `stringReceived` and Twisted drops the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExcKind {
    UnpicklingError,
    EOFError,
    ValueError,
    UnicodeDecodeError,
    ModuleNotFoundError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
    /// Not Python: one of Carbide's [`Limits`] was reached. Treated like a caught error
    /// (frame ignored, connection kept) since the frame is refused only out of caution.
    LimitExceeded,
}

impl ExcKind {
    /// The Python class name.
    pub fn name(self) -> &'static str {
        match self {
            ExcKind::UnpicklingError => "UnpicklingError",
            ExcKind::EOFError => "EOFError",
            ExcKind::ValueError => "ValueError",
            ExcKind::UnicodeDecodeError => "UnicodeDecodeError",
            ExcKind::ModuleNotFoundError => "ModuleNotFoundError",
            ExcKind::IndexError => "IndexError",
            ExcKind::TypeError => "TypeError",
            ExcKind::AttributeError => "AttributeError",
            ExcKind::OverflowError => "OverflowError",
            ExcKind::MemoryError => "MemoryError",
            ExcKind::RecursionError => "RecursionError",
            ExcKind::LimitExceeded => "LimitExceeded",
        }
    }

    /// Whether carbon's `except (UnpicklingError, ValueError, IndexError, ImportError,
    /// KeyError, EOFError)` catches it (UnicodeDecodeError is a ValueError,
    /// ModuleNotFoundError an ImportError).
    pub fn caught_by_carbon(self) -> bool {
        !matches!(
            self,
            ExcKind::TypeError
                | ExcKind::AttributeError
                | ExcKind::OverflowError
                | ExcKind::MemoryError
                | ExcKind::RecursionError
        )
    }
}

/// A Python exception: its type and `str(exc)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyException {
    pub kind: ExcKind,
    pub message: String,
}

impl PyException {
    pub(crate) fn new(kind: ExcKind, message: impl Into<String>) -> Self {
        PyException {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn limit(what: &str) -> Self {
        PyException::new(
            ExcKind::LimitExceeded,
            format!("pickle exceeds Carbide's {what} limit"),
        )
    }
}

impl fmt::Display for PyException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PyException {}

/// Resource bounds for one payload. [`Limits::for_frame`] scales them so that they cannot
/// refuse anything CPython would load from a frame of that size (each opcode byte makes at
/// most one object, one container slot, one memo entry or one MARK), which leaves them as a
/// guarantee — memory is linear in the frame — rather than a behaviour difference. Only
/// `max_work` can bind: it caps dict/set key comparisons, which an adversary can otherwise
/// make quadratic with many equal-but-distinct keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_objects: usize,
    pub max_slots: usize,
    pub max_memo: usize,
    pub max_marks: usize,
    pub max_work: u64,
}

impl Limits {
    /// Limits for payloads of at most `max_frame` bytes.
    pub fn for_frame(max_frame: usize) -> Self {
        Limits {
            max_objects: max_frame.saturating_add(3),
            max_slots: max_frame,
            max_memo: max_frame,
            max_marks: max_frame,
            max_work: (max_frame as u64)
                .saturating_mul(16)
                .saturating_add(1 << 20),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_frame(DEFAULT_MAX_FRAME_LENGTH)
    }
}

/// Loads one payload as `SafeUnpickler.loads` would (bytes after `STOP` are ignored).
pub fn unpickle(payload: &[u8], limits: &Limits) -> Result<Loaded, PyException> {
    unpickler::load(payload, limits)
}

/// Why the frame decoder stopped accepting bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// A length prefix above the maximum: Twisted's `lengthLimitExceeded` closes the
    /// connection without reading the payload.
    TooLong { length: u32, max: usize },
    /// An earlier error or the frame handler ended the connection.
    Closed,
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::TooLong { length, max } => {
                write!(
                    f,
                    "pickle frame of {length} bytes exceeds the maximum of {max}"
                )
            }
            FeedError::Closed => f.write_str("connection closed"),
        }
    }
}

impl std::error::Error for FeedError {}

/// Splits a byte stream into u32-big-endian-length-prefixed frames. Holds at most one
/// partial frame (≤ the maximum) plus a partial 4-byte prefix; complete frames inside a
/// chunk are handed out without copying.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    prefix: [u8; 4],
    prefix_len: usize,
    expected: Option<usize>,
    partial: Vec<u8>,
    closed: bool,
}

impl FrameDecoder {
    pub fn new(max_length: usize) -> Self {
        FrameDecoder {
            max: max_length,
            prefix: [0; 4],
            prefix_len: 0,
            expected: None,
            partial: Vec::new(),
            closed: false,
        }
    }

    /// The configured maximum frame length.
    pub fn max_length(&self) -> usize {
        self.max
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.prefix_len + self.partial.len()
    }

    /// Feeds a chunk, calling `on_frame` for each complete payload in order. A `Break` from
    /// the handler (the connection is being closed) discards the rest, as does a too-long
    /// prefix; frames completed earlier in the chunk have been delivered either way, as in
    /// Twisted.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<(), FeedError> {
        if self.closed {
            return Err(FeedError::Closed);
        }
        loop {
            let len = match self.expected {
                Some(len) => len,
                None => {
                    let take = (4 - self.prefix_len).min(input.len());
                    self.prefix[self.prefix_len..self.prefix_len + take]
                        .copy_from_slice(&input[..take]);
                    self.prefix_len += take;
                    input = &input[take..];
                    if self.prefix_len < 4 {
                        return Ok(());
                    }
                    let length = u32::from_be_bytes(self.prefix);
                    if length as u64 > self.max as u64 {
                        self.closed = true;
                        return Err(FeedError::TooLong {
                            length,
                            max: self.max,
                        });
                    }
                    self.expected = Some(length as usize);
                    length as usize
                }
            };
            let flow = if self.partial.is_empty() && input.len() >= len {
                let (frame, rest) = input.split_at(len);
                input = rest;
                self.expected = None;
                self.prefix_len = 0;
                on_frame(frame)
            } else {
                let take = (len - self.partial.len()).min(input.len());
                let want = self.partial.len() + take;
                if self.partial.capacity() < want {
                    // Grow geometrically but never past this frame's length.
                    let target = (self.partial.capacity() * 2).clamp(want, len);
                    self.partial.reserve_exact(target - self.partial.len());
                }
                self.partial.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.partial.len() < len {
                    return Ok(());
                }
                self.expected = None;
                self.prefix_len = 0;
                let frame = std::mem::take(&mut self.partial);
                let flow = on_frame(&frame);
                self.partial = frame;
                self.partial.clear();
                if self.partial.capacity() > self.max.min(1 << 16) {
                    self.partial = Vec::new();
                }
                flow
            };
            if flow.is_break() {
                self.closed = true;
                return Ok(());
            }
            if input.is_empty() {
                return Ok(());
            }
        }
    }
}

/// One accepted point: `(metric, (timestamp, value))` after `float()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub metric: String,
    pub timestamp: f64,
    pub value: f64,
}

/// An item carbon could not unpack; logged as `Error decoding pickle: <self>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemError {
    NotIterable(&'static str),
    NotEnough(usize),
    TooMany,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemError::NotIterable(t) => write!(f, "cannot unpack non-iterable {t} object"),
            ItemError::NotEnough(n) => {
                write!(f, "not enough values to unpack (expected 2, got {n})")
            }
            ItemError::TooMany => f.write_str("too many values to unpack (expected 2)"),
        }
    }
}

/// What carbon does with a frame as a whole when something fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Logged as `invalid pickle received from <peer>, error: "<exc>", ignoring`; the frame is
    /// skipped and the connection stays open.
    Ignored(PyException),
    /// The exception escapes carbon's handler: Twisted logs it and closes the connection.
    /// Points decoded before it (in [`FrameOutcome::points`]) were already delivered.
    Closed(PyException),
}

impl FrameError {
    pub fn exception(&self) -> &PyException {
        match self {
            FrameError::Ignored(e) | FrameError::Closed(e) => e,
        }
    }

    /// carbon's log line for an ignored frame (`None` for a closing error, which Twisted
    /// reports as a traceback instead).
    pub fn log_line(&self, peer: &str) -> Option<String> {
        match self {
            FrameError::Ignored(e) => Some(format!(
                "invalid pickle received from {peer}, error: \"{}\", ignoring",
                e.message
            )),
            FrameError::Closed(_) => None,
        }
    }
}

/// Everything carbon's `stringReceived` does with one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameOutcome {
    /// Accepted points in payload order (before carbon's common filter: NaN values and the
    /// `-1` timestamp are handled downstream).
    pub points: Vec<Datapoint>,
    /// Items whose `float()` raised ValueError/TypeError: skipped silently, as carbon does.
    pub unconvertible: usize,
    /// Items that did not unpack, each logged by carbon as `Error decoding pickle: <e>`.
    pub bad_items: Vec<ItemError>,
    /// Items whose `str` metric holds lone surrogates (possible via `surrogatepass` and
    /// `raw-unicode-escape`): carbon would carry them until the writer fails to encode the
    /// path; Carbide's names are UTF-8, so they are dropped here and counted.
    pub surrogate_names: usize,
    pub error: Option<FrameError>,
}

/// `MetricPickleReceiver.stringReceived(payload)`.
pub fn decode_frame(payload: &[u8], limits: &Limits) -> FrameOutcome {
    let mut out = FrameOutcome::default();
    let loaded = match unpickle(payload, limits) {
        Ok(l) => l,
        Err(e) => {
            out.error = Some(if e.kind.caught_by_carbon() {
                FrameError::Ignored(e)
            } else {
                FrameError::Closed(e)
            });
            return out;
        }
    };
    if let Err(e) = collect_items(&loaded.arena, loaded.root, &mut out) {
        out.error = Some(FrameError::Closed(e));
    }
    out
}

/// An element met while iterating: an object, or the 1-char strs and ints that iterating a
/// str or bytes yields (not materialised as objects).
#[derive(Clone, Copy)]
enum Elem {
    Obj(Id),
    Char(u32),
    Byte(u8),
}

fn elements(arena: &Arena, id: Id) -> Option<Vec<Elem>> {
    Some(match arena.get(id) {
        Node::List(v) => v.iter().map(|&i| Elem::Obj(i)).collect(),
        Node::Tuple(v) => v.iter().map(|&i| Elem::Obj(i)).collect(),
        Node::Dict(t) | Node::Set(t) | Node::FrozenSet(t) => {
            t.entries.iter().map(|e| Elem::Obj(e.0)).collect()
        }
        Node::Str(s) => value::code_points(s).map(Elem::Char).collect(),
        Node::Bytes(b) | Node::MemoryView(b) => b.iter().map(|&x| Elem::Byte(x)).collect(),
        Node::ByteArray(b) => b.iter().map(|&x| Elem::Byte(x)).collect(),
        _ => return None,
    })
}

/// The first two elements iterating `id` yields, how many there were (capped at 3), and
/// nothing more: CPython's unpacking stops early too, so a long shared str used as every
/// item stays linear.
fn first_two(arena: &Arena, id: Id) -> Option<([Elem; 2], usize)> {
    fn take<T: Copy>(mut it: impl Iterator<Item = T>, f: impl Fn(T) -> Elem) -> ([Elem; 2], usize) {
        let mut out = [Elem::Byte(0); 2];
        let mut n = 0;
        for x in it.by_ref().take(3) {
            if n < 2 {
                out[n] = f(x);
            }
            n += 1;
        }
        (out, n)
    }
    Some(match arena.get(id) {
        Node::List(v) => take(v.iter().copied(), Elem::Obj),
        Node::Tuple(v) => take(v.iter().copied(), Elem::Obj),
        Node::Dict(t) | Node::Set(t) | Node::FrozenSet(t) => {
            take(t.entries.iter().map(|e| e.0), Elem::Obj)
        }
        Node::Str(s) => take(value::code_points(s), Elem::Char),
        Node::Bytes(b) | Node::MemoryView(b) => take(b.iter().copied(), Elem::Byte),
        Node::ByteArray(b) => take(b.iter().copied(), Elem::Byte),
        _ => return None,
    })
}

/// `a, b = elem` (Python's UNPACK_SEQUENCE 2).
fn unpack2(arena: &Arena, e: Elem) -> Result<(Elem, Elem), ItemError> {
    let id = match e {
        Elem::Obj(id) => id,
        Elem::Char(_) => return Err(ItemError::NotEnough(1)),
        Elem::Byte(_) => return Err(ItemError::NotIterable("int")),
    };
    match first_two(arena, id) {
        None => Err(ItemError::NotIterable(arena.type_name(id))),
        Some(([a, b], 2)) => Ok((a, b)),
        Some((_, n)) if n > 2 => Err(ItemError::TooMany),
        Some((_, n)) => Err(ItemError::NotEnough(n)),
    }
}

/// Python's `float(x)`: `Ok(None)` for the ValueError/TypeError carbon swallows,
/// `Err` for the OverflowError it does not.
fn py_float(arena: &Arena, e: Elem) -> Result<Option<f64>, PyException> {
    let id = match e {
        Elem::Byte(b) => return Ok(Some(b as f64)),
        Elem::Char(c) => {
            return Ok(char::from_u32(c).and_then(|ch| float_from_str(ch.encode_utf8(&mut [0; 4]))))
        }
        Elem::Obj(id) => id,
    };
    Ok(match arena.get(id) {
        Node::Bool(b) => Some(*b as u8 as f64),
        Node::Float(f) => Some(*f),
        Node::Int(i) => match i.to_f64() {
            Some(f) => Some(f),
            None => {
                return Err(PyException::new(
                    ExcKind::OverflowError,
                    "int too large to convert to float",
                ))
            }
        },
        Node::Str(s) => std::str::from_utf8(s).ok().and_then(float_from_str),
        Node::Bytes(b) | Node::MemoryView(b) => {
            std::str::from_utf8(b).ok().and_then(float_from_bytes_text)
        }
        Node::ByteArray(b) => std::str::from_utf8(b).ok().and_then(float_from_bytes_text),
        _ => None,
    })
}

/// Python's `float(str)`, from the plaintext receiver's exact implementation.
fn float_from_str(s: &str) -> Option<f64> {
    crate::python::number::parse_float(s)
}

/// Python's `float(bytes)`: the same grammar, but CPython strips only ASCII whitespace from
/// bytes and accepts no non-ASCII digits, so anything outside printable ASCII plus that
/// whitespace is refused before the `str` parser sees it.
fn float_from_bytes_text(s: &str) -> Option<f64> {
    let ascii = s
        .bytes()
        .all(|b| matches!(b, 0x20..=0x7e | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'));
    if ascii {
        float_from_str(s)
    } else {
        None
    }
}

fn collect_items(arena: &Arena, root: Id, out: &mut FrameOutcome) -> Result<(), PyException> {
    let items = elements(arena, root).ok_or_else(|| {
        PyException::new(
            ExcKind::TypeError,
            format!("'{}' object is not iterable", arena.type_name(root)),
        )
    })?;
    for raw in items {
        let (metric, pair) = match unpack2(arena, raw) {
            Ok(v) => v,
            Err(e) => {
                out.bad_items.push(e);
                continue;
            }
        };
        let (first, second) = match unpack2(arena, pair) {
            Ok(v) => v,
            Err(e) => {
                out.bad_items.push(e);
                continue;
            }
        };
        let Some(timestamp) = py_float(arena, first)? else {
            out.unconvertible += 1;
            continue;
        };
        let Some(value) = py_float(arena, second)? else {
            out.unconvertible += 1;
            continue;
        };
        let name = match metric {
            Elem::Obj(id) => match arena.get(id) {
                Node::Str(s) => String::from_utf8(s.to_vec()).ok(),
                other => return Err(no_encode(other.type_name())),
            },
            Elem::Char(c) => char::from_u32(c).map(String::from),
            Elem::Byte(_) => return Err(no_encode("int")),
        };
        match name {
            Some(metric) => out.points.push(Datapoint {
                metric,
                timestamp,
                value,
            }),
            None => out.surrogate_names += 1,
        }
    }
    Ok(())
}

fn no_encode(type_name: &str) -> PyException {
    PyException::new(
        ExcKind::AttributeError,
        format!("'{type_name}' object has no attribute 'encode'"),
    )
}
