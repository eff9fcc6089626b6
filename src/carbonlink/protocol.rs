//! The cache-query protocol's requests and replies, without sockets: what carbon 1.1.10's
//! `CacheManagementHandler.stringReceived` makes of one unpickled request, evaluated with
//! Python's semantics where a client can observe them, and a pickle protocol 2 writer for
//! the replies.
//!
//! A request either gets a reply or, where carbon's handler raises (a payload that does not
//! unpickle, a request that is not a dict, a missing key, an unhashable metric), a
//! [`Refusal`]: Twisted logs the exception and drops the connection, and so does Carbide.

use crate::ingest::pickle::{unpickle, Arena, Id, Int, Limits, Node, PyException};

/// Why a request ends the connection (carbon: an exception escaping `stringReceived`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<PyException> for Refusal {
    fn from(e: PyException) -> Self {
        Refusal(format!("{}: {}", e.kind.name(), e.message))
    }
}

/// A decoded request. Objects stay in the arena: replies echo some of them back.
pub struct Request {
    pub arena: Arena,
    pub kind: RequestKind,
}

/// What the request asks for (carbon's `request['type']` branches).
pub enum RequestKind {
    /// `cache-query`: the metric object.
    CacheQuery { metric: Id },
    /// `cache-query-bulk`: the distinct metrics (a dict built with Python's key equality, in
    /// first-seen order) and how many the request iterated (`len(metrics)`).
    Bulk { metrics: Vec<Id>, asked: usize },
    /// `get-metadata`.
    GetMetadata { metric: Id, key: Id },
    /// `set-metadata`.
    SetMetadata { metric: Id, key: Id, value: Id },
    /// Any other type: the reply is `{'error': 'Invalid request type "<type>"'}`.
    Invalid { type_text: Vec<u8> },
}

/// Unpickles and classifies one request frame, reading keys in carbon's order so that the
/// first missing one is the one carbon would trip over.
pub fn parse(payload: &[u8], limits: &Limits) -> Result<Request, Refusal> {
    let loaded = unpickle(payload, limits)?;
    let mut arena = loaded.arena;
    let root = loaded.root;
    let ty = item(&arena, root, "type")?;
    let kind = match str_bytes(&arena, ty) {
        Some(b"cache-query") => {
            let metric = item(&arena, root, "metric")?;
            RequestKind::CacheQuery {
                metric: hashable(&mut arena, metric)?,
            }
        }
        Some(b"cache-query-bulk") => {
            let metrics = item(&arena, root, "metrics")?;
            let items = iterate(&mut arena, metrics)?;
            let asked = items.len();
            let table = arena.push(Node::Dict(Box::default()));
            for &m in &items {
                arena.table_insert(table, m, m)?;
            }
            let metrics = match arena.get(table) {
                Node::Dict(t) => t.entries.iter().map(|e| e.0).collect(),
                _ => Vec::new(),
            };
            RequestKind::Bulk { metrics, asked }
        }
        Some(b"get-metadata") => {
            let metric = item(&arena, root, "metric")?;
            let key = item(&arena, root, "key")?;
            RequestKind::GetMetadata { metric, key }
        }
        Some(b"set-metadata") => {
            let metric = item(&arena, root, "metric")?;
            let key = item(&arena, root, "key")?;
            let value = item(&arena, root, "value")?;
            RequestKind::SetMetadata { metric, key, value }
        }
        _ => {
            let text = percent_s(&arena, ty).map_err(|e| Refusal(format!("TypeError: {e}")))?;
            let mut type_text = b"Invalid request type \"".to_vec();
            type_text.extend_from_slice(&text);
            type_text.push(b'"');
            RequestKind::Invalid { type_text }
        }
    };
    Ok(Request { arena, kind })
}

/// `request[key]` for a str key: only a dict answers it; a missing key is carbon's KeyError.
fn item(arena: &Arena, root: Id, key: &str) -> Result<Id, Refusal> {
    match arena.get(root) {
        Node::Dict(t) => t
            .entries
            .iter()
            .find(|e| str_bytes(arena, e.0) == Some(key.as_bytes()))
            .map(|e| e.1)
            .ok_or_else(|| Refusal(format!("KeyError: '{key}'"))),
        other => Err(Refusal(format!(
            "TypeError: '{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

/// A metric used as a cache key must hash (carbon's `cache.get(metric, {})`).
fn hashable(arena: &mut Arena, id: Id) -> Result<Id, Refusal> {
    arena.hash(id)?;
    Ok(id)
}

/// The bytes of a `str` object (WTF-8: lone surrogates possible).
pub fn str_bytes(arena: &Arena, id: Id) -> Option<&[u8]> {
    match arena.get(id) {
        Node::Str(s) => Some(s),
        _ => None,
    }
}

/// `for metric in metrics`: the items Python iterates, new objects pushed for the characters
/// of a str and the ints of a bytes-like object.
fn iterate(arena: &mut Arena, id: Id) -> Result<Vec<Id>, Refusal> {
    let items: Vec<Id> = match arena.get(id) {
        Node::List(items) => items.clone(),
        Node::Tuple(items) => items.to_vec(),
        Node::Dict(t) | Node::Set(t) | Node::FrozenSet(t) => {
            t.entries.iter().map(|e| e.0).collect()
        }
        Node::Str(s) => {
            let chars: Vec<Box<[u8]>> = wtf8_chars(s).map(Box::from).collect();
            return Ok(chars
                .into_iter()
                .map(|c| arena.push(Node::Str(c)))
                .collect());
        }
        Node::Bytes(b) | Node::MemoryView(b) => {
            let bytes = b.to_vec();
            return Ok(push_ints(arena, &bytes));
        }
        Node::ByteArray(b) => {
            let bytes = b.clone();
            return Ok(push_ints(arena, &bytes));
        }
        other => {
            return Err(Refusal(format!(
                "TypeError: '{}' object is not iterable",
                other.type_name()
            )))
        }
    };
    Ok(items)
}

fn push_ints(arena: &mut Arena, bytes: &[u8]) -> Vec<Id> {
    bytes
        .iter()
        .map(|&b| arena.push(Node::Int(Int::Small(i64::from(b)))))
        .collect()
}

/// Splits WTF-8 into its code points' byte sequences (the lead byte gives the length).
fn wtf8_chars(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let lead = *rest.first()?;
        let len = match lead {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        }
        .min(rest.len());
        let (c, r) = rest.split_at(len);
        rest = r;
        Some(c)
    })
}

/// `"%s" % obj` as UTF-8 (WTF-8) bytes: `str(obj)`, except that a tuple is the argument
/// list itself (one element is formatted, any other length is a TypeError).
pub fn percent_s(arena: &Arena, id: Id) -> Result<Vec<u8>, String> {
    match arena.get(id) {
        Node::Tuple(items) => match items.len() {
            1 => Ok(py_str(arena, items[0])),
            0 => Err("not enough arguments for format string".to_string()),
            _ => Err("not all arguments converted during string formatting".to_string()),
        },
        _ => Ok(py_str(arena, id)),
    }
}

/// `str(obj)`. Containers and bytes use their repr, in `ascii()` form: non-ASCII text inside
/// a container comes out escaped where Python would print it as is.
pub fn py_str(arena: &Arena, id: Id) -> Vec<u8> {
    match arena.get(id) {
        Node::Str(s) => s.to_vec(),
        _ => arena
            .ascii_repr(id, 200)
            .unwrap_or_else(|| "<object nested too deeply>".to_string())
            .into_bytes(),
    }
}

/// A pickle protocol 2 writer, as `pickle.dumps(obj, protocol=2)` lays objects out (without
/// the memo, which only shares objects and which a reader does not need).
pub struct Pickler {
    out: Vec<u8>,
}

/// Python batches list appends and dict items by this many.
const BATCH: usize = 1000;

impl Default for Pickler {
    fn default() -> Self {
        Self::new()
    }
}

impl Pickler {
    pub fn new() -> Pickler {
        Pickler { out: vec![0x80, 2] }
    }

    /// The finished pickle.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'.');
        self.out
    }

    pub fn none(&mut self) {
        self.out.push(b'N');
    }

    pub fn bool(&mut self, b: bool) {
        self.out.push(if b { 0x88 } else { 0x89 });
    }

    pub fn int(&mut self, i: i64) {
        if (0..256).contains(&i) {
            self.out.extend_from_slice(&[b'K', i as u8]);
        } else if (0..65536).contains(&i) {
            self.out.push(b'M');
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if i32::try_from(i).is_ok() {
            self.out.push(b'J');
            self.out.extend_from_slice(&(i as i32).to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, as few bytes as keep the sign.
            let bytes = i.to_le_bytes();
            let mut n = 8;
            while n > 1 {
                let top = bytes[n - 1];
                let next_sign = bytes[n - 2] & 0x80;
                if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                    n -= 1;
                } else {
                    break;
                }
            }
            self.out.extend_from_slice(&[0x8a, n as u8]);
            self.out.extend_from_slice(&bytes[..n]);
        }
    }

    /// An int of any size, from its decimal digits (the protocol 0 `INT` opcode, which
    /// every unpickler reads at any magnitude).
    pub fn int_decimal(&mut self, decimal: &str) {
        self.out.push(b'I');
        self.out.extend_from_slice(decimal.as_bytes());
        self.out.push(b'\n');
    }

    pub fn float(&mut self, f: f64) {
        self.out.push(b'G');
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    /// A `str` from UTF-8 (or WTF-8: Python writes lone surrogates the same way).
    pub fn str(&mut self, s: &[u8]) {
        self.out.push(b'X');
        self.out
            .extend_from_slice(&(s.len().min(u32::MAX as usize) as u32).to_le_bytes());
        self.out.extend_from_slice(s);
    }

    /// A `(timestamp, value)` tuple.
    pub fn pair(&mut self, ts: f64, value: f64, integer_timestamps: bool) {
        if integer_timestamps && ts.fract() == 0.0 && ts.abs() < 9.0e15 {
            self.int(ts as i64);
        } else {
            self.float(ts);
        }
        self.float(value);
        self.out.push(0x86);
    }

    /// A list of `(timestamp, value)` tuples.
    pub fn points(&mut self, points: &[(f64, f64)], integer_timestamps: bool) {
        self.out.push(b']');
        if let [(t, v)] = points {
            self.pair(*t, *v, integer_timestamps);
            self.out.push(b'a');
            return;
        }
        for chunk in points.chunks(BATCH) {
            self.out.push(b'(');
            for &(t, v) in chunk {
                self.pair(t, v, integer_timestamps);
            }
            self.out.push(b'e');
        }
    }

    /// A dict whose items `write_item(pickler, i)` writes (key then value) for `0..n`.
    pub fn dict(&mut self, n: usize, mut write_item: impl FnMut(&mut Pickler, usize)) {
        self.out.push(b'}');
        if n == 1 {
            write_item(self, 0);
            self.out.push(b's');
            return;
        }
        let mut i = 0;
        while i < n {
            let end = (i + BATCH).min(n);
            self.out.push(b'(');
            for j in i..end {
                write_item(self, j);
            }
            self.out.push(b'u');
            i = end;
        }
    }

    /// A `{'error': text}` reply.
    pub fn error_reply(text: &[u8]) -> Vec<u8> {
        let mut p = Pickler::new();
        p.dict(1, |p, _| {
            p.str(b"error");
            p.str(text);
        });
        p.finish()
    }

    /// Any hashable object from a request, as protocol 2 writes it (bytes and frozensets go
    /// through their constructors, as CPython's pickler does). Iterative: tuples nest as
    /// deep as the request did.
    pub fn object(&mut self, arena: &Arena, id: Id) -> Result<(), String> {
        enum Step {
            Obj(Id),
            Raw(&'static [u8]),
        }
        let mut stack = vec![Step::Obj(id)];
        while let Some(step) = stack.pop() {
            let id = match step {
                Step::Raw(b) => {
                    self.out.extend_from_slice(b);
                    continue;
                }
                Step::Obj(id) => id,
            };
            match arena.get(id) {
                Node::None => self.none(),
                Node::Bool(b) => self.bool(*b),
                Node::Int(Int::Small(i)) => self.int(*i),
                Node::Int(i) => self.int_decimal(&i.to_decimal()),
                Node::Float(f) => self.float(*f),
                Node::Str(s) => self.str(s),
                Node::Bytes(b) if b.is_empty() => {
                    self.out.extend_from_slice(b"c__builtin__\nbytes\n)R");
                }
                Node::Bytes(b) => {
                    self.out.extend_from_slice(b"c_codecs\nencode\n");
                    let latin1: String = b.iter().map(|&c| char::from(c)).collect();
                    self.str(latin1.as_bytes());
                    self.str(b"latin1");
                    self.out.extend_from_slice(&[0x86, b'R']);
                }
                Node::Tuple(items) => match items.len() {
                    0 => self.out.push(b')'),
                    n @ 1..=3 => {
                        stack.push(Step::Raw(match n {
                            1 => &[0x85],
                            2 => &[0x86],
                            _ => &[0x87],
                        }));
                        stack.extend(items.iter().rev().map(|&c| Step::Obj(c)));
                    }
                    _ => {
                        self.out.push(b'(');
                        stack.push(Step::Raw(b"t"));
                        stack.extend(items.iter().rev().map(|&c| Step::Obj(c)));
                    }
                },
                Node::FrozenSet(t) => {
                    self.out.extend_from_slice(b"c__builtin__\nfrozenset\n]");
                    stack.push(Step::Raw(&[0x85, b'R']));
                    if !t.is_empty() {
                        self.out.push(b'(');
                        stack.push(Step::Raw(b"e"));
                        stack.extend(t.entries.iter().rev().map(|e| Step::Obj(e.0)));
                    }
                }
                other => return Err(format!("unhashable type: '{}'", other.type_name())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::for_frame(1 << 20)
    }

    #[test]
    fn ints_take_the_smallest_opcode() {
        let enc = |i: i64| {
            let mut p = Pickler::new();
            p.int(i);
            p.finish()[2..].to_vec()
        };
        assert_eq!(enc(5), b"K\x05.");
        assert_eq!(enc(300), b"M\x2c\x01.");
        assert_eq!(enc(-1), b"J\xff\xff\xff\xff.");
        assert_eq!(enc(1 << 40), b"\x8a\x06\x00\x00\x00\x00\x00\x01.");
        assert_eq!(enc(-(1 << 40)), b"\x8a\x06\x00\x00\x00\x00\x00\xff.");
        assert_eq!(enc(i64::MIN), b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.");
    }

    #[test]
    fn requests_are_classified_in_carbons_order() {
        // {'type': 'cache-query', 'metric': 'a.b'} at protocol 2.
        let p = b"\x80\x02}q\x00(X\x04\x00\x00\x00typeq\x01X\x0b\x00\x00\x00cache-queryq\x02X\x06\x00\x00\x00metricq\x03X\x03\x00\x00\x00a.bq\x04u.";
        let r = parse(p, &limits()).unwrap();
        assert!(
            matches!(r.kind, RequestKind::CacheQuery { metric } if str_bytes(&r.arena, metric) == Some(b"a.b"))
        );
        // {'type': 'cache-query'}: KeyError on 'metric'.
        let p = b"\x80\x02}X\x04\x00\x00\x00typeX\x0b\x00\x00\x00cache-querys.";
        assert_eq!(parse(p, &limits()).err().unwrap().0, "KeyError: 'metric'");
        // [1]: not subscriptable.
        assert!(parse(b"\x80\x02]K\x01a.", &limits()).is_err());
        // {'type': ('x',)}: a one-tuple is the format argument.
        let p = b"\x80\x02}X\x04\x00\x00\x00typeX\x01\x00\x00\x00x\x85s.";
        match parse(p, &limits()).unwrap().kind {
            RequestKind::Invalid { type_text } => {
                assert_eq!(type_text, b"Invalid request type \"x\"")
            }
            _ => panic!("not invalid"),
        }
    }

    #[test]
    fn bulk_metrics_deduplicate_with_python_equality() {
        // {'type': 'cache-query-bulk', 'metrics': ['a', 'a', 1, 1.0, True]}
        let p = b"\x80\x02}(X\x04\x00\x00\x00typeX\x10\x00\x00\x00cache-query-bulkX\x07\x00\x00\x00metrics](X\x01\x00\x00\x00aX\x01\x00\x00\x00aK\x01G?\xf0\x00\x00\x00\x00\x00\x00\x88eu.";
        let r = parse(p, &limits()).unwrap();
        match r.kind {
            RequestKind::Bulk { metrics, asked } => {
                assert_eq!(asked, 5);
                assert_eq!(metrics.len(), 2);
            }
            _ => panic!("not bulk"),
        }
    }
}
