//! `carbide serve`: starts the pipeline (write-ahead log → cache → persister), replays what the
//! log holds that whisper may not, opens the listeners, and on SIGTERM or SIGINT stops
//! accepting, writes the cache out to whisper and exits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::cache::{Cache, CacheConfig, Strategy};
use crate::config::{Config, FsyncPolicy, Listen, WriteStrategy};
use crate::http::ReadApi;
use crate::index::Index;
use crate::ingest::receiver::{self, IngestStats, Intake};
use crate::persist::{PersistSettings, PersistStats, PersistTuning, Persister};
use crate::query::eval::Limits;
use crate::query::store::Store;
use crate::schema::reload::Reloader;
use crate::wal::{self, Point, Wal};
use crate::whisper::WriteOptions;

async fn bind_tcp(what: &str, listen: Listen) -> Result<Option<TcpListener>, String> {
    let Some(addr) = listen.addr() else {
        return Ok(None);
    };
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for {what} on {addr}: {e}"))?;
    tracing::info!(
        "{what} on {}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    Ok(Some(l))
}

/// The host node of self-metric names, as carbon-cache forms it: the host name with `.` as
/// `_`, then `-a` (carbon's default instance name).
fn host_node(config: &Config) -> String {
    if let Some(h) = &config.self_metrics.host {
        return h.clone();
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    };
    format!("{}-a", name.replace('.', "_"))
}

/// Everything `/stats` and the self-metrics read.
struct Counters {
    ingest: Arc<IngestStats>,
    persist: Arc<PersistStats>,
    cache: Arc<Cache>,
    wal: Arc<Wal>,
    started: Instant,
    cache_query: Arc<crate::carbonlink::QueryStats>,
}

impl Counters {
    fn json(&self) -> serde_json::Value {
        let i = &self.ingest;
        let p = &self.persist;
        let c = self.cache.stats();
        let w = self.wal.stats();
        json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "received": w.points_received,
            "cache_query": self.cache_query.json(),
            "ingest": {
                "metrics_received": i.received.load(Ordering::Relaxed),
                "bad_lines": i.bad_lines.load(Ordering::Relaxed),
                "bad_names": i.bad_names.load(Ordering::Relaxed),
                "bad_timestamps": i.bad_timestamps.load(Ordering::Relaxed),
                "bad_pickles": i.bad_pickles.load(Ordering::Relaxed),
                "wal_errors": i.wal_errors.load(Ordering::Relaxed),
                "active_connections": i.active_connections.load(Ordering::Relaxed),
                "blacklist_matches": i.blacklist_matches.load(Ordering::Relaxed),
                "whitelist_rejects": i.whitelist_rejects.load(Ordering::Relaxed),
            },
            "cache": {
                "size": c.size,
                "metrics": c.metrics,
                "max_points": c.max_points,
                "queries": c.queries,
                "full": c.full,
                "backpressure_events": c.backpressure_events,
                "bytes": c.bytes,
                "inflight_points": c.inflight_points,
                "inflight_batches": c.inflight_batches,
            },
            "persist": {
                "update_operations": p.update_operations.load(Ordering::Relaxed),
                "committed_points": p.committed_points.load(Ordering::Relaxed),
                "creates": p.creates.load(Ordering::Relaxed),
                "deferred_creates": p.deferred_creates.load(Ordering::Relaxed),
                "errors": p.errors.load(Ordering::Relaxed),
                "dropped_points": p.dropped_points.load(Ordering::Relaxed),
                "open_file_hits": p.open_file_hits.load(Ordering::Relaxed),
                "open_file_evictions": p.open_file_evictions.load(Ordering::Relaxed),
                "open_file_replaced": p.open_file_replaced.load(Ordering::Relaxed),
            },
            "wal": {
                "points_received": w.points_received,
                "records": w.records,
                "bytes": w.bytes,
                "fsyncs": w.fsyncs,
                "write_errors": w.write_errors,
                "pending_bytes": w.pending_bytes,
                "live_segments": w.live_segments,
                "stalled": w.stalled,
            },
        })
    }
}

/// Writes carbon's self-metrics every interval, as per-interval values (carbon resets its
/// counters after each report).
async fn self_metrics(
    counters: Arc<Counters>,
    intake: Arc<Intake>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = Duration::from_secs(config.self_metrics.interval_seconds);
    if interval.is_zero() {
        return;
    }
    let prefix = format!(
        "{}.agents.{}",
        config.self_metrics.prefix,
        host_node(&config)
    );
    let mut last = counters.json();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = counters.json();
        let delta = |path: &[&str]| {
            let get =
                |v: &serde_json::Value| path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or(0.0);
            get(&now) - get(&last)
        };
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let updates = delta(&["persist", "update_operations"]);
        let committed = delta(&["persist", "committed_points"]);
        let mut stats: Vec<(&str, f64)> = vec![
            ("cache.size", now["cache"]["size"].as_f64().unwrap_or(0.0)),
            (
                "cache.queues",
                now["cache"]["metrics"].as_f64().unwrap_or(0.0),
            ),
        ];
        if updates > 0.0 {
            let nanos = counters.persist.update_nanos.load(Ordering::Relaxed) as f64;
            stats.push((
                "avgUpdateTime",
                nanos
                    / 1e9
                    / counters
                        .persist
                        .update_operations
                        .load(Ordering::Relaxed)
                        .max(1) as f64,
            ));
            stats.push(("pointsPerUpdate", committed / updates));
        }
        let bulk_queries = delta(&["cache_query", "bulk_queries"]);
        if bulk_queries > 0.0 {
            let asked = delta(&["cache_query", "bulk_query_metrics"]);
            stats.push(("cache.bulk_queries_average_size", asked / bulk_queries));
        }
        stats.extend([
            ("updateOperations", updates),
            ("committedPoints", committed),
            ("creates", delta(&["persist", "creates"])),
            ("errors", delta(&["persist", "errors"])),
            ("cache.queries", delta(&["cache_query", "queries"])),
            (
                "cache.bulk_queries",
                delta(&["cache_query", "bulk_queries"]),
            ),
            (
                "activeConnections",
                now["ingest"]["active_connections"].as_f64().unwrap_or(0.0),
            ),
            ("metricsReceived", delta(&["ingest", "metrics_received"])),
            ("blacklistMatches", delta(&["ingest", "blacklist_matches"])),
            ("whitelistRejects", delta(&["ingest", "whitelist_rejects"])),
            ("wal.bytes", delta(&["wal", "bytes"])),
            ("dropped", delta(&["persist", "dropped_points"])),
            (
                "rejected",
                delta(&["ingest", "bad_lines"])
                    + delta(&["ingest", "bad_names"])
                    + delta(&["ingest", "bad_timestamps"])
                    + delta(&["ingest", "bad_pickles"]),
            ),
        ]);
        if let Some(mem) = mem_usage() {
            stats.push(("memUsage", mem));
        }
        let batch: Vec<Point> = stats
            .into_iter()
            .map(|(stat, value)| Point {
                name: format!("{prefix}.{stat}"),
                timestamp: ts,
                value,
            })
            .collect();
        intake.deliver(batch, "self").await;
        last = now;
    }
}

/// Resident memory in bytes, as carbon reports memUsage (`/proc/self/statm`).
fn mem_usage() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as f64)
}

/// SIGTERM and SIGINT, installed before the server says it is serving, so that a signal
/// sent the moment it is ready is never lost to the default action.
struct StopSignals(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

impl StopSignals {
    fn install() -> Result<StopSignals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        Ok(StopSignals(term, int))
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.0.recv() => tracing::info!("SIGTERM: stopping"),
            _ = self.1.recv() => tracing::info!("SIGINT: stopping"),
        }
    }
}

/// Feeds the read side's indexes from ingest: a name seen before costs one hash and a shared
/// lookup; a new one is added to the metric index (and the tag index when it is tagged).
struct IndexSink {
    index: Arc<Index>,
    tags: Arc<crate::index::tags::TagIndex>,
    /// Hashes of the names already handed to the index. The hash is its own key in the
    /// table, so a lookup costs one hash of the name and no second hashing of the u64.
    seen: parking_lot::RwLock<hashbrown::HashTable<u64>>,
    hasher: foldhash::fast::FixedState,
}

impl IndexSink {
    fn new(index: Arc<Index>, tags: Arc<crate::index::tags::TagIndex>) -> IndexSink {
        IndexSink {
            index,
            tags,
            seen: parking_lot::RwLock::new(hashbrown::HashTable::new()),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_ca7b),
        }
    }

    fn hash(&self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// A name the log replayed at start: indexed, but a tagged series is registered only when
    /// it has no file yet. Its points were accepted before the stop, perhaps before a
    /// `/tags/delSeries` the tag log holds, which a replay must not undo.
    fn replayed(&self, name: &str) {
        if self.index.insert(name) && crate::ingest::name::is_tagged(name) {
            let _ = self.tags.insert(name);
        }
    }
}

impl receiver::NameSink for IndexSink {
    fn accepted(&self, name: &str) {
        let h = self.hash(name);
        if self.seen.read().find(h, |&x| x == h).is_some() {
            return;
        }
        self.index.insert(name);
        // Also when the file exists: a data directory from carbon or go-carbon, or a
        // registration the tag log lost in a crash, is known again from the next point on, as
        // carbon re-registers the series it writes.
        if crate::ingest::name::is_tagged(name) {
            let _ = self.tags.insert(name);
        }
        let mut seen = self.seen.write();
        if seen.find(h, |&x| x == h).is_none() {
            seen.insert_unique(h, h, |&x| x);
        }
    }

    /// One shared lock for the whole batch; only names not seen before go on to the index.
    fn accepted_all(&self, names: &mut dyn Iterator<Item = &str>) {
        let mut new = Vec::new();
        {
            let seen = self.seen.read();
            let mut previous = None;
            for name in names {
                // Runs of one metric (a client sending a metric's points together) cost one
                // comparison each.
                if previous == Some(name) {
                    continue;
                }
                previous = Some(name);
                let h = self.hash(name);
                if seen.find(h, |&x| x == h).is_none() {
                    new.push(name);
                }
            }
        }
        for name in new {
            self.accepted(name);
        }
    }
}

/// Runs the server until a stop signal; returns the process exit status.
pub async fn run(config: Config) -> Result<(), String> {
    let started = Instant::now();
    let signals = StopSignals::install()?;
    // The schema files from the configured directory, or the compiled-in defaults when it has
    // no storage-schemas.conf; `schemas` follows reloads.
    let schema_reloader = Reloader::start(&config.schemas_dir)?;
    let schemas = schema_reloader.schemas();
    let whisper_dir = config.whisper_dir();
    std::fs::create_dir_all(&whisper_dir)
        .map_err(|e| format!("cannot create {}: {e}", whisper_dir.display()))?;

    let mut wal_config = wal::WalConfig::new(config.wal_dir());
    wal_config.sync = match config.wal.fsync {
        FsyncPolicy::Batch => wal::SyncPolicy::Batch,
        FsyncPolicy::Interval => wal::SyncPolicy::Interval(config.wal.fsync_interval()),
        FsyncPolicy::Off => wal::SyncPolicy::Off,
    };
    wal_config.segment_size = config.wal.segment_bytes;
    wal_config.max_pending_bytes = config.wal.max_pending_bytes;
    let (wal, recovered) = tokio::task::spawn_blocking(move || Wal::open(wal_config))
        .await
        .map_err(|e| format!("write-ahead log: {e}"))?
        .map_err(|e| format!("write-ahead log: {e}"))?;
    let wal = Arc::new(wal);

    let cache = Arc::new(Cache::new(CacheConfig {
        max_points: config.cache.max_points,
        ..CacheConfig::default()
    }));
    if recovered.points > 0 {
        tracing::info!(
            "replaying {} points from {} write-ahead log segments",
            recovered.points,
            recovered.segments
        );
    }
    for batch in &recovered.batches {
        cache.insert_batch(&batch.points, batch.lsn.segment as u32);
    }
    drop(recovered);

    // The name index: what is on disk now, plus what the cache holds (replayed points).
    let index_root = whisper_dir.clone();
    let index = tokio::task::spawn_blocking(move || Index::load_dir(&index_root))
        .await
        .map_err(|e| format!("metric index: {e}"))?
        .map_err(|e| format!("cannot index {}: {e}", whisper_dir.display()))?;
    let index = Arc::new(index);
    tracing::info!("{} metrics indexed", index.len());
    let zone = config
        .render
        .time_zone
        .parse::<crate::query::time::Zone>()
        .map_err(|e| format!("render.time_zone {:?}: {e}", config.render.time_zone))?;
    let (data_dir, tagged_root) = (config.data_dir.clone(), whisper_dir.clone());
    let (tags, _) = tokio::task::spawn_blocking(move || {
        crate::index::tags::TagIndex::open(&data_dir, &tagged_root)
    })
    .await
    .map_err(|e| format!("tag index: {e}"))?
    .map_err(|e| format!("tag index: {e}"))?;
    let tags = Arc::new(tags);
    tracing::info!("{} tagged series indexed", tags.len());
    let name_sink = Arc::new(IndexSink::new(index.clone(), tags.clone()));
    for name in cache.names() {
        name_sink.replayed(&name);
    }
    let store = Store::new(whisper_dir.clone(), index.clone())
        .with_tags(tags.clone())
        .with_cache(cache.clone(), schemas.clone());
    let read_api = Arc::new(ReadApi {
        source: Arc::new(store),
        index: index.clone(),
        tags: tags.clone(),
        whisper_dir: whisper_dir.clone(),
        default_zone: zone,
        limits: Limits {
            max_series: config.render.max_series,
            max_points: config.render.max_points,
        },
        max_targets: config.render.max_targets,
    });

    let persist_stats = Arc::new(PersistStats::default());
    let persister = Persister::start_tuned(
        cache.clone(),
        Some(wal.clone()),
        schemas,
        PersistSettings {
            whisper_dir,
            strategy: match config.cache.write_strategy {
                WriteStrategy::Sorted => Strategy::Sorted,
                WriteStrategy::Max => Strategy::Max,
                WriteStrategy::Naive => Strategy::Naive,
            },
            workers: config.persist.workers,
            max_updates_per_second: config.persist.max_updates_per_second,
            max_creates_per_minute: config.persist.max_creates_per_minute,
            write: WriteOptions {
                lock: config.persist.lock_writes,
                autoflush: config.persist.autoflush,
            },
            sparse_create: config.persist.sparse_create,
            fallocate_create: config.persist.fallocate_create,
        },
        PersistTuning {
            open_files_per_worker: config.persist.open_files_per_worker,
        },
        persist_stats.clone(),
    );

    let ingest_stats = Arc::new(IngestStats::default());
    // carbon reads the lists only with USE_WHITELIST; without it the files are ignored.
    let metric_filter = config.ingest.use_whitelist.then(|| {
        Arc::new(crate::ingest::filter::MetricFilter::load(
            &config.schemas_dir,
        ))
    });
    let intake = Arc::new(
        Intake::new(
            wal.clone(),
            cache.clone(),
            ingest_stats.clone(),
            config.ingest.min_timestamp_resolution,
            config.ingest.bad_input_log_per_minute,
        )
        .with_names(name_sink.clone())
        .with_filter(metric_filter.clone()),
    );
    let counters = Arc::new(Counters {
        ingest: ingest_stats,
        persist: persist_stats,
        cache: cache.clone(),
        wal: wal.clone(),
        started,
        cache_query: Arc::new(crate::carbonlink::QueryStats::default()),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let bound = async {
        let line = bind_tcp("plaintext (TCP)", config.listen.line_tcp).await?;
        let pickle = bind_tcp("pickle", config.listen.pickle).await?;
        let http = bind_tcp("HTTP", config.listen.http).await?;
        let udp = match config.listen.line_udp.addr() {
            None => None,
            Some(addr) => {
                let s = UdpSocket::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen for plaintext (UDP) on {addr}: {e}"))?;
                tracing::info!(
                    "plaintext (UDP) on {}",
                    s.local_addr().map(|a| a.to_string()).unwrap_or_default()
                );
                Some(s)
            }
        };
        Ok::<_, String>((line, pickle, http, udp))
    };
    let (line, pickle, http, udp) = match bound.await {
        Ok(b) => b,
        Err(e) => {
            persister.shutdown();
            let _ = tags.close();
            return Err(e);
        }
    };
    let cache_query = match bind_tcp("cache query", config.listen.cache_query).await {
        Ok(l) => l,
        Err(e) => {
            persister.shutdown();
            let _ = tags.close();
            return Err(e);
        }
    };
    if let Some(l) = cache_query {
        let settings = crate::carbonlink::Settings {
            whisper_dir: config.whisper_dir(),
            max_frame: config.cache.max_query_frame_bytes as usize,
            write: WriteOptions {
                lock: config.persist.lock_writes,
                autoflush: config.persist.autoflush,
            },
            integer_timestamps: config.ingest.min_timestamp_resolution != 0,
        };
        tasks.spawn(crate::carbonlink::serve(
            l,
            cache.clone(),
            settings,
            counters.cache_query.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(l) = line {
        tasks.spawn(receiver::serve_line_tcp(l, intake.clone(), stop_rx.clone()));
    }
    if let Some(l) = pickle {
        let max = config.ingest.max_pickle_frame_bytes as usize;
        tasks.spawn(receiver::serve_pickle(
            l,
            intake.clone(),
            stop_rx.clone(),
            max,
        ));
    }
    if let Some(s) = udp {
        tasks.spawn(receiver::serve_line_udp(s, intake.clone(), stop_rx.clone()));
    }
    if let Some(l) = http {
        let c = counters.clone();
        let stats: crate::http::StatsFn = Arc::new(move || c.json());
        let endpoints = crate::http::Endpoints {
            stats,
            read: Some(read_api.clone()),
        };
        tasks.spawn(crate::http::serve(l, endpoints, stop_rx.clone()));
    }
    tasks.spawn(self_metrics(
        counters.clone(),
        intake.clone(),
        config.clone(),
        stop_rx.clone(),
    ));
    if let Some(f) = metric_filter {
        tasks.spawn(crate::ingest::filter::reload_loop(
            f,
            Duration::from_millis(config.ingest.lists_reload_ms),
            stop_rx.clone(),
        ));
    }
    tasks.spawn(schema_reloader.run(
        Duration::from_secs(config.schema_reload_seconds),
        stop_rx.clone(),
    ));
    tracing::info!("carbide serving; data under {}", config.data_dir.display());

    signals.wait().await;
    let _ = stop_tx.send(true);
    // Connections finish the batch they are delivering; give them a bounded time.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    drop(intake);
    tracing::info!("writing {} cached points to whisper", cache.len());
    tokio::task::spawn_blocking(move || persister.shutdown())
        .await
        .map_err(|e| format!("persister: {e}"))?;
    let closing = tags.clone();
    match tokio::task::spawn_blocking(move || closing.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("tag series log: {e}"),
        Err(e) => tracing::error!("tag series log: {e}"),
    }
    drop(counters);
    match Arc::try_unwrap(wal) {
        Ok(w) => tokio::task::spawn_blocking(move || w.close())
            .await
            .map_err(|e| format!("write-ahead log: {e}"))?,
        Err(_) => {
            tracing::debug!("write-ahead log still shared at exit; it closes with the process")
        }
    }
    tracing::info!("stopped");
    Ok(())
}
