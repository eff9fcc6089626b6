//! A real peer: Etsy's statsd daemon (the pinned npm package, run by node) aggregates counters,
//! timers, gauges and sets sent to it over UDP and flushes them with its graphite backend to
//! `carbide serve`'s plaintext port; whisper.py then reads what Carbide wrote. The expected
//! values follow statsd's documented aggregation (counts per flush, rates per second of the
//! flush interval, timer statistics with the 90th percentile, last gauge value, distinct set
//! members), worked out here from the samples sent.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::server::{free_port, Server};

/// statsd's flush interval: not a whole second, so that per-second rates differ from counts.
const FLUSH_MS: u64 = 1250;

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

/// The statsd daemon as a child process, killed when dropped.
struct Statsd {
    child: Child,
    port: u16,
    mgmt_port: u16,
    log: PathBuf,
}

impl Statsd {
    /// Writes a config beside `dir` and starts `node stats.js config.js`; returns once the
    /// daemon answers on its management port and has parsed a UDP packet.
    fn start(dir: &Path, graphite_port: u16) -> Statsd {
        let (port, mgmt_port) = (free_udp_port(), free_port());
        let config = dir.join("statsd-config.js");
        // Legacy namespace settings left at their defaults: stats.*, stats_counts.*,
        // stats.timers.*, stats.gauges.*, stats.sets.*.
        std::fs::write(
            &config,
            format!(
                "{{\n  address: \"127.0.0.1\",\n  port: {port},\n  \
                 mgmt_address: \"127.0.0.1\",\n  mgmt_port: {mgmt_port},\n  \
                 backends: [\"./backends/graphite\"],\n  \
                 graphiteHost: \"127.0.0.1\",\n  graphitePort: {graphite_port},\n  \
                 flushInterval: {FLUSH_MS},\n  deleteIdleStats: true,\n  \
                 automaticConfigReload: false\n}}\n"
            ),
        )
        .expect("write statsd config");
        let log = dir.join("statsd.log");
        let out = File::create(&log).expect("statsd log");
        let err = out.try_clone().expect("statsd log");
        let statsd = common::statsd_dir();
        let child = Command::new("node")
            .arg(statsd.join("stats.js"))
            .arg(&config)
            .current_dir(&statsd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start node (statsd)");
        let mut s = Statsd {
            child,
            port,
            mgmt_port,
            log,
        };
        s.wait_ready();
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One management command; the answer up to statsd's "END" marker.
    fn mgmt(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.mgmt_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\n").as_bytes()).ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("END\n") {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&answer).into_owned())
    }

    /// statsd's cumulative count of bad lines (`messages.bad_lines_seen` in `stats`).
    fn bad_lines_seen(&self) -> Option<u64> {
        let stats = self.mgmt("stats")?;
        stats
            .lines()
            .find_map(|l| l.strip_prefix("messages.bad_lines_seen: "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The UDP socket binds asynchronously: probe it with a line statsd counts as bad
    /// (no type) until the management port reports it.
    fn wait_ready(&mut self) {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("statsd exited with {status}:\n{}", self.log());
            }
            let _ = udp.send_to(b"carbide_probe", ("127.0.0.1", self.port));
            if self.bad_lines_seen().unwrap_or(0) > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "statsd did not become ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (statsd exits at once), SIGKILL if it lingers.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Statsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wsp_path(data: &Path, metric: &str) -> PathBuf {
    data.join("whisper").join(metric.replace('.', "/") + ".wsp")
}

/// whisper.py's fetch over the last `seconds` for each metric: its non-null points.
fn fetch_all(data: &Path, metrics: &[&str], seconds: i64) -> BTreeMap<String, Vec<(i64, f64)>> {
    let script = "import sys, json, time, whisper\n\
        since = int(time.time()) - int(sys.argv[1])\n\
        out = {}\n\
        for path in sys.argv[2:]:\n\
        \x20   (start, end, step), values = whisper.fetch(path, since)\n\
        \x20   out[path] = [[start + i * step, v] for i, v in enumerate(values) if v is not None]\n\
        print(json.dumps(out))\n";
    let out = Command::new(common::python())
        .args(["-c", script])
        .arg(seconds.to_string())
        .args(metrics.iter().map(|m| wsp_path(data, m)))
        .output()
        .expect("run whisper.py");
    assert!(
        out.status.success(),
        "whisper.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_path: BTreeMap<String, Vec<(i64, f64)>> =
        serde_json::from_slice(&out.stdout).expect("fetch json");
    metrics
        .iter()
        .map(|m| {
            let key = wsp_path(data, m).to_string_lossy().into_owned();
            (m.to_string(), by_path[&key].clone())
        })
        .collect()
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// What statsd's graphite backend should flush for the samples in `PACKET`, by metric name.
/// Aggregation as statsd documents it: a counter's `stats_counts` is the sum of the sampled
/// values each divided by its sample rate, and `stats.` that per second of the flush interval;
/// a timer's statistics are over the values received (sorted), except `count`, which scales
/// each sample by its rate; the 90th percentile keeps the lowest round(0.9 * n) values;
/// a gauge is its last absolute value plus the signed deltas after it; a set counts
/// distinct members.
fn expected() -> Vec<(String, f64)> {
    let secs = FLUSH_MS as f64 / 1000.0;
    let mut e: Vec<(String, f64)> = Vec::new();
    let mut put = |name: &str, v: f64| e.push((name.to_string(), v));

    // carbide.hits:1|c, :2|c, :4|c
    let hits = 1.0 + 2.0 + 4.0;
    put("stats_counts.carbide.hits", hits);
    put("stats.carbide.hits", hits / secs);
    // carbide.sampled:1|c|@0.5, :3|c|@0.5
    let sampled = 1.0 / 0.5 + 3.0 / 0.5;
    put("stats_counts.carbide.sampled", sampled);
    put("stats.carbide.sampled", sampled / secs);

    // carbide.latency: 120, 30, 45.5 (two in one line), 300, 7, and 80 sampled at @0.5.
    let mut v = [120.0, 30.0, 45.5, 300.0, 7.0, 80.0];
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let count = (n - 1) as f64 + 1.0 / 0.5;
    let sum: f64 = v.iter().sum();
    let sum_squares: f64 = v.iter().map(|x| x * x).sum();
    let mean = sum / n as f64;
    let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let k = (0.9 * n as f64).round() as usize;
    let low = &v[..k];
    let sum_90: f64 = low.iter().sum();
    let t = "stats.timers.carbide.latency";
    put(&format!("{t}.count"), count);
    put(&format!("{t}.count_ps"), count / secs);
    put(&format!("{t}.lower"), v[0]);
    put(&format!("{t}.upper"), v[n - 1]);
    put(&format!("{t}.sum"), sum);
    put(&format!("{t}.sum_squares"), sum_squares);
    put(&format!("{t}.mean"), mean);
    put(&format!("{t}.median"), median);
    put(&format!("{t}.std"), std);
    put(&format!("{t}.count_90"), k as f64);
    put(&format!("{t}.upper_90"), low[k - 1]);
    put(&format!("{t}.sum_90"), sum_90);
    put(
        &format!("{t}.sum_squares_90"),
        low.iter().map(|x| x * x).sum(),
    );
    put(&format!("{t}.mean_90"), sum_90 / k as f64);

    // carbide.temp:10|g, :+5|g, :-3.5|g; carbide.level:-2|g (negative absolute, first value)
    put("stats.gauges.carbide.temp", 10.0 + 5.0 - 3.5);
    put("stats.gauges.carbide.level", -2.0);
    // carbide.users: alice, bob, alice, carol, 42
    put("stats.sets.carbide.users.count", 4.0);
    e
}

/// All in one datagram, so that one flush holds every sample: samples split across two
/// flushes would land in the same 60 s whisper slot and overwrite each other.
const PACKET: &str = "carbide.hits:1|c\n\
    carbide.latency:120|ms\n\
    carbide.hits:2|c\n\
    carbide.sampled:1|c|@0.5\n\
    carbide.temp:10|g\n\
    carbide.users:alice|s\n\
    carbide.latency:30|ms:45.5|ms\n\
    carbide.users:bob|s\n\
    carbide.temp:+5|g\n\
    carbide.latency:300|ms\n\
    carbide.hits:4|c\n\
    carbide.users:alice|s\n\
    carbide.sampled:3|c|@0.5\n\
    carbide.latency:7|ms\n\
    carbide.temp:-3.5|g\n\
    carbide.users:carol|s\n\
    carbide.latency:80|ms|@0.5\n\
    carbide.users:42|s\n\
    carbide.level:-2|g\n";

#[test]
fn statsd_flushes_land_in_whisper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let statsd = Statsd::start(dir.path(), server.line);

    let expected = expected();
    let before = server.received();
    let sent_at = now_secs();
    UdpSocket::bind("127.0.0.1:0")
        .expect("udp")
        .send_to(PACKET.as_bytes(), ("127.0.0.1", statsd.port))
        .expect("send to statsd");

    // One flush carries every sample; it has landed once Carbide has created every file.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let missing: Vec<&str> = expected
            .iter()
            .map(|(m, _)| m.as_str())
            .filter(|m| !wsp_path(&data, m).exists())
            .collect();
        if missing.is_empty() && server.received() > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no whisper file yet for {missing:?} (received {} points since the send); statsd:\n{}",
            server.received() - before,
            statsd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let landed_at = now_secs();
    statsd.stop();
    server.stop();

    let names: Vec<&str> = expected.iter().map(|(m, _)| m.as_str()).collect();
    let got = fetch_all(&data, &names, 600);
    // statsd stamps a flush with its own clock, rounded to the second; whisper stores it in
    // the 60 s slot that holds it.
    let slot = |t: f64| {
        let t = t.round() as i64;
        t - t.rem_euclid(60)
    };
    let (first, last) = (slot(sent_at), slot(landed_at + 1.0));
    for (metric, want) in &expected {
        let points = &got[metric];
        assert_eq!(
            points.len(),
            1,
            "{metric}: want one flushed point, got {points:?}"
        );
        let (ts, value) = points[0];
        assert!(
            (first..=last).contains(&ts),
            "{metric}: point at {ts}, not between {first} and {last}"
        );
        assert!(
            (value - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{metric}: statsd flushed {value}, want {want}"
        );
    }

    // Every statistic statsd 0.9 computes for a timer (with the default 90th percentile),
    // and nothing else, each one whisper file.
    let timer_files = files_under(&data.join("whisper/stats/timers/carbide/latency"));
    let want: BTreeSet<String> = [
        "count",
        "count_90",
        "count_ps",
        "lower",
        "mean",
        "mean_90",
        "median",
        "std",
        "sum",
        "sum_90",
        "sum_squares",
        "sum_squares_90",
        "upper",
        "upper_90",
    ]
    .iter()
    .map(|s| format!("{s}.wsp"))
    .collect();
    assert_eq!(timer_files, want);
    // Idle stats are deleted, not flushed as zeros: the one flush above is all there is.
    assert_eq!(
        files_under(&data.join("whisper/stats/carbide")),
        ["hits.wsp", "sampled.wsp"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // statsd's own metrics come along: counters under stats/stats_counts, and, in the legacy
    // namespace, numStats outside `stats.`.
    for own in [
        "statsd.numStats",
        "stats_counts.statsd.metrics_received",
        "stats.statsd.packets_received",
        "stats.statsd.graphiteStats.last_flush",
        "stats.statsd.processing_time",
    ] {
        assert!(wsp_path(&data, own).exists(), "no whisper file for {own}");
    }
}
