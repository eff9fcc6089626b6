//! storage-schemas.conf and storage-aggregation.conf as carbon 1.1.10 reads them: carbon's
//! documented examples and the edge cases that decide which retention a metric gets, with
//! exact outputs and messages.

use std::path::Path;

use carbide::schema::{parse_carbon_retention, Resolved, SchemaError, Schemas};
use carbide::whisper::AggregationMethod;

fn schemas(text: &str) -> Schemas {
    Schemas::from_strs(text, None).unwrap_or_else(|e| panic!("loads: {e}"))
}

fn error(text: &str) -> String {
    Schemas::from_strs(text, None)
        .expect_err("refused")
        .to_string()
}

fn aggregation(text: &str) -> Schemas {
    Schemas::from_strs("", Some(text)).unwrap_or_else(|e| panic!("loads: {e}"))
}

fn aggregation_error(text: &str) -> String {
    Schemas::from_strs("", Some(text))
        .expect_err("refused")
        .to_string()
}

fn warnings(s: &Schemas) -> Vec<String> {
    s.warnings().iter().map(ToString::to_string).collect()
}

/// (name, pattern, archives) of one schema.
type Listed = (String, Option<String>, Vec<(u32, u32)>);

/// (name, pattern, archives) of every schema, built-in default included.
fn listing(s: &Schemas) -> Vec<Listed> {
    s.storage_schemas()
        .iter()
        .map(|x| {
            (
                x.name().to_string(),
                x.pattern().map(str::to_string),
                x.archives().to_vec(),
            )
        })
        .collect()
}

fn names(s: &Schemas) -> Vec<&str> {
    s.storage_schemas().iter().map(|x| x.name()).collect()
}

fn archives_for(s: &Schemas, metric: &str) -> (String, Vec<(u32, u32)>) {
    let r = s.resolve(metric);
    (r.schema_name, r.archives)
}

#[test]
fn carbon_example_schemas() {
    let s = schemas(
        "# comment\n[carbon]\npattern = ^carbon\\.\nretentions = 60:90d\n\n\
         [default_1min_for_1day]\npattern = .*\nretentions = 60s:1d\n",
    );
    assert_eq!(
        listing(&s),
        vec![
            (
                "carbon".into(),
                Some("^carbon\\.".into()),
                vec![(60, 129600)]
            ),
            (
                "default_1min_for_1day".into(),
                Some(".*".into()),
                vec![(60, 1440)]
            ),
            ("default".into(), None, vec![(60, 10080)]),
        ]
    );
    assert_eq!(s.storage_schemas()[0].line(), Some(2));
    assert_eq!(s.storage_schemas()[2].line(), None);
    assert!(s.warnings().is_empty());
    assert_eq!(
        archives_for(&s, "carbon.agents.a.cpu"),
        ("carbon".into(), vec![(60, 129600)])
    );
    assert_eq!(
        archives_for(&s, "app.carbon.x"),
        ("default_1min_for_1day".into(), vec![(60, 1440)])
    );
}

#[test]
fn embedded_files() {
    let s = Schemas::embedded().unwrap_or_else(|e| panic!("shipped files load: {e}"));
    assert!(s.warnings().is_empty(), "{:?}", warnings(&s));
    assert_eq!(names(&s), ["carbon", "default", "default"]);
    let rules: Vec<_> = s
        .aggregation_rules()
        .iter()
        .map(|r| {
            (
                r.name(),
                r.pattern(),
                r.x_files_factor(),
                r.aggregation_method(),
            )
        })
        .collect();
    use AggregationMethod::*;
    assert_eq!(
        rules,
        vec![
            ("min", Some("\\.min$"), Some(0.1), Some(Min)),
            ("max", Some("\\.max$"), Some(0.1), Some(Max)),
            ("sum", Some("\\.count$"), Some(0.0), Some(Max)),
            ("default_average", Some(".*"), Some(0.5), Some(Average)),
            ("default", None, None, None),
        ]
    );
    assert_eq!(
        s.resolve("carbon.agents.host.cache.size.max"),
        Resolved {
            archives: vec![(60, 129600)],
            x_files_factor: 0.1,
            aggregation_method: Max,
            schema_name: "carbon".into(),
            aggregation_name: "max".into(),
        }
    );
    assert_eq!(
        s.resolve("stats.requests.count"),
        Resolved {
            archives: vec![(60, 1440), (300, 8640), (3600, 26280)],
            x_files_factor: 0.0,
            aggregation_method: Max,
            schema_name: "default".into(),
            aggregation_name: "sum".into(),
        }
    );
}

#[test]
fn load_from_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = Schemas::load(dir.path()).unwrap_err();
    let path = dir.path().join("storage-schemas.conf");
    assert_eq!(
        e,
        SchemaError {
            file: path.display().to_string(),
            line: None,
            message: "missing required config".into()
        }
    );
    assert_eq!(
        e.to_string(),
        format!("{}: missing required config", path.display())
    );

    std::fs::write(&path, "[a]\npattern = ^a\\.\nretentions = 10s:1h\n").unwrap();
    let s = Schemas::load(dir.path()).unwrap();
    assert_eq!(names(&s), ["a", "default"]);
    let w = warnings(&s);
    assert_eq!(w.len(), 1);
    let agg = dir.path().join("storage-aggregation.conf");
    assert!(
        w[0].starts_with(&format!(
            "{}: not found or wrong perms, ignoring (",
            agg.display()
        )),
        "{w:?}"
    );
    assert_eq!(s.resolve("a.b").aggregation_name, "default");

    std::fs::write(&agg, "[s]\npattern = sum$\naggregationMethod = sum\n").unwrap();
    let s = Schemas::load(dir.path()).unwrap();
    assert!(s.warnings().is_empty());
    let r = s.resolve("a.sum");
    assert_eq!(
        (r.archives, r.aggregation_method, r.x_files_factor),
        (vec![(10, 360)], AggregationMethod::Sum, 0.5)
    );

    std::fs::write(&path, b"[a]\npattern = \xff\n").unwrap();
    assert_eq!(
        Schemas::load(dir.path()).unwrap_err().to_string(),
        format!(
            "{}:2: not valid UTF-8 (byte 14 of the file)",
            path.display()
        )
    );
    std::fs::write(&path, "[a]\nretentions = 1min:1d\npattern = x\n").unwrap();
    assert_eq!(
        Schemas::load(dir.path()).unwrap_err().to_string(),
        format!("{}:2: [a] retentions: Invalid unit 'min'", path.display())
    );
    assert!(Schemas::load(Path::new("/nonexistent/carbide")).is_err());
}

#[test]
fn first_match_wins_and_search_is_unanchored() {
    let s = schemas(
        "[servers]\npattern = servers\nretentions = 10s:1h\n\
         [anchored]\npattern = ^servers\\.web\nretentions = 1m:1d\n\
         [end]\npattern = \\.p99$\nretentions = 5m:30d\n",
    );
    assert_eq!(
        archives_for(&s, "prod.servers.web1.cpu"),
        ("servers".into(), vec![(10, 360)])
    );
    // The earlier section wins even though the later one is more specific.
    assert_eq!(archives_for(&s, "servers.web1.cpu").0, "servers");
    assert_eq!(archives_for(&s, "api.latency.p99").0, "end");
    assert_eq!(archives_for(&s, "api.latency.p99x").0, "default");
    // No match at all: carbon's built-in default.
    assert_eq!(
        archives_for(&s, "other"),
        ("default".into(), vec![(60, 10080)])
    );
    assert_eq!(archives_for(&s, "").0, "default");
}

#[test]
fn retention_forms() {
    let s = schemas(
        "[multi]\npattern = ^m\nretentions = 10s:6h , 1m:7d,10m:5y\n\
         [plain]\npattern = ^p\nretentions = 60:1440\n\
         [odd]\npattern = ^o\nretentions = 7s:1m\n\
         [unsorted]\npattern = ^u\nretentions = 1h:1y,60:1d\n\
         [weeks]\npattern = ^w\nretentions = 1w:104\n",
    );
    assert_eq!(
        listing(&s)
            .into_iter()
            .map(|(n, _, a)| (n, a))
            .collect::<Vec<_>>(),
        vec![
            ("multi".into(), vec![(10, 2160), (60, 10080), (600, 262800)]),
            ("plain".into(), vec![(60, 1440)]),
            ("odd".into(), vec![(7, 8)]),
            // Finest first, as whisper's create stores them.
            ("unsorted".into(), vec![(60, 1440), (3600, 8760)]),
            ("weeks".into(), vec![(604800, 104)]),
            ("default".into(), vec![(60, 10080)]),
        ]
    );
}

#[test]
fn carbon_retention_parser() {
    assert_eq!(parse_carbon_retention("7s:1m"), Ok((7, 8)));
    assert_eq!(parse_carbon_retention("60s:1d"), Ok((60, 1440)));
    assert_eq!(parse_carbon_retention("10s:30"), Ok((10, 30)));
    assert_eq!(
        parse_carbon_retention("1min:1d"),
        Err("Invalid unit 'min'".into())
    );
    assert_eq!(
        parse_carbon_retention("1m:1mo"),
        Err("Invalid unit 'mo'".into())
    );
    assert_eq!(
        parse_carbon_retention(""),
        Err("not enough values to unpack (expected 2, got 1)".into())
    );
    assert_eq!(
        parse_carbon_retention("1:2:3"),
        Err("too many values to unpack (expected 2)".into())
    );
    assert_eq!(
        parse_carbon_retention("1.5:10"),
        Err("Invalid precision specification '1.5'".into())
    );
    assert_eq!(
        parse_carbon_retention("60:1.5d"),
        Err("Invalid retention specification '1.5d'".into())
    );
}

#[test]
fn fatal_retentions() {
    assert_eq!(
        error("[a]\npattern = x\nretentions = 1min:1d\n"),
        "storage-schemas.conf:3: [a] retentions: Invalid unit 'min'"
    );
    assert_eq!(
        error("[a]\npattern = x\nretentions = 60s:1d,\n"),
        "storage-schemas.conf:3: [a] retentions: not enough values to unpack (expected 2, got 1)"
    );
    assert_eq!(
        error("[a]\npattern = x\nretentions = 60s:1d:2\n"),
        "storage-schemas.conf:3: [a] retentions: too many values to unpack (expected 2)"
    );
    assert_eq!(
        error("[carbon]\npattern = x\nretentions = 60:1x\n"),
        "storage-schemas.conf:3: [carbon] retentions: Invalid unit 'x'"
    );
    // Fatal even when the section would have been skipped for its missing pattern, because
    // carbon parses retentions first.
    assert_eq!(
        error("[a]\nretentions = 60:1d, 10:1D\n"),
        "storage-schemas.conf:2: [a] retentions: Invalid retention specification '1D'"
    );
    assert_eq!(
        error("[a]\npattern = x\nretentions = 0s:1d\n"),
        "storage-schemas.conf:3: [a] retentions: division by zero"
    );
    assert_eq!(
        error("[a]\npattern = x\nretentions = 0:10,60:1d\n"),
        "storage-schemas.conf:3: [a] retentions: integer modulo by zero (a precision of 0 \
         cannot be combined with other archives)"
    );
    // A fatal error anywhere refuses the file, also after good sections.
    assert_eq!(
        error("[ok]\npattern = x\nretentions = 1m:1d\n\n[b]\npattern = y\nretentions = 1h:1q\n"),
        "storage-schemas.conf:7: [b] retentions: Invalid unit 'q'"
    );
}

#[test]
fn bad_regex_is_fatal() {
    assert_eq!(
        error("[a]\npattern = ^carbon.(\nretentions = 60:1d\n"),
        "storage-schemas.conf:2: [a] pattern: invalid regular expression '^carbon.(': unclosed \
         group"
    );
    assert_eq!(
        error("[a]\npattern = ^(?!carbon)\nretentions = 60:1d\n"),
        "storage-schemas.conf:2: [a] pattern: invalid regular expression '^(?!carbon)': \
         look-around, including look-ahead and look-behind, is not supported (Python's re \
         supports this but Carbide's regex engine does not; rewrite the pattern without it)"
    );
}

#[test]
fn skipped_sections() {
    let s = schemas(
        "[no_retentions]\npattern = ^a\n\n\
         [no_pattern]\nretentions = 60:1d\n\n\
         [empty_pattern]\npattern =\nretentions = 60:1d\n\n\
         [same_precision]\npattern = ^b\nretentions = 60:1d,1m:2d\n\n\
         [not_dividing]\npattern = ^c\nretentions = 180s:7d,300s:30d\n\n\
         [shorter]\npattern = ^d\nretentions = 1m:30d,5m:1d\n\n\
         [few_points]\npattern = ^e\nretentions = 1m:4,5m:1d\n\n\
         [good]\npattern = .\nretentions = 60s:7d,300s:30d\n",
    );
    assert_eq!(names(&s), ["good", "default"]);
    assert_eq!(
        warnings(&s),
        [
            "storage-schemas.conf:1: [no_retentions] missing 'retentions', skipping section",
            "storage-schemas.conf:4: [no_pattern] missing 'pattern', skipping section",
            "storage-schemas.conf:8: [empty_pattern] missing 'pattern', skipping section",
            "storage-schemas.conf:13: [same_precision] retentions: invalid archive list \
             '60:1d,1m:2d', skipping section: A Whisper database may not be configured having \
             two archives with the same precision (archive0: (60, 1440), archive1: (60, 2880))",
            "storage-schemas.conf:17: [not_dividing] retentions: invalid archive list \
             '180s:7d,300s:30d', skipping section: Higher precision archives' precision must \
             evenly divide all lower precision archives' precision (archive0: 180, archive1: \
             300)",
            "storage-schemas.conf:21: [shorter] retentions: invalid archive list '1m:30d,5m:1d', \
             skipping section: Lower precision archives must cover larger time intervals than \
             higher precision archives (archive0: 2592000 seconds, archive1: 86400 seconds)",
            "storage-schemas.conf:25: [few_points] retentions: invalid archive list '1m:4,5m:1d', \
             skipping section: Each archive must have at least enough points to consolidate to \
             the next archive (archive1 consolidates 5 of archive0's points but it has only 4 \
             total points)",
        ]
    );
    // A skipped section hands its metrics to the next one that matches.
    assert_eq!(archives_for(&s, "b.x").0, "good");
}

#[test]
fn config_file_errors() {
    assert_eq!(
        error("[a]\npattern = x\nretentions = 60:1d\n[a]\n"),
        "storage-schemas.conf:4: section 'a' already exists"
    );
    assert_eq!(
        error("[a]\npattern = x\nPattern = y\n"),
        "storage-schemas.conf:3: option 'pattern' in section 'a' already exists"
    );
    assert_eq!(
        error("pattern = x\n[a]\n"),
        "storage-schemas.conf:1: File contains no section headers: 'pattern = x' comes before \
         any [section]"
    );
    assert_eq!(
        error("[a]\npattern x\nretentions = 60:1d\n"),
        "storage-schemas.conf:2: parsing error: 'pattern x' is not a [section], key = value, \
         comment or indented continuation"
    );
    assert_eq!(
        error("[a]\npattern = 100%\nretentions = 60:1d\n"),
        "storage-schemas.conf:2: [a] pattern: '%' must be followed by '%' or '(', found: '%'"
    );
    assert_eq!(
        error("[a]\nretentions = 60:1d\npattern = x\n  [b]\nkey = y\n"),
        "storage-schemas.conf:4: No section: 'b' (configparser reads this line as a \
         continuation of the value above it; unindent it)"
    );
}

#[test]
fn config_dialect() {
    // Keys are case-insensitive, `:` delimits too, `;` after a value is part of it, `%%` is
    // `%`, whole-line comments are ignored, values are stripped.
    let s = schemas(
        "; leading comment\n[Mixed Case]\nPATTERN: ^a\\.b%%c ; not a comment\n# c\n\
         RetEntions   =   1m:1d   \n",
    );
    assert_eq!(
        listing(&s)[0],
        (
            "Mixed Case".into(),
            Some("^a\\.b%c ; not a comment".into()),
            vec![(60, 1440)]
        )
    );
    // Indented lines continue a value (joined by newlines), across blank and comment lines.
    let s = schemas("[a]\npattern = x\nretentions = 10s:1h,\n  1m:1d,\n\n  # c\n   10m:30d\n");
    assert_eq!(listing(&s)[0].2, vec![(10, 360), (60, 1440), (600, 4320)]);
    // ... so an indented key is part of the value above: this section has no retentions.
    let s = schemas("[a]\npattern = x\n  retentions = 60:1d\n");
    assert_eq!(names(&s), ["default"]);
    assert_eq!(
        warnings(&s),
        ["storage-schemas.conf:1: [a] missing 'retentions', skipping section"]
    );
    // A trailing section text after `]` makes configparser open the section but carbon's line
    // scan not visit it.
    let s = schemas("[a] ; comment\npattern = x\nretentions = 60:1d\n");
    assert_eq!(names(&s), ["default"]);
    assert!(s.warnings().is_empty());
}

#[test]
fn default_section_inheritance() {
    let s = schemas(
        "[DEFAULT]\nretentions = 1m:7d\nbase = ^servers\n\n\
         [web]\npattern = %(base)s\\.web\n\n\
         [db]\npattern = %(base)s\\.db\nretentions = 10s:1d\n",
    );
    // [DEFAULT] is visited as a section too; having no pattern it is skipped.
    assert_eq!(
        listing(&s),
        vec![
            (
                "web".into(),
                Some("^servers\\.web".into()),
                vec![(60, 10080)]
            ),
            ("db".into(), Some("^servers\\.db".into()), vec![(10, 8640)]),
            ("default".into(), None, vec![(60, 10080)]),
        ]
    );
    assert_eq!(
        warnings(&s),
        ["storage-schemas.conf:1: [DEFAULT] missing 'pattern', skipping section"]
    );
    // A [DEFAULT] with a pattern is itself a schema, in file position.
    let s = schemas("[a]\npattern = ^a\n[DEFAULT]\npattern = .\nretentions = 1h:1y\n");
    assert_eq!(names(&s), ["a", "DEFAULT", "default"]);
    assert_eq!(archives_for(&s, "a.x"), ("a".into(), vec![(3600, 8760)]));
}

#[test]
fn aggregation_sections() {
    let s = aggregation(
        "[min]\npattern = \\.min$\nxFilesFactor = 0.1\naggregationMethod = min\n\
         [only_xff]\npattern = \\.xff$\nxfilesfactor = 0\n\
         [only_method]\npattern = \\.last$\nAGGREGATIONMETHOD = last\n\
         [bad_xff]\npattern = .\nxFilesFactor = half\n\
         [no_pattern]\naggregationMethod = sum\n\
         [underscores]\npattern = \\.u$\nxFilesFactor = 0.2_5\naggregationMethod = absmax\n",
    );
    let r = |m: &str| {
        let r = s.resolve(m);
        (r.aggregation_name, r.x_files_factor, r.aggregation_method)
    };
    use AggregationMethod::*;
    assert_eq!(r("a.min"), ("min".into(), 0.1, Min));
    assert_eq!(r("a.xff"), ("only_xff".into(), 0.0, Average));
    assert_eq!(r("a.last"), ("only_method".into(), 0.5, Last));
    assert_eq!(r("a.u"), ("underscores".into(), 0.25, AbsMax));
    assert_eq!(r("a.other"), ("default".into(), 0.5, Average));
    assert_eq!(
        warnings(&s),
        [
            "storage-aggregation.conf:13: [bad_xff] xfilesfactor: could not convert string to \
             float: 'half', skipping section",
            "storage-aggregation.conf:14: [no_pattern] missing 'pattern', skipping section",
        ]
    );
}

#[test]
fn aggregation_fatal() {
    assert_eq!(
        aggregation_error("[a]\npattern = x\nxFilesFactor = 1.5\n"),
        "storage-aggregation.conf:3: [a] xfilesfactor: '1.5' is out of [0, 1]"
    );
    assert_eq!(
        aggregation_error("[a]\npattern = x\nxFilesFactor = nan\n"),
        "storage-aggregation.conf:3: [a] xfilesfactor: 'nan' is out of [0, 1]"
    );
    assert_eq!(
        aggregation_error("[a]\npattern = x\naggregationMethod = Average\n"),
        "storage-aggregation.conf:3: [a] aggregationmethod: 'Average' is not one of whisper's \
         methods (average, sum, last, max, min, avg_zero, absmax, absmin)"
    );
    // Fatal even without a pattern: carbon checks the values first.
    assert_eq!(
        aggregation_error("[a]\naggregationMethod = median\n"),
        "storage-aggregation.conf:2: [a] aggregationmethod: 'median' is not one of whisper's \
         methods (average, sum, last, max, min, avg_zero, absmax, absmin)"
    );
    assert_eq!(
        aggregation_error("[a]\npattern = (\n"),
        "storage-aggregation.conf:2: [a] pattern: invalid regular expression '(': unclosed group"
    );
    // ... but an unparsable xFilesFactor skips before the method is looked at.
    let s = aggregation("[a]\npattern = x\nxFilesFactor = ?\naggregationMethod = median\n");
    assert_eq!(s.aggregation_rules().len(), 1);
}

#[test]
fn never_panics_on_odd_input() {
    for text in [
        "",
        "\n",
        "[",
        "]",
        "[]",
        "[[]]",
        "=",
        ":",
        "%",
        "[a]\n=\n",
        "[a]\n\u{0}=\u{0}\n",
        "[a]\r\npattern=.\rretentions=1s:1s\r\n",
        "\u{feff}[a]\n",
        "[a]\npattern=.\nretentions=,",
        "[a]\npattern=.\nretentions=99999999999999999999999999999999999999999999:1",
        "[a]\npattern=.\nretentions=1y:99999999999999999999999999999999999999999999y",
        "[a]\npattern=(?i)\u{130}\nretentions=1:1",
    ] {
        let _ = Schemas::from_strs(text, Some(text));
    }
}

#[test]
fn many_sections() {
    let mut text = String::from("[DEFAULT]\nretentions = 1m:1d\n");
    for i in 0..2000 {
        text.push_str(&format!("[s{i}]\npattern = ^m{i}\\.\n"));
    }
    let s = schemas(&text);
    assert_eq!(s.storage_schemas().len(), 2001);
    assert_eq!(
        archives_for(&s, "m1999.x"),
        ("s1999".into(), vec![(60, 1440)])
    );
    assert_eq!(
        warnings(&s),
        ["storage-schemas.conf:1: [DEFAULT] missing 'pattern', skipping section"]
    );
}
