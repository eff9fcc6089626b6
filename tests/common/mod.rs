//! Shared by the integration tests: where the reference implementations live.
#![allow(dead_code)]

pub mod graphite_web;
pub mod oracle;
pub mod render;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The venv holding the pinned whisper.py, set up on first use (scripts/setup-test-env).
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        if let Ok(dir) = std::env::var("CARBIDE_TEST_VENV") {
            if Path::new(&dir).join("bin/python").exists() {
                return PathBuf::from(dir);
            }
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-test-env");
        let out = Command::new(&script)
            .output()
            .expect("run scripts/setup-test-env");
        assert!(
            out.status.success(),
            "scripts/setup-test-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
}

/// The venv's python interpreter.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// One of the reference whisper-*.py tools.
pub fn whisper_tool(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

/// The pinned Etsy statsd package (its `stats.js` is the daemon), installed by
/// scripts/setup-test-env beside the venv, under `node/`.
pub fn statsd_dir() -> PathBuf {
    let dir = venv()
        .parent()
        .expect("the venv has a parent")
        .join("node/node_modules/statsd");
    assert!(
        dir.join("stats.js").exists(),
        "{} has no stats.js: run scripts/setup-test-env (it needs node and npm)",
        dir.display()
    );
    dir
}

/// The fixtures in ../shared, beside the project root.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The `carbide` binary built for this test run.
pub fn carbide_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_carbide"))
}

/// Runs a Python snippet in the test venv and fails the test with its stderr if it fails.
pub fn run_python(script: &str) -> Vec<u8> {
    let out = Command::new(python())
        .args(["-c", script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a Python snippet in the test venv with `input` as JSON on its stdin, and returns the
/// JSON it prints; fails the test with its stderr if it fails. The input is written from its
/// own thread, so a snippet that answers as it reads cannot deadlock on a full pipe.
pub fn python_json(script: &str, input: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(python())
        .args(["-c", script])
        .env("PYTHONUTF8", "1")
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let body = input.to_string();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().expect("python runs");
    writer.join().expect("writer").expect("write to python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints json")
}

/// A `/render` JSON answer as `(target, [(ts, value)])`, null points dropped.
pub fn render_points(render: &serde_json::Value) -> Vec<(String, Vec<(i64, f64)>)> {
    render
        .as_array()
        .expect("render array")
        .iter()
        .map(|s| {
            let points = s["datapoints"]
                .as_array()
                .expect("datapoints")
                .iter()
                .filter(|p| !p[0].is_null())
                .map(|p| (p[1].as_i64().expect("ts"), p[0].as_f64().expect("value")))
                .collect();
            (s["target"].as_str().expect("target").to_string(), points)
        })
        .collect()
}
