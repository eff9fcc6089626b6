//! The read API of a running `carbide serve` over real sockets: new metrics readable the moment
//! their points are accepted (whether a writer has created their file yet or not), and the requests Grafana's Graphite
//! data source sends answered as graphite-web 1.1.10 answers them over the same files.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use common::graphite_web::GraphiteWeb;
use common::render::{parse_json, same};
use common::server::Server;

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

fn send_lines(server: &Server, lines: &[String]) {
    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    for l in lines {
        writeln!(tcp, "{l}").expect("send");
    }
}

#[test]
fn new_metrics_are_readable_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let t = now() - now() % 60 - 300;
    let mut lines = Vec::new();
    for host in 1..=4 {
        for i in 0..5 {
            lines.push(format!(
                "fresh.web{host}.cpu {} {}",
                host * 100 + i,
                t + i * 60
            ));
        }
    }
    send_lines(&server, &lines);
    server.wait_received(20);
    let body = form(&[
        ("target", "fresh.*.cpu"),
        ("from", &(t - 60).to_string()),
        ("until", &(t + 300).to_string()),
        ("format", "json"),
    ]);
    let (status, _, out) = server.http(
        "POST",
        "/render",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let json: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let series = json.as_array().expect("array");
    assert_eq!(series.len(), 4, "{json}");
    for (k, s) in series.iter().enumerate() {
        let host = k as i64 + 1;
        assert_eq!(s["target"], format!("fresh.web{host}.cpu"));
        let points: Vec<(f64, i64)> = s["datapoints"]
            .as_array()
            .expect("datapoints")
            .iter()
            .filter(|p| !p[0].is_null())
            .map(|p| (p[0].as_f64().expect("value"), p[1].as_i64().expect("ts")))
            .collect();
        let want: Vec<(f64, i64)> = (0..5)
            .map(|i| ((host * 100 + i) as f64, t + i * 60))
            .collect();
        assert_eq!(points, want, "{s}");
    }
    server.stop();
}

#[test]
fn grafana_requests_match_graphite_web() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let t = now() - now() % 60;
    let mut lines = Vec::new();
    for (host, dc) in [("web1", "ams"), ("web2", "ams"), ("db1", "fra")] {
        for i in 0..50 {
            let v = if (i + host.len() as i64) % 9 == 0 {
                continue;
            } else {
                i as f64 * 1.25
            };
            lines.push(format!("servers.{dc}.{host}.cpu {v} {}", t - i * 60));
            lines.push(format!(
                "servers.{dc}.{host}.requests {} {}",
                i * 7,
                t - i * 60
            ));
        }
    }
    let n = lines.len() as u64;
    send_lines(&server, &lines);
    server.wait_received(n);
    // Stopping flushes everything to whisper; graphite-web reads only files.
    server.stop();
    let server = Server::start(dir.path());
    let mut gw = GraphiteWeb::start(&dir.path().join("whisper"));
    let now_s = t.to_string();
    let from = (t - 3600).to_string();
    let render_cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("target", "servers.*.*.cpu")],
        vec![
            ("target", "servers.ams.{web1,web2}.cpu"),
            ("maxDataPoints", "7"),
        ],
        vec![(
            "target",
            "aliasSub(servers.ams.web1.cpu, \"(^.*$)\", \"\\1 A\")",
        )],
        vec![
            (
                "target",
                "aliasSub(sumSeries(servers.*.*.cpu), \"(^.*$)\", \"\\1 B\")",
            ),
            ("maxDataPoints", "300"),
        ],
        vec![
            (
                "target",
                "aliasSub(constantLine(100), \"(^.*$)\", \"\\1 A\")",
            ),
            ("maxDataPoints", "300"),
        ],
        vec![("target", "constantLine(100)"), ("maxDataPoints", "100")],
        vec![
            ("target", "aliasByNode(servers.*.*.requests, 2)"),
            ("target", "servers.nothing.*"),
        ],
    ];
    for case in render_cases {
        let mut pairs = case.clone();
        pairs.extend([
            ("from", from.as_str()),
            ("until", now_s.as_str()),
            ("format", "json"),
            ("now", now_s.as_str()),
        ]);
        let body = form(&pairs);
        let (status, headers, ours) = server.http(
            "POST",
            "/render",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        let ours = String::from_utf8_lossy(&ours).into_owned();
        assert_eq!(status, 200, "{case:?}: {ours}");
        assert!(headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"));
        let (gs, _, theirs) = gw.http("POST", "/render", &pairs);
        assert_eq!(gs, 200, "{case:?}: {theirs}");
        if let Err(why) = same(&parse_json(&ours), &parse_json(&theirs), 0.0, "$") {
            panic!("{case:?}: {why}\ncarbide:      {ours}\ngraphite-web: {theirs}");
        }
    }
    // The metric tree as Grafana's editor browses it: POST with the query in the body and the
    // range in the URL; template variables use expand.
    for query in [
        "*",
        "servers.*",
        "servers.ams.*",
        "servers.*.web*.*",
        "servers.{ams,fra}.*",
    ] {
        let url = format!("/metrics/find?from={from}&until={now_s}");
        let body = form(&[("query", query)]);
        let (status, _, ours) = server.http(
            "POST",
            &url,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        let ours = String::from_utf8_lossy(&ours).into_owned();
        assert_eq!(status, 200, "{query}: {ours}");
        let (gs, _, theirs) = gw.http(
            "POST",
            "/metrics/find",
            &[("query", query), ("from", &from), ("until", &now_s)],
        );
        assert_eq!(gs, 200);
        if let Err(why) = same(&parse_json(&ours), &parse_json(&theirs), 0.0, "$") {
            panic!("find {query}: {why}\ncarbide:      {ours}\ngraphite-web: {theirs}");
        }
        let q = form(&[("query", query), ("from", &from), ("until", &now_s)]);
        let (status, _, ours) = server.http("GET", &format!("/metrics/expand?{q}"), &[], b"");
        let (gs, _, theirs) = gw.http("GET", "/metrics/expand", &[("query", query)]);
        assert_eq!((status, gs), (200, 200));
        let ours = String::from_utf8_lossy(&ours).into_owned();
        if let Err(why) = same(&parse_json(&ours), &parse_json(&theirs), 0.0, "$") {
            panic!("expand {query}: {why}\ncarbide:      {ours}\ngraphite-web: {theirs}");
        }
    }
    // Grafana's browser sends the same as GET too, and with a trailing slash; gzip when asked.
    let q = form(&[
        ("target", "servers.ams.web1.cpu"),
        ("from", &from),
        ("now", &now_s),
        ("format", "json"),
    ]);
    let (s1, _, plain) = server.http("GET", &format!("/render?{q}"), &[], b"");
    let (s2, headers, zipped) = server.http(
        "GET",
        &format!("/render/?{q}"),
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!((s1, s2), (200, 200));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .expect("gunzip");
    assert_eq!(plain, unzipped);
    // CORS preflight for Grafana's browser mode.
    let (s, headers, _) = server.http(
        "OPTIONS",
        "/render",
        &[
            ("Origin", "http://grafana"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert!(s == 204 || s == 200);
    assert!(headers
        .iter()
        .any(|(k, _)| k == "access-control-allow-origin"));
    // /version
    let (s, _, v) = server.http("GET", "/version", &[], b"");
    assert_eq!((s, String::from_utf8_lossy(&v).trim()), (200, "1.1.10"));
    server.stop();
}
