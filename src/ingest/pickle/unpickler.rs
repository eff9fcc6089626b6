//! The opcode machine: what carbon's `SafeUnpickler` (CPython 3.11's C `_pickle.Unpickler`
//! with an overridden `find_class`, reading from a `BytesIO`) does with a frame's payload.
//!
//! On Python 3 carbon's allow-list names only Python 2 modules (`copy_reg`, `__builtin__`),
//! whose import fails, so no global ever loads: only pure data can be built, and every opcode
//! that could reach code either fails in `find_class` or fails on the data objects it is
//! handed (`REDUCE` on a tuple: "'tuple' object is not callable"). Carbide never executes
//! anything; it reproduces which exception CPython raises, because the exception type decides
//! whether carbon ignores the frame or drops the connection.
//!
//! Resource use is linear in the payload: each opcode byte creates at most one object or
//! one container slot, lengths are checked against the bytes actually present before
//! anything is allocated, the memo is a hash map (CPython's is a dense array indexed by the
//! untrusted memo key), and nothing recurses on the nesting depth.

use std::collections::HashMap;

use super::bigint::Int;
use super::text;
use super::value::{Arena, Id, Node, FALSE, NONE, TRUE};
use super::{ExcKind, Limits, PyException};

/// Allocations CPython would attempt for a length field (bytes preallocation, memo array)
/// that are at least this large fail with `MemoryError` on any realistic host; smaller ones
/// succeed in CPython and then hit the end of the data. The exact threshold is the host's
/// memory, so this is the one place where Carbide picks a value instead of copying one.
const PY_ALLOC_FAILS: u64 = 1 << 35;

const ISIZE_MAX: u64 = i64::MAX as u64;

fn unpickling(msg: impl Into<String>) -> PyException {
    PyException::new(ExcKind::UnpicklingError, msg)
}

fn truncated() -> PyException {
    unpickling("pickle data was truncated")
}

/// CPython's reads from a `BytesIO`: exact-size `read(n)` calls, except that a `FRAME`
/// prefetches its whole length into a buffer. A read that does not fit in what is left of
/// that buffer discards the rest of it and reads afresh from the file — a CPython quirk that
/// only matters for hand-made pickles whose opcodes straddle frame boundaries.
struct Input<'a> {
    data: &'a [u8],
    file_pos: usize,
    buf_start: usize,
    buf_end: usize,
    cur: usize,
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input {
            data,
            file_pos: 0,
            buf_start: 0,
            buf_end: 0,
            cur: 0,
        }
    }

    fn read(&mut self, n: u64) -> Result<&'a [u8], PyException> {
        if n <= (self.buf_end - self.cur) as u64 {
            let s = &self.data[self.cur..self.cur + n as usize];
            self.cur += n as usize;
            return Ok(s);
        }
        if (self.cur - self.buf_start) as u64 > ISIZE_MAX - n {
            return Err(unpickling("read would overflow (invalid bytecode)"));
        }
        let avail = ((self.data.len() - self.file_pos) as u64).min(n) as usize;
        self.buf_start = self.file_pos;
        self.buf_end = self.file_pos + avail;
        self.file_pos += avail;
        self.cur = self.buf_start;
        if (avail as u64) < n {
            return Err(truncated());
        }
        self.cur = self.buf_end;
        Ok(&self.data[self.buf_start..self.buf_end])
    }

    /// A line including its `\n`.
    fn readline(&mut self) -> Result<&'a [u8], PyException> {
        let buffered = &self.data[self.cur..self.buf_end];
        if let Some(n) = buffered.iter().position(|&b| b == b'\n') {
            self.cur += n + 1;
            return Ok(&buffered[..=n]);
        }
        let rest = &self.data[self.file_pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |n| n + 1);
        self.buf_start = self.file_pos;
        self.buf_end = self.file_pos + len;
        self.file_pos += len;
        self.cur = self.buf_end;
        if len == 0 || rest[len - 1] != b'\n' {
            return Err(truncated());
        }
        Ok(&rest[..len])
    }

    /// `readinto`, used for bytes payloads: takes the buffered rest first, then the file.
    fn read_into(&mut self, n: u64) -> Result<Vec<u8>, PyException> {
        let from_buf = ((self.buf_end - self.cur) as u64).min(n) as usize;
        let need = n - from_buf as u64;
        let avail = (self.data.len() - self.file_pos) as u64;
        if need > avail {
            self.cur = self.buf_end;
            self.file_pos = self.data.len();
            return Err(truncated());
        }
        let mut out = Vec::with_capacity(n as usize);
        out.extend_from_slice(&self.data[self.cur..self.cur + from_buf]);
        self.cur = if need > 0 {
            self.buf_end
        } else {
            self.cur + from_buf
        };
        out.extend_from_slice(&self.data[self.file_pos..self.file_pos + need as usize]);
        self.file_pos += need as usize;
        Ok(out)
    }

    fn frame(&mut self, n: u64) -> Result<(), PyException> {
        self.read(n)?;
        self.cur -= n as usize;
        Ok(())
    }
}

/// The memo: picklers number entries 0, 1, 2…, so indices below the payload length (which
/// bounds the entry count) live in a dense vector; anything else, only possible in a
/// hand-made pickle, goes to a map instead of sizing an array by an untrusted number.
struct Memo {
    dense: Vec<Id>,
    dense_limit: u64,
    sparse: HashMap<u64, Id>,
    len: usize,
}

const VACANT: Id = Id::MAX;

impl Memo {
    fn new(payload_len: usize) -> Self {
        Memo {
            dense: Vec::new(),
            dense_limit: payload_len as u64,
            sparse: HashMap::new(),
            len: 0,
        }
    }

    fn get(&self, idx: u64) -> Option<Id> {
        if idx < self.dense_limit {
            self.dense
                .get(idx as usize)
                .copied()
                .filter(|&id| id != VACANT)
        } else {
            self.sparse.get(&idx).copied()
        }
    }

    fn insert(&mut self, idx: u64, id: Id) {
        let fresh = if idx < self.dense_limit {
            let i = idx as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, VACANT);
            }
            std::mem::replace(&mut self.dense[i], id) == VACANT
        } else {
            self.sparse.insert(idx, id).is_none()
        };
        self.len += fresh as usize;
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// A finished load: the arena and the id of the returned object.
pub struct Loaded {
    pub arena: Arena,
    pub root: Id,
}

struct Machine<'a> {
    input: Input<'a>,
    arena: Arena,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: Memo,
    limits: &'a Limits,
    /// Container slots filled so far; bounds memory with the object count.
    slots: usize,
}

fn le_u64(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| acc << 8 | x as u64)
}

/// Loads one pickle from `payload` as carbon's `SafeUnpickler.loads` would.
pub fn load(payload: &[u8], limits: &Limits) -> Result<Loaded, PyException> {
    let mut m = Machine {
        input: Input::new(payload),
        // A realistic batch has an object every 8-10 bytes; reserving avoids regrowth.
        arena: Arena::new(limits.max_work, (payload.len() / 8).min(limits.max_objects)),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::new(payload.len()),
        limits,
        slots: 0,
    };
    let root = m.run()?;
    Ok(Loaded {
        arena: m.arena,
        root,
    })
}

impl<'a> Machine<'a> {
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn underflow(&self) -> PyException {
        unpickling(if self.marks.is_empty() {
            "unpickling stack underflow"
        } else {
            "unexpected MARK found"
        })
    }

    fn new_node(&mut self, node: Node) -> Result<Id, PyException> {
        if self.arena.len() >= self.limits.max_objects {
            return Err(PyException::limit("object count"));
        }
        Ok(self.arena.push(node))
    }

    fn push(&mut self, id: Id) -> Result<(), PyException> {
        // The stack only grows by one per opcode byte, so it is bounded by the payload.
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, node: Node) -> Result<(), PyException> {
        let id = self.new_node(node)?;
        self.push(id)
    }

    fn pop(&mut self) -> Result<Id, PyException> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<Id, PyException> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    fn marker(&mut self) -> Result<usize, PyException> {
        self.marks
            .pop()
            .ok_or_else(|| unpickling("could not find MARK"))
    }

    fn add_slots(&mut self, n: usize) -> Result<(), PyException> {
        self.slots += n;
        if self.slots > self.limits.max_slots {
            return Err(PyException::limit("container size"));
        }
        Ok(())
    }

    fn pop_from(&mut self, start: usize) -> Result<Vec<Id>, PyException> {
        if start < self.fence() {
            return Err(self.underflow());
        }
        let items = self.stack.split_off(start.min(self.stack.len()));
        self.add_slots(items.len())?;
        Ok(items)
    }

    fn memo_put(&mut self, idx: u64, value: Id) -> Result<(), PyException> {
        if self.memo.get(idx).is_none() {
            if idx.saturating_mul(16) >= PY_ALLOC_FAILS {
                return Err(PyException::new(ExcKind::MemoryError, ""));
            }
            if self.memo.len() >= self.limits.max_memo {
                return Err(PyException::limit("memo size"));
            }
        }
        self.memo.insert(idx, value);
        Ok(())
    }

    fn memo_get(&mut self, idx: u64, shown: i64) -> Result<(), PyException> {
        match self.memo.get(idx) {
            Some(id) => self.push(id),
            None => Err(unpickling(format!("Memo value not found at index {shown}"))),
        }
    }

    /// A text line without its `\n`, refusing CPython's too-short lines.
    fn text_arg(&mut self) -> Result<&'a [u8], PyException> {
        let line = self.input.readline()?;
        if line.len() < 2 {
            return Err(truncated());
        }
        Ok(line)
    }

    fn str_node(&mut self, bytes: Vec<u8>) -> Result<(), PyException> {
        self.push_new(Node::Str(bytes.into_boxed_slice()))
    }

    fn counted(&mut self, width: usize) -> Result<u64, PyException> {
        Ok(le_u64(self.input.read(width as u64)?))
    }

    /// CPython's `calc_binsize` plus the preallocation of `bytes` objects.
    fn bytes_len(&mut self, width: usize, what: &str) -> Result<u64, PyException> {
        let n = self.counted(width)?;
        if n > ISIZE_MAX {
            return Err(PyException::new(
                ExcKind::OverflowError,
                format!("{what} exceeds system's maximum size of {ISIZE_MAX} bytes"),
            ));
        }
        if n >= PY_ALLOC_FAILS {
            return Err(PyException::new(ExcKind::MemoryError, ""));
        }
        Ok(n)
    }

    fn run(&mut self) -> Result<Id, PyException> {
        loop {
            let op = match self.input.read(1) {
                Ok(b) => b[0],
                Err(_) => return Err(PyException::new(ExcKind::EOFError, "Ran out of input")),
            };
            match op {
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= self.limits.max_marks {
                        return Err(PyException::limit("MARK nesting"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    let m = self.marker()?;
                    self.stack.truncate(m);
                }
                b'2' => {
                    let t = self.top()?;
                    self.push(t)?;
                }
                b'N' => self.push(NONE)?,
                0x88 => self.push(TRUE)?,
                0x89 => self.push(FALSE)?,
                b'I' => self.load_int()?,
                b'J' => {
                    let b = self.input.read(4)?;
                    let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.push_new(Node::Int(Int::Small(v as i64)))?;
                }
                b'K' => {
                    let v = self.counted(1)?;
                    self.push_new(Node::Int(Int::Small(v as i64)))?;
                }
                b'M' => {
                    let v = self.counted(2)?;
                    self.push_new(Node::Int(Int::Small(v as i64)))?;
                }
                b'L' => {
                    let line = self.text_arg()?;
                    let mut s = text::c_str(line);
                    if line.len() >= 2 && line[line.len() - 2] == b'L' && s.len() >= line.len() - 2
                    {
                        s = &line[..line.len() - 2];
                    }
                    let v = text::py_long(s, 0)?;
                    self.push_new(Node::Int(v))?;
                }
                0x8a => {
                    let n = self.counted(1)?;
                    let b = self.input.read(n)?;
                    self.push_new(Node::Int(Int::from_le_twos(b)))?;
                }
                0x8b => {
                    let b = self.input.read(4)?;
                    let n = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    if n < 0 {
                        return Err(unpickling("LONG pickle has negative byte count"));
                    }
                    let b = self.input.read(n as u64)?;
                    self.push_new(Node::Int(Int::from_le_twos(b)))?;
                }
                b'F' => {
                    let line = self.text_arg()?;
                    let s = text::c_str(line);
                    let (v, end) = text::float_prefix(s)?;
                    if end < s.len() && s[end] != b'\n' {
                        return Err(PyException::new(
                            ExcKind::ValueError,
                            "could not convert string to float",
                        ));
                    }
                    self.push_new(Node::Float(v))?;
                }
                b'G' => {
                    let b = self.input.read(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.push_new(Node::Float(v))?;
                }
                b'S' => {
                    let line = self.input.readline()?;
                    let body = &line[..line.len() - 1];
                    let n = body.len();
                    if n < 2 || body[0] != body[n - 1] || !(body[0] == b'\'' || body[0] == b'"') {
                        return Err(unpickling("the STRING opcode argument must be quoted"));
                    }
                    let bytes = text::bytes_escape_decode(&body[1..n - 1])?;
                    text::check_utf8(&bytes, false)?;
                    self.str_node(bytes)?;
                }
                b'T' | b'U' => {
                    let n = self.counted(if op == b'T' { 4 } else { 1 })?;
                    let b = self.input.read(n)?;
                    text::check_utf8(b, false)?;
                    self.str_node(b.to_vec())?;
                }
                b'V' => {
                    let line = self.input.readline()?;
                    let s = text::raw_unicode_escape_decode(&line[..line.len() - 1])?;
                    self.str_node(s)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let width = match op {
                        b'X' => 4,
                        0x8c => 1,
                        _ => 8,
                    };
                    let n = self.counted(width)?;
                    if n > ISIZE_MAX {
                        return Err(PyException::new(
                            ExcKind::OverflowError,
                            format!(
                                "BINUNICODE exceeds system's maximum size of {ISIZE_MAX} bytes"
                            ),
                        ));
                    }
                    let b = self.input.read(n)?;
                    text::check_utf8(b, true)?;
                    self.str_node(b.to_vec())?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let width = match op {
                        b'B' => 4,
                        b'C' => 1,
                        _ => 8,
                    };
                    let what = if op == 0x96 { "BYTEARRAY8" } else { "BINBYTES" };
                    let n = self.bytes_len(width, what)?;
                    let b = self.input.read_into(n)?;
                    if op == 0x96 {
                        self.push_new(Node::ByteArray(b))?;
                    } else {
                        self.push_new(Node::Bytes(b.into_boxed_slice()))?;
                    }
                }
                0x97 => return Err(unpickling(
                    "pickle stream refers to out-of-band data but no *buffers* argument was given",
                )),
                0x98 => {
                    let t = self.top()?;
                    let view = match self.arena.get(t) {
                        Node::Bytes(_) | Node::MemoryView(_) => None,
                        Node::ByteArray(b) => Some(b.clone().into_boxed_slice()),
                        other => {
                            return Err(PyException::new(
                                ExcKind::TypeError,
                                format!(
                                    "memoryview: a bytes-like object is required, not '{}'",
                                    other.type_name()
                                ),
                            ))
                        }
                    };
                    if let Some(v) = view {
                        let id = self.new_node(Node::MemoryView(v))?;
                        if let Some(slot) = self.stack.last_mut() {
                            *slot = id;
                        }
                    }
                }
                b')' => self.push_new(Node::Tuple(Box::new([])))?,
                b']' => self.push_new(Node::List(Vec::new()))?,
                b'}' => self.push_new(Node::Dict(Box::default()))?,
                0x8f => self.push_new(Node::Set(Box::default()))?,
                b't' => {
                    let m = self.marker()?;
                    let items = self.pop_from(m)?;
                    self.push_new(Node::Tuple(items.into_boxed_slice()))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.underflow());
                    }
                    let items = self.pop_from(self.stack.len() - n)?;
                    self.push_new(Node::Tuple(items.into_boxed_slice()))?;
                }
                b'l' => {
                    let m = self.marker()?;
                    let items = self.pop_from(m)?;
                    self.push_new(Node::List(items))?;
                }
                b'd' => {
                    let m = self.marker()?;
                    if !(self.stack.len() - m.min(self.stack.len())).is_multiple_of(2) {
                        return Err(unpickling("odd number of items for DICT"));
                    }
                    let items = self.pop_from(m)?;
                    let d = self.new_node(Node::Dict(Box::default()))?;
                    for pair in items.chunks(2) {
                        self.arena.table_insert(d, pair[0], pair[1])?;
                    }
                    self.push(d)?;
                }
                0x91 => {
                    let m = self.marker()?;
                    let items = self.pop_from(m)?;
                    let s = self.new_node(Node::FrozenSet(Box::default()))?;
                    for k in items {
                        self.arena.table_insert(s, k, k)?;
                    }
                    self.push(s)?;
                }
                b'a' => {
                    let x = self.stack.len().wrapping_sub(1);
                    self.do_append(x)?;
                }
                b'e' => {
                    let m = self.marker()?;
                    self.do_append(m)?;
                }
                b's' => {
                    let x = self.stack.len().wrapping_sub(2);
                    self.do_setitems(x)?;
                }
                b'u' => {
                    let m = self.marker()?;
                    self.do_setitems(m)?;
                }
                0x90 => self.load_additems()?,
                b'g' => {
                    let line = self.text_arg()?;
                    let idx = self.text_index(line)?;
                    self.memo_get(idx as u64, idx)?;
                }
                b'h' => {
                    let i = self.counted(1)?;
                    self.memo_get(i, i as i64)?;
                }
                b'j' => {
                    let i = self.counted(4)?;
                    self.memo_get(i, i as i64)?;
                }
                b'p' => {
                    let line = self.text_arg()?;
                    let v = self.top()?;
                    let idx = self.text_index(line)?;
                    if idx < 0 {
                        return Err(PyException::new(
                            ExcKind::ValueError,
                            "negative PUT argument",
                        ));
                    }
                    self.memo_put(idx as u64, v)?;
                }
                b'q' | b'r' => {
                    let i = self.counted(if op == b'q' { 1 } else { 4 })?;
                    let v = self.top()?;
                    self.memo_put(i, v)?;
                }
                0x94 => {
                    let v = self.top()?;
                    let idx = self.memo.len() as u64;
                    self.memo_put(idx, v)?;
                }
                0x80 => {
                    let p = self.counted(1)?;
                    if p > 5 {
                        return Err(PyException::new(
                            ExcKind::ValueError,
                            format!("unsupported pickle protocol: {p}"),
                        ));
                    }
                }
                0x95 => {
                    let n = self.counted(8)?;
                    if n > ISIZE_MAX {
                        return Err(PyException::new(
                            ExcKind::OverflowError,
                            format!("FRAME length exceeds system's maximum of {ISIZE_MAX} bytes"),
                        ));
                    }
                    self.input.frame(n)?;
                }
                b'c' => {
                    let module = self.text_arg()?;
                    let module = &module[..module.len() - 1];
                    text::check_utf8(module, false)?;
                    let name = self.text_arg()?;
                    text::check_utf8(&name[..name.len() - 1], false)?;
                    return Err(find_class(module));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.arena.get(module), self.arena.get(name)) {
                        (Node::Str(m), Node::Str(_)) => return Err(find_class(m)),
                        _ => return Err(unpickling("STACK_GLOBAL requires str")),
                    }
                }
                b'i' => {
                    self.marker()?;
                    let module = self.text_arg()?;
                    let module = &module[..module.len() - 1];
                    text::check_ascii(module)?;
                    let name = self.text_arg()?;
                    text::check_ascii(&name[..name.len() - 1])?;
                    return Err(find_class(module));
                }
                b'o' => {
                    let m = self.marker()?;
                    if self.stack.len() < m + 1 {
                        return Err(self.underflow());
                    }
                    let args = self.pop_from(m + 1)?;
                    let cls = self.pop()?;
                    let _ = args;
                    return Err(not_callable(self.arena.type_name(cls)));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    if !matches!(self.arena.get(args), Node::Tuple(_)) {
                        return Err(PyException::new(
                            ExcKind::TypeError,
                            "argument list must be a tuple",
                        ));
                    }
                    return Err(not_callable(self.arena.type_name(callable)));
                }
                b'b' => self.load_build()?,
                0x81 | 0x92 => {
                    let name = if op == 0x81 { "NEWOBJ" } else { "NEWOBJ_EX" };
                    if op == 0x92 {
                        self.pop()?;
                    }
                    self.pop()?;
                    let cls = self.pop()?;
                    return Err(unpickling(format!(
                        "{name} class argument must be a type, not {}",
                        self.arena.type_name(cls)
                    )));
                }
                0x82..=0x84 => {
                    let width = [1, 2, 4][(op - 0x82) as usize];
                    let b = self.input.read(width)?;
                    let code = match width {
                        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
                        _ => le_u64(b) as i64,
                    };
                    if code <= 0 {
                        return Err(unpickling("EXT specifies code <= 0"));
                    }
                    return Err(PyException::new(
                        ExcKind::ValueError,
                        format!("unregistered extension code {code}"),
                    ));
                }
                b'P' | b'Q' => {
                    return Err(unpickling(
                        "A load persistent id instruction was encountered,\n\
                         but no persistent_load function was specified.",
                    ))
                }
                other => {
                    return Err(unpickling(
                        if (0x20..=0x7e).contains(&other) && other != b'\'' && other != b'\\' {
                            format!("invalid load key, '{}'.", other as char)
                        } else {
                            format!("invalid load key, '\\x{other:02x}'.")
                        },
                    ))
                }
            }
        }
    }

    /// `I`: `strtol` first (a 2-character `0`/`1` is a bool, protocol 0's `I00`/`I01`),
    /// then `PyLong_FromString` for anything longer or odder.
    fn load_int(&mut self) -> Result<(), PyException> {
        let line = self.text_arg()?;
        let s = text::c_str(line);
        let (v, end) = text::c_strtol(s);
        let clean = end > 0 && (end == s.len() || s[end] == b'\n');
        match v {
            Some(x) if clean => {
                if line.len() == 3 && (x == 0 || x == 1) {
                    return self.push(if x == 1 { TRUE } else { FALSE });
                }
                self.push_new(Node::Int(Int::Small(x)))
            }
            _ => match text::py_long(s, 0) {
                Ok(v) => self.push_new(Node::Int(v)),
                Err(_) => Err(PyException::new(
                    ExcKind::ValueError,
                    "could not convert string to int",
                )),
            },
        }
    }

    /// The decimal index of protocol-0 `g`/`p` (`PyLong_FromString(s, NULL, 10)` then
    /// `PyLong_AsSsize_t`).
    fn text_index(&mut self, line: &[u8]) -> Result<i64, PyException> {
        match text::py_long(text::c_str(line), 10)? {
            Int::Small(i) => Ok(i),
            Int::Big(_) => Err(PyException::new(
                ExcKind::OverflowError,
                "Python int too large to convert to C ssize_t",
            )),
        }
    }

    fn do_append(&mut self, x: usize) -> Result<(), PyException> {
        let len = self.stack.len();
        if x > len || x <= self.fence() {
            return Err(self.underflow());
        }
        if x == len {
            return Ok(());
        }
        let target = self.stack[x - 1];
        match self.arena.get(target) {
            Node::List(_) => {
                let items = self.pop_from(x)?;
                if let Node::List(l) = self.arena.get_mut(target) {
                    l.extend(items);
                }
                Ok(())
            }
            Node::ByteArray(_) => {
                let items = self.pop_from(x)?;
                let mut bytes = Vec::with_capacity(items.len());
                for it in items {
                    bytes.push(self.as_byte(it)?);
                }
                if let Node::ByteArray(b) = self.arena.get_mut(target) {
                    b.extend(bytes);
                }
                Ok(())
            }
            other => Err(no_attribute(other.type_name(), "append")),
        }
    }

    /// A bytearray element: `int` in 0..256.
    fn as_byte(&self, id: Id) -> Result<u8, PyException> {
        match self.arena.get(id) {
            Node::Bool(b) => Ok(*b as u8),
            Node::Int(Int::Small(i)) if (0..256).contains(i) => Ok(*i as u8),
            Node::Int(_) => Err(PyException::new(
                ExcKind::ValueError,
                "byte must be in range(0, 256)",
            )),
            other => Err(PyException::new(
                ExcKind::TypeError,
                format!(
                    "'{}' object cannot be interpreted as an integer",
                    other.type_name()
                ),
            )),
        }
    }

    fn do_setitems(&mut self, x: usize) -> Result<(), PyException> {
        let len = self.stack.len();
        if x > len || x <= self.fence() {
            return Err(self.underflow());
        }
        if x == len {
            return Ok(());
        }
        if !(len - x).is_multiple_of(2) {
            return Err(unpickling("odd number of items for SETITEMS"));
        }
        let target = self.stack[x - 1];
        let items = self.pop_from(x)?;
        for pair in items.chunks(2) {
            self.setitem(target, pair[0], pair[1])?;
        }
        Ok(())
    }

    /// `target[key] = value` for the pure-data types.
    fn setitem(&mut self, target: Id, key: Id, value: Id) -> Result<(), PyException> {
        let index = |arena: &Arena, what: &str| -> Result<Option<i64>, PyException> {
            match arena.get(key) {
                Node::Bool(b) => Ok(Some(*b as i64)),
                Node::Int(Int::Small(i)) => Ok(Some(*i)),
                Node::Int(_) => Err(PyException::new(
                    ExcKind::IndexError,
                    "cannot fit 'int' into an index-sized integer",
                )),
                other => Err(PyException::new(
                    ExcKind::TypeError,
                    format!(
                        "{what} indices must be integers or slices, not {}",
                        other.type_name()
                    ),
                )),
            }
        };
        let resolve = |i: i64, len: usize| -> Option<usize> {
            let i = if i < 0 { i + len as i64 } else { i };
            (0..len as i64).contains(&i).then_some(i as usize)
        };
        match self.arena.get(target) {
            Node::Dict(_) => self.arena.table_insert(target, key, value),
            Node::List(l) => {
                let len = l.len();
                let i = index(&self.arena, "list")?.unwrap_or(0);
                let at = resolve(i, len).ok_or_else(|| {
                    PyException::new(ExcKind::IndexError, "list assignment index out of range")
                })?;
                if let Node::List(l) = self.arena.get_mut(target) {
                    l[at] = value;
                }
                Ok(())
            }
            Node::ByteArray(b) => {
                let len = b.len();
                let i = index(&self.arena, "bytearray")?.unwrap_or(0);
                let byte = self.as_byte(value)?;
                let at = resolve(i, len).ok_or_else(|| {
                    PyException::new(ExcKind::IndexError, "bytearray index out of range")
                })?;
                if let Node::ByteArray(b) = self.arena.get_mut(target) {
                    b[at] = byte;
                }
                Ok(())
            }
            Node::MemoryView(_) => Err(PyException::new(
                ExcKind::TypeError,
                "cannot modify read-only memory",
            )),
            other => Err(PyException::new(
                ExcKind::TypeError,
                format!(
                    "'{}' object does not support item assignment",
                    other.type_name()
                ),
            )),
        }
    }

    fn load_additems(&mut self) -> Result<(), PyException> {
        let m = self.marker()?;
        let len = self.stack.len();
        if m > len || m <= self.fence() {
            return Err(self.underflow());
        }
        if m == len {
            return Ok(());
        }
        let target = self.stack[m - 1];
        match self.arena.get(target) {
            Node::Set(_) => {
                let items = self.pop_from(m)?;
                for k in items {
                    self.arena.table_insert(target, k, k)?;
                }
                Ok(())
            }
            other => Err(no_attribute(other.type_name(), "add")),
        }
    }

    /// `BUILD` on a pure-data object: none has `__setstate__` or a `__dict__`, so only the
    /// no-op states (None, or an empty slot-state dict) succeed.
    fn load_build(&mut self) -> Result<(), PyException> {
        if self.stack.len() < 2 || self.stack.len() - 2 < self.fence() {
            return Err(self.underflow());
        }
        let mut state = self.pop()?;
        let inst = self.top()?;
        let mut slotstate = None;
        if let Node::Tuple(t) = self.arena.get(state) {
            if t.len() == 2 {
                slotstate = Some(t[1]);
                state = t[0];
            }
        }
        let inst_type = self.arena.type_name(inst);
        if state != NONE {
            if !matches!(self.arena.get(state), Node::Dict(_)) {
                return Err(unpickling("state is not a dictionary"));
            }
            return Err(no_attribute(inst_type, "__dict__"));
        }
        if let Some(s) = slotstate.filter(|&s| s != NONE) {
            match self.arena.get(s) {
                Node::Dict(t) => {
                    if let Some(&(k, _)) = t.entries.first() {
                        return Err(match self.arena.get(k) {
                            Node::Str(name) => {
                                no_attribute(inst_type, &String::from_utf8_lossy(name))
                            }
                            other => PyException::new(
                                ExcKind::TypeError,
                                format!(
                                    "attribute name must be string, not '{}'",
                                    other.type_name()
                                ),
                            ),
                        });
                    }
                }
                _ => return Err(unpickling("slot state is not a dictionary")),
            }
        }
        Ok(())
    }
}

/// carbon's `find_class` on Python 3: its two allowed modules are Python 2 names that do not
/// import, and everything else is refused by name.
fn find_class(module: &[u8]) -> PyException {
    match module {
        b"copy_reg" | b"__builtin__" => PyException::new(
            ExcKind::ModuleNotFoundError,
            format!("No module named '{}'", String::from_utf8_lossy(module)),
        ),
        _ => unpickling(format!(
            "Attempting to unpickle unsafe module {}",
            String::from_utf8_lossy(module)
        )),
    }
}

fn not_callable(type_name: &str) -> PyException {
    PyException::new(
        ExcKind::TypeError,
        format!("'{type_name}' object is not callable"),
    )
}

fn no_attribute(type_name: &str, attr: &str) -> PyException {
    PyException::new(
        ExcKind::AttributeError,
        format!("'{type_name}' object has no attribute '{attr}'"),
    )
}
