//! The persister's open files: a file kept open between writes, closed for room and opened
//! again, replaced by whisper-resize.py, rewritten in place by
//! whisper-set-aggregation-method.py or deleted between two writes must end up holding
//! exactly the bytes whisper.py 1.1.10 writes for the same sequence of `update_many` calls
//! (and the same tools run at the same points of it). Also: the write-ahead log's segments are
//! deleted once the persister has written (and synced) their points.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carbide::cache::{Cache, Strategy};
use carbide::persist::{PersistSettings, PersistStats, PersistTuning, Persister};
use carbide::schema::Schemas;
use carbide::whisper::{self, WriteOptions};

const SCHEMA: &str = "[all]\npattern = .*\nretentions = 10s:1d,1m:30d\n";
const ARCHIVES: &str = "[(10, 8640), (60, 43200)]";

struct Server {
    cache: Arc<Cache>,
    stats: Arc<PersistStats>,
    persister: Persister,
    root: PathBuf,
    committed: u64,
}

impl Server {
    fn start(root: &Path, open_files: usize) -> Server {
        Self::start_with(root, open_files, WriteOptions::default())
    }

    fn start_with(root: &Path, open_files: usize, write: WriteOptions) -> Server {
        let cache = Arc::new(Cache::unbounded());
        let stats = Arc::new(PersistStats::default());
        let schemas = Arc::new(Schemas::from_strs(SCHEMA, None).expect("schema"));
        let persister = Persister::start_tuned(
            cache.clone(),
            None,
            schemas,
            PersistSettings {
                whisper_dir: root.to_path_buf(),
                strategy: Strategy::Sorted,
                workers: 1,
                max_updates_per_second: 0,
                max_creates_per_minute: 0,
                write,
                sparse_create: true,
                fallocate_create: false,
            },
            PersistTuning {
                open_files_per_worker: Some(open_files),
            },
            stats.clone(),
        );
        Server {
            cache,
            stats,
            persister,
            root: root.to_path_buf(),
            committed: 0,
        }
    }

    /// Caches the points and waits until whisper has them: one `update_many` per metric.
    fn write(&mut self, metric: &str, points: &[(i64, f64)]) {
        for &(t, v) in points {
            self.cache.insert(metric, t as f64, v, 0);
        }
        self.committed += points.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.stats.committed_points.load(Ordering::SeqCst) < self.committed {
            assert!(
                Instant::now() < deadline,
                "persister did not write {metric}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(self.stats.errors.load(Ordering::SeqCst), 0);
    }

    fn path(&self, metric: &str) -> PathBuf {
        self.root.join(format!("{}.wsp", metric.replace('.', "/")))
    }

    fn stat(&self, which: &str) -> u64 {
        let s = &self.stats;
        match which {
            "hits" => s.open_file_hits.load(Ordering::SeqCst),
            "evictions" => s.open_file_evictions.load(Ordering::SeqCst),
            "replaced" => s.open_file_replaced.load(Ordering::SeqCst),
            "creates" => s.creates.load(Ordering::SeqCst),
            _ => unreachable!(),
        }
    }
}

/// whisper.py's side of a test: a script of steps run against one file.
enum Step<'a> {
    UpdateMany(Vec<(i64, f64)>),
    Tool(&'a str, Vec<&'a str>),
    Delete,
}

/// Runs the steps with whisper.py on `path`, creating it first (as the persister does, with
/// the schema's archives and the default aggregation) and after a `Delete`.
fn whisper_py(path: &Path, steps: &[Step]) {
    let mut script = format!(
        "import os, whisper\npath = {path:?}\n\
         def create():\n    whisper.create(path, {ARCHIVES}, xFilesFactor=0.5, \
         aggregationMethod='average', sparse=True)\n\
         create()\n"
    );
    for step in steps {
        match step {
            Step::UpdateMany(points) => {
                let pts: Vec<String> = points
                    .iter()
                    .map(|(t, v)| format!("({t}, {v:?})"))
                    .collect();
                script += &format!("whisper.update_many(path, [{}])\n", pts.join(", "));
            }
            Step::Tool(tool, args) => {
                let exe = common::whisper_tool(tool);
                let mut argv = vec![
                    common::python().display().to_string(),
                    exe.display().to_string(),
                ];
                argv.push(path.display().to_string());
                argv.extend(args.iter().map(|a| a.to_string()));
                script += &format!(
                    "import subprocess\nsubprocess.run({argv:?}, check=True, stdout=subprocess.DEVNULL)\n"
                );
            }
            Step::Delete => script += "os.unlink(path)\ncreate()\n",
        }
    }
    common::run_python(&script);
}

fn run_tool(tool: &str, path: &Path, args: &[&str]) {
    let out = Command::new(common::python())
        .arg(common::whisper_tool(tool))
        .arg(path)
        .args(args)
        .output()
        .expect("run tool");
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` points 10 s apart, starting `first` steps after a fixed recent base.
fn points(first: i64, n: i64, value: f64) -> Vec<(i64, f64)> {
    let now = whisper::now_epoch();
    let base = now - now.rem_euclid(3600) - 3600;
    (first..first + n)
        .map(|i| (base + 10 * i, value + i as f64))
        .collect()
}

fn same_bytes(ours: &Path, theirs: &Path) {
    let (a, b) = (std::fs::read(ours).unwrap(), std::fs::read(theirs).unwrap());
    assert_eq!(
        a.len(),
        b.len(),
        "{} vs {}",
        ours.display(),
        theirs.display()
    );
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        panic!("{} differs from whisper.py's at byte {i}", ours.display());
    }
}

#[test]
fn kept_open_and_evicted_files_match_whisper_py() {
    let locked = WriteOptions {
        lock: true,
        autoflush: true,
    };
    for (open_files, label, write) in [
        (16, "kept", WriteOptions::default()),
        (2, "evicted", WriteOptions::default()),
        // carbon's WHISPER_LOCK_WRITES and WHISPER_AUTOFLUSH on kept handles.
        (16, "locked", locked),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_with(&dir.path().join("whisper"), open_files, write);
        let metrics: Vec<String> = (0..5).map(|i| format!("{label}.m{i}")).collect();
        let mut rounds = Vec::new();
        for round in 0..4 {
            // Rounds overlap the previous one's last point (a rewrite) and go past the
            // 1-minute boundaries, so that lower archives are read and written through the
            // kept handle too.
            let pts = points(round * 5, 6, round as f64 * 100.0);
            for m in &metrics {
                server.write(m, &pts);
            }
            rounds.push(pts);
        }
        let files = metrics.iter().map(|m| server.path(m)).collect::<Vec<_>>();
        // A kept handle holds no lock between writes: another writer can take one.
        for f in &files {
            let other = std::fs::File::open(f).unwrap();
            assert!(
                other.try_lock().is_ok(),
                "{label}: {} is locked",
                f.display()
            );
        }
        let (hits, evictions) = (server.stat("hits"), server.stat("evictions"));
        assert_eq!(server.stat("creates"), 5);
        server.persister.shutdown();
        if open_files >= 5 {
            assert_eq!((hits, evictions), (15, 0), "{label}");
        } else {
            assert!(evictions > 0, "{label}: {evictions} evictions");
            assert_eq!(hits + evictions + open_files as u64, 20, "{label}");
        }
        let reference = dir.path().join("reference.wsp");
        let steps: Vec<Step> = rounds.into_iter().map(Step::UpdateMany).collect();
        whisper_py(&reference, &steps);
        for f in &files {
            same_bytes(f, &reference);
        }
    }
}

#[test]
fn file_resized_between_writes_gets_the_second_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("whisper"), 16);
    let (first, second) = (points(0, 12, 1.0), points(12, 12, 50.0));
    server.write("r.resized", &first);
    let path = server.path("r.resized");
    let resize = ["10s:2d", "1m:60d", "--nobackup"];
    run_tool("whisper-resize.py", &path, &resize);
    server.write("r.resized", &second);
    assert_eq!(server.stat("replaced"), 1);
    assert_eq!(server.stat("hits"), 0);
    server.persister.shutdown();
    let reference = dir.path().join("reference.wsp");
    whisper_py(
        &reference,
        &[
            Step::UpdateMany(first),
            Step::Tool("whisper-resize.py", resize.to_vec()),
            Step::UpdateMany(second),
        ],
    );
    same_bytes(&path, &reference);
    // The resized file's own archives, not the old ones, took the write.
    let info = whisper::info(&path).unwrap();
    assert_eq!(info.archives[0].points, 17280);
}

#[test]
fn header_rewritten_in_place_between_writes_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("whisper"), 16);
    let (first, second) = (points(0, 12, 1.0), points(12, 12, 50.0));
    server.write("h.max", &first);
    let path = server.path("h.max");
    run_tool("whisper-set-aggregation-method.py", &path, &["max"]);
    server.write("h.max", &second);
    // Same file, kept open: its header is what changed.
    assert_eq!((server.stat("hits"), server.stat("replaced")), (1, 0));
    server.persister.shutdown();
    let reference = dir.path().join("reference.wsp");
    whisper_py(
        &reference,
        &[
            Step::UpdateMany(first),
            Step::Tool("whisper-set-aggregation-method.py", vec!["max"]),
            Step::UpdateMany(second),
        ],
    );
    same_bytes(&path, &reference);
}

#[test]
fn file_deleted_between_writes_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("whisper"), 16);
    let (first, second) = (points(0, 6, 1.0), points(6, 6, 50.0));
    server.write("d.gone", &first);
    let path = server.path("d.gone");
    std::fs::remove_file(&path).unwrap();
    server.write("d.gone", &second);
    assert_eq!((server.stat("replaced"), server.stat("creates")), (1, 2));
    server.persister.shutdown();
    let reference = dir.path().join("reference.wsp");
    whisper_py(
        &reference,
        &[
            Step::UpdateMany(first),
            Step::Delete,
            Step::UpdateMany(second),
        ],
    );
    same_bytes(&path, &reference);
}

/// The persister syncs and releases WAL records when that lets the WAL delete a segment: with
/// small segments, every sealed segment goes soon after its points are written, and at
/// shutdown nothing is left outstanding.
#[test]
fn wal_segments_are_deleted_once_their_points_are_written() {
    use carbide::wal::{Point, Wal, WalConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("whisper");
    let mut config = WalConfig::new(dir.path().join("wal"));
    config.segment_size = 4096;
    let (wal, _) = Wal::open(config).expect("wal");
    let wal = Arc::new(wal);
    let cache = Arc::new(Cache::unbounded());
    let stats = Arc::new(PersistStats::default());
    let schemas = Arc::new(Schemas::from_strs(SCHEMA, None).expect("schema"));
    let persister = Persister::start(
        cache.clone(),
        Some(wal.clone()),
        schemas,
        PersistSettings {
            whisper_dir: root.clone(),
            strategy: Strategy::Sorted,
            workers: 2,
            max_updates_per_second: 0,
            max_creates_per_minute: 0,
            write: WriteOptions::default(),
            sparse_create: true,
            fallocate_create: false,
        },
        stats.clone(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as f64;
    let mut total = 0;
    for round in 0..60 {
        let batch: Vec<Point> = (0..20)
            .map(|m| Point {
                name: format!("walseg.m{m}"),
                timestamp: now - 3000.0 + f64::from(round) * 10.0,
                value: f64::from(round),
            })
            .collect();
        let lsn = wal.append_blocking(&batch).expect("append");
        cache.insert_batch(&batch, lsn.segment as u32);
        total += batch.len() as u64;
    }
    assert!(wal.segments().len() > 4, "{:?}", wal.segments());
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.committed_points.load(Ordering::SeqCst) < total
        || wal.segments().iter().filter(|s| s.sealed).count() > 0
    {
        assert!(
            Instant::now() < deadline,
            "sealed segments left: {:?}",
            wal.segments()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    persister.shutdown();
    assert!(wal.stats().deleted_segments > 4);
    assert!(
        wal.segments().iter().all(|s| s.outstanding == 0),
        "{:?}",
        wal.segments()
    );
}
