//! The listeners: plaintext over TCP and UDP, and pickle over TCP, one tokio task a connection.
//!
//! Every receiver hands what it parsed to an [`Intake`], which cleans the names, applies carbon's
//! filters, writes the batch to the write-ahead log and only then puts it in the cache: a point
//! counts as received once the log holds it. Before reading more from a socket a receiver waits
//! for room in the cache, which is how a full cache pushes back on clients (TCP windows fill up)
//! instead of dropping points. Bad input is counted, logged at a bounded rate with the peer, and
//! skipped; the connection stays open except where the protocol leaves no way to resynchronise
//! (a line over 16384 bytes, a pickle frame over the maximum).

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::line::{self, LineFramer};
use super::name;
use super::pickle::{self, FrameDecoder, FrameError, Limits};
use crate::cache::Cache;
use crate::wal::{Point, PointRef, Wal};

/// Counters of what the receivers saw (carbon's metricsReceived and ours).
#[derive(Default, Debug)]
pub struct IngestStats {
    /// Points the write-ahead log holds and the cache has (carbon's metricsReceived).
    pub received: AtomicU64,
    /// Lines that were not `name value timestamp`.
    pub bad_lines: AtomicU64,
    /// Names refused (empty nodes, `/`, NUL, too long, bad tags).
    pub bad_names: AtomicU64,
    /// Timestamps a whisper file cannot hold (before 1970 or after 2106).
    pub bad_timestamps: AtomicU64,
    /// Pickle frames or items refused.
    pub bad_pickles: AtomicU64,
    /// Points the log refused (it is closing); never acknowledged.
    pub wal_errors: AtomicU64,
    /// Open TCP connections (carbon's activeConnections).
    pub active_connections: AtomicU64,
    /// Points a blacklist pattern dropped (carbon's blacklistMatches).
    pub blacklist_matches: AtomicU64,
    /// Points a non-empty whitelist dropped (carbon's whitelistRejects).
    pub whitelist_rejects: AtomicU64,
}

/// Logs at most `per_minute` lines a minute; the rest are only counted.
struct LogLimiter {
    per_minute: u32,
    window: Mutex<(Instant, u32, u64)>,
}

impl LogLimiter {
    fn new(per_minute: u32) -> LogLimiter {
        LogLimiter {
            per_minute,
            window: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    fn log(&self, msg: impl FnOnce() -> String) {
        let mut w = self.window.lock();
        if w.0.elapsed() >= Duration::from_secs(60) {
            if w.2 > 0 {
                tracing::warn!(
                    "{} more bad-input messages in the last minute were not logged",
                    w.2
                );
            }
            *w = (Instant::now(), 0, 0);
        }
        if w.1 < self.per_minute {
            w.1 += 1;
            drop(w);
            tracing::warn!("{}", msg());
        } else {
            w.2 += 1;
            drop(w);
            tracing::debug!("{}", msg());
        }
    }
}

/// Where receivers deliver: the log, then the cache.
pub struct Intake {
    wal: Arc<Wal>,
    cache: Arc<Cache>,
    stats: Arc<IngestStats>,
    min_resolution: u32,
    limiter: LogLimiter,
    names: Option<Arc<dyn NameSink>>,
    /// The white/blacklists when `use_whitelist` is on.
    filter: Option<Arc<super::filter::MetricFilter>>,
}

/// Told the name of every accepted point, so the read side's index knows a metric the moment
/// its first point is accepted (implementations make a known name cheap).
pub trait NameSink: Send + Sync {
    fn accepted(&self, name: &str);

    /// The names of one accepted batch, in order (a name may repeat). Implementations that
    /// take a lock per call should take it once here.
    fn accepted_all(&self, names: &mut dyn Iterator<Item = &str>) {
        for name in names {
            self.accepted(name);
        }
    }
}

/// The accepted points of one read (or frame, or datagram) on their way to the log and the
/// cache. The cleaned names sit back to back in one string, and a run of points of one metric
/// shares one copy, so a batch costs a handful of allocations whatever its size, and a
/// connection keeps its batch's capacity from one read to the next: no allocation per point.
#[derive(Debug, Default)]
pub struct Batch {
    names: String,
    points: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    end: usize,
    timestamp: f64,
    value: f64,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.names.clear();
        self.points.clear();
    }

    fn push(&mut self, name: &str, timestamp: f64, value: f64) {
        let (start, end) = match self.points.last() {
            Some(last) if self.names.get(last.start..last.end) == Some(name) => {
                (last.start, last.end)
            }
            _ => {
                let start = self.names.len();
                self.names.push_str(name);
                (start, self.names.len())
            }
        };
        self.points.push(Slot {
            start,
            end,
            timestamp,
            value,
        });
    }

    /// The points as `(name, timestamp, value)`, which both the log and the cache take.
    pub fn views(&self) -> Vec<(&str, f64, f64)> {
        self.points
            .iter()
            .map(|p| {
                let name = self.names.get(p.start..p.end).unwrap_or_default();
                (name, p.timestamp, p.value)
            })
            .collect()
    }
}

/// The current time as carbon takes it (`time.time()`).
fn now_float() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Intake {
    pub fn new(
        wal: Arc<Wal>,
        cache: Arc<Cache>,
        stats: Arc<IngestStats>,
        min_resolution: u32,
        log_per_minute: u32,
    ) -> Intake {
        Intake {
            wal,
            cache,
            stats,
            min_resolution,
            limiter: LogLimiter::new(log_per_minute),
            names: None,
            filter: None,
        }
    }

    /// Drops the points `filter`'s white/blacklists refuse (carbon's `USE_WHITELIST`).
    pub fn with_filter(mut self, filter: Option<Arc<super::filter::MetricFilter>>) -> Intake {
        self.filter = filter;
        self
    }

    /// Tells `sink` the name of every accepted point.
    pub fn with_names(mut self, sink: Arc<dyn NameSink>) -> Intake {
        self.names = Some(sink);
        self
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Checks one parsed point and adds it to `batch`, or counts and logs why not.
    pub fn admit(&self, batch: &mut Batch, raw_name: &str, timestamp: f64, value: f64, peer: &str) {
        // carbon filters the raw name first, before any other check.
        if let Some(filter) = &self.filter {
            match filter.check(raw_name) {
                super::filter::Verdict::Keep => {}
                super::filter::Verdict::Blacklisted => {
                    self.stats.blacklist_matches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                super::filter::Verdict::NotWhitelisted => {
                    self.stats.whitelist_rejects.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let name = match name::clean_cow(raw_name) {
            Ok(n) => n,
            Err(e) => {
                self.stats.bad_names.fetch_add(1, Ordering::Relaxed);
                self.limiter
                    .log(|| format!("refused metric name from {peer}: {e}"));
                return;
            }
        };
        let timestamp = line::apply_min_resolution(timestamp, u64::from(self.min_resolution));
        // whisper stores whole seconds in 32 bits; anything else could never be written.
        if !(0.0..4294967296.0).contains(&timestamp) {
            self.stats.bad_timestamps.fetch_add(1, Ordering::Relaxed);
            self.limiter.log(|| {
                format!("refused point from {peer}: timestamp {timestamp} of {name} is outside 1970..2106")
            });
            return;
        }
        batch.push(&name, timestamp, value);
    }

    /// Makes a batch durable in the log, then visible in the cache.
    pub async fn deliver(&self, batch: Vec<Point>, peer: &str) {
        self.deliver_points(&batch, peer).await;
    }

    /// [`Intake::deliver`] for a [`Batch`].
    pub async fn deliver_batch(&self, batch: &Batch, peer: &str) {
        if batch.is_empty() {
            return;
        }
        let views = batch.views();
        self.deliver_points(&views, peer).await;
    }

    /// One log record and one cache insert for the whole batch; the counters move once.
    async fn deliver_points<P: PointRef + Sync>(&self, batch: &[P], peer: &str) {
        if batch.is_empty() {
            return;
        }
        match self.wal.append(batch).await {
            Ok(lsn) => {
                match &self.names {
                    Some(sink) => {
                        let mut announce = Vec::new();
                        self.cache.insert_batch_announcing(
                            batch,
                            lsn.segment as u32,
                            &mut announce,
                        );
                        // In arrival order, as the tag index numbers new tags and values.
                        announce.sort_unstable();
                        sink.accepted_all(&mut announce.iter().map(|&i| batch[i as usize].name()));
                    }
                    None => self.cache.insert_batch(batch, lsn.segment as u32),
                }
                self.stats
                    .received
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .wal_errors
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    "write-ahead log refused {} points from {peer}: {e}",
                    batch.len()
                );
            }
        }
    }

    fn bad_line(&self, peer: &str, text: &[u8]) {
        self.stats.bad_lines.fetch_add(1, Ordering::Relaxed);
        self.limiter.log(|| line::invalid_line_message(peer, text));
    }
}

/// The first read buffer of a connection.
const READ_BUFFER: usize = 64 * 1024;

/// How far a busy connection's read buffer grows. A read that fills the buffer means the
/// client has more queued, so the buffer doubles: a read is one batch, one log record and
/// one fsync share (policy `batch`), and while a connection waits for its fsync the kernel
/// queues what the client sends on, so bigger reads are what lets a connection keep up.
const MAX_READ_BUFFER: usize = 256 * 1024;

/// Doubles `buf` (up to [`MAX_READ_BUFFER`]) after a read that filled it.
fn grow_after(buf: &mut Vec<u8>, read: usize) {
    if read == buf.len() && buf.len() < MAX_READ_BUFFER {
        let len = (buf.len() * 2).min(MAX_READ_BUFFER);
        buf.resize(len, 0);
    }
}

/// Accepts connections until `shutdown`, running `handler` for each on its own task with
/// `open(&state)` counting the connections in progress; on shutdown waits for the open
/// connections to finish their current work. `what` names the listener in logs.
pub(crate) async fn accept_loop<S, F, Fut>(
    what: &'static str,
    listener: TcpListener,
    state: Arc<S>,
    open: fn(&S) -> &AtomicU64,
    mut shutdown: watch::Receiver<bool>,
    handler: F,
) where
    S: Send + Sync + 'static,
    F: Fn(TcpStream, SocketAddr, Arc<S>, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                open(&state).fetch_add(1, Ordering::Relaxed);
                let fut = handler(stream, peer, state.clone(), shutdown.clone());
                let done = state.clone();
                tasks.spawn(async move {
                    fut.await;
                    open(&done).fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!("{what}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// carbon's activeConnections: TCP line and pickle connections.
fn active_connections(intake: &Intake) -> &AtomicU64 {
    &intake.stats.active_connections
}

/// Reads the next chunk, first waiting for room in the cache; None at end of stream,
/// error, or shutdown.
async fn read_chunk(
    stream: &mut TcpStream,
    buf: &mut [u8],
    intake: &Intake,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<usize> {
    tokio::select! {
        _ = intake.cache.wait_for_room() => {}
        _ = shutdown.changed() => return None,
    }
    let n = tokio::select! {
        r = stream.read(buf) => r,
        _ = shutdown.changed() => return None,
    };
    match n {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(e) => {
            tracing::debug!("read failed: {e}");
            None
        }
    }
}

async fn line_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    intake: Arc<Intake>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = peer.to_string();
    tracing::debug!("plaintext connection from {peer}");
    let mut buf = vec![0u8; READ_BUFFER];
    let mut framer = LineFramer::new();
    let mut batch = Batch::new();
    while let Some(n) = read_chunk(&mut stream, &mut buf, &intake, &mut shutdown).await {
        let now = now_float();
        batch.clear();
        let chunk = buf.get(..n).unwrap_or_default();
        let framed = framer.feed_parsed(chunk, now, |text, parsed| {
            match parsed {
                Ok(Some(p)) => intake.admit(&mut batch, p.name, p.timestamp, p.value, &peer),
                Ok(None) => {}
                Err(_) => intake.bad_line(&peer, text),
            }
            ControlFlow::Continue(())
        });
        intake.deliver_batch(&batch, &peer).await;
        grow_after(&mut buf, n);
        if let Err(e) = framed {
            intake.stats.bad_lines.fetch_add(1, Ordering::Relaxed);
            intake
                .limiter
                .log(|| format!("closing plaintext connection from {peer}: {e}"));
            return;
        }
    }
    let dropped = framer.finish();
    if dropped > 0 {
        tracing::debug!(
            "{peer} closed with {dropped} bytes of an unterminated line, ignored as carbon does"
        );
    }
}

async fn pickle_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    intake: Arc<Intake>,
    mut shutdown: watch::Receiver<bool>,
    max_frame: usize,
) {
    let peer = peer.to_string();
    tracing::debug!("pickle connection from {peer}");
    let mut buf = vec![0u8; READ_BUFFER];
    let mut frames = FrameDecoder::new(max_frame);
    let limits = Limits::for_frame(max_frame);
    let mut batch = Batch::new();
    while let Some(n) = read_chunk(&mut stream, &mut buf, &intake, &mut shutdown).await {
        batch.clear();
        let mut close = false;
        let chunk = buf.get(..n).unwrap_or_default();
        let fed = frames.feed(chunk, |payload| {
            let outcome = pickle::decode_frame(payload, &limits);
            for p in &outcome.points {
                intake.admit(&mut batch, &p.metric, p.timestamp, p.value, &peer);
            }
            let refused = outcome.bad_items.len() + outcome.unconvertible + outcome.surrogate_names;
            if refused > 0 {
                intake
                    .stats
                    .bad_pickles
                    .fetch_add(refused as u64, Ordering::Relaxed);
            }
            for item in &outcome.bad_items {
                intake
                    .limiter
                    .log(|| format!("Error decoding pickle from {peer}: {item}"));
            }
            match &outcome.error {
                None => ControlFlow::Continue(()),
                Some(err) => {
                    intake.stats.bad_pickles.fetch_add(1, Ordering::Relaxed);
                    let text = err.log_line(&peer).unwrap_or_else(|| {
                        format!(
                            "invalid pickle received from {peer}: {}",
                            err.exception().message
                        )
                    });
                    intake.limiter.log(|| text);
                    if matches!(err, FrameError::Closed(_)) {
                        close = true;
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
            }
        });
        intake.deliver_batch(&batch, &peer).await;
        grow_after(&mut buf, n);
        if let Err(e) = fed {
            intake.stats.bad_pickles.fetch_add(1, Ordering::Relaxed);
            intake
                .limiter
                .log(|| format!("closing pickle connection from {peer}: {e}"));
            return;
        }
        if close {
            return;
        }
    }
}

/// Serves the plaintext protocol over TCP.
pub async fn serve_line_tcp(
    listener: TcpListener,
    intake: Arc<Intake>,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop(
        "plaintext",
        listener,
        intake,
        active_connections,
        shutdown,
        line_connection,
    )
    .await;
}

/// Serves the pickle protocol over TCP.
pub async fn serve_pickle(
    listener: TcpListener,
    intake: Arc<Intake>,
    shutdown: watch::Receiver<bool>,
    max_frame: usize,
) {
    accept_loop(
        "pickle",
        listener,
        intake,
        active_connections,
        shutdown,
        move |s, p, i, sd| pickle_connection(s, p, i, sd, max_frame),
    )
    .await;
}

/// Serves the plaintext protocol over UDP: each datagram holds whole lines.
pub async fn serve_line_udp(
    socket: UdpSocket,
    intake: Arc<Intake>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65536];
    let mut batch = Batch::new();
    // No waiting for room here: a datagram not read is a datagram the kernel drops, so UDP
    // points are taken even past the cache bound (carbon's flow control skips UDP as well).
    loop {
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("udp receive failed: {e}");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let host = peer.ip().to_string();
        let (points, rejected) = line::parse_datagram(&buf[..n], now_float());
        for r in &rejected {
            intake.stats.bad_lines.fetch_add(1, Ordering::Relaxed);
            intake
                .limiter
                .log(|| line::invalid_datagram_line_message(&host, &r.line));
        }
        batch.clear();
        for p in &points {
            intake.admit(&mut batch, &p.name, p.timestamp, p.value, &host);
        }
        intake.deliver_batch(&batch, &host).await;
    }
}
