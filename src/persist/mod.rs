//! The persister: writer threads that drain the cache into whisper files (carbon's writer).
//!
//! Each worker takes one metric at a time from the cache, creates its file from the schema
//! rules when it does not exist yet, and hands all its points to `update_many`. A write that
//! fails (a full or read-only disk, a permission problem) is retried by the same worker after
//! a pause: nothing accepted is lost, and writing resumes by itself when the disk does. Only once whisper holds a metric's points, and
//! the file system has been synced, does the persister tell the write-ahead log that their
//! records are no longer needed. While a write is being retried its points are held by the
//! worker, not the cache, so reads do not see them until the disk is back.
//!
//! Differences from carbon, deliberately: a metric held back by `max_creates_per_minute` waits
//! for a later pass instead of being discarded, and a failed write is retried
//! instead of losing its points.

mod bucket;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cache::{Cache, Drained, Strategy};
use crate::ingest::name;
use crate::schema::Schemas;
use crate::wal::Wal;
use crate::whisper::{self, CreateOptions, WhisperError, WriteOptions};

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
}

struct Shared {
    cache: Arc<Cache>,
    wal: Option<Arc<Wal>>,
    schemas: Arc<Schemas>,
    settings: PersistSettings,
    stats: Arc<PersistStats>,
    stop: AtomicBool,
    updates: Option<Mutex<TokenBucket>>,
    creates: Option<Mutex<TokenBucket>>,
    /// Points whisper holds but the file system may not have on disk yet, by WAL segment:
    /// released to the WAL after the next sync.
    unsynced: Mutex<Vec<(u64, u64)>>,
    last_sync: Mutex<Instant>,
    last_error_log: Mutex<Option<Instant>>,
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
}

/// How often whisper writes are synced and their WAL records released.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Pause of a worker that found nothing to write.
const IDLE: Duration = Duration::from_millis(20);
/// Pause after a failed write, so that a full disk is not hammered.
const BACKOFF: Duration = Duration::from_millis(500);

impl Persister {
    pub fn start(
        cache: Arc<Cache>,
        wal: Option<Arc<Wal>>,
        schemas: Arc<Schemas>,
        settings: PersistSettings,
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
        let shared = Arc::new(Shared {
            cache,
            wal,
            schemas,
            settings,
            stats,
            stop: AtomicBool::new(false),
            updates,
            creates,
            unsynced: Mutex::new(Vec::new()),
            last_sync: Mutex::new(Instant::now()),
            last_error_log: Mutex::new(None),
        });
        let threads = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("persist-{i}"))
                    .spawn(move || shared.run())
                    .expect("spawn persister thread")
            })
            .collect();
        Persister { shared, threads }
    }

    /// Writes everything the cache holds, then stops the workers. Points that cannot be
    /// written now (a full disk) stay in the write-ahead log for the next start.
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.shared.sync_and_release(true);
    }
}

impl Shared {
    fn run(&self) {
        // A metric whose write failed is retried by the same worker before anything else
        // (its points stay in the WAL meanwhile); one held back by the create limit waits in
        // `deferred` while the worker goes on with metrics whose files exist.
        let mut retry: Option<Drained> = None;
        let mut deferred: VecDeque<Drained> = VecDeque::new();
        let mut failures_in_a_row = 0u32;
        loop {
            self.maybe_sync();
            let stopping = self.stop.load(Ordering::SeqCst);
            let next = if let Some(d) = retry.take() {
                Some(d)
            } else if deferred.front().is_some() && (stopping || self.create_allowed()) {
                deferred.pop_front()
            } else {
                self.cache.pop_next(self.settings.strategy)
            };
            let Some(drained) = next else {
                if stopping && deferred.is_empty() {
                    return;
                }
                std::thread::sleep(IDLE);
                continue;
            };
            match self.write(drained, stopping) {
                Outcome::Done => failures_in_a_row = 0,
                Outcome::Deferred(d) => deferred.push_back(d),
                Outcome::Failed(d) => {
                    failures_in_a_row += 1;
                    // At shutdown a disk that keeps failing must not hold the process: the
                    // points are in the WAL and are replayed on the next start.
                    if stopping && failures_in_a_row >= 3 {
                        return;
                    }
                    retry = Some(d);
                    std::thread::sleep(BACKOFF);
                }
            }
        }
    }

    fn create_allowed(&self) -> bool {
        self.creates.as_ref().is_none_or(|b| b.lock().try_take())
    }

    /// Writes one metric.
    fn write(&self, drained: Drained, stopping: bool) -> Outcome {
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
        // Most writes go to files that exist: try the write first and create only when the
        // file is missing, instead of a stat before every write.
        let mut written = whisper::update_many(&path, &points, None, self.settings.write);
        if matches!(&written, Err(WhisperError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound)
        {
            if !stopping && !self.create_allowed() {
                self.stats.deferred_creates.fetch_add(1, Ordering::Relaxed);
                return Outcome::Deferred(drained);
            }
            if let Err(e) = self.create(&drained.name, &path) {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("Error creating {}: {e}", drained.name));
                return Outcome::Failed(drained);
            }
            written = whisper::update_many(&path, &points, None, self.settings.write);
        }
        match written {
            Ok(()) => {
                let s = &self.stats;
                s.update_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                s.update_operations.fetch_add(1, Ordering::Relaxed);
                s.committed_points
                    .fetch_add(points.len() as u64, Ordering::Relaxed);
                self.persisted(&drained);
                Outcome::Done
            }
            Err(WhisperError::Io { source, .. }) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("Error writing to {}: {source}", drained.name));
                Outcome::Failed(drained)
            }
            Err(e) => {
                // The file itself is unusable (corrupt, not whisper): retrying cannot help.
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("Error writing to {}: {e}", drained.name));
                self.drop_points(&drained);
                Outcome::Done
            }
        }
    }

    fn create(&self, metric: &str, path: &Path) -> Result<(), WhisperError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| WhisperError::Io {
                path: parent.to_path_buf(),
                source: e,
            })?;
        }
        let rule = self.schemas.resolve(metric);
        let opts = CreateOptions {
            x_files_factor: rule.x_files_factor,
            aggregation_method: rule.aggregation_method,
            sparse: self.settings.sparse_create,
            fallocate: self.settings.fallocate_create,
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
        match whisper::create(path, &rule.archives, &opts) {
            Ok(()) => {
                self.stats.creates.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // Another worker created it after a requeue: fine.
            Err(WhisperError::InvalidConfiguration(_)) if path.exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn persisted(&self, drained: &Drained) {
        if self.wal.is_some() {
            let mut unsynced = self.unsynced.lock();
            unsynced.extend(
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

    fn maybe_sync(&self) {
        let due = {
            let mut last = self.last_sync.lock();
            if last.elapsed() >= SYNC_INTERVAL {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            self.sync_and_release(false);
        }
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
            self.unsynced.lock().extend(batch);
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

fn syncfs(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)?;
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
