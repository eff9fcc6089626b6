//! The cache-query port (carbon-cache's 7002, "carbonlink") end to end: `carbide serve` as a
//! child process, asked over real sockets by graphite-web 1.1.10's own `CarbonLinkPool` code
//! (its pickle protocol, framing and safe unpickler) from the test venv, and read by a
//! graphite-web whose CARBONLINK_HOSTS points at Carbide.
//!
//! Points are kept in Carbide's cache deterministically: new metrics wait for the create
//! limit (`max_creates_per_minute = 1`, its one token taken by a ballast metric first), and
//! points of an existing file wait while the test holds the file's flock (`lock_writes`).
//! Every expected reply is built in Python from the points the test sent, or from whisper.py.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::graphite_web::GraphiteWeb;
use common::server::{free_port, Server};
use serde_json::{json, Value};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A `carbide serve` with its cache-query port.
struct Carbide {
    server: Server,
    cache_query: u16,
}

/// Starts `carbide serve` on `root/data` with `config` (TOML) and a cache-query port.
fn start(root: &Path, config: &str) -> Carbide {
    let data = root.join("data");
    let config_path = root.join("carbide.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = root.join("carbide.log");
    let (line, pickle, http, cache_query) = (free_port(), free_port(), free_port(), free_port());
    let child = Command::new(common::carbide_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(&data)
        .args(["--schemas", "/nonexistent-use-embedded"])
        .args(["--line-tcp", &format!("127.0.0.1:{line}")])
        .args(["--line-udp", "off"])
        .args(["--pickle", &format!("127.0.0.1:{pickle}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--cache-query", &format!("127.0.0.1:{cache_query}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&log).expect("log file")))
        .spawn()
        .expect("start carbide serve");
    let server = Server {
        child,
        data,
        line,
        pickle,
        http,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("carbide serving")
    {
        assert!(
            Instant::now() < deadline,
            "carbide serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Carbide {
        server,
        cache_query,
    }
}

/// A server whose new metrics stay in the cache: the create limit's one token is spent on a
/// ballast metric before the test sends anything.
fn start_holding_new_metrics(root: &Path, extra_config: &str) -> Carbide {
    let c = start(
        root,
        &format!(
            "[persist]\nmax_creates_per_minute = 1\n[self_metrics]\ninterval_seconds = 0\n\
             {extra_config}"
        ),
    );
    send_lines(&c.server, &[format!("ballast.x 1 {}", now() - 60)]);
    let file = c.server.data.join("whisper/ballast/x.wsp");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "ballast file never created");
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

fn send_lines(server: &Server, lines: &[String]) {
    let before = server.received();
    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    for l in lines {
        writeln!(tcp, "{l}").expect("send");
    }
    drop(tcp);
    server.wait_received(before + lines.len() as u64);
}

/// graphite-web's client side, run in the test venv: a `CarbonLinkPool` connection sends each
/// case's request as `CarbonLinkPool.send_request` does (pickle protocol
/// CARBONLINK_PICKLE_PROTOCOL, `!L` length prefix, replies read by `recv_response` through
/// graphite-web's safe unpickler) and compares the reply with what Python expects.
const CLIENT: &str = r#"
import json, os, pickle, struct, sys, tempfile, traceback, types
spec = json.load(sys.stdin)
s = types.ModuleType('carbide_carbonlink_settings')
s.SECRET_KEY = 'carbide-tests'
s.LOG_DIR = tempfile.mkdtemp(prefix='carbide-carbonlink-')
s.CARBONLINK_HOSTS = ['127.0.0.1:%d' % spec['port']]
sys.modules[s.__name__] = s
os.environ['GRAPHITE_SETTINGS_MODULE'] = s.__name__
os.environ['DJANGO_SETTINGS_MODULE'] = 'graphite.settings'
import django
django.setup()
from django.conf import settings
from graphite.carbonlink import CarbonLinkPool
import whisper

pool = CarbonLinkPool([('127.0.0.1', spec['port'], None)], 5.0)
conn = pool.get_connection(pool.hosts[0])

def ask(request):
    # CarbonLinkPool.send_request without its catch-all (a failure must fail the test).
    data = pickle.dumps(request, protocol=settings.CARBONLINK_PICKLE_PROTOCOL)
    conn.sendall(struct.pack('!L', len(data)) + data)
    return pool.recv_response(conn)

def ask_any(request):
    # For replies graphite-web's restricted unpickler refuses (bytes and frozenset keys are
    # pickled through their constructors at protocol 2, by carbon as by Carbide).
    data = pickle.dumps(request, protocol=settings.CARBONLINK_PICKLE_PROTOCOL)
    conn.sendall(struct.pack('!L', len(data)) + data)
    size = struct.unpack('!L', pool.recv_exactly(conn, 4))[0]
    return pickle.loads(pool.recv_exactly(conn, size))

def pts(points, ints=False):
    return [(int(t) if ints else float(t), float(v)) for t, v in points]

def types_ok(points, ints=False):
    # carbon's keys are floats, ints under MIN_TIMESTAMP_RESOLUTION; values always floats.
    return all(type(t) is (int if ints else float) and type(v) is float for t, v in points)

def last_line(fn):
    try:
        fn()
    except Exception:
        return traceback.format_exc().splitlines()[-1]
    return None

out = []
for case in spec['cases']:
    kind, req = case['kind'], case.get('request')
    extra = True
    if kind == 'pool-query':
        # graphite-web's own entry point, as its whisper reader calls it.
        reply = pool.query(case['metric'])
        expected = pts(case['points'])
        extra = types_ok(reply)
    elif kind == 'query':
        reply = ask(req)
        ints = case.get('int_timestamps', False)
        expected = {'datapoints': pts(case['points'], ints)}
        extra = types_ok(reply.get('datapoints', []), ints)
    elif kind == 'bulk':
        reply = ask(req)
        expected = {'datapointsByMetric': {
            m: pts(case['points'].get(m, [])) for m in req['metrics']}}
    elif kind == 'bulk-eval':
        # carbon's loop, for any iterable of hashable metrics none of which is cached.
        metrics = eval(case['metrics'])
        reply = ask_any({'type': 'cache-query-bulk', 'metrics': metrics})
        expected = {'datapointsByMetric': {m: [] for m in metrics}}
        extra = list(reply['datapointsByMetric']) == list(expected['datapointsByMetric'])
    elif kind == 'literal':
        reply = ask(req)
        expected = case['expect']
    elif kind == 'get-metadata':
        reply = ask(req)
        expected = {'value': whisper.info(case['path'])['aggregationMethod']}
    elif kind == 'set-metadata':
        reply = ask(req)
        old = whisper.setAggregationMethod(case['reference'], req['value'])
        expected = {'old_value': old, 'new_value': req['value']}
        with open(case['path'], 'rb') as a, open(case['reference'], 'rb') as b:
            extra = a.read() == b.read()
    elif kind == 'error':
        reply = ask(req)
        how = case['reference']
        if how == 'key':
            # carbon's WhisperDatabase.getMetadata/setMetadata check, word for word.
            def raise_key():
                raise ValueError("Unsupported metadata key \"%s\"" % req['key'])
            line = last_line(raise_key)
        elif how == 'info':
            line = last_line(lambda: whisper.info(case['path'])['aggregationMethod'])
        else:
            line = last_line(lambda: whisper.setAggregationMethod(case['path'], req['value']))
        error = reply.get('error', '') if isinstance(reply, dict) else ''
        expected = reply
        extra = (list(reply) == ['error'] and error.startswith('Traceback (most recent call last):\n')
                 and error.splitlines()[-1] == line)
        if not extra:
            expected = {'error': '... ' + str(line)}
    else:
        raise SystemExit('unknown case kind %r' % kind)
    out.append({'name': case['name'], 'ok': reply == expected and extra,
                'reply': repr(reply), 'expected': repr(expected)})
json.dump(out, sys.stdout)
"#;

/// Runs [`CLIENT`] against `port` and fails the test on any case whose reply differs.
fn check_cases(port: u16, cases: Vec<Value>) {
    let spec = json!({"port": port, "cases": cases});
    let results: Vec<Value> =
        serde_json::from_value(common::python_json(CLIENT, &spec)).expect("client json");
    assert_eq!(
        results.len(),
        spec["cases"].as_array().map_or(0, |c| c.len())
    );
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != json!(true)).collect();
    assert!(failed.is_empty(), "replies that differ: {failed:#?}");
}

/// `[[ts, value], ...]` as JSON for the client.
fn points_json(points: &[(i64, f64)]) -> Value {
    json!(points
        .iter()
        .map(|&(t, v)| json!([t, v]))
        .collect::<Vec<_>>())
}

fn lines_for(metric: &str, points: &[(i64, f64)]) -> Vec<String> {
    points
        .iter()
        .map(|(t, v)| format!("{metric} {v:?} {t}"))
        .collect()
}

#[test]
fn cache_query_and_bulk_answer_what_was_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = start_holding_new_metrics(dir.path(), "");
    let t = now() - 300;
    let a: Vec<(i64, f64)> = vec![(t, 1.5), (t + 10, -2.25), (t + 20, 1e10), (t + 30, 0.0)];
    let b: Vec<(i64, f64)> = vec![(t + 5, 3.0), (t + 15, 4.0)];
    let tagged: Vec<(i64, f64)> = vec![(t + 1, 7.0)];
    // More than pickle's batch of 1000 list items and dict entries.
    let many: Vec<(i64, f64)> = (0..2500).map(|i| (t - 5000 + i, i as f64 * 0.5)).collect();
    let mut lines = lines_for("clq.a", &a);
    lines.extend(lines_for("clq.b", &b));
    // Received with its tags out of order; stored (and known to graphite-web) canonically.
    lines.extend(lines_for("clq.t;z=1;y=2", &tagged));
    lines.extend(lines_for("clq.many", &many));
    // carbon's tag parser reads this as `clq.u;x=1;c=d`, a name that cleans again to another
    // spelling: graphite-web asks for it as stored.
    let odd: Vec<(i64, f64)> = vec![(t + 2, 8.0)];
    lines.extend(lines_for("clq.u;x=1{c=\"d\"}", &odd));
    send_lines(&c.server, &lines);

    let all = json!({
        "clq.a": points_json(&a),
        "clq.b": points_json(&b),
        "clq.t;y=2;z=1": points_json(&tagged),
        "clq.many": points_json(&many),
    });
    let mut lots: Vec<String> = (0..1500).map(|i| format!("clq.absent.{i}")).collect();
    lots.push("clq.many".to_string());
    lots.push("clq.a".to_string());
    check_cases(
        c.cache_query,
        vec![
            json!({"name": "pool.query", "kind": "pool-query", "metric": "clq.a",
                   "points": points_json(&a)}),
            json!({"name": "cache-query a", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.a"},
                   "points": points_json(&a)}),
            json!({"name": "cache-query b", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.b"},
                   "points": points_json(&b)}),
            json!({"name": "cache-query tagged", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.t;y=2;z=1"},
                   "points": points_json(&tagged)}),
            json!({"name": "cache-query stored non-canonical", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.u;x=1;c=d"},
                   "points": points_json(&odd)}),
            json!({"name": "cache-query many", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.many"},
                   "points": points_json(&many)}),
            json!({"name": "bulk of 1502", "kind": "bulk",
                   "request": {"type": "cache-query-bulk", "metrics": lots},
                   "points": all}),
            json!({"name": "cache-query unknown", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.nothing"},
                   "points": []}),
            // Deliberate difference: carbon looks the raw string up and finds nothing; Carbide
            // cleans the name as ingest does, so the other spelling finds the series.
            json!({"name": "cache-query tags unsorted", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.t;z=1;y=2"},
                   "points": points_json(&tagged)}),
            json!({"name": "bulk", "kind": "bulk",
                   "request": {"type": "cache-query-bulk",
                               "metrics": ["clq.a", "clq.b", "clq.nothing", "clq.t;y=2;z=1"]},
                   "points": all}),
            // Any iterable of any hashable objects, as carbon's `for metric in metrics`
            // takes them: keys deduplicated with Python's equality, first object kept.
            json!({"name": "bulk odd metrics", "kind": "bulk-eval",
                   "metrics": "['x', 'x', 1, 1.0, True, (1, 'y', (2.5, None)), 2**70, -2**70, \
                               b'xy', b'', frozenset({3}), frozenset(), None, 1.5, -7, 'é\\udc80']"}),
            json!({"name": "bulk str", "kind": "bulk-eval", "metrics": "'aba'"}),
            json!({"name": "bulk bytes", "kind": "bulk-eval", "metrics": "b'\\x01\\x02\\x01'"}),
            json!({"name": "bulk dict", "kind": "bulk-eval", "metrics": "{'k': 1, 2: 3}"}),
            json!({"name": "bulk empty", "kind": "bulk",
                   "request": {"type": "cache-query-bulk", "metrics": []}, "points": {}}),
            json!({"name": "invalid type", "kind": "literal",
                   "request": {"type": "bogus", "metric": "clq.a"},
                   "expect": {"error": "Invalid request type \"bogus\""}}),
            json!({"name": "still answering", "kind": "query",
                   "request": {"type": "cache-query", "metric": "clq.b"},
                   "points": points_json(&b)}),
        ],
    );
    let stats = c.server.stats();
    let cq = &stats["cache_query"];
    assert_eq!(cq["queries"], json!(9), "{cq}");
    assert_eq!(cq["bulk_queries"], json!(7), "{cq}");
    // len(metrics) of each: 1502 + 4 + 16 + 3 + 3 + 2 + 0.
    assert_eq!(cq["bulk_query_metrics"], json!(1530), "{cq}");
    assert_eq!(cq["invalid_requests"], json!(1), "{cq}");
    assert_eq!(cq["refused"], json!(0), "{cq}");
    // The points were answered from the cache: none of these files exists yet.
    assert!(!c.server.data.join("whisper/clq/a.wsp").exists());
}

/// Creates a whisper file with whisper.py and writes `points` into it.
fn whisper_py_create(path: &Path, retention: &str, points: &[(i64, f64)]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let script = "import sys, json, whisper\n\
        whisper.create(sys.argv[1], [whisper.parseRetentionDef(sys.argv[2])])\n\
        pts = [tuple(p) for p in json.loads(sys.argv[3])]\n\
        if pts: whisper.update_many(sys.argv[1], pts)\n";
    let out = Command::new(common::python())
        .args(["-c", script])
        .arg(path)
        .arg(retention)
        .arg(points_json(points).to_string())
        .output()
        .expect("whisper.py");
    assert!(
        out.status.success(),
        "whisper.py create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An exclusive flock on `path`, released when dropped.
struct Flock {
    _file: File,
}

impl Flock {
    fn take(path: &Path) -> Flock {
        let f = File::open(path).expect("open for flock");
        // SAFETY: flock(2) on a descriptor this File owns.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
        Flock { _file: f }
    }
}

/// The render JSON as `(target, [(ts, value)])` with nulls dropped.
fn non_null(render: &Value) -> Vec<(String, Vec<(i64, f64)>)> {
    common::render_points(render)
}

#[test]
fn graphite_web_renders_points_only_carbide_has_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let t = now() - 400;
    let written: Vec<(i64, f64)> = (0..5).map(|i| (t + i * 10, i as f64)).collect();
    let cached: Vec<(i64, f64)> = (0..5)
        .map(|i| (t + 200 + i * 10, 100.0 + i as f64))
        .collect();
    let file = root.join("data/whisper/clw/a.wsp");
    whisper_py_create(&file, "1s:1h", &written);
    let c = start(
        root,
        "[persist]\nlock_writes = true\n[self_metrics]\ninterval_seconds = 0\n",
    );
    // The writer blocks on this lock: the new points stay in Carbide's cache.
    let lock = Flock::take(&file);
    send_lines(&c.server, &lines_for("clw.a", &cached));
    let on_disk = common::server::whisper_py_points(&c.server.data, "clw.a", 3600);
    assert_eq!(
        on_disk, written,
        "the cached points must not be in the file yet"
    );

    let mut gw = GraphiteWeb::start_with_carbonlink(
        &c.server.data.join("whisper"),
        &format!("127.0.0.1:{}", c.cache_query),
    );
    let (from, until) = ((t - 10).to_string(), (t + 300).to_string());
    let params = [
        ("target", "clw.a"),
        ("from", from.as_str()),
        ("until", until.as_str()),
        ("format", "json"),
    ];
    let (status, _, body) = gw.http("GET", "/render", &params);
    assert_eq!(status, 200, "{body}");
    let theirs: Value = serde_json::from_str(&body).expect("graphite-web json");
    let mut expected = written.clone();
    expected.extend(&cached);
    assert_eq!(non_null(&theirs), vec![("clw.a".to_string(), expected)]);

    let query: String = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let (status, _, ours) = c.server.http("GET", &format!("/render?{query}"), &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&ours));
    let ours: Value = serde_json::from_slice(&ours).expect("carbide json");
    assert_eq!(ours, theirs, "Carbide's /render and graphite-web's differ");

    let stats = c.server.stats();
    assert!(stats["cache_query"]["queries"].as_u64().unwrap_or(0) >= 1);
    drop(lock);
}

#[test]
fn metadata_matches_whisper_py() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let whisper_dir = root.join("data/whisper");
    let a = whisper_dir.join("clm/a.wsp");
    let b = whisper_dir.join("clm/b.wsp");
    let reference = root.join("reference.wsp");
    let pts = [(now() - 100, 1.0)];
    for p in [&a, &b, &reference] {
        whisper_py_create(p, "60s:1d", &pts);
    }
    let c = start(
        root,
        "[self_metrics]\ninterval_seconds = 1\nhost = \"testhost\"\n",
    );
    let s = |p: &PathBuf| p.to_str().expect("utf-8").to_string();
    let missing = whisper_dir.join("clm/missing.wsp");
    check_cases(
        c.cache_query,
        vec![
            json!({"name": "get", "kind": "get-metadata", "path": s(&a),
                   "request": {"type": "get-metadata", "metric": "clm.a", "key": "aggregationMethod"}}),
            json!({"name": "set", "kind": "set-metadata", "path": s(&a), "reference": s(&reference),
                   "request": {"type": "set-metadata", "metric": "clm.a",
                               "key": "aggregationMethod", "value": "max"}}),
            json!({"name": "get after set", "kind": "get-metadata", "path": s(&a),
                   "request": {"type": "get-metadata", "metric": "clm.a", "key": "aggregationMethod"}}),
            json!({"name": "set again", "kind": "set-metadata", "path": s(&a), "reference": s(&reference),
                   "request": {"type": "set-metadata", "metric": "clm.a",
                               "key": "aggregationMethod", "value": "avg_zero"}}),
            json!({"name": "get unknown key", "kind": "error", "reference": "key",
                   "request": {"type": "get-metadata", "metric": "clm.b", "key": "xFilesFactor"}}),
            json!({"name": "set unknown key", "kind": "error", "reference": "key",
                   "request": {"type": "set-metadata", "metric": "clm.b", "key": "retention",
                               "value": "max"}}),
            json!({"name": "get missing file", "kind": "error", "reference": "info",
                   "path": s(&missing),
                   "request": {"type": "get-metadata", "metric": "clm.missing",
                               "key": "aggregationMethod"}}),
            json!({"name": "set missing file", "kind": "error", "reference": "set",
                   "path": s(&missing),
                   "request": {"type": "set-metadata", "metric": "clm.missing",
                               "key": "aggregationMethod", "value": "sum"}}),
            json!({"name": "set bad method", "kind": "error", "reference": "set",
                   "path": s(&b),
                   "request": {"type": "set-metadata", "metric": "clm.b",
                               "key": "aggregationMethod", "value": "median"}}),
            json!({"name": "get b untouched", "kind": "get-metadata", "path": s(&b),
                   "request": {"type": "get-metadata", "metric": "clm.b", "key": "aggregationMethod"}}),
            json!({"name": "bulk for the self-metrics", "kind": "bulk",
                   "request": {"type": "cache-query-bulk", "metrics": ["x.1", "x.2", "x.3"]},
                   "points": {}}),
        ],
    );
    // A refused method leaves the file as whisper.py leaves it: unchanged.
    let b_bytes = std::fs::read(&b).expect("read b");
    let fresh = root.join("fresh.wsp");
    whisper_py_create(&fresh, "60s:1d", &pts);
    assert_eq!(b_bytes, std::fs::read(&fresh).expect("read fresh"));

    // carbon's self-metrics for the queries: one bulk query of 3 metrics in some interval.
    let agents = c.server.data.join("whisper/carbon/agents/testhost/cache");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !["queries", "bulk_queries", "bulk_queries_average_size"]
        .iter()
        .all(|n| agents.join(format!("{n}.wsp")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "cache-query self-metrics missing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let avg = common::server::whisper_py_points(
        &c.server.data,
        "carbon.agents.testhost.cache.bulk_queries_average_size",
        600,
    );
    assert_eq!(avg.iter().map(|p| p.1).collect::<Vec<_>>(), vec![3.0]);
}

/// Sends `bytes` on a new connection (then half-closes when `eof`) and returns what the
/// server wrote before closing; panics if it keeps the connection open for 10 s.
fn reply_then_close(port: u16, bytes: &[u8], eof: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // A refused frame may close the connection before all bytes are written.
    let _ = s.write_all(bytes);
    if eof {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("connection not closed by the server ({e}); got {got:?}"),
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn bad_input_closes_only_that_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // With carbon's MIN_TIMESTAMP_RESOLUTION set, carbon's cache keys are ints.
    let c = start_holding_new_metrics(
        root,
        "[cache]\nmax_query_frame_bytes = 4096\n[ingest]\nmin_timestamp_resolution = 10\n",
    );
    let marker = root.join("pwned");
    // Payloads pickled by CPython at graphite-web's protocol (-1), as hex.
    let script = format!(
        "import os, pickle, json\n\
         class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {m}',))\n\
         d = lambda o: pickle.dumps(o, protocol=-1).hex()\n\
         good = pickle.dumps({{'type': 'cache-query', 'metric': 'clb.a'}}, protocol=-1)\n\
         print(json.dumps({{\n\
           'non_dict': d([1, 2]), 'no_type': d({{'metric': 'clb.a'}}),\n\
           'no_metric': d({{'type': 'cache-query'}}),\n\
           'unhashable': d({{'type': 'cache-query', 'metric': ['clb.a']}}),\n\
           'bulk_not_iterable': d({{'type': 'cache-query-bulk', 'metrics': 5}}),\n\
           'no_key': d({{'type': 'get-metadata', 'metric': 'clb.a'}}),\n\
           'hostile': d(Evil()), 'invalid': d({{'type': 'nope'}}),\n\
           'good': good.hex(),\n\
           'at_max': (good + b' ' * (4096 - len(good))).hex(),\n\
           'over_max': (good + b' ' * (4097 - len(good))).hex()}}))\n",
        m = marker.display()
    );
    let out = common::run_python(&script);
    let p: Value = serde_json::from_slice(&out).expect("payloads");
    let payload = |k: &str| hex(p[k].as_str().expect("payload"));

    let t = (now() - 120) / 10 * 10;
    let sent = vec![(t, 5.0), (t + 10, 6.0)];
    send_lines(&c.server, &lines_for("clb.a", &sent));

    // What carbon does: the handler raises, Twisted drops the connection, no reply.
    let refused: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage", framed(b"not a pickle at all"), false),
        (
            "random bytes",
            b"\x00\x00\x00\x03\xff\xfe\xfd".to_vec(),
            false,
        ),
        ("non-dict", framed(&payload("non_dict")), false),
        ("no type", framed(&payload("no_type")), false),
        ("no metric", framed(&payload("no_metric")), false),
        ("unhashable metric", framed(&payload("unhashable")), false),
        (
            "metrics not iterable",
            framed(&payload("bulk_not_iterable")),
            false,
        ),
        ("metadata without key", framed(&payload("no_key")), false),
        ("hostile", framed(&payload("hostile")), false),
        // Deliberate difference: carbon takes frames up to 1 GiB; the configured maximum
        // closes the connection before anything is read.
        (
            "huge length prefix",
            b"\xff\xff\xff\xff\x80\x02".to_vec(),
            false,
        ),
        ("over the maximum", framed(&payload("over_max")), false),
        // The client goes away mid-frame: nothing to answer.
        ("truncated", b"\x00\x00\x01\x00\x80\x02}".to_vec(), true),
    ];
    for (name, bytes, eof) in &refused {
        let got = reply_then_close(c.cache_query, bytes, *eof);
        assert!(got.is_empty(), "{name}: server replied {got:?}");
    }
    assert!(!marker.exists(), "the hostile pickle ran os.system");

    // A frame exactly at the maximum is answered; an unknown type is an error reply and the
    // connection stays usable: all three replies arrive before the server closes on the
    // garbage frame.
    let mut stream = framed(&payload("at_max"));
    stream.extend(framed(&payload("invalid")));
    stream.extend(framed(&payload("good")));
    // Last, so that no unread bytes make the close a reset that could discard the replies.
    stream.extend(framed(b"garbage"));
    let got = reply_then_close(c.cache_query, &stream, false);
    let mut replies = Vec::new();
    let mut rest = got.as_slice();
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(rest.len() >= 4 + n, "truncated reply");
        replies.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    assert!(rest.is_empty());
    assert_eq!(replies.len(), 3, "three answers before the garbage frame");
    let unpickled = {
        let hexes: Vec<String> = replies
            .iter()
            .map(|r| r.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let script = format!(
            "import json\nfrom pickle import loads\n\
             r = [loads(bytes.fromhex(h)) for h in {hexes:?}]\n\
             sent = [(t, float(v)) for t, v in {sent:?}]\n\
             ints = all(type(t) is int for t, _ in r[0]['datapoints'])\n\
             print(json.dumps([r[0] == {{'datapoints': sent}}, \
               r[1] == {{'error': 'Invalid request type \"nope\"'}}, \
               r[2] == {{'datapoints': sent}}, ints]))\n"
        );
        let out = common::run_python(&script);
        serde_json::from_slice::<Value>(&out).expect("json")
    };
    assert_eq!(unpickled, json!([true, true, true, true]));

    // The server is fine: plaintext still accepted, and graphite-web's client gets answers.
    let more = vec![(t + 20, 7.0)];
    send_lines(&c.server, &lines_for("clb.a", &more));
    let mut all = sent.clone();
    all.extend(&more);
    let all: Vec<(i64, f64)> = all;
    check_cases(
        c.cache_query,
        vec![json!({"name": "after the bad input", "kind": "query",
                    "request": {"type": "cache-query", "metric": "clb.a"},
                    "points": points_json(&all), "int_timestamps": true})],
    );
    let cq = &c.server.stats()["cache_query"];
    // Every refusal above but the truncated frame (the client left; nothing was refused),
    // plus the garbage frame that ended the mixed stream.
    assert_eq!(cq["refused"], json!(refused.len() as u64), "{cq}");
}
