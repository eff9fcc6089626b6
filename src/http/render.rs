//! `/render`: graphite-web's render view for the text formats. Parameters come merged from the
//! query string and the form body; targets are evaluated by `query`, then consolidated for
//! `maxDataPoints` and written as json (Grafana's shape), jsonp, csv, raw or pickle.

use std::fmt::Write as _;
use std::io::Write as _;

use super::reply::{Params, Reply};
use crate::python::format::{float_repr_into, push_float_repr, push_int};
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
        "json" => {
            let body = json(&mut data, opts);
            Ok(match opts.jsonp.as_deref() {
                None => Reply::json(body),
                Some(cb) => {
                    Reply::json_or_jsonp(String::from_utf8_lossy(&body).into_owned(), Some(cb))
                }
            })
        }
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

/// Bytes one datapoint `[v, ts]` with its separator usually takes, to size the buffer once.
const POINT_BYTES: usize = 24;

fn json(data: &mut [Series], opts: &Options) -> Vec<u8> {
    // graphite-web answers `[]` when every series is empty (`if any(data)`).
    if !data.iter().any(|s| !s.values.is_empty()) {
        return b"[]".to_vec();
    }
    if let Some(mdp) = opts.max_data_points {
        consolidate_for(data, mdp);
    }
    let (nl, ind): (&[u8], &[u8]) = if opts.pretty {
        (b"\n", b"  ")
    } else {
        (b"", b"")
    };
    let points: usize = data.iter().map(|s| s.values.len()).sum();
    let mut out = Vec::with_capacity(64 + points * POINT_BYTES + data.len() * 128);
    out.push(b'[');
    let mut first = true;
    for series in data.iter() {
        let consolidated;
        let values: &[Option<f64>] = if series.values_per_point > 1 {
            consolidated = consolidate(
                &series.values,
                series.values_per_point,
                series.consolidation,
                series.x_files_factor,
            );
            &consolidated
        } else {
            &series.values
        };
        let stride = (series.step * series.values_per_point as i64).max(1);
        // graphite-web zips the values with range(start, end, stride): points past `end` go.
        let shown = if series.end < series.start {
            0
        } else {
            (((series.end - series.start) / stride + 1) as usize).min(values.len())
        };
        let values = &values[..shown];
        let keep = |v: &Option<f64>| !opts.no_null_points || v.is_some_and(|x| !x.is_nan());
        if opts.no_null_points && !values.iter().any(keep) {
            continue;
        }
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(nl);
        out.extend_from_slice(ind);
        out.extend_from_slice(b"{\"target\": ");
        json_str(&mut out, &series.name);
        out.extend_from_slice(b", \"tags\": {");
        for (i, (k, v)) in series.tags.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            json_str(&mut out, k);
            out.extend_from_slice(b": ");
            json_str(&mut out, v);
        }
        out.extend_from_slice(b"}, \"datapoints\": [");
        write_points(&mut out, values, series.start, stride, opts.no_null_points);
        out.extend_from_slice(b"]}");
    }
    if !first {
        out.extend_from_slice(nl);
    }
    out.push(b']');
    out
}

/// Room one `, [<value>, <ts>]` needs: 3 + 32 (repr buffer) + 24 (timestamp text).
const POINT_ROOM: usize = 64;

/// The datapoints of one series, `[v, ts]` joined by `, `. The buffer is filled through
/// fixed-size block copies (no per-value length checks or small variable-length copies), then
/// cut to what was written: at 8,640 points a request this loop is most of the render's time.
fn write_points(
    out: &mut Vec<u8>,
    values: &[Option<f64>],
    start: i64,
    stride: i64,
    no_null_points: bool,
) {
    // Zeroed room is added a block at a time, so little more is cleared than gets written.
    const BLOCK: usize = 64 * POINT_ROOM;
    let mut pos = out.len();
    let mut ts = Timestamps::new(start, stride);
    let mut any = false;
    for v in values {
        let kept = !no_null_points || v.is_some_and(|x| !x.is_nan());
        if kept {
            if out.len() < pos + POINT_ROOM {
                out.resize(pos + BLOCK, 0);
            }
            let room = &mut out[pos..pos + POINT_ROOM];
            let mut n = if any {
                room[..3].copy_from_slice(b", [");
                3
            } else {
                room[0] = b'[';
                1
            };
            any = true;
            if let Ok(buf) = <&mut [u8; 32]>::try_from(&mut room[n..n + 32]) {
                n += json_value_into(*v, buf);
            }
            room[n..n + 24].copy_from_slice(&ts.text);
            pos += n + ts.len;
        }
        ts.advance();
    }
    out.truncate(pos);
}

/// A value as graphite-web writes it: repr, NaN and None as null, infinities as ±1e9999.
fn json_value_into(v: Option<f64>, buf: &mut [u8; 32]) -> usize {
    let text: &[u8] = match v {
        Some(x) if x.is_finite() => return float_repr_into(x, buf),
        Some(x) if x.is_infinite() && x > 0.0 => b"1e9999",
        Some(x) if x.is_infinite() => b"-1e9999",
        _ => b"null",
    };
    buf[..text.len()].copy_from_slice(text);
    text.len()
}

/// A series' timestamps as the text `, <ts>]`, stepped by adding the stride's digits in place:
/// consecutive timestamps share all but their last few digits, so this beats converting each.
struct Timestamps {
    /// `, <ts>]` left-aligned; `len` bytes of it are meaningful (at most 23).
    text: [u8; 24],
    len: usize,
    /// The stride's digits, right-aligned, and how many there are.
    stride: [u8; 20],
    stride_len: usize,
    value: i64,
    step: i64,
}

impl Timestamps {
    fn new(start: i64, step: i64) -> Timestamps {
        let mut t = Timestamps {
            text: [0; 24],
            len: 0,
            stride: [0; 20],
            stride_len: 0,
            value: start,
            step,
        };
        let mut s = step.unsigned_abs();
        while s > 0 {
            t.stride_len += 1;
            t.stride[20 - t.stride_len] = (s % 10) as u8;
            s /= 10;
        }
        t.load();
        t
    }

    /// Writes `value` from scratch.
    fn load(&mut self) {
        let mut text = Vec::with_capacity(24);
        text.extend_from_slice(b", ");
        push_int(&mut text, self.value);
        text.push(b']');
        self.len = text.len();
        self.text[..self.len].copy_from_slice(&text);
    }

    fn advance(&mut self) {
        let before = self.value;
        self.value = self.value.saturating_add(self.step);
        if before < 0 || self.step <= 0 || self.value == i64::MAX {
            self.load();
            return;
        }
        // Digits are text[2..len - 1]; add the stride from the last one leftwards.
        let digits = self.len - 3;
        let last = self.len - 2;
        let mut carry = 0u8;
        let mut j = 0;
        loop {
            let add = if j < self.stride_len {
                self.stride[19 - j]
            } else {
                0
            };
            if add == 0 && carry == 0 && j >= self.stride_len {
                return;
            }
            if j >= digits {
                // The sum has more digits than the text: rewrite it.
                self.load();
                return;
            }
            let i = last - j;
            let d = self.text[i] - b'0' + add + carry;
            carry = u8::from(d >= 10);
            self.text[i] = b'0' + if d >= 10 { d - 10 } else { d };
            j += 1;
        }
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

fn csv(data: &[Series], zone: Zone) -> Vec<u8> {
    let mut out = Vec::new();
    for series in data {
        let name = csv_field(&series.name);
        for (i, v) in series.points().iter().enumerate() {
            let ts = series.start + i as i64 * series.step;
            let when = local_datetime(zone, ts)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            out.extend_from_slice(name.as_bytes());
            out.push(b',');
            out.extend_from_slice(when.as_bytes());
            out.push(b',');
            if let Some(x) = v {
                push_float_repr(&mut out, *x);
            }
            out.extend_from_slice(b"\r\n");
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

fn raw(data: &[Series]) -> Vec<u8> {
    let mut out = Vec::new();
    for series in data {
        let _ = write!(
            out,
            "{},{},{},{}|",
            series.name, series.start, series.end, series.step
        );
        for (i, v) in series.points().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match v {
                Some(x) => push_float_repr(&mut out, *x),
                None => out.extend_from_slice(b"None"),
            }
        }
        out.push(b'\n');
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_step_like_integers() {
        let starts = [
            -1_000,
            -95,
            -10,
            -1,
            0,
            1,
            5,
            9,
            95,
            999,
            1_000,
            99_990,
            1_699_913_600,
            9_999_999_990,
            i64::MAX - 500,
        ];
        for start in starts {
            for stride in [1, 7, 10, 60, 100, 3_600, 86_400, 1_000_000] {
                let mut ts = Timestamps::new(start, stride);
                let mut value = start;
                for _ in 0..300 {
                    assert_eq!(
                        String::from_utf8_lossy(&ts.text[..ts.len]),
                        format!(", {value}]"),
                        "{start} + n * {stride}"
                    );
                    ts.advance();
                    value = value.saturating_add(stride);
                }
            }
        }
    }
}
