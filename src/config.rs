//! `carbide serve`'s configuration: a TOML file in which every option has a default, so that
//! no file at all is a working setup on carbon's ports. Option names follow carbon.conf's where
//! carbon has the same knob (`max_cache_size`, `max_updates_per_second`, ...), in snake case.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where a listener binds, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(a) => Some(a),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        // carbon.conf writes interfaces and ports apart; `:2003` means every interface.
        let full = if let Some(port) = s.strip_prefix(':') {
            format!("0.0.0.0:{port}")
        } else {
            s.to_string()
        };
        full.parse::<SocketAddr>()
            .map(Listen::On)
            .map_err(|_| format!("invalid listen address {s:?}: expected HOST:PORT, :PORT or off"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(a) => write!(f, "{a}"),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// When the write-ahead log fsyncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// A point counts as received only once the record holding it is fsynced (group commit).
    Batch,
    /// Records are acknowledged when written; fsync runs every `fsync_interval_ms`.
    Interval,
    /// Never fsync: the operating system decides.
    Off,
}

/// The order in which the cache hands metrics to the writers (carbon's CACHE_WRITE_STRATEGY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteStrategy {
    Sorted,
    Max,
    Naive,
}

/// Listener addresses.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    pub line_tcp: Listen,
    pub line_udp: Listen,
    pub pickle: Listen,
    pub http: Listen,
    /// carbon's CACHE_QUERY_PORT: graphite-web's CarbonLink asks here for unwritten points.
    pub cache_query: Listen,
}

impl Default for ListenConfig {
    fn default() -> Self {
        let on = |port: u16| Listen::On(SocketAddr::from(([0, 0, 0, 0], port)));
        ListenConfig {
            line_tcp: on(2003),
            line_udp: on(2003),
            pickle: on(2004),
            http: on(8080),
            cache_query: on(7002),
        }
    }
}

/// Receiver limits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// carbon's PICKLE_RECEIVER_MAX_LENGTH: a larger frame closes the connection.
    pub max_pickle_frame_bytes: u32,
    /// carbon's MIN_TIMESTAMP_RESOLUTION (0: keep timestamps as sent).
    pub min_timestamp_resolution: u32,
    /// At most this many log lines a minute about bad input; the rest are only counted.
    pub bad_input_log_per_minute: u32,
    /// carbon's USE_WHITELIST: drop points by `whitelist.conf` / `blacklist.conf` in the
    /// schemas directory.
    pub use_whitelist: bool,
    /// How often those two files are checked for changes (carbon: every 10 s).
    pub lists_reload_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_pickle_frame_bytes: 1 << 20,
            min_timestamp_resolution: 0,
            bad_input_log_per_minute: 10,
            use_whitelist: false,
            lists_reload_ms: 10_000,
        }
    }
}

/// The in-memory cache of points not yet in whisper.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// carbon's MAX_CACHE_SIZE, in points; past it receivers stop reading until writers catch up.
    pub max_points: u64,
    pub write_strategy: WriteStrategy,
    /// Largest cache-query request frame; a longer length prefix closes the connection before
    /// anything is read (carbon allows 1 GiB).
    pub max_query_frame_bytes: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_points: 10_000_000,
            write_strategy: WriteStrategy::Sorted,
            max_query_frame_bytes: 64 << 20,
        }
    }
}

/// The writers that drain the cache into whisper.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistConfig {
    /// Writer threads.
    pub workers: usize,
    /// carbon's MAX_UPDATES_PER_SECOND (0: unlimited).
    pub max_updates_per_second: u32,
    /// carbon's MAX_CREATES_PER_MINUTE (0: unlimited).
    pub max_creates_per_minute: u32,
    /// carbon's WHISPER_LOCK_WRITES.
    pub lock_writes: bool,
    /// carbon's WHISPER_AUTOFLUSH.
    pub autoflush: bool,
    /// carbon's WHISPER_SPARSE_CREATE: new files are holes, allocated as they are written.
    /// Wins over `fallocate_create` (with carbon, fallocate wins): asking for sparse files
    /// must not allocate them in full because of a default.
    pub sparse_create: bool,
    /// carbon's WHISPER_FALLOCATE_CREATE, on as in the carbon.conf carbon ships: a new file's
    /// data area is allocated with one `fallocate` instead of written with zeros.
    pub fallocate_create: bool,
    /// Whisper files each writer keeps open between writes (when more are written, a stable
    /// set stays open and a file idle for a minute makes room); 0 closes every file after its
    /// write. Unset: the soft open file limit is raised
    /// to the hard one, and a quarter of it is shared by the writers, at most 65536 each.
    pub open_files_per_worker: Option<usize>,
}

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig {
            workers: 2,
            max_updates_per_second: 0,
            max_creates_per_minute: 0,
            lock_writes: false,
            autoflush: false,
            sparse_create: false,
            fallocate_create: true,
            open_files_per_worker: None,
        }
    }
}

/// The write-ahead log.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    /// Accepted batches held in memory while the disk refuses writes; past it receivers wait.
    pub max_pending_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncPolicy::Batch,
            fsync_interval_ms: 100,
            segment_bytes: 64 << 20,
            max_pending_bytes: 256 << 20,
        }
    }
}

impl WalConfig {
    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms.max(1))
    }
}

/// carbon's own metrics, written into the store.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfMetricsConfig {
    /// carbon's CARBON_METRIC_INTERVAL in seconds (0 disables).
    pub interval_seconds: u64,
    /// carbon's CARBON_METRIC_PREFIX.
    pub prefix: String,
    /// The host node of the names; default: the host name with `.` as `_`.
    pub host: Option<String>,
}

impl Default for SelfMetricsConfig {
    fn default() -> Self {
        SelfMetricsConfig {
            interval_seconds: 60,
            prefix: "carbon".to_string(),
            host: None,
        }
    }
}

/// The read API (render, find) and its per-request limits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenderConfig {
    /// graphite-web's TIME_ZONE: the zone of absolute times and csv output when a request gives
    /// no `tz`.
    pub time_zone: String,
    /// Targets in one /render request.
    pub max_targets: usize,
    /// Series one request may fetch, over all its targets.
    pub max_series: usize,
    /// Values one request may fetch or answer with.
    pub max_points: usize,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            time_zone: "UTC".to_string(),
            max_targets: 500,
            max_series: 100_000,
            max_points: 50_000_000,
        }
    }
}

/// Everything `carbide serve` reads.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Whisper files go under `<data_dir>/whisper`, the log under `<data_dir>/wal`.
    pub data_dir: PathBuf,
    /// Where storage-schemas.conf and storage-aggregation.conf are read; when the directory
    /// has no storage-schemas.conf the defaults compiled into the binary are used.
    pub schemas_dir: PathBuf,
    /// Seconds between looks at the two schema files (0: read at startup only); a changed
    /// file applies to metrics created afterwards. carbon re-reads them every 60 s.
    pub schema_reload_seconds: u64,
    /// A tracing filter (`info`, `carbide=debug`, ...); RUST_LOG wins when set.
    pub log_level: String,
    pub listen: ListenConfig,
    pub ingest: IngestConfig,
    pub cache: CacheConfig,
    pub persist: PersistConfig,
    pub wal: WalConfig,
    pub self_metrics: SelfMetricsConfig,
    pub render: RenderConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            schemas_dir: PathBuf::from("./storage-schemas"),
            schema_reload_seconds: 60,
            log_level: "info".to_string(),
            listen: ListenConfig::default(),
            ingest: IngestConfig::default(),
            cache: CacheConfig::default(),
            persist: PersistConfig::default(),
            wal: WalConfig::default(),
            self_metrics: SelfMetricsConfig::default(),
            render: RenderConfig::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document; the error names the option and the line.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads a TOML file; the error names the file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The root of the whisper tree.
    pub fn whisper_dir(&self) -> PathBuf {
        self.data_dir.join("whisper")
    }

    /// The write-ahead log's directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_carbons_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.line_tcp.to_string(), "0.0.0.0:2003");
        assert_eq!(c.listen.pickle.to_string(), "0.0.0.0:2004");
        assert_eq!(c.whisper_dir(), PathBuf::from("./data/whisper"));
        assert_eq!(c.wal.fsync, FsyncPolicy::Batch);
    }

    #[test]
    fn options_and_off() {
        let c = Config::from_toml(
            "data_dir = \"/srv/graphite\"\n[listen]\nline_udp = \"off\"\nhttp = \":9090\"\n\
             [wal]\nfsync = \"interval\"\n[cache]\nwrite_strategy = \"max\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.line_udp, Listen::Off);
        assert_eq!(c.listen.http.to_string(), "0.0.0.0:9090");
        assert_eq!(c.wal.fsync, FsyncPolicy::Interval);
        assert_eq!(c.cache.write_strategy, WriteStrategy::Max);
        assert_eq!(c.wal_dir(), PathBuf::from("/srv/graphite/wal"));
    }

    #[test]
    fn persist_open_files_per_worker() {
        let c = Config::from_toml("[persist]\nopen_files_per_worker = 256\n").unwrap();
        assert_eq!(c.persist.open_files_per_worker, Some(256));
        let c = Config::from_toml("[persist]\nopen_files_per_worker = 0\n").unwrap();
        assert_eq!(c.persist.open_files_per_worker, Some(0));
        assert_eq!(Config::default().persist.open_files_per_worker, None);
        let e = Config::from_toml("[persist]\nopen_files_per_worker = -1\n").unwrap_err();
        assert!(e.contains("open_files_per_worker"), "{e}");
    }

    #[test]
    fn errors_name_the_option() {
        let e = Config::from_toml("[cache]\nmax_pointz = 5\n").unwrap_err();
        assert!(e.contains("max_pointz"), "{e}");
        let e = Config::from_toml("[listen]\npickle = \"nowhere\"\n").unwrap_err();
        assert!(e.contains("invalid listen address \"nowhere\""), "{e}");
        let e = Config::from_toml("[wal]\nfsync = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("sometimes"), "{e}");
    }
}
