//! `carbide serve` as a child process on free loopback ports, for the end-to-end tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `carbide serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub data: PathBuf,
    /// Plaintext port, TCP and UDP.
    pub line: u16,
    pub pickle: u16,
    pub http: u16,
}

impl Server {
    /// Starts the server on `data` with the embedded schemas and waits until it serves.
    pub fn start(data: &Path) -> Server {
        Self::start_with(data, &[])
    }

    /// Like [`Server::start`], with more `carbide serve` arguments (e.g. `--config FILE`).
    pub fn start_with(data: &Path, extra: &[&str]) -> Server {
        let (line, pickle, http) = (free_port(), free_port(), free_port());
        let child = Command::new(super::carbide_bin())
            .args(["serve"])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .args(["--schemas", "/nonexistent-use-embedded"])
            .args(["--line-tcp", &format!("127.0.0.1:{line}")])
            .args(["--line-udp", &format!("127.0.0.1:{line}")])
            .args(["--pickle", &format!("127.0.0.1:{pickle}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            // Off: carbon's default port 7002 would collide between servers running in
            // parallel (tests/carbonlink.rs starts its servers with a port of their own).
            .args(["--cache-query", "off"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start carbide serve");
        let mut s = Server {
            child,
            data: data.to_path_buf(),
            line,
            pickle,
            http,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let stderr = self.child.stderr.take().expect("stderr");
        let mut reader = BufReader::new(stderr);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("carbide serve exited before it was ready");
            }
            if line.contains("carbide serving") {
                // Keep draining the log so the child never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink);
                });
                return;
            }
        }
        panic!("carbide serve did not become ready");
    }

    /// One HTTP/1.1 request to the server's HTTP port: (status, lower-cased headers, body).
    pub fn http(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect http");
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(req.as_bytes()).expect("send");
        s.write_all(body).expect("send body");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, raw[split + 4..].to_vec())
    }

    /// The JSON of `GET /stats`.
    pub fn stats(&self) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect http");
        write!(
            s,
            "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("read");
        let json = body.split("\r\n\r\n").nth(1).expect("http body");
        serde_json::from_str(json).expect("stats json")
    }

    /// Points received so far (`/stats` `received`).
    pub fn received(&self) -> u64 {
        self.stats()["received"].as_u64().expect("received")
    }

    /// Waits (up to 20 s) until the server has received at least `n` points.
    pub fn wait_received(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.received() < n {
            assert!(
                Instant::now() < deadline,
                "server received {} of {n} points",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, and the server must exit cleanly (having written its cache out).
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "carbide serve exited with {status} after SIGTERM"
        );
    }

    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The non-null `(timestamp, value)` points whisper.py fetches from `metric`'s file over the
/// last `seconds`.
pub fn whisper_py_points(data: &Path, metric: &str, seconds: i64) -> Vec<(i64, f64)> {
    let path = data.join("whisper").join(metric.replace('.', "/") + ".wsp");
    let script = "import sys, json, time, whisper\n\
        r = whisper.fetch(sys.argv[1], int(time.time()) - int(sys.argv[2]))\n\
        (start, end, step), values = r\n\
        print(json.dumps([[start + i * step, v] for i, v in enumerate(values) if v is not None]))\n";
    let out = Command::new(super::python())
        .args(["-c", script])
        .arg(&path)
        .arg(seconds.to_string())
        .output()
        .expect("run whisper.py");
    assert!(
        out.status.success(),
        "whisper.py on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("fetch json")
}
