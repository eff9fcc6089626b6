//! Write-ahead log: a point counts as accepted once the record holding it is in the log.
//!
//! Receivers append each batch of points they parsed ([`Wal::append`]) and count the batch
//! as received only when the returned future resolves. The cache takes the points tagged
//! with the segment the log put them in; when the persister has written points to whisper
//! it reports them with [`Wal::mark_persisted`], and a segment whose points are all in
//! whisper (and all of whose predecessors are gone) is deleted. On start, [`Wal::open`]
//! replays every segment still on disk so the server can put those points back into the
//! cache. Re-persisting a point that whisper already holds is harmless: `update_many`
//! writes a point to the slot its timestamp maps to, so writing it twice leaves the same
//! bytes, and because only the oldest segments are ever deleted, the replay re-applies
//! points in arrival order, so a newer value for a timestamp still wins.
//!
//! # On-disk format
//!
//! A directory of segment files named by a 20-digit, zero-padded, increasing sequence
//! number: `00000000000000000001.wal`, `00000000000000000002.wal`, … A `LOCK` file beside
//! them is flocked while a [`Wal`] is open, so two servers cannot share a log. Each segment:
//!
//! ```text
//! header  : magic "CARBWAL\n" (8 bytes) | version u32 LE (= 1) | flags u32 LE (= 0)
//! record* : len u32 LE | crc32 u32 LE | payload (len bytes)
//! payload : count u32 LE | point*count
//! point   : name_tag varint | name bytes (name_tag - 1 of them, UTF-8) | timestamp f64 LE | value f64 LE
//! ```
//!
//! `crc32` is CRC-32 (IEEE, as `crc32fast`) of the payload. A `name_tag` of 0 means "same
//! name as the previous point of this record", so a run of points of one metric costs 17
//! bytes each; any other tag is the name's length plus one (LEB128 varint). A record is the
//! unit of acknowledgement: one [`Wal::append`] call, one record. Records never span
//! segments. A segment rolls when the next group of records would take it past
//! [`WalConfig::segment_size`]; a new process always starts a new segment rather than
//! appending to the last one. The position of a record, [`Lsn`] (segment, byte offset), is
//! what `append` returns. Files named `*.wal.corrupt` are files that had a segment's name
//! but not its header; they are set aside for a human and never read.
//!
//! # Durability
//!
//! [`SyncPolicy::Batch`] (the default) acknowledges a batch only after an fdatasync that
//! covers its record; the writer thread fsyncs once per group of batches that queued up
//! while the previous fsync ran (group commit). [`SyncPolicy::Interval`] acknowledges
//! after the write reached the kernel and fsyncs periodically; [`SyncPolicy::Off`] never
//! fsyncs. Under the latter two a process crash loses nothing acknowledged (the page cache
//! survives it), a power loss may.
//!
//! # Failing disks
//!
//! A write error (ENOSPC, EIO, …) acknowledges nothing: the partial write is truncated
//! away, the batches stay queued in memory and the write is retried with backoff, logged at
//! most once a minute. Submissions keep being queued until [`WalConfig::max_pending_bytes`]
//! of them wait; beyond that `append` waits for room (backpressure). Writing resumes by
//! itself when the disk accepts data again. [`fs::FaultyFs`] injects such failures in tests.
//!
//! # Contract with the cache and persister
//!
//! Every point handed out by `append` (or by the replay) must be reported exactly once to
//! [`Wal::mark_persisted`] with its segment: when written to whisper, but also when the
//! cache drops or supersedes it, since otherwise its segment is kept forever. Reporting a
//! point before whisper holds it lets its segment go early, which a crash then turns into
//! data loss. A slow metric that keeps old points in the cache holds back deletion of every
//! later segment too (deletion is oldest-first, see above); that is the price of replay
//! order.

mod format;
pub mod fs;
mod replay;
mod segments;
mod writer;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};

pub use self::format::{HEADER_LEN, MAX_PAYLOAD_LEN};
pub use self::replay::{Corruption, CorruptionAction, Recovered, RecoveredBatch};
pub use self::segments::SegmentInfo;

use self::fs::{StdFs, WalFs};
use self::segments::SegmentTable;
use self::writer::{Pending, Queue, Writer};

/// One data point as the log stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub timestamp: f64,
    pub value: f64,
}

/// A point as a caller holds it. The log encodes a record straight from such views, so a
/// receiver can hand over names that borrow from its own buffers instead of building an owned
/// [`Point`] (one allocation each) per point.
pub trait PointRef {
    fn name(&self) -> &str;
    fn timestamp(&self) -> f64;
    fn value(&self) -> f64;
}

impl PointRef for Point {
    fn name(&self) -> &str {
        &self.name
    }
    fn timestamp(&self) -> f64 {
        self.timestamp
    }
    fn value(&self) -> f64 {
        self.value
    }
}

impl<S: AsRef<str>> PointRef for (S, f64, f64) {
    fn name(&self) -> &str {
        self.0.as_ref()
    }
    fn timestamp(&self) -> f64 {
        self.1
    }
    fn value(&self) -> f64 {
        self.2
    }
}

/// Where a record sits in the log. Orders as the log does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn {
    /// Sequence number of the segment file; what [`Wal::mark_persisted`] takes.
    pub segment: u64,
    /// Byte offset of the record's frame in that file.
    pub offset: u64,
}

/// When the log fsyncs, and therefore when a batch counts as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Acknowledge after the fsync covering the batch (group commit).
    #[default]
    Batch,
    /// Acknowledge after the write; fsync at this period.
    Interval(Duration),
    /// Acknowledge after the write; never fsync.
    Off,
}

#[derive(Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub sync: SyncPolicy,
    /// Size at which a segment is finished and a new one started.
    pub segment_size: u64,
    /// Bytes of submitted but unwritten batches held in memory before `append` waits.
    pub max_pending_bytes: u64,
    /// The file operations of the writer; replace with [`fs::FaultyFs`] to inject errors.
    pub fs: Arc<dyn WalFs>,
}

impl WalConfig {
    pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
    pub const DEFAULT_MAX_PENDING_BYTES: u64 = 256 << 20;

    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            sync: SyncPolicy::Batch,
            segment_size: Self::DEFAULT_SEGMENT_SIZE,
            max_pending_bytes: Self::DEFAULT_MAX_PENDING_BYTES,
            fs: Arc::new(StdFs),
        }
    }
}

impl std::fmt::Debug for WalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalConfig")
            .field("dir", &self.dir)
            .field("sync", &self.sync)
            .field("segment_size", &self.segment_size)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("wal {}: segment format version {version} is not supported (this build reads 1)", path.display())]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("wal {}: already in use by another process or handle", path.display())]
    Locked { path: PathBuf },
    #[error("batch of {0} bytes is larger than a wal record may be")]
    TooLarge(usize),
    /// The log is shutting down (or the batch could not be written before it did); the
    /// batch was not accepted.
    #[error("wal is closed")]
    Closed,
}

/// Counters for the HTTP stats, cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Points in acknowledged batches: the "received" count.
    pub points_received: u64,
    /// Acknowledged records (batches).
    pub records: u64,
    /// Record bytes written (frames included, headers not).
    pub bytes: u64,
    /// fsyncs that covered records (segment creation not counted).
    pub fsyncs: u64,
    /// Failed attempts to write a group, whatever failed (create, write or fsync); each
    /// retry of a stalled group counts again.
    pub write_errors: u64,
    /// Failed fsyncs, of records or of new segments.
    pub sync_errors: u64,
    /// Bytes submitted and not yet written.
    pub pending_bytes: u64,
    /// Segment files on disk that are still needed.
    pub live_segments: u64,
    pub deleted_segments: u64,
    /// The writer is currently failing to write and retrying.
    pub stalled: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub points_received: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub write_errors: AtomicU64,
    pub sync_errors: AtomicU64,
    pub stalled: AtomicBool,
}

pub(crate) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    budget: Arc<Semaphore>,
    budget_total: usize,
    stats: Counters,
    segments: SegmentTable,
}

impl Shared {
    fn pending_bytes(&self) -> u64 {
        self.budget_total
            .saturating_sub(self.budget.available_permits()) as u64
    }

    fn push(&self, p: Pending) -> Result<(), WalError> {
        let mut q = lock(&self.queue);
        if q.shutdown {
            return Err(WalError::Closed);
        }
        q.items.push_back(p);
        drop(q);
        self.wake.notify_one();
        Ok(())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Path of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// The write-ahead log. Share it with `Arc`; dropping it writes what is queued and stops
/// the writer thread.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    dir: PathBuf,
    _lock: File,
}

impl Wal {
    /// Opens (creating if needed) the log in `config.dir`, replays what is in it and starts
    /// the writer thread. The replayed segments stay until their points are reported
    /// persisted; new records go to a new segment.
    pub fn open(config: WalConfig) -> Result<(Wal, Recovered), WalError> {
        let dir = config.dir.clone();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock_dir(&lock_file, &lock_path)?;

        let scan = replay::scan(&dir)?;
        let segments = SegmentTable::new(&dir);
        for s in &scan.segments {
            segments.insert(s.seq, s.points, true);
        }
        let budget_total = usize::try_from(config.max_pending_bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            budget: Arc::new(Semaphore::new(budget_total)),
            budget_total,
            stats: Counters::default(),
            segments,
        });
        // Segments that replayed nothing (only a header, or all of it corrupt) can go now.
        shared.segments.collect();

        let writer = Writer::new(
            Arc::clone(&shared),
            config.fs,
            dir.clone(),
            config.sync,
            config.segment_size.max(HEADER_LEN + 1),
            scan.next_seq,
        );
        let handle = thread::Builder::new()
            .name("wal-writer".to_string())
            .spawn(move || writer.run())
            .map_err(io_err(&dir))?;
        let r = &scan.recovered;
        tracing::info!(dir = %dir.display(), segments = r.segments, records = r.batches.len(), points = r.points,
            corruptions = r.corruptions.len(), "wal: replayed");
        Ok((
            Wal {
                shared,
                writer: Some(handle),
                dir,
                _lock: lock_file,
            },
            scan.recovered,
        ))
    }

    /// Appends `points` as one record. Resolves once the record is durable per the sync
    /// policy, with its position; only then do the points count as received. Encoding
    /// happens here, before the first await, so the future borrows nothing. Dropping the
    /// future does not withdraw the batch once it is queued.
    pub fn append<P: PointRef>(
        &self,
        points: &[P],
    ) -> impl Future<Output = Result<Lsn, WalError>> + Send + 'static {
        let record = format::encode_record(points).map_err(WalError::TooLarge);
        let n_points = points.len() as u64;
        let shared = Arc::clone(&self.shared);
        async move {
            let record = record?;
            // A batch bigger than the whole budget takes all of it rather than waiting
            // forever.
            let permits = record
                .len()
                .clamp(1, shared.budget_total)
                .min(u32::MAX as usize) as u32;
            let permit = Arc::clone(&shared.budget)
                .acquire_many_owned(permits)
                .await
                .map_err(|_| WalError::Closed)?;
            let (tx, rx) = oneshot::channel();
            shared.push(Pending {
                record,
                points: n_points,
                ack: tx,
                permit,
            })?;
            rx.await.map_err(|_| WalError::Closed)?
        }
    }

    /// [`Wal::append`] for threads outside an async runtime (tests, tools). Blocks the
    /// calling thread; do not call it on a tokio worker.
    pub fn append_blocking<P: PointRef>(&self, points: &[P]) -> Result<Lsn, WalError> {
        block_on(self.append(points))
    }

    /// Reports `n_points` of segment `segment` as held by whisper (or otherwise no longer
    /// needed). Deletes segments that became unnecessary, oldest first.
    pub fn mark_persisted(&self, segment: u64, n_points: u64) {
        if n_points > 0 {
            self.shared.segments.release(segment, n_points);
        }
    }

    pub fn stats(&self) -> WalStats {
        let c = &self.shared.stats;
        WalStats {
            points_received: c.points_received.load(Ordering::Acquire),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            sync_errors: c.sync_errors.load(Ordering::Relaxed),
            pending_bytes: self.shared.pending_bytes(),
            live_segments: self.shared.segments.len() as u64,
            deleted_segments: self.shared.segments.deleted.load(Ordering::Relaxed),
            stalled: c.stalled.load(Ordering::Relaxed),
        }
    }

    /// Live segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.segments.snapshot()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes everything queued, then stops the writer. Batches that cannot be written
    /// (the disk is still failing) fail with [`WalError::Closed`]; they were never
    /// acknowledged.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        // Submitters still waiting for budget get Closed instead of hanging.
        self.shared.budget.close();
        self.shared.wake.notify_all();
        if let Some(h) = self.writer.take() {
            if h.join().is_err() {
                tracing::error!("wal: writer thread panicked");
            }
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Takes the directory's exclusive flock. A process that spawns children (a test harness,
/// a server running hooks) lends every open file description to each child between its
/// fork and its exec, so a lock just released can look held for a moment; only a lock
/// still held after a short grace period means another owner.
fn lock_dir(file: &File, path: &Path) -> Result<(), WalError> {
    let give_up = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        // SAFETY: flock on a descriptor `file` keeps open; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(WalError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
        if std::time::Instant::now() >= give_up {
            return Err(WalError::Locked {
                path: path.to_path_buf(),
            });
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Drives a future on the current thread. Enough for `append`, whose futures only wait on
/// a tokio semaphore and oneshot, neither of which needs a runtime.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}
