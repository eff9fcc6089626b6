//! Opening, creating, updating and fetching whisper files.
//!
//! The algorithms follow whisper.py 1.1.10 step for step, because byte compatibility depends on
//! details such as which slot a first write lands in, which duplicate wins, and the order in
//! which lower archives are propagated. Reads and writes are positional (`pread`/`pwrite`): a
//! whisper update touches a handful of small regions, and a fetch reads one contiguous range,
//! so there is nothing for a memory map to win (see `benches/whisper.rs`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{decode_point, encode_point};
use super::pages::{OpPages, MAX_PAGED_READ};
use super::{
    AggregationMethod, ArchiveInfo, Header, Result, WhisperError, ARCHIVE_INFO_SIZE, METADATA_SIZE,
    POINT_SIZE,
};

const POINT: i64 = POINT_SIZE as i64;

/// The most slots a read of an empty archive returns beyond the archive's own length.
const MAX_FETCH_SLOTS: i64 = 1 << 20;

/// Switches that carbon sets for every write (WHISPER_LOCK_WRITES, WHISPER_AUTOFLUSH).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Take a blocking exclusive flock for the duration of the write.
    pub lock: bool,
    /// fsync after the write.
    pub autoflush: bool,
}

/// What `create` needs besides the archive list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CreateOptions {
    pub x_files_factor: f64,
    pub aggregation_method: AggregationMethod,
    /// Seek to the end and write one byte instead of writing zeros.
    pub sparse: bool,
    /// posix_fallocate the data area.
    pub fallocate: bool,
    pub write: WriteOptions,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            x_files_factor: 0.5,
            aggregation_method: AggregationMethod::Average,
            sparse: false,
            fallocate: false,
            write: WriteOptions::default(),
        }
    }
}

/// A fetch result: the time span `(start, end]` stepped by `step`, one value per slot.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchResult {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
}

/// The current time as whisper.py takes it: `int(time.time())`.
pub fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `t - (t mod step)` with Python's floored modulo.
fn align(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

/// A point's interval as the file stores it; whisper.py fails to pack anything outside u32.
fn to_interval(t: i64) -> Result<u32> {
    u32::try_from(t).map_err(|_| WhisperError::TimestampOutOfRange(t))
}

/// An open whisper file with its header decoded.
///
/// A handle may be kept open across operations (the persister keeps recently written files
/// open): [`WhisperFile::revalidate`] then checks, before the next operation, that the path
/// still names this file and re-reads the header. Data is never cached across operations.
pub struct WhisperFile {
    file: File,
    path: PathBuf,
    header: Header,
    /// The header's bytes as the file holds them, to notice a header rewritten in place.
    header_bytes: Box<[u8]>,
    /// The file's length when opened: archives must lie within it.
    len: u64,
    /// (device, inode) of the open file, to notice the path being replaced; taken when first
    /// needed (a created file may never be revalidated).
    identity: Cell<Option<(u64, u64)>>,
    autoflush: bool,
    /// Each archive's slot-0 interval within one operation: set from the header read (when
    /// slot 0 lies in it) or the first read of it, updated by writes that cover it, and
    /// forgotten when the operation ends, because another process may write the file
    /// between two operations.
    bases: Vec<Cell<Option<i64>>>,
    /// Within an update: the pages read so far (see [`OpPages`]). Page 0 is seeded by the
    /// header read that precedes the update.
    pages: RefCell<OpPages>,
    /// An update is running: small reads go through `pages`.
    in_update: Cell<bool>,
    /// Made by this handle and not yet updated: all zeros past the header, so the first
    /// update's reads need no system call.
    fresh: Cell<bool>,
}

/// What [`read_header`] learnt from the start of a file.
struct Loaded {
    header: Header,
    header_bytes: Box<[u8]>,
    len: u64,
    identity: Option<(u64, u64)>,
    /// The bytes read from offset 0 (the header and whatever else the read covered).
    prefix: Vec<u8>,
}

/// How many bytes of a file the header read takes: one page covers the headers of files with
/// up to 340 archives and, in most files, the first archive's slot 0 too.
const HEADER_READ: u64 = 4096;

impl WhisperFile {
    /// Opens a file for reading (`write` false) or reading and writing, without locking.
    pub fn open(path: &Path, write: bool) -> Result<WhisperFile> {
        Self::open_with(path, write, WriteOptions::default())
    }

    /// Opens a file; with `opts.lock` takes a blocking exclusive flock that is held until the
    /// handle is dropped, as whisper.py does under carbon's WHISPER_LOCK_WRITES.
    pub fn open_with(path: &Path, write: bool, opts: WriteOptions) -> Result<WhisperFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| WhisperError::io(path, e))?;
        if opts.lock {
            file.lock().map_err(|e| WhisperError::io(path, e))?;
        }
        let loaded = read_header(&file, path)?;
        Ok(Self::from_loaded(file, path, loaded, opts.autoflush))
    }

    fn from_loaded(file: File, path: &Path, loaded: Loaded, autoflush: bool) -> WhisperFile {
        let f = WhisperFile {
            file,
            path: path.to_path_buf(),
            bases: vec![Cell::new(None); loaded.header.archives.len()],
            header: loaded.header,
            header_bytes: loaded.header_bytes,
            len: loaded.len,
            identity: Cell::new(loaded.identity),
            autoflush,
            pages: RefCell::new(OpPages::default()),
            in_update: Cell::new(false),
            fresh: Cell::new(false),
        };
        f.prefill_bases(&loaded.prefix);
        f.pages.borrow_mut().seed_start(loaded.prefix);
        f
    }

    /// Takes the slot-0 intervals that a read from offset 0 happened to cover, so that the
    /// operation that follows need not read them again.
    fn prefill_bases(&self, prefix: &[u8]) {
        for (a, base) in self.header.archives.iter().zip(&self.bases) {
            let at = a.offset as usize;
            if let Some(b) = prefix.get(at..at + POINT_SIZE) {
                base.set(Some(i64::from(decode_point(b).0)));
            }
        }
    }

    /// Forgets the slot-0 intervals and the pages read at the end of an operation.
    fn forget_bases(&self) {
        for b in &self.bases {
            b.set(None);
        }
        self.pages.borrow_mut().clear();
        self.in_update.set(false);
        self.fresh.set(false);
    }

    /// Starts an update: small reads are kept until it ends ([`WhisperFile::forget_bases`]).
    fn begin_update(&self) {
        self.in_update.set(true);
    }

    /// What a file made by this handle holds at `offset`: its header, then zeros.
    fn fresh_bytes(&self, offset: u64, buf: &mut [u8]) -> usize {
        buf.fill(0);
        let header = &self.header_bytes[..];
        if let Some(h) = header.get(offset as usize..) {
            let n = h.len().min(buf.len());
            buf[..n].copy_from_slice(&h[..n]);
        }
        (self.len.saturating_sub(offset) as usize).min(buf.len())
    }

    /// Before an operation on a handle kept open since an earlier one: checks that the path
    /// still names this file and re-reads its header, taking in a header rewritten in place
    /// (whisper-set-aggregation-method.py). `Ok(false)` when the path now names another file
    /// or nothing (whisper-resize.py renames a new file into place; the file was deleted):
    /// the handle must then be dropped and the path opened again. Costs a `statx` of the path
    /// and one `pread`, against `openat`, `statx`, `pread` and `close` for a fresh handle.
    pub fn revalidate(&mut self) -> Result<bool> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(WhisperError::io(&self.path, e)),
        };
        let identity = match self.identity.get() {
            Some(id) => id,
            None => {
                let own = self
                    .file
                    .metadata()
                    .map_err(|e| WhisperError::io(&self.path, e))?;
                let id = (own.dev(), own.ino());
                self.identity.set(Some(id));
                id
            }
        };
        if (meta.dev(), meta.ino()) != identity {
            return Ok(false);
        }
        self.forget_bases();
        let mut prefix = vec![0u8; meta.len().min(HEADER_READ) as usize];
        let got = read_fully_at(&self.file, &self.path, &mut prefix, 0)?;
        prefix.truncate(got);
        if prefix.get(..self.header_bytes.len()) == Some(&self.header_bytes[..])
            && meta.len() == self.len
        {
            self.prefill_bases(&prefix);
            self.pages.borrow_mut().seed_start(prefix);
        } else {
            let loaded = read_header(&self.file, &self.path)?;
            self.bases = vec![Cell::new(None); loaded.header.archives.len()];
            self.header = loaded.header;
            self.header_bytes = loaded.header_bytes;
            self.len = loaded.len;
            self.identity.set(loaded.identity);
            self.prefill_bases(&loaded.prefix);
            self.pages.borrow_mut().seed_start(loaded.prefix);
        }
        Ok(true)
    }

    /// Takes a blocking exclusive flock (carbon's WHISPER_LOCK_WRITES) on a handle opened
    /// without one; [`WhisperFile::unlock`] releases it.
    pub fn lock(&self) -> Result<()> {
        self.file
            .lock()
            .map_err(|e| WhisperError::io(&self.path, e))
    }

    pub fn unlock(&self) -> Result<()> {
        self.file
            .unlock()
            .map_err(|e| WhisperError::io(&self.path, e))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, message: impl Into<String>) -> WhisperError {
        WhisperError::corrupt(&self.path, message)
    }

    /// Reads up to `len` bytes at `offset`; a short read at the end of the file returns what
    /// is there, as Python's `read` does, and the caller decides whether that is corrupt.
    fn read_at(&self, offset: i64, len: i64) -> Result<Vec<u8>> {
        let offset = u64::try_from(offset).map_err(|_| self.corrupt("negative file offset"))?;
        let len = usize::try_from(len).map_err(|_| self.corrupt("negative read length"))?;
        if self.in_update.get() && len as u64 <= MAX_PAGED_READ {
            return self.pages.borrow_mut().read(offset, len, |at, buf| {
                if self.fresh.get() {
                    Ok(self.fresh_bytes(at, buf))
                } else {
                    read_fully_at(&self.file, &self.path, buf, at)
                }
            });
        }
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(WhisperError::io(&self.path, e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn write_at(&self, offset: i64, data: &[u8]) -> Result<()> {
        let start = u64::try_from(offset).map_err(|_| self.corrupt("negative file offset"))?;
        let end = start + data.len() as u64;
        for (a, base) in self.header.archives.iter().zip(&self.bases) {
            let slot0 = u64::from(a.offset);
            if start < slot0 + POINT_SIZE as u64 && slot0 < end {
                // A write that holds slot 0's interval says what a read would find there.
                let at = (slot0 - start) as usize;
                let written = (slot0 >= start)
                    .then(|| data.get(at..at + 4))
                    .flatten()
                    .map(|b| i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
                base.set(written);
            }
        }
        self.file
            .write_all_at(data, start)
            .map_err(|e| WhisperError::io(&self.path, e))?;
        if self.in_update.get() {
            let mut pages = self.pages.borrow_mut();
            if self.fresh.get() {
                // A later read of these pages would make them up as zeros: keep them now.
                pages.read(start, data.len(), |at, buf| Ok(self.fresh_bytes(at, buf)))?;
            }
            pages.wrote(start, data);
        }
        Ok(())
    }

    /// Refuses archives whose data lies past the end of the file (whisper.py would read short
    /// data or silently grow the file), archives that overlap each other or the header, and
    /// archives that cannot be addressed at all.
    fn check_archives(&self) -> Result<()> {
        let len = self.len;
        if self.header.archives.is_empty() {
            return Err(self.corrupt("No archives in header"));
        }
        for (i, a) in self.header.archives.iter().enumerate() {
            if a.seconds_per_point == 0 || a.points == 0 {
                return Err(self.corrupt(format!(
                    "Archive {i} has {} seconds per point and {} points",
                    a.seconds_per_point, a.points
                )));
            }
            let overlap = self.header.archives.iter().enumerate().find(|&(j, b)| {
                j != i && u64::from(a.offset) < b.end() && u64::from(b.offset) < a.end()
            });
            if let Some((j, _)) = overlap {
                return Err(self.corrupt(format!("Archive {i} overlaps archive {j}")));
            }
            if u64::from(a.offset) < self.header.size() as u64 {
                return Err(self.corrupt(format!("Archive {i} overlaps the header")));
            }
            if a.end() > len {
                return Err(self.corrupt(format!(
                    "Archive {i} (offset {}, {} bytes) extends past the end of the file ({len} bytes)",
                    a.offset, a.size
                )));
            }
        }
        Ok(())
    }

    /// The interval stored in an archive's slot 0: 0 while the archive has never been written.
    fn base_interval(&self, archive: &ArchiveInfo) -> Result<i64> {
        let cached = self
            .header
            .archives
            .iter()
            .position(|a| a.offset == archive.offset);
        if let Some(base) = cached.and_then(|i| self.bases[i].get()) {
            return Ok(base);
        }
        let b = self.read_at(i64::from(archive.offset), POINT)?;
        if b.len() < POINT_SIZE {
            return Err(self.corrupt("Unable to read base datapoint"));
        }
        let base = i64::from(decode_point(&b).0);
        if let Some(i) = cached {
            self.bases[i].set(Some(base));
        }
        Ok(base)
    }

    /// Byte offset of `interval`'s slot in an archive whose slot 0 holds `base`.
    fn slot_offset(archive: &ArchiveInfo, base: i64, interval: i64) -> i64 {
        let spp = i64::from(archive.seconds_per_point);
        let distance = (interval - base).div_euclid(spp) * POINT;
        i64::from(archive.offset) + distance.rem_euclid(archive.size as i64)
    }

    fn flush(&mut self) -> Result<()> {
        if self.autoflush {
            self.file
                .flush()
                .map_err(|e| WhisperError::io(&self.path, e))?;
            self.file
                .sync_all()
                .map_err(|e| WhisperError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// whisper.py's `update`: one point into the finest archive that covers its age, then
    /// propagated down until an archive declines it.
    pub fn update(&mut self, value: f64, timestamp: Option<i64>, now: Option<i64>) -> Result<()> {
        self.begin_update();
        let result = self.update_one(value, timestamp, now);
        self.forget_bases();
        result
    }

    fn update_one(&mut self, value: f64, timestamp: Option<i64>, now: Option<i64>) -> Result<()> {
        let now = now.unwrap_or_else(now_epoch);
        let timestamp = timestamp.unwrap_or(now);
        let age = now.saturating_sub(timestamp);
        if !(age >= 0 && age < i64::from(self.header.max_retention)) {
            return Err(WhisperError::TimestampNotCovered);
        }
        self.check_archives()?;
        let archives = self.header.archives.clone();
        let index = archives
            .iter()
            .position(|a| a.retention as i64 >= age)
            .ok_or_else(|| self.corrupt("maxRetention is larger than every archive's retention"))?;
        let archive = archives[index];
        let interval = align(timestamp, i64::from(archive.seconds_per_point));
        let mut packed = Vec::with_capacity(POINT_SIZE);
        encode_point(&mut packed, to_interval(interval)?, value);
        let base = self.base_interval(&archive)?;
        let offset = if base == 0 {
            i64::from(archive.offset)
        } else {
            Self::slot_offset(&archive, base, interval)
        };
        self.write_at(offset, &packed)?;
        let mut higher = archive;
        for lower in &archives[index + 1..] {
            if !self.propagate(interval, &higher, lower)? {
                break;
            }
            higher = *lower;
        }
        self.flush()
    }

    /// whisper.py's `update_many`: newest first, each point into the finest archive that
    /// covers its age; points older than the whole retention are dropped silently.
    pub fn update_many(&mut self, points: &[(i64, f64)], now: Option<i64>) -> Result<()> {
        self.begin_update();
        let result = self.update_many_inner(points, now);
        self.forget_bases();
        result
    }

    fn update_many_inner(&mut self, points: &[(i64, f64)], now: Option<i64>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let mut points = points.to_vec();
        // Stable, newest first: among equal timestamps the caller's order is kept.
        points.sort_by_key(|p| std::cmp::Reverse(p.0));
        let now = now.unwrap_or_else(now_epoch);
        self.check_archives()?;
        let archives = self.header.archives.clone();
        let mut cursor = 0;
        let mut batch: Vec<(i64, f64)> = Vec::new();
        for &point in &points {
            let age = now.saturating_sub(point.0);
            while (archives[cursor].retention as i64) < age {
                if !batch.is_empty() {
                    batch.reverse();
                    self.archive_update_many(&archives[cursor], &batch)?;
                    batch.clear();
                }
                cursor += 1;
                if cursor == archives.len() {
                    return self.flush();
                }
            }
            batch.push(point);
        }
        if !batch.is_empty() {
            batch.reverse();
            self.archive_update_many(&archives[cursor], &batch)?;
        }
        self.flush()
    }

    /// Writes one archive's share of an update_many (points in time order, whisper.py's
    /// `__archive_update_many`) and propagates it; merge uses it to copy an archive.
    pub(crate) fn archive_update_many(
        &mut self,
        archive: &ArchiveInfo,
        points: &[(i64, f64)],
    ) -> Result<()> {
        let step = i64::from(archive.seconds_per_point);
        let aligned: Vec<(i64, f64)> = points.iter().map(|&(t, v)| (align(t, step), v)).collect();

        // Runs of consecutive intervals, the last point of equal neighbours winning. Every
        // interval is packed before anything is written, so an unpackable one writes nothing.
        let mut runs: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut current: Vec<u8> = Vec::new();
        let mut previous: Option<i64> = None;
        for (i, &(interval, value)) in aligned.iter().enumerate() {
            if i + 1 < aligned.len() && aligned[i + 1].0 == interval {
                continue;
            }
            let packed_interval = to_interval(interval)?;
            // whisper.py tests `not previousInterval`, so an interval of 0 counts as "none"
            // and the next point joins its run whatever its interval.
            let contiguous = match previous {
                None | Some(0) => true,
                Some(p) => interval == p + step,
            };
            if !contiguous {
                let p = previous.unwrap_or(0);
                let n = (current.len() / POINT_SIZE) as i64;
                runs.push((p - step * (n - 1), std::mem::take(&mut current)));
            }
            encode_point(&mut current, packed_interval, value);
            previous = Some(interval);
        }
        if !current.is_empty() {
            let p = previous.unwrap_or(0);
            let n = (current.len() / POINT_SIZE) as i64;
            runs.push((p - step * (n - 1), current));
        }

        let mut base = self.base_interval(archive)?;
        if base == 0 {
            base = runs[0].0;
        }
        let archive_start = i64::from(archive.offset);
        let archive_end = archive.end() as i64;
        for (interval, bytes) in &runs {
            let offset = Self::slot_offset(archive, base, *interval);
            let beyond = offset + bytes.len() as i64 - archive_end;
            if beyond > 0 {
                let split = bytes.len() - beyond as usize;
                self.write_at(offset, &bytes[..split])?;
                // A run longer than the archive (only many future points make one) spills
                // past the archive's end, exactly as whisper.py writes it.
                self.write_at(archive_start, &bytes[split..])?;
            } else {
                self.write_at(offset, bytes)?;
            }
        }

        let lowers: Vec<ArchiveInfo> = self
            .header
            .archives
            .iter()
            .filter(|a| a.seconds_per_point > archive.seconds_per_point)
            .copied()
            .collect();
        let mut higher = *archive;
        for lower in &lowers {
            let lstep = i64::from(lower.seconds_per_point);
            let intervals: Vec<u64> = aligned.iter().map(|p| align(p.0, lstep) as u64).collect();
            let ordered: Vec<i64> = python_int_set_order(&intervals)
                .into_iter()
                .map(|i| i as i64)
                .collect();
            let further = self.propagate_many(&ordered, &higher, lower)?;
            if !further {
                break;
            }
            higher = *lower;
        }
        Ok(())
    }

    /// Reads wrapped bytes `[first, first + len)` of an archive, as whisper.py reads them: one
    /// read, or the tail of the archive then its head.
    fn read_wrapped(&self, archive: &ArchiveInfo, first: i64, len: i64) -> Result<Vec<u8>> {
        let start = i64::from(archive.offset);
        let size = archive.size as i64;
        let last = ((first - start) + len).rem_euclid(size) + start;
        if first < last {
            self.read_at(first, last - first)
        } else {
            let mut s = self.read_at(first, start + size - first)?;
            s.extend(self.read_at(start, last - start)?);
            Ok(s)
        }
    }

    /// The higher archive's points that `__propagate` reads for the lower interval starting at
    /// `lower_start`.
    fn propagation_source(
        &self,
        lower_start: i64,
        higher: &ArchiveInfo,
        lower: &ArchiveInfo,
    ) -> Result<Vec<u8>> {
        let hbase = self.base_interval(higher)?;
        let first = if hbase == 0 {
            i64::from(higher.offset)
        } else {
            Self::slot_offset(higher, hbase, lower_start)
        };
        let wanted = i64::from(lower.seconds_per_point / higher.seconds_per_point) * POINT;
        self.read_wrapped(higher, first, wanted)
    }

    /// The value `__propagate` writes for the interval starting at `lower_start`, given the
    /// higher archive's points it read; None when too few are known.
    fn aggregate_source(&self, lower_start: i64, hstep: i64, series: &[u8]) -> Result<Option<f64>> {
        if !series.len().is_multiple_of(POINT_SIZE) {
            return Err(self.corrupt("Unable to read datapoints"));
        }
        let slots = series.len() / POINT_SIZE;
        let mut known = Vec::with_capacity(slots);
        let mut expected = lower_start;
        for chunk in series.chunks_exact(POINT_SIZE) {
            let (t, v) = decode_point(chunk);
            if i64::from(t) == expected {
                known.push(v);
            }
            expected += hstep;
        }
        if known.is_empty() {
            return Ok(None);
        }
        let known_fraction = known.len() as f64 / slots as f64;
        if known_fraction < f64::from(self.header.x_files_factor) {
            return Ok(None);
        }
        Ok(self.header.aggregation_method.aggregate(&known, slots))
    }

    /// whisper.py's `__propagate`: aggregates the higher archive's points that fall in the
    /// lower archive's interval containing `timestamp`, if enough of them are known.
    fn propagate(&self, timestamp: i64, higher: &ArchiveInfo, lower: &ArchiveInfo) -> Result<bool> {
        let lower_start = align(timestamp, i64::from(lower.seconds_per_point));
        let series = self.propagation_source(lower_start, higher, lower)?;
        let hstep = i64::from(higher.seconds_per_point);
        let Some(value) = self.aggregate_source(lower_start, hstep, &series)? else {
            return Ok(false);
        };
        let mut packed = Vec::with_capacity(POINT_SIZE);
        encode_point(&mut packed, to_interval(lower_start)?, value);
        let lbase = self.base_interval(lower)?;
        let offset = if lbase == 0 {
            i64::from(lower.offset)
        } else {
            Self::slot_offset(lower, lbase, lower_start)
        };
        self.write_at(offset, &packed)?;
        Ok(true)
    }

    /// `__propagate` for each of `intervals` in turn (already aligned to the lower archive, in
    /// whisper.py's order), with the same result as calling it one by one but with fewer
    /// system calls: the higher archive's span is read once when it fits the archive, and the
    /// lower archive's points are written at the end, adjacent ones together. Nothing reads the
    /// lower archive in between, so deferring its writes changes no byte.
    fn propagate_many(
        &self,
        intervals: &[i64],
        higher: &ArchiveInfo,
        lower: &ArchiveInfo,
    ) -> Result<bool> {
        let hstep = i64::from(higher.seconds_per_point);
        let per_interval = i64::from(lower.seconds_per_point / higher.seconds_per_point);
        let (Some(&min), Some(&max)) = (intervals.iter().min(), intervals.iter().max()) else {
            return Ok(false);
        };
        let span = (max - min) / hstep + per_interval;
        let hbase = self.base_interval(higher)?;
        let window = if hbase != 0 && intervals.len() > 1 && span <= i64::from(higher.points) {
            let first = Self::slot_offset(higher, hbase, min);
            Some(self.read_wrapped(higher, first, span * POINT)?)
        } else {
            None
        };
        let mut lbase = self.base_interval(lower)?;
        let mut pending: BTreeMap<i64, [u8; POINT_SIZE]> = BTreeMap::new();
        let mut any = false;
        for &lower_start in intervals {
            let owned;
            let series: &[u8] = match &window {
                Some(w) => {
                    let at = ((lower_start - min) / hstep * POINT) as usize;
                    let end = at + (per_interval * POINT) as usize;
                    w.get(at..end)
                        .ok_or_else(|| self.corrupt("Unable to read datapoints"))?
                }
                None => {
                    owned = self.propagation_source(lower_start, higher, lower)?;
                    &owned
                }
            };
            let Some(value) = self.aggregate_source(lower_start, hstep, series)? else {
                continue;
            };
            let mut packed = [0u8; POINT_SIZE];
            packed[..4].copy_from_slice(&to_interval(lower_start)?.to_be_bytes());
            packed[4..].copy_from_slice(&value.to_be_bytes());
            let offset = if lbase == 0 {
                i64::from(lower.offset)
            } else {
                Self::slot_offset(lower, lbase, lower_start)
            };
            if offset == i64::from(lower.offset) {
                // whisper.py reads slot 0 afresh for every interval, so a write landing there
                // is the next base, even an interval of 0, which makes the archive look empty.
                lbase = lower_start;
            }
            pending.insert(offset, packed);
            any = true;
        }
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        for (offset, packed) in pending {
            if !run.is_empty() && offset != run_start + run.len() as i64 {
                self.write_at(run_start, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = offset;
            }
            run.extend_from_slice(&packed);
        }
        if !run.is_empty() {
            self.write_at(run_start, &run)?;
        }
        Ok(any)
    }

    /// whisper.py's `fetch`. `archive_to_select` is a precision in seconds; `Ok(None)` when the
    /// interval lies wholly outside the retention.
    pub fn fetch(
        &self,
        from: i64,
        until: Option<i64>,
        now: Option<i64>,
        archive_to_select: Option<i64>,
    ) -> Result<Option<FetchResult>> {
        let now = now.unwrap_or_else(now_epoch);
        let mut until = until.unwrap_or(now);
        let mut from = from;
        if from > until {
            return Err(WhisperError::InvalidTimeInterval { from, until });
        }
        let oldest = now - i64::from(self.header.max_retention);
        if from > now || until < oldest {
            return Ok(None);
        }
        from = from.max(oldest);
        until = until.min(now);
        let age = now - from;
        let archives = &self.header.archives;
        let index = match archive_to_select.filter(|&s| s != 0) {
            Some(seconds) => archives
                .iter()
                .position(|a| i64::from(a.seconds_per_point) == seconds)
                .ok_or(WhisperError::InvalidGranularity(seconds))?,
            None => archives
                .iter()
                .position(|a| a.retention as i64 >= age)
                .unwrap_or(archives.len().saturating_sub(1)),
        };
        self.fetch_archive(index, from, until).map(Some)
    }

    /// whisper.py's `__archive_fetch`: the slots of archive `index` over `(from, until]`, with
    /// no clamping to the retention (merge, diff and resize read archives this way).
    pub fn fetch_archive(&self, index: usize, from: i64, until: i64) -> Result<FetchResult> {
        self.check_archives()?;
        let archive = self
            .header
            .archives
            .get(index)
            .copied()
            .ok_or_else(|| self.corrupt(format!("No archive {index}")))?;
        let step = i64::from(archive.seconds_per_point);
        let start = align(from, step) + step;
        let mut end = align(until, step) + step;
        if start == end {
            end += step;
        }
        let slots = (end - start) / step;
        let base = self.base_interval(&archive)?;
        if base == 0 {
            // whisper.py builds the list whatever its length; an interval far beyond the archive
            // (possible only with an explicit archive or an unclamped until) is refused instead.
            if slots > MAX_FETCH_SLOTS.max(i64::from(archive.points) + 1) {
                return Err(self.corrupt(format!(
                    "Invalid time interval: {slots} points of {step} seconds is more than a fetch returns ({MAX_FETCH_SLOTS})"
                )));
            }
            let n = usize::try_from(slots).unwrap_or(0);
            return Ok(FetchResult {
                start,
                end,
                step,
                values: vec![None; n],
            });
        }
        let from_offset = Self::slot_offset(&archive, base, start);
        let until_offset = Self::slot_offset(&archive, base, end);
        let series = if from_offset < until_offset {
            self.read_at(from_offset, until_offset - from_offset)?
        } else {
            let archive_end = archive.end() as i64;
            let mut s = self.read_at(from_offset, archive_end - from_offset)?;
            s.extend(self.read_at(
                i64::from(archive.offset),
                until_offset - i64::from(archive.offset),
            )?);
            s
        };
        if !series.len().is_multiple_of(POINT_SIZE) {
            return Err(self.corrupt("Unable to read datapoints"));
        }
        let mut values = Vec::with_capacity(series.len() / POINT_SIZE);
        let mut expected = start;
        for chunk in series.chunks_exact(POINT_SIZE) {
            let (t, v) = decode_point(chunk);
            values.push((i64::from(t) == expected).then_some(v));
            expected += step;
        }
        Ok(FetchResult {
            start,
            end,
            step,
            values,
        })
    }

    /// Rewrites the metadata block with a new method and/or xFilesFactor; returns the old ones.
    fn set_aggregation(
        &mut self,
        method: Option<AggregationMethod>,
        x_files_factor: Option<f64>,
    ) -> Result<(AggregationMethod, f32)> {
        let old = (self.header.aggregation_method, self.header.x_files_factor);
        let mut header = self.header.clone();
        if let Some(m) = method {
            header.aggregation_method = m;
        }
        if let Some(x) = x_files_factor {
            header.x_files_factor = checked_x_files_factor(x)?;
        }
        self.write_at(0, &header.encode_metadata())?;
        self.header = header;
        self.flush()?;
        Ok(old)
    }
}

/// Reads and decodes the header, never reading more than the file holds. One read covers
/// the headers of files with up to 340 archives.
fn read_header(file: &File, path: &Path) -> Result<Loaded> {
    let meta = file.metadata().map_err(|e| WhisperError::io(path, e))?;
    let len = meta.len();
    let mut bytes = vec![0u8; len.min(HEADER_READ) as usize];
    let got = read_fully_at(file, path, &mut bytes, 0)?;
    bytes.truncate(got);
    if bytes.len() >= METADATA_SIZE {
        let count = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as u64;
        let wanted = (METADATA_SIZE as u64 + count * ARCHIVE_INFO_SIZE as u64).min(len);
        if wanted > bytes.len() as u64 {
            let have = bytes.len();
            bytes.resize(wanted as usize, 0);
            let got = read_fully_at(file, path, &mut bytes[have..], have as u64)?;
            bytes.truncate(have + got);
        }
    }
    let header = Header::parse(&bytes).map_err(|e| WhisperError::corrupt(path, e.message()))?;
    Ok(Loaded {
        header_bytes: bytes[..header.size()].into(),
        header,
        len,
        identity: Some((meta.dev(), meta.ino())),
        prefix: bytes,
    })
}

fn read_fully_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(WhisperError::io(path, e)),
        }
    }
    Ok(filled)
}

/// Checks an xFilesFactor as whisper.py does before packing it as f32. NaN is refused too
/// (whisper.py lets it through and then cannot read the file it wrote).
pub(crate) fn checked_x_files_factor(x: f64) -> Result<f32> {
    if x.is_nan() || !(0.0..=1.0).contains(&x) {
        return Err(WhisperError::InvalidXFilesFactor(format!(
            "Invalid xFilesFactor {}, not between 0 and 1",
            crate::python::format::float_repr(x)
        )));
    }
    Ok(x as f32)
}

/// whisper.py's `validateArchiveList`: sorts by precision and checks the rules, in its order.
/// A precision or point count of 0 is refused too (whisper.py accepts it and then divides by
/// zero on the first write or read).
pub fn validate_archive_list(archives: &mut [(u32, u32)]) -> Result<()> {
    if archives.is_empty() {
        return Err(WhisperError::InvalidConfiguration(
            "You must specify at least one archive configuration!".to_string(),
        ));
    }
    archives.sort_by_key(|a| a.0);
    for i in 0..archives.len().saturating_sub(1) {
        let (a, b) = (archives[i], archives[i + 1]);
        let j = i + 1;
        if a.0 >= b.0 {
            return Err(WhisperError::InvalidConfiguration(format!(
                "A Whisper database may not be configured having two archives with the same \
                 precision (archive{i}: ({}, {}), archive{j}: ({}, {}))",
                a.0, a.1, b.0, b.1
            )));
        }
        if a.0 == 0 {
            // whisper.py divides by this precision next and dies with ZeroDivisionError.
            return Err(zero_archive(i, a));
        }
        if b.0 % a.0 != 0 {
            return Err(WhisperError::InvalidConfiguration(format!(
                "Higher precision archives' precision must evenly divide all lower precision \
                 archives' precision (archive{i}: {}, archive{j}: {})",
                a.0, b.0
            )));
        }
        let (ra, rb) = (
            u64::from(a.0) * u64::from(a.1),
            u64::from(b.0) * u64::from(b.1),
        );
        if rb <= ra {
            return Err(WhisperError::InvalidConfiguration(format!(
                "Lower precision archives must cover larger time intervals than higher precision \
                 archives (archive{i}: {ra} seconds, archive{j}: {rb} seconds)"
            )));
        }
        let per = b.0 / a.0;
        if a.1 < per {
            return Err(WhisperError::InvalidConfiguration(format!(
                "Each archive must have at least enough points to consolidate to the next archive \
                 (archive{j} consolidates {per} of archive{i}'s points but it has only {} total points)",
                a.1
            )));
        }
    }
    // Checked after whisper.py's own rules so that lists it refuses get its messages.
    if let Some((i, &a)) = archives
        .iter()
        .enumerate()
        .find(|(_, a)| a.0 == 0 || a.1 == 0)
    {
        return Err(zero_archive(i, a));
    }
    Ok(())
}

fn zero_archive(i: usize, (spp, points): (u32, u32)) -> WhisperError {
    WhisperError::InvalidConfiguration(format!(
        "Archive {i} ({spp}, {points}) must have at least one second per point and one point"
    ))
}

/// whisper.py's `create`. The method and xFilesFactor are checked before the file is made
/// (whisper.py leaves a 0-byte file behind when they are bad).
pub fn create(path: &Path, archives: &[(u32, u32)], opts: &CreateOptions) -> Result<()> {
    let mut archives = archives.to_vec();
    validate_archive_list(&mut archives)?;
    if path.exists() {
        return Err(already_exists(path));
    }
    let (header, len) = layout(&archives, opts)?;
    create_file(path, &header, len, opts, CreateMethod::Auto).map(drop)
}

fn already_exists(path: &Path) -> WhisperError {
    WhisperError::InvalidConfiguration(format!("File {} already exists!", path.display()))
}

/// The header of a new file with these archives (validated and sorted) and the file's length.
fn layout(archives: &[(u32, u32)], opts: &CreateOptions) -> Result<(Header, u64)> {
    let x_files_factor = checked_x_files_factor(opts.x_files_factor)?;
    let too_big = || {
        WhisperError::InvalidConfiguration(
            "Archives too large: a whisper file's offsets and retention must fit 32 bits".into(),
        )
    };
    let max_retention = archives
        .iter()
        .map(|&(s, p)| u64::from(s) * u64::from(p))
        .max()
        .unwrap_or(0);
    let max_retention = u32::try_from(max_retention).map_err(|_| too_big())?;
    let header_size = Header::size_for(archives.len()) as u64;
    let mut infos = Vec::with_capacity(archives.len());
    let mut offset = header_size;
    for &(spp, points) in archives {
        let o = u32::try_from(offset).map_err(|_| too_big())?;
        infos.push(ArchiveInfo::new(o, spp, points));
        offset += u64::from(points) * POINT_SIZE as u64;
    }
    let header = Header {
        aggregation_method: opts.aggregation_method,
        max_retention,
        x_files_factor,
        archives: infos,
    };
    Ok((header, offset))
}

/// How a new file is put in place; `Auto` is what everything but tests uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum CreateMethod {
    /// An unnamed file (`O_TMPFILE`) linked into place once written, falling back to
    /// `NamedTemp` where the file system or kernel cannot.
    Auto,
    /// A hidden temporary name beside the final one, hard-linked into place, then unlinked.
    NamedTemp,
}

/// 0: not tried yet; 1: `O_TMPFILE` works; 2: it does not, use named temporary files.
static TMPFILE_SUPPORT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl WhisperFile {
    /// whisper.py's `create` for a writer that has just found `path` missing: validates the
    /// archives, creates the file (an existing one is refused with whisper.py's "already
    /// exists" error, which the caller can take as "someone else created it") and returns it
    /// open for reading and writing, so the first write needs no second open. A missing
    /// parent directory is an `Io` error of kind `NotFound`; the caller makes it.
    pub fn create_new(
        path: &Path,
        archives: &[(u32, u32)],
        opts: &CreateOptions,
    ) -> Result<WhisperFile> {
        Self::create_new_with(path, archives, opts, CreateMethod::Auto)
    }

    #[doc(hidden)]
    pub fn create_new_with(
        path: &Path,
        archives: &[(u32, u32)],
        opts: &CreateOptions,
        method: CreateMethod,
    ) -> Result<WhisperFile> {
        let mut archives = archives.to_vec();
        validate_archive_list(&mut archives)?;
        let (header, len) = layout(&archives, opts)?;
        let file = create_file(path, &header, len, opts, method)?;
        let loaded = Loaded {
            header_bytes: header.encode().into(),
            header,
            len,
            identity: None,
            prefix: Vec::new(),
        };
        let f = Self::from_loaded(file, path, loaded, opts.write.autoflush);
        // The file is all zeros past the header: every archive is empty, which the first
        // operation need not read to know.
        for b in &f.bases {
            b.set(Some(0));
        }
        f.fresh.set(true);
        Ok(f)
    }
}

/// Writes a new file's header and size and puts it at `path` whole, so that a crash
/// mid-create never leaves a short file that every later write would find corrupt
/// (whisper.py writes in place). Returns the file open for reading and writing; with
/// `opts.write.lock` it holds a flock, as whisper.py's create does.
///
/// The file is made unnamed (`O_TMPFILE`) in the target directory and linked into place
/// through `/proc/self/fd`: one directory entry is added, against three changes (temporary
/// name, final name, removal of the temporary name) for a named temporary file, which is the
/// fallback where `O_TMPFILE` or `/proc` is missing. An unnamed file left by a crash vanishes
/// with the process; a named one stays behind as a hidden `.tmp` file.
fn create_file(
    path: &Path,
    header: &Header,
    len: u64,
    opts: &CreateOptions,
    method: CreateMethod,
) -> Result<File> {
    use std::sync::atomic::Ordering;
    let result = if method == CreateMethod::Auto && TMPFILE_SUPPORT.load(Ordering::Relaxed) != 2 {
        match create_unnamed(path, header, len, opts) {
            Err(Unnamed::Unsupported(e)) => {
                if TMPFILE_SUPPORT.swap(2, Ordering::Relaxed) != 2 {
                    tracing::info!(
                        "O_TMPFILE unusable under {} ({e}): creating whisper files under a temporary name",
                        path.parent().unwrap_or(path).display()
                    );
                }
                create_named(path, header, len, opts)
            }
            Err(Unnamed::Failed(e)) => Err(e),
            Ok(f) => {
                TMPFILE_SUPPORT.store(1, Ordering::Relaxed);
                Ok(f)
            }
        }
    } else {
        create_named(path, header, len, opts)
    };
    result.map_err(|e| {
        if e.kind() == ErrorKind::AlreadyExists {
            already_exists(path)
        } else {
            WhisperError::io(path, e)
        }
    })
}

enum Unnamed {
    /// This system cannot make or link unnamed files: use named temporary files from now on.
    Unsupported(std::io::Error),
    Failed(std::io::Error),
}

fn create_unnamed(
    path: &Path,
    header: &Header,
    len: u64,
    opts: &CreateOptions,
) -> std::result::Result<File, Unnamed> {
    use std::os::fd::AsRawFd;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            // Kernels and file systems without O_TMPFILE answer with one of these.
            Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL) => Unnamed::Unsupported(e),
            _ => Unnamed::Failed(e),
        })?;
    fill_new_file(&file, header, len, opts).map_err(Unnamed::Failed)?;
    let proc_path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| Unnamed::Failed(std::io::Error::new(ErrorKind::InvalidInput, e)))?;
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| Unnamed::Failed(std::io::Error::new(ErrorKind::InvalidInput, e)))?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        // A name that exists fails as create_new would. Without /proc the link cannot be
        // made at all.
        let no_proc = e.kind() == ErrorKind::NotFound && !Path::new("/proc/self/fd").exists();
        return Err(if no_proc {
            Unnamed::Unsupported(e)
        } else {
            Unnamed::Failed(e)
        });
    }
    Ok(file)
}

fn create_named(
    path: &Path,
    header: &Header,
    len: u64,
    opts: &CreateOptions,
) -> std::io::Result<File> {
    let temp = temp_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let result = fill_new_file(&file, header, len, opts)
        // A hard link fails if the name was taken meanwhile, as create_new would.
        .and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    result.map(|()| file)
}

/// Writes the header and gives the file its length: zeros written out, or allocated
/// (`fallocate`), or a hole (`sparse`); the bytes are the same in each case.
fn fill_new_file(
    file: &File,
    header: &Header,
    len: u64,
    opts: &CreateOptions,
) -> std::io::Result<()> {
    if opts.write.lock {
        file.lock()?;
    }
    let encoded = header.encode();
    let header_size = encoded.len() as u64;
    let data_len = len - header_size;
    file.write_all_at(&encoded, 0)?;
    if opts.fallocate && data_len > 0 {
        fallocate(file, header_size, data_len)?;
    } else if opts.sparse {
        // whisper.py writes one zero byte at the end; extending the length leaves the same
        // bytes without allocating that last block.
        file.set_len(len)?;
    } else {
        let zeros = vec![0u8; data_len.min(1 << 20) as usize];
        let mut at = header_size;
        while at < len {
            let n = (len - at).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
    }
    if opts.write.autoflush {
        file.sync_all()?;
    }
    Ok(())
}

/// `dir/.name.<pid>.<n>.tmp`: hidden, so that a directory walk never takes it for a metric.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn fallocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from(ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is open for writing for the duration of the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// whisper.py's `info` (without fileSize).
pub fn info(path: &Path) -> Result<Header> {
    Ok(WhisperFile::open(path, false)?.header)
}

/// whisper.py's `update`: one point. `timestamp` and `now` default to the current time.
pub fn update(
    path: &Path,
    value: f64,
    timestamp: Option<i64>,
    now: Option<i64>,
    opts: WriteOptions,
) -> Result<()> {
    WhisperFile::open_with(path, true, opts)?.update(value, timestamp, now)
}

/// whisper.py's `update_many`: `(timestamp, value)` points in any order.
pub fn update_many(
    path: &Path,
    points: &[(i64, f64)],
    now: Option<i64>,
    opts: WriteOptions,
) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    WhisperFile::open_with(path, true, opts)?.update_many(points, now)
}

/// whisper.py's `fetch`. `archive_to_select` is a precision in seconds. `Ok(None)` when the
/// interval lies wholly outside the retention.
pub fn fetch(
    path: &Path,
    from: i64,
    until: Option<i64>,
    now: Option<i64>,
    archive_to_select: Option<i64>,
) -> Result<Option<FetchResult>> {
    WhisperFile::open(path, false)?.fetch(from, until, now, archive_to_select)
}

/// whisper.py's `setAggregationMethod`; returns the old method.
pub fn set_aggregation_method(
    path: &Path,
    method: AggregationMethod,
    x_files_factor: Option<f64>,
    opts: WriteOptions,
) -> Result<AggregationMethod> {
    let mut f = WhisperFile::open_with(path, true, opts)?;
    Ok(f.set_aggregation(Some(method), x_files_factor)?.0)
}

/// whisper.py's `setXFilesFactor`; returns the old value.
pub fn set_x_files_factor(path: &Path, x_files_factor: f64, opts: WriteOptions) -> Result<f32> {
    let mut f = WhisperFile::open_with(path, true, opts)?;
    Ok(f.set_aggregation(None, Some(x_files_factor))?.1)
}

/// The order in which CPython 3.11 iterates `set(values)` for small non-negative ints.
///
/// whisper.py propagates an update_many batch into a lower archive by iterating a set of
/// intervals, and the first successful propagation into an empty archive fixes that archive's
/// slot 0. To put every byte where whisper.py puts it we replay CPython's set table: hash(i) = i,
/// 8 slots to start, linear probing of up to 9 neighbours then perturbed probing, and growth to
/// 4 x used when the table is 60% full.
pub(crate) fn python_int_set_order(values: &[u64]) -> Vec<u64> {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;
    const MIN_SIZE: usize = 8;

    fn slot_for(table: &[Option<u64>], key: u64) -> (usize, bool) {
        let mask = table.len() - 1;
        let mut perturb = key as usize;
        let mut i = key as usize & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for (j, entry) in table.iter().enumerate().skip(i).take(probes + 1) {
                match entry {
                    None => return (j, false),
                    Some(k) if *k == key => return (j, true),
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
        }
    }

    let mut table: Vec<Option<u64>> = vec![None; MIN_SIZE];
    let mut used = 0usize;
    for &key in values {
        let (slot, present) = slot_for(&table, key);
        if present {
            continue;
        }
        table[slot] = Some(key);
        used += 1;
        let mask = table.len() - 1;
        if used * 5 >= mask * 3 {
            let min_used = if used > 50000 { used * 2 } else { used * 4 };
            let mut size = MIN_SIZE;
            while size <= min_used {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for k in old.into_iter().flatten() {
                let (s, _) = slot_for(&table, k);
                table[s] = Some(k);
            }
        }
    }
    table.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_order_matches_cpython() {
        // Orders observed from CPython 3.11: list(set([...])).
        assert_eq!(python_int_set_order(&[3, 1, 2]), vec![1, 2, 3]);
        assert_eq!(python_int_set_order(&[8, 0]), vec![8, 0]);
        assert_eq!(python_int_set_order(&[9, 1, 9]), vec![9, 1]);
        assert_eq!(
            python_int_set_order(&[2675342400, 3185950860, 4051686240, 2787324480, 3869338140]),
            vec![2675342400, 4051686240, 2787324480, 3185950860, 3869338140]
        );
        assert_eq!(
            python_int_set_order(&[
                486215880, 1059022200, 2335435080, 2465058600, 930847380, 1200367620, 3288765720,
                3423720240, 2651938320, 544169040, 3742654860, 4219466520
            ]),
            vec![
                3288765720, 1200367620, 486215880, 2465058600, 2335435080, 3742654860, 3423720240,
                2651938320, 544169040, 4219466520, 930847380, 1059022200
            ]
        );
        assert_eq!(
            python_int_set_order(&[
                3746962800, 1242556200, 4129516500, 879521280, 2966284560, 3838591260, 1283288520,
                1551298920, 625784880, 279772920, 1451255940, 1331259120, 3515508360, 1356321060,
                2066817240, 3026530860, 244817100, 3220345080, 3628735800, 3383310240, 1572750300,
                38991360, 844054140, 3245863140, 4046047380, 2253577140, 3331189560, 3424062480,
                3692358960, 157331400, 391614540, 2623484280, 3943154400, 1460115000, 2341375800,
                1360645560, 2959982280, 4280909040, 208529940, 1743275760
            ]),
            vec![
                879521280, 38991360, 1451255940, 3515508360, 2966284560, 3424062480, 4046047380,
                208529940, 3838591260, 3383310240, 1356321060, 1242556200, 3026530860, 625784880,
                3692358960, 2253577140, 3628735800, 3331189560, 1460115000, 2341375800, 1360645560,
                1283288520, 157331400, 2959982280, 244817100, 391614540, 279772920, 4129516500,
                2066817240, 1572750300, 3943154400, 3245863140, 2623484280, 1551298920, 3746962800,
                1331259120, 4280909040, 1743275760, 3220345080, 844054140
            ]
        );
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn unnamed_and_named_temp_creates_hold_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let archives = [(10, 100), (60, 100), (600, 50)];
        for (label, sparse, fallocate) in [
            ("zeros", false, false),
            ("sparse", true, false),
            ("fallocate", false, true),
        ] {
            let opts = CreateOptions {
                sparse,
                fallocate,
                aggregation_method: AggregationMethod::Max,
                x_files_factor: 0.25,
                ..CreateOptions::default()
            };
            let mut files = Vec::new();
            for method in [CreateMethod::Auto, CreateMethod::NamedTemp] {
                let sub = dir.path().join(format!("{label}-{method:?}"));
                std::fs::create_dir(&sub).unwrap();
                let path = sub.join("m.wsp");
                let mut f = WhisperFile::create_new_with(&path, &archives, &opts, method).unwrap();
                f.update_many(
                    &[(1_700_000_000, 1.0), (1_700_000_010, 2.0)],
                    Some(1_700_000_020),
                )
                .unwrap();
                drop(f);
                // Nothing but the file is left in the directory.
                assert_eq!(entries(&sub), ["m.wsp"], "{label} {method:?}");
                // A second create of the same name is refused and leaves the file alone.
                let before = std::fs::read(&path).unwrap();
                let again = WhisperFile::create_new_with(&path, &archives, &opts, method);
                assert!(
                    matches!(&again, Err(WhisperError::InvalidConfiguration(m)) if m.ends_with("already exists!")),
                    "{label} {method:?}"
                );
                assert_eq!(std::fs::read(&path).unwrap(), before);
                assert_eq!(entries(&sub), ["m.wsp"], "{label} {method:?}");
                files.push(before);
            }
            // And the same bytes as `create` then a fresh open (which tests/whisper_create.rs
            // and tests/whisper_vs_python.rs hold to whisper.py's).
            let path = dir.path().join(format!("{label}-reference.wsp"));
            create(&path, &archives, &opts).unwrap();
            update_many(
                &path,
                &[(1_700_000_000, 1.0), (1_700_000_010, 2.0)],
                Some(1_700_000_020),
                WriteOptions::default(),
            )
            .unwrap();
            let reference = std::fs::read(&path).unwrap();
            assert!(files.iter().all(|f| *f == reference), "{label}");
        }
    }

    #[test]
    fn create_new_in_a_missing_directory_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.wsp");
        for method in [CreateMethod::Auto, CreateMethod::NamedTemp] {
            let err =
                WhisperFile::create_new_with(&path, &[(60, 10)], &CreateOptions::default(), method);
            assert!(
                matches!(&err, Err(WhisperError::Io { source, .. }) if source.kind() == ErrorKind::NotFound),
                "{method:?}"
            );
        }
    }

    #[test]
    fn revalidate_notices_a_file_renamed_over_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wsp");
        create(&path, &[(60, 10)], &CreateOptions::default()).unwrap();
        let mut kept = WhisperFile::open(&path, true).unwrap();
        assert!(kept.revalidate().unwrap());
        let other = dir.path().join("other.wsp");
        create(&other, &[(60, 20)], &CreateOptions::default()).unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(!kept.revalidate().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!kept.revalidate().unwrap());
    }

    #[test]
    fn x_files_factor_messages_print_python_floats() {
        let msg = |x: f64| checked_x_files_factor(x).unwrap_err().to_string();
        assert_eq!(msg(2.0), "Invalid xFilesFactor 2.0, not between 0 and 1");
        assert_eq!(
            msg(-1e-9),
            "Invalid xFilesFactor -1e-09, not between 0 and 1"
        );
    }
}
