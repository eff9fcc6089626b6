//! `/render`: graphite-web's render view for the text formats. Parameters come merged from the
//! query string and the form body; targets are evaluated by `query`, then consolidated for
//! `maxDataPoints` and written as json (Grafana's shape), jsonp, csv, raw or pickle.

use std::fmt::Write as _;

use super::reply::{Params, Reply};
use crate::python::format::float_repr;
use crate::query::consolidate::consolidate;
use crate::query::eval::{Context, Limits, SeriesSource};
use crate::query::series::Series;
use crate::query::time::{local_datetime, parse_at_time, parse_zone, Zone};
use crate::query::QueryError;

/// What a render request needs besides its parameters.
pub struct RenderEnv<'a> {
    pub source: &'a dyn SeriesSource,
    /// graphite-web's TIME_ZONE setting.
    pub default_zone: Zone,
    pub limits: Limits,
    /// Targets one request may hold.
    pub max_targets: usize,
    /// The clock, in epoch seconds (tests pin it through the `now` parameter instead).
    pub now: i64,
}

struct Options {
    targets: Vec<String>,
    from: i64,
    until: i64,
    now: i64,
    zone: Zone,
    format: String,
    jsonp: Option<String>,
    max_data_points: Option<usize>,
    no_null_points: bool,
    pretty: bool,
    x_files_factor: f64,
    templates: Vec<(String, String)>,
}

fn options(params: &Params, env: &RenderEnv<'_>) -> Result<Options, QueryError> {
    let mut targets: Vec<String> = params.all("target").into_iter().map(String::from).collect();
    if targets.is_empty() {
        targets = params
            .all("target[]")
            .into_iter()
            .map(String::from)
            .collect();
    }
    if targets.len() > env.max_targets {
        return Err(QueryError::Limit(format!(
            "{} targets in one request, more than max_targets = {}",
            targets.len(),
            env.max_targets
        )));
    }
    let zone = params
        .get("tz")
        .and_then(parse_zone)
        .unwrap_or(env.default_zone);
    let now = match params.get("now") {
        Some(s) => parse_at_time(s, zone, env.now)?,
        None => env.now,
    };
    let until = match params.get("until") {
        Some(s) => parse_at_time(s, zone, now)?,
        None => now,
    };
    let from = match params.get("from") {
        Some(s) => parse_at_time(s, zone, now)?,
        None => parse_at_time("-1d", zone, now)?,
    };
    let (from, until) = (from.min(until), from.max(until));
    if from == until {
        return Err(QueryError::bad("Invalid empty time range"));
    }
    let mut format = String::from("json");
    if params.has("pickle") {
        format = "pickle".into();
    }
    if params.has("rawData") {
        format = "raw".into();
    }
    let mut jsonp = None;
    if let Some(f) = params.get("format") {
        format = f.to_string();
        jsonp = params.get("jsonp").map(String::from);
    }
    let max_data_points = params
        .get("maxDataPoints")
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<usize>().ok())
        // Grafana's backend sends 0 for "unset"; graphite-web divides by it (HTTP 500).
        .filter(|&n| n > 0);
    let x_files_factor = match params.get("xFilesFactor") {
        Some(s) => crate::python::number::parse_float(s)
            .ok_or_else(|| QueryError::bad(format!("xFilesFactor {s:?} is not a number")))?,
        None => 0.0,
    };
    let templates = params
        .0
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("template[")?.strip_suffix(']')?;
            Some((name.to_string(), v.clone()))
        })
        .collect();
    Ok(Options {
        targets,
        from,
        until,
        now,
        zone,
        format,
        jsonp,
        max_data_points,
        no_null_points: params.has("noNullPoints"),
        pretty: params.get("pretty").is_some_and(|p| !p.is_empty()),
        x_files_factor,
        templates,
    })
}

/// Answers one `/render` request.
pub fn render(params: &Params, env: &RenderEnv<'_>) -> Reply {
    let opts = match options(params, env) {
        Ok(o) => o,
        Err(e) => return error_reply(&e, &[]),
    };
    match render_inner(&opts, env) {
        Ok(reply) => reply,
        Err(e) => {
            let targets: Vec<&str> = opts.targets.iter().map(String::as_str).collect();
            error_reply(&e, &targets)
        }
    }
}

/// Errors as graphite-web words its 400s: `Invalid parameters (<why>); targets: "<t>"`.
pub fn error_reply(e: &QueryError, targets: &[&str]) -> Reply {
    let mut msg = match e {
        QueryError::BadRequest(m) => format!("Invalid parameters ({m})"),
        QueryError::Limit(m) => format!("Limit exceeded ({m})"),
        QueryError::Internal(m) => format!("Internal error ({m})"),
    };
    if !targets.is_empty() {
        let _ = write!(msg, "; targets: \"{}\"", targets.join(", "));
    }
    Reply::text(e.status(), msg)
}

fn render_inner(opts: &Options, env: &RenderEnv<'_>) -> Result<Reply, QueryError> {
    let mut ctx = Context::new(opts.from, opts.until, opts.now, opts.zone, env.source);
    ctx.x_files_factor = opts.x_files_factor;
    ctx.limits = env.limits;
    ctx.templates = opts.templates.clone();
    let mut data = Vec::new();
    for target in &opts.targets {
        data.extend(ctx.evaluate_target(target)?);
    }
    let total_points: usize = data.iter().map(|s| s.values.len()).sum();
    if total_points > env.limits.max_points {
        return Err(QueryError::Limit(format!(
            "the response would hold {total_points} points, more than max_points = {}",
            env.limits.max_points
        )));
    }
    match opts.format.as_str() {
        "json" => Ok(Reply::json_or_jsonp(
            json(&mut data, opts),
            opts.jsonp.as_deref(),
        )),
        "csv" => Ok(Reply::new(200, "text/csv", csv(&data, opts.zone))),
        "raw" => Ok(Reply::new(200, "text/plain", raw(&data))),
        "pickle" => Ok(Reply::new(200, "application/pickle", pickle(&data))),
        other => Err(QueryError::bad(format!(
            "format {other:?} is not supported (json, csv, raw, pickle; Carbide draws no images)"
        ))),
    }
}

/// graphite-web's maxDataPoints step for the JSON renderer (render-api.md 2.3), applied in place.
fn consolidate_for(data: &mut [Series], max_data_points: usize) {
    let Some(start) = data.iter().map(|s| s.start).min() else {
        return;
    };
    let end = data.iter().map(|s| s.end).max().unwrap_or(start);
    let time_range = (end - start) as f64;
    for series in data.iter_mut() {
        if series.step <= 0 {
            continue;
        }
        if max_data_points == 1 {
            series.values_per_point = series.points().len().max(1);
            continue;
        }
        let n = time_range / series.step as f64;
        if (max_data_points as f64) < n {
            let vpp = (n / max_data_points as f64).ceil() as i64;
            let spp = vpp * series.step;
            let nudge = spp + series.start.rem_euclid(series.step) - series.start.rem_euclid(spp);
            series.start += nudge;
            let lose = (nudge / series.step).max(0) as usize;
            // graphite-web deletes one value fewer than the nudge covers; kept for identical output.
            let drop = lose.saturating_sub(1).min(series.values.len());
            series.values.drain(..drop);
            series.values_per_point = vpp.max(1) as usize;
        }
    }
}

fn json(data: &mut [Series], opts: &Options) -> String {
    // graphite-web answers `[]` when every series is empty (`if any(data)`).
    if !data.iter().any(|s| !s.values.is_empty()) {
        return "[]".to_string();
    }
    if let Some(mdp) = opts.max_data_points {
        consolidate_for(data, mdp);
    }
    let (nl, ind) = if opts.pretty { ("\n", "  ") } else { ("", "") };
    let mut out = String::from("[");
    let mut first = true;
    for series in data.iter() {
        let values = if series.values_per_point > 1 {
            consolidate(
                &series.values,
                series.values_per_point,
                series.consolidation,
                series.x_files_factor,
            )
        } else {
            series.values.clone()
        };
        let stride = (series.step * series.values_per_point as i64).max(1);
        let mut points: Vec<(Option<f64>, i64)> = Vec::with_capacity(values.len());
        let mut ts = series.start;
        for v in values {
            if ts > series.end {
                break;
            }
            points.push((v, ts));
            ts += stride;
        }
        if opts.no_null_points {
            points.retain(|(v, _)| v.is_some_and(|x| !x.is_nan()));
            if points.is_empty() {
                continue;
            }
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        let _ = write!(
            out,
            "{nl}{ind}{{\"target\": {}, \"tags\": {{",
            json_str(&series.name)
        );
        for (i, (k, v)) in series.tags.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}: {}", json_str(k), json_str(v));
        }
        out.push_str("}, \"datapoints\": [");
        for (i, (v, ts)) in points.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "[{}, {ts}]", json_value(*v));
        }
        out.push_str("]}");
    }
    if !first {
        out.push_str(nl);
    }
    out.push(']');
    out
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// A value as graphite-web writes it: repr, NaN as null, infinities as ±1e9999.
fn json_value(v: Option<f64>) -> String {
    match v {
        None => "null".into(),
        Some(x) if x.is_nan() => "null".into(),
        Some(x) if x.is_infinite() => if x > 0.0 { "1e9999" } else { "-1e9999" }.into(),
        Some(x) => float_repr(x),
    }
}

fn csv(data: &[Series], zone: Zone) -> String {
    let mut out = String::new();
    for series in data {
        let name = csv_field(&series.name);
        for (i, v) in series.points().iter().enumerate() {
            let ts = series.start + i as i64 * series.step;
            let when = local_datetime(zone, ts)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let value = v.map(float_repr).unwrap_or_default();
            let _ = write!(out, "{name},{when},{value}\r\n");
        }
    }
    out
}

/// Python's csv module, excel dialect: quote a field holding a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn raw(data: &[Series]) -> String {
    let mut out = String::new();
    for series in data {
        let _ = write!(
            out,
            "{},{},{},{}|",
            series.name, series.start, series.end, series.step
        );
        let values: Vec<String> = series
            .points()
            .iter()
            .map(|v| v.map(float_repr).unwrap_or_else(|| "None".into()))
            .collect();
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// The pickle graphite-web's cluster peers read: a list of `getInfo()` dicts, protocol 2.
fn pickle(data: &[Series]) -> Vec<u8> {
    let mut p = Pickler(vec![0x80, 2]);
    p.0.push(b']'); // EMPTY_LIST
    if !data.is_empty() {
        p.0.push(b'('); // MARK
        for s in data {
            p.0.push(b'}'); // EMPTY_DICT
            p.0.push(b'(');
            p.str("name");
            p.str(&s.name);
            p.str("start");
            p.int(s.start);
            p.str("end");
            p.int(s.end);
            p.str("step");
            p.int(s.step);
            p.str("values");
            let values = s.points();
            p.0.push(b']');
            if !values.is_empty() {
                p.0.push(b'(');
                for v in values {
                    match v {
                        Some(x) => p.float(x),
                        None => p.0.push(b'N'),
                    }
                }
                p.0.push(b'e'); // APPENDS
            }
            p.str("pathExpression");
            p.str(&s.path_expression);
            p.str("valuesPerPoint");
            p.int(s.values_per_point as i64);
            p.str("consolidationFunc");
            p.str(s.consolidation.name());
            p.str("xFilesFactor");
            p.float(s.x_files_factor);
            p.0.push(b'u'); // SETITEMS
        }
        p.0.push(b'e');
    }
    p.0.push(b'.');
    p.0
}

struct Pickler(Vec<u8>);

impl Pickler {
    fn str(&mut self, s: &str) {
        self.0.push(b'X'); // BINUNICODE
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, i: i64) {
        if let Ok(small) = i32::try_from(i) {
            self.0.push(b'J'); // BININT
            self.0.extend_from_slice(&small.to_le_bytes());
        } else {
            let bytes = i.to_le_bytes();
            self.0.push(0x8a); // LONG1
            self.0.push(8);
            self.0.extend_from_slice(&bytes);
        }
    }

    fn float(&mut self, f: f64) {
        self.0.push(b'G'); // BINFLOAT
        self.0.extend_from_slice(&f.to_be_bytes());
    }
}
