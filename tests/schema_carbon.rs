//! Carbide's schema loading against the real thing: the same config texts go through carbon
//! 1.1.10's `loadStorageSchemas`/`loadAggregationSchemas` (and, for the dialect alone, through
//! Python 3's `configparser` plus carbon's section scan) in the test venv, and the kept
//! sections, their retentions/xff/method, the skipped-section count, fatal-or-not and the
//! section each test metric resolves to must agree.
//!
//! The generated files avoid the documented, deliberate divergences: regexes outside the
//! common dialect, retentions that do not fit whisper's 32-bit fields, and archives with a
//! precision or point count of 0 (Carbide's whisper refuses them; carbon accepts them alone).

mod common;

use carbide::schema::config::ConfigFile;
use carbide::schema::{parse_storage_aggregation, parse_storage_schemas, SchemaError};
use serde_json::{json, Value};

/// Runs both carbon loaders on each (schemas, aggregation) pair, in temp files.
const CARBON_DRIVER: &str = r#"
import json, os, sys, tempfile
from carbon.conf import settings
settings.setdefault("CONF_DIR", tempfile.gettempdir())
settings.setdefault("LOCAL_DATA_DIR", tempfile.gettempdir())
from carbon import state, storage
from carbon.database import WhisperDatabase
state.database = WhisperDatabase(settings)

class Log:
    def __init__(self): self.lines = []
    def err(self, m=None, *a, **k): self.lines.append(str(m))
    def msg(self, m=None, *a, **k): self.lines.append(str(m))
log = Log()
storage.log = log

def load(loader, path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    log.lines = []
    try:
        return loader(), len(log.lines)
    except BaseException as e:
        return type(e).__name__, 0

out = []
for schemas_text, aggregation_text, metrics in json.load(sys.stdin):
    d = tempfile.mkdtemp()
    storage.STORAGE_SCHEMAS_CONFIG = os.path.join(d, "storage-schemas.conf")
    storage.STORAGE_AGGREGATION_CONFIG = os.path.join(d, "storage-aggregation.conf")
    r = {}
    s, r["schema_logs"] = load(storage.loadStorageSchemas, storage.STORAGE_SCHEMAS_CONFIG, schemas_text)
    a, r["aggregation_logs"] = load(storage.loadAggregationSchemas, storage.STORAGE_AGGREGATION_CONFIG, aggregation_text)
    if isinstance(s, str):
        r["schemas_error"] = s
    else:
        r["schemas"] = [[x.name, getattr(x, "pattern", None),
                         sorted([list(t.getTuple()) for t in x.archives], key=lambda t: t[0])] for x in s]
        r["schema_for"] = [next(x.name for x in s if x.matches(m)) for m in metrics]
    if isinstance(a, str):
        r["aggregation_error"] = a
    else:
        r["aggregation"] = [[x.name, getattr(x, "pattern", None), x.archives[0], x.archives[1]] for x in a]
        r["aggregation_for"] = [next(x.name for x in a if x.matches(m)) for m in metrics]
    out.append(r)
print(json.dumps(out))
"#;

/// configparser + carbon's OrderedConfigParser scan, reporting what each section yields.
const CONFIGPARSER_DRIVER: &str = r#"
import configparser, json, os, sys, tempfile
out = []
d = tempfile.mkdtemp()
path = os.path.join(d, "f.conf")
for text in json.load(sys.stdin):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    c = configparser.ConfigParser()
    try:
        c.read(path, encoding="utf-8")
    except configparser.Error as e:
        line = getattr(e, "lineno", None)
        if isinstance(e, configparser.ParsingError) and not line:
            line = e.errors[0][0]
        out.append({"error": type(e).__name__, "line": line})
        continue
    sections = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                sections.append(line[1:-1])
    result = []
    for s in sections:
        try:
            result.append([s, [[k, v] for k, v in c.items(s)]])
        except configparser.Error as e:
            result.append([s, type(e).__name__])
    out.append({"sections": result})
print(json.dumps(out))
"#;

fn run_python(script: &str, input: &Value) -> Value {
    common::python_json(script, input)
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SECTIONS: &[&str] = &[
    "[a]",
    "[b]",
    "[c]",
    "[carbon]",
    "[DEFAULT]",
    "  [d]",
    "[e] trailing",
    "[Mixed Case]",
    "[x]]",
    "[]",
];
const PATTERNS: &[&str] = &[
    "pattern = ^carbon\\.",
    "pattern = .*",
    "pattern = \\.count$",
    "pattern = a",
    "pattern = ^(web|db)\\d+\\.",
    "PATTERN: b",
    "pattern =",
    "pattern = %(base)s\\.x",
    "pattern = 100%%",
    "pattern = (",
    "pattern = [",
];
const RETENTIONS: &[&str] = &[
    "retentions = 60:90d",
    "retentions = 60s:1d",
    "retentions = 10s:6h,1m:7d,10m:5y",
    "retentions = 1m:30d, 5m:1y",
    "retentions = 7s:1m",
    "retentions = 1h:1y,60:1d",
    "retentions = 60:1d,1m:2d",
    "retentions = 180s:7d,300s:30d",
    "retentions = 1m:30d,5m:1d",
    "retentions = 1m:4,5m:1d",
    "retentions = 1min:1d",
    "retentions = 60s:1d,",
    "retentions = 1:2:3",
    "retentions = 0s:1d",
    "retentions = 0:10,60:1d",
    "Retentions: 1w:520",
    "retentions = %(r)s",
];
const AGGREGATION_KEYS: &[&str] = &[
    "xFilesFactor = 0",
    "xFilesFactor = 0.5",
    "xfilesfactor = 1",
    "xFilesFactor = .25",
    "xFilesFactor = 1e-1",
    "xFilesFactor = 0_5",
    "xFilesFactor = 1.5",
    "xFilesFactor = -0.1",
    "xFilesFactor = abc",
    "xFilesFactor = nan",
    "xFilesFactor = inf",
    "aggregationMethod = average",
    "aggregationMethod = sum",
    "aggregationMethod = max",
    "aggregationMethod = avg_zero",
    "aggregationMethod = absmin",
    "aggregationMethod = Average",
    "aggregationMethod = median",
    "AGGREGATIONMETHOD: last",
];
const OTHER: &[&str] = &[
    "",
    "",
    "# comment",
    "; comment",
    "  continued",
    "   1h:1y",
    "base = ^servers",
    "r = 60:1d",
    "junk line",
    "= value",
    "key = 5%",
    "  # indented comment",
];
const METRICS: &[&str] = &[
    "carbon.agents.a.cpu",
    "servers.x",
    "a.count",
    "web1.load",
    "b",
    "100%",
    "zzz",
    "",
    "x.a.b",
    "db22.q.count",
];

fn generate(rng: &mut Rng, keys: &[&str]) -> String {
    let mut text = String::new();
    let lines = 1 + rng.below(14);
    for i in 0..lines {
        let kind = if i == 0 { 0 } else { rng.below(10) };
        let line = match kind {
            0 | 1 => rng.pick(SECTIONS),
            2 | 3 => rng.pick(PATTERNS),
            4..=6 => rng.pick(keys),
            _ => rng.pick(OTHER),
        };
        text.push_str(line);
        text.push_str(["\n", "\n", "\n", "\r\n", "\r"][rng.below(5) as usize]);
    }
    text
}

fn schema_json(text: &str, metrics: &[&str]) -> Value {
    let mut warnings = Vec::new();
    match parse_storage_schemas("storage-schemas.conf", text, &mut warnings) {
        Err(_) => json!({ "error": true }),
        Ok(list) => json!({
            "schemas": list.iter().map(|s| json!([s.name(), s.pattern(), s.archives()])).collect::<Vec<_>>(),
            "for": metrics.iter().map(|m| list.iter().find(|s| s.matches(m)).map(|s| s.name())).collect::<Vec<_>>(),
            "logs": warnings.len(),
        }),
    }
}

fn aggregation_json(text: &str, metrics: &[&str]) -> Value {
    let mut warnings = Vec::new();
    match parse_storage_aggregation("storage-aggregation.conf", text, &mut warnings) {
        Err(_) => json!({ "error": true }),
        Ok(list) => json!({
            "rules": list.iter().map(|r| json!([r.name(), r.pattern(), r.x_files_factor(), r.aggregation_method().map(|m| m.name())])).collect::<Vec<_>>(),
            "for": metrics.iter().map(|m| list.iter().find(|r| r.matches(m)).map(|r| r.name())).collect::<Vec<_>>(),
            "logs": warnings.len(),
        }),
    }
}

fn carbon_schema_json(r: &Value) -> Value {
    if r.get("schemas_error").is_some() {
        return json!({ "error": true });
    }
    json!({ "schemas": r["schemas"], "for": r["schema_for"], "logs": r["schema_logs"] })
}

fn carbon_aggregation_json(r: &Value) -> Value {
    if r.get("aggregation_error").is_some() {
        return json!({ "error": true });
    }
    json!({ "rules": r["aggregation"], "for": r["aggregation_for"], "logs": r["aggregation_logs"] })
}

#[test]
fn matches_carbon_on_generated_files() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases: Vec<(String, String)> = vec![
        (
            include_str!("../storage-schemas/storage-schemas.conf").to_string(),
            include_str!("../storage-schemas/storage-aggregation.conf").to_string(),
        ),
        (
            "[carbon]\npattern = ^carbon\\.\nretentions = 60:90d\n\n[default]\npattern = .*\n\
             retentions = 60s:1d,5m:30d,1h:3y\n"
                .to_string(),
            "[min]\npattern = \\.min$\nxFilesFactor = 0.1\naggregationMethod = min\n".to_string(),
        ),
    ];
    for _ in 0..1500 {
        let schemas = generate(&mut rng, RETENTIONS);
        let aggregation = generate(&mut rng, AGGREGATION_KEYS);
        cases.push((schemas, aggregation));
    }
    let input: Vec<Value> = cases.iter().map(|(s, a)| json!([s, a, METRICS])).collect();
    let carbon = run_python(CARBON_DRIVER, &Value::from(input));
    let carbon = carbon.as_array().expect("a list");
    assert_eq!(carbon.len(), cases.len());
    let (mut loaded, mut refused, mut skipped) = (0, 0, 0);
    for ((schemas, aggregation), theirs) in cases.iter().zip(carbon) {
        let ours = schema_json(schemas, METRICS);
        assert_eq!(
            ours,
            carbon_schema_json(theirs),
            "storage-schemas.conf:\n{schemas}\n---"
        );
        let ours_agg = aggregation_json(aggregation, METRICS);
        assert_eq!(
            ours_agg,
            carbon_aggregation_json(theirs),
            "storage-aggregation.conf:\n{aggregation}\n---"
        );
        for v in [&ours, &ours_agg] {
            if v.get("error").is_some() {
                refused += 1;
            } else {
                loaded += 1;
                skipped += v["logs"].as_u64().unwrap_or(0);
            }
        }
    }
    // The generator must exercise all three outcomes, or the comparison proves little.
    assert!(
        loaded > 500 && refused > 500 && skipped > 200,
        "{loaded} {refused} {skipped}"
    );
}

/// Maps Carbide's messages back to the configparser exception carbon would have raised.
fn python_error_class(e: &SchemaError) -> &'static str {
    let m = e.message.as_str();
    let classes = [
        ("section ", "DuplicateSectionError"),
        ("option ", "DuplicateOptionError"),
        (
            "File contains no section headers",
            "MissingSectionHeaderError",
        ),
        ("parsing error", "ParsingError"),
        ("No section", "NoSectionError"),
        ("'%' must be followed", "InterpolationSyntaxError"),
        ("bad interpolation variable", "InterpolationSyntaxError"),
        ("Bad value substitution", "InterpolationMissingOptionError"),
        ("Recursion limit exceeded", "InterpolationDepthError"),
    ];
    // Item errors are prefixed with `[section] key: `.
    let m = match m.strip_prefix('[') {
        Some(_) => m.split_once(": ").map_or(m, |(_, rest)| rest),
        None => m,
    };
    classes
        .iter()
        .find(|(prefix, _)| m.starts_with(prefix))
        .map_or("?", |(_, class)| class)
}

#[test]
fn config_dialect_matches_configparser() {
    let fragments: &[&str] = &[
        "[a]",
        "[b]",
        " [a]",
        "[DEFAULT]",
        "[a] x",
        "[]]",
        "[ s ]",
        "x = 1",
        "X: 2",
        "x=",
        "y = a = b",
        "  cont",
        "    deeper",
        "",
        "   ",
        "# c",
        "; c",
        "  ; c",
        "\ty=%%",
        "z = %(x)s",
        "k ; v = 1",
        "Ω = é",
        "\u{3000}k = v",
        "k\u{a0}= v",
        "\u{1c}k = v",
        "K = x ; y",
        "r = 1%%",
        "[c]",
    ];
    // Lines that make configparser fail, mixed in rarely so most files get to the sections.
    let failing: &[&str] = &[
        "[]",
        "w = %(w)s",
        "v = %(nope)s",
        "u = %(x",
        "t = 5%",
        "bad",
        "= v",
        ": v",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut texts = Vec::new();
    for _ in 0..3000 {
        // Mostly start with a header, or configparser stops at the first key.
        let mut text = match rng.below(5) {
            0 => String::new(),
            _ => format!("{}\n", rng.pick(&["[first]", "[DEFAULT]", "[a]"])),
        };
        for _ in 0..rng.below(12) {
            let line = if rng.below(12) == 0 {
                rng.pick(failing)
            } else {
                rng.pick(fragments)
            };
            text.push_str(line);
            text.push_str(["\n", "\n", "\r\n", "\r"][rng.below(4) as usize]);
        }
        texts.push(text);
    }
    let python = run_python(CONFIGPARSER_DRIVER, &json!(texts));
    let python = python.as_array().expect("a list");
    let mut sections_seen = 0;
    for (text, theirs) in texts.iter().zip(python) {
        let ours = match ConfigFile::parse("f.conf", text) {
            Err(e) => json!({ "error": python_error_class(&e), "line": e.line }),
            Ok(config) => {
                let sections: Vec<Value> = config
                    .section_order()
                    .iter()
                    .map(|(name, line)| match config.items(name, *line) {
                        Ok(items) => {
                            sections_seen += 1;
                            json!([
                                name,
                                items
                                    .iter()
                                    .map(|i| json!([i.key, i.value]))
                                    .collect::<Vec<_>>()
                            ])
                        }
                        Err(e) => json!([name, python_error_class(&e)]),
                    })
                    .collect();
                json!({ "sections": sections })
            }
        };
        assert_eq!(&ours, theirs, "text: {text:?}");
    }
    assert!(sections_seen > 1000, "{sections_seen}");
}
