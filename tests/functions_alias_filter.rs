//! The Alias, Filter Series, Filter Data, Sorting, Special and Graph functions of
//! src/query/functions/{alias,filter,special}.rs against graphite-web 1.1.10 over the same
//! whisper files (names, tags, values, nulls, order, maxDataPoints), Python-regex translation
//! (aliasSub, grep, exclude) against the venv's own `re`, and the cases where Carbide
//! deliberately answers differently (each says so).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use carbide::query::functions::alias::python_re::PyRegex;
use common::render::RenderCompare;
use serde_json::{json, Value};

const NOW: i64 = 1_795_576_320;
const RET: &str = "60s:1d,300s:10d";

/// Points at NOW - i*step for i in 0..n (i = 0 is the newest), None skipped.
fn pts(n: i64, step: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    (0..n)
        .filter_map(|i| f(i).map(|v| (NOW - i * step, v)))
        .collect()
}

fn hour() -> (String, String) {
    ((NOW - 3600).to_string(), NOW.to_string())
}

/// Every target over the last hour, then with a few maxDataPoints.
fn check_all(r: &mut RenderCompare, targets: &[String], mdps: &[&str]) {
    let (from, until) = hour();
    for t in targets {
        r.check(t, &from, &until);
        for mdp in mdps {
            r.check_params(&[
                ("target", t),
                ("from", &from),
                ("until", &until),
                ("format", "json"),
                ("maxDataPoints", mdp),
            ]);
        }
    }
}

fn forms(p: &str, forms: &[&str]) -> Vec<String> {
    forms
        .iter()
        .map(|f| f.replace("P.", &format!("{p}.")))
        .collect()
}

/// Series under `p` with different profiles: a trailing null, gaps, an empty one, negatives
/// with leading nulls, a spike, a tie with another's average, and a 300 s one.
fn fixture(p: &str) -> RenderCompare {
    let mut r = RenderCompare::new(NOW);
    let n = 3000;
    // Rising towards now, the newest value null.
    r.metric(
        &format!("{p}.web1.cpu"),
        RET,
        &pts(n, 60, |i| (i != 0).then(|| (200 - i % 200) as f64 * 0.5)),
    );
    // 10 with gaps every 4th.
    r.metric(
        &format!("{p}.web2.cpu"),
        RET,
        &pts(n, 60, |i| (i % 4 != 1).then_some(10.0)),
    );
    r.metric(&format!("{p}.web3.cpu"), RET, &[]);
    // Negative, no data in the newest ten minutes.
    r.metric(
        &format!("{p}.db1.cpu"),
        RET,
        &pts(n, 60, |i| (i >= 10).then(|| -((i % 13) as f64) - 0.25)),
    );
    // Small values with one spike.
    r.metric(
        &format!("{p}.db2.cpu"),
        RET,
        &pts(n, 60, |i| {
            Some(if i == 17 { 1000.0 } else { (i % 3) as f64 })
        }),
    );
    // Same average, max and last as web2 (ties keep the input order).
    r.metric(
        &format!("{p}.db3.cpu"),
        RET,
        &pts(n, 60, |i| (i % 4 != 2).then_some(10.0)),
    );
    // Only the 300 s archive.
    r.metric(
        &format!("{p}.slow.cpu"),
        "300s:10d",
        &pts(600, 300, |i| (i % 5 != 0).then_some(i as f64 * 0.1)),
    );
    r
}

#[test]
fn aliases_match_graphite_web() {
    let mut r = fixture("al");
    let targets = forms(
        "al",
        &[
            "alias(P.*.cpu,\"Total CPU\")",
            "alias(P.nothing.*,\"x\")",
            "alias(P.web1.cpu,'')",
            "aliasByNode(P.*.cpu,1)",
            "aliasByNode(P.*.cpu,0,2)",
            "aliasByNode(P.*.cpu,-1)",
            "aliasByNode(P.*.cpu,-2,0)",
            "aliasByNode(P.*.cpu,1,5)",
            "aliasByNode(P.*.cpu,-9)",
            "aliasByNode(P.*.cpu,\"name\")",
            "aliasByNode(P.*.cpu,\"nosuchtag\",1)",
            "aliasByNode(P.nothing.*,1)",
            "aliasByNode(scale(P.web1.cpu,2),1)",
            "aliasByNode(sumSeries(P.web*.cpu),1)",
            "aliasByNode(sumSeries(P.web*.cpu),0,\"name\")",
            "aliasByNode(consolidateBy(P.*.cpu,'max'),'consolidateBy',1)",
            "aliasByNode(alias(P.web1.cpu,'x.y.z'),1)",
            "aliasByNode(aliasByNode(P.*.cpu,1,2),0)",
            "P.*.cpu|aliasByNode(1)",
            "aliasByTags(P.*.cpu,1)",
            "aliasByTags(P.*.cpu,'name',-1)",
            "aliasByTags(consolidateBy(P.*.cpu,'sum'),'consolidateBy')",
            "aliasByMetric(P.*.cpu)",
            "aliasByMetric(scale(P.web1.cpu,2))",
            "aliasByMetric(sumSeries(P.*.cpu))",
            "aliasByMetric(alias(P.web1.cpu,'a.b,c.d'))",
            "aliasByMetric(alias(P.web1.cpu,'x)y(z.w'))",
            "aliasByMetric(P.nothing.*)",
            // Names that end with a parenthesis are parsed for their first path.
            "aliasByNode(alias(P.web1.cpu,'has (paren)'),0)",
            "aliasByNode(alias(P.web1.cpu,'f(\"a.b\",c.d)'),1)",
            "aliasByNode(alias(P.web1.cpu,'f(1,c.d)'),1)",
            "aliasByNode(P.web1.cpu,1.5)",
            "aliasByNode(P.web1.cpu,true)",
        ],
    );
    check_all(&mut r, &targets, &["7"]);
}

#[test]
fn alias_sub_matches_graphite_web() {
    let mut r = fixture("as");
    let targets = forms(
        "as",
        &[
            // What Grafana 11.6+ wraps every target in.
            r#"aliasSub(P.*.cpu,"(^.*$)","\1 A")"#,
            r#"aliasSub(sumSeries(P.*.cpu),"(^.*$)","\1 B_C")"#,
            r#"aliasSub(P.nothing.*,"(^.*$)","\1 A")"#,
            r#"aliasSub(P.*.cpu,"^as\.([^.]+)\..*","\1")"#,
            r#"aliasSub(P.*.cpu,"web(\d)","server-\g<1>")"#,
            r#"aliasSub(P.*.cpu,"(?P<h>[a-z]+)(\d)","\g<h>_\2")"#,
            r#"aliasSub(P.*.cpu,"(?i)WEB","W")"#,
            r#"aliasSub(P.*.cpu,"","-")"#,
            r#"aliasSub(P.*.cpu,"x*","-")"#,
            r#"aliasSub(P.*.cpu,"\.","/")"#,
            r#"aliasSub(P.*.cpu,"[.]cpu$","")"#,
            r#"aliasSub(P.*.cpu,"(web)|(db)","<\1|\2>")"#,
            r#"aliasSub(P.*.cpu,"c(p)u","\\\1\&")"#,
            r#"aliasSub(P.*.cpu,"^(.)(.)","\2\1\-")"#,
            r#"aliasSub(P.*.cpu,"\w+","\g<0>!")"#,
            r##"aliasSub(P.*.cpu,"[]a-c]{1,2}","#")"##,
            r#"aliasSub(P.*.cpu,"(?x) w e b  # comment","WEB")"#,
            "P.*.cpu|aliasSub('web','w')",
            "aliasSub(P.web1.cpu,'web','a\\nb')",
            "aliasSub(alias(P.web1.cpu,'Ünïcödé 42'),'(\\w+) (\\d+)','\\2-\\1')",
        ],
    );
    check_all(&mut r, &targets, &[]);
}

#[test]
fn filters_match_graphite_web() {
    let mut r = fixture("fl");
    let targets = forms(
        "fl",
        &[
            "highestCurrent(P.*.cpu,2)",
            "highestCurrent(P.*.cpu,0)",
            "highestCurrent(P.*.cpu,100)",
            "highestCurrent(P.*.cpu,-2)",
            "highestMax(P.*.cpu,3)",
            "highestAverage(P.*.cpu,3)",
            "highestAverage(P.nothing.*,3)",
            "lowestCurrent(P.*.cpu,3)",
            "lowestAverage(P.*.cpu,4)",
            "highest(P.*.cpu,2)",
            "highest(P.*.cpu,3,'max')",
            "highest(P.*.cpu,3,'sum')",
            "highest(P.*.cpu,9,'count')",
            "highest(P.*.cpu,9,'multiply')",
            "highest(P.*.cpu,9,'diff')",
            "highest(P.*.cpu,9,'range')",
            "highest(P.*.cpu,9,'avg_zero')",
            "lowest(P.*.cpu,2)",
            "lowest(P.*.cpu,3,'stddev')",
            "lowest(P.*.cpu,9,'median')",
            "lowest(P.*.cpu,9,'last')",
            "lowest(P.*.cpu,n=2,func='min')",
            "currentAbove(P.*.cpu,5)",
            "currentAbove(P.*.cpu,-1)",
            "currentBelow(P.*.cpu,10)",
            "averageAbove(P.*.cpu,9.5)",
            "averageBelow(P.*.cpu,10)",
            "maximumAbove(P.*.cpu,100)",
            "maximumBelow(P.*.cpu,10)",
            "minimumAbove(P.*.cpu,0)",
            "minimumBelow(P.*.cpu,0)",
            "filterSeries(P.*.cpu,'max','>',50)",
            "filterSeries(P.*.cpu,'sum','>=',0)",
            "filterSeries(P.*.cpu,'last','=',10)",
            "filterSeries(P.*.cpu,'last','!=',10)",
            "filterSeries(P.*.cpu,'average','<',5)",
            "filterSeries(P.*.cpu,'min','<=',0)",
            "filterSeries(P.nothing.*,'min','<=',0)",
            "removeEmptySeries(P.*.cpu)",
            "removeEmptySeries(P.*.cpu,0.8)",
            "removeEmptySeries(P.*.cpu,1)",
            "removeEmptySeries(P.*.cpu,0.1)",
            "limit(P.*.cpu,2)",
            "limit(P.*.cpu,0)",
            "limit(P.*.cpu,-1)",
            "limit(P.*.cpu,100)",
            "exclude(P.*.cpu,'web')",
            "exclude(P.*.cpu,'^fl\\.(db1|slow)')",
            "grep(P.*.cpu,'[13]\\.cpu$')",
            "grep(P.*.cpu,'WEB')",
            "grep(P.nothing.*,'x')",
            "unique(P.web1.cpu,P.*.cpu,P.web1.cpu)",
            "unique(P.*.cpu)",
        ],
    );
    check_all(&mut r, &targets, &["9"]);
}

#[test]
fn filter_data_matches_graphite_web() {
    let mut r = fixture("fd");
    let targets = forms(
        "fd",
        &[
            "removeBelowValue(P.*.cpu,5)",
            "removeBelowValue(P.*.cpu,-3.5)",
            "removeBelowValue(P.*.cpu,1e7)",
            "removeAboveValue(P.*.cpu,5)",
            "removeAboveValue(P.*.cpu,0.25)",
            "removeAboveValue(P.*.cpu,-1e-5)",
            "removeAboveValue(P.nothing.*,1)",
            "removeBelowPercentile(P.*.cpu,50)",
            "removeBelowPercentile(P.*.cpu,0.5)",
            "removeBelowPercentile(P.*.cpu,99.9)",
            "removeBelowPercentile(P.*.cpu,-50)",
            "removeAbovePercentile(P.*.cpu,90)",
            "removeAbovePercentile(P.*.cpu,100)",
            "removeAbovePercentile(P.*.cpu,250)",
            "removeAbovePercentile(P.*.cpu,1e-3)",
            // Filters over already consolidated series (sumSeries normalizes its inputs).
            "removeAboveValue(sumSeries(P.web1.cpu,P.slow.cpu),50)",
        ],
    );
    check_all(&mut r, &targets, &["10", "1"]);
}

#[test]
fn sorting_matches_graphite_web() {
    let mut r = fixture("so");
    for name in [
        "server1", "server11", "server2", "server10", "Server3", "server02", "a9b10", "a9b9",
        "a10b1", "z",
    ] {
        r.metric(
            &format!("nat.{name}"),
            RET,
            &pts(60, 60, |i| Some((i % 5) as f64)),
        );
    }
    let mut targets = forms(
        "so",
        &[
            "sortByName(P.*.cpu)",
            "sortByName(P.*.cpu,reverse=true)",
            "sortByMaxima(P.*.cpu)",
            "sortByMinima(P.*.cpu)",
            "sortByTotal(P.*.cpu)",
            "sortBy(P.*.cpu)",
            "sortBy(P.*.cpu,'max')",
            "sortBy(P.*.cpu,'last',true)",
            "sortBy(P.*.cpu,'median',false)",
            "sortBy(P.*.cpu,func='stddev',reverse=true)",
            "sortBy(P.nothing.*)",
            "sortByMaxima(alias(P.*.cpu,'same'))",
        ],
    );
    targets.extend(
        [
            "sortByName(nat.*)",
            "sortByName(nat.*,true)",
            "sortByName(nat.*,true,true)",
            "sortByName(nat.*,false,true)",
            "sortByName(nat.*,natural=true)",
        ]
        .map(String::from),
    );
    check_all(&mut r, &targets, &[]);
}

#[test]
fn special_and_graph_match_graphite_web() {
    let mut r = fixture("sp");
    let mut targets = forms(
        "sp",
        &[
            "consolidateBy(P.*.cpu,'max')",
            "consolidateBy(P.*.cpu,'min')",
            "consolidateBy(P.*.cpu,'sum')",
            "consolidateBy(P.*.cpu,'average')",
            "consolidateBy(P.*.cpu,'avg')",
            "consolidateBy(P.*.cpu,'avg_zero')",
            "consolidateBy(P.*.cpu,'first')",
            "consolidateBy(P.*.cpu,'last')",
            "P.*.cpu|consolidateBy('max')",
            "consolidateBy(P.nothing.*,'max')",
            "cumulative(P.*.cpu)",
            "sumSeries(consolidateBy(P.web*.cpu,'max'))",
            "color(P.*.cpu,'red')",
            "alpha(P.*.cpu,0.5)",
            "lineWidth(P.*.cpu,3)",
            "dashed(P.*.cpu)",
            "dashed(P.*.cpu,2)",
            "dashed(P.*.cpu,2.5)",
            "secondYAxis(P.*.cpu)",
            "drawAsInfinite(P.*.cpu)",
        ],
    );
    targets.extend(
        [
            "constantLine(100)",
            "constantLine(1.5)",
            "constantLine(-3)",
            "constantLine(1e20)",
            "constantLine(0)",
            r#"aliasSub(constantLine(100),"(^.*$)","\1 A")"#,
            "threshold(5)",
            "threshold(5,'warn','red')",
            "threshold(5.5,'')",
            "threshold(7,label='crit')",
        ]
        .map(String::from),
    );
    check_all(&mut r, &targets, &["5", "60", "100", "1"]);
    // Grafana's health check (backend mode), and ranges of odd and tiny lengths.
    for (from, mdp) in [
        (NOW - 3600, "100"),
        (NOW - 3601, "100"),
        (NOW - 7, "3"),
        (NOW - 2, ""),
    ] {
        let from = from.to_string();
        let until = NOW.to_string();
        let mut params = vec![
            ("target", "constantLine(100)"),
            ("from", from.as_str()),
            ("until", until.as_str()),
            ("format", "json"),
        ];
        if !mdp.is_empty() {
            params.push(("maxDataPoints", mdp));
        }
        r.check_params(&params);
    }
    // constantLine beside fetched series: the JSON renderer's maxDataPoints sees both.
    let (from, until) = hour();
    for mdp in ["10", "100"] {
        r.check_params(&[
            ("target", "constantLine(42)"),
            ("target", "sp.web1.cpu"),
            ("from", &from),
            ("until", &until),
            ("format", "json"),
            ("maxDataPoints", mdp),
        ]);
    }
}

#[test]
fn other_alias_filter_and_special_functions_match_graphite_web() {
    let mut r = fixture("ot");
    let targets = forms(
        "ot",
        &[
            "upper(P.*.cpu)",
            "lower(upper(P.*.cpu))",
            "upper(P.*.cpu,0,-1,99)",
            "upper(alias(P.web1.cpu,'straße ǆ'),4,-1)",
            "lower(alias(P.web1.cpu,'ÀB ΣΣ İ'))",
            "lower(alias(P.web1.cpu,'ÀB ΣΣ İ'),-1,2)",
            "substr(P.*.cpu)",
            "substr(P.*.cpu,1)",
            "substr(P.*.cpu,0,2)",
            "substr(P.*.cpu,-2)",
            "substr(P.*.cpu,1,-1)",
            "substr(P.*.cpu,2,1)",
            "substr(P.*.cpu,1.7)",
            "substr(scale(P.web1.cpu,2),1,2)",
            "substr(sumSeries(P.web1.cpu,P.web2.cpu),1)",
            "setXFilesFactor(P.*.cpu,0.5)",
            "xFilesFactor(P.*.cpu,1)",
            "xFilesFactor(P.*.cpu,0)",
            "fallbackSeries(P.nothing.*,constantLine(1))",
            "fallbackSeries(P.web1.cpu,constantLine(1))",
            "areaBetween(P.web[12].cpu)",
            "areaBetween(P.db[13].cpu)",
            "mostDeviant(P.*.cpu,3)",
            "mostDeviant(P.*.cpu,-1)",
            "mostDeviant(P.*.cpu,0)",
            "averageOutsidePercentile(removeEmptySeries(P.*.cpu),90)",
            "averageOutsidePercentile(removeEmptySeries(P.*.cpu),10)",
            "averageOutsidePercentile(removeEmptySeries(P.*.cpu),50)",
            "averageOutsidePercentile(removeEmptySeries(P.*.cpu),75)",
            "averageOutsidePercentile(P.nothing.*,75)",
            "removeBetweenPercentile(transformNull(P.db*.cpu),70)",
            "removeBetweenPercentile(transformNull(P.db*.cpu),10)",
            "removeBetweenPercentile(transformNull(P.web*.cpu,5),95)",
            "removeBetweenPercentile(P.nothing.*,95)",
            "removeBetweenPercentile(transformNull(P.[dw]*.cpu),70)",
            "removeBetweenPercentile(transformNull(P.[dw]*.cpu,-1),60)",
        ],
    );
    check_all(&mut r, &targets, &["7"]);
    // setXFilesFactor changes the request's xFilesFactor for what is fetched afterwards,
    // later targets included.
    let (from, until) = hour();
    for mdp in ["7", "30"] {
        r.check_params(&[
            ("target", "xFilesFactor(ot.web1.cpu,1)"),
            ("target", "ot.web2.cpu"),
            ("from", &from),
            ("until", &until),
            ("format", "json"),
            ("maxDataPoints", mdp),
        ]);
    }
    for target in [
        "areaBetween(ot.*.cpu)",
        "averageOutsidePercentile(ot.*.cpu,90)",
        "removeBetweenPercentile(ot.db*.cpu,70)",
        "removeBetweenPercentile(transformNull(ot.*.cpu),70)",
    ] {
        let params = [
            ("target", target),
            ("from", from.as_str()),
            ("until", until.as_str()),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!(
            (cs, gs),
            (400, 500),
            "{target}: carbide {cb}\ngraphite-web {gb}"
        );
    }
}

/// Where graphite-web answers 500 (an exception), Carbide answers 400 naming the problem.
#[test]
fn bad_arguments_are_client_errors() {
    let mut r = fixture("er");
    let (from, until) = hour();
    let cases = [
        // Python's re has look-ahead and backreferences, the regex crate does not: here
        // Carbide refuses with a 400 where graphite-web would answer (deliberate difference).
        (r#"aliasSub(er.*.cpu,"web(?=1)","W")"#, None),
        (r#"aliasSub(er.*.cpu,"(w)\1","W")"#, None),
        (r#"grep(er.*.cpu,"(?<=web)1")"#, None),
        // Bad patterns and templates: graphite-web fails with a 500.
        (r#"aliasSub(er.*.cpu,"web(","W")"#, Some(500)),
        (r#"aliasSub(er.*.cpu,"web","\2")"#, Some(500)),
        (r#"aliasSub(er.*.cpu,"web","\q")"#, Some(500)),
        (r#"exclude(er.*.cpu,"*")"#, Some(500)),
        (r#"grep(er.nothing.*,"[")"#, Some(500)),
        ("highest(er.*.cpu,2,'nosuch')", Some(400)),
        ("highest(er.*.cpu,2,None)", Some(400)),
        ("sortBy(er.*.cpu,None)", Some(400)),
        ("filterSeries(er.*.cpu,'max','<>',1)", Some(400)),
        ("filterSeries(er.*.cpu,'nosuch','>',1)", Some(400)),
        ("removeAbovePercentile(er.*.cpu,0)", Some(500)),
        ("aliasByNode(er.*.cpu,1.0)", Some(500)),
        ("aliasByNode(alias(er.web1.cpu,''),1)", Some(500)),
        ("aliasByNode(alias(er.web1.cpu,'f()'),1)", Some(500)),
    ];
    for (target, gw_status) in cases {
        let params = [
            ("target", target),
            ("from", from.as_str()),
            ("until", until.as_str()),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!(cs, 400, "carbide for {target}: {cb}");
        match gw_status {
            Some(s) => assert_eq!(gs, s, "graphite-web for {target}: {gb}"),
            None => assert_eq!(gs, 200, "graphite-web for {target}: {gb}"),
        }
    }
    // graphite-web compiles aliasSub's pattern per series: nothing to rename, no error.
    r.check(r#"aliasSub(er.nothing.*,"web(","W")"#, &from, &until);
    // consolidateBy with an unknown function: graphite-web keeps the string and fails only
    // when maxDataPoints makes it consolidate; Carbide refuses it up front (deliberate).
    let params = [
        ("target", "consolidateBy(er.web1.cpu,'median')"),
        ("from", from.as_str()),
        ("until", until.as_str()),
        ("format", "json"),
    ];
    let ((cs, _), (gs, _)) = r.both(&params);
    assert_eq!((cs, gs), (400, 200));
}

/// graphite-web's validation: a float `n` fails integer validation and highest/lowest then
/// use `int(n)`; numeric strings pass float validation.
#[test]
fn validated_argument_forms_match_graphite_web() {
    let mut r = fixture("va");
    let targets = forms(
        "va",
        &[
            "highest(P.*.cpu,2.7,'max')",
            "lowest(P.*.cpu,1.2)",
            "removeBelowValue(P.*.cpu,'5')",
            "currentAbove(P.*.cpu,'5')",
            "limit(P.*.cpu,'2')",
            "sortByName(P.*.cpu,'false','true')",
            "sortBy(P.*.cpu,'max','TRUE')",
            "sortByName(P.*.cpu,0,1)",
        ],
    );
    check_all(&mut r, &targets, &[]);
}

/// Every function of these groups is described in `/functions` exactly as graphite-web
/// 1.1.10 describes it (signature, group, parameters), except the description, our own.
#[test]
fn functions_metadata_matches_graphite_web() {
    use carbide::query::functions::{alias, filter, special};
    let tables = [alias::FUNCTIONS, filter::FUNCTIONS, special::FUNCTIONS];
    let count = common::render::metadata_matches_spec(tables.iter().flat_map(|t| t.iter()));
    assert!(count >= 55, "{count}");
}

// ---- Python's re, directly ----

/// Runs `re.sub(pattern, repl, s)` (or `re.search` when repl is None) for every case in the
/// venv's Python: `{"ok": result}` or `{"err": message}` per case. For sub, "scan" is the same
/// replacement done with the scan Carbide uses (after an empty match, search again one
/// character on), built from Python's own `search` and `expand`: where CPython's answer
/// differs only because it backtracks into a non-empty match at the place of an empty one
/// (lazy quantifiers, empty-first alternatives), Carbide must equal "scan".
fn python_re(cases: &[(String, Option<String>, String)]) -> Vec<Value> {
    let script = r#"
import json, re, sys, warnings
warnings.simplefilter("ignore")

def scan(rx, r, s):
    out, copied, pos, must = [], 0, 0, False
    while pos <= len(s):
        m = rx.search(s, pos)
        if not m:
            break
        a, b = m.span()
        if must and a == b == pos:
            if pos >= len(s):
                break
            pos, must = pos + 1, False
            continue
        out.append(s[copied:a])
        out.append(m.expand(r))
        copied, must, pos = b, a == b, b
    out.append(s[copied:])
    return ''.join(out)

out = []
for p, r, s in json.load(sys.stdin):
    try:
        if r is None:
            out.append({"ok": bool(re.search(p, s))})
        else:
            out.append({"ok": re.sub(p, r, s), "scan": scan(re.compile(p), r, s)})
    except Exception as e:
        out.append({"err": "%s: %s" % (type(e).__name__, e)})
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(common::python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    let input = serde_json::to_vec(
        &cases
            .iter()
            .map(|(p, r, s)| json!([p, r, s]))
            .collect::<Vec<_>>(),
    )
    .expect("json");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write");
    let out = child.wait_with_output().expect("python output");
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("python answer")
}

/// What PyRegex answers for one case: Ok(text or "true"/"false") or Err(message).
fn carbide_re(p: &str, r: Option<&str>, s: &str) -> Result<Value, String> {
    let re = PyRegex::compile(p)?;
    match r {
        None => Ok(json!(re.search(s))),
        Some(r) => {
            let t = re.template(r)?;
            Ok(json!(re.sub(&t, s)))
        }
    }
}

/// Patterns Carbide refuses on purpose (features of Python's re the regex crate lacks).
fn unsupported(err: &str) -> bool {
    err.contains("is not supported")
}

/// Compares every case; returns (cases compared, cases that differ only by CPython's
/// backtracking after an empty match, a known difference).
fn compare_re(cases: &[(String, Option<String>, String)]) -> (usize, usize) {
    let want = python_re(cases);
    assert_eq!(want.len(), cases.len());
    let mut compared = 0;
    let mut backtracked = 0;
    for ((p, r, s), w) in cases.iter().zip(&want) {
        let got = carbide_re(p, r.as_deref(), s);
        match (w.get("ok"), got) {
            (Some(ok), Ok(g)) => {
                if &g != ok && w.get("scan") == Some(&g) {
                    backtracked += 1;
                    continue;
                }
                assert_eq!(&g, ok, "pattern {p:?} repl {r:?} on {s:?}");
                compared += 1;
            }
            (Some(w), Err(e)) => assert!(
                unsupported(&e),
                "pattern {p:?} repl {r:?} on {s:?}: Python gives {w}, Carbide fails: {e}"
            ),
            (None, Ok(g)) => panic!(
                "pattern {p:?} repl {r:?} on {s:?}: Python fails ({}), Carbide gives {g}",
                w["err"]
            ),
            (None, Err(_)) => compared += 1,
        }
    }
    (compared, backtracked)
}

#[test]
fn python_regex_cases_match_cpython() {
    let subjects = [
        "al.web1.cpu",
        "abxd",
        "",
        "sumSeries(a.b.c,d.e)",
        "Ünïcödé 42 ٣٤",
        "x  y\tz\u{1c}w",
        "a]b[c-d^e",
        "aaa{1}",
        "tab\\back",
        "abc\n",
        "a\nb",
        "\n",
    ];
    let patterns = [
        "(^.*$)",
        "^",
        "$",
        "",
        "x*",
        "a|b",
        "(a)|(b)",
        "\\d+",
        "\\D",
        "\\w+",
        "\\W+",
        "\\s",
        "\\S+",
        "\\b",
        "\\B",
        "\\Aal",
        "cpu\\Z",
        "[]a]",
        "[^]a]",
        "[a-c]+",
        "[\\d.]+",
        "[\\w-]+",
        "[\\s\\S]",
        "[^\\W\\d]+",
        "[[]",
        "[a&&b]",
        "[a--b]",
        "[\\]]",
        "[\\b]",
        "[\\x41-\\x5a]",
        "[\\101]",
        "a{",
        "a{}",
        "a{,2}",
        "a{1,}",
        "a{2}",
        "{1}",
        "a{x}",
        "a{2,1}",
        "\\x41",
        "\\u00dc",
        "\\U0001F600",
        "\\101",
        "\\0",
        "\\07",
        "\\.",
        "\\-",
        "\\&",
        "\\q",
        "\\",
        "(?i)AL",
        "(?i:W)EB",
        "(?-i:a)",
        "(?s).",
        "(?m)^a",
        "(?x) a  b # c",
        "(?x)[ ]",
        "(?a)\\w+",
        "(?u)\\w+",
        "(?L)a",
        "a(?i)b",
        "(?#comment)a",
        "(?P<n>a)(?P<m>b)?",
        "(?P<n>a)(?P<n>b)",
        "(?P<1>a)",
        "(?:ab)+",
        "a**",
        "a*?",
        "a+?b",
        "a??",
        "*a",
        "a|*",
        "^*",
        "(a",
        "a)",
        "()",
        "(|a)+",
        "a*+",
        "(?>a)",
        "(?=a)",
        "(?<!a)b",
        "(a)\\1",
        "(?P=n)",
        "(?(1)a|b)",
        "\\N{DIGIT ONE}",
        "(?<n>a)",
        "(?Q)",
    ];
    let repls = [
        None,
        Some("\\1 A"),
        Some("-"),
        Some("\\g<0>"),
        Some("[\\g<1>]"),
        Some("\\g<n>"),
        Some("\\n\\t\\\\"),
        Some("\\.\\&"),
        Some("\\0\\07\\101"),
        Some("\\12"),
        Some("\\q"),
        Some("\\g<x"),
        Some("\\g< 1>"),
        Some("trailing\\"),
    ];
    let mut cases = Vec::new();
    for p in patterns {
        for r in repls {
            for s in subjects {
                cases.push((p.to_string(), r.map(String::from), s.to_string()));
            }
        }
    }
    let (compared, backtracked) = compare_re(&cases);
    eprintln!(
        "{compared} of {} cases equal, {backtracked} known differences",
        cases.len()
    );
    assert!(compared > cases.len() / 2, "{compared} of {}", cases.len());
    assert!(backtracked < cases.len() / 50, "{backtracked}");
}

/// Random patterns from pieces Python and the crate both support, against CPython.
#[test]
fn random_python_regexes_match_cpython() {
    let pieces = [
        "a", "b", ".", "*", "+", "?", "*?", "|", "(", ")", "(?:", "[ab]", "[^a]", "\\d", "\\w",
        "\\s", "^", "$", "{1,2}", "{,2}", "{2}", "x", "\\.", "[.-]", "{", "}", "(?i:", "\\b",
    ];
    let subjects = [
        "ab.x1 ba", "aaxbb", "", "x.y.z", "A1b2", "b a", "..ab", "ab.b\n",
    ];
    let repls = [None, Some("<\\g<0>>"), Some("-"), Some("\\1")];
    // A small linear congruential generator: the same cases every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % m
    };
    let mut cases = Vec::new();
    for _ in 0..3000 {
        let len = 1 + next(6);
        let p: String = (0..len).map(|_| pieces[next(pieces.len())]).collect();
        let r = repls[next(repls.len())];
        let s = subjects[next(subjects.len())];
        cases.push((p, r.map(String::from), s.to_string()));
    }
    let (compared, backtracked) = compare_re(&cases);
    eprintln!(
        "{compared} of {} cases equal, {backtracked} known differences",
        cases.len()
    );
    assert!(compared > 1000, "{compared}");
}

/// Sorting and percentile filters when some keys are NaN (a NaN stored in a file makes the
/// average NaN; max and min depend on where it is): graphite-web sorts with CPython's timsort,
/// which leaves such keys where its `<` comparisons put them. Carbide used to order NaN last
/// (and its plain float sorts panicked on NaN: the `render` fuzz target found
/// `sortBy(x.z.w,'median',false)`).
#[test]
fn sorting_with_nan_matches_graphite_web() {
    let mut r = RenderCompare::new(NOW);
    for k in 0..10i64 {
        r.metric(
            &format!("sonan.s{k}.cpu"),
            RET,
            &pts(60, 60, |i| {
                Some(if k % 3 == 1 && i == k {
                    f64::NAN
                } else {
                    ((i * (k + 3)) % 17) as f64 - k as f64 * 0.5
                })
            }),
        );
    }
    let targets: Vec<String> = [
        "sortByMaxima(sonan.*.cpu)",
        "sortByMinima(sonan.*.cpu)",
        "sortByTotal(sonan.*.cpu)",
        "sortBy(sonan.*.cpu)",
        "sortBy(sonan.*.cpu,'average',true)",
        "sortBy(sonan.*.cpu,'median',false)",
        "sortBy(sonan.*.cpu,'last',true)",
        "highestAverage(sonan.*.cpu,4)",
        "lowestAverage(sonan.*.cpu,4)",
        "highestMax(sonan.*.cpu,3)",
        "highest(sonan.*.cpu,5,'sum')",
        "lowest(sonan.*.cpu,5,'median')",
        "mostDeviant(sonan.*.cpu,4)",
        "removeAbovePercentile(sonan.*.cpu,50)",
        "removeBelowPercentile(sonan.*.cpu,30)",
        "removeBetweenPercentile(sonan.*.cpu,70)",
    ]
    .map(String::from)
    .to_vec();
    check_all(&mut r, &targets, &[]);
}
