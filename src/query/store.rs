//! The read side's view of the data: names come from the index, points from whisper files with
//! the write cache merged over them, as graphite-web's whisper reader merges carbonlink's
//! answer. A metric whose points are all still in the cache (its file is not created yet) is
//! read as if its file existed with the retention the schema gives it, so points are visible
//! the moment they are accepted.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::QueryError;
use super::eval::SeriesSource;
use super::series::Series;
use crate::cache::Cache;
use crate::ingest::name::relative_path;
use crate::schema::reload::LiveSchemas;
use crate::whisper::{AggregationMethod, WhisperError, WhisperFile};

/// A fetch's `(start, end, step, values)`.
type Window = (i64, i64, i64, Vec<Option<f64>>);

/// Expands a path expression to the metric names it matches (sorted, de-duplicated).
pub trait Names: Send + Sync {
    fn expand(&self, pattern: &str) -> Vec<String>;
}

/// Whisper files under `root`, the cache over them, names from `names`.
pub struct Store {
    root: PathBuf,
    names: Arc<dyn Names>,
    tags: Option<Arc<crate::index::tags::TagIndex>>,
    cache: Option<Arc<Cache>>,
    schemas: Option<LiveSchemas>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>, names: Arc<dyn Names>) -> Store {
        Store {
            root: root.into(),
            names,
            tags: None,
            cache: None,
            schemas: None,
        }
    }

    /// Answers `seriesByTag(...)` from `tags`.
    pub fn with_tags(mut self, tags: Arc<crate::index::tags::TagIndex>) -> Store {
        self.tags = Some(tags);
        self
    }

    /// Merges unflushed points from `cache`; `schemas` say what retention a metric that is only
    /// in the cache will get.
    pub fn with_cache(mut self, cache: Arc<Cache>, schemas: impl Into<LiveSchemas>) -> Store {
        self.cache = Some(cache);
        self.schemas = Some(schemas.into());
        self
    }

    fn fetch_one(
        &self,
        name: &str,
        from: i64,
        until: i64,
        now: i64,
    ) -> Result<Option<Window>, QueryError> {
        let Ok(rel) = relative_path(name) else {
            return Ok(None);
        };
        let path = self.root.join(rel);
        let cached = match &self.cache {
            Some(cache) => cache.get(name),
            None => Vec::new(),
        };
        let (window, method, raw_step) = match WhisperFile::open(&path, false) {
            Ok(file) => {
                let header = file.header();
                let fetched = match file.fetch(from, Some(until), Some(now), None) {
                    Ok(Some(r)) => r,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        tracing::warn!("fetch of {} failed: {e}", path.display());
                        return Ok(None);
                    }
                };
                let raw_step = header
                    .archives
                    .first()
                    .map(|a| i64::from(a.seconds_per_point));
                (
                    (fetched.start, fetched.end, fetched.step, fetched.values),
                    header.aggregation_method,
                    raw_step,
                )
            }
            Err(WhisperError::Io { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !cached.is_empty() =>
            {
                let Some(schemas) = &self.schemas else {
                    return Ok(None);
                };
                let resolved = schemas.resolve(name);
                let Some(window) = empty_fetch(&resolved.archives, from, until, now) else {
                    return Ok(None);
                };
                let raw_step = resolved.archives.first().map(|a| i64::from(a.0));
                (window, resolved.aggregation_method, raw_step)
            }
            Err(WhisperError::Io { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", path.display());
                return Ok(None);
            }
        };
        let (start, end, step, mut values) = window;
        if !cached.is_empty() {
            merge_cached(&cached, start, step, &mut values, method, raw_step);
        }
        Ok(Some((start, end, step, values)))
    }
}

impl SeriesSource for Store {
    fn fetch(
        &self,
        pattern: &str,
        from: i64,
        until: i64,
        now: i64,
        x_files_factor: f64,
    ) -> Result<Vec<Series>, QueryError> {
        self.fetch_at_most(pattern, from, until, now, x_files_factor, usize::MAX)
    }

    fn fetch_at_most(
        &self,
        pattern: &str,
        from: i64,
        until: i64,
        now: i64,
        x_files_factor: f64,
        max_series: usize,
    ) -> Result<Vec<Series>, QueryError> {
        let mut out = Vec::new();
        self.fetch_each(
            pattern,
            from,
            until,
            now,
            x_files_factor,
            max_series,
            &mut |s| {
                out.push(s);
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// Reads one file at a time, so a caller that folds the series (sumSeries) never holds
    /// more than one of them.
    fn fetch_each(
        &self,
        pattern: &str,
        from: i64,
        until: i64,
        now: i64,
        x_files_factor: f64,
        max_series: usize,
        each: &mut dyn FnMut(Series) -> Result<bool, QueryError>,
    ) -> Result<bool, QueryError> {
        let mut names = match (&self.tags, pattern.starts_with("seriesByTag(")) {
            (Some(tags), true) => crate::http::tags::series_by_tag(tags, pattern)?,
            _ => self.names.expand(pattern),
        };
        if names.len() > max_series {
            return Err(super::eval::too_many(pattern, names.len()));
        }
        // Series come out sorted by name, each name once, whatever order the names came in.
        names.sort_unstable();
        names.dedup();
        for name in names {
            if let Some((start, end, step, values)) = self.fetch_one(&name, from, until, now)? {
                let mut series = Series::new(name, start, end, step, values, x_files_factor);
                series.path_expression = pattern.to_string();
                if !each(series)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// whisper.py's fetch window over a file that holds nothing yet: `(start, end, step, values)`.
fn empty_fetch(archives: &[(u32, u32)], from: i64, until: i64, now: i64) -> Option<Window> {
    let max_retention = archives
        .iter()
        .map(|&(spp, points)| i64::from(spp) * i64::from(points))
        .max()?;
    let oldest = now - max_retention;
    if from > now || until < oldest || from > until {
        return None;
    }
    let from = from.max(oldest);
    let until = until.min(now);
    let age = now - from;
    let &(spp, _) = archives
        .iter()
        .find(|&&(spp, points)| i64::from(spp) * i64::from(points) >= age)
        .or(archives.last())?;
    let step = i64::from(spp);
    let from_interval = from - from.rem_euclid(step) + step;
    let mut until_interval = until - until.rem_euclid(step) + step;
    if from_interval == until_interval {
        until_interval += step;
    }
    let n = ((until_interval - from_interval) / step).max(0) as usize;
    Some((from_interval, until_interval, step, vec![None; n]))
}

/// graphite-web's `merge_with_cache`: cached points (the last per raw interval) are
/// consolidated to the fetched step with the file's aggregation method when the step is coarser
/// than the finest archive, then written over the fetched values.
fn merge_cached(
    cached: &[(f64, f64)],
    start: i64,
    step: i64,
    values: &mut [Option<f64>],
    method: AggregationMethod,
    raw_step: Option<i64>,
) {
    if step <= 0 {
        return;
    }
    let mut points: Vec<(i64, f64)> = Vec::with_capacity(cached.len());
    for &(ts, v) in cached {
        if !ts.is_finite() {
            continue;
        }
        let mut ts = ts as i64;
        if let Some(raw) = raw_step.filter(|&r| r > 1) {
            ts -= ts.rem_euclid(raw);
        }
        // The cache keeps points sorted with the last value per timestamp; after aligning to the
        // raw step the last one per interval wins, as whisper itself would keep it.
        match points.last_mut() {
            Some(last) if last.0 == ts => last.1 = v,
            _ => points.push((ts, v)),
        }
    }
    let consolidate = raw_step != Some(step);
    let mut groups: Vec<(i64, Vec<f64>)> = Vec::new();
    for (ts, v) in points {
        let interval = if consolidate {
            ts - ts.rem_euclid(step)
        } else {
            ts
        };
        match groups.last_mut() {
            Some(g) if g.0 == interval => g.1.push(v),
            _ => groups.push((interval, vec![v])),
        }
    }
    for (interval, group) in groups {
        let value = if consolidate {
            consolidate_cached(method, &group)
        } else {
            group.last().copied()
        };
        let offset = interval - start;
        if offset < 0 {
            continue;
        }
        let i = (offset / step) as usize;
        if let Some(slot) = values.get_mut(i) {
            *slot = value;
        }
    }
}

/// The consolidation graphite-web's cache merge applies (whisper's methods other than the ones it
/// knows raise there; here they fall back to average).
fn consolidate_cached(method: AggregationMethod, group: &[f64]) -> Option<f64> {
    use super::series::{python_max, python_min, python_sum};
    if group.is_empty() {
        return None;
    }
    Some(match method.name() {
        "sum" => python_sum(group),
        "max" => python_max(group),
        "min" => python_min(group),
        "last" => group[group.len() - 1],
        _ => python_sum(group) / group.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheConfig;

    struct Fixed(Vec<String>);

    impl Names for Fixed {
        fn expand(&self, _: &str) -> Vec<String> {
            self.0.clone()
        }
    }

    /// A metric whose points are all in the cache reads as the file its schema would make, and
    /// cached points land over a file's values.
    #[test]
    fn cache_is_merged_over_whisper() {
        let dir = tempfile::tempdir().unwrap();
        let schemas = Arc::new(crate::schema::Schemas::embedded().unwrap());
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        let now = 1_700_000_000;
        let t = now - now % 60 - 600;
        let on_disk = dir.path().join("a/disk.wsp");
        std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
        crate::whisper::create(&on_disk, &[(60, 1440)], &Default::default()).unwrap();
        let points = [(t, 1.0), (t + 60, 2.0)];
        crate::whisper::update_many(&on_disk, &points, Some(now), Default::default()).unwrap();
        cache.insert("a.disk", (t + 60) as f64, 20.0, 0);
        cache.insert("a.disk", (t + 120) as f64, 30.0, 0);
        cache.insert("a.fresh", t as f64, 5.0, 0);
        let names = Arc::new(Fixed(vec!["a.disk".into(), "a.fresh".into()]));
        let store = Store::new(dir.path(), names).with_cache(cache, schemas);
        let got = store.fetch("a.*", t - 60, t + 120, now, 0.0).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "a.disk");
        assert_eq!(got[0].values, vec![Some(1.0), Some(20.0), Some(30.0)]);
        assert_eq!(got[1].name, "a.fresh");
        assert_eq!(got[1].step, 60);
        assert_eq!(got[1].start, t);
        assert_eq!(got[1].values, vec![Some(5.0), None, None]);
    }
}
