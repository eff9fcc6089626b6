//! The tag database and the `/tags` API against graphite-web 1.1.10's own `LocalDatabaseTagDB`:
//! the same series are registered on both sides through `/tags/tagMultiSeries` (in the same
//! order, so the SQL ids agree), then every query endpoint is asked the same questions and the
//! answers (status and body text, byte for byte) are compared.
//!
//! Deliberate differences, checked as such: `limit=0` on the autocomplete endpoints means the
//! default (graphite-web answers `[]`), and an invalid regular expression gets the same status
//! but the regex engine's message.

mod common;

use carbide::http::reply;
use carbide::index::tags::TagIndex;
use common::graphite_web::GraphiteWeb;
use reply::Params;

use carbide::http::tags as http_tags;

struct Both {
    _dir: tempfile::TempDir,
    gw: GraphiteWeb,
    idx: TagIndex,
    checks: usize,
    failures: Vec<String>,
}

/// How an answer is compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    /// Status, content type and body text identical.
    Exact,
    /// Status identical and both bodies are `{"error": ...}` (the messages may differ).
    SameStatusError,
}

impl Both {
    fn new() -> Both {
        let dir = tempfile::tempdir().expect("tempdir");
        let gw = GraphiteWeb::start(dir.path());
        Both {
            _dir: dir,
            gw,
            idx: TagIndex::new(),
            checks: 0,
            failures: Vec::new(),
        }
    }

    fn ours(&self, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, String, String) {
        let rest = path.strip_prefix("/tags").expect("a /tags path");
        let r = http_tags::answer(&self.idx, method, rest, &Params::from_pairs(params));
        (
            r.status,
            r.content_type,
            String::from_utf8(r.body).expect("utf-8 body"),
        )
    }

    fn cmp_as(&mut self, how: Cmp, method: &str, path: &str, params: &[(&str, &str)]) -> String {
        let theirs = self.gw.http(method, path, params);
        let ours = self.ours(method, path, params);
        self.checks += 1;
        let same = match how {
            Cmp::Exact => theirs == ours,
            Cmp::SameStatusError => {
                let is_err = |b: &str| {
                    serde_json::from_str::<serde_json::Value>(b)
                        .ok()
                        .is_some_and(|v| v.get("error").is_some_and(|e| e.is_string()))
                };
                theirs.0 == ours.0 && is_err(&theirs.2) && is_err(&ours.2)
            }
        };
        if !same {
            self.failures.push(format!(
                "{method} {path} {params:?}\n  graphite-web: {theirs:?}\n  carbide:      {ours:?}"
            ));
        }
        theirs.2
    }

    fn cmp(&mut self, method: &str, path: &str, params: &[(&str, &str)]) -> String {
        self.cmp_as(Cmp::Exact, method, path, params)
    }

    fn register(&mut self, names: &[String]) {
        for chunk in names.chunks(50) {
            let params: Vec<(&str, &str)> = chunk.iter().map(|n| ("path", n.as_str())).collect();
            self.cmp("POST", "/tags/tagMultiSeries", &params);
        }
    }

    fn find(&mut self, exprs: &[&str]) -> String {
        let params: Vec<(&str, &str)> = exprs.iter().map(|e| ("expr", *e)).collect();
        self.cmp("GET", "/tags/findSeries", &params)
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} comparisons differ:\n{}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n")
        );
        eprintln!("{} comparisons with graphite-web agree", self.checks);
    }
}

/// A deterministic corpus: several tags, shared values, unicode, dots, regex metacharacters.
fn corpus(n: usize) -> Vec<String> {
    let metrics = [
        "cpu.load",
        "disk.used",
        "net.rx",
        "mem",
        "app.requests.count",
        "ünï.cødé",
        "a+b.c",
    ];
    let dcs = ["ams", "fra", "nyc", "são-paulo", "東京", "ams2"];
    let envs = ["prod", "staging", "dev", "prod.eu"];
    let roles = [
        "web",
        "db",
        "cache",
        "a.b",
        "x|y",
        "(p)",
        "[q]",
        "r=s!t",
        "with space",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let mut out = Vec::new();
    for i in 0..n {
        let mut name = metrics[next(metrics.len())].to_string();
        if next(3) > 0 {
            name.push_str(&format!(";dc={}", dcs[next(dcs.len())]));
        }
        name.push_str(&format!(";host=host{}", next(40)));
        if next(2) == 0 {
            name.push_str(&format!(";env={}", envs[next(envs.len())]));
        }
        if next(3) == 0 {
            name.push_str(&format!(";role={}", roles[next(roles.len())]));
        }
        if next(10) == 0 {
            name.push_str(&format!(";x.y=v{}", i % 7));
        }
        if next(8) == 0 {
            name.push_str(";ver=1.0");
        }
        out.push(name);
    }
    // Other spellings of canonical series: unsorted tags, repeated tags, `~`, OpenMetrics.
    out.extend(
        [
            "cpu.load;host=host1;dc=ams",
            "spell;b=2;a=1;b=3",
            "~tilde.metric;dc=fra",
            "om.metric{dc=\"ams\",host=\"host9\"}",
            "spell2;name=ignored;z=1",
        ]
        .map(String::from),
    );
    out
}

const FIND_CASES: &[&[&str]] = &[
    &["name=cpu.load"],
    &["dc=ams"],
    &["dc=東京"],
    &["host=host3"],
    &["name=ünï.cødé", "dc=são-paulo"],
    &["name=cpu.load", "dc!=ams"],
    &["dc!="],
    &["name=mem", "env="],
    &["name=mem", "env!="],
    &["dc=~a"],
    &["dc=~^a"],
    &["dc=~ams|fra"],
    &["dc=~ams$"],
    &["dc=~ams\\d"],
    &["name=~isk"],
    &["name=~.*isk"],
    &["name=~cpu\\.load"],
    &["name=~a+b"],
    &["name=~a\\+b"],
    &["role=~a.b"],
    &["role=~a\\.b"],
    &["role=~x|y"],
    &["role=~x\\|y"],
    &["role=~\\(p\\)"],
    &["role=~\\[q\\]"],
    &["role=r=s!t"],
    &["role=with space"],
    &["host=~host1$"],
    &["host=~host1\\d"],
    &["host=~host(1|2)$", "dc=~東"],
    &["dc=~.+"],
    &["dc=~AMS"],
    &["dc=~(?i)AMS"],
    &["dc=~s.o"],
    &["dc=~^a|f"],
    &["name=net.rx", "env!=~^p|g"],
    &["name=net.rx", "dc!=~^$|a"],
    &["dc!=~^$|a"],
    &["name=disk.used", "dc!=~a"],
    &["name=disk.used", "dc!=~.*"],
    &["dc!=~.*"],
    &["name=disk.used", "env=~"],
    &["name=disk.used", "env=~p", "dc!=fra"],
    &["name=disk.used", "env=~.*", "role!=web"],
    &["nosuch=x"],
    &["nosuch!=x", "name=cpu.load"],
    &["nosuch=~.*", "name=mem"],
    &["dc=~a", "dc!=ams"],
    &["dc=ams", "dc=fra"],
    &["x.y=~v[0-3]"],
    &["ver=1.0", "host=~host[0-9]$"],
    &["name=spell", "a=1"],
    &["b=3"],
    &["b=2"],
    &["name=tilde.metric"],
    &["name=om.metric"],
    &["name=spell2"],
    &["dc=ams\n"],
    &["host=~host1\n"],
    // The empty-match rule.
    &["dc!=ams"],
    &["dc="],
    &["dc=~.*"],
    &["dc=~"],
    &["dc!=~x"],
    &["nosuch="],
    // Invalid tagspecs.
    &["dc"],
    &["=x"],
    &["a;b=c"],
    &[""],
    &["dc=ams", "bad"],
    &["dc~=x"],
];

#[test]
fn corpus_queries() {
    let mut b = Both::new();
    let names = corpus(400);
    b.register(&names);
    b.cmp(
        "POST",
        "/tags/tagSeries",
        &[("path", "cpu.load;dc=ams;host=host1")],
    );

    for exprs in FIND_CASES {
        b.find(exprs);
    }
    // Parameter spellings and methods.
    b.cmp(
        "GET",
        "/tags/findSeries",
        &[("expr[]", "dc=ams"), ("expr[]", "name=mem")],
    );
    b.cmp(
        "POST",
        "/tags/findSeries",
        &[("expr", "dc=fra"), ("expr", "env=prod")],
    );
    b.cmp(
        "GET",
        "/tags/findSeries",
        &[("expr", "dc=fra"), ("pretty", "1")],
    );
    b.cmp("GET", "/tags/findSeries", &[]);
    b.cmp(
        "GET",
        "/tags/findSeries",
        &[("expr", "dc!=x"), ("pretty", "1")],
    );
    // A bad regex: 500 on both sides; Python's message and ours may differ.
    b.cmp_as(
        Cmp::SameStatusError,
        "GET",
        "/tags/findSeries",
        &[("expr", "dc=~(")],
    );
    b.cmp_as(
        Cmp::SameStatusError,
        "GET",
        "/tags/findSeries",
        &[("expr", "dc=~[")],
    );
    b.cmp_as(
        Cmp::SameStatusError,
        "GET",
        "/tags/findSeries",
        &[("expr", "name=cpu.load"), ("expr", "dc!=~(")],
    );
    // Valid only because of the `^(...)` wrapping, as in graphite-web.
    b.find(&["dc=~a)(b"]);
    b.find(&["dc=~ams)|(f"]);

    // Listings.
    for params in [
        vec![],
        vec![("filter", "d")],
        vec![("filter", "^h")],
        vec![("filter", "o|e")],
        vec![("filter", "x\\.y")],
        vec![("limit", "3")],
        vec![("limit", "0")],
        vec![("limit", "-1")],
        vec![("limit", "")],
        vec![("limit", "x")],
        vec![("limit", " 2 ")],
        vec![("filter", "h"), ("limit", "1"), ("pretty", "1")],
        vec![("pretty", "1")],
    ] {
        b.cmp("GET", "/tags", &params);
    }
    b.cmp("GET", "/tags/", &[]);
    b.cmp("POST", "/tags", &[]);
    for tag in [
        "dc", "host", "name", "role", "x.y", "env", "nosuch", "a", "ver",
    ] {
        let path = format!("/tags/{tag}");
        b.cmp("GET", &path, &[]);
        b.cmp("GET", &path, &[("filter", "a"), ("limit", "2")]);
        b.cmp("GET", &path, &[("filter", "^h.*1"), ("pretty", "1")]);
        b.cmp("GET", &path, &[("limit", "0")]);
        b.cmp("GET", &path, &[("limit", "-3")]);
        b.cmp("GET", &path, &[("limit", "bad")]);
    }
    b.cmp("POST", "/tags/dc", &[]);

    // Autocomplete: tags.
    let tag_cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("tagPrefix", "d")],
        vec![("tagPrefix", "")],
        vec![("tagPrefix", "zz")],
        vec![("tagPrefix", "x.")],
        vec![("limit", "2")],
        vec![("limit", "-2")],
        vec![("limit", "abc")],
        vec![("limit", "")],
        vec![("expr", "name=cpu.load")],
        vec![("expr", "name=cpu.load"), ("tagPrefix", "h")],
        vec![("expr", "dc=ams"), ("expr", "env=prod")],
        vec![("expr", "dc=ams"), ("limit", "2")],
        vec![("expr", "dc=ams"), ("limit", "-1")],
        vec![("expr", "name=spell")],
        vec![("expr", "dc!=x")],
        vec![("expr", "bad")],
        vec![("expr[]", "role=web")],
        vec![("expr", "nosuch=1")],
        vec![("expr", "dc=~a"), ("pretty", "1")],
    ];
    for params in &tag_cases {
        b.cmp("GET", "/tags/autoComplete/tags", params);
    }
    b.cmp("POST", "/tags/autoComplete/tags", &[("expr", "dc=ams")]);

    // Autocomplete: values.
    let value_cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("tag", "dc")],
        vec![("tag", "dc"), ("valuePrefix", "a")],
        vec![("tag", "dc"), ("valuePrefix", "東")],
        vec![("tag", "host"), ("limit", "5")],
        vec![("tag", "host"), ("limit", "-5")],
        vec![("tag", "host")],
        vec![("tag", "name")],
        vec![("tag", "role"), ("valuePrefix", "(")],
        vec![("tag", "nosuch")],
        vec![("tag", "")],
        vec![],
        vec![("tag", "dc"), ("expr", "name=cpu.load")],
        vec![
            ("tag", "host"),
            ("expr", "dc=ams"),
            ("valuePrefix", "host1"),
        ],
        vec![("tag", "host"), ("expr", "dc=ams"), ("limit", "3")],
        vec![("tag", "host"), ("expr", "dc=ams"), ("limit", "-3")],
        vec![("tag", "env"), ("expr", "name=mem")],
        vec![("tag", "dc"), ("expr", "dc!=ams")],
        vec![("tag", "a=b"), ("expr", "name=mem")],
        vec![("tag", "d;c"), ("expr", "name=mem")],
        vec![("tag", "dc"), ("expr", "bad")],
        vec![("tag", "dc"), ("limit", "x")],
        vec![("tag", "dc"), ("expr[]", "env=prod"), ("pretty", "1")],
    ];
    for params in &value_cases {
        b.cmp("GET", "/tags/autoComplete/values", params);
    }
    b.cmp(
        "POST",
        "/tags/autoComplete/values",
        &[("tag", "dc"), ("expr", "env=dev")],
    );
    b.finish();
}

#[test]
fn registration_and_delete() {
    let mut b = Both::new();
    let names = corpus(200);
    b.register(&names);

    // Registration answers and errors.
    for path in [
        "cpu.load;host=host1;dc=ams",
        "new.one;z=1;a=2",
        "x{a=\"1\",b=\"q\\\"z\"}",
        "",
        "a;b",
        "a;=1",
        "a;b=",
        "a;b=~x",
        "a;b!=1=2",
        "~~",
        ";a=b",
        "a{b{c=\"d\"}",
    ] {
        b.cmp("POST", "/tags/tagSeries", &[("path", path)]);
    }
    b.cmp("GET", "/tags/tagSeries", &[("path", "a;b=c")]);
    b.cmp("POST", "/tags/tagSeries", &[]);
    b.cmp(
        "POST",
        "/tags/tagSeries",
        &[("path", "p;q=1"), ("pretty", "1")],
    );
    b.cmp("POST", "/tags/tagMultiSeries", &[]);
    b.cmp("GET", "/tags/tagMultiSeries", &[("path", "a;b=c")]);
    b.cmp(
        "POST",
        "/tags/tagMultiSeries",
        &[("path[]", "arr;k=1"), ("path[]", "arr;k=2")],
    );
    b.cmp(
        "POST",
        "/tags/tagMultiSeries",
        &[("path", "ok;k=1"), ("path", "a;b="), ("path", "late;k=1")],
    );
    b.find(&["k=1"]);
    b.cmp("GET", "/tags", &[]);

    // Deletion: series go, their tag names and value ids stay.
    let gone: Vec<&str> = names.iter().step_by(3).map(String::as_str).collect();
    for chunk in gone.chunks(40) {
        let params: Vec<(&str, &str)> = chunk.iter().map(|n| ("path", *n)).collect();
        b.cmp("POST", "/tags/delSeries", &params);
    }
    b.cmp(
        "POST",
        "/tags/delSeries",
        &[("path", "never.registered;a=1")],
    );
    b.cmp("POST", "/tags/delSeries", &[("path[]", "arr;k=1")]);
    b.cmp("POST", "/tags/delSeries", &[]);
    b.cmp("GET", "/tags/delSeries", &[("path", "arr;k=2")]);
    b.cmp("POST", "/tags/delSeries", &[("path", "bad;")]);
    b.cmp("POST", "/tags/delSeries", &[("path", "new.one;a=2;z=1")]);
    for exprs in [
        &["name=cpu.load"][..],
        &["dc=ams"],
        &["dc!="],
        &["name=new.one"],
        &["a=2"],
        &["dc=~a", "env!=prod"],
    ] {
        b.find(exprs);
    }
    for path in [
        "/tags",
        "/tags/dc",
        "/tags/a",
        "/tags/z",
        "/tags/host",
        "/tags/name",
    ] {
        b.cmp("GET", path, &[]);
    }
    b.cmp("GET", "/tags/autoComplete/tags", &[]);
    b.cmp("GET", "/tags/autoComplete/tags", &[("expr", "dc=ams")]);
    b.cmp("GET", "/tags/autoComplete/values", &[("tag", "z")]);
    b.cmp(
        "GET",
        "/tags/autoComplete/values",
        &[("tag", "dc"), ("expr", "name=mem")],
    );
    // Re-registering a deleted series.
    b.cmp(
        "POST",
        "/tags/tagMultiSeries",
        &[("path", gone[0]), ("path", "new.one;z=1;a=2")],
    );
    b.find(&["a=2"]);
    b.cmp("GET", "/tags/a", &[]);
    b.finish();
}

#[test]
fn autocomplete_limit_zero_is_the_default() {
    // Deliberate difference: graphite-web answers `[]` to `limit=0` (its Store slices by the
    // string's truth, its TagDB by the number's); Carbide, like a Grafana user expects, uses
    // the default limit of 100.
    let mut b = Both::new();
    let names: Vec<String> = (0..150).map(|i| format!("m;t{i:03}=v;k=v{i:03}")).collect();
    b.register(&names);
    let (status, _, body) =
        b.gw.http("GET", "/tags/autoComplete/tags", &[("limit", "0")]);
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (_, _, default) = b.gw.http("GET", "/tags/autoComplete/tags", &[]);
    let ours = b.ours("GET", "/tags/autoComplete/tags", &[("limit", "0")]);
    assert_eq!(ours.2, default);
    let (_, _, default) =
        b.gw.http("GET", "/tags/autoComplete/values", &[("tag", "k")]);
    let ours = b.ours(
        "GET",
        "/tags/autoComplete/values",
        &[("tag", "k"), ("limit", "0")],
    );
    assert_eq!(ours.2, default);
    let (_, _, default) = b.gw.http(
        "GET",
        "/tags/autoComplete/values",
        &[("tag", "k"), ("expr", "name=m")],
    );
    let ours = b.ours(
        "GET",
        "/tags/autoComplete/values",
        &[("tag", "k"), ("expr", "name=m"), ("limit", "0")],
    );
    assert_eq!(ours.2, default);
    // And the default itself agrees: 100 of the 152 tag names and of the 150 values.
    b.cmp("GET", "/tags/autoComplete/tags", &[]);
    b.cmp("GET", "/tags/autoComplete/values", &[("tag", "k")]);
    b.cmp("GET", "/tags/autoComplete/tags", &[("expr", "name=m")]);
    b.finish();
}

#[test]
fn series_by_tag_call_text() {
    let idx = TagIndex::new();
    for n in [
        "disk.used;dc=ams;host=a",
        "disk.used;dc=fra;host=b",
        "cpu;dc=ams",
    ] {
        idx.insert(n).expect("insert");
    }
    let got = http_tags::series_by_tag(&idx, "seriesByTag('name=disk.used', \"dc!=~f\")");
    assert_eq!(got, Ok(vec!["disk.used;dc=ams;host=a".to_string()]));
    let err = http_tags::series_by_tag(&idx, "seriesByTag('dc!=x')").expect_err("empty-match");
    assert_eq!(err.status(), 500);
    assert_eq!(
        err.message(),
        "At least one tagspec must not match the empty string"
    );
    assert!(http_tags::series_by_tag(&idx, "seriesByTag()").is_err());
}

#[test]
fn load_dir_recovers_readable_names_only() {
    use carbide::ingest::name::tag_hash;
    let dir = tempfile::tempdir().expect("tempdir");
    let put = |rel: String| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, b"").expect("write");
    };
    let readable = "disk.used;dc=ams;host=web1";
    let h = tag_hash(readable);
    put(format!(
        "_tagged/{}/{}/disk_DOT_used;dc=ams;host=web1.wsp",
        &h[0..3],
        &h[3..6]
    ));
    let hashed = tag_hash("cpu;dc=fra");
    put(format!(
        "_tagged/{}/{}/{hashed}.wsp",
        &hashed[0..3],
        &hashed[3..6]
    ));
    put("_tagged/000/000/disk_DOT_used;dc=ams;host=web1.wsp".to_string());
    let idx = TagIndex::new();
    let stats = idx.load_dir(dir.path());
    assert_eq!((stats.loaded, stats.hashed, stats.skipped), (1, 1, 1));
    assert_eq!(idx.find_series(&["dc=ams"]), Ok(vec![readable.to_string()]));
}
