//! Tagged series through the render API against graphite-web 1.1.10: `seriesByTag` with every
//! operator, `groupByTags` (callbacks, tag lists, the `name` tag, a tag some series lack),
//! `aliasByTags`, and tagged series through the common functions (aggregates, aliasByNode,
//! groupByNode, re-fetching functions). The whisper files are written where carbon writes tagged
//! series (`_tagged/<hash>`), and the same series are registered in both tag databases: Carbide's
//! `TagIndex` and graphite-web's `LocalDatabaseTagDB` (through `/tags/tagMultiSeries`). JSON
//! answers (names, tags, values) must be equal exactly.
//!
//! Also here: `/functions` lists exactly graphite-web's 154 functions, each described as
//! graphite-web describes it.
//!
//! Deliberate differences, checked as such: where graphite-web fails with a 500 (a group key
//! with an empty tag value because a series lacks a grouping tag; a `*SeriesLists` callback,
//! which Python calls with too few arguments), Carbide answers 400 with a message.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use carbide::http::render::{render, RenderEnv};
use carbide::http::reply::Params;
use carbide::index::tags::TagIndex;
use carbide::ingest::name::relative_path;
use carbide::query::eval::Limits;
use carbide::query::store::{Names, Store};
use carbide::whisper::{self, CreateOptions, WriteOptions};
use common::graphite_web::GraphiteWeb;
use common::render::{parse_json, points_oldest_first, same, wobble};

const NOW: i64 = 1_795_576_320;

/// Untagged names from the directory tree, loaded afresh per request.
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

/// One whisper directory read by both, with both tag databases holding the same series.
struct TagCompare {
    dir: tempfile::TempDir,
    gw: GraphiteWeb,
    idx: Arc<TagIndex>,
    checks: usize,
}

impl TagCompare {
    fn new() -> TagCompare {
        let dir = tempfile::tempdir().expect("temp dir");
        let gw = GraphiteWeb::start(dir.path());
        TagCompare {
            dir,
            gw,
            idx: Arc::new(TagIndex::new()),
            checks: 0,
        }
    }

    /// Writes `name` (tagged or not) where carbon would, with `points` written at NOW, and
    /// registers a tagged name in both tag databases.
    fn series(&mut self, name: &str, retentions: &str, points: &[(i64, f64)]) {
        let canonical = if name.contains(';') {
            let canonical = self.idx.insert(name).expect("register in Carbide's index");
            let (status, _, body) = self
                .gw
                .http("POST", "/tags/tagMultiSeries", &[("path", name)]);
            assert_eq!(status, 200, "graphite-web tagMultiSeries {name}: {body}");
            assert_eq!(
                parse_json(&body),
                serde_json::json!([&canonical]),
                "both tag databases name {name} the same"
            );
            canonical
        } else {
            name.to_string()
        };
        let path = self
            .dir
            .path()
            .join(relative_path(&canonical).expect("a storable name"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let archives: Vec<(u32, u32)> = retentions
            .split(',')
            .map(|d| whisper::retention::parse_retention_def(d.trim()).expect("retention"))
            .collect();
        let opts = CreateOptions {
            x_files_factor: 0.5,
            aggregation_method: "average".parse().expect("method"),
            sparse: true,
            ..CreateOptions::default()
        };
        whisper::create(&path, &archives, &opts).expect("create whisper file");
        if !points.is_empty() {
            whisper::update_many(&path, points, Some(NOW), WriteOptions::default())
                .expect("update_many");
        }
    }

    fn carbide(&self, params: &[(&str, &str)]) -> (u16, String) {
        let mut pairs = params.to_vec();
        let now = NOW.to_string();
        pairs.push(("now", &now));
        let names = Arc::new(TreeNames {
            root: self.dir.path().to_path_buf(),
        });
        let store = Store::new(self.dir.path(), names).with_tags(self.idx.clone());
        let env = RenderEnv {
            source: &store,
            default_zone: chrono_tz::UTC,
            limits: Limits::default(),
            max_targets: 100,
            now: NOW,
        };
        let reply = render(&Params::from_pairs(&pairs), &env);
        (
            reply.status,
            String::from_utf8_lossy(&reply.body).into_owned(),
        )
    }

    fn graphite(&mut self, params: &[(&str, &str)]) -> (u16, String) {
        let mut pairs = params.to_vec();
        let now = NOW.to_string();
        pairs.push(("now", &now));
        let (status, _, body) = self.gw.http("GET", "/render", &pairs);
        (status, body)
    }

    /// Both answer 200 with the same JSON; returns how many series came back.
    fn check_params(&mut self, params: &[(&str, &str)]) -> usize {
        let (cs, cb) = self.carbide(params);
        let (gs, gb) = self.graphite(params);
        assert_eq!(gs, 200, "graphite-web answered {gs} for {params:?}: {gb}");
        assert_eq!(
            cs, 200,
            "carbide answered {cs} for {params:?}: {cb}\ngw: {gb}"
        );
        let (c, g) = (parse_json(&cb), parse_json(&gb));
        if let Err(why) = same(&c, &g, 0.0, "$") {
            panic!("render differs for {params:?}: {why}\ncarbide:      {cb}\ngraphite-web: {gb}");
        }
        self.checks += 1;
        g.as_array().map_or(0, Vec::len)
    }

    /// `target` as JSON over a few ranges and maxDataPoints; returns the series count of the
    /// first answer.
    fn check(&mut self, target: &str) -> usize {
        let n = self.check_params(&[
            ("target", target),
            ("from", "-2h"),
            ("until", "now"),
            ("format", "json"),
        ]);
        self.check_params(&[
            ("target", target),
            ("from", "-3d"),
            ("until", "-1d"),
            ("format", "json"),
        ]);
        self.check_params(&[
            ("target", target),
            ("from", "-6h"),
            ("until", "now"),
            ("format", "json"),
            ("maxDataPoints", "17"),
        ]);
        n
    }

    /// graphite-web fails with `graphite_status` and Carbide with `carbide_status`.
    fn check_error(&mut self, target: &str, carbide_status: u16, graphite_status: u16) {
        let params = [
            ("target", target),
            ("from", "-2h"),
            ("until", "now"),
            ("format", "json"),
        ];
        let (cs, cb) = self.carbide(&params);
        let (gs, gb) = self.graphite(&params);
        assert_eq!(
            (cs, gs),
            (carbide_status, graphite_status),
            "{target}\ncarbide:      {cb}\ngraphite-web: {}",
            &gb[..gb.len().min(600)]
        );
        self.checks += 1;
    }
}

/// The corpus every test queries (tests share one graphite-web, so they only read).
fn corpus(t: &mut TagCompare) {
    let pts = |n, step, f: &dyn Fn(i64) -> Option<f64>| points_oldest_first(NOW, n, step, f);
    let full = |k: f64| pts(3000, 60, &move |i| Some(wobble(i) * k + k));
    let gappy = pts(3000, 60, &|i| {
        let leading = i < 2900;
        let trailing = i > 2990;
        let inner = (2930..2940).contains(&i) || i % 9 == 4;
        (!(leading || trailing || inner)).then(|| wobble(i) * 2.5)
    });
    let ret = "60s:1d,300s:7d";
    t.series("cpu.user;host=h1;dc=ams;env=prod", ret, &full(1.0));
    t.series("cpu.user;dc=ams;env=dev;host=h2", ret, &gappy);
    t.series("cpu.user;dc=fra;env=prod;host=h3", ret, &full(3.0));
    t.series("cpu.sys;dc=ams;env=prod;host=h1", ret, &full(0.5));
    t.series("cpu.sys;dc=fra;host=h3", ret, &full(-2.0));
    t.series(
        "cpu.idle;dc=nyc;env=prod;host=h4",
        "300s:7d",
        &pts(600, 300, &|i| (i % 11 != 5).then(|| wobble(i) + 0.5)),
    );
    t.series("cpu.steal;dc=ams;env=prod;host=h5", ret, &[]);
    t.series("mem.free;dc=ams;env=prod;host=h1", ret, &full(7.0));
    t.series("mem.free;dc=fra;host=h3", ret, &full(11.0));
    t.series(
        "disk.used;dc=ams;env=prod;host=h1;role=db",
        ret,
        &full(13.0),
    );
    t.series("net.rx;dc=東京;host=h6", ret, &full(0.25));
    t.series("net.rx;dc=são-paulo;host=h7", ret, &full(0.75));
    t.series("plain.cpu.user", ret, &full(5.0));
    t.series("plain.cpu.sys", ret, &full(6.0));
}

fn shared() -> std::sync::MutexGuard<'static, TagCompare> {
    static SHARED: std::sync::OnceLock<std::sync::Mutex<TagCompare>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut t = TagCompare::new();
            corpus(&mut t);
            std::sync::Mutex::new(t)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

#[test]
fn series_by_tag_operators_match_graphite_web() {
    let mut t = shared();
    let start = t.checks;
    let cases: &[(&str, usize)] = &[
        ("seriesByTag('name=cpu.user')", 3),
        ("seriesByTag('name=~cpu')", 7),
        ("seriesByTag('name=~cpu\\.(user|sys)$')", 5),
        ("seriesByTag('dc=ams')", 6),
        ("seriesByTag('dc=ams','name=cpu.user')", 2),
        ("seriesByTag('name=~cpu','dc!=ams')", 3),
        ("seriesByTag('name=~cpu','env=')", 1),
        ("seriesByTag('name=~cpu','env!=')", 6),
        ("seriesByTag('name=~cpu','env!=prod')", 2),
        ("seriesByTag('name=~cpu','env=~pr')", 5),
        ("seriesByTag('name=~cpu','env!=~pr')", 2),
        ("seriesByTag('name=~cpu','env!=~')", 0),
        ("seriesByTag('name=~.+','dc=~ams|fra')", 9),
        ("seriesByTag('host=~h[13]$')", 7),
        ("seriesByTag('name=~cpu','host!=~h[13]','env=prod')", 2),
        ("seriesByTag('dc=東京')", 1),
        ("seriesByTag('name=net.rx')", 2),
        ("seriesByTag('role=db')", 1),
        ("seriesByTag('name=nothing.here')", 0),
        ("seriesByTag(\"name=cpu.user\", 'dc=fra')", 1),
        ("seriesByTag( 'name=cpu.sys' ,  \"dc=ams\" )", 1),
        ("seriesByTag('name=cpu.user','name=cpu.user')", 3),
        // Non-string arguments are skipped; a piped value is ignored (graphite-web fetches the
        // call text as it is).
        ("seriesByTag('dc=ams',3)", 6),
        ("seriesByTag('name=~cpu')|seriesByTag('dc=ams')", 6),
        // Template variables are not replaced inside seriesByTag (graphite-web fetches the
        // call text as written).
        ("template(seriesByTag('dc=$dc'), dc='ams')", 0),
        (
            "template(sumSeries(seriesByTag('name=$n')), n='cpu.user')",
            0,
        ),
        // A tagged name as a plain path: its canonical spelling only.
        ("cpu.user;dc=ams;env=prod;host=h1", 1),
        ("cpu.user;host=h1;dc=ams;env=prod", 0),
        ("sumSeries(cpu.user;dc=ams;env=prod;host=h1)", 1),
    ];
    for &(target, want) in cases {
        let got = t.check(target);
        assert_eq!(got, want, "{target}: series count");
    }
    // Two targets naming the same tagged series, and one with a plain path alongside.
    t.check_params(&[
        ("target", "seriesByTag('name=cpu.user','dc=ams')"),
        ("target", "seriesByTag('host=h1')"),
        ("target", "plain.cpu.*"),
        ("from", "-2h"),
        ("until", "now"),
        ("format", "json"),
    ]);
    // Tag expressions the tag database refuses: a 500 on both, as graphite-web's render fails.
    for target in [
        "seriesByTag('name=~.*')",
        "seriesByTag('env=')",
        "seriesByTag()",
        "seriesByTag('dc')",
        "seriesByTag('name=~[')",
    ] {
        t.check_error(target, 500, 500);
    }
    eprintln!("{} seriesByTag comparisons agree", t.checks - start);
}

#[test]
fn tagged_series_through_common_functions_match_graphite_web() {
    let mut t = shared();
    let start = t.checks;
    let targets = [
        "sumSeries(seriesByTag('name=~cpu'))",
        "sumSeries(seriesByTag('name=cpu.user'))",
        "averageSeries(seriesByTag('name=cpu.user'),seriesByTag('name=cpu.sys'))",
        "sumSeries(seriesByTag('name=cpu.user'),plain.cpu.user)",
        "maxSeries(seriesByTag('dc=ams','env=prod'))",
        "aggregate(seriesByTag('name=cpu.user'),'median')",
        "aggregate(seriesByTag('host=h1'),'sum')",
        "seriesByTag('name=cpu.user')|sumSeries()",
        "aliasByNode(seriesByTag('name=~cpu'),0,1)",
        "aliasByNode(seriesByTag('name=~cpu'),1,'dc',-1)",
        "aliasByNode(seriesByTag('name=~cpu'),'env')",
        "aliasByNode(sumSeries(seriesByTag('name=cpu.user')),0)",
        "aliasByNode(scale(seriesByTag('name=cpu.user'),2),1,'host')",
        "aliasByTags(seriesByTag('name=~cpu'),'name','dc')",
        "aliasByTags(seriesByTag('name=~cpu'),'host',1)",
        "aliasByTags(seriesByTag('name=~cpu'),'env')",
        "aliasByTags(seriesByTag('name=~cpu'),'dc','missing','name')",
        "aliasByTags(seriesByTag('name=~cpu'),-1,'env',0)",
        "aliasByTags(sumSeries(seriesByTag('name=cpu.user')),'name')",
        "aliasByTags(sumSeries(seriesByTag('name=cpu.user')),'aggregatedBy','name')",
        "aliasByTags(sumSeries(seriesByTag('name=cpu.user')),0,1)",
        "aliasByTags(seriesByTag('name=net.rx'),'dc')",
        "seriesByTag('name=cpu.user')|aliasByTags('host','dc')",
        "aliasByTags(plain.cpu.*,'name',2)",
        "aliasByTags(seriesByTag('name=~cpu'),1.5)",
        "aliasByTags(seriesByTag('name=~cpu'),'1')",
        "aliasByTags(seriesByTag('name=~cpu'),1,'1',5)",
        "groupByNode(seriesByTag('name=~cpu'),1,'sum')",
        "groupByNode(seriesByTag('name=~cpu'),'dc','max')",
        "groupByNode(seriesByTag('name=~cpu'),'env')",
        "groupByNodes(seriesByTag('name=~cpu'),'sum','dc','env')",
        "groupByNodes(seriesByTag('name=~cpu'),'average',1,'host')",
        "groupByNode(seriesByTag('name=~cpu'),'dc','sumSeries')",
        "scale(seriesByTag('name=cpu.user'),2)",
        "offset(seriesByTag('name=cpu.sys'),-1.5)",
        "movingAverage(seriesByTag('name=cpu.user'),5)",
        "movingAverage(seriesByTag('name=cpu.user'),'10min')",
        "timeShift(seriesByTag('name=cpu.sys'),'1h')",
        "summarize(seriesByTag('name=cpu.user','dc=ams'),'15min','sum')",
        "asPercent(seriesByTag('name=cpu.user'))",
        "highestMax(seriesByTag('name=~cpu'),2)",
        "sortByName(seriesByTag('name=~.+'))",
        "nonNegativeDerivative(seriesByTag('name=mem.free'))",
        "sumSeriesWithWildcards(seriesByTag('name=~cpu'),1)",
        "alias(seriesByTag('name=cpu.user','host=h1'),'x')",
        "aliasSub(seriesByTag('name=cpu.user'),'dc=(\\w+)','at-\\1')",
    ];
    for target in targets {
        t.check(target);
    }
    eprintln!("{} common-function comparisons agree", t.checks - start);
}

#[test]
fn group_by_tags_matches_graphite_web() {
    let mut t = shared();
    let start = t.checks;
    let callbacks = [
        "sum",
        "total",
        "average",
        "avg",
        "avg_zero",
        "median",
        "min",
        "max",
        "diff",
        "stddev",
        "count",
        "range",
        "rangeOf",
        "multiply",
        "last",
        "current",
        "sumSeries",
        "averageSeries",
        "maxSeries",
        "minSeries",
        "diffSeries",
        "stddevSeries",
        "rangeOfSeries",
        "countSeries",
        "multiplySeries",
        "asPercent",
        "pct",
        "powSeries",
        "averageSeriesWithWildcards",
        "sumSeriesWithWildcards",
        "multiplySeriesWithWildcards",
    ];
    for cb in callbacks {
        t.check(&format!(
            "groupByTags(seriesByTag('name=~cpu'),'{cb}','dc')"
        ));
        t.check(&format!(
            "groupByTags(seriesByTag('name=cpu.user'),'{cb}','env','dc')"
        ));
    }
    let cases: &[(&str, usize)] = &[
        // Different names: keys start with the callback.
        ("groupByTags(seriesByTag('name=~cpu'),'sum','dc')", 3),
        ("groupByTags(seriesByTag('name=~cpu'),'sum','host')", 5),
        ("groupByTags(seriesByTag('name=~cpu'),'max','host','dc')", 5),
        ("groupByTags(seriesByTag('name=~cpu'),'max','dc','host')", 5),
        // One shared name: keys start with it.
        (
            "groupByTags(seriesByTag('name=cpu.user'),'average','dc')",
            2,
        ),
        ("groupByTags(seriesByTag('name=cpu.user'),'sum','host')", 3),
        // Grouping by name: each group's own name.
        ("groupByTags(seriesByTag('name=~cpu'),'sum','name')", 4),
        ("groupByTags(seriesByTag('name=~cpu'),'sum','name','dc')", 6),
        ("groupByTags(seriesByTag('name=~cpu'),'sum','dc','name')", 6),
        ("groupByTags(seriesByTag('dc=ams'),'max','name','host')", 6),
        ("groupByTags(seriesByTag('name=~.+'),'count','name')", 7),
        // The same tag twice.
        ("groupByTags(seriesByTag('name=~cpu'),'sum','dc','dc')", 3),
        // Every series has env here (env!= keeps those with a value).
        (
            "groupByTags(seriesByTag('name=~cpu','env!='),'sum','env')",
            2,
        ),
        (
            "groupByTags(seriesByTag('name=~cpu','env!='),'avg_zero','env','dc')",
            4,
        ),
        // Unicode values, sorted as Python sorts.
        ("groupByTags(seriesByTag('name=net.rx'),'sum','dc')", 2),
        // Untagged series: the name tag is the whole path.
        ("groupByTags(plain.cpu.*,'sum','name')", 2),
        // Nothing matched.
        (
            "groupByTags(seriesByTag('name=nothing.here'),'sum','dc')",
            0,
        ),
        // Piped, nested, and a function of the results.
        ("seriesByTag('name=~cpu')|groupByTags('sum','dc')", 3),
        (
            "sumSeries(groupByTags(seriesByTag('name=~cpu'),'sum','dc'))",
            1,
        ),
        (
            "aliasByTags(groupByTags(seriesByTag('name=~cpu'),'sum','dc'),'dc','name')",
            3,
        ),
        (
            "aliasByNode(groupByTags(seriesByTag('name=~cpu'),'sum','dc'),0)",
            3,
        ),
        (
            "groupByTags(groupByTags(seriesByTag('name=~cpu'),'sum','dc','name'),'max','dc')",
            3,
        ),
        (
            "groupByNode(groupByTags(seriesByTag('name=~cpu'),'sum','host'),'host')",
            5,
        ),
        (
            "scale(groupByTags(seriesByTag('name=cpu.user'),'sum','dc'),3)",
            2,
        ),
        (
            "movingAverage(groupByTags(seriesByTag('name=cpu.user'),'sum','dc'),3)",
            2,
        ),
        (
            "groupByTags(aliasByTags(seriesByTag('name=~cpu'),'host'),'sum','dc')",
            3,
        ),
        // Tags other functions set, and names that are function calls.
        (
            "groupByTags(scale(seriesByTag('name=~cpu'),2),'sum','scale','dc')",
            3,
        ),
        // The nyc group is cpu.idle alone, so its aggregate keeps that name tag.
        (
            "groupByTags(groupByNode(seriesByTag('name=~cpu'),'dc','sum'),'max','name')",
            2,
        ),
        (
            "groupByTags(groupByNode(seriesByTag('name=~cpu'),'dc','sum'),'max','dc')",
            3,
        ),
        (
            "groupByTags(seriesByTag('name=cpu.user'),'sum','dc')|groupByTags('sum','name')",
            1,
        ),
        (
            "groupByTags(sumSeries(seriesByTag('host=h1')),'sum','host')",
            1,
        ),
        // graphite-web accepts any aggregation spelled as a series function.
        (
            "groupByTags(seriesByTag('name=~cpu'),'medianSeries','dc')",
            3,
        ),
        ("groupByTags(seriesByTag('name=~cpu'),'lastSeries','dc')", 3),
        // Any series function works as a callback, its first result kept.
        ("groupByTags(seriesByTag('name=~cpu'),'absolute','dc')", 3),
        (
            "groupByTags(seriesByTag('name=~cpu'),'sortByMaxima','dc')",
            3,
        ),
    ];
    for &(target, want) in cases {
        let got = t.check(target);
        assert_eq!(got, want, "{target}: series count");
    }
    // The request's xFilesFactor reaches the aggregation.
    for xff in ["0", "0.5", "1"] {
        for target in [
            "groupByTags(seriesByTag('name=~cpu'),'sum','dc')",
            "groupByTags(seriesByTag('name=~cpu'),'averageSeries','dc')",
        ] {
            t.check_params(&[
                ("target", target),
                ("from", "-2h"),
                ("until", "now"),
                ("format", "json"),
                ("xFilesFactor", xff),
            ]);
        }
    }
    eprintln!("{} groupByTags comparisons agree", t.checks - start);
}

/// Where graphite-web cannot answer: a grouping tag some series lack gives a key with an empty
/// value, which graphite-web's `TaggedSeries.parse` rejects (500), as it does the
/// `*SeriesLists` callbacks called with one list (500). Carbide answers 400 with a message.
/// Bad callbacks and a missing tag list are 400 on both.
#[test]
fn group_by_tags_errors() {
    let mut t = shared();
    // Deliberate: 400 where graphite-web fails with a 500.
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),'sum','env')",
        400,
        500,
    );
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),'sum','dc','env')",
        400,
        500,
    );
    t.check_error("groupByTags(plain.cpu.*,'sum','dc')", 400, 500);
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),'sumSeriesLists','dc')",
        400,
        500,
    );
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),'diffSeriesLists','dc')",
        400,
        500,
    );
    // The same status on both.
    t.check_error("groupByTags(seriesByTag('name=~cpu'),'foo','dc')", 400, 400);
    // graphite-web cannot take `*tags` as a keyword (a TypeError); Carbide binds it.
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),callback='sum',tags='dc')",
        200,
        500,
    );
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),'scale','dc')",
        400,
        500,
    );
    t.check_error(
        "groupByTags(seriesByTag('name=~cpu'),'seriesByTag','dc')",
        400,
        500,
    );
    t.check_error("groupByTags(seriesByTag('name=~cpu'),'sum',1)", 400, 500);
    t.check_error("groupByTags(seriesByTag('name=~cpu'),'sum')", 400, 400);
    let (cs, cb) = t.carbide(&[
        (
            "target",
            "groupByTags(seriesByTag('name=~cpu'),'sum','env')",
        ),
        ("format", "json"),
    ]);
    assert_eq!(cs, 400);
    assert!(
        cb.contains("has no tag \\\"env\\\"") || cb.contains("has no tag \"env\""),
        "{cb}"
    );
}

/// `/functions` lists exactly graphite-web's functions, and each one's metadata (all but the
/// description) equals graphite-web's `/functions/<name>`.
#[test]
fn functions_list_matches_graphite_web() {
    let names: Vec<&str> = carbide::query::functions::all().map(|f| f.name).collect();
    assert_eq!(
        names.len(),
        154,
        "Carbide implements {} functions",
        names.len()
    );
    let ours = carbide::http::functions::list(&Params::from_pairs(&[]));
    let ours = parse_json(&String::from_utf8_lossy(&ours.body));
    let theirs = {
        let mut t = shared();
        let (status, _, body) = t.gw.http("GET", "/functions", &[]);
        assert_eq!(status, 200, "{body}");
        parse_json(&body)
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&theirs));
    assert_eq!(keys(&theirs).len(), 154);
    use carbide::query::functions as f;
    let tables = [
        f::combine::FUNCTIONS,
        f::transform::FUNCTIONS,
        f::calculate::FUNCTIONS,
        f::alias::FUNCTIONS,
        f::filter::FUNCTIONS,
        f::special::FUNCTIONS,
        f::more_combine::FUNCTIONS,
        f::more_calculate::FUNCTIONS,
        f::tags::FUNCTIONS,
    ];
    assert_eq!(tables.iter().map(|t| t.len()).sum::<usize>(), 154);
    // Every difference at once (what `common::render::functions_match_graphite_web` checks per
    // table, here over all 154 with the shared graphite-web).
    let mut t = shared();
    let mut differ = Vec::new();
    for def in carbide::query::functions::all() {
        let path = format!("/functions/{}", def.name);
        let (status, _, body) = t.gw.http("GET", &path, &[]);
        assert_eq!(status, 200, "{path}: {body}");
        let reply = carbide::http::functions::details(def.name, &Params::from_pairs(&[]));
        let strip = |mut v: serde_json::Value| {
            if let Some(m) = v.as_object_mut() {
                m.remove("description");
            }
            v
        };
        let ours = strip(parse_json(&String::from_utf8_lossy(&reply.body)));
        if let Err(why) = same(&ours, &strip(parse_json(&body)), 0.0, "$") {
            differ.push(format!("{path}: {why}"));
        }
    }
    drop(t);
    assert!(
        differ.is_empty(),
        "{} differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
