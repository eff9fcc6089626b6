//! The metric index and the /metrics views against graphite-web 1.1.10: whisper trees in a temp
//! directory are loaded into `Index`, and every answer of `/metrics/find` (treejson, json,
//! completer, nodelist, pickle, msgpack), `/metrics/expand` and `/metrics/index.json` is
//! compared with graphite-web's over the same directory. JSON is compared parsed; pickle
//! opcode by opcode and msgpack value by value, floats (the leaves' intervals, which depend on
//! the clock) within a tolerance.
//!
//! graphite-web leaves some orders to chance (it shuffles nodes before a stable sort by last
//! node); where it does, the comparison accepts any of its outcomes and checks that ours is
//! the documented one.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use carbide::http::reply::{Params, Reply};
use carbide::index::Index;
use carbide::ingest::name::relative_path;
use carbide::whisper::{self, CreateOptions};
use common::graphite_web::GraphiteWeb;
use serde_json::{json, Value};

use carbide::http::metrics;
use metrics::MetricsEnv;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    gw: GraphiteWeb,
    index: Index,
    oracle: Oracle,
}

fn create(root: &Path, rel: &Path) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    if !path.exists() {
        whisper::create(&path, &[(60, 1440)], &CreateOptions::default()).expect("create whisper");
    }
}

/// A whisper file for a metric name, where carbon would put it.
fn metric(root: &Path, name: &str) {
    create(root, &relative_path(name).expect("valid name"));
}

/// The hand-picked tree: every case has its own top-level node.
const NAMES: &[&str] = &[
    "servers.web1.cpu",
    "servers.web2.cpu",
    "servers.web10.cpu",
    "servers.web1.mem.free",
    "servers.db1.mem.free",
    "servers.cpu",
    "servers.cpu.user",
    "servers.cpu.system",
    "both.x",
    "both.x.y",
    "both.z",
    "123.456.789",
    "123.456",
    "n.0",
    "n.01",
    "n.10",
    "n.1a",
    "sp.a+b",
    "sp.c%41",
    "sp.%e2%82",
    "sp.é",
    "sp.日本",
    "sp.x-y",
    "sp.x_y",
    "sp.a{b",
    "sp.a}b",
    "sp.a,b",
    "sp.[x]",
    "sp.!x",
    "sp.^x",
    "sp.a b",
    "Case.A",
    "case.a",
    "case.B",
    "cpu.cpu0",
    "cpu.cpu1",
    "cpu.cpu10",
    "cpu.cpu2x",
    "cpu.cpu-user",
    "cpu.cpu-sys",
    "cpu.cpuA",
    "esc.aXb",
    "esc.a*b",
    "esc.cd",
    "deep.a.b.c.d.e",
    "deep.a.x.c.d.f",
    "deep.b.b.c.d.e",
    "_tagged",
    "tag.m;a=1",
    "tag.m;a=1;b=x.y",
];

/// Things Carbide never writes but a graphite directory may hold.
fn extras(root: &Path) {
    for d in ["emptydir", "hid/emptysub"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    create(root, Path::new("hid/vis.wsp"));
    create(root, Path::new("hid/.dot.wsp"));
    create(root, Path::new("hid/.hidden/x.wsp"));
    create(root, Path::new(".top.wsp"));
    std::fs::write(root.join("hid/notes.txt"), "x").expect("write");
}

/// A small xorshift generator: the random cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Node names per level of the random tree `r.*`.
fn random_pools(rng: &mut Rng) -> Vec<Vec<String>> {
    const ALPHABET: &[char] = &['a', 'b', 'c', '1', '2', '_', '-'];
    (0..5)
        .map(|_| {
            let mut pool: Vec<String> = (0..10)
                .map(|_| {
                    let len = 1 + rng.below(3);
                    (0..len).map(|_| *rng.pick(ALPHABET)).collect()
                })
                .collect();
            pool.sort();
            pool.dedup();
            pool
        })
        .collect()
}

fn random_names(rng: &mut Rng, pools: &[Vec<String>]) -> Vec<String> {
    (0..400)
        .map(|_| {
            let depth = 1 + rng.below(4);
            let mut nodes = vec!["r".to_string()];
            for level in pools.iter().take(depth) {
                nodes.push(rng.pick(level).clone());
            }
            nodes.join(".")
        })
        .collect()
}

/// One node of a random pattern, built around a name of the level.
fn random_node(rng: &mut Rng, pool: &[String]) -> String {
    let n = rng.pick(pool).clone();
    let m = rng.pick(pool).clone();
    let first = n.chars().next().unwrap_or('a');
    let last = n.chars().last().unwrap_or('a');
    match rng.below(22) {
        0..=3 => n,
        4 | 5 => "*".into(),
        6 => format!("{first}*"),
        7 => format!("*{last}"),
        8 => n
            .chars()
            .map(|c| if c == first { '?' } else { c })
            .collect(),
        9 => format!("[abc]{}", n.get(first.len_utf8()..).unwrap_or("")),
        10 => "[!a]*".into(),
        11 => format!("{{{n},{m}}}"),
        12 => format!("{{{n},{m}*}}"),
        13 => format!("{{{first}{{1,2}},{m}}}"),
        14 => "[a-c]?*".into(),
        15 => "[0-9]*".into(),
        16 => "*[_-]*".into(),
        17 => format!("{{{first},{m}}}*"),
        18 => "[c-a]*".into(),
        19 => "?".into(),
        20 => "??*".into(),
        _ => format!("{first}[!{last}]"),
    }
}

fn random_patterns(rng: &mut Rng, pools: &[Vec<String>]) -> Vec<String> {
    (0..300)
        .map(|_| {
            let depth = 1 + rng.below(5);
            let mut nodes = vec!["r".to_string()];
            for level in 0..depth {
                let pool = pools.get(level).unwrap_or(&pools[0]);
                nodes.push(random_node(rng, pool));
            }
            let mut p = nodes.join(".");
            match rng.below(25) {
                0 => p.push('.'),
                1 => p = p.replacen('.', "..", 2),
                2 => p = format!("r.**.{}", random_node(rng, &pools[2])),
                _ => {}
            }
            p
        })
        .collect()
}

fn fixture() -> MutexGuard<'static, Fixture> {
    static FX: OnceLock<Mutex<Fixture>> = OnceLock::new();
    let m = FX.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("whisper");
        std::fs::create_dir_all(&root).expect("mkdir");
        for name in NAMES {
            metric(&root, name);
        }
        extras(&root);
        // Enough leaves for answers of several pickle frames.
        for h in 0..40 {
            for m in 0..50 {
                let rel = relative_path(&format!("big.h{h}.m{m}")).expect("name");
                let path = root.join(rel);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                whisper::create(&path, &[(60, 10)], &CreateOptions::default()).expect("create");
            }
        }
        let mut rng = Rng(0x5eed_1d3a_f00d_cafe);
        let pools = random_pools(&mut rng);
        for name in random_names(&mut rng, &pools) {
            metric(&root, &name);
        }
        let index = Index::load_dir(&root).expect("load");
        let gw = GraphiteWeb::start(&root);
        let oracle = Oracle::start(&root);
        Mutex::new(Fixture {
            _dir: dir,
            root,
            gw,
            index,
            oracle,
        })
    });
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fixture {
    fn ours(&self, view: &str, params: &[(&str, &str)]) -> Reply {
        let params = Params::from_pairs(params);
        let root = self.root.clone();
        let now = metrics::time_now();
        let read = move |rel: &Path| metrics::whisper_intervals(&root, rel, now);
        let mut env = MetricsEnv::new(chrono_tz::UTC);
        env.intervals = Some(&read);
        match view {
            "/metrics/find" => metrics::find(&self.index, &params, &env),
            "/metrics/expand" => metrics::expand(&self.index, &params, &env),
            "/metrics/index.json" => metrics::index_json(&self.index, &params, &env),
            other => panic!("no view {other}"),
        }
    }

    fn theirs(&mut self, view: &str, params: &[(&str, &str)]) -> (u16, String, String) {
        self.gw.http("GET", view, params)
    }

    /// Both answers; status and content type must agree.
    fn both(&mut self, view: &str, params: &[(&str, &str)]) -> (String, String) {
        let ours = self.ours(view, params);
        let (status, ctype, body) = self.theirs(view, params);
        let ours_body = String::from_utf8(ours.body).expect("utf-8 body");
        assert_eq!(
            (ours.status, ours.content_type.as_str()),
            (status, ctype.as_str()),
            "{view} {params:?}: ours {ours_body:?}, graphite-web {body:?}"
        );
        (ours_body, body)
    }

    /// Same status, and for anything but a 500 the same body (graphite-web's 500 is a
    /// traceback page).
    fn same_text(&mut self, view: &str, params: &[(&str, &str)]) {
        let ours = self.ours(view, params);
        let (status, ctype, body) = self.theirs(view, params);
        let ours_body = String::from_utf8(ours.body).expect("utf-8 body");
        assert_eq!(
            ours.status, status,
            "{view} {params:?}: {ours_body} / {body}"
        );
        if status != 500 {
            assert_eq!(ours.content_type, ctype, "{view} {params:?}");
            assert_eq!(ours_body, body, "{view} {params:?}");
        }
    }

    fn json_of(&mut self, view: &str, params: &[(&str, &str)]) -> (Value, Value) {
        let (a, b) = self.both(view, params);
        let parse = |s: &str| -> Value {
            serde_json::from_str(s).unwrap_or_else(|e| panic!("{view} {params:?}: {e}: {s:?}"))
        };
        (parse(&a), parse(&b))
    }

    /// Every format of a find, and expand, for one query.
    fn check_query(&mut self, query: &str) {
        self.check_json(query);
        self.check_treejson(query, &[]);
        self.check_treejson(query, &[("wildcards", "1")]);
        self.check_treejson(query, &[("leavesOnly", "1")]);
        self.check_completer(query);
        for leaves in ["0", "1"] {
            let (ours, theirs) = self.json_of(
                "/metrics/expand",
                &[("query", query), ("leavesOnly", leaves)],
            );
            assert_eq!(ours, theirs, "expand {query:?} leavesOnly={leaves}");
        }
        let ours = self.index.expand(query);
        let (_, _, body) = self.theirs("/metrics/expand", &[("query", query), ("leavesOnly", "1")]);
        let theirs: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            json!({ "results": ours }),
            theirs,
            "Index::expand({query:?})"
        );
    }

    /// format=json: the same nodes in the same order (graphite-web orders a branch and a leaf
    /// of one path by chance; we put the branch first), intervals within the clock's drift.
    fn check_json(&mut self, query: &str) -> Vec<Value> {
        let (ours, theirs) = self.json_of("/metrics/find", &[("query", query), ("format", "json")]);
        let (Value::Array(ours), Value::Array(mut theirs)) = (ours, theirs) else {
            panic!("json find {query:?}: not lists");
        };
        let key = |v: &Value| {
            (
                v["path"].as_str().unwrap_or("").to_string(),
                v["is_leaf"] == true,
            )
        };
        theirs.sort_by_key(key);
        let mut sorted = ours.clone();
        sorted.sort_by_key(key);
        assert_eq!(ours, sorted, "json find {query:?}: our order");
        assert_eq!(
            ours.len(),
            theirs.len(),
            "json find {query:?}: {ours:?} / {theirs:?}"
        );
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(key(a), key(b), "json find {query:?}: {ours:?} / {theirs:?}");
            same_intervals(&a["intervals"], &b["intervals"], query);
        }
        theirs
    }

    fn check_treejson(&mut self, query: &str, extra: &[(&str, &str)]) {
        let mut params = vec![("query", query)];
        params.extend_from_slice(extra);
        let (ours, theirs) = self.json_of("/metrics/find", &params);
        // Names that are a branch and a leaf among the matches: graphite-web keeps one of the
        // two by chance, we keep the branch.
        let mut json_params = vec![("query", query), ("format", "json")];
        json_params.extend_from_slice(extra);
        let (_, _, body) = self.theirs("/metrics/find", &json_params);
        let nodes: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        let mut kinds: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for n in &nodes {
            let path = n["path"].as_str().unwrap_or("");
            let name = path.rsplit('.').next().unwrap_or("").to_string();
            let e = kinds.entry(name).or_default();
            if n["is_leaf"] == true {
                e.1 = true;
            } else {
                e.0 = true;
            }
        }
        let base = match query.rsplit_once('.') {
            Some((h, _)) => format!("{h}."),
            None => String::new(),
        };
        let Value::Array(theirs) = theirs else {
            panic!("treejson {query:?}: not a list");
        };
        let wildcard = extra.contains(&("wildcards", "1")) && nodes.len() > 1;
        let (head, rest) = theirs.split_at(usize::from(wildcard));
        let mut branches = Vec::new();
        let mut leaves = Vec::new();
        for v in rest {
            let id = v["id"].as_str().unwrap_or("");
            let name = id.strip_prefix(base.as_str()).unwrap_or(id);
            let mut v = v.clone();
            if kinds.get(name) == Some(&(true, true)) {
                v["allowChildren"] = json!(1);
                v["expandable"] = json!(1);
                v["leaf"] = json!(0);
            }
            if v["leaf"] == 1 {
                leaves.push(v);
            } else {
                branches.push(v);
            }
        }
        // A flipped leaf joins the branches at its place in last-node order.
        let by_name = |v: &Value| v["id"].as_str().unwrap_or("").to_string();
        branches.sort_by_key(by_name);
        let mut expected: Vec<Value> = head.to_vec();
        expected.extend(branches);
        expected.extend(leaves);
        assert_eq!(ours, Value::Array(expected), "treejson {query:?} {extra:?}");
    }

    /// completer: graphite-web's order among equal last nodes is chance, so compare as
    /// multisets and check both are in last-node order.
    fn check_completer(&mut self, query: &str) {
        let (ours, theirs) = self.json_of(
            "/metrics/find",
            &[("query", query), ("format", "completer")],
        );
        let list =
            |v: &Value| -> Vec<Value> { v["metrics"].as_array().cloned().unwrap_or_default() };
        let (a, b) = (list(&ours), list(&theirs));
        let names = |l: &[Value]| -> Vec<String> {
            l.iter()
                .filter(|v| v.get("path").is_some())
                .map(|v| v["name"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let mut sorted = names(&a);
        sorted.sort();
        assert_eq!(names(&a), sorted, "completer {query:?}: our order");
        let mut sa: Vec<String> = a.iter().map(Value::to_string).collect();
        let mut sb: Vec<String> = b.iter().map(Value::to_string).collect();
        sa.sort();
        sb.sort();
        assert_eq!(sa, sb, "completer {query:?}");
    }
}

fn same_intervals(a: &Value, b: &Value, query: &str) {
    match (a, b) {
        (Value::Null, Value::Null) => {}
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "intervals for {query:?}");
            for (x, y) in a.iter().zip(b) {
                let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                // The start is the clock minus the retention, read at two moments.
                assert!(
                    (f(x, "start") - f(y, "start")).abs() < 30.0,
                    "{query:?}: {x} / {y}"
                );
                // The end is the file's modification time, read from the same file.
                assert_eq!(f(x, "end"), f(y, "end"), "{query:?}: {x} / {y}");
            }
        }
        _ => panic!("intervals for {query:?}: {a} / {b}"),
    }
}

const HAND_PICKED: &[&str] = &[
    "*",
    "servers",
    "servers.*",
    "servers.web1.*",
    "servers.",
    "servers..cpu",
    "servers..",
    ".servers",
    ".",
    "servers.*.cpu",
    "servers.web*.cpu",
    "servers.web?.cpu",
    "servers.web[12].cpu",
    "servers.web[!1].cpu",
    "servers.web[0-9]*.cpu",
    "servers.{web1,db1}.mem.free",
    "servers.{web{1,2},db1}.*",
    "servers.{web1,web1*}.cpu",
    "servers.{,web1}.cpu",
    "servers.{}",
    "servers.cpu",
    "servers.cpu.*",
    "servers.*.*",
    "servers.*.*.*",
    "servers.nothing",
    "nothing.*",
    "servers.web1.cpu.x",
    "both.*",
    "both.x",
    "*.x",
    "*.*",
    "123.*",
    "123.456",
    "123.45?",
    "n.*",
    "n.0*",
    "n.[0-9]",
    "n.[0-9][0-9]",
    "n.1?",
    "sp.*",
    "sp.a+b",
    "sp.c%41",
    "sp.[!a-z]*",
    "sp.[[]*",
    "sp.[]]*",
    "sp.[^x]*",
    "sp.{a{b,a}b}",
    "sp.a{b",
    "sp.a,b",
    "sp.{a,b}",
    "sp.x[-_]y",
    "sp.x[_-]y",
    "sp.[z-a]*",
    "sp.[!z-a]*",
    "sp.é",
    "sp.?",
    "sp.??",
    "sp.日*",
    "sp.*b",
    "sp.a b",
    "Case.*",
    "case.*",
    "[Cc]ase.*",
    "cpu.cpu*",
    "cpu.cpu{1,2}*",
    "cpu.cpu[0-9]",
    "cpu.cpu-{user,sys}",
    "cpu.cpu{-user,-sys,0}",
    "cpu.*u*",
    "cpu.*[0-9]",
    "cpu.**",
    "esc.*",
    "esc.a*b",
    "esc.a\\*b",
    "esc.a\\?b",
    "esc.\\{cd}",
    "esc.c\\d",
    "deep.**",
    "deep.**.e",
    "deep.a.**.d.*",
    "deep.**.c.**",
    "**.e",
    "deep.*.*.c.d.e",
    "_tagged",
    "_tagged.*",
    "_tagged.*.*",
    "_tagged.*.*.*",
    "tag.*",
    "tag.m;a=1",
    "tag.m;a=1;b=x.y",
    "tag.m;a=2",
    "tag.m;a=*",
    "emptydir",
    "emptydir.*",
    "hid.*",
    "hid.vis",
    "hid.notes",
    "r",
    "r.*",
    "r.*.*",
];

#[test]
fn hand_picked_queries() {
    let mut fx = fixture();
    for q in HAND_PICKED {
        fx.check_query(q);
    }
}

#[test]
fn random_queries() {
    let mut fx = fixture();
    let mut rng = Rng(0x5eed_1d3a_f00d_cafe);
    let pools = random_pools(&mut rng);
    let _ = random_names(&mut rng, &pools);
    let patterns = random_patterns(&mut rng, &pools);
    let mut nonempty = 0;
    for p in &patterns {
        fx.check_json(p);
        fx.check_treejson(p, &[]);
        fx.check_completer(p);
        let (ours, theirs) = fx.json_of("/metrics/expand", &[("query", p), ("leavesOnly", "1")]);
        assert_eq!(ours, theirs, "expand {p:?}");
        if ours["results"].as_array().is_some_and(|l| !l.is_empty()) {
            nonempty += 1;
        }
    }
    // The generator must produce patterns that match, not only misses.
    assert!(
        nonempty > patterns.len() / 4,
        "{nonempty} of {} match",
        patterns.len()
    );
}

#[test]
fn hidden_entries() {
    let mut fx = fixture();
    // graphite-web skips a hidden entry as the last node, and so do we.
    fx.check_query("*");
    fx.check_query("hid.*");
    // Deliberate difference: graphite-web lists `hid..hidden.x` (a hidden directory is only
    // skipped as the last node); Carbide, which cannot have written it, does not.
    let (ours, theirs) = fx.json_of("/metrics/expand", &[("query", "hid.*.*")]);
    let theirs: Vec<&str> = theirs["results"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(theirs.contains(&"hid..hidden.x"), "{theirs:?}");
    let without: Vec<&str> = theirs
        .into_iter()
        .filter(|p| *p != "hid..hidden.x")
        .collect();
    assert_eq!(ours, json!({ "results": without }));
}

#[test]
fn expand_view() {
    let mut fx = fixture();
    for params in [
        vec![("query", "servers.*"), ("query", "both.*")],
        vec![
            ("query", "servers.*"),
            ("query", "both.*"),
            ("groupByExpr", "1"),
        ],
        vec![
            ("query", "both.*"),
            ("query", "servers.*"),
            ("query", "both.*"),
            ("groupByExpr", "1"),
            ("leavesOnly", "1"),
        ],
        vec![("query", "")],
        vec![("query", ""), ("groupByExpr", "1")],
        vec![],
        vec![("groupByExpr", "1")],
        vec![("query", "sp.*"), ("jsonp", "cb")],
        vec![("query", "sp.*"), ("pretty", "1")],
        vec![("query", "sp.*"), ("pretty", "")],
        vec![("query", "sp.*"), ("jsonp", "")],
    ] {
        fx.same_text("/metrics/expand", &params);
    }
    for params in [
        vec![("query", "a"), ("leavesOnly", "x")],
        vec![("query", "a"), ("groupByExpr", "1.0")],
        vec![("query", "a"), ("local", "")],
    ] {
        fx.same_text("/metrics/expand", &params);
    }
}

#[test]
fn index_json() {
    let mut fx = fixture();
    let (ours, theirs) = fx.json_of("/metrics/index.json", &[]);
    let theirs: Vec<Value> = theirs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        // Deliberate difference: hidden files, which graphite-web lists with their leading
        // dots stripped (`.top.wsp` as `top`, `hid/.dot.wsp` as `hid..dot`).
        .filter(|v| v != "hid..hidden.x" && v != "top" && v != "hid..dot")
        .collect();
    assert_eq!(ours, Value::Array(theirs));
    let (ours, theirs) = fx.both("/metrics/index.json", &[("jsonp", "cb")]);
    let inner = |s: &str| -> Value {
        let body = s.strip_prefix("cb(").and_then(|s| s.strip_suffix(')'));
        serde_json::from_str(body.unwrap_or("")).unwrap_or(Value::Null)
    };
    let (ours, theirs) = (inner(&ours), inner(&theirs));
    let theirs: Vec<Value> = theirs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v != "hid..hidden.x" && v != "top" && v != "hid..dot")
        .collect();
    assert_eq!(ours, Value::Array(theirs));
    fx.same_text("/metrics/index.json", &[("local", "x")]);
    fx.same_text("/metrics/index.json", &[("local", "x"), ("jsonp", "f")]);
}

#[test]
fn find_parameters() {
    let mut fx = fixture();
    for params in [
        vec![],
        vec![("query", "")],
        vec![("format", "json")],
        vec![("query", "x"), ("format", "bogus")],
        vec![("query", "servers.*"), ("format", "bogus")],
        vec![("query", "x"), ("leavesOnly", "x")],
        vec![("query", "x"), ("leavesOnly", " 1 ")],
        vec![("query", "x"), ("local", "1e3")],
        vec![("query", "x"), ("wildcards", "")],
        vec![("query", "x"), ("position", "1.5")],
        vec![("query", "x"), ("automatic_variants", "yes")],
        vec![("query", "x"), ("wildcards", &"9".repeat(300))],
        vec![("query", "x"), ("wildcards", &"y".repeat(300))],
        vec![("query", "servers.*"), ("jsonp", "cb")],
        vec![
            ("query", "servers.*"),
            ("jsonp", "cb"),
            ("format", "completer"),
        ],
        vec![("query", "servers.*"), ("pretty", "1")],
        vec![
            ("query", "servers.*"),
            ("pretty", "1"),
            ("format", "completer"),
        ],
        vec![("query", "sp.*"), ("pretty", "1"), ("jsonp", "x")],
        vec![("query", "sp.é"), ("format", "completer")],
        vec![("query", "servers.*"), ("format", "nodelist")],
        vec![
            ("query", "servers.*.*"),
            ("format", "nodelist"),
            ("position", "1"),
        ],
        vec![
            ("query", "servers.*.*"),
            ("format", "nodelist"),
            ("position", "-3"),
        ],
        vec![
            ("query", "servers.*.*"),
            ("format", "nodelist"),
            ("position", "3"),
        ],
        vec![
            ("query", "servers.*.*"),
            ("format", "nodelist"),
            ("position", "-4"),
        ],
        vec![("query", "servers.web1,web2.m"), ("format", "completer")],
        vec![
            ("query", "servers.web1,web2.m"),
            ("format", "completer"),
            ("automatic_variants", "1"),
        ],
        vec![("query", "servers.web1,web2"), ("automatic_variants", "1")],
        vec![("query", "both..y"), ("format", "completer")],
        vec![("query", "servers.w"), ("format", "completer")],
        vec![
            ("query", "servers.w"),
            ("format", "completer"),
            ("wildcards", "1"),
        ],
        vec![
            ("query", "servers.*"),
            ("format", "completer"),
            ("leavesOnly", "1"),
        ],
        vec![("query", "servers.*"), ("tz", "Nowhere/Land")],
        vec![("query", "servers.*"), ("from", "-1")],
        vec![("query", "servers.*"), ("until", "-1")],
        vec![("query", "esc.a\\*b.x\\*"), ("format", "json")],
        vec![("query", "**.a\\*b.x\\*"), ("format", "json")],
    ] {
        fx.same_text("/metrics/find", &params);
    }
}

/// from, until, now and tz are parsed as graphite-web parses them (and errors reported as it
/// reports them), then ignored.
#[test]
fn find_time_parameters() {
    let mut fx = fixture();
    for params in [
        vec![("query", "servers.*"), ("from", "-1h"), ("until", "now")],
        vec![("query", "servers.*"), ("from", "garbage")],
        vec![("query", "servers.*"), ("until", "12:00_yesterday")],
        vec![("query", "servers.*"), ("until", "tomorrow+3qq")],
        vec![("query", "servers.*"), ("now", "bogus")],
        vec![("query", "servers.*"), ("now", "20200101"), ("from", "-1d")],
        vec![
            ("query", "servers.*"),
            ("tz", "Europe/Berlin"),
            ("from", "noon"),
        ],
        vec![
            ("query", "servers.*"),
            ("tz", "europe/berlin"),
            ("from", "noon"),
        ],
    ] {
        fx.same_text("/metrics/find", &params);
    }
}

#[test]
fn insert_after_load() {
    let mut fx = fixture();
    let root = fx.root.clone();
    for name in ["ins.new.a", "ins.new.b", "servers.web3.cpu", "ins.t;k=v"] {
        assert!(!fx.index.contains(name), "{name}");
        metric(&root, name);
        assert!(fx.index.insert(name), "{name}");
        assert!(!fx.index.insert(name), "second insert of {name}");
        assert!(fx.index.contains(name), "{name}");
    }
    assert!(!fx.index.insert("bad..name"));
    assert!(!fx.index.insert("_tagged.x"));
    for q in [
        "ins.*",
        "ins.new.*",
        "servers.*",
        "servers.web3.*",
        "*",
        "ins.t;k=v",
        "_tagged.*.*.*",
    ] {
        fx.check_query(q);
    }
    let (ours, theirs) = fx.json_of("/metrics/index.json", &[]);
    let theirs: Vec<Value> = theirs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v != "hid..hidden.x" && v != "top" && v != "hid..dot")
        .collect();
    assert_eq!(ours, Value::Array(theirs));
}

/// The binary formats. Pickle: the same opcodes with the same arguments (frames included),
/// floats within the clock's drift. msgpack: the same values, and our bytes are what
/// umsgpack makes of them.
#[test]
fn pickle_and_msgpack() {
    let mut fx = fixture();
    let mut queries: Vec<&str> = vec![
        "*",
        "servers.*",
        "both.*",
        "sp.*",
        "n.*",
        "servers.nothing",
        "servers.cpu",
        "tag.m;a=1",
        "r.**",
        "deep.**",
        ".",
        "servers.",
    ];
    queries.extend_from_slice(&["*.*", "cpu.*", "big.*.*", "big.**", "big.h1*.m1?"]);
    let mut largest = 0;
    for q in queries {
        for format in ["pickle", "msgpack"] {
            let reply = fx.ours("/metrics/find", &[("query", q), ("format", format)]);
            assert_eq!(reply.status, 200);
            largest = largest.max(reply.body.len());
            let verdict = fx.oracle.compare(q, format, &reply.body);
            assert_eq!(verdict, "ok", "{format} {q:?}");
        }
    }
    // Some answer spans several 64 KiB pickle frames.
    assert!(largest > 3 * 64 * 1024, "largest answer {largest} bytes");
}

/// A second graphite-web over the same directory, in a driver that hands back the raw bytes
/// of pickle and msgpack answers and compares them with ours.
struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const ORACLE: &str = r#"
import json, os, pickletools, sys, tempfile
sys.path.insert(0, os.path.join(sys.argv[2], 'tests', 'support'))
import graphite_web
graphite_web.configure(os.path.abspath(sys.argv[1]), tempfile.mkdtemp(), 'UTC')
from django.test import Client
from graphite import umsgpack
import graphite.storage
import pickle
# graphite-web shuffles the nodes before a stable sort by last node; sorting them by path
# instead gives the order Carbide documents (last node, path, branch first), so the bytes
# can be compared.
graphite.storage.random.shuffle = lambda items: items.sort(key=lambda kv: kv[0])
client = Client(raise_request_exception=False)

def close(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) < 30
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(close(a[k], b[k]) for k in a)
    return type(a) == type(b) and a == b

def ops(data):
    return [(op.name, arg) for op, arg, _ in pickletools.genops(data)]

for line in sys.stdin:
    req = json.loads(line)
    if 'accept' in req:
        resp = client.get(req['path'], req['params'], HTTP_ACCEPT=req['accept'])
        out = {'status': resp.status_code, 'content_type': resp['Content-Type'],
               'body': resp.content.decode('utf-8', 'replace')}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()
        continue
    ours = bytes.fromhex(req['ours'])
    resp = client.get('/metrics/find', {'query': req['query'], 'format': req['format']})
    theirs = resp.content
    try:
        if req['format'] == 'pickle':
            a, b = ops(ours), ops(theirs)
            if len(a) == len(b) and all(
                    x[0] == y[0] and (x[1] == y[1] or close(x[1], y[1])) for x, y in zip(a, b)):
                verdict = 'ok'
            else:
                nf = lambda l: [x for x in l if x[0] != 'FRAME']
                a2, b2 = nf(a), nf(b)
                diff = next((i for i, (x, y) in enumerate(zip(a2, b2)) if x[0] != y[0] or (x[1] != y[1] and not close(x[1], y[1]))), min(len(a2), len(b2)))
                a, b = a2, b2
                verdict = 'opcodes differ at %d: ours %r theirs %r' % (diff, a[diff:diff+12], b[diff:diff+12])
            pickle.loads(ours)
        else:
            la, lb = umsgpack.loads(ours), umsgpack.loads(theirs)
            if umsgpack.dumps(la) != ours:
                verdict = 'our msgpack is not what umsgpack writes'
            elif not close(la, lb):
                verdict = 'values differ: ours %r theirs %r' % (la, lb)
            else:
                verdict = 'ok'
    except Exception as e:
        verdict = 'error: %r' % (e,)
    sys.stdout.write(json.dumps(verdict) + '\n')
    sys.stdout.flush()
"#;

impl Oracle {
    fn start(root: &Path) -> Oracle {
        let mut child = Command::new(common::python())
            .args(["-c", ORACLE])
            .arg(root)
            .arg(env!("CARGO_MANIFEST_DIR"))
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the pickle oracle");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Oracle {
            child,
            stdin,
            stdout,
        }
    }

    fn compare(&mut self, query: &str, format: &str, ours: &[u8]) -> String {
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        let req = json!({"query": query, "format": format, "ours": hex});
        writeln!(self.stdin, "{req}").expect("write to oracle");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read oracle");
        assert!(!line.is_empty(), "the pickle oracle exited");
        serde_json::from_str(&line).expect("oracle verdict")
    }
}

impl Oracle {
    /// graphite-web's answer to a GET with an `Accept` header.
    fn with_accept(
        &mut self,
        path: &str,
        params: &[(&str, &str)],
        accept: &str,
    ) -> (u16, String, String) {
        let params: serde_json::Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let req = json!({"path": path, "params": params, "accept": accept});
        writeln!(self.stdin, "{req}").expect("write to oracle");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read oracle");
        let v: Value = serde_json::from_str(&line).expect("oracle answer");
        (
            v["status"].as_u64().unwrap_or(0) as u16,
            v["content_type"].as_str().unwrap_or("").to_string(),
            v["body"].as_str().unwrap_or("").to_string(),
        )
    }
}

/// Browsers and Grafana send an `Accept` other than `application/json`: graphite-web then
/// writes non-ASCII characters as they are and says so in the content type.
#[test]
fn accept_header() {
    let mut fx = fixture();
    for accept in [
        "*/*",
        "application/json, text/plain, */*",
        "application/json",
    ] {
        for (path, params) in [
            ("/metrics/find", vec![("query", "sp.*")]),
            ("/metrics/find", vec![("query", "sp.*"), ("jsonp", "f")]),
            (
                "/metrics/find",
                vec![("query", "sp.*"), ("format", "completer")],
            ),
            ("/metrics/expand", vec![("query", "sp.*")]),
            ("/metrics/find", vec![("query", "")]),
        ] {
            let pairs = Params::from_pairs(&params);
            let mut env = MetricsEnv::new(chrono_tz::UTC);
            env.accept = Some(accept);
            let ours = match path {
                "/metrics/find" => metrics::find(&fx.index, &pairs, &env),
                _ => metrics::expand(&fx.index, &pairs, &env),
            };
            let theirs = fx.oracle.with_accept(path, &params, accept);
            let ours = (
                ours.status,
                ours.content_type,
                String::from_utf8(ours.body).expect("utf-8"),
            );
            assert_eq!(ours, theirs, "{path} {params:?} Accept: {accept}");
        }
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
