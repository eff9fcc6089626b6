//! The persister: writer threads that drain the cache into whisper files (carbon's writer).
//!
//! Each worker takes one metric at a time from the cache, creates its file from the schema
//! rules when it does not exist yet, and hands all its points to `update_many`. A write that
//! fails (a full or read-only disk, a permission problem) is retried by the same worker after
//! a pause: nothing accepted is lost, and writing resumes by itself when the disk does. Only
//! once whisper holds a metric's points, and the file system has been synced, does the
//! persister tell the write-ahead log that their records are no longer needed. A thread of its
//! own syncs when that lets the log delete a segment (or every 30 s at the least): a `syncfs`
//! takes from 20 ms to seconds, and before then it would free nothing.
//!
//! A worker *checks out* a metric ([`Cache::checkout_next_part`]) rather than popping it: the
//! points stay readable in the cache's in-flight area while they are written, retried after a
//! disk error, or held back by the create limit, and are checked in ([`Cache::written`]) only
//! once whisper holds them (or they were dropped), so /render sees every accepted point the
//! whole time. A metric has one batch in flight at most (the cache passes over it meanwhile),
//! so its writes never overlap and never go out of order.
//!
//! Each worker keeps the files it wrote recently open ([`PersistTuning::open_files_per_worker`];
//! when they are more than that, a stable set of them, see `files`) and takes metrics from its own cache shards first, so a hot
//! metric goes to the same worker and its file costs `pread`/`pwrite` only, plus one `statx`
//! of the path and one header `pread` per write to notice a file replaced or rewritten by
//! another tool (whisper-resize.py renames a new file into place; whisper-set-*.py rewrite
//! the header in place). A new file is created and written through one handle.
//!
//! Differences from carbon, deliberately: a metric held back by `max_creates_per_minute` waits
//! for a later pass instead of being discarded (and a token taken for a file another worker
//! made meanwhile is given back), a failed write is retried instead of losing its points, and
//! `sparse_create` wins over `fallocate_create` when both are set.

mod bucket;
mod files;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cache::{Cache, Drained, Strategy};
use crate::ingest::name;
use crate::schema::reload::LiveSchemas;
use crate::wal::Wal;
use crate::whisper::{CreateOptions, WhisperError, WhisperFile, WriteOptions};

use files::OpenFiles;

pub use bucket::TokenBucket;

/// How the persister writes.
#[derive(Clone, Debug)]
pub struct PersistSettings {
    pub whisper_dir: PathBuf,
    pub strategy: Strategy,
    pub workers: usize,
    /// carbon's MAX_UPDATES_PER_SECOND; 0 = unlimited.
    pub max_updates_per_second: u32,
    /// carbon's MAX_CREATES_PER_MINUTE; 0 = unlimited.
    pub max_creates_per_minute: u32,
    pub write: WriteOptions,
    pub sparse_create: bool,
    pub fallocate_create: bool,
}

/// Knobs with defaults that callers rarely need to change.
#[derive(Clone, Debug, Default)]
pub struct PersistTuning {
    /// Files each worker keeps open between writes. `None`: derived from the process's
    /// descriptor limit ([`default_open_files`]), first raised to the hard limit
    /// ([`raise_open_file_limit`]); 0 closes every file after its write.
    pub open_files_per_worker: Option<usize>,
}

/// Open files per worker when not configured: a quarter of the soft descriptor limit
/// (`RLIMIT_NOFILE`) shared by the workers, at most 65536 each, so that sockets, the WAL and
/// the readers keep plenty. (An open file costs the process about half a kilobyte, the kernel
/// about as much: cheap next to an `openat` + `close` on every write of a metric.)
pub fn default_open_files(workers: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    (soft / 4 / workers.max(1)).min(65536)
}

/// Raises the soft descriptor limit to the hard one (at most 1,048,576), as servers that keep
/// many files open do (Go's runtime does it at start): distributions ship a soft limit of 1024
/// with a hard limit hundreds of times larger. Failure only leaves the limit as it was.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let want = limit.rlim_max.min(1 << 20);
    if limit.rlim_cur >= want {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        tracing::debug!("open file limit raised from {} to {want}", limit.rlim_cur);
    }
}

/// Cumulative counters (carbon's writer statistics).
#[derive(Default, Debug)]
pub struct PersistStats {
    /// Successful update_many calls (carbon's updateOperations).
    pub update_operations: AtomicU64,
    /// Points handed to whisper (carbon's committedPoints).
    pub committed_points: AtomicU64,
    /// Files created.
    pub creates: AtomicU64,
    /// Metrics put back because the create limit was reached (carbon drops them instead).
    pub deferred_creates: AtomicU64,
    /// Failed creates and writes.
    pub errors: AtomicU64,
    /// Points dropped because their file is unusable (corrupt, or not a whisper file).
    pub dropped_points: AtomicU64,
    /// Nanoseconds spent in update_many, for carbon's avgUpdateTime.
    pub update_nanos: AtomicU64,
    /// Writes that found their file already open.
    pub open_file_hits: AtomicU64,
    /// Files closed after a write for lack of room: an idle one to make room for another, or
    /// the one just written when every kept file is in use.
    pub open_file_evictions: AtomicU64,
    /// Open files found replaced or removed at their path (and opened again).
    pub open_file_replaced: AtomicU64,
}

struct Shared {
    cache: Arc<Cache>,
    wal: Option<Arc<Wal>>,
    /// Read only when a file is created (a reload swaps the rules in).
    schemas: LiveSchemas,
    settings: PersistSettings,
    open_files: usize,
    stats: Arc<PersistStats>,
    stop: AtomicBool,
    /// Set once the writers have stopped: the sync thread ends.
    sync_stop: AtomicBool,
    updates: Option<Mutex<TokenBucket>>,
    creates: Option<Mutex<TokenBucket>>,
    /// Points whisper holds but the file system may not have on disk yet, by WAL segment:
    /// released to the WAL after the next sync.
    unsynced: Mutex<Vec<(u64, u64)>>,
    last_error_log: Mutex<Option<Instant>>,
}

/// Why a metric's file could not be had.
enum Failure {
    Create(WhisperError),
    Write(WhisperError),
}

/// What became of one metric's write.
enum Outcome {
    Done,
    /// The create limit holds it back; try again later.
    Deferred(Drained),
    /// The disk refused; retry after a pause.
    Failed(Drained),
}

/// The running writer threads.
pub struct Persister {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
}

/// How often a writer looks whether a sync would let the WAL delete a segment.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// The longest whisper writes go unsynced (and their WAL records unreleased) while no
/// segment could be deleted anyway.
const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Pause of a worker that found nothing to write.
const IDLE: Duration = Duration::from_millis(20);
/// Pause after a failed write, so that a full disk is not hammered.
const BACKOFF: Duration = Duration::from_millis(500);

impl Persister {
    pub fn start(
        cache: Arc<Cache>,
        wal: Option<Arc<Wal>>,
        schemas: impl Into<LiveSchemas>,
        settings: PersistSettings,
        stats: Arc<PersistStats>,
    ) -> Persister {
        Self::start_tuned(
            cache,
            wal,
            schemas,
            settings,
            PersistTuning::default(),
            stats,
        )
    }

    pub fn start_tuned(
        cache: Arc<Cache>,
        wal: Option<Arc<Wal>>,
        schemas: impl Into<LiveSchemas>,
        settings: PersistSettings,
        tuning: PersistTuning,
        stats: Arc<PersistStats>,
    ) -> Persister {
        let updates = (settings.max_updates_per_second > 0).then(|| {
            let n = f64::from(settings.max_updates_per_second);
            Mutex::new(TokenBucket::new(n, n))
        });
        let creates = (settings.max_creates_per_minute > 0).then(|| {
            let n = f64::from(settings.max_creates_per_minute);
            Mutex::new(TokenBucket::new(n, n / 60.0))
        });
        let workers = settings.workers.max(1);
        let open_files = tuning.open_files_per_worker.unwrap_or_else(|| {
            raise_open_file_limit();
            default_open_files(workers)
        });
        let shared = Arc::new(Shared {
            cache,
            wal,
            schemas: schemas.into(),
            settings,
            open_files,
            stats,
            stop: AtomicBool::new(false),
            sync_stop: AtomicBool::new(false),
            updates,
            creates,
            unsynced: Mutex::new(Vec::new()),
            last_error_log: Mutex::new(None),
        });
        let threads = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("persist-{i}"))
                    .spawn(move || shared.run(i, workers))
                    .expect("spawn persister thread")
            })
            .collect();
        let syncer = shared.wal.is_some().then(|| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("persist-sync".to_string())
                .spawn(move || shared.sync_loop())
                .expect("spawn persister sync thread")
        });
        Persister {
            shared,
            threads,
            syncer,
        }
    }

    /// Writes everything the cache holds, then stops the workers. Points that cannot be
    /// written now (a full disk) stay in the write-ahead log for the next start.
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.shared.sync_stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.syncer {
            t.thread().unpark();
            let _ = t.join();
        }
        self.shared.sync_and_release(true);
    }
}

impl Shared {
    fn run(&self, worker: usize, workers: usize) {
        let mut files = OpenFiles::new(self.open_files);
        // A metric whose write failed is retried by the same worker before anything else
        // (its points stay in the WAL meanwhile); one held back by the create limit waits in
        // `deferred` while the worker goes on with metrics whose files exist. Either way its
        // points stay readable in the cache, in flight. `granted`: the create token for the
        // metric is already taken.
        let mut retry: Option<(Drained, bool)> = None;
        let mut deferred: VecDeque<Drained> = VecDeque::new();
        let mut failures_in_a_row = 0u32;
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let next = if let Some(r) = retry.take() {
                Some(r)
            } else if !deferred.is_empty() && (stopping || self.create_allowed()) {
                deferred.pop_front().map(|d| (d, !stopping))
            } else {
                self.cache
                    .checkout_next_part(self.settings.strategy, worker, workers)
                    .map(|d| (d, false))
            };
            let Some((drained, granted)) = next else {
                if stopping && deferred.is_empty() {
                    return;
                }
                std::thread::sleep(IDLE);
                continue;
            };
            match self.write(&mut files, drained, stopping, granted) {
                Outcome::Done => failures_in_a_row = 0,
                Outcome::Deferred(d) => deferred.push_back(d),
                Outcome::Failed(d) => {
                    failures_in_a_row += 1;
                    // At shutdown a disk that keeps failing must not hold the process: the
                    // points are in the WAL and are replayed on the next start.
                    if stopping && failures_in_a_row >= 3 {
                        return;
                    }
                    retry = Some((d, granted));
                    std::thread::sleep(BACKOFF);
                }
            }
        }
    }

    fn create_allowed(&self) -> bool {
        self.creates.as_ref().is_none_or(|b| b.lock().try_take())
    }

    /// Writes one metric.
    fn write(
        &self,
        files: &mut OpenFiles,
        drained: Drained,
        stopping: bool,
        granted: bool,
    ) -> Outcome {
        let relative = match name::relative_path(&drained.name) {
            Ok(p) => p,
            Err(e) => {
                // Receivers only cache clean names, so this is a bug; do not retry forever.
                self.log_error(format_args!("cannot store metric {:?}: {e}", drained.name));
                self.drop_points(&drained);
                return Outcome::Done;
            }
        };
        let path = self.settings.whisper_dir.join(relative);
        if let Some(bucket) = &self.updates {
            let wait = bucket.lock().take_blocking_wait();
            if !wait.is_zero() && !stopping {
                std::thread::sleep(wait);
            }
        }
        let points = drained.whisper_points();
        let started = Instant::now();
        let file = match self.file_for(files, &drained.name, &path, stopping, granted) {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.stats.deferred_creates.fetch_add(1, Ordering::Relaxed);
                return Outcome::Deferred(drained);
            }
            Err(Failure::Create(e)) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("Error creating {}: {e}", drained.name));
                return Outcome::Failed(drained);
            }
            Err(Failure::Write(e)) => return self.write_failed(drained, e),
        };
        let mut file = file;
        match self.update(&mut file, &points) {
            Ok(()) => {
                if files.put(&drained.name, file) {
                    self.stats
                        .open_file_evictions
                        .fetch_add(1, Ordering::Relaxed);
                }
                let s = &self.stats;
                s.update_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                s.update_operations.fetch_add(1, Ordering::Relaxed);
                s.committed_points
                    .fetch_add(points.len() as u64, Ordering::Relaxed);
                self.persisted(&drained);
                Outcome::Done
            }
            // The handle is dropped: the next write opens the file afresh.
            Err(e) => self.write_failed(drained, e),
        }
    }

    fn write_failed(&self, drained: Drained, e: WhisperError) -> Outcome {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        match e {
            WhisperError::Io { source, .. } => {
                self.log_error(format_args!("Error writing to {}: {source}", drained.name));
                Outcome::Failed(drained)
            }
            e => {
                // The file itself is unusable (corrupt, not whisper): retrying cannot help.
                self.log_error(format_args!("Error writing to {}: {e}", drained.name));
                self.drop_points(&drained);
                Outcome::Done
            }
        }
    }

    /// `update_many` under carbon's WHISPER_LOCK_WRITES when asked: the lock is taken per
    /// write, since the handle may stay open long after.
    fn update(&self, file: &mut WhisperFile, points: &[(i64, f64)]) -> Result<(), WhisperError> {
        if !self.settings.write.lock {
            return file.update_many(points, None);
        }
        file.lock()?;
        let written = file.update_many(points, None);
        let unlocked = file.unlock();
        written.and(unlocked)
    }

    /// The metric's file, open for writing: the one kept open if its path still names it,
    /// else opened, else created. `Ok(None)` when the create limit holds the creation back;
    /// `granted`: the caller already holds a create token (given back if no create is needed).
    fn file_for(
        &self,
        files: &mut OpenFiles,
        metric: &str,
        path: &Path,
        stopping: bool,
        granted: bool,
    ) -> Result<Option<WhisperFile>, Failure> {
        if let Some(mut f) = files.take(metric) {
            match f.revalidate() {
                Ok(true) => {
                    self.stats.open_file_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(f));
                }
                Ok(false) => {
                    self.stats
                        .open_file_replaced
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(Failure::Write(e)),
            }
        }
        // Most writes go to files that exist: open first and create only when the file is
        // missing, instead of a stat before every open.
        let write = WriteOptions {
            lock: false,
            autoflush: self.settings.write.autoflush,
        };
        match WhisperFile::open_with(path, true, write) {
            Ok(f) => {
                if granted {
                    // Created meanwhile by another worker: the token was not needed.
                    if let Some(b) = &self.creates {
                        b.lock().give_back();
                    }
                }
                return Ok(Some(f));
            }
            Err(WhisperError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::Write(e)),
        }
        if !stopping && !granted && !self.create_allowed() {
            return Ok(None);
        }
        match self.create(metric, path) {
            Ok(f) => Ok(Some(f)),
            // Another writer (or tool) created it meanwhile: write to theirs.
            Err(WhisperError::InvalidConfiguration(_)) if path.exists() => {
                WhisperFile::open_with(path, true, write)
                    .map(Some)
                    .map_err(Failure::Write)
            }
            Err(e) => Err(Failure::Create(e)),
        }
    }

    fn create(&self, metric: &str, path: &Path) -> Result<WhisperFile, WhisperError> {
        let rule = self.schemas.resolve(metric);
        let opts = CreateOptions {
            x_files_factor: rule.x_files_factor,
            aggregation_method: rule.aggregation_method,
            sparse: self.settings.sparse_create,
            // Sparse wins (see `config::PersistConfig::sparse_create`).
            fallocate: self.settings.fallocate_create && !self.settings.sparse_create,
            write: self.settings.write,
        };
        tracing::debug!(
            "creating {metric} ({} by schema [{}], {} by [{}])",
            rule.archives
                .iter()
                .map(|(s, p)| format!("{s}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
            rule.schema_name,
            rule.aggregation_method,
            rule.aggregation_name
        );
        let created = match WhisperFile::create_new(path, &rule.archives, &opts) {
            // The directory is made only when the create finds it missing, not before each
            // create.
            Err(WhisperError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| WhisperError::Io {
                        path: parent.to_path_buf(),
                        source: e,
                    })?;
                }
                WhisperFile::create_new(path, &rule.archives, &opts)
            }
            other => other,
        }?;
        self.stats.creates.fetch_add(1, Ordering::Relaxed);
        Ok(created)
    }

    /// Whisper holds the metric's points (or they were dropped): the cache lets them go, and
    /// the WAL may after the next sync.
    fn persisted(&self, drained: &Drained) {
        self.cache.written(drained);
        if self.wal.is_some() {
            let mut unsynced = self.unsynced.lock();
            add_counts(
                &mut unsynced,
                drained
                    .segments
                    .iter()
                    .map(|&(s, n)| (u64::from(s), u64::from(n))),
            );
        }
    }

    fn drop_points(&self, drained: &Drained) {
        self.stats
            .dropped_points
            .fetch_add(drained.inserted(), Ordering::Relaxed);
        self.persisted(drained);
    }

    /// The sync thread: syncs when that lets the WAL delete its oldest segment (checked every
    /// `SYNC_INTERVAL`), or `MAX_SYNC_INTERVAL` after the last sync. A sync before the oldest
    /// segment is sealed and wholly written would delete nothing: the records stay in the WAL
    /// until then whatever we do, so the point of syncing (a power cut never loses a point
    /// whose record was dropped) holds without it. It runs beside the writers, not in their
    /// loop: a `syncfs` takes 20 ms to seconds (it writes back every dirty page of the file
    /// system), and a writer running it wrote nothing meanwhile. Syncing every second from a
    /// thread was measured to cost the writers half again as much CPU (their writes meet pages
    /// under writeback); syncing about once per WAL segment makes that rare.
    fn sync_loop(&self) {
        let Some(wal) = &self.wal else { return };
        let mut last = Instant::now();
        while !self.sync_stop.load(Ordering::SeqCst) {
            std::thread::park_timeout(SYNC_INTERVAL);
            if self.sync_stop.load(Ordering::SeqCst) {
                return;
            }
            if last.elapsed() >= MAX_SYNC_INTERVAL || self.sync_frees_a_segment(wal) {
                self.sync_and_release(false);
                last = Instant::now();
            }
        }
    }

    /// Whether the points waiting for a sync are all that the WAL's oldest segment still
    /// holds, and it is sealed: then releasing them deletes it.
    fn sync_frees_a_segment(&self, wal: &Wal) -> bool {
        let segments = wal.segments();
        let Some(oldest) = segments.first() else {
            return false;
        };
        if !oldest.sealed {
            return false;
        }
        let waiting = self
            .unsynced
            .lock()
            .iter()
            .find(|c| c.0 == oldest.seq)
            .map_or(0, |c| c.1);
        waiting >= oldest.outstanding
    }

    /// Syncs the whisper tree's file system, then tells the WAL which records whisper now
    /// holds durably, so that a power cut can never lose a point whose record was dropped.
    fn sync_and_release(&self, _final: bool) {
        let Some(wal) = &self.wal else { return };
        let batch = std::mem::take(&mut *self.unsynced.lock());
        if batch.is_empty() {
            return;
        }
        if let Err(e) = syncfs(&self.settings.whisper_dir) {
            self.log_error(format_args!(
                "sync of {} failed: {e}",
                self.settings.whisper_dir.display()
            ));
            add_counts(&mut self.unsynced.lock(), batch);
            return;
        }
        for (segment, n) in batch {
            wal.mark_persisted(segment, n);
        }
    }

    /// Logs at most once every 10 seconds, so that a full disk does not flood the log.
    fn log_error(&self, msg: std::fmt::Arguments<'_>) {
        let mut last = self.last_error_log.lock();
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::error!("{msg}");
        } else {
            tracing::debug!("{msg}");
        }
    }
}

/// Adds per-segment counts to `into`, one entry per segment (a metric's points nearly always
/// come from the newest few segments, so the list stays a few entries long).
fn add_counts(into: &mut Vec<(u64, u64)>, counts: impl IntoIterator<Item = (u64, u64)>) {
    for (segment, n) in counts {
        match into.iter_mut().rev().find(|c| c.0 == segment) {
            Some(c) => c.1 += n,
            None => into.push((segment, n)),
        }
    }
}

fn syncfs(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)?;
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::add_counts;

    #[test]
    fn counts_add_up_per_segment() {
        let mut v = Vec::new();
        add_counts(&mut v, [(3, 10), (4, 1)]);
        add_counts(&mut v, [(4, 2), (3, 5), (5, 7)]);
        assert_eq!(v, vec![(3, 15), (4, 3), (5, 7)]);
    }
}
