//! carbon's whitelist and blacklist (`USE_WHITELIST`) against carbon 1.1.10 itself: the
//! expected patterns, compile failures, matches and keep/drop verdicts come from the test venv's
//! Python running carbon's own `RegexList.read_list` and `MetricReceiver.metricReceived` on the
//! same file bytes and names. End to end, `carbide serve` reads the files from its schemas
//! directory, drops points over plaintext and pickle, counts the drops in /stats and in its
//! self-metrics, follows edits and deletions of the files, and ignores them when the switch
//! is off.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbide::ingest::filter::{patterns, translate, Lists, MetricFilter, RegexList, Verdict};
use common::server::{free_port, whisper_py_points};
use serde_json::{json, Value};

/// carbon's list reader and receiver filter, run on the lists and names of a JSON request.
/// Each list is written as a file (None: no file) and read by `RegexList.read_list`, with
/// `log.err` captured; each (whitelist, blacklist) pair is applied to every name by the real
/// `MetricReceiver.metricReceived`, whose counter or delivery is recorded.
const ORACLE: &str = r#"
import sys, json, os, tempfile
import carbon.log
errors = []
carbon.log.err = lambda msg, *a, **k: errors.append(str(msg))
from carbon import protocols, instrumentation, events
from carbon.regexlist import RegexList
req = json.load(sys.stdin)
d = tempfile.mkdtemp()
lists, out = [], []
for i, text in enumerate(req['lists']):
    rl = RegexList()
    rl.list_file = os.path.join(d, 'list%d.conf' % i)
    if text is not None:
        with open(rl.list_file, 'wb') as f:
            f.write(text.encode('utf-8'))
    del errors[:]
    rl.read_list()
    lists.append(rl)
    out.append({'patterns': [r.pattern for r in rl.regex_list], 'errors': list(errors),
                'matches': [name in rl for name in req['names']]})
seen = []
instrumentation.increment = lambda stat, *a, **k: seen.append(stat)
events.metricReceived = lambda metric, dp: seen.append('keep')
class Conn:
    def resetTimeout(self):
        pass
verdicts = []
for w, b in req['pairs']:
    protocols.WhiteList = lists[w] if w is not None else RegexList()
    protocols.BlackList = lists[b] if b is not None else RegexList()
    row = []
    for name in req['names']:
        del seen[:]
        protocols.MetricReceiver.metricReceived(Conn(), name, (1.0, 1.0))
        row.append(seen[0])
    verdicts.append(row)
print(json.dumps({'lists': out, 'verdicts': verdicts}))
"#;

struct Oracle {
    lists: Vec<Value>,
    verdicts: Vec<Vec<String>>,
}

fn oracle(
    lists: &[Option<String>],
    names: &[&str],
    pairs: &[(Option<usize>, Option<usize>)],
) -> Oracle {
    let req = json!({ "lists": lists, "names": names, "pairs": pairs });
    let v: Value = common::python_json(ORACLE, &req);
    Oracle {
        lists: v["lists"].as_array().expect("lists").clone(),
        verdicts: v["verdicts"]
            .as_array()
            .expect("verdicts")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|s| s.as_str().expect("verdict").to_string())
                    .collect()
            })
            .collect(),
    }
}

/// The pattern of carbon's `Failed to parse '<pattern>' in '<file>'. Ignoring line`.
fn failed_pattern(msg: &str) -> String {
    let rest = msg
        .strip_prefix("Failed to parse '")
        .unwrap_or_else(|| panic!("unexpected carbon log: {msg}"));
    let end = rest.rfind("' in '").expect("file part");
    rest[..end].to_string()
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Keep => "keep",
        Verdict::Blacklisted => "blacklistMatches",
        Verdict::NotWhitelisted => "whitelistRejects",
    }
}

/// Patterns as carbon users write them, each tried alone against every name.
const PATTERNS: &[&str] = &[
    // Anchors, dots, classes, alternation, digits, case.
    r"^carbon\.",
    r"^servers\.[^.]+\.cpu\.",
    r"\.count$",
    r"^stats\.timers\..*\.upper_\d+$",
    r"(?i)^test\.",
    r"^(foo|bar)\.baz",
    r"collectd\.[a-z0-9_-]+\.interface-lo\.",
    r"\bweb\b",
    r".*",
    r"secret",
    r"^a\.b$",
    r"^[^.]*$",
    r"\d",
    r"\w+\.\w+\.\w+",
    r"\s",
    r"^x{2,3}$",
    r"^x{2}y",
    r"^x{,2}y",
    r"^x{,}y",
    r";env=prod(;|$)",
    r"\.max\Z",
    r"(?i)^äbc",
    r"^é\.",
    r"\u00e9t\u00e9",
    r"\x41BC",
    r"\101BC",
    r"\0",
    r"^a.c$",
    r"\.tmp$|\.bak$",
    r"^servers\.(web|db)\d+\.",
    r"^stats_counts\.",
    r"\.(p50|p99)$",
    r"^servers\.[a-z]+-\d{2}\.",
    r".*\.avg$",
    r"^(?!carbon\.)",
    r"\d{2,}",
    r"^[A-Z]",
    r"(?i)cpu",
    r"^\w+$",
    r"\W",
    r"^[\w.]+$",
    r"[^\w.]",
    r"\S\s\S",
    r"(?i)^k",
    r"(?i)^s\.",
    r"(?i)^i",
    r"(?i)ß",
    r"(?i)^[a-z]+$",
    r"^[\s]",
    r"[^\S]",
    // Look-around and backreferences (fancy-regex).
    r"^servers\.(?!prod)",
    r"^servers\.(?=prod)",
    r"(?<=\.)tmp$",
    r"(?<!web)\.cpu\.",
    r"^(\w+)\.\1\.",
    r"^(?P<host>[^.]+)\.(?P=host)\.",
    r"^x*+x",
    r"^(?>web|w)eb",
    // Python's literal braces and brackets, where Rust reads syntax.
    r"^x{",
    r"tag{env=",
    r"^a{}",
    r"^bracket[[]",
    r"^[[:alpha:]]+$",
    r"^[a&&b]",
    r"^[~]",
    r"^[]x]",
    r"^[^]x]",
    r"^[a-]",
    r"[\b]",
    r"\<x\>",
    r"a]",
    r"a}",
    r"#",
    r"\#x",
    r"\ x",
    r"\.",
    r"(?x) ^ foo \. bar  # a comment",
    r"(?x: ^ foo \. ) bar",
    r"(?#a comment)^foo",
    r"(?s)^a.b",
    r"(?m)^foo$",
    r"(?i:FOO)\.bar",
    r"(?-i:foo)",
    r"^(?:ab)*c",
    r"a*?b",
    r"a{1,2}?b",
    r"(?u)\w",
    r"(a)(?(1)b|c)",
    r"^(?P<g>a)?(?(g)b|c)",
    r"^(?=a){2}ab",
    r"^(?!x)*a",
    // Invalid in Python: logged and skipped by carbon, and by Carbide.
    r"(unclosed",
    r"foo)",
    r"[z-a]",
    r"*foo",
    r"a**",
    r"\e",
    r"\z",
    r"abc(?i)",
    r"x|(?i)y",
    r"(?<name>a)",
    r"\18",
    r"a{3,2}",
    r"(?L)a",
    r"[\d-z]",
    r"\x4",
    r"[abc",
    r"(?P=nope)",
    r"\",
    r"^*",
    r"(?-i)a",
    r"(?z)a",
    r"(?x)a* ?",
    r"a*(?#c)?",
    r"(?<=a|bc)x",
    r"\1(a)",
    r"(a\1)",
    r"(?(2)a|b)(c)",
    r"(a)(?(1)b|c|d)",
    r"(?P<g>a)(?P<g>b)",
];

const NAMES: &[&str] = &[
    "carbon.agents.host-a.cpuUsage",
    "servers.web1.cpu.user",
    "servers.prod1.cpu.user",
    "servers.db2.mem",
    "servers.servers.x",
    "web.web.cpu",
    "webby.cpu",
    "stats.timers.api.upper_90",
    "stats.timers.api.upper_x",
    "TEST.foo",
    "test.foo",
    "foo.baz",
    "bar.baz",
    "qux.baz",
    "a.b",
    "a.b.c",
    "abc",
    "ABC",
    "x.count",
    "x.count.y",
    "xx",
    "xxx",
    "xxxx",
    "y",
    "xy",
    "xxy",
    "xxxy",
    "x{",
    "tag{env=\"prod\"}",
    "a{}",
    "bracket[",
    "alpha",
    "&b",
    "~x",
    "]x",
    "x]",
    "a-",
    "<x>",
    "a]",
    "a}",
    "#x",
    " x",
    "foo.bar",
    "FOO.bar",
    "foobar",
    "a\u{8}b",
    "metric;env=prod",
    "metric;env=production",
    "metric;env=prod;dc=1",
    "a.max",
    "a.maxi",
    "äbc.x",
    "ÄBC.x",
    "é.x",
    "été",
    "a.b.tmp",
    "a.b.bak",
    "web.cpu.tmp",
    "host.cpu.x",
    "collectd.host_1.interface-lo.if_octets",
    "collectd.host_1.interface-eth0.if_octets",
    "a b",
    "٣.x",
    "a\u{0}b",
    "x.secret.y",
    "aab",
    "abbc",
    "ac",
    "ab",
    "b",
    "stats_counts.x",
    "a.p50",
    "a.p999",
    "servers.web-01.cpu",
    "x.avg",
    "x.avgs",
    "Upper.x",
    "e\u{301}x",
    "x.e\u{301}",
    "a\u{1c}b",
    "\u{1f}x",
    "a\u{203f}b",
    "a\u{a0}b",
    "x\u{2163}",
    "\u{2460}.x",
    "\u{212a}x",
    "\u{17f}.x",
    "Straße",
    "STRA\u{1e9e}E",
];

/// Multi-line files: comments, blank lines, CRLF and CR line ends, blanks around patterns.
fn files() -> Vec<String> {
    vec![
        "# whitelist\n^servers\\.\n\n^stats\\.   \n\t^carbon\\.\t\n".to_string(),
        "# crlf\r\n^foo\\.\r\n\r\n(unclosed\r\n\\.count$\r\n".to_string(),
        "^a\\.b\r^xx\r#comment\r".to_string(),
        "  # not a comment: the line does not start with #\n#x\n".to_string(),
        "\u{feff}^foo\n^bar\\.\n".to_string(),
        "^abc\u{a0}\n^x{2}\u{1c}\n\u{c}\n\u{85}\n".to_string(),
        "# only comments\n\n   \n#^x\n".to_string(),
        String::new(),
        "[bad\n^servers\\.(?!prod)\n\\.tmp$\n(?<=x)y\n^(\\w+)\\.\\1\\.\nsecret\nweb".to_string(),
        "^stats\\.\n;env=prod(;|$)\n(?i)^test\n".to_string(),
        "no newline at end".to_string(),
    ]
}

#[test]
fn lists_and_verdicts_agree_with_carbon() {
    let mut lists: Vec<String> = PATTERNS.iter().map(|p| format!("{p}\n")).collect();
    let multi = files();
    let first_multi = lists.len();
    lists.extend(multi);
    let wrapped: Vec<Option<String>> = lists.iter().cloned().map(Some).collect();
    // Whitelist/blacklist pairs over the multi-line files, and a missing file (None).
    let m = |k: usize| Some(first_multi + k);
    let pairs = vec![
        (None, None),
        (m(0), None),
        (None, m(8)),
        (m(0), m(8)),
        (m(1), m(2)),
        (m(6), m(9)),
        (m(7), m(3)),
        (m(9), m(0)),
        (m(4), m(5)),
    ];
    let py = oracle(&wrapped, NAMES, &pairs);

    let mut diffs = Vec::new();
    let mut compiled = Vec::new();
    for (i, text) in lists.iter().enumerate() {
        let (list, rejected) = RegexList::parse(text);
        let expected = &py.lists[i];
        let taken: Vec<&str> = patterns(text)
            .filter(|(line, _)| !rejected.iter().any(|r| r.line == *line))
            .map(|(_, p)| p)
            .collect();
        let py_taken: Vec<&str> = expected["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .map(|p| p.as_str().expect("pattern"))
            .collect();
        if taken != py_taken {
            diffs.push(format!("{text:?}: takes {taken:?}, carbon {py_taken:?}"));
        }
        let refused: Vec<&str> = rejected.iter().map(|r| r.pattern.as_str()).collect();
        let py_refused: Vec<String> = expected["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| failed_pattern(e.as_str().expect("error")))
            .collect();
        if refused != py_refused {
            diffs.push(format!(
                "{text:?}: refuses {rejected:?}, carbon {py_refused:?}"
            ));
        }
        for (j, name) in NAMES.iter().enumerate() {
            let want = expected["matches"][j].as_bool().expect("match");
            if list.matches(name) != want {
                diffs.push(format!(
                    "{text:?} on {name:?}: carbon says {want} (translated: {:?})",
                    translate(text.trim_end())
                ));
            }
        }
        compiled.push(Some(list));
    }
    for (k, &(w, b)) in pairs.iter().enumerate() {
        let parse = |i: Option<usize>| i.map(|i| RegexList::parse(&lists[i]).0).unwrap_or_default();
        let both = Lists {
            white: parse(w),
            black: parse(b),
        };
        for (j, name) in NAMES.iter().enumerate() {
            let got = verdict_name(both.check(name));
            if got != py.verdicts[k][j] {
                diffs.push(format!(
                    "white {:?} black {:?} on {name:?}: {got}, carbon {}",
                    w.map(|i| &lists[i]),
                    b.map(|i| &lists[i]),
                    py.verdicts[k][j]
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} disagreements with carbon:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    // The corpus exercises both engines and the refusals.
    let refused = PATTERNS
        .iter()
        .filter(|p| !RegexList::parse(p).1.is_empty())
        .count();
    assert!(refused >= 20, "{refused}");
}

/// Random patterns and names from Python regex fragments (fixed seed): the translation must
/// take and refuse what Python does and match the same names.
#[test]
fn random_patterns_agree_with_carbon() {
    const FRAGMENTS: &[&str] = &[
        "a",
        "b",
        "x",
        "1",
        ".",
        "\\.",
        "\\d",
        "\\w",
        "\\W",
        "\\s",
        "\\Z",
        "\\A",
        "\\b",
        "[",
        "]",
        "[^",
        "^",
        "$",
        "-",
        "(",
        ")",
        "(?:",
        "(?=",
        "(?!",
        "(?<=",
        "(?<!",
        "(?i)",
        "(?x)",
        "{",
        "}",
        "{2}",
        "{1,2}",
        "{,2}",
        ",",
        "*",
        "+",
        "?",
        "|",
        "\\1",
        "#",
        " ",
        "&&",
        "~",
        "\\",
        "\\-",
        "\\]",
        "\\{",
        "(?P<g>",
        "(?P=g)",
        "\\x2e",
        "\\056",
        "\\0",
        "(?s)",
        "(?m)",
        "(?#c)",
        "\\x{41}",
        "\\u0041",
        "[\\d",
        "\\B",
        "(?(1)a|b)",
        "*?",
        "??",
        "{0}",
        "{,}",
        "(?>",
        "\\z",
        "(?-i:",
        "(?i:",
        "(?x:",
        "\\2",
        "(?P<h>",
        "a-z]",
        "\\t",
        "\\n",
    ];
    const ALPHABET: &[char] = &[
        'a', 'b', 'x', '1', '.', ' ', '-', '_', '{', '}', '[', ']', 'A',
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut pats = Vec::new();
    for _ in 0..3000 {
        let len = 1 + next(6);
        let p: String = (0..len).map(|_| FRAGMENTS[next(FRAGMENTS.len())]).collect();
        pats.push(p);
    }
    let mut names: Vec<String> = Vec::new();
    for _ in 0..40 {
        let len = 1 + next(8);
        names.push((0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect());
    }
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lists: Vec<Option<String>> = pats.iter().map(|p| Some(format!("{p}\n"))).collect();
    let py = oracle(&lists, &name_refs, &[]);
    let mut diffs = Vec::new();
    let mut taken = 0;
    for (i, p) in pats.iter().enumerate() {
        let (list, rejected) = RegexList::parse(&format!("{p}\n"));
        let py_taken = py.lists[i]["patterns"].as_array().map_or(0, |a| a.len());
        if py_taken != list.len() {
            diffs.push(format!(
                "{p:?}: carbon takes {py_taken}, Carbide {} {rejected:?} {:?}",
                list.len(),
                py.lists[i]["errors"]
            ));
            continue;
        }
        taken += py_taken;
        for (j, name) in names.iter().enumerate() {
            let want = py.lists[i]["matches"][j].as_bool().expect("match");
            if list.matches(name) != want {
                diffs.push(format!(
                    "{p:?} on {name:?}: carbon says {want} ({:?})",
                    translate(p)
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} disagreements with carbon:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    eprintln!("TAKEN {taken}");
    assert!(taken > 100, "only {taken} valid patterns");
}

/// Where Carbide deliberately differs from Python's `re` (listed in the README): each pattern
/// here compiles in Python 3.11 (the oracle says so) but Carbide logs and skips it.
#[test]
fn patterns_carbide_refuses_that_python_takes() {
    let refused = [
        // Named characters need Unicode's name table.
        r"\N{DIGIT ONE}",
        // ASCII-only classes have no equivalent in Rust's engines.
        r"(?a)\w",
        r"(?a:\w)",
        // Non-ASCII group names.
        r"(?P<été>a)",
    ];
    let lists: Vec<Option<String>> = refused.iter().map(|p| Some(format!("{p}\n"))).collect();
    let py = oracle(&lists, &[], &[]);
    for (i, p) in refused.iter().enumerate() {
        assert_eq!(
            py.lists[i]["patterns"].as_array().map(|a| a.len()),
            Some(1),
            "Python takes {p}"
        );
        let (list, rejected) = RegexList::parse(p);
        assert!(list.is_empty() && rejected.len() == 1, "{p}: {rejected:?}");
    }
}

/// Python's `$` also matches before a final newline; both Rust engines' `$` is the very end.
/// Only a pickled name can end in a newline, and Carbide refuses such a name anyway (as a bad
/// name instead of a blacklist match).
#[test]
fn dollar_before_a_final_newline_differs() {
    let names = ["x.count\n"];
    let py = oracle(&[Some("\\.count$\n".to_string())], &names, &[]);
    assert_eq!(py.lists[0]["matches"][0], true);
    let (list, _) = RegexList::parse("\\.count$\n");
    assert!(!list.matches(names[0]));
}

/// Python's `\b` looks at its own `\w` (letters, numbers, `_`); Carbide keeps the regex
/// crate's `\b` (whose `\w` also takes combining marks and all connector punctuation, and not
/// numbers such as U+2460) rather than send every `\b` pattern to the backtracking engine.
/// They differ only when such a character is next to the boundary.
#[test]
fn word_boundary_next_to_a_combining_mark_differs() {
    let names = ["e\u{301}x", "web.x"];
    let py = oracle(&[Some("\\bx\\b\n".to_string())], &names, &[]);
    assert_eq!(py.lists[0]["matches"], json!([true, true]));
    let (list, _) = RegexList::parse("\\bx\\b\n");
    assert!(!list.matches(names[0]));
    assert!(list.matches(names[1]));
}

/// Under `(?i)` Python also equates `i` with U+0130 (İ, whose one-character lowercase is `i`)
/// and U+0131 (ı); the Rust engines follow Unicode's simple case folding, which has neither.
#[test]
fn case_insensitive_turkish_i_differs() {
    let names = ["\u{130}x", "\u{131}x", "Ix"];
    let py = oracle(&[Some("(?i)^i\n".to_string())], &names, &[]);
    assert_eq!(py.lists[0]["matches"], json!([true, true, true]));
    let (list, _) = RegexList::parse("(?i)^i\n");
    assert_eq!(names.map(|n| list.matches(n)), [false, false, true]);
}

/// The file side of carbon's `read_list`, and where Carbide deliberately does better.
#[test]
fn reload_follows_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let black = dir.path().join("blacklist.conf");
    let white = dir.path().join("whitelist.conf");
    let filter = MetricFilter::load(dir.path());
    assert_eq!(filter.sizes(), (0, 0));
    assert_eq!(filter.check("a.b"), Verdict::Keep);
    assert!(!filter.reload());

    std::fs::write(&black, "^a\\.\n").expect("write");
    std::fs::write(&white, "^a\\.\n^b\\.\n").expect("write");
    assert!(filter.reload());
    assert_eq!(filter.sizes(), (2, 1));
    assert_eq!(filter.check("a.b"), Verdict::Blacklisted);
    assert_eq!(filter.check("b.b"), Verdict::Keep);
    assert_eq!(filter.check("c.b"), Verdict::NotWhitelisted);
    assert!(!filter.reload(), "unchanged files are not read again");

    // Deleted: the list is emptied, as carbon does.
    std::fs::remove_file(&black).expect("rm");
    assert!(filter.reload());
    assert_eq!(filter.sizes(), (2, 0));
    assert_eq!(filter.check("a.b"), Verdict::Keep);

    // Restored with an older modification time (a backup moved back): carbon compares with
    // the last read's mtime and never reads it again; Carbide reads any file that reappears
    // or whose mtime changed either way.
    std::fs::write(&black, "^a\\.\n^c\\.\n").expect("write");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
    std::fs::File::options()
        .write(true)
        .open(&black)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    assert!(filter.reload());
    assert_eq!(filter.sizes(), (2, 2));

    // Not UTF-8: carbon's read raises (its reload loop stops; at start carbon fails); Carbide
    // logs it and keeps the list in force until the file changes again.
    std::fs::write(&black, b"^a\\.\n\xff\n").expect("write");
    assert!(!filter.reload());
    assert_eq!(filter.sizes(), (2, 2));
    assert_eq!(filter.check("c.x"), Verdict::Blacklisted);

    // A directory where the file should be: unreadable, the list in force stays.
    std::fs::remove_file(&white).expect("rm");
    std::fs::create_dir(&white).expect("mkdir");
    assert!(!filter.reload());
    assert_eq!(filter.sizes(), (2, 2));
    std::fs::remove_dir(&white).expect("rmdir");
    assert!(filter.reload());
    assert_eq!(filter.sizes(), (0, 2));
    assert_eq!(filter.check("z"), Verdict::Keep);
}

#[test]
fn translation_keeps_plain_patterns_plain() {
    // What needs no rewriting stays readable and goes to the regex crate's RegexSet.
    let t = translate(r"^servers\.[^.]+\.cpu\.(user|system)$").expect("translate");
    assert!(!t.fancy);
    assert_eq!(t.pattern, r"^servers\.[^\.]+\.cpu\.(user|system)$");
    assert!(translate(r"(\w+)\.\1").expect("backref").fancy);
    assert!(translate(r"a*+").expect("possessive").fancy);
    assert!(!translate(r"a(?=b)").expect("lookahead").fancy);
}

/// A `carbide serve` child whose log lines are kept, so a test can wait for a reload (the
/// shared `Server` fixes `--schemas`, which the config file must set here).
struct Child {
    child: std::process::Child,
    data: std::path::PathBuf,
    line: u16,
    pickle: u16,
    http: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path, schemas: &Path, toml: &str) -> Child {
    let config = data.join("carbide.toml");
    std::fs::write(
        &config,
        format!(
            "schemas_dir = {:?}\n{toml}\n[listen]\ncache_query = \"off\"\n",
            schemas.to_str().expect("utf-8")
        ),
    )
    .expect("write config");
    let (line, pickle, http) = (free_port(), free_port(), free_port());
    let mut child = Command::new(common::carbide_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .args(["--line-tcp", &format!("127.0.0.1:{line}")])
        .args(["--line-udp", "off"])
        .args(["--pickle", &format!("127.0.0.1:{pickle}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start carbide serve");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("carbide serving") {
                let _ = tx.send(());
            }
            sink.lock().expect("log").push(line);
        }
    });
    let server = Child {
        child,
        data: data.to_path_buf(),
        line,
        pickle,
        http,
        log,
    };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        panic!(
            "carbide serve did not start: {:?}",
            server.log.lock().expect("log")
        );
    }
    server
}

impl Child {
    /// One GET on the HTTP port: (status, body).
    fn get(&self, target: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect http");
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of headers");
        let status = String::from_utf8_lossy(&raw[..split])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        (status, raw[split + 4..].to_vec())
    }

    fn stats(&self) -> Value {
        let (status, body) = self.get("/stats");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).expect("stats json")
    }

    /// SIGTERM, and the server must exit cleanly (having written its cache out).
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "carbide serve exited with {status}");
    }

    /// Waits until a log line after the first `from` lines contains `text`; returns the
    /// number of lines seen.
    fn wait_log(&self, from: usize, text: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let log = self.log.lock().expect("log");
                if log.iter().skip(from).any(|l| l.contains(text)) {
                    return log.len();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no log line {text:?}: {:?}",
                self.log.lock().expect("log")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_len(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    fn counter(&self, name: &str) -> u64 {
        self.stats()["ingest"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("/stats ingest.{name}"))
    }

    /// Waits until the server has taken `n` points in total, kept or dropped.
    fn wait_handled(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let handled = || {
            [
                "metrics_received",
                "blacklist_matches",
                "whitelist_rejects",
                "bad_names",
            ]
            .iter()
            .map(|c| self.counter(c))
            .sum::<u64>()
        };
        while handled() < n {
            assert!(
                Instant::now() < deadline,
                "handled {} of {n}: {}",
                handled(),
                self.stats()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send_lines(&self, names: &[&str], t: i64, value: f64) {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.line)).expect("connect");
        for name in names {
            writeln!(tcp, "{name} {value} {t}").expect("send");
        }
    }

    /// One pickle frame, pickled by CPython (protocol 2).
    fn send_pickle(&self, names: &[&str], t: i64, value: f64) {
        let items: Vec<String> = names
            .iter()
            .map(|n| format!("({}, ({t}, {value}))", json!(n)))
            .collect();
        let script = format!(
            "import pickle, struct, socket\n\
             p = pickle.dumps([{}], protocol=2)\n\
             s = socket.create_connection(('127.0.0.1', {}))\n\
             s.sendall(struct.pack('!L', len(p)) + p)\n\
             s.close()\n",
            items.join(", "),
            self.pickle
        );
        common::run_python(&script);
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock")
}

/// A schemas directory: the shipped storage-schemas.conf, with 1-second self-metrics in front
/// so that their per-interval values add up exactly.
fn schemas_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("conf");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("storage-schemas/storage-schemas.conf"),
    )
    .expect("storage-schemas.conf");
    std::fs::write(
        dir.join("storage-schemas.conf"),
        format!("[self]\npattern = ^carbon\\.agents\\.flt\\.\nretentions = 1s:1h\n\n{shipped}"),
    )
    .expect("write schemas");
    dir
}

const WHITELIST: &str = "# carbon whitelist\r\n^flt\\.keep\\.\r\n\r\n^flt\\.both\\.   \r\n\
    ^flt\\.later\\.\r\n(?i)^FLT\\.CASE\\.\r\n^flt\\.look\\.(?!no)\r\n[bad\r\n";
const BLACKLIST: &str = "# secrets\n\\.secret$\n^flt\\.both\\.\n";
const BLACKLIST_2: &str = "# secrets\n\\.secret$\n^flt\\.both\\.\n^flt\\.later\\.drop\\.\n";

/// One phase: the files in force, the names sent over plaintext and over pickle.
struct Phase {
    white: Option<&'static str>,
    black: Option<&'static str>,
    lines: &'static [&'static str],
    pickles: &'static [&'static str],
}

const PHASES: [Phase; 4] = [
    Phase {
        white: Some(WHITELIST),
        black: Some(BLACKLIST),
        lines: &[
            "flt.keep.a",
            "flt.keep.x.secret",
            "flt.both.a",
            "flt.other.a",
            "flt.case.a",
            "flt.look.yes",
            "flt.look.no",
            "flt.later.drop.a",
            "flt.later.a",
            // Blacklisted before cleaning: counted as a blacklist match, not a bad name.
            "flt.both..x",
            // Kept by the lists, then refused by name cleaning.
            "flt.keep..y",
        ],
        pickles: &[
            "flt.keep.p",
            "flt.keep.p.secret",
            "flt.nope.p",
            "flt.case.p",
        ],
    },
    // blacklist.conf edited: a new rule.
    Phase {
        white: Some(WHITELIST),
        black: Some(BLACKLIST_2),
        lines: &["flt.later.drop.b", "flt.later.b", "flt.keep.b.secret"],
        pickles: &["flt.later.drop.pb"],
    },
    // blacklist.conf deleted: carbon empties the list.
    Phase {
        white: Some(WHITELIST),
        black: None,
        lines: &["flt.keep.c.secret", "flt.both.c", "flt.other.c"],
        pickles: &["flt.later.drop.pc"],
    },
    // whitelist.conf deleted too: everything passes.
    Phase {
        white: None,
        black: None,
        lines: &["flt.other.d", "flt.keep.d.secret"],
        pickles: &["flt.nope.pd"],
    },
];

#[test]
fn serve_filters_follows_edits_and_deletions() {
    let root = tempfile::tempdir().expect("tempdir");
    let schemas = schemas_dir(root.path());
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(schemas.join("whitelist.conf"), WHITELIST).expect("write");
    std::fs::write(schemas.join("blacklist.conf"), BLACKLIST).expect("write");
    let server = start(
        &data,
        &schemas,
        "[ingest]\nuse_whitelist = true\nlists_reload_ms = 100\n\
         [self_metrics]\ninterval_seconds = 1\nhost = \"flt\"\n",
    );
    // The invalid whitelist line is logged once, at the first read.
    server.wait_log(0, "Failed to parse '[bad'");

    let t = now() - 120;
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let (mut black, mut white, mut sent) = (0u64, 0u64, 0u64);
    for (k, phase) in PHASES.iter().enumerate() {
        if k > 0 {
            let before = server.log_len();
            let prev = &PHASES[k - 1];
            if phase.black != prev.black {
                match phase.black {
                    Some(text) => {
                        std::fs::write(schemas.join("blacklist.conf"), text).expect("write");
                        server.wait_log(before, "blacklist.conf: 3 patterns");
                    }
                    None => {
                        std::fs::remove_file(schemas.join("blacklist.conf")).expect("rm");
                        server.wait_log(before, "blacklist.conf is gone");
                    }
                }
            }
            if phase.white != prev.white {
                std::fs::remove_file(schemas.join("whitelist.conf")).expect("rm");
                server.wait_log(before, "whitelist.conf is gone");
            }
        }
        let names: Vec<&str> = phase.lines.iter().chain(phase.pickles).copied().collect();
        let py = oracle(
            &[phase.white.map(String::from), phase.black.map(String::from)],
            &names,
            &[(Some(0), Some(1))],
        );
        for (name, verdict) in names.iter().zip(&py.verdicts[0]) {
            match verdict.as_str() {
                "blacklistMatches" => black += 1,
                "whitelistRejects" => white += 1,
                _ => {}
            }
            expected.insert(name.to_string(), verdict.clone());
        }
        server.send_lines(phase.lines, t, k as f64 + 0.5);
        server.send_pickle(phase.pickles, t, k as f64 + 0.5);
        sent += names.len() as u64;
        server.wait_handled(sent);
        assert_eq!(server.counter("blacklist_matches"), black, "phase {k}");
        assert_eq!(server.counter("whitelist_rejects"), white, "phase {k}");
    }
    // Sanity of the scenario itself: every outcome happens, and the edits change verdicts.
    assert_eq!(expected["flt.both..x"], "blacklistMatches");
    assert_eq!(expected["flt.later.drop.a"], "keep");
    assert_eq!(expected["flt.later.drop.b"], "blacklistMatches");
    assert_eq!(expected["flt.keep.c.secret"], "keep");
    assert_eq!(expected["flt.other.d"], "keep");
    assert_eq!(server.counter("bad_names"), 1);

    // The self-metrics under carbon's names add up to the counters.
    for (stat, total) in [("blacklistMatches", black), ("whitelistRejects", white)] {
        let target = format!("/render?target=carbon.agents.flt.{stat}&from=-10min&format=json");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = server.get(&target);
            let sum: f64 = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get(0).map(|s| {
                        s["datapoints"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p[0].as_f64())
                            .sum()
                    })
                })
                .unwrap_or(0.0);
            if status == 200 && sum == total as f64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{stat}: {sum} in the self-metrics, {total} counted"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let data = server.data.clone();
    server.stop();
    for (k, phase) in PHASES.iter().enumerate() {
        for name in phase.lines.iter().chain(phase.pickles) {
            let file = data.join("whisper").join(name.replace('.', "/") + ".wsp");
            if expected[*name] == "keep" && !name.contains("..") {
                assert_eq!(
                    whisper_py_points(&data, name, 3600),
                    vec![(t - t % 60, k as f64 + 0.5)],
                    "{name}"
                );
            } else {
                assert!(
                    !file.exists(),
                    "{name} was dropped but has {}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn lists_are_ignored_without_use_whitelist() {
    let root = tempfile::tempdir().expect("tempdir");
    let schemas = schemas_dir(root.path());
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(schemas.join("whitelist.conf"), WHITELIST).expect("write");
    std::fs::write(schemas.join("blacklist.conf"), BLACKLIST).expect("write");
    let server = start(&data, &schemas, "[ingest]\nlists_reload_ms = 100\n");
    let t = now() - 120;
    let names = [
        "flt.keep.a",
        "flt.keep.x.secret",
        "flt.both.a",
        "flt.other.a",
    ];
    server.send_lines(&names, t, 1.0);
    server.send_pickle(&["flt.nope.p"], t, 2.0);
    server.wait_handled(5);
    assert_eq!(server.counter("metrics_received"), 5);
    assert_eq!(server.counter("blacklist_matches"), 0);
    assert_eq!(server.counter("whitelist_rejects"), 0);
    assert!(
        !server
            .log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("whitelist.conf") || l.contains("blacklist.conf")),
        "the files were read"
    );
    let data = server.data.clone();
    server.stop();
    assert_eq!(
        whisper_py_points(&data, "flt.keep.x.secret", 3600),
        vec![(t - t % 60, 1.0)]
    );
    assert_eq!(
        whisper_py_points(&data, "flt.nope.p", 3600),
        vec![(t - t % 60, 2.0)]
    );
}
