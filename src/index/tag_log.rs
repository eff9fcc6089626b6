//! The tag index's persistence: an append-only log of the tagged series registered and
//! deleted, so that `/tags` and `seriesByTag` know them again after a restart. carbon's
//! default file names are SHA-256 hashes of the series name, which cannot be turned back into
//! names, and graphite-web keeps its TagDB in SQL; Carbide keeps this log instead.
//!
//! # Where
//! `<data_dir>/tags/series.log`, beside (not inside) the whisper tree `<data_dir>/whisper`,
//! so neither graphite-web's finder nor go-carbon ever sees it as a metric. During compaction
//! a `series.log.tmp` exists next to it for a moment.
//!
//! # Format
//! UTF-8 text, one record a line, so a damaged line never costs more than itself. The first
//! line is [`HEADER`]. Every record line is `<crc> <op> <fields>`, `<crc>` the CRC-32
//! (crc32fast, IEEE) of the bytes after the first space, as 8 lowercase hex digits. In
//! names, `\` is written `\\`, a line feed `\n` and a carriage return `\r`.
//!
//! - `A <name>`: a series registered, spelled as it was given (the order of its tags fixes
//!   the ids graphite-web's tables would give new tags and values).
//! - `D <canonical name>`: a series deleted (`/tags/delSeries`).
//! - `T <id> <tag>`, `V <id> <value>`, `C <tag counter> <value counter>`, `S <canonical>`:
//!   a snapshot written by compaction: every tag name and value ever seen with its id (deleting
//!   a series forgets neither, as in graphite-web), the id counters, then the live series.
//!
//! On open the log is replayed; a line that fails its checksum or does not parse is skipped
//! with a log line, and an unterminated last line (a write torn by a crash) is cut off so
//! that the next append starts on a fresh line. When the dead records (duplicates, deleted
//! series, deletions, damaged lines) number at least `compact_min_dead` (10,000) and more
//! than half the live series, the log is rewritten as a snapshot: a new file, fsync, rename,
//! fsync of the directory.
//!
//! # Writing
//! Appends go to a memory buffer; a background thread writes and fsyncs it every
//! `flush_interval` or as soon as it holds `flush_bytes`, and [`TagLog::close`] writes the
//! rest at shutdown, so a burst of a million new series costs a few dozen large writes, not a
//! million fsyncs. A crash loses at most the last interval's registrations; a lost series
//! whose points were still in the write-ahead log is registered again when they are replayed.
//!
//! When the log cannot be written (a full disk), the records stay in memory, the index keeps
//! answering from memory, the write is retried every interval and the failure is logged at
//! most once a minute. A failed write is undone by truncating the file back to its last good
//! length; if even that fails, the retry starts with a line feed so the torn line is only a
//! damaged line to skip on replay.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The directory under the data directory that holds the log.
pub const LOG_DIR: &str = "tags";

/// The log's file name.
pub const LOG_FILE: &str = "series.log";

/// The first line of every log (format version 1).
pub const HEADER: &str = "# carbide tag series log v1";

/// How often a failing log is reported.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// How many damaged lines are reported one by one on replay before only counting them.
const REPORT_DAMAGED: usize = 10;

/// One line of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A series registered, as spelled when registered.
    Add(&'a str),
    /// A series deleted (canonical name).
    Del(&'a str),
    /// Snapshot: a tag name and its public id.
    Tag { id: u32, name: &'a str },
    /// Snapshot: a value and its public id.
    Value { id: u32, name: &'a str },
    /// Snapshot: the id counters of the tag and value tables.
    Counters { tags: u32, values: u32 },
    /// Snapshot: a live series (canonical name); its tags and values are already known.
    Series(&'a str),
}

/// Write and compaction settings.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// The longest a registration waits in memory before it is written and fsynced.
    pub flush_interval: Duration,
    /// Buffered bytes that wake the writer before the interval is over.
    pub flush_bytes: usize,
    /// Compaction on open needs at least this many dead records (and more dead than half the
    /// live series).
    pub compact_min_dead: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            flush_interval: Duration::from_secs(1),
            flush_bytes: 1 << 20,
            compact_min_dead: 10_000,
        }
    }
}

/// What a replay read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Whether the file existed.
    pub existed: bool,
    /// Records that passed their checksum and parsed.
    pub records: usize,
    /// Complete lines skipped: bad checksum or unparsable.
    pub damaged: usize,
    /// Bytes of an unterminated last line (a torn write), 0 if none.
    pub torn_bytes: u64,
    /// The length up to the end of the last complete line (what appends continue from).
    pub good_len: u64,
}

/// Encodes one record as a line, appended to `out`.
pub fn encode(rec: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"00000000 ");
    let body = out.len();
    match *rec {
        Record::Add(n) => {
            out.extend_from_slice(b"A ");
            escape(n, out);
        }
        Record::Del(n) => {
            out.extend_from_slice(b"D ");
            escape(n, out);
        }
        Record::Tag { id, name } => {
            out.extend_from_slice(format!("T {id} ").as_bytes());
            escape(name, out);
        }
        Record::Value { id, name } => {
            out.extend_from_slice(format!("V {id} ").as_bytes());
            escape(name, out);
        }
        Record::Counters { tags, values } => {
            out.extend_from_slice(format!("C {tags} {values}").as_bytes());
        }
        Record::Series(n) => {
            out.extend_from_slice(b"S ");
            escape(n, out);
        }
    }
    let crc = crc32fast::hash(out.get(body..).unwrap_or_default());
    let hex = format!("{crc:08x}");
    if let Some(slot) = out.get_mut(start..start + 8) {
        slot.copy_from_slice(hex.as_bytes());
    }
    out.push(b'\n');
}

fn escape(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn unescape(s: &str, out: &mut String) -> Option<()> {
    out.clear();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            _ => return None,
        }
    }
    Some(())
}

/// Decodes one line (without its line feed); `None` when damaged. `scratch` holds the
/// unescaped name the record borrows.
pub fn decode<'a>(line: &[u8], scratch: &'a mut String) -> Option<Record<'a>> {
    let line = std::str::from_utf8(line).ok()?;
    let (crc, body) = line.split_once(' ')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let (op, rest) = body.split_once(' ')?;
    match op {
        "A" | "D" | "S" => {
            unescape(rest, scratch)?;
            let n = scratch.as_str();
            Some(match op {
                "A" => Record::Add(n),
                "D" => Record::Del(n),
                _ => Record::Series(n),
            })
        }
        "T" | "V" => {
            let (id, name) = rest.split_once(' ')?;
            let id: u32 = id.parse().ok()?;
            unescape(name, scratch)?;
            let name = scratch.as_str();
            Some(if op == "T" {
                Record::Tag { id, name }
            } else {
                Record::Value { id, name }
            })
        }
        "C" => {
            let (t, v) = rest.split_once(' ')?;
            Some(Record::Counters {
                tags: t.parse().ok()?,
                values: v.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Why a log cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum TagLogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A first line that is not [`HEADER`]: another program's file or a newer format, which
    /// Carbide must neither misread nor overwrite.
    #[error("{path} is not a Carbide tag series log (first line {first:?}, expected {HEADER:?})")]
    Foreign { path: PathBuf, first: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TagLogError + '_ {
    move |source| TagLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the log at `path`, handing each good record to `apply` in order; damaged lines are
/// skipped and logged. A missing file is an empty log.
pub fn replay(path: &Path, mut apply: impl FnMut(Record<'_>)) -> Result<ReplayStats, TagLogError> {
    let mut stats = ReplayStats::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(stats),
        Err(e) => return Err(io_err(path)(e)),
    };
    stats.existed = true;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut scratch = String::new();
    let mut offset = 0u64;
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            stats.torn_bytes = n as u64;
            tracing::warn!(
                "{}: cutting off an unfinished last record ({n} bytes at offset {offset}), \
                 left by an interrupted write",
                path.display()
            );
            break;
        }
        let at = offset;
        offset += n as u64;
        let text = line.get(..n - 1).unwrap_or_default();
        if first {
            first = false;
            if text != HEADER.as_bytes() {
                return Err(TagLogError::Foreign {
                    path: path.to_path_buf(),
                    first: String::from_utf8_lossy(text).chars().take(80).collect(),
                });
            }
            stats.good_len = offset;
            continue;
        }
        stats.good_len = offset;
        if text.is_empty() {
            // Left by a retry after a failed write that could not be truncated.
            continue;
        }
        match decode(text, &mut scratch) {
            Some(rec) => {
                stats.records += 1;
                apply(rec);
            }
            None => {
                stats.damaged += 1;
                if stats.damaged <= REPORT_DAMAGED {
                    tracing::warn!(
                        "{}: skipping a damaged record at offset {at} ({} bytes)",
                        path.display(),
                        n
                    );
                }
            }
        }
    }
    if stats.damaged > REPORT_DAMAGED {
        tracing::warn!(
            "{}: {} damaged records skipped in all",
            path.display(),
            stats.damaged
        );
    }
    Ok(stats)
}

/// Writes a complete log (header and `records`) to `path` atomically: a temporary file,
/// fsync, rename over `path`, fsync of the directory. Returns the new length.
pub fn rewrite<'a>(
    path: &Path,
    records: impl IntoIterator<Item = Record<'a>>,
) -> Result<u64, TagLogError> {
    let tmp = path.with_extension("log.tmp");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let mut buf = Vec::with_capacity(256);
    let mut len = 0u64;
    let header = format!("{HEADER}\n");
    w.write_all(header.as_bytes()).map_err(io_err(&tmp))?;
    len += header.len() as u64;
    for rec in records {
        buf.clear();
        encode(&rec, &mut buf);
        w.write_all(&buf).map_err(io_err(&tmp))?;
        len += buf.len() as u64;
    }
    let file = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path);
    Ok(len)
}

/// Makes a new or renamed entry in the log's directory durable. Best effort: some
/// filesystems refuse to fsync a directory, and the data itself is already synced.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Makes `path` a log ready for appends: creates it (with its header) if missing or if not
/// even the header survived, and cuts off a torn last line.
pub fn prepare(path: &Path, stats: &ReplayStats) -> Result<(), TagLogError> {
    if !stats.existed || stats.good_len == 0 {
        rewrite(path, std::iter::empty())?;
        return Ok(());
    }
    if stats.torn_bytes > 0 {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(stats.good_len).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok(())
}

struct Pending {
    buf: Vec<u8>,
    stop: bool,
}

struct Io {
    file: Option<File>,
    /// The length the file has when everything written so far is good.
    len: u64,
    /// A write failed part way: the file may end in a torn record.
    dirty_tail: bool,
    failing_since: Option<Instant>,
    last_report: Option<Instant>,
    failures: u64,
    syncs: u64,
}

struct Shared {
    path: PathBuf,
    opts: LogOptions,
    pending: Mutex<Pending>,
    wake: Condvar,
    io: Mutex<Io>,
}

/// Counters for `/stats` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes waiting to be written.
    pub pending_bytes: usize,
    /// Failed write attempts so far.
    pub write_failures: u64,
    /// Whether the last attempt failed.
    pub failing: bool,
    /// Successful writes (each one fsync).
    pub syncs: u64,
}

/// An open log taking appends, with its writer thread.
pub struct TagLog {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl TagLog {
    /// Opens the (prepared) log at `path` for appends and starts the writer thread.
    pub fn open(path: &Path, opts: LogOptions) -> Result<TagLog, TagLogError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            opts,
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            io: Mutex::new(Io {
                file: Some(file),
                len,
                dirty_tail: false,
                failing_since: None,
                last_report: None,
                failures: 0,
                syncs: 0,
            }),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("tag-log".into())
            .spawn(move || writer(s))
            .map_err(io_err(path))?;
        Ok(TagLog {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Buffers one record; it reaches the disk within `flush_interval`.
    pub fn append(&self, rec: &Record<'_>) {
        let mut p = self.shared.pending.lock();
        encode(rec, &mut p.buf);
        if p.buf.len() >= self.shared.opts.flush_bytes {
            self.shared.wake.notify_one();
        }
    }

    /// Writes and fsyncs everything buffered so far.
    pub fn flush(&self) -> io::Result<()> {
        self.shared.flush()
    }

    /// Stops the writer thread and writes what is left. Later appends are written only by
    /// [`TagLog::flush`].
    pub fn close(&self) -> io::Result<()> {
        self.shared.pending.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
        self.shared.flush()
    }

    pub fn stats(&self) -> LogStats {
        let pending_bytes = self.shared.pending.lock().buf.len();
        let io = self.shared.io.lock();
        LogStats {
            pending_bytes,
            write_failures: io.failures,
            failing: io.failing_since.is_some(),
            syncs: io.syncs,
        }
    }
}

impl Drop for TagLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(
                "{}: tag series records lost at exit: {e}",
                self.shared.path.display()
            );
        }
    }
}

fn writer(shared: Arc<Shared>) {
    loop {
        let stop = {
            let mut p = shared.pending.lock();
            if !p.stop && p.buf.len() < shared.opts.flush_bytes {
                shared.wake.wait_for(&mut p, shared.opts.flush_interval);
            }
            p.stop
        };
        // Failures are reported (rate-limited) inside and retried next round.
        let _ = shared.flush();
        if stop {
            return;
        }
    }
}

impl Shared {
    fn flush(&self) -> io::Result<()> {
        let mut io = self.io.lock();
        let data = std::mem::take(&mut self.pending.lock().buf);
        if data.is_empty() {
            return Ok(());
        }
        match io.write(&self.path, &data) {
            Ok(()) => {
                if let Some(since) = io.failing_since.take() {
                    tracing::info!(
                        "{}: tag series log writable again after {:.0?}",
                        self.path.display(),
                        since.elapsed()
                    );
                }
                Ok(())
            }
            Err(e) => {
                // Put the records back in front of what arrived meanwhile, in order.
                {
                    let mut p = self.pending.lock();
                    let newer = std::mem::replace(&mut p.buf, data);
                    p.buf.extend_from_slice(&newer);
                }
                io.failures += 1;
                let now = Instant::now();
                io.failing_since.get_or_insert(now);
                if io
                    .last_report
                    .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_EVERY)
                {
                    io.last_report = Some(now);
                    tracing::error!(
                        "{}: cannot write the tag series log: {e}; new tagged series are kept \
                         in memory (served as usual) and the write is retried every {:?}",
                        self.path.display(),
                        self.opts.flush_interval
                    );
                }
                Err(e)
            }
        }
    }
}

impl Io {
    fn write(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let f = OpenOptions::new().append(true).open(path)?;
            self.len = f.metadata()?.len();
            self.file = Some(f);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("tag log not open"));
        };
        let mut prefix: &[u8] = b"";
        if self.dirty_tail {
            if file.set_len(self.len).is_ok() {
                self.dirty_tail = false;
            } else {
                // Ends the torn line, so that only it is lost.
                prefix = b"\n";
            }
        }
        let result = file
            .write_all(prefix)
            .and_then(|()| file.write_all(data))
            .and_then(|()| file.sync_data());
        match result {
            Ok(()) => {
                self.len += (prefix.len() + data.len()) as u64;
                self.dirty_tail = false;
                self.syncs += 1;
                Ok(())
            }
            Err(e) => {
                self.dirty_tail = true;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = [
            Record::Add("a;b=c"),
            Record::Add("x\\y\nz\r;q=1"),
            Record::Del("a;b=c"),
            Record::Tag {
                id: 7,
                name: "t a g",
            },
            Record::Value { id: 0, name: "" },
            Record::Counters { tags: 3, values: 9 },
            Record::Series("s;t=ü"),
        ];
        for r in recs {
            let mut buf = Vec::new();
            encode(&r, &mut buf);
            assert_eq!(buf.last(), Some(&b'\n'));
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            let mut s = String::new();
            let line = &buf[..buf.len() - 1];
            assert_eq!(decode(line, &mut s), Some(r));
            // Any single flipped bit is caught.
            for i in 0..line.len() {
                let mut bad = line.to_vec();
                bad[i] ^= 0x04;
                let mut s2 = String::new();
                assert_ne!(decode(&bad, &mut s2), Some(r), "{r:?} byte {i}");
            }
        }
    }
}
