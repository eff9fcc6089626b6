//! Render conformance: the same whisper files read by Carbide's render view (in process) and by
//! graphite-web 1.1.10 (the driver), and the answers compared. JSON bodies are compared as
//! parsed values, numbers exactly (or within a relative tolerance where float summation order
//! legitimately differs, which the call site states).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carbide::http::render::{render, RenderEnv};
use carbide::http::reply::Params;
use carbide::query::eval::Limits;
use carbide::query::store::{Names, Store};
use carbide::whisper::{self, CreateOptions, WriteOptions};
use serde_json::Value;

use super::graphite_web::GraphiteWeb;

/// The index, loaded afresh per request (tests add files between checks).
struct TreeNames {
    root: PathBuf,
}

impl Names for TreeNames {
    fn expand(&self, pattern: &str) -> Vec<String> {
        match carbide::index::Index::load_dir(&self.root) {
            Ok(index) => index.expand(pattern),
            Err(_) => Vec::new(),
        }
    }
}

pub struct RenderCompare {
    dir: tempfile::TempDir,
    gw: GraphiteWeb,
    pub now: i64,
}

impl RenderCompare {
    /// A temp whisper directory and graphite-web over it; every request pins `now`.
    pub fn new(now: i64) -> RenderCompare {
        let dir = tempfile::tempdir().expect("temp dir");
        let gw = GraphiteWeb::start(dir.path());
        RenderCompare { dir, gw, now }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Creates metric `name` (dots become directories) with whisper retention definitions
    /// such as `"60s:1d,300s:7d"` (or `"60:1440"`) and writes `points` (epoch, value) with
    /// update_many at this `now`.
    pub fn metric(&mut self, name: &str, retentions: &str, points: &[(i64, f64)]) {
        self.metric_with(name, retentions, "average", 0.5, points)
    }

    pub fn metric_with(
        &mut self,
        name: &str,
        retentions: &str,
        method: &str,
        x_files_factor: f64,
        points: &[(i64, f64)],
    ) {
        let archives: Vec<(u32, u32)> = retentions
            .split(',')
            .map(|d| whisper::retention::parse_retention_def(d.trim()).expect("retention"))
            .collect();
        let path = self
            .dir
            .path()
            .join(format!("{}.wsp", name.replace('.', "/")));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let opts = CreateOptions {
            x_files_factor,
            aggregation_method: method.parse().expect("aggregation method"),
            sparse: true,
            ..CreateOptions::default()
        };
        whisper::create(&path, &archives, &opts).expect("create whisper file");
        if !points.is_empty() {
            whisper::update_many(&path, points, Some(self.now), WriteOptions::default())
                .expect("update_many");
        }
    }

    /// Carbide's answer: (status, content type, body).
    pub fn carbide(&self, params: &[(&str, &str)]) -> (u16, String, String) {
        let (status, ctype, body) = self.carbide_bytes(params);
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    /// Carbide's answer with the body as bytes (pickle).
    pub fn carbide_bytes(&self, params: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
        self.carbide_limited(params, Limits::default(), 100)
    }

    /// Carbide's answer under the given per-request limits.
    pub fn carbide_limited(
        &self,
        params: &[(&str, &str)],
        limits: Limits,
        max_targets: usize,
    ) -> (u16, String, Vec<u8>) {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        let now = self.now.to_string();
        if !pairs.iter().any(|(k, _)| *k == "now") {
            pairs.push(("now", &now));
        }
        let names = Arc::new(TreeNames {
            root: self.dir.path().to_path_buf(),
        });
        let store = Store::new(self.dir.path(), names);
        let env = RenderEnv {
            source: &store,
            default_zone: chrono_tz::UTC,
            limits,
            max_targets,
            now: self.now,
        };
        let reply = render(&Params::from_pairs(&pairs), &env);
        (reply.status, reply.content_type, reply.body)
    }

    /// Python's unpickling of `bytes`, through the driver.
    pub fn unpickle(&mut self, bytes: &[u8]) -> Value {
        self.gw.unpickle(bytes)
    }

    /// graphite-web's answer: (status, content type, body).
    pub fn graphite(&mut self, params: &[(&str, &str)]) -> (u16, String, String) {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        let now = self.now.to_string();
        if !pairs.iter().any(|(k, _)| *k == "now") {
            pairs.push(("now", &now));
        }
        self.gw.http("GET", "/render", &pairs)
    }

    /// Both answers, for error cases and other formats.
    pub fn both(&mut self, params: &[(&str, &str)]) -> ((u16, String), (u16, String)) {
        let (cs, _, cb) = self.carbide(params);
        let (gs, _, gb) = self.graphite(params);
        ((cs, cb), (gs, gb))
    }

    /// `target` over `(from, until]` as JSON: Carbide's answer must equal graphite-web's exactly.
    pub fn check(&mut self, target: &str, from: &str, until: &str) {
        self.check_params(&[
            ("target", target),
            ("from", from),
            ("until", until),
            ("format", "json"),
        ]);
    }

    pub fn check_params(&mut self, params: &[(&str, &str)]) {
        self.compare(params, 0.0)
    }

    /// Like `check`, values within `rel` relative difference (say why at the call site).
    pub fn check_approx(&mut self, target: &str, from: &str, until: &str, rel: f64) {
        self.compare(
            &[
                ("target", target),
                ("from", from),
                ("until", until),
                ("format", "json"),
            ],
            rel,
        )
    }

    pub fn compare(&mut self, params: &[(&str, &str)], rel: f64) {
        let (cs, _, cb) = self.carbide(params);
        let (gs, _, gb) = self.graphite(params);
        assert_eq!(
            gs,
            200,
            "graphite-web answered {gs} for {params:?}: {}",
            truncate(&gb)
        );
        assert_eq!(
            cs,
            200,
            "carbide answered {cs} for {params:?}: {cb}\ngraphite-web: {}",
            truncate(&gb)
        );
        let c = parse_json(&cb);
        let g = parse_json(&gb);
        if let Err(why) = same(&c, &g, rel, "$") {
            panic!(
                "render differs for {params:?}: {why}\ncarbide:      {}\ngraphite-web: {}",
                truncate(&cb),
                truncate(&gb)
            );
        }
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 3000 {
        let cut = (0..=3000)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s.to_string()
    }
}

/// Parses graphite-web's JSON, where infinities are written `1e9999`.
pub fn parse_json(body: &str) -> Value {
    let fixed = body
        .replace("-1e9999", "\"-inf\"")
        .replace("1e9999", "\"inf\"");
    serde_json::from_str(&fixed).unwrap_or_else(|e| panic!("not JSON ({e}): {}", truncate(body)))
}

/// Structural equality; numbers equal exactly or within `rel`.
pub fn same(a: &Value, b: &Value, rel: f64, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            let ok = x == y || (rel > 0.0 && (x - y).abs() <= rel * x.abs().max(y.abs()));
            if ok {
                Ok(())
            } else {
                Err(format!("{at}: {x} != {y}"))
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{at}: {} items != {} items", x.len(), y.len()));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, rel, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(x), Value::Object(y)) => {
            let xk: Vec<_> = x.keys().collect();
            let yk: Vec<_> = y.keys().collect();
            if xk != yk {
                return Err(format!("{at}: keys {xk:?} != {yk:?}"));
            }
            for (k, v) in x {
                same(v, &y[k], rel, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{at}: {a} != {b}")),
    }
}
