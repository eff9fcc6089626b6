//! `carbide-bench`: an end-to-end load generator for carbon-compatible servers.
//!
//! It sends N metrics × M points over K TCP connections (plaintext lines, or carbon's pickle
//! protocol with `--pickle`) as fast as the server takes them, then measures three rates:
//!
//! * **sent**: points / time until the last `write` returned;
//! * **accepted**: points / time until the server had read every byte. With `--http` (Carbide's
//!   `/stats`) this is exact: `received` (points the write-ahead log holds) reaching N×M.
//!   Without it, each connection half-closes after its last write and waits for the server to
//!   close in turn: a server reads the EOF only after every byte before it, so that moment is
//!   an upper bound on "all bytes read" (carbon-cache closes on EOF). If the server never
//!   closes, the time the last write returned is used, and the report says which was used.
//! * **persisted**: points / time until every point is readable from whisper. With `--http`,
//!   `persist.committed_points` reaching N×M; otherwise `--verify-dir` polls a sample of the
//!   whisper files (read with `carbide::whisper`) until each has its last point, and the number
//!   of `.wsp` files under the prefix reaches N.
//!
//! With `--pid` it also reports the server's peak RSS (VmHWM at the end of the run) and the CPU
//! time each of its threads used during the run, summed by thread name, which is a cheap hint
//! of where the time goes when `perf` is not at hand.
//!
//! The payloads are rendered before the clock starts, so the client costs as little CPU as
//! possible on a machine it shares with the server. Every phase has a timeout; failures are
//! printed and the exit status is non-zero.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::{json, Value};

/// The finest archive of the benchmark schema (`10s:1d,1m:30d,10m:1y`): points are this far
/// apart so that each lands in its own slot of it.
const DEFAULT_STEP: u64 = 10;

#[derive(Debug, Parser)]
#[command(
    name = "carbide-bench",
    about = "Send N metrics × M points over K connections to a carbon-compatible server and \
             measure how fast it accepts and persists them"
)]
struct Args {
    /// Receiver address (plaintext, or pickle with --pickle).
    #[arg(long, default_value = "127.0.0.1:2003")]
    addr: String,
    /// Carbide's HTTP address (HOST:PORT) for exact accepted/persisted counts from /stats.
    #[arg(long)]
    http: Option<String>,
    /// Distinct metric names.
    #[arg(long, default_value_t = 10_000)]
    metrics: usize,
    /// Points per metric, at consecutive timestamps one step apart, ending near now.
    #[arg(long, default_value_t = 10)]
    points: usize,
    /// TCP connections; each sends a disjoint slice of the metrics.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// First node(s) of every metric name (`bench.g0001.m1234`).
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Send carbon pickle protocol-2 frames instead of plaintext lines.
    #[arg(long)]
    pickle: bool,
    /// Points per pickle frame.
    #[arg(long, default_value_t = 500)]
    pickle_batch: usize,
    /// Seconds between a metric's points (the schema's finest precision).
    #[arg(long, default_value_t = DEFAULT_STEP)]
    step: u64,
    /// The last point is the latest multiple of this many seconds not in the future (default:
    /// --step). A coarse value (3600) makes runs within the same hour send the same
    /// timestamps, so that they write the same whisper slots and archives: counts of system
    /// calls then compare between runs.
    #[arg(long)]
    align: Option<u64>,
    /// Send metric after metric (all points of one, then the next) instead of interval after
    /// interval (every metric's first point, then every metric's second, ...).
    #[arg(long)]
    metric_major: bool,
    /// Whisper root of the server: persisted = sampled files hold their last point.
    #[arg(long, value_name = "DIR")]
    verify_dir: Option<PathBuf>,
    /// How many whisper files --verify-dir samples.
    #[arg(long, default_value_t = 1000)]
    verify_sample: usize,
    /// Server process id: peak RSS and per-thread CPU time.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds each phase (send, accept, persist) may take before the run fails.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Measure sending and accepting only: do not wait for the points to be persisted (nor
    /// verify them). For the receive path alone, run the server with its writers held back
    /// (Carbide: `[persist] max_updates_per_second = 1`, see benches/load/accept-only.sh).
    #[arg(long)]
    accept_only: bool,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else {
                print_text(&report);
            }
            if report["ok"].as_bool() != Some(true) {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("carbide-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// The name of metric `i`: 1000 files a directory, as real trees have many directories.
fn metric_name(prefix: &str, i: usize) -> String {
    format!("{prefix}.g{:04}.m{i}", i / 1000)
}

/// The whisper file of metric `i` under `root`.
fn metric_path(root: &Path, prefix: &str, i: usize) -> PathBuf {
    let mut p = root.to_path_buf();
    for node in metric_name(prefix, i).split('.') {
        p.push(node);
    }
    p.set_extension("wsp");
    p
}

/// The value of point `j`: distinct per point so a reader can tell which one it sees.
fn point_value(j: usize) -> f64 {
    (j + 1) as f64
}

/// Where the points go in time: `points` timestamps one `step` apart, the last one the most
/// recent multiple of `step` that is not in the future.
struct Timeline {
    first: u64,
    step: u64,
    points: usize,
}

impl Timeline {
    fn now(step: u64, align: u64, points: usize) -> Timeline {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = now - now % align.max(1);
        let last = last - last % step;
        Timeline {
            first: last - step * (points as u64 - 1),
            step,
            points,
        }
    }

    fn ts(&self, j: usize) -> u64 {
        self.first + self.step * j as u64
    }

    fn last(&self) -> u64 {
        self.ts(self.points - 1)
    }
}

/// The (metric, point) pairs of one connection, in sending order.
fn sending_order(
    metrics: std::ops::Range<usize>,
    points: usize,
    metric_major: bool,
) -> Box<dyn Iterator<Item = (usize, usize)>> {
    if metric_major {
        Box::new(metrics.flat_map(move |i| (0..points).map(move |j| (i, j))))
    } else {
        Box::new((0..points).flat_map(move |j| metrics.clone().map(move |i| (i, j))))
    }
}

/// `name value timestamp\n` lines.
fn render_plaintext(args: &Args, tl: &Timeline, metrics: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(metrics.len() * tl.points * (args.prefix.len() + 32));
    let names: Vec<String> = metrics
        .clone()
        .map(|i| metric_name(&args.prefix, i))
        .collect();
    let base = metrics.start;
    for (i, j) in sending_order(metrics, tl.points, args.metric_major) {
        // Writing into a Vec cannot fail.
        let _ = writeln!(out, "{} {} {}", names[i - base], point_value(j), tl.ts(j));
    }
    out
}

/// Carbon's pickle frames: a 4-byte big-endian length, then a protocol-2 pickle of a list of
/// `(name, (timestamp, value))` tuples, as carbon-relay and most clients send them. Only the
/// opcodes a stock `pickle.dumps` would use for this data, so a restricted unpickler takes it.
fn render_pickle(args: &Args, tl: &Timeline, metrics: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut frame = Vec::new();
    let mut in_frame = 0;
    let names: Vec<String> = metrics
        .clone()
        .map(|i| metric_name(&args.prefix, i))
        .collect();
    let base = metrics.start;
    let batch = args.pickle_batch.max(1);
    let finish = |frame: &mut Vec<u8>, out: &mut Vec<u8>| {
        frame.extend_from_slice(b"e."); // APPENDS, STOP
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.append(frame);
    };
    for (i, j) in sending_order(metrics, tl.points, args.metric_major) {
        if in_frame == 0 {
            frame.extend_from_slice(b"\x80\x02]("); // PROTO 2, EMPTY_LIST, MARK
        }
        let name = names[i - base].as_bytes();
        frame.push(b'X'); // BINUNICODE
        frame.extend_from_slice(&(name.len() as u32).to_le_bytes());
        frame.extend_from_slice(name);
        let ts = tl.ts(j);
        match i32::try_from(ts) {
            Ok(t) => {
                frame.push(b'J'); // BININT
                frame.extend_from_slice(&t.to_le_bytes());
            }
            Err(_) => {
                frame.push(b'G'); // BINFLOAT: past 2038 an int no longer fits BININT
                frame.extend_from_slice(&(ts as f64).to_be_bytes());
            }
        }
        frame.push(b'G');
        frame.extend_from_slice(&point_value(j).to_be_bytes());
        frame.extend_from_slice(b"\x86\x86"); // TUPLE2 (ts, value), TUPLE2 (name, ...)
        in_frame += 1;
        if in_frame == batch {
            finish(&mut frame, &mut out);
            in_frame = 0;
        }
    }
    if in_frame > 0 {
        finish(&mut frame, &mut out);
    }
    out
}

/// What one connection measured, relative to the common start.
struct ConnResult {
    written: Duration,
    /// When the server closed after our EOF; None when it did not within the timeout.
    closed: Option<Duration>,
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

/// Connects, waits for the others, writes everything, half-closes and waits for the server's
/// close (bounded by `timeout`).
fn send_one(
    addr: SocketAddr,
    payload: Vec<u8>,
    start_line: Arc<Barrier>,
    started: Arc<std::sync::OnceLock<Instant>>,
    timeout: Duration,
) -> Result<ConnResult, String> {
    let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(10));
    // Every thread must reach the barrier, or the others would wait forever.
    start_line.wait();
    let mut s = connected.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let t0 = *started.get_or_init(Instant::now);
    let _ = s.set_nodelay(true);
    s.set_write_timeout(Some(timeout))
        .map_err(|e| format!("set_write_timeout: {e}"))?;
    s.write_all(&payload)
        .map_err(|e| format!("write to {addr} failed: {e}"))?;
    s.flush()
        .map_err(|e| format!("write to {addr} failed: {e}"))?;
    let written = t0.elapsed();
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown of {addr} failed: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break Some(t0.elapsed()),
            Ok(_) => continue,
            // A reset after our EOF is the server closing too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Some(t0.elapsed()),
            Err(_) => break None,
        }
    };
    Ok(ConnResult { written, closed })
}

/// GET /stats from Carbide over a bare HTTP/1.0 connection (no client library needed).
fn get_stats(http: &str) -> Result<Value, String> {
    let host = http
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let addr = resolve(&host)?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let io = |e: std::io::Error| format!("GET http://{host}/stats: {e}");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(s, "GET /stats HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(io)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(io)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{host}/stats: malformed response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or("");
        return Err(format!("GET http://{host}/stats: {status}"));
    }
    serde_json::from_str(body).map_err(|e| format!("GET http://{host}/stats: bad JSON: {e}"))
}

fn stat_u64(v: &Value, path: &[&str]) -> Result<u64, String> {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_u64()
        .ok_or_else(|| format!("/stats has no numeric {}", path.join(".")))
}

/// Polls /stats until the counter at `path` has grown by `want` since `base`; returns the time
/// since `t0` at which it was seen, or None on timeout. Also tracks the largest cache size
/// seen, which tells how far persistence lagged behind ingestion.
fn poll_stats(
    http: &str,
    path: &[&str],
    base: u64,
    want: u64,
    t0: Instant,
    deadline: Instant,
    peak_cache: &mut u64,
) -> Result<Option<Duration>, String> {
    loop {
        let v = get_stats(http)?;
        *peak_cache = (*peak_cache).max(stat_u64(&v, &["cache", "size"]).unwrap_or(0));
        let n = stat_u64(&v, path)?;
        if n.saturating_sub(base) >= want {
            return Ok(Some(t0.elapsed()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        // Often enough for a few-percent error on multi-second phases, rarely enough not to
        // steal CPU from the server.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Metrics spread evenly over 0..n, always including the last one of every connection's slice
/// (the ones a server sees last).
fn sample_metrics(n: usize, k: usize, sample: usize) -> Vec<usize> {
    let sample = sample.clamp(1, n);
    let mut v: Vec<usize> = (0..sample).map(|s| s * n / sample).collect();
    v.extend((1..=k).map(|c| c * n / k - 1));
    v.sort_unstable();
    v.dedup();
    v
}

/// How many of the timeline's points file `path` holds with their expected values; None when
/// the file does not exist yet or cannot be read (a server may be creating it right now).
fn points_present(path: &Path, tl: &Timeline) -> Option<usize> {
    let until = tl.last() as i64;
    let from = tl.first as i64 - 1;
    let r = carbide::whisper::fetch(path, from, Some(until), None, None).ok()??;
    let mut n = 0;
    for j in 0..tl.points {
        let ts = tl.ts(j) as i64;
        if ts < r.start || r.step <= 0 {
            continue;
        }
        let idx = ((ts - r.start) / r.step) as usize;
        if r.values.get(idx).copied().flatten() == Some(point_value(j)) {
            n += 1;
        }
    }
    Some(n)
}

/// The last point of `metric` is in its file.
fn last_point_present(root: &Path, prefix: &str, metric: usize, tl: &Timeline) -> bool {
    let path = metric_path(root, prefix, metric);
    let until = tl.last() as i64;
    match carbide::whisper::fetch(&path, until - 1, Some(until), None, None) {
        Ok(Some(r)) => r.values.first().copied().flatten() == Some(point_value(tl.points - 1)),
        _ => false,
    }
}

fn count_wsp(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => n += count_wsp(&p),
            Ok(_) if p.extension().is_some_and(|x| x == "wsp") => n += 1,
            _ => {}
        }
    }
    n
}

/// Polls the whisper tree until every sampled metric has its last point and there are N
/// files under the prefix; returns the time since `t0`, or None on timeout.
fn poll_whisper(
    args: &Args,
    root: &Path,
    tl: &Timeline,
    t0: Instant,
    deadline: Instant,
) -> Option<Duration> {
    let mut pending = sample_metrics(args.metrics, args.connections, args.verify_sample);
    let mut prefix_dir = root.to_path_buf();
    for node in args.prefix.split('.') {
        prefix_dir.push(node);
    }
    loop {
        pending.retain(|&m| !last_point_present(root, &args.prefix, m, tl));
        // Counting files walks the whole tree: only once the sample is complete.
        if pending.is_empty() && count_wsp(&prefix_dir) >= args.metrics {
            return Some(t0.elapsed());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After the run: every point of the sampled metrics must be in whisper.
fn verify_sample(args: &Args, root: &Path, tl: &Timeline) -> Value {
    let sample = sample_metrics(args.metrics, args.connections, args.verify_sample);
    let mut complete = 0;
    let mut missing_files = 0;
    let mut missing_points = 0;
    for &m in &sample {
        match points_present(&metric_path(root, &args.prefix, m), tl) {
            Some(n) if n == tl.points => complete += 1,
            Some(n) => missing_points += tl.points - n,
            None => missing_files += 1,
        }
    }
    json!({
        "sampled": sample.len(),
        "complete": complete,
        "missing_files": missing_files,
        "missing_points": missing_points,
    })
}

/// Peak resident set (VmHWM) of `pid`, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// A `kB` field of `/proc/PID/status` (VmHWM, VmRSS), in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU ticks (user, system) of every thread of `pid`, by thread id, with the thread's name.
fn thread_ticks(pid: u32) -> HashMap<u32, (String, u64, u64)> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the comm: state is field 3 of the line, utime 14 and stime 15.
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        if let (Some(u), Some(s)) = (ticks(14), ticks(15)) {
            out.insert(tid, (comm, u, s));
        }
    }
    out
}

/// CPU seconds per thread name between two snapshots (threads started in between count from 0;
/// threads that ended are lost, which for a server's long-lived pools is nothing). User and
/// system time apart: a writer that spends its time in the kernel is bound by the filesystem.
fn thread_cpu(
    before: &HashMap<u32, (String, u64, u64)>,
    after: &HashMap<u32, (String, u64, u64)>,
) -> Value {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut by_name: HashMap<String, (f64, f64, usize)> = HashMap::new();
    for (tid, (name, u, s)) in after {
        let (u0, s0) = before.get(tid).map(|b| (b.1, b.2)).unwrap_or((0, 0));
        let e = by_name.entry(name.clone()).or_default();
        e.0 += u.saturating_sub(u0) as f64 / hz;
        e.1 += s.saturating_sub(s0) as f64 / hz;
        e.2 += 1;
    }
    let mut v: Vec<_> = by_name.into_iter().collect();
    v.sort_by(|a, b| (b.1 .0 + b.1 .1).total_cmp(&(a.1 .0 + a.1 .1)));
    Value::Array(
        v.into_iter()
            .filter(|(_, (u, s, _))| u + s > 0.0)
            .map(|(name, (u, s, threads))| {
                json!({
                    "thread": name,
                    "threads": threads,
                    "cpu_seconds": round3(u + s),
                    "user_seconds": round3(u),
                    "system_seconds": round3(s),
                })
            })
            .collect(),
    )
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rate(points: u64, d: Option<Duration>) -> Value {
    match d {
        Some(d) if !d.is_zero() => json!(round3(points as f64 / d.as_secs_f64())),
        _ => Value::Null,
    }
}

fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(round3(d.as_secs_f64())))
}

fn run(args: &Args) -> Result<Value, String> {
    if args.metrics == 0 || args.points == 0 || args.connections == 0 || args.step == 0 {
        return Err("--metrics, --points, --connections and --step must be positive".into());
    }
    if args.connections > args.metrics {
        return Err("--connections cannot exceed --metrics".into());
    }
    if args.step * args.points as u64 > 86_400 {
        eprintln!(
            "carbide-bench: warning: {} points {}s apart span more than a day, past the \
             finest archive of 10s:1d",
            args.points, args.step
        );
    }
    let addr = resolve(&args.addr)?;
    let total = (args.metrics * args.points) as u64;
    let timeout = Duration::from_secs(args.timeout);
    let tl = Timeline::now(args.step, args.align.unwrap_or(args.step), args.points);

    // Render before the clock starts.
    let k = args.connections;
    let payloads: Vec<Vec<u8>> = (0..k)
        .map(|c| {
            let slice = c * args.metrics / k..(c + 1) * args.metrics / k;
            if args.pickle {
                render_pickle(args, &tl, slice)
            } else {
                render_plaintext(args, &tl, slice)
            }
        })
        .collect();
    let bytes: usize = payloads.iter().map(Vec::len).sum();

    let base = match &args.http {
        Some(h) => {
            let v = get_stats(h)?;
            Some((
                stat_u64(&v, &["received"])?,
                stat_u64(&v, &["persist", "committed_points"])?,
            ))
        }
        None => None,
    };
    let ticks_before = args.pid.map(thread_ticks);
    let rss_before = args.pid.and_then(|pid| status_bytes(pid, "VmRSS:"));

    let start_line = Arc::new(Barrier::new(k));
    let started = Arc::new(std::sync::OnceLock::new());
    let handles: Vec<_> = payloads
        .into_iter()
        .map(|p| {
            let (b, s) = (start_line.clone(), started.clone());
            std::thread::spawn(move || send_one(addr, p, b, s, timeout))
        })
        .collect();

    // While the senders run, the main thread watches /stats for "accepted" so that the
    // moment is not missed; senders may stay blocked on a full server for a long time.
    let mut peak_cache = 0u64;
    let mut accepted_stats = None;
    let mut stats_error = None;
    if let Some((received0, _)) = base {
        let t0 = loop {
            if let Some(t) = started.get() {
                break *t;
            }
            if handles.iter().all(|h| h.is_finished()) {
                break Instant::now();
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let http = args.http.as_deref().unwrap_or_default();
        match poll_stats(
            http,
            &["received"],
            received0,
            total,
            t0,
            t0 + timeout,
            &mut peak_cache,
        ) {
            Ok(d) => accepted_stats = d,
            Err(e) => stats_error = Some(e),
        }
    }

    let mut results = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a sender thread panicked".into()),
        }
    }
    if let Some(e) = stats_error {
        return Err(e);
    }
    let t0 = started
        .get()
        .copied()
        .ok_or("no connection started sending")?;
    let written = results.iter().map(|r| r.written).max();
    let closed = results
        .iter()
        .map(|r| r.closed)
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max());
    let (accepted, accepted_method) = match (&args.http, accepted_stats, closed) {
        (Some(_), a, _) => (a, "carbide /stats received == N*M"),
        (None, _, Some(c)) => (
            Some(c),
            "server closed the connection after the client's EOF (all bytes read)",
        ),
        (None, _, None) => (written, "last write returned (server did not close)"),
    };

    let persist_deadline = Instant::now() + timeout;
    let (persisted, persisted_method) = if args.accept_only {
        (None, "not measured (--accept-only)")
    } else if let (Some(h), Some((_, committed0))) = (&args.http, base) {
        let d = poll_stats(
            h,
            &["persist", "committed_points"],
            committed0,
            total,
            t0,
            persist_deadline,
            &mut peak_cache,
        )?;
        (d, "carbide /stats persist.committed_points == N*M")
    } else if let Some(dir) = &args.verify_dir {
        (
            poll_whisper(args, dir, &tl, t0, persist_deadline),
            "sampled whisper files hold their last point and N files exist",
        )
    } else {
        (None, "not measured (neither --http nor --verify-dir)")
    };
    let measured_persist = !args.accept_only && (args.http.is_some() || args.verify_dir.is_some());

    let verification = match &args.verify_dir {
        Some(dir) if persisted.is_some() && !args.accept_only => verify_sample(args, dir, &tl),
        _ => Value::Null,
    };
    let verified = verification.is_null()
        || verification["complete"].as_u64() == verification["sampled"].as_u64();

    let server = args.pid.map(|pid| {
        let after = thread_ticks(pid);
        json!({
            "pid": pid,
            "peak_rss_bytes": peak_rss(pid),
            "rss_bytes_before": rss_before,
            "threads_cpu": ticks_before.as_ref().map(|b| thread_cpu(b, &after)),
        })
    });

    let ok = accepted.is_some() && (persisted.is_some() || !measured_persist) && verified;
    Ok(json!({
        "ok": ok,
        "target": args.addr,
        "protocol": if args.pickle { "pickle" } else { "plaintext" },
        "metrics": args.metrics,
        "points_per_metric": args.points,
        "points": total,
        "connections": k,
        "bytes": bytes,
        "order": if args.metric_major { "metric-major" } else { "interval-major" },
        "accept_only": args.accept_only,
        "first_timestamp": tl.first,
        "last_timestamp": tl.last(),
        "timeout_seconds": args.timeout,
        "sent": {
            "seconds": secs(written),
            "points_per_second": rate(total, written),
            "finished": written.is_some(),
        },
        "accepted": {
            "seconds": secs(accepted),
            "points_per_second": rate(total, accepted),
            "method": accepted_method,
            "finished": accepted.is_some(),
        },
        "persisted": {
            "seconds": secs(persisted),
            "points_per_second": rate(total, persisted),
            "method": persisted_method,
            "finished": persisted.is_some(),
        },
        "peak_cache_points": args.http.as_ref().map(|_| peak_cache),
        "verification": verification,
        "server": server,
    }))
}

fn print_text(r: &Value) {
    println!(
        "{} {} metrics × {} points = {} points over {} connections to {} ({} bytes, {})",
        r["protocol"].as_str().unwrap_or(""),
        r["metrics"],
        r["points_per_metric"],
        r["points"],
        r["connections"],
        r["target"].as_str().unwrap_or(""),
        r["bytes"],
        r["order"].as_str().unwrap_or("")
    );
    for phase in ["sent", "accepted", "persisted"] {
        let p = &r[phase];
        let method = p["method"].as_str().unwrap_or("");
        match (p["seconds"].as_f64(), p["points_per_second"].as_f64()) {
            (Some(s), Some(pps)) => println!("{phase:>9}: {pps:>12.0} points/s  ({s:.3} s)"),
            _ if method.starts_with("not measured") => println!("{phase:>9}: not measured"),
            _ => println!(
                "{phase:>9}: did not finish in {} s",
                r["timeout_seconds"].as_u64().unwrap_or(0)
            ),
        }
        if let Some(m) = p["method"].as_str() {
            println!("           measured as: {m}");
        }
    }
    if let Some(c) = r["peak_cache_points"].as_u64() {
        println!("peak cache: {c} points");
    }
    let v = &r["verification"];
    if !v.is_null() {
        println!(
            "verified: {}/{} sampled files complete ({} missing files, {} missing points)",
            v["complete"], v["sampled"], v["missing_files"], v["missing_points"]
        );
    }
    let s = &r["server"];
    if !s.is_null() {
        match (s["peak_rss_bytes"].as_u64(), s["rss_bytes_before"].as_u64()) {
            (Some(b), Some(before)) => {
                let grown = b.saturating_sub(before);
                let points = r["points"].as_u64().unwrap_or(0).max(1);
                println!(
                    "server peak RSS: {:.1} MiB ({:.1} MiB more than before the run: {:.1} B/point)",
                    b as f64 / 1048576.0,
                    grown as f64 / 1048576.0,
                    grown as f64 / points as f64
                );
            }
            (Some(b), None) => println!("server peak RSS: {:.1} MiB", b as f64 / 1048576.0),
            _ => println!("server peak RSS: unknown (pid {} gone?)", s["pid"]),
        }
        if let Some(threads) = s["threads_cpu"].as_array() {
            println!("server CPU by thread during the run:");
            for t in threads {
                println!(
                    "  {:>8.2} s (user {:.2}, system {:.2})  {} ({} threads)",
                    t["cpu_seconds"].as_f64().unwrap_or(0.0),
                    t["user_seconds"].as_f64().unwrap_or(0.0),
                    t["system_seconds"].as_f64().unwrap_or(0.0),
                    t["thread"].as_str().unwrap_or(""),
                    t["threads"]
                );
            }
        }
    }
    if r["ok"].as_bool() != Some(true) {
        println!("FAILED");
    }
}
