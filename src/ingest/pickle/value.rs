//! The objects an unpickled payload is made of, stored in one flat arena.
//!
//! Pickles can share objects (memo `GET`), build cycles (a list appended to itself) and nest
//! as deep as the frame allows. Keeping every object in a `Vec` and referring to children by
//! index means none of that costs recursion: dropping, iterating and hashing never follow a
//! pointer chain on the Rust stack, and identity (`is`, which Python's `==` on containers
//! short-circuits on) is just index equality.
//!
//! Dict and set semantics follow Python where carbon can observe them: keys compare with
//! Python's `==` (`1`, `1.0` and `True` are one key; the first key object is kept and the
//! last value wins), unhashable keys raise `TypeError`, iteration is insertion order. Sets
//! are the one deliberate divergence: Python iterates them in hash order (randomised per
//! process for strings), Carbide in insertion order.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::bigint::Int;
use super::{ExcKind, PyException};

/// Index of an object in its [`Arena`].
pub type Id = u32;

/// Ids of the three singletons every arena starts with.
pub(crate) const NONE: Id = 0;
pub(crate) const FALSE: Id = 1;
pub(crate) const TRUE: Id = 2;

/// One Python object.
#[derive(Debug)]
pub enum Node {
    None,
    Bool(bool),
    Int(Int),
    Float(f64),
    /// UTF-8 that may also hold lone surrogates (CPython's `surrogatepass` and
    /// `raw-unicode-escape` let them into a `str`), encoded the WTF-8 way.
    Str(Box<[u8]>),
    Bytes(Box<[u8]>),
    ByteArray(Vec<u8>),
    /// A read-only view made by `READONLY_BUFFER` over a bytearray.
    MemoryView(Box<[u8]>),
    List(Vec<Id>),
    Tuple(Box<[Id]>),
    Dict(Box<Table>),
    Set(Box<Table>),
    FrozenSet(Box<Table>),
}

impl Node {
    /// `type(x).__name__`, which is what CPython's error messages print.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::None => "NoneType",
            Node::Bool(_) => "bool",
            Node::Int(_) => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::ByteArray(_) => "bytearray",
            Node::MemoryView(_) => "memoryview",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
        }
    }
}

/// Insertion-ordered hash table for dicts (key, value) and sets (key, key).
#[derive(Debug, Default)]
pub struct Table {
    pub(crate) entries: Vec<(Id, Id)>,
    /// First entry of each hash bucket; `next` chains entries sharing a bucket.
    heads: HashMap<u64, u32>,
    next: Vec<u32>,
}

const END: u32 = u32::MAX;

impl Table {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a hash or comparison could not finish.
pub(crate) type EvalResult<T> = Result<T, PyException>;

/// All objects of one unpickled payload.
#[derive(Debug)]
pub struct Arena {
    nodes: Vec<Node>,
    /// Cached hashes (0 = not computed yet; computed ones are forced odd).
    hashes: Vec<u64>,
    /// Remaining comparison/hash steps; keeps adversarial key collisions linear-ish.
    pub(crate) work_left: u64,
}

/// Python's comparison recursion limit, reached by comparing two deep distinct equal tuples.
const MAX_COMPARE_DEPTH: u32 = 1000;

impl Arena {
    pub(crate) fn new(work_budget: u64, expected_objects: usize) -> Self {
        let mut nodes = Vec::with_capacity(expected_objects + 3);
        nodes.extend([Node::None, Node::Bool(false), Node::Bool(true)]);
        Arena {
            nodes,
            hashes: Vec::new(),
            work_left: work_budget,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub(crate) fn push(&mut self, node: Node) -> Id {
        let id = self.nodes.len() as Id;
        self.nodes.push(node);
        id
    }

    pub fn get(&self, id: Id) -> &Node {
        &self.nodes[id as usize]
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    pub fn type_name(&self, id: Id) -> &'static str {
        self.get(id).type_name()
    }

    fn spend(&mut self, n: u64) -> EvalResult<()> {
        if self.work_left < n {
            self.work_left = 0;
            return Err(PyException::limit("hash/compare work"));
        }
        self.work_left -= n;
        Ok(())
    }

    /// A hash consistent with Python's `==` (not Python's own hash values: only grouping
    /// matters, since dict order is insertion order). Iterative: tuples and frozensets are
    /// immutable and only contain older objects, so the hashable part is a DAG.
    pub(crate) fn hash(&mut self, root: Id) -> EvalResult<u64> {
        // Sized lazily: most payloads never hash anything.
        if self.hashes.len() < self.nodes.len() {
            self.hashes.resize(self.nodes.len(), 0);
        }
        if self.hashes[root as usize] != 0 {
            return Ok(self.hashes[root as usize]);
        }
        let mut stack: Vec<(Id, bool)> = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            self.spend(1)?;
            if self.hashes[id as usize] != 0 {
                continue;
            }
            let h = match self.get(id) {
                Node::Tuple(items) if !expanded => {
                    let children = items.to_vec();
                    stack.push((id, true));
                    stack.extend(children.into_iter().rev().map(|c| (c, false)));
                    continue;
                }
                Node::FrozenSet(t) if !expanded => {
                    let children: Vec<Id> = t.entries.iter().map(|e| e.0).collect();
                    stack.push((id, true));
                    stack.extend(children.into_iter().rev().map(|c| (c, false)));
                    continue;
                }
                Node::Tuple(items) => {
                    let mut h: u64 = 0x7475_706c_6500 ^ items.len() as u64;
                    for &c in items.iter() {
                        h = mix(h ^ self.hashes[c as usize]);
                    }
                    h
                }
                Node::FrozenSet(t) => {
                    // Order-independent, as set equality is.
                    let mut h: u64 = 0x6672_6f7a_656e;
                    for &(c, _) in &t.entries {
                        h = h.wrapping_add(mix(self.hashes[c as usize]));
                    }
                    h
                }
                Node::None => 0x4e6f_6e65,
                Node::Bool(b) => hash_int(*b as i64),
                Node::Int(Int::Small(i)) => hash_int(*i),
                Node::Int(big @ Int::Big(_)) => match big.to_f64() {
                    Some(f) if big.eq_f64(f) => hash_f64(f),
                    _ => match big {
                        // Linear in the size, unlike a decimal rendering.
                        Int::Big(b) => {
                            let bytes: Vec<u8> =
                                b.mag.iter().flat_map(|l| l.to_le_bytes()).collect();
                            hash_bytes(0x62 ^ b.negative as u64, &bytes)
                        }
                        Int::Small(i) => hash_int(*i),
                    },
                },
                Node::Float(f) => hash_f64(*f),
                Node::Str(s) => hash_bytes(0x73, s),
                Node::Bytes(b) | Node::MemoryView(b) => hash_bytes(0x79, b),
                other => {
                    return Err(PyException::new(
                        ExcKind::TypeError,
                        format!("unhashable type: '{}'", other.type_name()),
                    ))
                }
            };
            self.hashes[id as usize] = h | 1;
        }
        Ok(self.hashes[root as usize])
    }

    fn py_eq_depth(&mut self, a: Id, b: Id, depth: u32) -> EvalResult<bool> {
        if a == b {
            return Ok(true);
        }
        self.spend(1)?;
        if depth > MAX_COMPARE_DEPTH {
            return Err(PyException::new(
                ExcKind::RecursionError,
                "maximum recursion depth exceeded in comparison",
            ));
        }
        let (na, nb) = (self.get(a), self.get(b));
        Ok(match (na, nb) {
            (Node::None, Node::None) => true,
            (Node::Str(x), Node::Str(y)) => x == y,
            (Node::Bytes(x) | Node::MemoryView(x), Node::Bytes(y) | Node::MemoryView(y)) => x == y,
            (Node::Tuple(x), Node::Tuple(y)) => {
                let n = x.len();
                if n != y.len() {
                    return Ok(false);
                }
                // Charged up front: identical elements short-circuit without recursing.
                self.spend(n as u64)?;
                for i in 0..n {
                    let (p, q) = match (self.get(a), self.get(b)) {
                        (Node::Tuple(x), Node::Tuple(y)) => (x[i], y[i]),
                        _ => return Ok(false),
                    };
                    if p != q && !self.py_eq_depth(p, q, depth + 1)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Node::FrozenSet(x), Node::FrozenSet(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                let items: Vec<Id> = x.entries.iter().map(|e| e.0).collect();
                self.spend(items.len() as u64)?;
                for item in items {
                    if self.table_find(b, item, depth + 1)?.is_none() {
                        return Ok(false);
                    }
                }
                true
            }
            _ => match (number(na), number(nb)) {
                (Some(x), Some(y)) => num_eq(&x, &y),
                _ => false,
            },
        })
    }

    /// Position of `key` in the table of `table_id`, if present.
    fn table_find(&mut self, table_id: Id, key: Id, depth: u32) -> EvalResult<Option<usize>> {
        let h = self.hash(key)?;
        let mut at = match self.table(table_id).and_then(|t| t.heads.get(&h)) {
            Some(&i) => i,
            None => return Ok(None),
        };
        while at != END {
            let (cand, next) = match self.table(table_id) {
                Some(t) => (t.entries[at as usize].0, t.next[at as usize]),
                None => return Ok(None),
            };
            if self.py_eq_depth(cand, key, depth)? {
                return Ok(Some(at as usize));
            }
            at = next;
        }
        Ok(None)
    }

    fn table(&self, id: Id) -> Option<&Table> {
        match self.get(id) {
            Node::Dict(t) | Node::Set(t) | Node::FrozenSet(t) => Some(t),
            _ => None,
        }
    }

    fn table_mut(&mut self, id: Id) -> Option<&mut Table> {
        match self.get_mut(id) {
            Node::Dict(t) | Node::Set(t) | Node::FrozenSet(t) => Some(t),
            _ => None,
        }
    }

    /// `d[key] = value` (sets pass `value == key`; an existing key keeps its object and
    /// position, and for dicts takes the new value).
    pub(crate) fn table_insert(&mut self, table_id: Id, key: Id, value: Id) -> EvalResult<()> {
        let h = self.hash(key)?;
        if let Some(pos) = self.table_find(table_id, key, 0)? {
            if let Some(Node::Dict(t)) = Some(self.get_mut(table_id)) {
                t.entries[pos].1 = value;
            }
            return Ok(());
        }
        if let Some(t) = self.table_mut(table_id) {
            let pos = t.entries.len() as u32;
            let head = t.heads.insert(h, pos).unwrap_or(END);
            t.entries.push((key, value));
            t.next.push(head);
        }
        Ok(())
    }

    /// `repr()` in the form of Python's `ascii()`: non-ASCII characters escaped, which lets
    /// tests compare with CPython without Unicode printability tables. `None` when deeper
    /// than `max_depth` (Python would raise `RecursionError`). Sets print in insertion order.
    pub fn ascii_repr(&self, id: Id, max_depth: usize) -> Option<String> {
        let mut out = String::new();
        let mut active = Vec::new();
        self.repr_into(id, &mut out, &mut active, max_depth)?;
        Some(out)
    }

    fn repr_into(
        &self,
        id: Id,
        out: &mut String,
        active: &mut Vec<Id>,
        depth: usize,
    ) -> Option<()> {
        if depth == 0 {
            return None;
        }
        let node = self.get(id);
        let container = matches!(
            node,
            Node::List(_) | Node::Tuple(_) | Node::Dict(_) | Node::Set(_) | Node::FrozenSet(_)
        );
        if container && active.contains(&id) {
            out.push_str(match node {
                Node::List(_) => "[...]",
                Node::Tuple(_) => "(...)",
                Node::Dict(_) => "{...}",
                Node::Set(_) => "set(...)",
                _ => "frozenset(...)",
            });
            return Some(());
        }
        active.push(id);
        match node {
            Node::None => out.push_str("None"),
            Node::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            Node::Int(i) => out.push_str(&i.to_decimal()),
            Node::Float(f) => out.push_str(&float_repr(*f)),
            Node::Str(s) => str_ascii(s, out),
            Node::Bytes(b) => bytes_repr(b, out),
            Node::ByteArray(b) => {
                out.push_str("bytearray(");
                bytes_repr(b, out);
                out.push(')');
            }
            Node::MemoryView(_) => out.push_str("<memory>"),
            Node::List(items) => self.seq_repr(items, "[", "]", out, active, depth)?,
            Node::Tuple(items) => {
                let close = if items.len() == 1 { ",)" } else { ")" };
                self.seq_repr(items, "(", close, out, active, depth)?
            }
            Node::Dict(t) => {
                out.push('{');
                for (i, &(k, v)) in t.entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.repr_into(k, out, active, depth - 1)?;
                    out.push_str(": ");
                    self.repr_into(v, out, active, depth - 1)?;
                }
                out.push('}');
            }
            Node::Set(t) | Node::FrozenSet(t) => {
                let frozen = matches!(node, Node::FrozenSet(_));
                let keys: Vec<Id> = t.entries.iter().map(|e| e.0).collect();
                match (frozen, keys.is_empty()) {
                    (false, true) => out.push_str("set()"),
                    (true, true) => out.push_str("frozenset()"),
                    (false, false) => self.seq_repr(&keys, "{", "}", out, active, depth)?,
                    (true, false) => {
                        self.seq_repr(&keys, "frozenset({", "})", out, active, depth)?
                    }
                }
            }
        }
        active.pop();
        Some(())
    }

    fn seq_repr(
        &self,
        items: &[Id],
        open: &str,
        close: &str,
        out: &mut String,
        active: &mut Vec<Id>,
        depth: usize,
    ) -> Option<()> {
        out.push_str(open);
        for (i, &c) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.repr_into(c, out, active, depth - 1)?;
        }
        out.push_str(close);
        Some(())
    }
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_int(i: i64) -> u64 {
    mix(i as u64 ^ 0x0069_6e74)
}

fn hash_f64(f: f64) -> u64 {
    if f.fract() == 0.0 && (i64::MIN as f64..-(i64::MIN as f64)).contains(&f) {
        return hash_int(f as i64);
    }
    if f.is_nan() {
        return 0x006e_616e;
    }
    mix(f.to_bits() ^ 0x0066_6c6f_6174)
}

fn hash_bytes(tag: u64, b: &[u8]) -> u64 {
    let mut h = mix(tag ^ b.len() as u64);
    for chunk in b.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(w));
    }
    h
}

/// A numeric view of bool/int/float, for cross-type `==`.
enum Num<'a> {
    Int(&'a Int),
    Small(i64),
    Float(f64),
}

fn number(n: &Node) -> Option<Num<'_>> {
    match n {
        Node::Bool(b) => Some(Num::Small(*b as i64)),
        Node::Int(Int::Small(i)) => Some(Num::Small(*i)),
        Node::Int(i) => Some(Num::Int(i)),
        Node::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

fn num_eq(a: &Num, b: &Num) -> bool {
    match (a, b) {
        (Num::Small(x), Num::Small(y)) => x == y,
        (Num::Float(x), Num::Float(y)) => x == y,
        (Num::Small(x), Num::Float(f)) | (Num::Float(f), Num::Small(x)) => {
            Int::Small(*x).eq_f64(*f)
        }
        (Num::Int(i), Num::Float(f)) | (Num::Float(f), Num::Int(i)) => i.eq_f64(*f),
        (Num::Int(x), Num::Int(y)) => x == y,
        // Big ints are never in i64 range, small ones always are.
        (Num::Int(_), Num::Small(_)) | (Num::Small(_), Num::Int(_)) => false,
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form outside [1e-4, 1e16).
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` gives the shortest round-trip digit count, but breaks exact ties upwards;
    // CPython picks the nearest (half-even) string of that length, which `{:.Ne}` computes.
    let shortest = format!("{:e}", f);
    let digit_count = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let sci = format!("{:.*e}", digit_count.saturating_sub(1), f);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.push_str(&"0".repeat(point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Code points of WTF-8 bytes (surrogates included).
pub(crate) fn code_points(s: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *s.get(i)?;
        let (len, init) = match b {
            0x00..=0x7f => (1, b as u32),
            0xc0..=0xdf => (2, (b & 0x1f) as u32),
            0xe0..=0xef => (3, (b & 0x0f) as u32),
            _ => (4, (b & 0x07) as u32),
        };
        let mut cp = init;
        for k in 1..len {
            cp = cp << 6 | (s.get(i + k).copied().unwrap_or(0x80) & 0x3f) as u32;
        }
        i += len;
        Some(cp)
    })
}

fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn str_ascii(s: &[u8], out: &mut String) {
    let q = quote_for(s.contains(&b'\''), s.contains(&b'"'));
    out.push(q);
    for cp in code_points(s) {
        match cp {
            0x5c => out.push_str("\\\\"),
            0x09 => out.push_str("\\t"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            c if c == q as u32 => {
                out.push('\\');
                out.push(q);
            }
            0x20..=0x7e => out.push(cp as u8 as char),
            c if c < 0x100 => {
                let _ = write!(out, "\\x{c:02x}");
            }
            c if c < 0x10000 => {
                let _ = write!(out, "\\u{c:04x}");
            }
            c => {
                let _ = write!(out, "\\U{c:08x}");
            }
        }
    }
    out.push(q);
}

fn bytes_repr(b: &[u8], out: &mut String) {
    let q = quote_for(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(q);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c as char == q => {
                out.push('\\');
                out.push(q);
            }
            0x20..=0x7e => out.push(c as char),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(q);
}
