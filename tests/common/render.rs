//! Render conformance: the same whisper files read by Carbide's render view (in process) and by
//! graphite-web 1.1.10 (the driver), and the answers compared. JSON bodies are compared as
//! parsed values, numbers exactly (or within a relative tolerance where float summation order
//! legitimately differs, which the call site states).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use carbide::http::render::{render, RenderEnv};
use carbide::http::reply::Params;
use carbide::query::eval::Limits;
use carbide::query::functions::FunctionDef;
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

/// A RenderCompare shared by every test of one test binary (graphite-web takes seconds to
/// start), made by `build` on first use; a test that panicked does not poison it for the rest.
pub fn shared(build: impl FnOnce() -> RenderCompare) -> MutexGuard<'static, RenderCompare> {
    static SHARED: OnceLock<Mutex<RenderCompare>> = OnceLock::new();
    SHARED
        .get_or_init(|| Mutex::new(build()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// `n` points `step` apart ending at `now`; `f(i)` gives the value of the i-th point counted
/// from the oldest (None leaves a gap).
pub fn points_oldest_first(
    now: i64,
    n: i64,
    step: i64,
    f: impl Fn(i64) -> Option<f64>,
) -> Vec<(i64, f64)> {
    (0..n)
        .filter_map(|i| f(i).map(|v| (now - (n - 1 - i) * step, v)))
        .collect()
}

/// `n` points `step` apart ending at `now`; `f(i)` gives the value `i` steps before `now`
/// (None leaves a gap).
pub fn points_back(now: i64, n: i64, step: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    (0..n)
        .filter_map(|i| f(i).map(|v| (now - i * step, v)))
        .collect()
}

/// A wobbly value with a few decimals, so averages and sums are not trivially exact.
pub fn wobble(i: i64) -> f64 {
    ((i * 37) % 101) as f64 * 0.37 + (i % 7) as f64 - 3.0
}

/// Each function's `/functions/<name>` entry (parameters, types, defaults, suggestions, group,
/// signature) must equal graphite-web's; only the description is our own.
pub fn functions_match_graphite_web(defs: &[FunctionDef]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut gw = GraphiteWeb::start(dir.path());
    let strip = |mut v: Value| {
        if let Some(m) = v.as_object_mut() {
            m.remove("description");
        }
        v
    };
    for def in defs {
        let path = format!("/functions/{}", def.name);
        let (gs, _, gb) = gw.http("GET", &path, &[]);
        assert_eq!(gs, 200, "{path}: {gb}");
        let reply = carbide::http::functions::details(def.name, &Params::from_pairs(&[]));
        let cb = String::from_utf8_lossy(&reply.body).into_owned();
        let (c, g) = (strip(parse_json(&cb)), strip(parse_json(&gb)));
        if let Err(why) = same(&c, &g, 0.0, "$") {
            panic!("{path}: {why}\ncarbide:      {cb}\ngraphite-web: {gb}");
        }
    }
}

/// Literal names only: the file exists or not.
struct LiteralNames(PathBuf);

impl Names for LiteralNames {
    fn expand(&self, pattern: &str) -> Vec<String> {
        let file = self.0.join(format!("{}.wsp", pattern.replace('.', "/")));
        if file.exists() {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        }
    }
}

/// Carbide's render answer (status, body) over the whisper files under `root`, with `zone` as
/// the server zone and `now` pinned.
pub fn carbide_in_zone(
    root: &Path,
    zone: chrono_tz::Tz,
    now: i64,
    params: &[(&str, &str)],
) -> (u16, String) {
    let mut pairs = params.to_vec();
    let now_s = now.to_string();
    pairs.push(("now", &now_s));
    let store = Store::new(root, Arc::new(LiteralNames(root.to_path_buf())));
    let env = RenderEnv {
        source: &store,
        default_zone: zone,
        limits: Limits::default(),
        max_targets: 100,
        now,
    };
    let reply = render(&Params::from_pairs(&pairs), &env);
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

/// Each `(target, from, until)` rendered as JSON at `now` by Carbide with server zone `zone` and
/// by `gw` (started in the same zone over `root`, requests without `tz`): equal exactly.
pub fn check_in_zone(
    gw: &mut GraphiteWeb,
    root: &Path,
    zone: chrono_tz::Tz,
    now: i64,
    cases: &[(&str, &str, &str)],
) {
    for &(target, from, until) in cases {
        let params = [
            ("target", target),
            ("from", from),
            ("until", until),
            ("format", "json"),
        ];
        let (cs, cb) = carbide_in_zone(root, zone, now, &params);
        let now_s = now.to_string();
        let mut gparams = params.to_vec();
        gparams.push(("now", &now_s));
        let (gs, _, gb) = gw.http("GET", "/render", &gparams);
        assert_eq!((cs, gs), (200, 200), "{target}: {cb} / {gb}");
        if let Err(why) = same(&parse_json(&cb), &parse_json(&gb), 0.0, "$") {
            panic!("{target} {from} {until}: {why}\ncarbide:      {cb}\ngraphite-web: {gb}");
        }
    }
}

impl RenderCompare {
    /// Series under `prefix`, ending at `now`: a full 60 s one, one with leading/trailing/inner
    /// gaps, an all-null one, and a 300 s one (different step).
    pub fn wobbly_series(&mut self, prefix: &str) {
        let now = self.now;
        let points = |n, step, f: &dyn Fn(i64) -> Option<f64>| points_oldest_first(now, n, step, f);
        self.metric(
            &format!("{prefix}.full"),
            "60s:1d,300s:7d",
            &points(3000, 60, &|i| Some(wobble(i))),
        );
        self.metric(
            &format!("{prefix}.gaps"),
            "60s:1d,300s:7d",
            &points(3000, 60, &|i| {
                let leading = i < 2900;
                let trailing = i > 2990;
                let inner = (2930..2940).contains(&i) || i % 9 == 4;
                (!(leading || trailing || inner)).then(|| wobble(i) * 2.5)
            }),
        );
        self.metric(&format!("{prefix}.nulls"), "60s:1d,300s:7d", &[]);
        self.metric(
            &format!("{prefix}.coarse"),
            "300s:7d",
            &points(600, 300, &|i| (i % 11 != 5).then(|| wobble(i) + 0.5)),
        );
    }
}

/// Each function's `/functions` metadata (name, function, group, params) must equal
/// graphite-web's recorded answer (spec/functions-graphite-web-1.1.10.json); the description
/// is our own. Returns how many functions were compared.
pub fn metadata_matches_spec<'a>(defs: impl IntoIterator<Item = &'a FunctionDef>) -> usize {
    let path = super::shared_dir().join("spec/functions-graphite-web-1.1.10.json");
    let text = std::fs::read_to_string(&path).expect("read the /functions spec");
    // Python's json module wrote infinite defaults as `Infinity`.
    let spec: Value = serde_json::from_str(&text.replace("Infinity", "1e308")).expect("spec JSON");
    let mut count = 0;
    for def in defs {
        let info = carbide::http::functions::info(def);
        let want = &spec[def.name];
        assert!(
            want.is_object(),
            "{} is not a graphite-web function",
            def.name
        );
        for key in ["name", "function", "group", "params"] {
            assert_eq!(info[key], want[key], "{}: {key}", def.name);
        }
        count += 1;
    }
    count
}
