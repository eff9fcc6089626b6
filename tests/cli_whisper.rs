//! `carbide whisper <command>` against the reference whisper-*.py tools.
//!
//! Each case copies the same input files into two scratch directories, runs the Python tool in
//! one and `carbide whisper` in the other, and compares stdout, exit status, stderr (where the
//! Python tool prints a message of its own rather than a traceback) and every resulting file
//! byte for byte. Tools that read the clock are run with `time.time` patched to a fixed epoch
//! and `carbide whisper` gets the same value through `--now`, so the comparison is exact.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{carbide_bin, python, shared_dir, whisper_tool};

/// Fixed "now" for clock-dependent tools; the fixtures were written around 1700000060.
const NOW: i64 = 1_700_000_100;

/// Runs a script as `__main__` with `time.time()` fixed at argv[1].
const PATCHED_CLOCK: &str = "import sys, time, runpy\n\
now = float(sys.argv[1])\n\
time.time = lambda: now\n\
script = sys.argv[2]\n\
sys.argv = [script] + sys.argv[3:]\n\
runpy.run_path(script, run_name='__main__')\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stderr {
    /// Both print the same bytes.
    Exact,
    /// Python dies with a traceback; we print `[ERROR] ...`. Only the status is compared.
    Traceback,
    /// Usage and help texts differ by design (clap vs optparse); compare status only.
    Ignore,
}

struct Case<'a> {
    tool: &'a str,
    sub: &'a str,
    args: &'a [&'a str],
    /// Input files copied into both scratch directories.
    files: &'a [PathBuf],
    /// Patch Python's clock and pass `--now`.
    clock: bool,
    stdin: &'a str,
    stderr: Stderr,
    /// Compare the scratch directories afterwards.
    compare_files: bool,
}

impl<'a> Case<'a> {
    fn new(tool: &'a str, sub: &'a str, args: &'a [&'a str], files: &'a [PathBuf]) -> Self {
        Case {
            tool,
            sub,
            args,
            files,
            clock: false,
            stdin: "",
            stderr: Stderr::Exact,
            compare_files: true,
        }
    }
    fn clock(mut self) -> Self {
        self.clock = true;
        self
    }
    fn stdin(mut self, s: &'a str) -> Self {
        self.stdin = s;
        self
    }
    fn stderr(mut self, s: Stderr) -> Self {
        self.stderr = s;
        self
    }
    fn no_file_compare(mut self) -> Self {
        self.compare_files = false;
        self
    }
}

fn fixture(name: &str) -> PathBuf {
    shared_dir().join("fixtures/whisper").join(name)
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared_dir().join("fixtures/whisper"))
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wsp"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn scratch(files: &[PathBuf]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in files {
        let to = dir.path().join(name(f));
        std::fs::copy(f, &to).expect("copy input");
        let mut perm = std::fs::metadata(&to).expect("stat").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&to, perm).expect("chmod");
    }
    dir
}

fn run(mut cmd: Command, dir: &Path, stdin: &str) -> Output {
    use std::io::Write;
    cmd.current_dir(dir)
        .env("TZ", "UTC")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

fn dir_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read scratch")
        .map(|e| {
            let p = e.expect("entry").path();
            (name(&p), std::fs::read(&p).expect("read result"))
        })
        .collect();
    v.sort();
    v
}

/// Runs both sides; panics on any difference. Returns carbide's output and its directory's
/// files for further checks.
fn check(case: Case<'_>) -> (Output, Vec<(String, Vec<u8>)>) {
    let py_dir = scratch(case.files);
    let rs_dir = scratch(case.files);
    let label = format!("{} {}", case.sub, case.args.join(" "));

    let mut py = Command::new(python());
    if case.clock {
        py.arg("-c").arg(PATCHED_CLOCK).arg(NOW.to_string());
    }
    py.arg(whisper_tool(case.tool)).args(case.args);
    let py_out = run(py, py_dir.path(), case.stdin);

    let mut rs = Command::new(carbide_bin());
    rs.arg("whisper").arg(case.sub);
    if case.clock {
        rs.arg("--now").arg(NOW.to_string());
    }
    rs.args(case.args);
    let rs_out = run(rs, rs_dir.path(), case.stdin);

    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        py_out.status.code(),
        rs_out.status.code(),
        "{label}: exit status\npython stderr: {}\ncarbide stderr: {}",
        text(&py_out.stderr),
        text(&rs_out.stderr)
    );
    if case.stderr != Stderr::Ignore {
        assert_eq!(
            text(&py_out.stdout),
            text(&rs_out.stdout),
            "{label}: stdout"
        );
    }
    match case.stderr {
        Stderr::Exact => assert_eq!(
            text(&py_out.stderr),
            text(&rs_out.stderr),
            "{label}: stderr"
        ),
        Stderr::Traceback => {
            assert!(
                text(&py_out.stderr).contains("Traceback"),
                "{label}: python traceback"
            );
            assert!(
                text(&rs_out.stderr).starts_with("[ERROR] "),
                "{label}: carbide error line"
            );
        }
        Stderr::Ignore => {}
    }
    let rs_files = dir_contents(rs_dir.path());
    if case.compare_files {
        let py_files = dir_contents(py_dir.path());
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&py_files), names(&rs_files), "{label}: file names");
        for ((n, a), (_, b)) in py_files.iter().zip(&rs_files) {
            assert!(a == b, "{label}: {n} differs");
        }
    }
    (rs_out, rs_files)
}

fn bytes_of(files: &[(String, Vec<u8>)], n: &str) -> Vec<u8> {
    files
        .iter()
        .find(|f| f.0 == n)
        .map(|f| f.1.clone())
        .unwrap_or_default()
}

/// A copy of avg_3archives.wsp with a few different points, written by whisper.py itself.
fn modified_copy(dir: &Path) -> PathBuf {
    let path = dir.join("b.wsp");
    std::fs::copy(fixture("avg_3archives.wsp"), &path).expect("copy");
    let mut perm = std::fs::metadata(&path).expect("stat").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&path, perm).expect("chmod");
    let out = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import whisper\nwhisper.update_many({:?}, [(1700000000, 1.0), (1699990000, 2.0), \
             (1699000000, 3.0), (1699999600, float('nan'))], now={NOW})",
            path.to_string_lossy()
        ))
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// An empty file with avg_3archives.wsp's archives, made by whisper-create.py.
fn empty_copy(dir: &Path) -> PathBuf {
    let path = dir.join("e3.wsp");
    let out = Command::new(whisper_tool("whisper-create.py"))
        .arg(&path)
        .args(["10:360", "60:1440", "600:1008"])
        .output()
        .expect("whisper-create.py");
    assert!(out.status.success());
    path
}

#[test]
fn info_matches() {
    for f in fixtures() {
        let n = name(&f);
        let files = [f.clone()];
        for args in [
            vec![n.as_str()],
            vec!["--json", n.as_str()],
            vec![n.as_str(), "aggregationMethod"],
            vec![n.as_str(), "maxRetention"],
            vec![n.as_str(), "xFilesFactor"],
            vec![n.as_str(), "archives"],
            vec![n.as_str(), "fileSize"],
            vec![n.as_str(), "bogus"],
        ] {
            check(Case::new("whisper-info.py", "info", &args, &files));
        }
    }
    check(Case::new("whisper-info.py", "info", &["missing.wsp"], &[]).stderr(Stderr::Traceback));
    check(Case::new("whisper-info.py", "info", &[], &[]).stderr(Stderr::Ignore));
}

#[test]
fn fetch_matches() {
    for f in fixtures() {
        let n = name(&f);
        let files = [f.clone()];
        for args in [
            vec![n.as_str()],
            vec!["--from", "1699000000", n.as_str()],
            vec!["--json", "--from", "1699990000", n.as_str()],
            vec![
                "--drop",
                "nulls",
                "--from",
                "1699000000",
                "--until",
                "1699999999",
                n.as_str(),
            ],
            vec!["--drop", "empty", "--json", n.as_str()],
            vec!["--drop", "zeroes", n.as_str()],
            vec!["--pretty", "--from", "1699999000", n.as_str()],
            vec![
                "--pretty",
                "-t",
                "%Y-%m-%d %H:%M:%S",
                "--from",
                "1699999000",
                n.as_str(),
            ],
            vec!["--from", "1700000050", "--until", "1700000050", n.as_str()],
            vec!["--from", "1800000000", n.as_str()],
            vec!["--from", "5", "--until", "3", n.as_str()],
            vec!["--until", "100", n.as_str()],
        ] {
            check(Case::new("whisper-fetch.py", "fetch", &args, &files).clock());
        }
    }
    check(Case::new("whisper-fetch.py", "fetch", &["missing.wsp"], &[]).clock());
    check(
        Case::new("whisper-fetch.py", "fetch", &["--drop", "all", "x"], &[]).stderr(Stderr::Ignore),
    );
    check(Case::new("whisper-fetch.py", "fetch", &[], &[]).stderr(Stderr::Ignore));
}

#[test]
fn dump_matches() {
    for f in fixtures() {
        let n = name(&f);
        let files = [f.clone()];
        for args in [
            vec![n.as_str()],
            vec!["-r", n.as_str()],
            vec!["--pretty", n.as_str()],
        ] {
            check(Case::new("whisper-dump.py", "dump", &args, &files));
        }
    }
    check(Case::new("whisper-dump.py", "dump", &["missing.wsp"], &[]));
    check(Case::new("whisper-dump.py", "dump", &[], &[]).stderr(Stderr::Ignore));
}

#[test]
fn create_matches() {
    let c = |args: &[&str]| check(Case::new("whisper-create.py", "create", args, &[]));
    c(&["x.wsp", "1:120", "60:10", "300:12"]);
    c(&[
        "x.wsp",
        "10s:1h",
        "1m:1d",
        "--xFilesFactor",
        "0.1",
        "--aggregationMethod",
        "max",
    ]);
    c(&["x.wsp", "60:1440", "--sparse"]);
    c(&[
        "x.wsp",
        "60:1440",
        "--fallocate",
        "--aggregationMethod=avg_zero",
    ]);
    c(&["x.wsp", "7s:1m", "--xFilesFactor", "1"]);
    c(&["--estimate", "1m:1d,1h:1y"]);
    c(&["--estimate", "10s:6h", "1m:7d", "10m:5y"]);
    c(&["--estimate", "1s:5y", "1m:50y"]);
    c(&["x.wsp", "60:5", "60:10"]);
    c(&["x.wsp", "60:10", "90:20"]);
    c(&["x.wsp", "60:10", "120:5"]);
    c(&["x.wsp", "60:1", "300:10"]);
    let t = |args: &[&str]| {
        check(Case::new("whisper-create.py", "create", args, &[]).stderr(Stderr::Traceback))
    };
    t(&["x.wsp", "1mo:5"]);
    t(&["x.wsp", "60"]);
    t(&["--estimate", "1x:5"]);
    let existing = [fixture("wrapped.wsp")];
    check(Case::new(
        "whisper-create.py",
        "create",
        &["wrapped.wsp", "60:10"],
        &existing,
    ));
    check(Case::new(
        "whisper-create.py",
        "create",
        &["wrapped.wsp", "60:10", "--overwrite"],
        &existing,
    ));
    // whisper.py leaves a 0-byte file behind for a bad method or xFilesFactor; we do not.
    for args in [
        ["x.wsp", "60:10", "--aggregationMethod", "median"],
        ["x.wsp", "60:10", "--xFilesFactor", "2"],
    ] {
        let (_, files) =
            check(Case::new("whisper-create.py", "create", &args, &[]).no_file_compare());
        assert!(files.is_empty());
    }
    check(
        Case::new(
            "whisper-create.py",
            "create",
            &["x.wsp", "60:10", "--xFilesFactor", "x"],
            &[],
        )
        .stderr(Stderr::Ignore),
    );
    check(Case::new("whisper-create.py", "create", &["x.wsp"], &[]).stderr(Stderr::Ignore));
    check(Case::new("whisper-create.py", "create", &["--estimate"], &[]).stderr(Stderr::Ignore));
}

#[test]
fn update_matches() {
    for f in fixtures() {
        let n = name(&f);
        let files = [f.clone()];
        let many = [
            n.as_str(),
            "1700000090:1.5",
            "1700000000:2",
            "1700000000:2.5",
            "1699999000:-4",
            "1699990000:5.25",
            "1699000000:1e300",
            "1690000000:6",
        ];
        check(Case::new("whisper-update.py", "update", &many, &files).clock());
        check(
            Case::new(
                "whisper-update.py",
                "update",
                &[n.as_str(), "1700000000:5"],
                &files,
            )
            .clock(),
        );
        check(
            Case::new(
                "whisper-update.py",
                "update",
                &[n.as_str(), "N:-0.0"],
                &files,
            )
            .clock(),
        );
        check(
            Case::new("whisper-update.py", "update", &[n.as_str()], &files)
                .clock()
                .stdin("1700000000:1\n1699999990: 2 \nN:3\n"),
        );
    }
    let files = [fixture("empty.wsp")];
    check(
        Case::new("whisper-update.py", "update", &["empty.wsp"], &files)
            .clock()
            .stdin("1699999999:1_0\n"),
    );
    check(Case::new("whisper-update.py", "update", &["empty.wsp"], &files).clock());
    check(
        Case::new(
            "whisper-update.py",
            "update",
            &["empty.wsp", "1600000000:1"],
            &files,
        )
        .clock(),
    );
    check(
        Case::new(
            "whisper-update.py",
            "update",
            &["empty.wsp", "1800000000:1"],
            &files,
        )
        .clock(),
    );
    check(
        Case::new(
            "whisper-update.py",
            "update",
            &["empty.wsp", "1800000000:1", "1700000000:2"],
            &files,
        )
        .clock(),
    );
    let t = |args: &[&str], files: &[PathBuf]| {
        check(
            Case::new("whisper-update.py", "update", args, files)
                .clock()
                .stderr(Stderr::Traceback),
        );
    };
    t(&["empty.wsp", "1700000000:x"], &files);
    t(&["empty.wsp", "1700000000"], &files);
    t(&["empty.wsp", "1700000000:1:2"], &files);
    t(&["empty.wsp", "1.5:1"], &files);
    t(&["empty.wsp", "1700000000:1", "x:2"], &files);
    t(&["missing.wsp", "1700000000:1"], &[]);
    check(Case::new("whisper-update.py", "update", &[], &[]).stderr(Stderr::Ignore));
}

#[test]
fn set_aggregation_method_and_xff_match() {
    for f in fixtures() {
        let n = name(&f);
        let files = [f.clone()];
        let s = |args: &[&str]| {
            check(Case::new(
                "whisper-set-aggregation-method.py",
                "set-aggregation-method",
                args,
                &files,
            ))
        };
        s(&[n.as_str(), "max"]);
        s(&[n.as_str(), "absmin", "0.1"]);
        s(&[n.as_str(), "sum", "abc"]);
        s(&[n.as_str(), "sum", "2"]);
        s(&[n.as_str(), "median"]);
        let x = |args: &[&str]| {
            check(Case::new(
                "whisper-set-xfilesfactor.py",
                "set-xfilesfactor",
                args,
                &files,
            ))
        };
        x(&[n.as_str(), "0.1"]);
        x(&[n.as_str(), "1"]);
        x(&[n.as_str(), "1.5"]);
        x(&[n.as_str(), "-0.5"]);
    }
    // stderr matches; stdout is each tool's own help text.
    let (out, _) = check(
        Case::new(
            "whisper-set-aggregation-method.py",
            "set-aggregation-method",
            &["missing.wsp", "max"],
            &[],
        )
        .stderr(Stderr::Ignore),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "[ERROR] File 'missing.wsp' does not exist!\n\n"
    );
    let (out, _) = check(
        Case::new(
            "whisper-set-xfilesfactor.py",
            "set-xfilesfactor",
            &["missing.wsp", "0.5"],
            &[],
        )
        .stderr(Stderr::Ignore),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "[ERROR] File 'missing.wsp' does not exist!\n\n"
    );
    check(
        Case::new(
            "whisper-set-xfilesfactor.py",
            "set-xfilesfactor",
            &["x.wsp", "abc"],
            &[],
        )
        .stderr(Stderr::Ignore),
    );
}

#[test]
fn diff_matches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = modified_copy(tmp.path());
    let files = [fixture("avg_3archives.wsp"), b];
    for opts in [
        &[][..],
        &["--summary"],
        &["--json"],
        &["--summary", "--json"],
        &["--columns"],
        &["--columns", "--no-headers"],
        &["--no-headers"],
        &["--ignore-empty"],
        &["--until", "1699995000"],
        &["--until", "0"],
        &["--summary", "--until", "1699990000", "--ignore-empty"],
    ] {
        for pair in [
            ["avg_3archives.wsp", "b.wsp"],
            ["b.wsp", "avg_3archives.wsp"],
        ] {
            let args: Vec<&str> = opts.iter().copied().chain(pair).collect();
            let (out, _) = check(Case::new("whisper-diff.py", "diff", &args, &files).clock());
            assert!(!out.stdout.is_empty());
        }
    }
    let pair = [fixture("empty.wsp"), fixture("sum_counter.wsp")];
    check(
        Case::new(
            "whisper-diff.py",
            "diff",
            &["empty.wsp", "sum_counter.wsp"],
            &pair,
        )
        .clock(),
    );
    check(
        Case::new(
            "whisper-diff.py",
            "diff",
            &["--json", "sum_counter.wsp", "empty.wsp"],
            &pair,
        )
        .clock(),
    );
    let unalike = [fixture("empty.wsp"), fixture("wrapped.wsp")];
    check(
        Case::new(
            "whisper-diff.py",
            "diff",
            &["empty.wsp", "wrapped.wsp"],
            &unalike,
        )
        .clock()
        .stderr(Stderr::Traceback),
    );
    check(
        Case::new(
            "whisper-diff.py",
            "diff",
            &["empty.wsp", "missing.wsp"],
            &unalike,
        )
        .clock()
        .stderr(Stderr::Traceback),
    );
}

#[test]
fn merge_matches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = modified_copy(tmp.path());
    let e3 = empty_copy(tmp.path());
    let files = [fixture("avg_3archives.wsp"), b, e3.clone()];
    let original_e3 = std::fs::read(&e3).expect("read");
    for args in [
        &["avg_3archives.wsp", "b.wsp"][..],
        &["b.wsp", "avg_3archives.wsp"],
        &[
            "--from",
            "1699990000",
            "--until",
            "1699999000",
            "avg_3archives.wsp",
            "b.wsp",
        ],
        &["--until", "1699000000", "b.wsp", "avg_3archives.wsp"],
        &["avg_3archives.wsp", "e3.wsp"],
    ] {
        check(Case::new("whisper-merge.py", "merge", args, &files).clock());
    }
    let (_, out) = check(
        Case::new(
            "whisper-merge.py",
            "merge",
            &["avg_3archives.wsp", "e3.wsp"],
            &files,
        )
        .clock(),
    );
    assert_ne!(bytes_of(&out, "e3.wsp"), original_e3, "merge wrote nothing");
    let pair = [fixture("empty.wsp"), fixture("sum_counter.wsp")];
    check(
        Case::new(
            "whisper-merge.py",
            "merge",
            &["sum_counter.wsp", "empty.wsp"],
            &pair,
        )
        .clock(),
    );
    let t = |args: &[&str], files: &[PathBuf]| {
        check(
            Case::new("whisper-merge.py", "merge", args, files)
                .clock()
                .stderr(Stderr::Traceback),
        );
    };
    t(
        &[
            "--from",
            "1699999000",
            "--until",
            "1699990000",
            "avg_3archives.wsp",
            "b.wsp",
        ],
        &files,
    );
    let unalike = [fixture("empty.wsp"), fixture("wrapped.wsp")];
    t(&["empty.wsp", "wrapped.wsp"], &unalike);
    check(
        Case::new(
            "whisper-merge.py",
            "merge",
            &["empty.wsp", "missing.wsp"],
            &unalike,
        )
        .clock(),
    );
    check(Case::new("whisper-merge.py", "merge", &["empty.wsp"], &unalike).stderr(Stderr::Ignore));
}

#[test]
fn fill_matches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = modified_copy(tmp.path());
    let e3 = empty_copy(tmp.path());
    let files = [
        fixture("avg_3archives.wsp"),
        fixture("last_gauge.wsp"),
        b,
        e3.clone(),
    ];
    let original_e3 = std::fs::read(&e3).expect("read");
    for args in [
        &["avg_3archives.wsp", "b.wsp"][..],
        &["b.wsp", "avg_3archives.wsp"],
        &["--lock", "last_gauge.wsp", "avg_3archives.wsp"],
        &["avg_3archives.wsp", "last_gauge.wsp"],
    ] {
        check(Case::new("whisper-fill.py", "fill", args, &files).clock());
    }
    let (_, out) = check(
        Case::new(
            "whisper-fill.py",
            "fill",
            &["avg_3archives.wsp", "e3.wsp"],
            &files,
        )
        .clock(),
    );
    assert_ne!(bytes_of(&out, "e3.wsp"), original_e3, "fill wrote nothing");
    let pair = [fixture("empty.wsp"), fixture("sum_counter.wsp")];
    check(
        Case::new(
            "whisper-fill.py",
            "fill",
            &["sum_counter.wsp", "empty.wsp"],
            &pair,
        )
        .clock(),
    );
    check(
        Case::new(
            "whisper-fill.py",
            "fill",
            &["avg_3archives.wsp", "missing.wsp"],
            &files,
        )
        .clock()
        .stderr(Stderr::Traceback),
    );
    check(
        Case::new("whisper-fill.py", "fill", &["avg_3archives.wsp"], &files).stderr(Stderr::Ignore),
    );
}

#[test]
fn resize_matches() {
    let r = |args: &[&str], file: &str| {
        let files = [fixture(file)];
        check(Case::new("whisper-resize.py", "resize", args, &files).clock())
    };
    r(
        &["avg_3archives.wsp", "10:720", "60:2880"],
        "avg_3archives.wsp",
    );
    r(
        &["avg_3archives.wsp", "10:720", "60:2880", "--nobackup"],
        "avg_3archives.wsp",
    );
    r(
        &["avg_3archives.wsp", "30s:1h", "5m:1d", "--aggregate"],
        "avg_3archives.wsp",
    );
    r(
        &[
            "avg_3archives.wsp",
            "1:1h",
            "--aggregate",
            "--aggregationMethod",
            "last",
        ],
        "avg_3archives.wsp",
    );
    r(
        &[
            "sum_counter.wsp",
            "1m:1d",
            "1h:30d",
            "--aggregate",
            "--xFilesFactor",
            "0",
            "--aggregationMethod",
            "avg_zero",
        ],
        "sum_counter.wsp",
    );
    r(
        &[
            "last_gauge.wsp",
            "1:600",
            "10:3600",
            "--aggregate",
            "--newfile",
            "new.wsp",
        ],
        "last_gauge.wsp",
    );
    r(
        &[
            "wrapped.wsp",
            "60:100",
            "--force",
            "--aggregationMethod",
            "max",
        ],
        "wrapped.wsp",
    );
    r(
        &["max_xff1.wsp", "1m:2h", "--xFilesFactor", "0.25"],
        "max_xff1.wsp",
    );
    // A stale temporary file is removed first, and the script says so.
    let tmp = tempfile::tempdir().expect("tempdir");
    let stale = tmp.path().join("wrapped.wsp.tmp");
    std::fs::write(&stale, b"stale").expect("write");
    let with_stale = [fixture("wrapped.wsp"), stale];
    check(
        Case::new(
            "whisper-resize.py",
            "resize",
            &["wrapped.wsp", "60:100"],
            &with_stale,
        )
        .clock(),
    );
    let files = [fixture("wrapped.wsp")];
    let t = |args: &[&str]| {
        check(
            Case::new("whisper-resize.py", "resize", args, &files)
                .clock()
                .stderr(Stderr::Traceback),
        );
    };
    t(&["wrapped.wsp", "60:100", "60:50"]);
    t(&["wrapped.wsp", "60"]);
    // whisper.py leaves a 0-byte wrapped.wsp.tmp behind here; we do not.
    let (_, out) = check(
        Case::new(
            "whisper-resize.py",
            "resize",
            &["wrapped.wsp", "60:100", "--aggregationMethod", "bogus"],
            &files,
        )
        .clock()
        .stderr(Stderr::Traceback)
        .no_file_compare(),
    );
    assert_eq!(out.len(), 1);
    let (out, _) = check(
        Case::new(
            "whisper-resize.py",
            "resize",
            &["missing.wsp", "60:100"],
            &[],
        )
        .clock()
        .stderr(Stderr::Ignore),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "[ERROR] File 'missing.wsp' does not exist!\n\n"
    );
    check(
        Case::new("whisper-resize.py", "resize", &["wrapped.wsp"], &files).stderr(Stderr::Ignore),
    );
}
