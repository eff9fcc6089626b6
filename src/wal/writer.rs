//! The writer thread: takes every batch queued since its last write as one group, appends
//! the group with one write, makes it durable per the sync policy, and only then answers
//! the submitters.
//!
//! It is an OS thread rather than a task because `write` and `fsync` block, and an fsync
//! can take tens of milliseconds; on a tokio worker that would stall unrelated connections.
//! One thread also means one writer, so offsets need no coordination.
//!
//! On a failed write nothing in the group is acknowledged and nothing is dropped: the file
//! is cut back to the last good offset (or, if even that fails, the segment is abandoned
//! for a fresh one), the group is kept, and the write is retried with backoff. Producers
//! meanwhile keep queueing until the byte budget of [`super::WalConfig::max_pending_bytes`]
//! runs out, and then wait. That is the disk-full behaviour: accept while bounds allow,
//! complain once a minute, resume unaided.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::format::{self, HEADER_LEN};
use super::fs::{WalFile, WalFs};
use super::{lock, segment_path, Lsn, Shared, SyncPolicy, WalError};

/// One submitted batch, already framed by the submitter.
pub(crate) struct Pending {
    pub record: Vec<u8>,
    pub points: u64,
    pub ack: oneshot::Sender<Result<Lsn, WalError>>,
    /// Returned to the byte budget when this is dropped, i.e. once written or failed.
    pub permit: OwnedSemaphorePermit,
}

pub(crate) struct Queue {
    pub items: VecDeque<Pending>,
    pub shutdown: bool,
}

struct Active {
    seq: u64,
    file: Box<dyn WalFile>,
    /// End of the last complete record: where the next write goes and where a failed
    /// write is cut back to.
    len: u64,
}

/// Logs a persistent condition at most once a minute, counting what it swallowed.
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    const PERIOD: Duration = Duration::from_secs(60);

    /// Returns the number of suppressed occurrences when this one should be logged.
    fn tick(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < Self::PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Short enough that writing resumes within a second of space returning.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Bytes written per group at most, so one write (and the latency of everyone in it)
/// stays bounded when a backlog built up during a stall.
const MAX_GROUP_BYTES: u64 = 16 << 20;

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub fs: Arc<dyn WalFs>,
    pub dir: PathBuf,
    pub policy: SyncPolicy,
    pub segment_size: u64,
    pub next_seq: u64,
    active: Option<Active>,
    buf: Vec<u8>,
    /// Written but not yet fsynced (policy interval).
    dirty: bool,
    last_sync: Instant,
    failing_since: Option<Instant>,
    failures: u64,
    complaints: RateLimited,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        fs: Arc<dyn WalFs>,
        dir: PathBuf,
        policy: SyncPolicy,
        segment_size: u64,
        next_seq: u64,
    ) -> Writer {
        Writer {
            shared,
            fs,
            dir,
            policy,
            segment_size,
            next_seq,
            active: None,
            buf: Vec::new(),
            dirty: false,
            last_sync: Instant::now(),
            failing_since: None,
            failures: 0,
            complaints: RateLimited {
                last: None,
                suppressed: 0,
            },
        }
    }

    fn group_limit(&self) -> u64 {
        MAX_GROUP_BYTES.min(self.segment_size.saturating_sub(HEADER_LEN).max(1))
    }

    pub fn run(mut self) {
        let mut group: Vec<Pending> = Vec::new();
        let mut backoff = MIN_BACKOFF;
        let mut retry_at: Option<Instant> = None;
        loop {
            let shutdown = self.gather(&mut group, retry_at);
            if group.is_empty() {
                self.maybe_interval_sync(shutdown);
                if shutdown {
                    break;
                }
                continue;
            }
            match self.write_group(&group) {
                Ok(lsns) => {
                    self.resumed();
                    self.acknowledge(&mut group, lsns);
                    backoff = MIN_BACKOFF;
                    retry_at = None;
                    self.maybe_interval_sync(false);
                }
                Err(e) => {
                    self.shared
                        .stats
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.complain(&e, &group);
                    if shutdown {
                        // Nobody will retry: say so rather than leave submitters hanging.
                        // These were never acknowledged, so nothing accepted is lost.
                        self.fail_all(&mut group);
                        break;
                    }
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.close();
    }

    /// Waits for work and moves queued batches into `group` (which may hold a group whose
    /// write failed; newcomers join it). Returns whether shutdown was requested; the
    /// queue is empty then only if `group` is.
    fn gather(&mut self, group: &mut Vec<Pending>, retry_at: Option<Instant>) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut q = lock(&shared.queue);
        loop {
            if q.shutdown {
                break;
            }
            let now = Instant::now();
            let deadline = match retry_at {
                Some(t) if t > now => Some(t),
                Some(_) => break,
                None if !q.items.is_empty() => break,
                None => match self.policy {
                    SyncPolicy::Interval(d) if self.dirty => {
                        let t = self.last_sync + d;
                        if t <= now {
                            break;
                        }
                        Some(t)
                    }
                    _ => None,
                },
            };
            q = match deadline {
                None => shared.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    shared
                        .wake
                        .wait_timeout(q, t - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let limit = self.group_limit();
        let mut bytes: u64 = group.iter().map(|p| p.record.len() as u64).sum();
        while let Some(front) = q.items.front() {
            let len = front.record.len() as u64;
            if !group.is_empty() && bytes + len > limit {
                break;
            }
            bytes += len;
            if let Some(p) = q.items.pop_front() {
                group.push(p);
            }
        }
        // `push` refuses new entries once the flag is set, so after shutdown the queue
        // only shrinks and the loop ends when it is empty.
        q.shutdown
    }

    fn write_group(&mut self, group: &[Pending]) -> io::Result<Vec<Lsn>> {
        let total: u64 = group.iter().map(|p| p.record.len() as u64).sum();
        self.make_room(total)?;
        let Some(active) = self.active.as_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        let start = active.len;
        self.buf.clear();
        let mut lsns = Vec::with_capacity(group.len());
        for p in group {
            lsns.push(Lsn {
                segment: active.seq,
                offset: start + self.buf.len() as u64,
            });
            self.buf.extend_from_slice(&p.record);
        }
        if let Err(e) = active.file.write_all_at(&self.buf, start) {
            self.shared
                .stats
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            self.cut_back(start);
            return Err(e);
        }
        active.len = start + total;
        self.shared.stats.bytes.fetch_add(total, Ordering::Relaxed);
        if self.policy == SyncPolicy::Batch {
            if let Err(e) = active.file.sync_data() {
                // After a failed fsync the kernel may have dropped the dirty pages and a
                // second fsync can report success for data that is gone, so this file is
                // not trusted with the retry: cut the group off and start a new segment.
                self.shared
                    .stats
                    .sync_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.cut_back(start);
                self.abandon();
                return Err(e);
            }
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.last_sync = Instant::now();
        } else if matches!(self.policy, SyncPolicy::Interval(_)) {
            self.dirty = true;
        }
        let seq = active.seq;
        let points: u64 = group.iter().map(|p| p.points).sum();
        self.shared.segments.add(seq, points);
        Ok(lsns)
    }

    /// Rolls to a new segment when `bytes` would overflow the current one, and creates a
    /// segment when there is none (start-up, or after one was abandoned).
    fn make_room(&mut self, bytes: u64) -> io::Result<()> {
        if let Some(a) = &self.active {
            if a.len > HEADER_LEN && a.len + bytes > self.segment_size {
                self.seal_active();
            }
        }
        if self.active.is_some() {
            return Ok(());
        }
        let seq = self.next_seq;
        let path = segment_path(&self.dir, seq);
        let mut file = self.fs.create(&path)?;
        file.write_all_at(&format::header(), 0)?;
        if self.policy != SyncPolicy::Off {
            // The directory entry must be durable before records in the file are acked.
            if let Err(e) = file.sync_data().and_then(|()| self.fs.sync_dir(&self.dir)) {
                self.shared
                    .stats
                    .sync_errors
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        self.next_seq += 1;
        self.shared.segments.insert(seq, 0, false);
        self.active = Some(Active {
            seq,
            file,
            len: HEADER_LEN,
        });
        tracing::debug!(file = %path.display(), "wal: new segment");
        Ok(())
    }

    fn seal_active(&mut self) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        if self.dirty {
            match a.file.sync_data() {
                Ok(()) => {
                    self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.shared
                        .stats
                        .sync_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(segment = a.seq, error = %e, "wal: fsync of a finished segment failed");
                }
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        self.shared.segments.seal(a.seq);
    }

    /// Undoes a partial write so the next record starts at a frame boundary. If the file
    /// cannot be cut, its tail may hold half a record: leave the segment behind (replay
    /// reads it up to the garbage) and write on in a new one.
    fn cut_back(&mut self, good_len: u64) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        match a.file.set_len(good_len) {
            Ok(()) => a.len = good_len,
            Err(e) => {
                tracing::warn!(segment = a.seq, offset = good_len, error = %e, "wal: cannot truncate after a failed write, starting a new segment");
                self.abandon();
            }
        }
    }

    fn abandon(&mut self) {
        if let Some(a) = self.active.take() {
            self.dirty = false;
            self.shared.segments.seal(a.seq);
        }
    }

    fn maybe_interval_sync(&mut self, force: bool) {
        let due = match self.policy {
            SyncPolicy::Interval(d) => force || self.last_sync.elapsed() >= d,
            SyncPolicy::Off | SyncPolicy::Batch => false,
        };
        if !(self.dirty && due) {
            return;
        }
        let Some(a) = self.active.as_mut() else {
            self.dirty = false;
            return;
        };
        self.last_sync = Instant::now();
        match a.file.sync_data() {
            Ok(()) => {
                self.dirty = false;
                self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // Already acknowledged under this policy; all that can be done is to stop
                // trusting this file.
                self.shared
                    .stats
                    .sync_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(segment = a.seq, error = %e, "wal: periodic fsync failed, starting a new segment");
                self.abandon();
            }
        }
    }

    fn acknowledge(&mut self, group: &mut Vec<Pending>, lsns: Vec<Lsn>) {
        let stats = &self.shared.stats;
        let points: u64 = group.iter().map(|p| p.points).sum();
        stats
            .records
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        // Counted before the acks go out, so the received count never trails what a
        // client has been told.
        stats.points_received.fetch_add(points, Ordering::Release);
        for (p, lsn) in group.drain(..).zip(lsns) {
            // Budget first, so that whoever sees the ack also sees the room it freed.
            let Pending { ack, permit, .. } = p;
            drop(permit);
            // A submitter that gave up waiting is not an error: its record is durable.
            let _ = ack.send(Ok(lsn));
        }
    }

    fn fail_all(&mut self, group: &mut Vec<Pending>) {
        for p in group.drain(..) {
            let _ = p.ack.send(Err(WalError::Closed));
        }
        let mut q = lock(&self.shared.queue);
        for p in q.items.drain(..) {
            let _ = p.ack.send(Err(WalError::Closed));
        }
    }

    fn complain(&mut self, e: &io::Error, group: &[Pending]) {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        self.failures += 1;
        self.shared.stats.stalled.store(true, Ordering::Relaxed);
        if let Some(suppressed) = self.complaints.tick(now) {
            let waiting: usize = group.iter().map(|p| p.record.len()).sum();
            let disk_full = e.raw_os_error() == Some(libc::ENOSPC);
            tracing::error!(
                dir = %self.dir.display(),
                error = %e,
                disk_full,
                waiting_bytes = waiting,
                pending_bytes = self.shared.pending_bytes(),
                failures_since_last_log = suppressed,
                "wal: cannot write, holding batches in memory and retrying"
            );
        }
    }

    fn resumed(&mut self) {
        if let Some(since) = self.failing_since.take() {
            self.shared.stats.stalled.store(false, Ordering::Relaxed);
            tracing::warn!(
                dir = %self.dir.display(),
                failures = self.failures,
                stalled_for = ?since.elapsed(),
                "wal: writing again"
            );
            self.failures = 0;
            self.complaints = RateLimited {
                last: None,
                suppressed: 0,
            };
        }
    }

    fn close(&mut self) {
        self.maybe_interval_sync(true);
        // The last segment stays unsealed: nothing more is written to it in this process,
        // and the next start replays it and seals it then.
        self.active = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_logs_once_a_minute() {
        let mut r = RateLimited {
            last: None,
            suppressed: 0,
        };
        let t0 = Instant::now();
        assert_eq!(r.tick(t0), Some(0));
        assert_eq!(r.tick(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.tick(t0 + Duration::from_secs(59)), None);
        assert_eq!(r.tick(t0 + Duration::from_secs(60)), Some(2));
    }
}
