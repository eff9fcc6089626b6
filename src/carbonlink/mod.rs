//! carbon-cache's cache-query port (carbon's `CACHE_QUERY_PORT`, 7002): graphite-web's
//! `CarbonLinkPool` asks it for the points of a metric that are accepted but not yet in
//! whisper, so that a graphite-web reading Carbide's whisper directory directly sees them, as
//! it would with carbon-cache.
//!
//! Requests and replies are pickles framed by a u32 big-endian length (Twisted's
//! `Int32StringReceiver`), spec `whisper-carbon.md` §2.9 and carbon 1.1.10's
//! `CacheManagementHandler`: `cache-query`, `cache-query-bulk`, `get-metadata` and
//! `set-metadata` (key `aggregationMethod` only, on the whisper file's header); anything else
//! is answered with carbon's `Invalid request type` error. Requests go through the same safe
//! unpickler as the pickle receiver ([`crate::ingest::pickle`]); replies are pickle protocol
//! 2, as carbon writes them. A request that makes carbon's handler raise closes the
//! connection, as Twisted does (see [`protocol`]).
//!
//! # Where Carbide deliberately differs
//! - Frames: carbon accepts up to 1 GiB and buffers whatever a length prefix announces.
//!   Here the maximum is `cache.max_query_frame_bytes` (64 MiB by default), a longer prefix
//!   closes the connection before any payload is read, and a frame's buffer only grows as
//!   its bytes arrive.
//! - Names: a queried name is cleaned as ingest cleans received names (tags put in
//!   canonical order), so `a;z=1;y=2` finds the series stored as `a;y=2;z=1`, where carbon
//!   looks the raw string up and finds nothing. A name ingest would refuse (`a..b`) has no
//!   points and, for the metadata requests, no file.
//! - Order: `datapoints` are ascending by timestamp, one per timestamp key, the last
//!   accepted value winning (carbon: its dict's insertion order). graphite-web's merge keeps
//!   the last point of each interval, so this shows what the file will hold once written.
//! - Metadata errors: carbon replies with a Python traceback of its own source; Carbide's
//!   `error` text has the same first and last lines (`Traceback (most recent call last):`,
//!   `<Exception>: <message>`) with no frames in between.

pub mod protocol;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use self::protocol::{percent_s, str_bytes, Pickler, Refusal, Request, RequestKind};
use crate::cache::Cache;
use crate::ingest::name;
use crate::ingest::pickle::{Arena, FrameDecoder, Id, Limits, Node};
use crate::whisper::{self, AggregationMethod, WhisperError, WriteOptions};

/// The default `cache.max_query_frame_bytes`.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// What the listener needs besides the cache.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The whisper tree the metadata requests read and write.
    pub whisper_dir: PathBuf,
    /// Largest request frame; a longer length prefix closes the connection.
    pub max_frame: usize,
    /// carbon's WHISPER_LOCK_WRITES / WHISPER_AUTOFLUSH for `set-metadata`.
    pub write: WriteOptions,
    /// carbon's MIN_TIMESTAMP_RESOLUTION is set: carbon's cache keys are then ints, so
    /// whole-second timestamps are pickled as ints.
    pub integer_timestamps: bool,
}

/// Counters, cumulative since start (self-metrics report per-interval differences).
#[derive(Debug, Default)]
pub struct QueryStats {
    /// `cache-query` requests (carbon's `cache.queries`).
    pub queries: AtomicU64,
    /// `cache-query-bulk` requests (carbon's `cache.bulk_queries`).
    pub bulk_queries: AtomicU64,
    /// Metrics asked for by bulk requests, summed (for `cache.bulk_queries_average_size`).
    pub bulk_query_metrics: AtomicU64,
    /// `get-metadata` and `set-metadata` requests.
    pub metadata_requests: AtomicU64,
    /// Requests answered with `Invalid request type`.
    pub invalid_requests: AtomicU64,
    /// Connections closed because of a request carbon's handler would have raised on, or a
    /// frame over the maximum.
    pub refused: AtomicU64,
    /// Open connections.
    pub connections: AtomicU64,
}

impl QueryStats {
    /// The counters for `/stats`.
    pub fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "queries": get(&self.queries),
            "bulk_queries": get(&self.bulk_queries),
            "bulk_query_metrics": get(&self.bulk_query_metrics),
            "metadata_requests": get(&self.metadata_requests),
            "invalid_requests": get(&self.invalid_requests),
            "refused": get(&self.refused),
            "connections": get(&self.connections),
        })
    }
}

struct Shared {
    cache: Arc<Cache>,
    settings: Settings,
    limits: Limits,
    stats: Arc<QueryStats>,
    /// (start of the current minute, lines logged in it): refusals are logged at most
    /// [`LOG_PER_MINUTE`] times a minute, so a client cannot flood the log.
    log_window: Mutex<(Instant, u32)>,
}

const LOG_PER_MINUTE: u32 = 10;

impl Shared {
    fn log_refusal(&self, peer: &str, why: &dyn std::fmt::Display) {
        let mut w = self.log_window.lock();
        if w.0.elapsed() >= Duration::from_secs(60) {
            *w = (Instant::now(), 0);
        }
        if w.1 < LOG_PER_MINUTE {
            w.1 += 1;
            drop(w);
            tracing::warn!("cache query: closing connection from {peer}: {why}");
        } else {
            drop(w);
            tracing::debug!("cache query: closing connection from {peer}: {why}");
        }
    }
}

/// Serves cache queries until `shutdown`; then waits for the open connections, which stop
/// at the same signal.
pub async fn serve(
    listener: TcpListener,
    cache: Arc<Cache>,
    settings: Settings,
    stats: Arc<QueryStats>,
    shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        cache,
        limits: Limits::for_frame(settings.max_frame),
        settings,
        stats,
        log_window: Mutex::new((Instant::now(), 0)),
    });
    crate::ingest::receiver::accept_loop(
        "cache query",
        listener,
        shared,
        open_connections,
        shutdown,
        |stream, peer, shared, stop| async move { connection(stream, peer, &shared, stop).await },
    )
    .await;
}

fn open_connections(shared: &Shared) -> &AtomicU64 {
    &shared.stats.connections
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = peer.to_string();
    tracing::debug!("cache query connection from {peer}");
    let mut frames = FrameDecoder::new(shared.settings.max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = shutdown.changed() => return,
        };
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let fed = frames.feed(buf.get(..n).unwrap_or_default(), |p| {
            payloads.push(p.to_vec());
            ControlFlow::Continue(())
        });
        let mut out = Vec::new();
        let mut refusal = None;
        for payload in payloads {
            match answer(shared, payload).await {
                Ok(reply) => {
                    out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                    out.extend_from_slice(&reply);
                }
                Err(r) => {
                    refusal = Some(r);
                    break;
                }
            }
        }
        if !out.is_empty() {
            let written = tokio::select! {
                w = stream.write_all(&out) => w.is_ok(),
                _ = shutdown.changed() => false,
            };
            if !written {
                return;
            }
        }
        if let Some(r) = refusal {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            shared.log_refusal(&peer, &r);
            return;
        }
        if let Err(e) = fed {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            shared.log_refusal(&peer, &e);
            return;
        }
    }
}

/// One request frame → one reply pickle, or the reason to close the connection.
async fn answer(shared: &Arc<Shared>, payload: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    let request = protocol::parse(&payload, &shared.limits)?;
    drop(payload);
    let stats = &shared.stats;
    match request.kind {
        RequestKind::CacheQuery { metric } => {
            let points = lookup(shared, &request.arena, metric);
            let mut p = Pickler::new();
            p.dict(1, |p, _| {
                p.str(b"datapoints");
                p.points(&points, shared.settings.integer_timestamps);
            });
            stats.queries.fetch_add(1, Ordering::Relaxed);
            Ok(p.finish())
        }
        RequestKind::Bulk { ref metrics, asked } => {
            let found: Vec<Vec<(f64, f64)>> = metrics
                .iter()
                .map(|&m| lookup(shared, &request.arena, m))
                .collect();
            let mut p = Pickler::new();
            let mut bad = None;
            p.dict(1, |p, _| {
                p.str(b"datapointsByMetric");
                p.dict(metrics.len(), |p, i| {
                    if let Err(e) = p.object(&request.arena, metrics[i]) {
                        bad = Some(e);
                    }
                    p.points(&found[i], shared.settings.integer_timestamps);
                });
            });
            if let Some(e) = bad {
                return Err(Refusal(format!("TypeError: {e}")));
            }
            stats.bulk_queries.fetch_add(1, Ordering::Relaxed);
            stats
                .bulk_query_metrics
                .fetch_add(asked as u64, Ordering::Relaxed);
            Ok(p.finish())
        }
        RequestKind::GetMetadata { .. } | RequestKind::SetMetadata { .. } => {
            stats.metadata_requests.fetch_add(1, Ordering::Relaxed);
            let shared = shared.clone();
            // File I/O (and with lock_writes a flock wait): off the async workers.
            tokio::task::spawn_blocking(move || metadata(&shared.settings, request))
                .await
                .map_err(|e| Refusal(format!("metadata request failed: {e}")))
        }
        RequestKind::Invalid { ref type_text } => {
            stats.invalid_requests.fetch_add(1, Ordering::Relaxed);
            Ok(Pickler::error_reply(type_text))
        }
    }
}

/// `MetricCache.get(metric, {})`: a str names a series, as sent or cleaned as ingest cleans
/// names; anything else hashable is a key no series has.
fn lookup(shared: &Shared, arena: &Arena, metric: Id) -> Vec<(f64, f64)> {
    let Some(Ok(raw)) = str_bytes(arena, metric).map(std::str::from_utf8) else {
        return Vec::new();
    };
    // Cleaning is not idempotent for some tagged names (`a;x=1{c="d"}` is stored as
    // `a;x=1;c=d`, which would clean to `a;c=d;x=1`), so a stored name is tried as sent first.
    let points = shared.cache.get(raw);
    if !points.is_empty() {
        return points;
    }
    match name::clean_cow(raw) {
        Ok(clean) if clean != raw => shared.cache.get(&clean),
        _ => Vec::new(),
    }
}

/// A Python exception as carbon's `traceback.format_exc()` reply ends with it.
struct PyError {
    /// `ValueError`, `whisper.CorruptWhisperFile`, ...
    class: &'static str,
    message: Vec<u8>,
}

impl PyError {
    fn new(class: &'static str, message: impl Into<Vec<u8>>) -> PyError {
        PyError {
            class,
            message: message.into(),
        }
    }

    /// The `error` text: a traceback without frames (carbon's would show its own source).
    fn traceback(&self) -> Vec<u8> {
        let mut t = b"Traceback (most recent call last):\n".to_vec();
        t.extend_from_slice(self.class.as_bytes());
        if !self.message.is_empty() {
            t.extend_from_slice(b": ");
            t.extend_from_slice(&self.message);
        }
        t.push(b'\n');
        t
    }
}

/// carbon's `management.getMetadata` / `setMetadata` over `WhisperDatabase`: every failure
/// inside them becomes `{'error': <traceback>}`.
fn metadata(settings: &Settings, request: Request) -> Vec<u8> {
    let mut arena = request.arena;
    let result = match request.kind {
        RequestKind::GetMetadata { metric, key } => get_metadata(settings, &arena, metric, key)
            .map(|method| {
                let mut p = Pickler::new();
                p.dict(1, |p, _| {
                    p.str(b"value");
                    p.str(method.name().as_bytes());
                });
                p.finish()
            }),
        RequestKind::SetMetadata { metric, key, value } => {
            set_metadata(settings, &mut arena, metric, key, value).map(|(old, new)| {
                let mut p = Pickler::new();
                p.dict(2, |p, i| {
                    if i == 0 {
                        p.str(b"old_value");
                        p.str(old.name().as_bytes());
                    } else {
                        p.str(b"new_value");
                        p.str(&new);
                    }
                });
                p.finish()
            })
        }
        _ => Err(PyError::new("RuntimeError", "not a metadata request")),
    };
    result.unwrap_or_else(|e| Pickler::error_reply(&e.traceback()))
}

/// `if key != 'aggregationMethod': raise ValueError('Unsupported metadata key "%s"' % key)`.
fn check_key(arena: &Arena, key: Id) -> Result<(), PyError> {
    if str_bytes(arena, key) == Some(b"aggregationMethod") {
        return Ok(());
    }
    let text = percent_s(arena, key).map_err(|e| PyError::new("TypeError", e))?;
    let mut message = b"Unsupported metadata key \"".to_vec();
    message.extend_from_slice(&text);
    message.push(b'"');
    Err(PyError::new("ValueError", message))
}

/// The whisper file of a requested metric (carbon's `getFilesystemPath`).
fn metric_path(settings: &Settings, arena: &Arena, metric: Id) -> Result<PathBuf, PyError> {
    let raw = match arena.get(metric) {
        Node::Str(s) => std::str::from_utf8(s)
            .map_err(|_| PyError::new("ValueError", "metric name is not valid UTF-8"))?,
        other => {
            return Err(PyError::new(
                "TypeError",
                format!("argument of type '{}' is not iterable", other.type_name()),
            ))
        }
    };
    let clean = name::clean(raw).map_err(|e| PyError::new("ValueError", e.to_string()))?;
    let relative =
        name::relative_path(&clean).map_err(|e| PyError::new("ValueError", e.to_string()))?;
    Ok(settings.whisper_dir.join(relative))
}

fn get_metadata(
    settings: &Settings,
    arena: &Arena,
    metric: Id,
    key: Id,
) -> Result<AggregationMethod, PyError> {
    check_key(arena, key)?;
    let path = metric_path(settings, arena, metric)?;
    match whisper::info(&path) {
        Ok(header) => Ok(header.aggregation_method),
        // whisper.info returns None on any OSError; carbon then subscripts the None.
        Err(WhisperError::Io { .. }) => Err(PyError::new(
            "TypeError",
            "'NoneType' object is not subscriptable",
        )),
        Err(e) => Err(whisper_error(&path, e)),
    }
}

fn set_metadata(
    settings: &Settings,
    arena: &mut Arena,
    metric: Id,
    key: Id,
    value: Id,
) -> Result<(AggregationMethod, Vec<u8>), PyError> {
    check_key(arena, key)?;
    let path = metric_path(settings, arena, metric)?;
    let method = str_bytes(arena, value)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(AggregationMethod::from_name);
    match method {
        Some(m) => {
            let old = whisper::set_aggregation_method(&path, m, None, settings.write)
                .map_err(|e| whisper_error(&path, e))?;
            Ok((old, str_bytes(arena, value).unwrap_or_default().to_vec()))
        }
        None => {
            // whisper.py opens the file and reads its header before it looks the method up.
            let opened = whisper::WhisperFile::open_with(&path, true, settings.write)
                .map_err(|e| whisper_error(&path, e))?;
            drop(opened);
            // The lookup in whisper's method table hashes the value first.
            if let Err(e) = arena.hash(value) {
                return Err(PyError::new("TypeError", e.message));
            }
            let text = percent_s(arena, value).map_err(|e| PyError::new("TypeError", e))?;
            let mut message = b"Unrecognized aggregation method: ".to_vec();
            message.extend_from_slice(&text);
            Err(PyError::new("whisper.InvalidAggregationMethod", message))
        }
    }
}

/// A whisper failure as the Python exception whisper.py raises for it.
fn whisper_error(path: &Path, e: WhisperError) -> PyError {
    match e {
        WhisperError::Io { source, .. } => {
            let class = match (source.kind(), source.raw_os_error()) {
                (std::io::ErrorKind::NotFound, _) => "FileNotFoundError",
                (std::io::ErrorKind::PermissionDenied, _) => "PermissionError",
                (_, Some(libc::EISDIR)) => "IsADirectoryError",
                _ => "OSError",
            };
            let text = source.to_string();
            let strerror = text
                .rsplit_once(" (os error ")
                .map(|(s, _)| s.to_string())
                .unwrap_or(text);
            let path = crate::python::text::repr(&path.to_string_lossy());
            let message = match source.raw_os_error() {
                Some(code) => format!("[Errno {code}] {strerror}: {path}"),
                None => format!("{strerror}: {path}"),
            };
            PyError::new(class, message)
        }
        WhisperError::Corrupt { .. } => PyError::new("whisper.CorruptWhisperFile", e.to_string()),
        WhisperError::InvalidAggregationMethod(_) => {
            PyError::new("whisper.InvalidAggregationMethod", e.to_string())
        }
        other => PyError::new("whisper.WhisperException", other.to_string()),
    }
}
