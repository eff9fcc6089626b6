//! A client for `whisper_driver.py`, the long-lived whisper.py process the whisper tests compare
//! Carbide against, and the conversions that put both implementations' answers in one shape.
//!
//! One interpreter serves a whole test (not one per case) because starting Python and importing
//! whisper costs tens of milliseconds, which would cap a property test at a few dozen cases.
//! Both sides' results are turned into the driver's JSON shape, floats as IEEE-754 bit patterns,
//! so a single `==` compares them exactly (-0.0 against 0.0 and NaN payloads included).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use carbide::whisper::{FetchResult, Header, WhisperError};
use serde_json::{json, Value};

/// An answer in the driver's shape: `Ok(result)` or `Err({"type", "msg"})`.
pub type Answer = Result<Value, Value>;

/// The whisper.py driver process.
pub struct PyWhisper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PyWhisper {
    /// Starts the driver under `python` (the test venv's interpreter).
    pub fn start(python: &Path) -> PyWhisper {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/whisper_driver.py");
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} {}: {e}",
                    python.display(),
                    script.display()
                )
            });
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = BufReader::new(child.stdout.take().expect("driver stdout"));
        let mut driver = PyWhisper {
            child,
            stdin,
            stdout,
        };
        driver
            .call(json!({"op": "ping"}))
            .expect("whisper driver answers ping");
        driver
    }

    /// Sends one command and returns whisper.py's answer.
    pub fn call(&mut self, cmd: Value) -> Answer {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .expect("write to whisper driver");
        self.stdin.flush().expect("flush whisper driver");
        let mut reply = String::new();
        let n = self
            .stdout
            .read_line(&mut reply)
            .expect("read from whisper driver");
        assert!(n > 0, "whisper driver exited (command was {cmd})");
        let mut v: Value = serde_json::from_str(&reply)
            .unwrap_or_else(|e| panic!("bad driver reply {reply:?}: {e}"));
        if let Some(err) = v.get_mut("err") {
            return Err(normalise_py_error(err.take()));
        }
        Ok(v.get_mut("ok").map(Value::take).unwrap_or(Value::Null))
    }
}

impl Drop for PyWhisper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv interpreter, resolved the way the other integration tests resolve it.
pub fn python() -> PathBuf {
    crate::common::python()
}

/// `struct.error` texts are CPython's, not whisper's, and Carbide words the same failure
/// (a timestamp that does not fit u32) its own way: for that class only the class is compared.
fn normalise_py_error(mut err: Value) -> Value {
    if err["type"] == "error" {
        err["msg"] = Value::String(String::new());
    }
    err
}

/// The whisper.py exception class that corresponds to a Carbide error.
pub fn py_class(e: &WhisperError) -> &'static str {
    match e {
        WhisperError::InvalidConfiguration(_) => "InvalidConfiguration",
        WhisperError::InvalidAggregationMethod(_) => "InvalidAggregationMethod",
        WhisperError::InvalidXFilesFactor(_) => "InvalidXFilesFactor",
        WhisperError::Corrupt { .. } => "CorruptWhisperFile",
        WhisperError::TimestampNotCovered => "TimestampNotCovered",
        WhisperError::InvalidTimeInterval { .. } => "InvalidTimeInterval",
        WhisperError::InvalidGranularity(_) => "ValueError",
        WhisperError::TimestampOutOfRange(_) => "error",
        WhisperError::Unalike(_) => "NotImplementedError",
        WhisperError::InvalidArgument(_) => "ValueError",
        WhisperError::Io { .. } => "OSError",
    }
}

/// A Carbide error in the driver's shape.
pub fn rs_error(e: &WhisperError) -> Value {
    normalise_py_error(json!({"type": py_class(e), "msg": e.to_string()}))
}

/// A Carbide result in the driver's shape.
pub fn rs_answer<T>(r: Result<T, WhisperError>, to_json: impl FnOnce(T) -> Value) -> Answer {
    r.map(to_json).map_err(|e| rs_error(&e))
}

/// A fetch result in the driver's shape.
pub fn fetch_json(r: Option<FetchResult>) -> Value {
    match r {
        None => Value::Null,
        Some(f) => json!({
            "start": f.start,
            "end": f.end,
            "step": f.step,
            "values": f.values.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>(),
        }),
    }
}

/// A header in the driver's shape (whisper.py's `info()`).
pub fn header_json(h: Header) -> Value {
    json!({
        "aggregationMethod": h.aggregation_method.name(),
        "maxRetention": h.max_retention,
        "xFilesFactor_bits": f64::from(h.x_files_factor).to_bits(),
        "archives": h.archives.iter()
            .map(|a| json!([a.offset, a.seconds_per_point, a.points, a.retention, a.size]))
            .collect::<Vec<_>>(),
    })
}

/// Where two files first differ, as readable 12-byte records, for failure messages.
pub fn describe_file_diff(rs: &[u8], py: &[u8]) -> String {
    let mut out = format!(
        "carbide file {} bytes, whisper.py file {} bytes",
        rs.len(),
        py.len()
    );
    let mut shown = 0;
    let n = rs.len().max(py.len());
    // The 16-byte metadata block, then 12-byte chunks: archive records and points alike.
    let mut off = 0;
    while off < n && shown < 8 {
        let len = if off == 0 { 16 } else { 12 };
        let a = rs.get(off..(off + len).min(rs.len())).unwrap_or(&[]);
        let b = py.get(off..(off + len).min(py.len())).unwrap_or(&[]);
        if a != b {
            out.push_str(&format!(
                "\n  @{off}: carbide {} | whisper.py {}",
                record(a),
                record(b)
            ));
            shown += 1;
        }
        off += len;
    }
    out
}

fn record(b: &[u8]) -> String {
    if b.len() == 12 {
        let ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let v = f64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
        format!("({ts}, {v:e} = {:#018x})", v.to_bits())
    } else {
        format!("{b:02x?}")
    }
}
