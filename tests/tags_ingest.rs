//! Tagged series end to end: sent to a running `carbide serve` over plaintext TCP, UDP and
//! pickle (protocol 2, pickled by CPython), in carbon's spellings (unsorted tags, a repeated
//! tag, the OpenMetrics form), then every `/tags` endpoint and `seriesByTag` renders compared
//! with graphite-web 1.1.10's own TagDB (`LocalDatabaseTagDB`) holding the same series (in the
//! order carbon would have posted them) and reading the whisper files Carbide wrote. The same
//! answers must survive a clean restart (SIGTERM) and a crash (SIGKILL) of Carbide on the same
//! data directory, including `/tags/tagSeries` and `/tags/delSeries` changes.
//!
//! The references are carbon 1.1.10 and graphite-web 1.1.10 themselves: canonical names,
//! refusal reasons and whisper file paths come from carbon's `TaggedSeries.parse` and
//! `WhisperDatabase.getFilesystemPath`; nothing expected is copied from Carbide's output.
//!
//! Deliberate difference, checked as such: carbon logs a name it cannot parse as tags and then
//! stores it under its raw spelling; Carbide refuses it (with carbon's exception text as the
//! reason), so neither side's TagDB ever holds it.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::graphite_web::GraphiteWeb;
use common::render::{parse_json, same};
use common::server::{free_port, Server};
use serde_json::{json, Value};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `carbide serve` with its log in `log` (to check the refusal reasons).
fn start(data: &Path, config: &Path, log: &Path) -> Server {
    let (line, pickle, http) = (free_port(), free_port(), free_port());
    let err = File::create(log).expect("log file");
    let child = Command::new(common::carbide_bin())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["--schemas", "/nonexistent-use-embedded"])
        .args(["--line-tcp", &format!("127.0.0.1:{line}")])
        .args(["--line-udp", &format!("127.0.0.1:{line}")])
        .args(["--pickle", &format!("127.0.0.1:{pickle}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--cache-query", "off"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start carbide serve");
    let mut server = Server {
        child,
        data: data.to_path_buf(),
        line,
        pickle,
        http,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("carbide serving") {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("carbide serve exited with {status}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "carbide serve not ready:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A list of strings handed to Python without quoting worries.
fn py_list(items: &[&str]) -> String {
    let hex: String = json!(items)
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("json.loads(bytes.fromhex('{hex}').decode('utf-8'))")
}

/// carbon 1.1.10 on each raw name: `{"path": canonical, "file": whisper file}` (default
/// `TAG_HASH_FILENAMES`, data under `whisper_dir`) or `{"error": exception text}`.
fn carbon_names(raw: &[&str], whisper_dir: &Path) -> Vec<Value> {
    let script = format!(
        "import json, sys\n\
         from carbon.conf import settings\n\
         from carbon.util import TaggedSeries\n\
         from carbon.database import WhisperDatabase\n\
         settings.LOCAL_DATA_DIR = {dir}\n\
         db = WhisperDatabase(settings)\n\
         out = []\n\
         for n in {names}:\n\
         \x20   try:\n\
         \x20       p = TaggedSeries.parse(n).path\n\
         \x20       out.append({{'path': p, 'file': db.getFilesystemPath(p)}})\n\
         \x20   except Exception as e:\n\
         \x20       out.append({{'error': str(e)}})\n\
         sys.stdout.write(json.dumps(out))\n",
        dir = py_list(&[whisper_dir.to_str().expect("utf-8 dir")]) + "[0]",
        names = py_list(raw),
    );
    serde_json::from_slice(&common::run_python(&script)).expect("carbon json")
}

/// One point to send: raw name, timestamp, value.
type Pt<'a> = (&'a str, i64, f64);

fn send_tcp(server: &Server, points: &[Pt<'_>]) {
    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    for (n, t, v) in points {
        writeln!(tcp, "{n} {v} {t}").expect("send");
    }
}

fn send_udp(server: &Server, points: &[Pt<'_>]) {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut datagram = String::new();
    for (n, t, v) in points {
        datagram.push_str(&format!("{n} {v} {t}\n"));
    }
    udp.send_to(datagram.as_bytes(), ("127.0.0.1", server.line))
        .expect("send udp");
}

fn send_pickle(server: &Server, points: &[Pt<'_>]) {
    let names: Vec<&str> = points.iter().map(|p| p.0).collect();
    let rest: Vec<String> = points
        .iter()
        .map(|(_, t, v)| format!("({t}, {v:?})"))
        .collect();
    let script = format!(
        "import json, pickle, struct, socket\n\
         names = {names}\n\
         rest = [{rest}]\n\
         p = pickle.dumps([(n, r) for n, r in zip(names, rest)], protocol=2)\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(struct.pack('!L', len(p)) + p)\n\
         s.close()\n",
        names = py_list(&names),
        rest = rest.join(", "),
        port = server.pickle
    );
    common::run_python(&script);
}

/// Series first sent over TCP, UDP and pickle, in carbon's spellings.
const BY_TCP: [&str; 4] = [
    "disk.used;rack=a1;datacenter=dc1",
    "disk.used;datacenter=dc1;rack=a2",
    "disk.used;datacenter=dc2;rack=a1;rack=b7",
    "cpu.load;host=web1;dc=ams;env=prod",
];
const BY_UDP: [&str; 3] = [
    "cpu.load;dc=ams;host=web2;env=prod",
    "net.rx;host=web1;dc=fra;if=eth0",
    "app.latency;path=/api/v1.2;q=a=b",
];
const BY_PICKLE: [&str; 4] = [
    "mem.free;host=db1;dc=fra;env=staging",
    "http_requests{method=\"get\",code=\"200\"}",
    "cpu.load;env=prod;host=web1;dc=ams",
    "temp;city=são-paulo;dc=gru",
];

/// The same series spelled differently, sent again by the other receivers.
fn respelled(raw: &str) -> String {
    if raw.ends_with("\"}") {
        return "http_requests;method=get;code=200".to_string();
    }
    let mut parts: Vec<&str> = raw.split(';').collect();
    let name = parts.remove(0);
    // Keep the last of a repeated tag last, so the series stays the same.
    let mut seen = Vec::new();
    let mut dedup: Vec<&str> = Vec::new();
    for p in parts.iter().rev() {
        let tag = p.split('=').next().unwrap_or_default();
        if !seen.contains(&tag) {
            seen.push(tag);
            dedup.push(p);
        }
    }
    std::iter::once(name)
        .chain(dedup)
        .collect::<Vec<_>>()
        .join(";")
}

/// Names carbon's `TaggedSeries.parse` refuses.
const INVALID: [&str; 8] = [
    "bad.tag;dc!x=1",
    "bad.caret;d^c=1",
    "bad.value;dc=~ams",
    "bad.empty;dc=",
    "bad.segment;dc",
    ";dc=ams",
    "~~~;dc=ams",
    "bad.om{dc=\"~x\"}",
];

struct Compare<'a> {
    gw: &'a mut GraphiteWeb,
    server: &'a Server,
    now: i64,
    checks: usize,
    failures: Vec<String>,
}

impl<'a> Compare<'a> {
    fn new(gw: &'a mut GraphiteWeb, server: &'a Server, now: i64) -> Compare<'a> {
        Compare {
            gw,
            server,
            now,
            checks: 0,
            failures: Vec::new(),
        }
    }

    fn tags_get(&mut self, path: &str, params: &[(&str, &str)]) {
        let theirs = self.gw.http("GET", path, params);
        let target = if params.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", form(params))
        };
        let (status, headers, body) = self.server.http("GET", &target, &[], b"");
        let ctype = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let ours = (status, ctype, String::from_utf8_lossy(&body).into_owned());
        self.checks += 1;
        if theirs != ours {
            self.failures.push(format!(
                "GET {path} {params:?}\n  graphite-web: {theirs:?}\n  carbide:      {ours:?}"
            ));
        }
    }

    fn render(&mut self, target: &str) {
        let (now, from) = (self.now.to_string(), (self.now - 3600).to_string());
        let pairs = [
            ("target", target),
            ("from", from.as_str()),
            ("until", now.as_str()),
            ("now", now.as_str()),
            ("format", "json"),
        ];
        let (status, _, body) = self.server.http(
            "POST",
            "/render",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form(&pairs).as_bytes(),
        );
        let ours = String::from_utf8_lossy(&body).into_owned();
        let (gs, _, theirs) = self.gw.http("POST", "/render", &pairs);
        self.checks += 1;
        if status != gs || status != 200 {
            self.failures.push(format!(
                "render {target}: status {status} vs graphite-web {gs}\n  {ours}\n  {theirs}"
            ));
            return;
        }
        let (a, b) = (parse_json(&ours), parse_json(&theirs));
        if let Err(why) = same(&a, &b, 0.0, "$") {
            self.failures.push(format!(
                "render {target}: {why}\n  carbide:      {ours}\n  graphite-web: {theirs}"
            ));
        }
        // The comparison must be about something: every target here finds series.
        if a.as_array().is_none_or(|s| s.is_empty()) {
            self.failures
                .push(format!("render {target}: no series\n  {ours}"));
        }
    }

    fn all(&mut self) {
        self.tags_get("/tags", &[]);
        self.tags_get("/tags", &[("filter", "d")]);
        for tag in [
            "name",
            "dc",
            "datacenter",
            "rack",
            "host",
            "env",
            "if",
            "code",
            "method",
            "src",
            "city",
            "path",
            "q",
            "nosuch",
        ] {
            self.tags_get(&format!("/tags/{tag}"), &[]);
        }
        self.tags_get("/tags/host", &[("filter", "web")]);
        for exprs in [
            vec!["name=disk.used"],
            vec!["name=~cpu", "dc=ams"],
            vec!["dc!=ams", "env=~prod|staging"],
            vec!["rack=~a"],
            vec!["name!="],
            vec!["code=200"],
            vec!["src=http"],
            vec!["if=eth0"],
            vec!["city=~s.o-", "name!=cpu.load"],
            vec!["q=a=b"],
            vec!["path=~.*v1\\.2"],
            vec!["dc="],
        ] {
            let params: Vec<(&str, &str)> = exprs.iter().map(|e| ("expr", *e)).collect();
            self.tags_get("/tags/findSeries", &params);
        }
        self.tags_get("/tags/autoComplete/tags", &[]);
        self.tags_get("/tags/autoComplete/tags", &[("tagPrefix", "d")]);
        self.tags_get("/tags/autoComplete/tags", &[("expr", "name=cpu.load")]);
        self.tags_get(
            "/tags/autoComplete/tags",
            &[("expr", "dc=~.*a.*"), ("tagPrefix", "e")],
        );
        self.tags_get("/tags/autoComplete/values", &[("tag", "host")]);
        self.tags_get(
            "/tags/autoComplete/values",
            &[("tag", "dc"), ("valuePrefix", "a")],
        );
        self.tags_get(
            "/tags/autoComplete/values",
            &[("tag", "rack"), ("expr", "name=disk.used")],
        );
        self.tags_get("/tags/autoComplete/values", &[("tag", "name")]);
        for target in [
            "seriesByTag('name=disk.used')",
            "seriesByTag('dc=~a.*', 'env=prod')",
            "seriesByTag('name=~.+', 'code=200')",
            "seriesByTag('name=http_requests')",
            "seriesByTag('datacenter=dc2')",
            "sumSeries(seriesByTag('name=cpu.load'))",
            "seriesByTag('host=web1')",
            "seriesByTag('city=são-paulo')",
            "seriesByTag('q=a=b')",
        ] {
            self.render(target);
        }
    }

    fn finish(&mut self, stage: &str) {
        assert!(
            self.failures.is_empty(),
            "{stage}: {} of {} comparisons differ:\n{}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n")
        );
        eprintln!(
            "{stage}: {} comparisons with graphite-web agree",
            self.checks
        );
        self.checks = 0;
    }
}

fn wait_persisted(server: &Server, points: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = server.stats();
        let committed = s["persist"]["committed_points"].as_u64().unwrap_or(0);
        if committed >= points && s["cache"]["size"].as_u64() == Some(0) {
            return;
        }
        assert!(Instant::now() < deadline, "points not persisted: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post_both(gw: &mut GraphiteWeb, server: &Server, path: &str, params: &[(&str, &str)]) {
    let theirs = gw.http("POST", path, params);
    let (status, _, body) = server.http(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form(params).as_bytes(),
    );
    let ours = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(
        (status, ours.as_str()),
        (theirs.0, theirs.2.as_str()),
        "POST {path} {params:?}"
    );
}

#[test]
fn tagged_series_over_every_receiver_match_graphite_web() {
    scenario(false);
}

#[test]
fn tagged_series_survive_restarts_and_crashes() {
    scenario(true);
}

/// Ingest and compare; with `restarts`, then API changes, a clean restart, a crash, and the
/// same comparisons after each.
fn scenario(restarts: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let whisper = data.join("whisper");
    let config = dir.path().join("carbide.toml");
    std::fs::write(
        &config,
        "[ingest]\nbad_input_log_per_minute = 1000\n[self_metrics]\ninterval_seconds = 0\n",
    )
    .expect("config");
    let log1 = dir.path().join("serve1.log");
    let server = start(&data, &config, &log1);
    let t0 = now() - now() % 60;

    // Round one: each receiver introduces its own series, plus the invalid names.
    let mut sent = 0u64;
    let mut sent_points: Vec<(String, i64)> = Vec::new();
    let round1 = |names: &[&'static str], v: f64| -> Vec<Pt<'static>> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, t0 - 600, v + i as f64))
            .collect()
    };
    let invalid: Vec<Pt<'_>> = INVALID.iter().map(|n| (*n, t0 - 600, 1.0)).collect();
    let batches: [(&str, Vec<Pt<'_>>); 3] = [
        ("tcp", round1(&BY_TCP, 10.0)),
        ("udp", round1(&BY_UDP, 20.0)),
        ("pickle", round1(&BY_PICKLE, 30.0)),
    ];
    for (how, pts) in &batches {
        let mut all = pts.clone();
        all.extend(invalid.iter().copied());
        match *how {
            "tcp" => send_tcp(&server, &all),
            "udp" => send_udp(&server, &all),
            _ => send_pickle(&server, &all),
        }
        sent += pts.len() as u64;
        sent_points.extend(pts.iter().map(|p| (p.0.to_string(), p.1)));
        server.wait_received(sent);
    }
    // Round two: every series again, respelled, over the two other receivers.
    let respelled_names: Vec<(String, &str)> = BY_TCP
        .iter()
        .map(|n| (respelled(n), "tcp"))
        .chain(BY_UDP.iter().map(|n| (respelled(n), "udp")))
        .chain(BY_PICKLE.iter().map(|n| (respelled(n), "pickle")))
        .collect();
    for (k, how) in ["tcp", "udp", "pickle"].into_iter().enumerate() {
        let t = t0 - 540 + 60 * k as i64;
        let pts: Vec<Pt<'_>> = respelled_names
            .iter()
            .enumerate()
            .filter(|(_, (_, first))| *first != how)
            .map(|(i, (n, _))| (n.as_str(), t, 100.0 * (k + 1) as f64 + i as f64))
            .collect();
        match how {
            "tcp" => send_tcp(&server, &pts),
            "udp" => send_udp(&server, &pts),
            _ => send_pickle(&server, &pts),
        }
        sent += pts.len() as u64;
        sent_points.extend(pts.iter().map(|p| (p.0.to_string(), p.1)));
        server.wait_received(sent);
    }
    let stats = server.stats();
    assert_eq!(
        stats["ingest"]["bad_names"].as_u64(),
        Some(3 * INVALID.len() as u64),
        "{stats}"
    );

    // carbon's view of every name: canonical path and file, or its exception.
    let firsts: Vec<&str> = BY_TCP
        .iter()
        .chain(BY_UDP.iter())
        .chain(BY_PICKLE.iter())
        .copied()
        .collect();
    let carbon = carbon_names(&firsts, &whisper);
    let mut canonical: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for (raw, c) in firsts.iter().zip(&carbon) {
        let path = c["path"]
            .as_str()
            .unwrap_or_else(|| panic!("carbon refuses {raw}: {c}"));
        if !canonical.iter().any(|p| p == path) {
            canonical.push(path.to_string());
            files.push(PathBuf::from(c["file"].as_str().expect("file")));
        }
    }
    assert_eq!(canonical.len(), 10, "{canonical:?}");
    let respelled_carbon = carbon_names(
        &respelled_names
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        &whisper,
    );
    for (c, first) in respelled_carbon.iter().zip(&carbon) {
        assert_eq!(c["path"], first["path"], "respelled to another series");
    }
    // Points per (series, timestamp): two receivers may send the same one, and the last wins.
    let raw_to_path: std::collections::HashMap<&str, &str> = firsts
        .iter()
        .copied()
        .zip(carbon.iter())
        .chain(
            respelled_names
                .iter()
                .map(|(n, _)| n.as_str())
                .zip(respelled_carbon.iter()),
        )
        .map(|(raw, c)| (raw, c["path"].as_str().unwrap_or_default()))
        .collect();
    let distinct: std::collections::HashSet<(&str, i64)> = sent_points
        .iter()
        .map(|(raw, t)| {
            (
                raw_to_path.get(raw.as_str()).copied().unwrap_or_default(),
                *t,
            )
        })
        .collect();
    // Refused with carbon's own reason, and logged with it.
    let refused = carbon_names(&INVALID, &whisper);
    let log_text = std::fs::read_to_string(&log1).unwrap_or_default();
    for (raw, c) in INVALID.iter().zip(&refused) {
        let reason = c["error"]
            .as_str()
            .unwrap_or_else(|| panic!("carbon accepts {raw}: {c}"));
        let ours = carbide::ingest::name::clean(raw).map_err(|e| e.to_string());
        assert_eq!(ours, Err(reason.to_string()), "{raw}");
        assert!(
            log_text.contains(&format!(": {reason}\n")),
            "no log line refusing {raw} with {reason:?}:\n{log_text}"
        );
    }

    // The files are where carbon puts them, and only there.
    wait_persisted(&server, distinct.len() as u64);
    for f in &files {
        assert!(f.is_file(), "no whisper file {}", f.display());
    }
    let mut on_disk = Vec::new();
    for d1 in std::fs::read_dir(whisper.join("_tagged"))
        .expect("_tagged")
        .flatten()
    {
        for d2 in std::fs::read_dir(d1.path()).expect("dir").flatten() {
            for f in std::fs::read_dir(d2.path()).expect("dir").flatten() {
                on_disk.push(f.path());
            }
        }
    }
    on_disk.sort();
    let mut want = files.clone();
    want.sort();
    assert_eq!(on_disk, want);
    // Nothing but the series (the tag log lives outside the whisper tree).
    let top: Vec<String> = std::fs::read_dir(&whisper)
        .expect("whisper dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["_tagged".to_string()]);

    // graphite-web's TagDB given the same series in the order carbon would post them.
    let mut gw = GraphiteWeb::start(&whisper);
    let params: Vec<(&str, &str)> = canonical.iter().map(|p| ("path", p.as_str())).collect();
    let (status, _, body) = gw.http("POST", "/tags/tagMultiSeries", &params);
    assert_eq!(status, 200, "{body}");
    for raw in INVALID {
        let (status, _, body) = gw.http("POST", "/tags/tagSeries", &[("path", raw)]);
        assert_ne!(status, 200, "graphite-web tags {raw}: {body}");
    }

    let mut cmp = Compare::new(&mut gw, &server, t0);
    cmp.all();
    cmp.finish("before restart");

    if !restarts {
        server.stop();
        return;
    }

    assert!(data.join("tags/series.log").is_file());
    // Changes through the API, on both sides.
    post_both(
        &mut gw,
        &server,
        "/tags/tagSeries",
        &[("path", "api.only;src=http;b=2")],
    );
    post_both(
        &mut gw,
        &server,
        "/tags/delSeries",
        &[("path", "net.rx;if=eth0;host=web1;dc=fra")],
    );

    // A clean restart.
    server.stop();
    let server = start(&data, &config, &dir.path().join("serve2.log"));
    let mut cmp = Compare::new(&mut gw, &server, t0);
    cmp.all();
    cmp.finish("after SIGTERM and restart");

    // A crash a little after a change: the change was written within the flush interval.
    post_both(
        &mut gw,
        &server,
        "/tags/tagSeries",
        &[("path", "late.series;src=http;k=v")],
    );
    post_both(
        &mut gw,
        &server,
        "/tags/delSeries",
        &[("path", "mem.free;host=db1;dc=fra;env=staging")],
    );
    std::thread::sleep(Duration::from_millis(2500));
    server.kill();
    let server = start(&data, &config, &dir.path().join("serve3.log"));
    let mut cmp = Compare::new(&mut gw, &server, t0);
    cmp.all();
    cmp.finish("after SIGKILL and restart");
    // One more tagged series after the crash gets the ids graphite-web gives it.
    let late = [("late.ingest;dc=new;rack=z9", t0 - 300, 5.0)];
    send_tcp(&server, &late);
    server.wait_received(1);
    gw.http(
        "POST",
        "/tags/tagMultiSeries",
        &[("path", "late.ingest;dc=new;rack=z9")],
    );
    let mut cmp = Compare::new(&mut gw, &server, t0);
    cmp.tags_get("/tags", &[]);
    cmp.tags_get("/tags/dc", &[]);
    cmp.tags_get("/tags/rack", &[]);
    cmp.tags_get("/tags/findSeries", &[("expr", "dc=new")]);
    cmp.finish("new series after the crash");
    server.stop();
    // Nothing was torn or damaged: the crash came after the flush.
    let mut log = String::new();
    if let Ok(mut f) = File::open(dir.path().join("serve3.log")) {
        let _ = f.read_to_string(&mut log);
    }
    assert!(!log.contains("carbide::index::tag_log"), "{log}");
}

/// A tagged series whose file exists but which the tag log does not know (a data directory
/// carbon or go-carbon wrote: their files are named by a hash) is registered again by its next
/// point, as carbon re-registers the series it writes.
#[test]
fn a_series_missing_from_the_tag_log_is_registered_by_its_next_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("carbide.toml");
    std::fs::write(&config, "[self_metrics]\ninterval_seconds = 0\n").expect("config");
    let series = "disk.used;rack=a1;datacenter=dc1";
    let canonical = "disk.used;datacenter=dc1;rack=a1";
    let find = |server: &Server| {
        let (status, _, body) =
            server.http("GET", "/tags/findSeries?expr=datacenter%3Ddc1", &[], b"");
        assert_eq!(status, 200);
        String::from_utf8_lossy(&body).into_owned()
    };
    let t0 = now() - now() % 60;

    let server = start(&data, &config, &dir.path().join("serve1.log"));
    send_tcp(&server, &[(series, t0 - 120, 1.0)]);
    wait_persisted(&server, 1);
    assert_eq!(find(&server), format!("[\"{canonical}\"]"));
    server.stop();

    // As if another server had written the file: the log forgets the name.
    std::fs::remove_file(data.join("tags/series.log")).expect("remove the tag log");
    let server = start(&data, &config, &dir.path().join("serve2.log"));
    assert_eq!(
        find(&server),
        "[]",
        "a hashed file name cannot be read back"
    );
    send_tcp(&server, &[(series, t0 - 60, 2.0)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while find(&server) == "[]" {
        assert!(
            Instant::now() < deadline,
            "the next point did not register it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(find(&server), format!("[\"{canonical}\"]"));
    server.stop();
}
