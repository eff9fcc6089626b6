//! Schema rules that change while the server runs: carbon-cache re-reads storage-schemas.conf
//! and storage-aggregation.conf every 60 s, so an operator changes the retention of new
//! metrics without a restart. Files that exist keep what they were created with; only files
//! created afterwards get the new rules.
//!
//! [`LiveSchemas`] is the handle the writers (and the read side) resolve through: the rules
//! sit behind a lock that is only read when a new file is created, and written only for the
//! pointer swap of a reload, so a write to an existing file never touches it.
//! [`Reloader`] does the startup load and, every interval, looks whether either file changed
//! and swaps in the new rules.
//!
//! As carbon, each file is taken on its own: a broken storage-schemas.conf keeps the old
//! retentions while a good storage-aggregation.conf next to it is applied, and a refused file
//! keeps the rules loaded before (logged). Differences, deliberately:
//! - a file is re-read only when its content changed (carbon parses both every time; the
//!   result is the same, and a refused file is reported once instead of every minute);
//! - a retention carbon cannot parse makes carbon's storage reload raise `SystemExit`, which
//!   its `except Exception` misses: the reload loop dies and storage-schemas.conf is never
//!   re-read until a restart. Here it is refused like any other error and retried at the
//!   file's next change;
//! - a storage-schemas.conf removed while running keeps the rules loaded from it (carbon does
//!   the same, by failing each reload), where a restart would fall back to the embedded
//!   defaults; one that appears in a directory that had none at startup (embedded defaults in
//!   use) is loaded, with the directory's storage-aggregation.conf, as a restart would.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{
    decode_text, parse_storage_aggregation, parse_storage_schemas, AggregationRule, Resolved,
    SchemaError, SchemaWarning, Schemas, StorageSchema, AGGREGATION_FILE, SCHEMAS_FILE,
};

/// The schema rules in use, shared by everyone who resolves a new metric; cloning shares them.
#[derive(Clone, Debug)]
pub struct LiveSchemas(Arc<RwLock<Arc<Schemas>>>);

impl LiveSchemas {
    pub fn new(schemas: Arc<Schemas>) -> LiveSchemas {
        LiveSchemas(Arc::new(RwLock::new(schemas)))
    }

    /// The rules in use now (a later reload does not change the returned value).
    pub fn current(&self) -> Arc<Schemas> {
        self.0.read().clone()
    }

    /// What a new whisper file named `metric` gets under the rules in use now.
    pub fn resolve(&self, metric: &str) -> Resolved {
        self.0.read().resolve(metric)
    }

    /// Puts `schemas` in use for every later [`resolve`](Self::resolve).
    pub fn replace(&self, schemas: Arc<Schemas>) {
        // The old rules are dropped after the lock is released.
        let _old = std::mem::replace(&mut *self.0.write(), schemas);
    }
}

impl From<Arc<Schemas>> for LiveSchemas {
    fn from(schemas: Arc<Schemas>) -> LiveSchemas {
        LiveSchemas::new(schemas)
    }
}

impl From<Schemas> for LiveSchemas {
    fn from(schemas: Schemas) -> LiveSchemas {
        LiveSchemas::new(Arc::new(schemas))
    }
}

/// What a file held when last looked at. Content, not mtime: the files are a few kilobytes,
/// and an edit that keeps the size within the file system's timestamp granularity (or a
/// copy that preserves mtime) would go unseen by a stat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    Unreadable,
    Content([u8; 32]),
}

/// One look at a file.
struct Observed {
    seen: Seen,
    read: io::Result<Vec<u8>>,
}

fn observe(path: &Path) -> Observed {
    let read = std::fs::read(path);
    let seen = match &read {
        Ok(bytes) => Seen::Content(Sha256::digest(bytes).into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
        Err(_) => Seen::Unreadable,
    };
    Observed { seen, read }
}

type StoragePart = (Vec<StorageSchema>, Vec<SchemaWarning>);
type AggregationPart = (Vec<AggregationRule>, Vec<SchemaWarning>);

/// storage-schemas.conf as [`Schemas::load`] reads it.
fn storage_part(file: &str, read: io::Result<Vec<u8>>) -> Result<StoragePart, SchemaError> {
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SchemaError::file(file, "missing required config"))
        }
        Err(e) => return Err(SchemaError::file(file, format!("cannot read: {e}"))),
    };
    let text = decode_text(file, bytes)?;
    let mut warnings = Vec::new();
    let schemas = parse_storage_schemas(file, &text, &mut warnings)?;
    Ok((schemas, warnings))
}

/// storage-aggregation.conf as [`Schemas::load`] reads it: missing or unreadable gives the
/// built-in default and a warning, as carbon.
fn aggregation_part(file: &str, read: io::Result<Vec<u8>>) -> Result<AggregationPart, SchemaError> {
    let mut warnings = Vec::new();
    let rules = match read {
        Ok(bytes) => {
            let text = decode_text(file, bytes)?;
            parse_storage_aggregation(file, &text, &mut warnings)?
        }
        Err(e) => {
            let message = format!("not found or wrong perms, ignoring ({e})");
            SchemaWarning::emit(&mut warnings, file, None, message);
            vec![AggregationRule::builtin_default()]
        }
    };
    Ok((rules, warnings))
}

/// What one [`Reloader::check`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Either file differs from the last look (content, presence or readability).
    pub changed: bool,
    /// New storage schemas are in use.
    pub storage_loaded: bool,
    /// New aggregation rules are in use.
    pub aggregation_loaded: bool,
    /// A changed file was refused (logged); the rules it would have replaced stay.
    pub refused: bool,
}

/// Loads the rules at startup and reloads them when their files change.
#[derive(Debug)]
pub struct Reloader {
    dir: PathBuf,
    live: LiveSchemas,
    /// The rules came from `dir` (else from the embedded files: `dir` had no
    /// storage-schemas.conf at startup and has not had a loadable one since).
    from_dir: bool,
    storage_seen: Seen,
    aggregation_seen: Seen,
}

impl Reloader {
    /// The startup load: the files in `dir`, or the embedded ones when `dir` has no
    /// storage-schemas.conf. An error here stops the server, as carbon refuses to start.
    pub fn start(dir: &Path) -> Result<Reloader, String> {
        let storage_path = dir.join(SCHEMAS_FILE);
        let aggregation_path = dir.join(AGGREGATION_FILE);
        // Both files are fingerprinted from the very bytes that are parsed, so a change made
        // during startup is seen by the first check.
        let storage = observe(&storage_path);
        let aggregation = observe(&aggregation_path);
        let from_dir = storage.seen != Seen::Missing;
        let schemas = if from_dir {
            tracing::info!("storage schemas from {}", dir.display());
            let (storage_rules, mut warnings) =
                storage_part(&storage_path.display().to_string(), storage.read)
                    .map_err(|e| e.to_string())?;
            let (aggregation_rules, more) =
                aggregation_part(&aggregation_path.display().to_string(), aggregation.read)
                    .map_err(|e| e.to_string())?;
            warnings.extend(more);
            Schemas::from_parts(storage_rules, aggregation_rules, warnings)
        } else {
            tracing::info!(
                "no {SCHEMAS_FILE} in {}: using the built-in storage schemas",
                dir.display()
            );
            Schemas::embedded().map_err(|e| e.to_string())?
        };
        Ok(Reloader {
            dir: dir.to_path_buf(),
            live: LiveSchemas::new(Arc::new(schemas)),
            from_dir,
            storage_seen: storage.seen,
            aggregation_seen: aggregation.seen,
        })
    }

    /// The handle to resolve new metrics through; it follows every reload.
    pub fn schemas(&self) -> LiveSchemas {
        self.live.clone()
    }

    /// Looks at both files once and puts in use what changed and loads; logs what it loaded
    /// (info) and what it refused (error).
    pub fn check(&mut self) -> Checked {
        let storage_path = self.dir.join(SCHEMAS_FILE);
        let aggregation_path = self.dir.join(AGGREGATION_FILE);
        let storage = observe(&storage_path);
        let aggregation = observe(&aggregation_path);
        let storage_changed = storage.seen != self.storage_seen;
        let aggregation_changed = aggregation.seen != self.aggregation_seen;
        let mut out = Checked {
            changed: storage_changed || aggregation_changed,
            ..Checked::default()
        };
        if !out.changed {
            return out;
        }
        // Remembered whatever the outcome: a refused file is retried when it changes again.
        self.storage_seen = storage.seen;
        self.aggregation_seen = aggregation.seen;
        let storage_name = storage_path.display().to_string();
        let aggregation_name = aggregation_path.display().to_string();

        let mut new_storage = None;
        if storage_changed {
            match storage.read {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if self.from_dir {
                        out.refused = true;
                        tracing::error!(
                            "{storage_name} is gone: new metrics keep the storage schemas \
                             loaded before"
                        );
                    }
                }
                read => match storage_part(&storage_name, read) {
                    Ok(part) => new_storage = Some(part),
                    Err(e) => {
                        out.refused = true;
                        tracing::error!(
                            "schema reload refused {e}; new metrics keep the storage schemas \
                             loaded before (retried when the file changes)"
                        );
                    }
                },
            }
        }
        // Without a storage-schemas.conf of its own the directory is not used at all, as at
        // startup; once one loads, the directory's storage-aggregation.conf comes with it.
        let switching = !self.from_dir && new_storage.is_some();
        if !self.from_dir && !switching {
            return out;
        }
        let mut new_aggregation = None;
        if aggregation_changed || switching {
            match aggregation_part(&aggregation_name, aggregation.read) {
                Ok(part) => new_aggregation = Some(part),
                Err(e) => {
                    out.refused = true;
                    tracing::error!(
                        "schema reload refused {e}; new metrics keep the aggregation rules \
                         loaded before (retried when the file changes)"
                    );
                }
            }
        }
        if new_storage.is_none() && new_aggregation.is_none() {
            return out;
        }

        let old = self.live.current();
        let (old_aggregation_warnings, old_storage_warnings): (Vec<_>, Vec<_>) = old
            .warnings()
            .iter()
            .cloned()
            .partition(|w| w.file.ends_with(AGGREGATION_FILE));
        out.storage_loaded = new_storage.is_some();
        out.aggregation_loaded = new_aggregation.is_some();
        let (storage_rules, mut warnings) =
            new_storage.unwrap_or_else(|| (old.storage_schemas().to_vec(), old_storage_warnings));
        let (aggregation_rules, more) = new_aggregation
            .unwrap_or_else(|| (old.aggregation_rules().to_vec(), old_aggregation_warnings));
        warnings.extend(more);
        let schemas = Schemas::from_parts(storage_rules, aggregation_rules, warnings);
        if out.storage_loaded {
            tracing::info!(
                "schema reload: {storage_name} loaded, new metrics get its schemas {}",
                section_list(schemas.storage_schemas().iter().map(|s| s.name()))
            );
        }
        if out.aggregation_loaded {
            tracing::info!(
                "schema reload: {aggregation_name} loaded, new metrics get its rules {}",
                section_list(schemas.aggregation_rules().iter().map(|r| r.name()))
            );
        }
        self.live.replace(Arc::new(schemas));
        self.from_dir = true;
        out
    }

    /// Checks every `every` (the first time one interval after startup, as carbon) until
    /// `shutdown` changes; a zero interval turns reloading off.
    pub async fn run(mut self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        if every.is_zero() {
            tracing::info!("schema reload off: schema files are read at startup only");
            return;
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            // Reading and compiling the rules is file I/O and regex work: off the runtime.
            self = match tokio::task::spawn_blocking(move || {
                self.check();
                self
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("schema reload stopped: {e}");
                    return;
                }
            };
        }
    }
}

/// `[a] [b] [default]`.
fn section_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("[{n}]"))
        .collect::<Vec<_>>()
        .join(" ")
}
