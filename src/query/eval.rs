//! Evaluation of a parsed target, as graphite-web's `evaluateTokens` does it: paths are fetched
//! from the `SeriesSource`, calls bind their arguments to the function's parameters and run it,
//! literals stay literals. Functions that need data for another time range (movingAverage,
//! timeShift, ...) evaluate a series' path expression again through `Context::evaluate_in`.

use super::ast::{Call, Expr};
use super::error::QueryError;
use super::functions;
use super::series::Series;
use super::time::Zone;
use super::value::{Args, Value};

/// Where series come from: the index for names, the cache and whisper for points.
pub trait SeriesSource: Send + Sync {
    /// Every series whose name matches `pattern` (graphite glob syntax), fetched for
    /// `(from, until]` with `now` pinning the archive choice, de-duplicated and sorted by name,
    /// each with `path_expression` = `pattern` and the request's xFilesFactor.
    fn fetch(
        &self,
        pattern: &str,
        from: i64,
        until: i64,
        now: i64,
        x_files_factor: f64,
    ) -> Result<Vec<Series>, QueryError>;

    /// Like `fetch`, but more than `max_series` matches is a `QueryError::Limit`; a source that
    /// can count its matches first refuses before reading any file.
    fn fetch_at_most(
        &self,
        pattern: &str,
        from: i64,
        until: i64,
        now: i64,
        x_files_factor: f64,
        max_series: usize,
    ) -> Result<Vec<Series>, QueryError> {
        let series = self.fetch(pattern, from, until, now, x_files_factor)?;
        if series.len() > max_series {
            return Err(too_many(pattern, series.len()));
        }
        Ok(series)
    }

    /// Like `fetch_at_most`, but hands the series to `each` one at a time, in the same order,
    /// so a caller that folds them need not hold them all; `each` answers false to stop early.
    /// Returns whether every series was handed over. A source that reads lazily keeps at most
    /// one series in memory.
    #[allow(clippy::too_many_arguments)]
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
        for series in self.fetch_at_most(pattern, from, until, now, x_files_factor, max_series)? {
            if !each(series)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The error for a path expression that matches more series than the request may fetch.
pub fn too_many(pattern: &str, matches: usize) -> QueryError {
    QueryError::Limit(format!(
        "{pattern:?} matches {matches} series, more than the max_series limit leaves for it"
    ))
}

/// Per-request bounds, so one request cannot exhaust the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Series fetched by one request, over all its path expressions.
    pub max_series: usize,
    /// Values fetched by one request, over all series.
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_series: 100_000,
            max_points: 50_000_000,
        }
    }
}

/// The request a target is evaluated in (graphite-web's `requestContext`).
pub struct Context<'a> {
    pub from: i64,
    pub until: i64,
    pub now: i64,
    pub tz: Zone,
    /// The request's xFilesFactor (graphite-web's DEFAULT_XFILES_FACTOR unless given).
    pub x_files_factor: f64,
    pub source: &'a dyn SeriesSource,
    pub limits: Limits,
    /// `template[name]=value` request parameters.
    pub templates: Vec<(String, String)>,
    /// stacked()'s running totals per stack name, shared by every target of the request (graphite-
    /// web's `requestContext['totalStack']`).
    pub stacks: std::collections::HashMap<Option<String>, Vec<f64>>,
    fetched_series: usize,
    fetched_points: usize,
    /// The argument expressions of the call being run, as written (graphite-web's
    /// `requestContext['args']`): timeShift and friends evaluate their first one again.
    raw_args: Vec<Expr>,
}

impl<'a> Context<'a> {
    pub fn new(from: i64, until: i64, now: i64, tz: Zone, source: &'a dyn SeriesSource) -> Self {
        Context {
            from,
            until,
            now,
            tz,
            x_files_factor: 0.0,
            source,
            limits: Limits::default(),
            templates: Vec::new(),
            stacks: std::collections::HashMap::new(),
            fetched_series: 0,
            fetched_points: 0,
            raw_args: Vec::new(),
        }
    }

    /// Parses and evaluates one target; a target that is not a series list (a bare number)
    /// gives no series, as in graphite-web.
    pub fn evaluate_target(&mut self, target: &str) -> Result<Vec<Series>, QueryError> {
        if target.trim().is_empty() {
            return Ok(Vec::new());
        }
        let expr = super::parser::parse(target)?;
        match self.evaluate(&expr)? {
            Value::SeriesList(list) => Ok(list),
            _ => Ok(Vec::new()),
        }
    }

    /// Evaluates `target` as if the request asked for `(from, until]`; the context's own range
    /// is restored afterwards.
    pub fn evaluate_in(
        &mut self,
        target: &str,
        from: i64,
        until: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let saved = (self.from, self.until);
        self.from = from;
        self.until = until;
        let result = self.evaluate_target(target);
        (self.from, self.until) = saved;
        result
    }

    /// The positional argument expressions of the running call as written (a piped value
    /// first).
    pub fn raw_args(&self) -> &[Expr] {
        &self.raw_args
    }

    /// Evaluates `expr` as if the request asked for `(from, until]` (template replacements are
    /// not applied, as graphite-web re-evaluates without them).
    pub fn evaluate_expr_in(
        &mut self,
        expr: &Expr,
        from: i64,
        until: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let saved = (self.from, self.until);
        self.from = from;
        self.until = until;
        let result = self.evaluate(expr);
        (self.from, self.until) = saved;
        match result? {
            Value::SeriesList(list) => Ok(list),
            _ => Ok(Vec::new()),
        }
    }

    /// Fetches a path expression for the context's range, counting what it costs.
    pub fn fetch(&mut self, pattern: &str) -> Result<Vec<Series>, QueryError> {
        let budget = self.limits.max_series.saturating_sub(self.fetched_series);
        let series = self.source.fetch_at_most(
            pattern,
            self.from,
            self.until,
            self.now,
            self.x_files_factor,
            budget,
        )?;
        self.fetched_series += series.len();
        self.fetched_points += series.iter().map(|s| s.values.len()).sum::<usize>();
        check_limits(&self.limits, self.fetched_series, self.fetched_points)?;
        Ok(series)
    }

    /// [`Context::fetch`] one series at a time (see [`SeriesSource::fetch_each`]), with the
    /// same limits checked as each series arrives. Returns whether `each` took every series.
    pub fn fetch_each(
        &mut self,
        pattern: &str,
        each: &mut dyn FnMut(Series) -> Result<bool, QueryError>,
    ) -> Result<bool, QueryError> {
        let budget = self.limits.max_series.saturating_sub(self.fetched_series);
        let limits = self.limits;
        let (mut series, mut points) = (self.fetched_series, self.fetched_points);
        let done = self.source.fetch_each(
            pattern,
            self.from,
            self.until,
            self.now,
            self.x_files_factor,
            budget,
            &mut |s| {
                series += 1;
                points += s.values.len();
                check_limits(&limits, series, points)?;
                each(s)
            },
        )?;
        (self.fetched_series, self.fetched_points) = (series, points);
        Ok(done)
    }

    /// What the request has fetched so far (series, points), to undo an abandoned attempt.
    pub(crate) fn fetched(&self) -> (usize, usize) {
        (self.fetched_series, self.fetched_points)
    }

    pub(crate) fn set_fetched(&mut self, fetched: (usize, usize)) {
        (self.fetched_series, self.fetched_points) = fetched;
    }

    pub fn evaluate(&mut self, expr: &Expr) -> Result<Value, QueryError> {
        self.evaluate_with(expr, &[])
    }

    fn evaluate_with(
        &mut self,
        expr: &Expr,
        replacements: &[(String, Value)],
    ) -> Result<Value, QueryError> {
        match expr {
            Expr::Path(path) => {
                if replacements.is_empty() {
                    return Ok(Value::SeriesList(self.fetch(path)?));
                }
                let mut path = path.clone();
                for (name, value) in replacements {
                    if path == format!("${name}") {
                        return Ok(template_value(value));
                    }
                    let text = match value {
                        Value::Str(s) => s.clone(),
                        other => other.python_repr(),
                    };
                    path = path.replace(&format!("${name}"), &text);
                }
                Ok(Value::SeriesList(self.fetch(&path)?))
            }
            Expr::Call(call) => self.call(call, replacements),
            Expr::Str(s) => Ok(Value::Str(s.clone())),
            Expr::Int(i) => Ok(Value::Int(*i)),
            Expr::Float(f) => Ok(Value::Float(*f)),
            Expr::Bool(b) => Ok(Value::Bool(*b)),
            Expr::None => Ok(Value::None),
            Expr::Template(t) => {
                let mut values: Vec<(String, Value)> = Vec::new();
                for (k, v) in &t.kwargs {
                    values.push((k.clone(), self.evaluate_with(v, &[])?));
                }
                for (i, v) in t.args.iter().enumerate() {
                    values.push(((i + 1).to_string(), self.evaluate_with(v, &[])?));
                }
                for (k, v) in self.templates.clone() {
                    values.retain(|(name, _)| *name != k);
                    values.push((k, Value::Str(v)));
                }
                self.evaluate_with(&t.inner, &values)
            }
        }
    }

    fn call(&mut self, call: &Call, replacements: &[(String, Value)]) -> Result<Value, QueryError> {
        if call.name == "template" {
            // The grammar makes `template(...)` a template only with string or number
            // arguments; anything else arrives here as a plain call.
            return Err(QueryError::bad(format!(
                "invalid template() syntax at position {}, only string/numeric arguments are allowed",
                call.position
            )));
        }
        if call.name == "seriesByTag" {
            return Ok(Value::SeriesList(self.fetch(&call.raw)?));
        }
        let Some(def) = functions::lookup(&call.name) else {
            return Err(QueryError::bad(format!(
                "Received request for unknown function: {} (at position {})",
                call.name, call.position
            )));
        };
        // sumSeries(a.*.b) and its kin over plain paths fold each series as it is read rather
        // than holding every fetched series at once.
        if replacements.is_empty() {
            if let Some(value) = functions::combine::fold_paths(self, def, call)? {
                return Ok(value);
            }
        }
        let mut positional = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            positional.push(self.evaluate_with(arg, replacements)?);
        }
        let mut keywords = Vec::with_capacity(call.kwargs.len());
        for (k, v) in &call.kwargs {
            keywords.push((k.clone(), self.evaluate_with(v, replacements)?));
        }
        let args = Args::bind(def.name, def.params, positional, keywords)?;
        let saved = std::mem::replace(&mut self.raw_args, call.args.clone());
        let result = (def.run)(self, args);
        self.raw_args = saved;
        result
    }
}

/// The request's limits against what it has fetched so far.
fn check_limits(limits: &Limits, series: usize, points: usize) -> Result<(), QueryError> {
    if series > limits.max_series {
        return Err(QueryError::Limit(format!(
            "the request needs more than max_series = {} series",
            limits.max_series
        )));
    }
    if points > limits.max_points {
        return Err(QueryError::Limit(format!(
            "the request needs more than max_points = {} points",
            limits.max_points
        )));
    }
    Ok(())
}

/// A template value standing alone as an argument: numbers-as-text become floats, as
/// graphite-web's evaluator does.
fn template_value(value: &Value) -> Value {
    match value {
        Value::Str(s) => {
            let numeric = !s.is_empty()
                && s.trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.')
                && s.trim_start_matches('-').chars().any(|c| c != '.');
            if numeric {
                match s.parse::<f64>() {
                    Ok(f) => Value::Float(f),
                    Err(_) => Value::Str(s.clone()),
                }
            } else {
                Value::Str(s.clone())
            }
        }
        other => other.clone(),
    }
}
