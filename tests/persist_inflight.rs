//! Points a writer has taken from the cache stay readable until whisper has them: a running
//! `carbide serve` whose create limit (`max_creates_per_minute = 1`) holds back the files of
//! new metrics answers /render with every accepted point at once, newer points over older
//! ones, and writes them all (in that order) when it stops.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::server::{whisper_py_points, Server};

const METRICS: i64 = 6;
const POINTS: i64 = 5;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn send_lines(server: &Server, lines: &[String]) {
    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    for l in lines {
        writeln!(tcp, "{l}").expect("send");
    }
}

fn persist_stat(server: &Server, key: &str) -> u64 {
    server.stats()["persist"][key].as_u64().unwrap_or(0)
}

/// `(timestamp, value)` of every non-null point /render answers for `target`.
fn render(server: &Server, target: &str, from: i64, until: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    let path = format!("/render?target={target}&from={from}&until={until}&format=json");
    let (status, _, body) = server.http("GET", &path, &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut out = common::render_points(&json);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn wsp_files(dir: &std::path::Path) -> usize {
    walk(&dir.join("whisper"))
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "wsp"))
            }
        })
        .sum()
}

#[test]
fn points_held_back_by_the_create_limit_are_readable_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("carbide.toml");
    std::fs::write(
        &config,
        "[persist]\nmax_creates_per_minute = 1\n[self_metrics]\ninterval_seconds = 0\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &["--config", config.to_str().expect("utf-8")]);

    // The embedded schema's finest archive is 60 s: one point a minute, within the last hour.
    let t = now() - now() % 60 - 600;
    let value = |m: i64, i: i64| (m * 100 + i) as f64;
    let mut lines = Vec::new();
    for i in 0..POINTS {
        for m in 0..METRICS {
            lines.push(format!("held.m{m}.cpu {} {}", value(m, i), t + i * 60));
        }
    }
    send_lines(&server, &lines);
    server.wait_received((METRICS * POINTS) as u64);

    // One file may be created (the bucket starts with one token); every other metric has
    // been taken by a writer and held back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while persist_stat(&server, "creates") + persist_stat(&server, "deferred_creates")
        < METRICS as u64
    {
        assert!(Instant::now() < deadline, "{}", server.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(persist_stat(&server, "creates") <= 1, "{}", server.stats());
    assert!(wsp_files(&data) <= 1);

    let (from, until) = (t - 60, t + POINTS * 60);
    let want = |m: i64, newer: &[(i64, f64)]| {
        let mut p: Vec<(i64, f64)> = (0..POINTS).map(|i| (t + i * 60, value(m, i))).collect();
        for &(ts, v) in newer {
            match p.iter_mut().find(|x| x.0 == ts) {
                Some(x) => x.1 = v,
                None => p.push((ts, v)),
            }
        }
        p.sort_by_key(|x| x.0);
        p
    };
    let got = render(&server, "held.*.cpu", from, until);
    let expected: Vec<(String, Vec<(i64, f64)>)> = (0..METRICS)
        .map(|m| (format!("held.m{m}.cpu"), want(m, &[])))
        .collect();
    assert_eq!(got, expected, "{}", server.stats());

    // Newer points while the older ones are held: a new timestamp, and a new value for an
    // old one, which must win over the held value.
    let newer = |m: i64| [(t + 60, -1.0 - m as f64), (t + POINTS * 60, 7.0)];
    let mut lines = Vec::new();
    for m in 0..METRICS {
        for (ts, v) in newer(m) {
            lines.push(format!("held.m{m}.cpu {v} {ts}"));
        }
    }
    send_lines(&server, &lines);
    server.wait_received((METRICS * (POINTS + 2)) as u64);
    let until = t + (POINTS + 1) * 60;
    let expected: Vec<(String, Vec<(i64, f64)>)> = (0..METRICS)
        .map(|m| (format!("held.m{m}.cpu"), want(m, &newer(m))))
        .collect();
    // Read while the newer points are pending and once writers have taken them too.
    assert_eq!(render(&server, "held.*.cpu", from, until), expected);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(render(&server, "held.*.cpu", from, until), expected);
    assert!(persist_stat(&server, "creates") <= 1, "{}", server.stats());

    // Stopping writes everything held back, newer values over older ones.
    server.stop();
    assert_eq!(wsp_files(&data), METRICS as usize);
    for (name, points) in &expected {
        assert_eq!(&whisper_py_points(&data, name, 3600), points, "{name}");
    }
}
