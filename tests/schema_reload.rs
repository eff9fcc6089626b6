//! Schema reload while the server runs, against carbon 1.1.10 itself: the same sequence of
//! storage-schemas.conf / storage-aggregation.conf edits goes through carbon's writer
//! (`reloadStorageSchemas`, `reloadAggregationSchemas`, each in its own loop as its two
//! `LoopingCall`s, then the schema matching of `writeCachedDataPoints` and whisper.py's
//! create) in the test venv, and whisper.py's `info` of each file carbon would have made must
//! equal its `info` of the file `carbide serve` made.
//!
//! One deliberate difference is checked as such: a retention carbon cannot parse makes its
//! storage reload raise `SystemExit`, which ends that `LoopingCall` for good, so carbon never
//! sees a later fix of the file; Carbide refuses the bad file, keeps the old rules and loads
//! the fixed file. For that step the expectation is carbon's loaders run afresh on the fixed
//! files (what a restarted carbon-cache would use).
//!
//! The unit-level tests drive [`Reloader::check`] directly: what counts as a change, what
//! each file's refusal keeps, and the embedded-defaults case.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbide::config::Config;
use carbide::schema::reload::{Checked, LiveSchemas, Reloader};
use carbide::schema::{Schemas, AGGREGATION_FILE, SCHEMAS_FILE};
use carbide::whisper::AggregationMethod;
use common::server::{free_port, Server};
use serde_json::{json, Value};

const S0: &str = "[a]\npattern = ^a\\.\nretentions = 10s:1h,1m:1d\n\n\
                  [default]\npattern = .*\nretentions = 60s:1d\n";
const A0: &str = "[a]\npattern = ^a\\.\nxFilesFactor = 0.25\naggregationMethod = max\n";
const S1: &str = "[a_new]\npattern = ^a\\.\nretentions = 5s:10m,1m:2h,1h:7d\n";
const A1: &str = "[a_new]\npattern = ^a\\.\nxFilesFactor = 0.75\naggregationMethod = sum\n";
/// `10x`: carbon's retention parser raises `Invalid unit 'x'` (SystemExit in its loader).
const S_BAD: &str = "[a_bad]\npattern = ^a\\.\nretentions = 10x:1h\n";
const A2: &str = "[a_agg2]\npattern = ^a\\.\nxFilesFactor = 0\naggregationMethod = last\n";
const S3: &str = "[a_fixed]\npattern = ^a\\.\nretentions = 1m:1h,10m:1d\n";

/// Simulates carbon-cache's writer over a sequence of steps. Each step writes the files it
/// gives, runs each reload loop that is still alive (a `LoopingCall` whose function raised,
/// `SystemExit` included, stops), then reports the whisper.py info of the file carbon's
/// writer would create for the step's metric, and of the one carbon's loaders run afresh on
/// the current files would give.
const CARBON_WRITER: &str = r#"
import json, os, sys, tempfile
import whisper
d = tempfile.mkdtemp()
from carbon.conf import settings
settings.setdefault("CONF_DIR", d)
settings.setdefault("LOCAL_DATA_DIR", d)
from carbon import state, storage
from carbon.database import WhisperDatabase
state.database = WhisperDatabase(settings)
storage.STORAGE_SCHEMAS_CONFIG = os.path.join(d, "storage-schemas.conf")
storage.STORAGE_AGGREGATION_CONFIG = os.path.join(d, "storage-aggregation.conf")

class Log:
    def __init__(self): self.lines = []
    def err(self, m=None, *a, **k): self.lines.append(str(m))
    def msg(self, m=None, *a, **k): self.lines.append(str(m))
    def creates(self, m=None, *a, **k): pass
log = Log()
storage.log = log

def write(name, text):
    if text is not None:
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

def create(name, schemas, aggregation):
    archives = next([a.getTuple() for a in s.archives] for s in schemas if s.matches(name))
    xff, method = next(s.archives for s in aggregation if s.matches(name))
    path = tempfile.mktemp(suffix=".wsp", dir=d)
    whisper.create(path, archives, xff, method)
    return whisper.info(path)

steps = json.load(sys.stdin)
write("storage-schemas.conf", steps[0]["schemas"])
write("storage-aggregation.conf", steps[0]["aggregation"])
from carbon import writer
writer.log = log
alive = {"storage": True, "aggregation": True}
out = []
for i, step in enumerate(steps):
    log.lines = []
    if i > 0:
        write("storage-schemas.conf", step["schemas"])
        write("storage-aggregation.conf", step["aggregation"])
        for loop, fn in (("storage", writer.reloadStorageSchemas),
                         ("aggregation", writer.reloadAggregationSchemas)):
            if alive[loop]:
                try:
                    fn()
                except BaseException as e:
                    alive[loop] = False
                    log.lines.append("loop stopped: %s(%s)" % (type(e).__name__, e))
    r = {"carbon": create(step["metric"], writer.SCHEMAS, writer.AGGREGATION_SCHEMAS),
         "log": log.lines, "alive": dict(alive)}
    try:
        r["fresh"] = create(step["metric"], storage.loadStorageSchemas(),
                            storage.loadAggregationSchemas())
    except BaseException as e:
        r["fresh"] = type(e).__name__
    r["carbide"] = whisper.info(step["file"])
    out.append(r)
print(json.dumps(out))
"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock")
}

/// Replaces `dir/name` atomically, as configuration management does (a reader never sees a
/// half-written file).
fn put(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

/// `carbide serve` with its stderr collected, so the test can wait for log lines.
struct Logged {
    server: Server,
    log: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    fn start(data: &Path, schemas: &Path, config: &Path) -> Logged {
        let (line, pickle, http) = (free_port(), free_port(), free_port());
        let mut child = Command::new(common::carbide_bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .arg("--schemas")
            .arg(schemas)
            .args(["--line-tcp", &format!("127.0.0.1:{line}")])
            .args(["--line-udp", &format!("127.0.0.1:{line}")])
            .args(["--pickle", &format!("127.0.0.1:{pickle}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--cache-query", "off"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start carbide serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lock").push(line);
            }
        });
        let logged = Logged {
            server: Server {
                child,
                data: data.to_path_buf(),
                line,
                pickle,
                http,
            },
            log,
        };
        logged.wait_log(0, &["carbide serving"]);
        logged
    }

    fn lines(&self) -> usize {
        self.log.lock().expect("log lock").len()
    }

    /// Waits (up to 10 s) until every one of `wanted` is in some log line from line `from` on.
    fn wait_log(&self, from: usize, wanted: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let log = self.log.lock().expect("log lock");
                let tail = log.get(from..).unwrap_or_default();
                if wanted.iter().all(|w| tail.iter().any(|l| l.contains(w))) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "no log line with each of {wanted:?}; log since the step:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one point for `metric` and waits until the server has created `creates` files.
    fn create(&self, metric: &str, creates: u64) {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.server.line)).expect("connect");
        writeln!(tcp, "{metric} 1 {}", now()).expect("send");
        drop(tcp);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.server.stats()["persist"]["creates"].as_u64() < Some(creates) {
            assert!(Instant::now() < deadline, "{metric} was not created");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn serve_reloads_schemas_for_new_metrics_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, schemas) = (tmp.path().join("data"), tmp.path().join("schemas"));
    std::fs::create_dir_all(&schemas).expect("mkdir");
    put(&schemas, SCHEMAS_FILE, S0);
    put(&schemas, AGGREGATION_FILE, A0);
    let config = tmp.path().join("carbide.toml");
    std::fs::write(
        &config,
        "schema_reload_seconds = 1\n[self_metrics]\ninterval_seconds = 0\n",
    )
    .expect("config");
    let s = Logged::start(&data, &schemas, &config);
    let storage_loaded = format!("{} loaded", schemas.join(SCHEMAS_FILE).display());
    let aggregation_loaded = format!("{} loaded", schemas.join(AGGREGATION_FILE).display());

    s.create("a.x", 1);

    // Both files change: a.y gets the new rules, a.x keeps what it was created with.
    let from = s.lines();
    put(&schemas, SCHEMAS_FILE, S1);
    put(&schemas, AGGREGATION_FILE, A1);
    s.wait_log(from, &[&storage_loaded, &aggregation_loaded]);
    s.create("a.y", 2);

    // A bad retention with a good aggregation file: the aggregation rules are taken, the
    // storage schemas stay as they were, and the server goes on.
    let from = s.lines();
    put(&schemas, SCHEMAS_FILE, S_BAD);
    put(&schemas, AGGREGATION_FILE, A2);
    s.wait_log(from, &[&aggregation_loaded, "refused"]);
    s.create("a.z", 3);
    let refused: Vec<String> = s.log.lock().expect("log lock")[from..]
        .iter()
        .filter(|l| l.contains("refused"))
        .cloned()
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("ERROR"), "{}", refused[0]);
    assert!(
        refused[0].contains(&format!("{}:3:", schemas.join(SCHEMAS_FILE).display())),
        "the error names file and line: {}",
        refused[0]
    );
    assert!(refused[0].contains("Invalid unit"), "{}", refused[0]);

    // The file fixed: retried at its change (carbon's storage reload loop died above).
    let from = s.lines();
    put(&schemas, SCHEMAS_FILE, S3);
    s.wait_log(from, &[&storage_loaded]);
    s.create("a.w", 4);
    // A refused file is reported once, not at every look.
    let refusals = s
        .log
        .lock()
        .expect("log lock")
        .iter()
        .filter(|l| l.contains("refused"))
        .count();
    assert_eq!(refusals, 1);
    s.server.stop();

    let file = |m: &str| data.join("whisper/a").join(format!("{m}.wsp"));
    let steps = json!([
        {"schemas": S0, "aggregation": A0, "metric": "a.x", "file": file("x")},
        {"schemas": S1, "aggregation": A1, "metric": "a.y", "file": file("y")},
        {"schemas": S_BAD, "aggregation": A2, "metric": "a.z", "file": file("z")},
        {"schemas": S3, "aggregation": null, "metric": "a.w", "file": file("w")},
    ]);
    let out = run_carbon_writer(&steps);
    for (i, r) in out.iter().enumerate().take(3) {
        assert_eq!(r["carbide"], r["carbon"], "step {i}: {r}");
    }
    // The steps did what they were meant to: each of the first three files differs from the
    // one before in what the step changed.
    assert_ne!(out[1]["carbon"]["archives"], out[0]["carbon"]["archives"]);
    assert_ne!(
        out[1]["carbon"]["aggregationMethod"],
        out[0]["carbon"]["aggregationMethod"]
    );
    assert_eq!(out[2]["carbon"]["archives"], out[1]["carbon"]["archives"]);
    assert_ne!(
        out[2]["carbon"]["aggregationMethod"],
        out[1]["carbon"]["aggregationMethod"]
    );
    assert_eq!(out[2]["fresh"], "SystemExit", "{}", out[2]);
    assert_eq!(
        out[2]["alive"],
        json!({"storage": false, "aggregation": true})
    );
    // Deliberate difference: carbon stays on S1's retentions for good; Carbide loads the fix,
    // as a restarted carbon would.
    assert_eq!(out[3]["carbide"], out[3]["fresh"], "{}", out[3]);
    assert_ne!(out[3]["carbon"], out[3]["fresh"], "{}", out[3]);
}

fn run_carbon_writer(steps: &Value) -> Vec<Value> {
    serde_json::from_value(common::python_json(CARBON_WRITER, steps)).expect("json")
}

// ---- unit level: Reloader::check ----

fn dir_with(schemas: Option<&str>, aggregation: Option<&str>) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    if let Some(s) = schemas {
        put(d.path(), SCHEMAS_FILE, s);
    }
    if let Some(a) = aggregation {
        put(d.path(), AGGREGATION_FILE, a);
    }
    d
}

/// (archives, xff, method, schema section, aggregation section) for `metric`.
fn rules(live: &LiveSchemas, metric: &str) -> (Vec<(u32, u32)>, f64, AggregationMethod, String) {
    let r = live.resolve(metric);
    (
        r.archives,
        r.x_files_factor,
        r.aggregation_method,
        format!("{}/{}", r.schema_name, r.aggregation_name),
    )
}

const NOTHING: Checked = Checked {
    changed: false,
    storage_loaded: false,
    aggregation_loaded: false,
    refused: false,
};

#[test]
fn startup_load_is_schemas_load() {
    let d = dir_with(Some(S0), Some(A0));
    let r = Reloader::start(d.path()).expect("start");
    let want = Schemas::load(d.path()).expect("load");
    assert_eq!(format!("{:?}", r.schemas().current()), format!("{want:?}"));
    let d = dir_with(Some(S0), None);
    let r = Reloader::start(d.path()).expect("start");
    let want = Schemas::load(d.path()).expect("load");
    assert_eq!(format!("{:?}", r.schemas().current()), format!("{want:?}"));
    // No storage-schemas.conf: the embedded files (the directory's aggregation file unused).
    let d = dir_with(None, Some(A0));
    let r = Reloader::start(d.path()).expect("start");
    let want = Schemas::embedded().expect("embedded");
    assert_eq!(format!("{:?}", r.schemas().current()), format!("{want:?}"));
    // A file carbon refuses stops the start, as with carbon.
    let d = dir_with(Some(S_BAD), None);
    let e = Reloader::start(d.path()).unwrap_err();
    assert!(e.contains("Invalid unit"), "{e}");
    let d = dir_with(Some(S0), Some("[x]\npattern = .\nxFilesFactor = 2\n"));
    assert!(Reloader::start(d.path()).is_err());
}

#[test]
fn only_content_changes_count() {
    let d = dir_with(Some(S0), Some(A0));
    let mut r = Reloader::start(d.path()).expect("start");
    let live = r.schemas();
    assert_eq!(r.check(), NOTHING);
    // Rewritten with the same bytes (a new mtime): nothing to do.
    std::thread::sleep(Duration::from_millis(20));
    put(d.path(), SCHEMAS_FILE, S0);
    std::fs::write(d.path().join(AGGREGATION_FILE), A0).expect("write");
    assert_eq!(r.check(), NOTHING);
    // Same size, other content, in the same instant: still seen.
    let same_size = S0.replace("10s:1h", "20s:1h");
    assert_eq!(same_size.len(), S0.len());
    std::fs::write(d.path().join(SCHEMAS_FILE), &same_size).expect("write");
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            storage_loaded: true,
            ..NOTHING
        }
    );
    assert_eq!(rules(&live, "a.b").0, vec![(20, 180), (60, 1440)]);
    assert_eq!(r.check(), NOTHING);
}

#[test]
fn each_file_is_taken_on_its_own() {
    let d = dir_with(Some(S0), Some(A0));
    let mut r = Reloader::start(d.path()).expect("start");
    let live = r.schemas();
    // A handle taken before a reload follows it; `current()` is a snapshot.
    let before = live.current();
    put(d.path(), AGGREGATION_FILE, A1);
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            aggregation_loaded: true,
            ..NOTHING
        }
    );
    assert_eq!(
        rules(&live, "a.b"),
        (
            vec![(10, 360), (60, 1440)],
            0.75,
            AggregationMethod::Sum,
            "a/a_new".to_string()
        )
    );
    assert_eq!(
        before.resolve("a.b").aggregation_method,
        AggregationMethod::Max
    );

    // Bad storage file and a good aggregation file at once: the latter is taken.
    put(d.path(), SCHEMAS_FILE, S_BAD);
    put(d.path(), AGGREGATION_FILE, A2);
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            aggregation_loaded: true,
            refused: true,
            ..NOTHING
        }
    );
    assert_eq!(
        rules(&live, "a.b"),
        (
            vec![(10, 360), (60, 1440)],
            0.0,
            AggregationMethod::Last,
            "a/a_agg2".to_string()
        )
    );
    // Not retried until it changes.
    assert_eq!(r.check(), NOTHING);
    // A bad aggregation file keeps the aggregation rules.
    put(
        d.path(),
        AGGREGATION_FILE,
        "[x]\npattern = .\naggregationMethod = median\n",
    );
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            refused: true,
            ..NOTHING
        }
    );
    assert_eq!(rules(&live, "a.b").3, "a/a_agg2");
    // Fixed: loaded at its change.
    put(d.path(), SCHEMAS_FILE, S3);
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            storage_loaded: true,
            ..NOTHING
        }
    );
    assert_eq!(
        rules(&live, "a.b"),
        (
            vec![(60, 60), (600, 144)],
            0.0,
            AggregationMethod::Last,
            "a_fixed/a_agg2".to_string()
        )
    );
    // Warnings belong to their file: a skipped section of the aggregation file stays listed
    // while the storage file is reloaded.
    put(
        d.path(),
        AGGREGATION_FILE,
        "[nopattern]\nxFilesFactor = 0.1\n[a]\npattern = ^a\\.\naggregationMethod = min\n",
    );
    assert!(r.check().aggregation_loaded);
    put(d.path(), SCHEMAS_FILE, S1);
    assert!(r.check().storage_loaded);
    let warnings = live.current().warnings().to_vec();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].file.ends_with(AGGREGATION_FILE));
}

#[test]
fn missing_files() {
    let d = dir_with(Some(S0), Some(A0));
    let mut r = Reloader::start(d.path()).expect("start");
    let live = r.schemas();
    // storage-schemas.conf removed: the rules loaded from it stay (carbon fails each reload).
    std::fs::remove_file(d.path().join(SCHEMAS_FILE)).expect("rm");
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            refused: true,
            ..NOTHING
        }
    );
    assert_eq!(rules(&live, "a.b").3, "a/a");
    // storage-aggregation.conf removed: carbon's loader gives the built-in default alone.
    std::fs::remove_file(d.path().join(AGGREGATION_FILE)).expect("rm");
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            aggregation_loaded: true,
            ..NOTHING
        }
    );
    assert_eq!(
        rules(&live, "a.b"),
        (
            vec![(10, 360), (60, 1440)],
            0.5,
            AggregationMethod::Average,
            "a/default".to_string()
        )
    );
    put(d.path(), SCHEMAS_FILE, S1);
    assert!(r.check().storage_loaded);
    assert_eq!(rules(&live, "a.b").3, "a_new/default");
}

#[test]
fn embedded_until_the_directory_has_a_schemas_file() {
    let d = dir_with(None, None);
    let mut r = Reloader::start(d.path()).expect("start");
    let live = r.schemas();
    let embedded = Schemas::embedded().expect("embedded");
    assert_eq!(r.check(), NOTHING);
    // An aggregation file alone is not used (as at startup).
    put(d.path(), AGGREGATION_FILE, A0);
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            ..NOTHING
        }
    );
    assert_eq!(live.resolve("a.b"), embedded.resolve("a.b"));
    // A bad schemas file: refused, still embedded.
    put(d.path(), SCHEMAS_FILE, S_BAD);
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            refused: true,
            ..NOTHING
        }
    );
    assert_eq!(live.resolve("a.b"), embedded.resolve("a.b"));
    // A good one: both files of the directory are used from now on.
    put(d.path(), SCHEMAS_FILE, S0);
    assert_eq!(
        r.check(),
        Checked {
            changed: true,
            storage_loaded: true,
            aggregation_loaded: true,
            refused: false,
        }
    );
    assert_eq!(
        format!("{:?}", live.current()),
        format!("{:?}", Schemas::load(d.path()).expect("load"))
    );
}

#[test]
fn config_option() {
    assert_eq!(Config::default().schema_reload_seconds, 60);
    let c = Config::from_toml("schema_reload_seconds = 0\n").expect("toml");
    assert_eq!(c.schema_reload_seconds, 0);
    let e = Config::from_toml("schema_reload_seconds = -1\n").unwrap_err();
    assert!(e.contains("schema_reload_seconds"), "{e}");
}

#[tokio::test]
async fn the_task_stops_with_the_server() {
    let d = dir_with(Some(S0), None);
    let (tx, rx) = tokio::sync::watch::channel(false);
    // Off: returns at once.
    let r = Reloader::start(d.path()).expect("start");
    tokio::time::timeout(Duration::from_secs(5), r.run(Duration::ZERO, rx.clone()))
        .await
        .expect("a zero interval returns at once");
    // On: reloads at its interval, returns at the stop signal.
    let r = Reloader::start(d.path()).expect("start");
    let live = r.schemas();
    let task = tokio::spawn(r.run(Duration::from_millis(50), rx));
    put(d.path(), SCHEMAS_FILE, S1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.resolve("a.b").schema_name != "a_new" {
        assert!(Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(true).expect("send");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops at the signal")
        .expect("task");
}

/// The cost a reloadable rule set adds to a create: run under callgrind, compare the
/// inclusive instructions of `LiveSchemas::resolve` with those of `Schemas::resolve` (see the
/// report). Writes to existing files never resolve, so they pay nothing.
#[test]
#[ignore = "measurement, run under valgrind --tool=callgrind"]
fn resolve_cost() {
    let schemas = Arc::new(Schemas::embedded().expect("embedded"));
    let live = LiveSchemas::new(schemas.clone());
    for i in 0..1000 {
        let name = format!("servers.host{i}.cpu.user");
        std::hint::black_box(schemas.resolve(&name));
        std::hint::black_box(live.resolve(&name));
    }
}
