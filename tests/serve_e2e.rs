//! `carbide serve` end to end: the server runs as a child process on loopback ports; points go
//! in over plaintext TCP, UDP and pickle (pickled by CPython itself), and come out of whisper
//! files as whisper.py reads them. Also: bad input is refused without disturbing good points,
//! SIGTERM writes the cache out, and SIGKILL loses nothing the server had counted as received.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::server::{whisper_py_points, Server};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock")
}

#[test]
fn plaintext_udp_and_pickle_land_in_whisper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let t = now() - now() % 60 - 120;

    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    write!(tcp, "e2e.tcp.a 1.5 {t}\r\n  e2e.tcp.b\t-2 {}\n", t + 60).expect("send");
    write!(
        tcp,
        "not a line\ne2e..bad 1 {t}\ne2e.tcp.a nan {}\n",
        t + 60
    )
    .expect("send");
    writeln!(tcp, "e2e.tcp.c 3e3 {}.75", t + 60).expect("send");
    drop(tcp);

    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.send_to(
        format!("e2e.udp.a 7 {t}\ne2e.udp.a 8 {}\n", t + 60).as_bytes(),
        ("127.0.0.1", server.line),
    )
    .expect("send udp");

    // A batch pickled by CPython itself, protocol 2, as carbon-relay and Python clients send.
    let script = format!(
        "import pickle, struct, socket, sys\n\
         batch = [('e2e.pickle.a', ({t}, 11.25)), ('e2e.pickle.a', ({t1}, 12)), (u'e2e.pickle.b', (float({t}), -0.5))]\n\
         p = pickle.dumps(batch, protocol=2)\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(struct.pack('!L', len(p)) + p)\n\
         s.close()\n",
        t1 = t + 60,
        port = server.pickle
    );
    common::run_python(&script);

    server.wait_received(8);
    let stats = server.stats();
    assert_eq!(stats["ingest"]["bad_lines"], 1, "{stats}");
    assert_eq!(stats["ingest"]["bad_names"], 1, "{stats}");
    let data = server.data.clone();
    server.stop();

    assert_eq!(whisper_py_points(&data, "e2e.tcp.a", 3600), vec![(t, 1.5)]);
    assert_eq!(
        whisper_py_points(&data, "e2e.tcp.b", 3600),
        vec![(t + 60, -2.0)]
    );
    assert_eq!(
        whisper_py_points(&data, "e2e.tcp.c", 3600),
        vec![(t + 60, 3000.0)]
    );
    assert_eq!(
        whisper_py_points(&data, "e2e.udp.a", 3600),
        vec![(t, 7.0), (t + 60, 8.0)]
    );
    assert_eq!(
        whisper_py_points(&data, "e2e.pickle.a", 3600),
        vec![(t, 11.25), (t + 60, 12.0)]
    );
    assert_eq!(
        whisper_py_points(&data, "e2e.pickle.b", 3600),
        vec![(t, -0.5)]
    );
    assert!(!data.join("whisper/e2e/bad.wsp").exists());
}

#[test]
fn hostile_input_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let t = now() - now() % 60 - 60;

    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    for bad in [
        "../../etc/passwd 1 0\n".to_string(),
        format!("a/b 1 {t}\n"),
        format!("a\0b 1 {t}\n"),
        format!(".lead 1 {t}\n"),
        format!("trail. 1 {t}\n"),
        format!("x 1e400e 1 {t}\n"),
        format!("x abc {t}\n"),
        format!("x 1 {}\n", 1u64 << 40),
    ] {
        tcp.write_all(bad.as_bytes()).expect("send");
    }
    tcp.write_all(&[0xff, 0xfe, b' ', b'1', b'\n'])
        .expect("send");
    writeln!(tcp, "hostile.after 42 {t}").expect("send");
    drop(tcp);

    // A 10 MB line: carbon closes such a connection; the next connection is served.
    let mut big = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    let _ = big.write_all(&vec![b'a'; 10 << 20]);
    drop(big);

    // A pickle that would run os.system, and a length prefix of 4 GiB.
    let script = format!(
        "import socket, struct\n\
         evil = b\"cos\\nsystem\\n(S'touch /tmp/carbide-pwned'\\ntR.\"\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(struct.pack('!L', len(evil)) + evil)\n\
         s.close()\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(struct.pack('!L', 0xffffffff) + b'x' * 1000)\n\
         s.close()\n",
        port = server.pickle
    );
    common::run_python(&script);

    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    writeln!(tcp, "hostile.next 43 {t}").expect("send");
    drop(tcp);

    server.wait_received(2);
    let stats = server.stats();
    assert!(stats["ingest"]["bad_names"].as_u64() >= Some(5), "{stats}");
    assert!(
        stats["ingest"]["bad_pickles"].as_u64() >= Some(2),
        "{stats}"
    );
    let data = server.data.clone();
    server.stop();
    assert!(!Path::new("/tmp/carbide-pwned").exists());
    assert_eq!(
        whisper_py_points(&data, "hostile.after", 3600),
        vec![(t, 42.0)]
    );
    assert_eq!(
        whisper_py_points(&data, "hostile.next", 3600),
        vec![(t, 43.0)]
    );
    let mut files = Vec::new();
    collect_files(&data.join("whisper"), &mut files);
    files.sort();
    assert_eq!(
        files,
        ["hostile/after.wsp", "hostile/next.wsp"],
        "unexpected files"
    );
}

fn collect_files(dir: &Path, out: &mut Vec<String>) {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    walk(dir, dir, out);
}

#[test]
fn sigkill_loses_nothing_counted_as_received() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Points one a second over the last hours, all in the finest archive of the default
    // schema (60s): one metric per second-of-minute so that no two points share a slot.
    let base = now() - now() % 60 - 3 * 3600;
    let total: i64 = 6000;
    let point = |i: i64| {
        let metric = format!("crash.m{}", i % 100);
        let ts = base + (i / 100) * 60;
        (metric, ts, i as f64)
    };
    let mut sent: i64 = 0;
    let mut must_have: Vec<i64> = Vec::new();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for round in 0..4 {
        let server = Server::start(dir.path());
        let before = server.received();
        let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let burst = 1000 + (rng % 1000) as i64;
        let end = (sent + burst).min(total);
        // A steady stream, 50 lines a write, still going when the kill comes.
        let lines: Vec<String> = (sent..end)
            .map(|i| {
                let (m, ts, v) = point(i);
                format!("{m} {v} {ts}\n")
            })
            .collect();
        let writer = std::thread::spawn(move || {
            for chunk in lines.chunks(50) {
                if tcp.write_all(chunk.concat().as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        std::thread::sleep(Duration::from_millis(30 + rng % 150));
        // One connection is logged in order, so "received k" means the burst's first k
        // points; whatever the server says it has received before the kill must survive it.
        let k = (server.received() - before) as i64;
        must_have.extend(sent..sent + k.min(end - sent));
        eprintln!("round {round}: sent {sent}..{end}, {k} counted as received before SIGKILL");
        sent = end;
        server.kill();
        let _ = writer.join();
    }
    let server = Server::start(dir.path());
    let data = server.data.clone();
    server.stop();
    let mut found = std::collections::BTreeSet::new();
    for m in 0..100 {
        let metric = format!("crash.m{m}");
        let file = data.join("whisper/crash").join(format!("m{m}.wsp"));
        if !file.exists() {
            continue;
        }
        for (ts, v) in whisper_py_points(&data, &metric, 4 * 3600) {
            let i = v as i64;
            assert!(i >= 0 && i < sent, "{metric}: value {v} was never sent");
            assert_eq!(
                point(i),
                (metric.clone(), ts, v),
                "{metric}: point stored at the wrong place"
            );
            found.insert(i);
        }
    }
    assert!(
        !must_have.is_empty(),
        "no round had a point counted as received"
    );
    let lost: Vec<i64> = must_have
        .iter()
        .copied()
        .filter(|i| !found.contains(i))
        .collect();
    assert!(
        lost.is_empty(),
        "{} points counted as received are not in whisper, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn self_metrics_are_written_under_carbon_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("carbide.toml");
    std::fs::write(
        &config,
        "[self_metrics]\ninterval_seconds = 1\nhost = \"testhost\"\n",
    )
    .expect("write config");
    let server = Server::start_with(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let t = now() - 60;
    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    writeln!(tcp, "selfm.a 1 {t}").expect("send");
    drop(tcp);
    let agents = server.data.join("whisper/carbon/agents/testhost");
    let names = [
        "metricsReceived",
        "committedPoints",
        "updateOperations",
        "pointsPerUpdate",
        "avgUpdateTime",
        "creates",
        "errors",
        "cache/size",
        "cache/queues",
        "cache/queries",
        "memUsage",
        "activeConnections",
        "wal/bytes",
        "dropped",
        "rejected",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !names
        .iter()
        .all(|n| agents.join(format!("{n}.wsp")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "missing self-metrics: {:?}",
            names
                .iter()
                .filter(|n| !agents.join(format!("{n}.wsp")).exists())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let data = server.data.clone();
    server.stop();
    let mem = whisper_py_points(&data, "carbon.agents.testhost.memUsage", 600);
    assert!(mem.iter().any(|&(_, v)| v > 1e6), "memUsage: {mem:?}");
    let info = carbide::whisper::info(&agents.join("metricsReceived.wsp")).expect("info");
    assert_eq!(
        info.archives[0].seconds_per_point, 60,
        "carbon.* schema applies"
    );
    assert_eq!(info.archives[0].points, 129600);
}
