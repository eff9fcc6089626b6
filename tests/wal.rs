//! The write-ahead log from the outside: what is acknowledged is replayed after a close, a
//! torn tail, a flipped bit or a SIGKILL; group commit acknowledges only after the fsync;
//! segments roll and go once persisted, oldest first; a failing disk stalls the writer
//! without losing or inventing anything, and it resumes by itself.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carbide::wal::fs::{FaultyFs, StdFs, WalFile, WalFs};
use carbide::wal::{
    segment_path, CorruptionAction, Lsn, Point, Recovered, SyncPolicy, Wal, WalConfig, WalError,
};

fn batch(tag: &str, i: u64, n: usize) -> Vec<Point> {
    (0..n)
        .map(|k| Point {
            // Two metrics per batch, interleaved in runs, so the repeated-name encoding and
            // the explicit names both get exercised.
            name: format!("{tag}.m{}", k / 3 % 2),
            timestamp: (i * 1000 + k as u64) as f64,
            value: i as f64 + k as f64 / 100.0,
        })
        .collect()
}

fn open(config: WalConfig) -> (Wal, Recovered) {
    Wal::open(config).expect("open wal")
}

fn batches(r: &Recovered) -> Vec<Vec<Point>> {
    r.batches.iter().map(|b| b.points.clone()).collect()
}

fn wal_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal") || n.ends_with(".corrupt"))
        .collect();
    v.sort();
    v
}

/// Copies the segment files of `from` into a fresh directory.
fn copy_log(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for name in wal_files(from) {
        std::fs::copy(from.join(&name), to.path().join(&name)).unwrap();
    }
    to
}

#[test]
fn round_trip_blocking_and_async() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    let mut lsns = Vec::new();
    {
        let (wal, rec) = open(WalConfig::new(dir.path()));
        assert!(rec.batches.is_empty());
        for i in 0..20 {
            let b = batch("rt", i, (i as usize % 7) + 1);
            lsns.push(wal.append_blocking(&b).unwrap());
            expected.push(b);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let wal = Arc::new(wal);
        rt.block_on(async {
            for i in 20..30 {
                let b = batch("rt", i, 4);
                lsns.push(wal.append(&b).await.unwrap());
                expected.push(b);
            }
        });
        let s = wal.stats();
        assert_eq!(s.records, 30);
        assert_eq!(
            s.points_received,
            expected.iter().map(|b| b.len() as u64).sum::<u64>()
        );
        assert_eq!(s.write_errors, 0);
        assert!(s.fsyncs >= 1);
    }
    let (wal, rec) = open(WalConfig::new(dir.path()));
    assert!(rec.corruptions.is_empty());
    assert_eq!(batches(&rec), expected);
    assert_eq!(rec.batches.iter().map(|b| b.lsn).collect::<Vec<_>>(), lsns);
    assert!(lsns.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(rec.points, rec.points().count() as u64);
    // Replayed segments are sealed and count their points as outstanding.
    let segs = wal.segments();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].sealed);
    assert_eq!(segs[0].outstanding, rec.points);
}

#[test]
fn second_open_of_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(WalConfig::new(dir.path()));
    assert!(matches!(
        Wal::open(WalConfig::new(dir.path())),
        Err(WalError::Locked { .. })
    ));
    drop(wal);
    let _ = open(WalConfig::new(dir.path()));
}

/// Records, per file, how far it had been written when it was last fsynced.
#[derive(Clone, Default)]
struct TrackingFs {
    synced: Arc<Mutex<HashMap<PathBuf, u64>>>,
}

struct TrackingFile {
    inner: Box<dyn WalFile>,
    path: PathBuf,
    written: u64,
    synced: Arc<Mutex<HashMap<PathBuf, u64>>>,
}

impl WalFs for TrackingFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(TrackingFile {
            inner: StdFs.create(path)?,
            path: path.to_path_buf(),
            written: 0,
            synced: Arc::clone(&self.synced),
        }))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }
}

impl WalFile for TrackingFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        self.written = self.written.max(offset + buf.len() as u64);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()?;
        self.synced
            .lock()
            .unwrap()
            .insert(self.path.clone(), self.written);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)?;
        self.written = len;
        Ok(())
    }
}

#[test]
fn group_commit_acknowledges_only_after_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let fs = TrackingFs::default();
    let mut config = WalConfig::new(dir.path());
    config.fs = Arc::new(fs.clone());
    let (wal, _) = open(config);
    let wal = Arc::new(wal);
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 100;
    let violations = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            let fs = fs.clone();
            let violations = Arc::clone(&violations);
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let lsn = wal
                        .append_blocking(&batch(&format!("gc{t}"), i, 10))
                        .unwrap();
                    let path = segment_path(wal.dir(), lsn.segment);
                    let synced = fs.synced.lock().unwrap().get(&path).copied().unwrap_or(0);
                    // The record is written in one piece, so a sync that covered its first
                    // byte covered all of it.
                    if synced <= lsn.offset {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = wal.stats();
    assert_eq!(violations.load(Ordering::SeqCst), 0);
    assert_eq!(s.records, THREADS * PER_THREAD);
    assert_eq!(s.points_received, THREADS * PER_THREAD * 10);
    assert!(s.fsyncs >= 1);
    // With eight producers waiting on each fsync, groups form: fewer fsyncs than batches.
    assert!(
        s.fsyncs < s.records,
        "fsyncs {} batches {}",
        s.fsyncs,
        s.records
    );
    eprintln!("group commit: {} batches, {} fsyncs", s.records, s.fsyncs);
}

#[test]
fn interval_and_off_policies_acknowledge_without_waiting_for_fsync() {
    for policy in [
        SyncPolicy::Interval(Duration::from_millis(300)),
        SyncPolicy::Off,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyFs::new(Arc::new(StdFs));
        let mut config = WalConfig::new(dir.path());
        config.sync = policy;
        config.fs = Arc::new(faulty.clone());
        let (wal, _) = open(config);
        let mut expected = vec![batch("iv", 100, 1)];
        // Creates the segment, whose header is synced under `interval`.
        wal.append_blocking(&expected[0]).unwrap();
        // Failing fsyncs would block a `batch` ack forever; these policies do not wait.
        faulty.fail_syncs(libc::EIO);
        for i in 0..10 {
            let b = batch("iv", i, 3);
            wal.append_blocking(&b).unwrap();
            expected.push(b);
        }
        faulty.heal();
        if policy != SyncPolicy::Off {
            let deadline = Instant::now() + Duration::from_secs(5);
            while wal.stats().fsyncs == 0 && Instant::now() < deadline {
                wal.append_blocking(&batch("iv", 99, 1)).unwrap();
                expected.push(batch("iv", 99, 1));
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(wal.stats().fsyncs > 0, "interval policy never synced");
        } else {
            assert_eq!(wal.stats().fsyncs, 0);
        }
        drop(wal);
        let (_, rec) = open(WalConfig::new(dir.path()));
        assert_eq!(batches(&rec), expected);
    }
}

#[test]
fn segments_roll_and_are_dropped_oldest_first_once_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path());
    config.segment_size = 2048;
    let (wal, _) = open(config.clone());
    let mut by_segment: HashMap<u64, (u64, Vec<Vec<Point>>)> = HashMap::new();
    for i in 0..60 {
        let b = batch("roll", i, 8);
        let lsn = wal.append_blocking(&b).unwrap();
        let e = by_segment.entry(lsn.segment).or_default();
        e.0 += b.len() as u64;
        e.1.push(b);
    }
    let segs = wal.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    for s in &segs[..segs.len() - 1] {
        assert!(s.sealed);
        assert_eq!(s.outstanding, by_segment[&s.seq].0);
        let len = std::fs::metadata(segment_path(dir.path(), s.seq))
            .unwrap()
            .len();
        assert!(len <= 2048, "segment {} is {len} bytes", s.seq);
    }
    assert!(!segs.last().unwrap().sealed);
    let seqs: Vec<u64> = segs.iter().map(|s| s.seq).collect();

    // Later segments fully persisted first: nothing may go while the oldest is live.
    wal.mark_persisted(seqs[1], by_segment[&seqs[1]].0);
    wal.mark_persisted(seqs[2], by_segment[&seqs[2]].0);
    assert_eq!(wal.segments().len(), seqs.len());
    // Part of the oldest: still live.
    wal.mark_persisted(seqs[0], 1);
    assert_eq!(wal.segments().len(), seqs.len());
    assert!(segment_path(dir.path(), seqs[0]).exists());
    // The rest of it: the oldest three go together.
    wal.mark_persisted(seqs[0], by_segment[&seqs[0]].0 - 1);
    let live: Vec<u64> = wal.segments().iter().map(|s| s.seq).collect();
    assert_eq!(live, seqs[3..].to_vec());
    for &s in &seqs[..3] {
        assert!(!segment_path(dir.path(), s).exists());
    }
    assert_eq!(wal.stats().deleted_segments, 3);
    // The active segment is never deleted, even fully persisted.
    let last = *seqs.last().unwrap();
    for &s in &seqs[3..] {
        wal.mark_persisted(s, by_segment[&s].0);
    }
    assert_eq!(
        wal.segments().iter().map(|s| s.seq).collect::<Vec<_>>(),
        vec![last]
    );
    drop(wal);

    // Replay holds exactly what was not dropped, and the fully persisted last segment
    // is dropped after replay as soon as its points are reported again.
    let (wal, rec) = open(config.clone());
    assert_eq!(batches(&rec), by_segment[&last].1);
    wal.mark_persisted(last, rec.points);
    assert!(wal.segments().is_empty());
    assert!(wal_files(dir.path()).is_empty());
}

#[test]
fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path());
    config.segment_size = 512;
    let (wal, _) = open(config.clone());
    let small = wal.append_blocking(&batch("big", 0, 1)).unwrap();
    let big = wal.append_blocking(&batch("big", 1, 100)).unwrap();
    let after = wal.append_blocking(&batch("big", 2, 1)).unwrap();
    assert!(small.segment < big.segment && big.segment < after.segment);
    drop(wal);
    let (_, rec) = open(config);
    assert_eq!(rec.batches.len(), 3);
    assert_eq!(rec.batches[1].points.len(), 100);
}

/// Writes `n` batches into one segment and returns the directory and their positions.
fn one_segment_log(n: u64) -> (tempfile::TempDir, Vec<Lsn>, Vec<Vec<Point>>) {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(WalConfig::new(dir.path()));
    let mut lsns = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let b = batch("torn", i, 3);
        lsns.push(wal.append_blocking(&b).unwrap());
        expected.push(b);
    }
    drop(wal);
    (dir, lsns, expected)
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record() {
    let (dir, lsns, expected) = one_segment_log(5);
    let seg = lsns[0].segment;
    let path = segment_path(dir.path(), seg);
    let full = std::fs::metadata(&path).unwrap().len();
    let last = lsns[4].offset;
    for cut in last..=full {
        let copy = copy_log(dir.path());
        let p = segment_path(copy.path(), seg);
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (wal, rec) = open(WalConfig::new(copy.path()));
        if cut == full {
            assert_eq!(batches(&rec), expected);
            assert!(rec.corruptions.is_empty());
            continue;
        }
        assert_eq!(batches(&rec), expected[..4].to_vec(), "cut at {cut}");
        if cut == last {
            assert!(rec.corruptions.is_empty(), "clean cut at a record boundary");
        } else {
            assert_eq!(rec.corruptions.len(), 1, "cut at {cut}");
            assert_eq!(rec.corruptions[0].action, CorruptionAction::Truncated);
            assert_eq!(rec.corruptions[0].offset, last);
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), last);
        // The log keeps working after the repair, and a second replay is clean.
        wal.append_blocking(&batch("after", cut, 2)).unwrap();
        drop(wal);
        let (_, rec) = open(WalConfig::new(copy.path()));
        assert!(rec.corruptions.is_empty());
        assert_eq!(rec.batches.len(), 5);
        assert_eq!(rec.batches[4].points, batch("after", cut, 2));
    }
}

fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_bit_in_an_older_segment_skips_the_rest_of_it_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path());
    config.segment_size = 1024;
    let (wal, _) = open(config.clone());
    let mut written = Vec::new();
    for i in 0..30 {
        let b = batch("flip", i, 4);
        written.push((wal.append_blocking(&b).unwrap(), b));
    }
    drop(wal);
    let first = written[0].0.segment;
    let in_first: Vec<&(Lsn, Vec<Point>)> =
        written.iter().filter(|(l, _)| l.segment == first).collect();
    assert!(in_first.len() >= 3);
    assert!(written.last().unwrap().0.segment > first + 1);
    // A payload bit of the second record of the oldest segment.
    let victim = in_first[1].0;
    flip_bit(&segment_path(dir.path(), first), victim.offset + 20);

    let (_, rec) = open(config);
    let expected: Vec<Vec<Point>> = written
        .iter()
        .filter(|(l, _)| l.segment != first || l.offset < victim.offset)
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(batches(&rec), expected);
    assert_eq!(rec.corruptions.len(), 1);
    assert_eq!(rec.corruptions[0].action, CorruptionAction::SkippedRest);
    assert_eq!(rec.corruptions[0].offset, victim.offset);
    // An older segment is left as it is on disk.
    assert!(
        std::fs::metadata(segment_path(dir.path(), first))
            .unwrap()
            .len()
            > victim.offset + 20
    );
}

#[test]
fn flipped_bit_in_the_newest_segment_truncates_there() {
    let (dir, lsns, expected) = one_segment_log(6);
    let path = segment_path(dir.path(), lsns[0].segment);
    // The length field of the third record.
    flip_bit(&path, lsns[2].offset + 1);
    let (_, rec) = open(WalConfig::new(dir.path()));
    assert_eq!(batches(&rec), expected[..2].to_vec());
    assert_eq!(rec.corruptions[0].action, CorruptionAction::Truncated);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), lsns[2].offset);
}

#[test]
fn empty_and_garbage_segment_files() {
    let (dir, lsns, expected) = one_segment_log(3);
    let seg = lsns[0].segment;
    // A crash while creating the next segment, and a stranger's file with a segment name
    // in front of everything.
    std::fs::write(segment_path(dir.path(), seg + 1), b"CARB").unwrap();
    std::fs::write(segment_path(dir.path(), 0), b"definitely not a wal segment").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let (wal, rec) = open(WalConfig::new(dir.path()));
    assert_eq!(batches(&rec), expected);
    let actions: Vec<CorruptionAction> = rec.corruptions.iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        vec![
            CorruptionAction::RenamedAside,
            CorruptionAction::RemovedEmpty
        ]
    );
    assert!(!segment_path(dir.path(), seg + 1).exists());
    assert!(dir.path().join(format!("{:020}.wal.corrupt", 0)).exists());
    // New writes never reuse a number that was seen.
    let lsn = wal.append_blocking(&batch("g", 9, 1)).unwrap();
    assert!(lsn.segment > seg);
    drop(wal);
    let (_, rec) = open(WalConfig::new(dir.path()));
    assert!(rec.corruptions.is_empty());
    assert_eq!(rec.batches.len(), 4);

    // A segment holding only its header replays nothing and is dropped at once.
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = open(WalConfig::new(dir.path()));
        let lsn = wal.append_blocking(&batch("h", 0, 1)).unwrap();
        drop(wal);
        let p = segment_path(dir.path(), lsn.segment);
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(carbide::wal::HEADER_LEN)
            .unwrap();
    }
    let (wal, rec) = open(WalConfig::new(dir.path()));
    assert!(rec.batches.is_empty());
    assert!(wal.segments().is_empty());
    assert!(wal_files(dir.path()).is_empty());
}

#[test]
fn a_segment_of_an_unknown_version_stops_the_open() {
    let (dir, lsns, _) = one_segment_log(1);
    let path = segment_path(dir.path(), lsns[0].segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 2;
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        Wal::open(WalConfig::new(dir.path())),
        Err(WalError::UnsupportedVersion { version: 2, .. })
    ));
}

/// Waits until `cond` holds, for at most five seconds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn disk_full_stalls_applies_backpressure_and_resumes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let mut config = WalConfig::new(dir.path());
    config.fs = Arc::new(faulty.clone());
    config.max_pending_bytes = 16 << 10;
    let (wal, _) = open(config);
    let wal = Arc::new(wal);
    let mut expected: Vec<Vec<Point>> = Vec::new();
    for i in 0..5 {
        let b = batch("pre", i, 10);
        wal.append_blocking(&b).unwrap();
        expected.push(b);
    }
    // Room for a little more than one record: the next group lands partially.
    faulty.set_space(700);

    // Many connections' worth of batches in flight at once (about 100 KiB against a
    // 16 KiB budget), plus one blocking producer.
    const TASKS: u64 = 240;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let b = batch(&format!("full{}", i % 4), i, 20);
            expected.push(b.clone());
            let fut = wal.append(&b);
            let acked = Arc::clone(&acked);
            rt.spawn(async move {
                let lsn = fut.await.unwrap();
                acked.fetch_add(1, Ordering::SeqCst);
                lsn
            })
        })
        .collect();
    let blocking = {
        let wal = Arc::clone(&wal);
        let acked = Arc::clone(&acked);
        let b = batch("full.blocking", 0, 20);
        expected.push(b.clone());
        std::thread::spawn(move || {
            let lsn = wal.append_blocking(&b).unwrap();
            acked.fetch_add(1, Ordering::SeqCst);
            lsn
        })
    };

    wait_for("the writer to stall", || wal.stats().stalled);
    // Producers fill the budget, then wait: backpressure, not unbounded memory.
    wait_for("the pending budget to fill", || {
        wal.stats().pending_bytes > (16 << 10) - 1024
    });
    let stuck_at = acked.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let s = wal.stats();
    assert!(s.stalled);
    assert!(s.write_errors >= 2, "retries: {s:?}");
    assert!(s.pending_bytes <= 16 << 10);
    assert_eq!(
        acked.load(Ordering::SeqCst),
        stuck_at,
        "nothing acked while full"
    );
    assert!(stuck_at < 2, "acked {stuck_at} of {}", TASKS + 1);
    assert!(faulty.injected() >= 2);

    faulty.heal();
    let mut lsns: Vec<Lsn> = rt.block_on(async {
        let mut v = Vec::new();
        for t in tasks {
            v.push(t.await.unwrap());
        }
        v
    });
    lsns.push(blocking.join().unwrap());
    let s = wal.stats();
    assert!(!s.stalled);
    assert_eq!(s.records, 6 + TASKS);
    assert_eq!(s.pending_bytes, 0);
    drop(wal);

    // Every batch exactly once, at the position its ack named, and the partial write
    // was cut away cleanly.
    let (_, rec) = open(WalConfig::new(dir.path()));
    assert!(rec.corruptions.is_empty(), "{:?}", rec.corruptions);
    let got = batches(&rec);
    assert_eq!(got[..5].to_vec(), expected[..5].to_vec());
    assert_eq!(got.len(), expected.len());
    let by_lsn: HashMap<Lsn, &Vec<Point>> =
        rec.batches.iter().map(|b| (b.lsn, &b.points)).collect();
    for (lsn, b) in lsns.iter().zip(&expected[5..]) {
        assert_eq!(by_lsn[lsn], b);
    }
}

#[test]
fn failed_fsync_is_not_acknowledged_and_writing_moves_to_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let mut config = WalConfig::new(dir.path());
    config.fs = Arc::new(faulty.clone());
    let (wal, _) = open(config);
    let wal = Arc::new(wal);
    let first = wal.append_blocking(&batch("eio", 0, 5)).unwrap();
    faulty.fail_syncs(libc::EIO);
    let w = Arc::clone(&wal);
    let t = std::thread::spawn(move || w.append_blocking(&batch("eio", 1, 5)).unwrap());
    wait_for("failed fsyncs", || {
        let s = wal.stats();
        s.sync_errors >= 2 && s.write_errors >= 2
    });
    assert!(!t.is_finished());
    assert_eq!(wal.stats().records, 1);
    faulty.heal();
    let second = t.join().unwrap();
    assert!(second.segment > first.segment);
    drop(wal);
    let (_, rec) = open(WalConfig::new(dir.path()));
    assert!(rec.corruptions.is_empty());
    assert_eq!(batches(&rec), vec![batch("eio", 0, 5), batch("eio", 1, 5)]);
}

#[test]
fn close_with_a_dead_disk_fails_waiting_batches_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyFs::new(Arc::new(StdFs));
    let mut config = WalConfig::new(dir.path());
    config.fs = Arc::new(faulty.clone());
    let (wal, _) = open(config);
    faulty.fail_all(libc::EIO);
    let fut = wal.append(&batch("dead", 0, 1));
    let t = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(fut)
    });
    wait_for("a failed write", || wal.stats().stalled);
    wal.close();
    assert!(matches!(t.join().unwrap(), Err(WalError::Closed)));
    let (_, rec) = open(WalConfig::new(dir.path()));
    assert!(rec.batches.is_empty());
}

// ---- crash test: a child process appends until SIGKILLed ----

const CRASH_DIR_ENV: &str = "CARBIDE_WAL_CRASH_DIR";
const CRASH_ROUND_ENV: &str = "CARBIDE_WAL_CRASH_ROUND";

/// Tag and sequence number of a batch made by `batch`.
fn batch_id(points: &[Point]) -> (String, u64) {
    let first = &points[0];
    let tag = first.name.rsplit_once('.').map(|(t, _)| t).unwrap_or("");
    (tag.to_string(), first.timestamp as u64 / 1000)
}

/// The child side of `sigkill_at_random_moments_loses_no_acknowledged_batch`: four
/// producers append and report "SUB" before and "ACK" after each batch, and play the
/// persister by releasing batches 50 behind the newest ("PER", printed before the release
/// so the parent's set is a superset), so segments roll and are deleted while it runs.
/// As a normal test (no env var) it does nothing.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var(CRASH_ROUND_ENV).unwrap().parse().unwrap();
    let mut config = WalConfig::new(dir);
    config.segment_size = 8 << 10;
    let (wal, rec) = open(config);
    for b in &rec.batches {
        let (tag, i) = batch_id(&b.points);
        writeln!(io::stdout().lock(), "PER {tag} {i}").unwrap();
        wal.mark_persisted(b.lsn.segment, b.points.len() as u64);
    }
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let tag = format!("crash.r{round}.t{t}");
                let mut unpersisted = std::collections::VecDeque::new();
                // Bounded so that a lost parent cannot leave it running forever.
                for i in 0..100_000u64 {
                    let b = batch(&tag, i, 1 + (i % 5) as usize);
                    writeln!(io::stdout().lock(), "SUB {tag} {i}").unwrap();
                    let lsn = wal.append_blocking(&b).unwrap();
                    writeln!(io::stdout().lock(), "ACK {tag} {i}").unwrap();
                    unpersisted.push_back((lsn, b.len() as u64, i));
                    if unpersisted.len() > 50 {
                        let (lsn, n, i) = unpersisted.pop_front().unwrap();
                        writeln!(io::stdout().lock(), "PER {tag} {i}").unwrap();
                        wal.mark_persisted(lsn.segment, n);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = XorShift(seed);
    let exe = std::env::current_exe().unwrap();
    let mut acked: HashSet<(String, u64)> = HashSet::new();
    let mut submitted: HashSet<(String, u64)> = HashSet::new();
    let mut persisted: HashSet<(String, u64)> = HashSet::new();
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_DIR_ENV, dir.path())
            .env(CRASH_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(l) => lines.lock().unwrap().push(l),
                        Err(_) => break,
                    }
                }
            })
        };
        wait_for("the child's first ack", || {
            lines.lock().unwrap().iter().any(|l| l.starts_with("ACK "))
        });
        std::thread::sleep(Duration::from_millis(rng.next() % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let mut round_acks = 0;
        for l in lines.lock().unwrap().iter() {
            // The harness writes "test crash_child ... " without a newline, so a marker
            // may start mid-line.
            let words: Vec<&str> = l.split_whitespace().collect();
            for w in words.windows(3) {
                let Ok(i) = w[2].parse::<u64>() else { continue };
                match w[0] {
                    "SUB" => {
                        submitted.insert((w[1].to_string(), i));
                    }
                    "ACK" => {
                        round_acks += 1;
                        acked.insert((w[1].to_string(), i));
                    }
                    "PER" => {
                        persisted.insert((w[1].to_string(), i));
                    }
                    _ => {}
                }
            }
        }

        let (wal, rec) = open(WalConfig::new(dir.path()));
        let mut replayed: HashSet<(String, u64)> = HashSet::new();
        for b in &rec.batches {
            let (tag, i) = batch_id(&b.points);
            // Replayed batches are whole and exactly what was sent.
            assert_eq!(b.points, batch(&tag, i, 1 + (i % 5) as usize));
            assert!(
                submitted.contains(&(tag.clone(), i)),
                "replayed a batch never submitted: {tag} {i}"
            );
            assert!(
                replayed.insert((tag.clone(), i)),
                "batch replayed twice: {tag} {i}"
            );
        }
        // Deleting a segment is the only way to lose a record, and it may only happen
        // once all its points were reported persisted.
        let missing: Vec<_> = acked
            .iter()
            .filter(|id| !replayed.contains(*id) && !persisted.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: acked but not replayed: {missing:?}"
        );
        eprintln!(
            "round {round}: {round_acks} acks, {} batches replayed from {} segments, {} persisted so far, {} corruptions",
            rec.batches.len(),
            rec.segments,
            persisted.len(),
            rec.corruptions.len()
        );
        drop(wal);
    }
}
