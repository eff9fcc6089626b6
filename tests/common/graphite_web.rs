//! graphite-web 1.1.10 in process (`tests/support/graphite_web.py`, run with the test venv's
//! interpreter) as one long-lived child: the reference for the read side. Each process serves one
//! whisper directory; tests give each case its own top-level prefix inside it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

pub struct GraphiteWeb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl GraphiteWeb {
    /// Starts graphite-web over `whisper_dir` with TIME_ZONE=UTC (about 3 s of Django setup).
    pub fn start(whisper_dir: &Path) -> GraphiteWeb {
        Self::start_in_zone(whisper_dir, "UTC")
    }

    pub fn start_in_zone(whisper_dir: &Path, time_zone: &str) -> GraphiteWeb {
        Self::start_with(whisper_dir, time_zone, None)
    }

    /// Like [`GraphiteWeb::start`], with CARBONLINK_HOSTS = [`carbonlink`] (`HOST:PORT` of a
    /// cache-query port) so that renders merge the points that cache still holds.
    pub fn start_with_carbonlink(whisper_dir: &Path, carbonlink: &str) -> GraphiteWeb {
        Self::start_with(whisper_dir, "UTC", Some(carbonlink))
    }

    fn start_with(whisper_dir: &Path, time_zone: &str, carbonlink: Option<&str>) -> GraphiteWeb {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/graphite_web.py");
        let mut command = Command::new(super::python());
        command
            .arg(script)
            .arg("--whisper-dir")
            .arg(whisper_dir)
            .arg("--time-zone")
            .arg(time_zone);
        if let Some(addr) = carbonlink {
            command.arg("--carbonlink").arg(addr);
        }
        let mut child = command
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start graphite-web driver");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        GraphiteWeb {
            child,
            stdin,
            stdout,
        }
    }

    /// One raw request (see the driver's doc comment for the ops).
    pub fn ask(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").expect("write to graphite-web driver");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read graphite-web driver");
        assert!(!line.is_empty(), "graphite-web driver exited");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver answer {line:?}: {e}"))
    }

    /// An HTTP request through graphite-web's views: (status, content type, body text).
    pub fn http(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> (u16, String, String) {
        let params: Vec<Value> = params.iter().map(|(k, v)| json!([k, v])).collect();
        let out = self.ask(json!({"op": "http", "method": method, "path": path, "params": params}));
        let status = out["status"].as_u64().expect("status") as u16;
        let ctype = out["content_type"].as_str().unwrap_or_default().to_string();
        let body = match &out["body"] {
            Value::String(s) => s.clone(),
            _ => out["pickle"].to_string(),
        };
        (status, ctype, body)
    }

    /// Python's `pickle.loads(bytes)` as JSON (floats as `{"float": repr}`).
    pub fn unpickle(&mut self, bytes: &[u8]) -> Value {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let out = self.ask(json!({"op": "unpickle", "hex": hex}));
        out.get("ok")
            .cloned()
            .unwrap_or_else(|| panic!("unpickle failed: {out}"))
    }

    /// graphite-web's `parseATTime(s, tz, now)` as epoch seconds, or its exception text.
    pub fn attime(&mut self, s: &str, tz: Option<&str>, now: i64) -> Result<i64, String> {
        let out = self.ask(json!({"op": "attime", "s": s, "tz": tz, "now": now}));
        match out["ok"].as_i64() {
            Some(t) => Ok(t),
            None => Err(out["error"].as_str().unwrap_or("?").to_string()),
        }
    }

    /// graphite-web's `parseTimeOffset(s)` in seconds, or its exception text.
    pub fn offset(&mut self, s: &str) -> Result<f64, String> {
        let out = self.ask(json!({"op": "offset", "s": s}));
        match out["ok"].as_f64() {
            Some(t) => Ok(t),
            None => Err(out["error"].as_str().unwrap_or("?").to_string()),
        }
    }

    /// graphite-web's grammar applied to a target, as the driver's JSON tree, or its exception.
    pub fn parse(&mut self, target: &str) -> Result<Value, String> {
        let out = self.ask(json!({"op": "parse", "target": target}));
        match out.get("ok") {
            Some(tree) => Ok(tree.clone()),
            None => Err(out["error"].as_str().unwrap_or("?").to_string()),
        }
    }
}

impl Drop for GraphiteWeb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
