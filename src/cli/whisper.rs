//! `carbide whisper <command>`: the whisper-*.py tools, same arguments and output.
//!
//! Operators drive these tools from shell scripts that parse what they print, so each command
//! reproduces its Python script's stdout byte for byte, its `[ERROR] ...` lines, and its exit
//! statuses (1 for errors and missing positional arguments, 2 for option errors, as optparse
//! has them). Option names keep the scripts' spelling (`--xFilesFactor`), abbreviations of long
//! options work as optparse allows, and numbers are parsed with Python's rules. Where a script
//! would die with a traceback we print `[ERROR] <what Python would say>` and exit 1.
//! `--now` is our addition wherever a script reads the clock, for reproducible runs.

mod timefmt;

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use clap::{Args, Subcommand};

use crate::python;
use crate::python::format::{float_repr, list_repr, printf_f, printf_g, Json};
use crate::whisper::retention::parse_retention_def;
use crate::whisper::{
    self, AggregationMethod, ArchiveDiff, ArchiveInfo, CreateOptions, Header, ResizeEvent,
    ResizeOptions, WhisperError, WriteOptions,
};

/// The whisper tools.
#[derive(Debug, Subcommand)]
pub enum WhisperCommand {
    /// Create a whisper file (whisper-create.py).
    #[command(infer_long_args = true)]
    Create(CreateArgs),
    /// Write points (whisper-update.py); `N:` means now.
    #[command(infer_long_args = true)]
    Update(UpdateArgs),
    /// Print points (whisper-fetch.py).
    #[command(infer_long_args = true)]
    Fetch(FetchArgs),
    /// Print a file's header (whisper-info.py).
    #[command(infer_long_args = true)]
    Info(InfoArgs),
    /// Print header and every stored point (whisper-dump.py).
    #[command(infer_long_args = true)]
    Dump(DumpArgs),
    /// Rebuild a file with new archives (whisper-resize.py).
    #[command(infer_long_args = true)]
    Resize(ResizeArgs),
    /// Change the aggregation method (whisper-set-aggregation-method.py).
    #[command(infer_long_args = true)]
    SetAggregationMethod(SetAggregationMethodArgs),
    /// Change the xFilesFactor (whisper-set-xfilesfactor.py).
    SetXfilesfactor(SetXFilesFactorArgs),
    /// Copy one file's points over another's (whisper-merge.py).
    #[command(infer_long_args = true)]
    Merge(MergeArgs),
    /// Copy one file's points into another's gaps (whisper-fill.py).
    #[command(infer_long_args = true)]
    Fill(FillArgs),
    /// Compare two files (whisper-diff.py).
    #[command(infer_long_args = true)]
    Diff(DiffArgs),
}

fn py_float_arg(s: &str) -> Result<f64, String> {
    python::number::parse_float(s)
        .ok_or_else(|| format!("invalid floating-point value: {}", python::text::repr(s)))
}

fn py_int_arg(s: &str) -> Result<i64, String> {
    python::number::parse_optparse_int(s)
        .ok_or_else(|| format!("invalid integer value: {}", python::text::repr(s)))
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// PATH RETENTION... (with --estimate: RETENTION... only)
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    #[arg(long = "xFilesFactor", value_parser = py_float_arg, allow_hyphen_values = true)]
    x_files_factor: Option<f64>,
    /// Function to use when aggregating values (average, sum, last, max, min, avg_zero, absmax, absmin)
    #[arg(long = "aggregationMethod")]
    aggregation_method: Option<String>,
    #[arg(long)]
    overwrite: bool,
    /// Don't create a whisper file, estimate storage requirements based on archive definitions
    #[arg(long)]
    estimate: bool,
    /// Create new whisper as sparse file
    #[arg(long)]
    sparse: bool,
    /// Create new whisper and use fallocate
    #[arg(long)]
    fallocate: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// PATH [TIMESTAMP:VALUE ...]; without points, they are read one per line from stdin
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// Current time in Unix seconds (default: the clock)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    now: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Drop {
    Nulls,
    Zeroes,
    Empty,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// PATH
    #[arg(value_name = "PATH")]
    args: Vec<String>,
    /// Unix epoch time of the beginning of your requested interval (default: 24 hours ago)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    from: Option<i64>,
    /// Unix epoch time of the end of your requested interval (default: now)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    until: Option<i64>,
    /// Current time in Unix seconds (default: the clock)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    now: Option<i64>,
    /// Output results in JSON form
    #[arg(long)]
    json: bool,
    /// Show human-readable timestamps instead of unix times
    #[arg(long)]
    pretty: bool,
    /// Time format to use with --pretty; see time.strftime()
    #[arg(short = 't', long = "time-format")]
    time_format: Option<String>,
    /// Drop nulls, zeroes or both (empty)
    #[arg(long, value_enum)]
    drop: Option<Drop>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// PATH [FIELD]
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// Output results in JSON form
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// PATH
    #[arg(value_name = "PATH")]
    args: Vec<String>,
    /// Show human-readable timestamps instead of unix times
    #[arg(long)]
    pretty: bool,
    /// Time format to use with --pretty; see time.strftime()
    #[arg(short = 't', long = "time-format")]
    time_format: Option<String>,
    /// Dump value only in the same format for whisper-update (UTC timestamps)
    #[arg(short = 'r', long)]
    raw: bool,
}

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// PATH RETENTION...
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// Change the xFilesFactor
    #[arg(long = "xFilesFactor", value_parser = py_float_arg, allow_hyphen_values = true)]
    x_files_factor: Option<f64>,
    /// Change the aggregation function
    #[arg(long = "aggregationMethod")]
    aggregation_method: Option<String>,
    /// Perform a destructive change (accepted and ignored, as in whisper-resize.py)
    #[arg(long)]
    force: bool,
    /// Create a new database file without removing the existing one
    #[arg(long)]
    newfile: Option<String>,
    /// Delete the .bak file after successful execution
    #[arg(long)]
    nobackup: bool,
    /// Try to aggregate the values to fit the new archive better
    #[arg(long)]
    aggregate: bool,
    /// Current time in Unix seconds (default: the clock)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    now: Option<i64>,
}

#[derive(Debug, Args)]
pub struct SetAggregationMethodArgs {
    /// PATH METHOD [XFILESFACTOR]
    #[arg(value_name = "ARGS", allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SetXFilesFactorArgs {
    /// path to whisper file
    path: String,
    /// new xFilesFactor, a float between 0 and 1
    #[arg(value_name = "xFilesFactor", value_parser = py_float_arg, allow_hyphen_values = true)]
    xff: f64,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// FROM_PATH TO_PATH
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// Beginning of interval, unix timestamp (default: epoch)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    from: Option<i64>,
    /// End of interval, unix timestamp (default: now)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    until: Option<i64>,
    /// Current time in Unix seconds (default: the clock)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    now: Option<i64>,
}

#[derive(Debug, Args)]
pub struct FillArgs {
    /// SRC DST
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// Lock whisper files
    #[arg(long)]
    lock: bool,
    /// Current time in Unix seconds (default: the clock)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    now: Option<i64>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// PATH_A PATH_B
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// show summary of differences
    #[arg(long)]
    summary: bool,
    /// skip comparison if either value is undefined
    #[arg(long = "ignore-empty")]
    ignore_empty: bool,
    /// print output in simple columns
    #[arg(long)]
    columns: bool,
    /// do not print column headers
    #[arg(long = "no-headers")]
    no_headers: bool,
    /// Unix epoch time of the end of your requested interval (default: None)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    until: Option<i64>,
    /// Output results in JSON form
    #[arg(long)]
    json: bool,
    /// Current time in Unix seconds (default: the clock)
    #[arg(long, value_parser = py_int_arg, allow_hyphen_values = true)]
    now: Option<i64>,
}

/// Runs one tool; returns the process exit status.
pub fn run(command: WhisperCommand) -> i32 {
    // The scripts restore SIGPIPE's default, so `| head` ends them quietly; so do we.
    // SAFETY: setting a signal disposition to SIG_DFL has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let status = match command {
        WhisperCommand::Create(a) => create(a),
        WhisperCommand::Update(a) => update(a),
        WhisperCommand::Fetch(a) => fetch(a),
        WhisperCommand::Info(a) => info(a),
        WhisperCommand::Dump(a) => dump(a),
        WhisperCommand::Resize(a) => resize(a),
        WhisperCommand::SetAggregationMethod(a) => set_aggregation_method(a),
        WhisperCommand::SetXfilesfactor(a) => set_x_files_factor(a),
        WhisperCommand::Merge(a) => merge(a),
        WhisperCommand::Fill(a) => fill(a),
        WhisperCommand::Diff(a) => diff(a),
    };
    let _ = std::io::stdout().flush();
    status
}

/// Prints `[ERROR] <message>` on stderr and returns status 1, as the scripts'
/// `raise SystemExit('[ERROR] ...')` does.
fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("[ERROR] {message}");
    1
}

/// Python's text for an OS error: `[Errno 2] No such file or directory: 'path'`.
fn python_io_message(path: &Path, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let strerror = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text);
            format!(
                "[Errno {code}] {strerror}: {}",
                python::text::repr(&path.to_string_lossy())
            )
        }
        None => e.to_string(),
    }
}

/// A whisper error as the Python tools print it.
fn py_err(e: &WhisperError) -> String {
    match e {
        WhisperError::Io { path, source } => python_io_message(path, source),
        other => other.to_string(),
    }
}

fn print_help(name: &str) {
    let cmd = WhisperCommand::augment_subcommands(clap::Command::new("carbide whisper"));
    if let Some(mut sub) = cmd.find_subcommand(name).cloned() {
        let help = sub.render_help();
        print!("{help}");
    }
}

fn now_or_clock(now: Option<i64>) -> i64 {
    now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    })
}

fn write_options() -> WriteOptions {
    WriteOptions::default()
}

// ---------------------------------------------------------------- create

/// whisper-create.py's `byte_format`.
fn byte_format(mut num: f64) -> String {
    for unit in ["bytes", "KB", "MB"] {
        if num < 1024.0 {
            return format!("{}{unit}", printf_f(num, 3));
        }
        num /= 1024.0;
    }
    format!("{}GB", printf_f(num, 3))
}

fn estimate(args: &[String]) -> i32 {
    if args.is_empty() {
        println!("Usage: carbide whisper create --estimate timePerPoint:timeToStore [timePerPoint:timeToStore]*");
        return 1;
    }
    let defs: Vec<&str> = match args {
        [one] if one.find(',').is_some_and(|i| i > 0) => one.split(',').collect(),
        _ => args.iter().map(String::as_str).collect(),
    };
    let mut out = String::new();
    let mut archives: u128 = 0;
    let mut total_points: u128 = 0;
    for def in defs {
        match parse_retention_def(def) {
            Ok((precision, points)) => {
                out.push_str(&format!(
                    "Archive {archives}: {points} points of {precision}s precision\n"
                ));
                archives += 1;
                total_points += u128::from(points);
            }
            Err(m) => {
                print!("{out}");
                return fail(m);
            }
        }
    }
    let size = 16 + archives * 12 + total_points * 12;
    let disk_size = ((size as f64 / 4096.0).ceil() * 4096.0) as u128;
    out.push_str(&format!(
        "\nEstimated Whisper DB Size: {} ({} bytes on disk with 4k blocks)\n\n",
        byte_format(size as f64),
        disk_size
    ));
    for x in [1u128, 5, 10, 50, 100, 500] {
        out.push_str(&format!(
            "Estimated storage requirement for {x}k metrics: {}\n",
            byte_format((x * 1000 * disk_size) as f64)
        ));
    }
    print!("{out}");
    0
}

// Not `RangeInclusive::contains`: that would refuse NaN, which whisper.py lets through.
#[allow(clippy::manual_range_contains)]
fn xff_range_error(x: f64) -> Option<String> {
    // Written as whisper.py's `x < 0 or x > 1`, so NaN passes here (the core refuses it).
    (x < 0.0 || x > 1.0).then(|| {
        format!(
            "Invalid xFilesFactor {}, not between 0 and 1",
            float_repr(x)
        )
    })
}

fn create(a: CreateArgs) -> i32 {
    if a.estimate {
        return estimate(&a.args);
    }
    if a.args.len() < 2 {
        print_help("create");
        return 1;
    }
    let path_s = &a.args[0];
    let path = Path::new(path_s);
    let mut archives = Vec::new();
    for def in &a.args[1..] {
        match parse_retention_def(def) {
            Ok(x) => archives.push(x),
            Err(m) => return fail(m),
        }
    }
    if a.overwrite && path.exists() {
        println!("Overwriting existing file: {path_s}");
        if let Err(e) = std::fs::remove_file(path) {
            return fail(python_io_message(path, &e));
        }
    }
    let xff = a.x_files_factor.unwrap_or(0.5);
    let method = a.aggregation_method.as_deref().unwrap_or("average");
    // whisper.py checks the archives, then existence, then the method, then xFilesFactor.
    let mut sorted = archives.clone();
    if let Err(e) = whisper::validate_archive_list(&mut sorted) {
        return fail(py_err(&e));
    }
    if !path.exists() && AggregationMethod::from_name(method).is_some() {
        if let Some(m) = xff_range_error(xff) {
            return fail(m);
        }
    }
    let opts = CreateOptions {
        x_files_factor: xff,
        sparse: a.sparse,
        fallocate: a.fallocate,
        ..CreateOptions::default()
    };
    if let Err(e) = whisper::create_with_method_name(path, &archives, &opts, method) {
        return fail(py_err(&e));
    }
    match std::fs::metadata(path) {
        Ok(m) => {
            println!("Created: {path_s} ({} bytes)", m.len());
            0
        }
        Err(e) => fail(python_io_message(path, &e)),
    }
}

// ---------------------------------------------------------------- update

fn unpack_error(parts: usize) -> String {
    if parts < 2 {
        format!("not enough values to unpack (expected 2, got {parts})")
    } else {
        "too many values to unpack (expected 2)".to_string()
    }
}

fn update(a: UpdateArgs) -> i32 {
    if a.args.is_empty() {
        print_help("update");
        return 1;
    }
    let now = now_or_clock(a.now);
    let path = Path::new(&a.args[0]);
    let strings: Vec<String> = if a.args.len() >= 2 {
        a.args[1..].to_vec()
    } else {
        let mut input = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut input) {
            return fail(e);
        }
        // Python reads stdin in text mode: universal newlines, each line keeps its "\n".
        let text = String::from_utf8_lossy(&input)
            .replace("\r\n", "\n")
            .replace('\r', "\n");
        text.split_inclusive('\n').map(str::to_string).collect()
    };
    let marker = format!("{now}:");
    let points: Vec<Vec<String>> = strings
        .iter()
        .map(|s| {
            s.replace("N:", &marker)
                .split(':')
                .map(str::to_string)
                .collect()
        })
        .collect();

    if let [one] = points.as_slice() {
        let [ts, value] = one.as_slice() else {
            return fail(unpack_error(one.len()));
        };
        let Some(value) = python::number::parse_float(value) else {
            return fail(format!(
                "could not convert string to float: {}",
                python::text::repr(value)
            ));
        };
        let Some(ts_n) = python::number::parse_int(ts) else {
            // whisper.py opens the file and reads the header before it converts the timestamp.
            if let Err(e) = whisper::info(path) {
                return fail(py_err(&e));
            }
            return fail(format!(
                "invalid literal for int() with base 10: {}",
                python::text::repr(ts)
            ));
        };
        return match whisper::update(path, value, Some(ts_n), Some(now), write_options()) {
            Ok(()) => 0,
            Err(e) => fail(py_err(&e)),
        };
    }
    let mut parsed = Vec::with_capacity(points.len());
    for p in &points {
        let [ts, value] = p.as_slice() else {
            return fail(unpack_error(p.len()));
        };
        let Some(ts) = python::number::parse_int(ts) else {
            return fail(format!(
                "invalid literal for int() with base 10: {}",
                python::text::repr(ts)
            ));
        };
        let Some(value) = python::number::parse_float(value) else {
            return fail(format!(
                "could not convert string to float: {}",
                python::text::repr(value)
            ));
        };
        parsed.push((ts, value));
    }
    match whisper::update_many(path, &parsed, Some(now), write_options()) {
        Ok(()) => 0,
        Err(e) => fail(py_err(&e)),
    }
}

// ---------------------------------------------------------------- fetch

fn pretty_time(t: i64, format: Option<&str>) -> String {
    let s = match format {
        Some(f) => timefmt::strftime(f, t),
        None => timefmt::ctime(t),
    };
    s.unwrap_or_else(|| t.to_string())
}

fn fetch(a: FetchArgs) -> i32 {
    if a.args.len() != 1 {
        print_help("fetch");
        return 1;
    }
    let path = Path::new(&a.args[0]);
    let now = now_or_clock(a.now);
    let from = a.from.unwrap_or(now - 86400);
    let until = a.until.unwrap_or(now);
    let result = match whisper::fetch(path, from, Some(until), Some(now), None) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("No data in selected timerange");
            return 1;
        }
        Err(e) => return fail(py_err(&e)),
    };
    let mut values = result.values;
    if let Some(drop) = a.drop {
        values.retain(|v| match drop {
            Drop::Nulls => v.is_some(),
            Drop::Zeroes => *v != Some(0.0),
            Drop::Empty => v.is_some() && *v != Some(0.0),
        });
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        let _ = writeln!(
            out,
            "{{\n    \"start\" : {},\n    \"end\" : {},\n    \"step\" : {},\n    \"values\" : {}\n  }}",
            result.start,
            result.end,
            result.step,
            list_repr(&values).replace("None", "null")
        );
        return 0;
    }
    let mut t = result.start;
    for v in values {
        let time = if a.pretty {
            pretty_time(t, a.time_format.as_deref())
        } else {
            t.to_string()
        };
        let value = v.map_or_else(|| "None".to_string(), |v| printf_f(v, 6));
        let _ = writeln!(out, "{time}\t{value}");
        t += result.step;
    }
    0
}

// ---------------------------------------------------------------- info

const INFO_FIELDS: [&str; 5] = [
    "aggregationMethod",
    "maxRetention",
    "xFilesFactor",
    "archives",
    "fileSize",
];

fn archive_fields(a: &ArchiveInfo) -> [(&'static str, u64); 5] {
    [
        ("offset", u64::from(a.offset)),
        ("secondsPerPoint", u64::from(a.seconds_per_point)),
        ("points", u64::from(a.points)),
        ("retention", a.retention),
        ("size", a.size),
    ]
}

/// Python's `str()` of the archives list of dicts.
fn archives_repr(archives: &[ArchiveInfo]) -> String {
    let items: Vec<String> = archives
        .iter()
        .map(|a| {
            let fields: Vec<String> = archive_fields(a)
                .iter()
                .map(|(k, v)| format!("'{k}': {v}"))
                .collect();
            format!("{{{}}}", fields.join(", "))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn info_json(h: &Header, file_size: u64) -> String {
    let archives = h
        .archives
        .iter()
        .map(|a| {
            Json::Object(
                archive_fields(a)
                    .iter()
                    .map(|&(k, v)| (k.to_string(), Json::Int(v as i64)))
                    .collect(),
            )
        })
        .collect();
    Json::Object(vec![
        (
            "aggregationMethod".into(),
            Json::Str(h.aggregation_method.name().into()),
        ),
        ("maxRetention".into(), Json::Int(i64::from(h.max_retention))),
        (
            "xFilesFactor".into(),
            Json::Float(f64::from(h.x_files_factor)),
        ),
        ("archives".into(), Json::List(archives)),
        ("fileSize".into(), Json::Int(file_size as i64)),
    ])
    .dumps(2, ",", ": ")
}

fn info(a: InfoArgs) -> i32 {
    let Some(path_s) = a.args.first() else {
        print_help("info");
        return 1;
    };
    let path = Path::new(path_s);
    let header = match whisper::info(path) {
        Ok(h) => h,
        // whisper.info returns None on an OS error and the script then fails on it.
        Err(WhisperError::Io { .. }) => {
            return fail("'NoneType' object does not support item assignment")
        }
        Err(e) => return fail(py_err(&e)),
    };
    let file_size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return fail(python_io_message(path, &e)),
    };
    let xff = float_repr(f64::from(header.x_files_factor));
    if let Some(field) = a.args.get(1).filter(|f| !f.is_empty()) {
        let value = match field.as_str() {
            "aggregationMethod" => header.aggregation_method.name().to_string(),
            "maxRetention" => header.max_retention.to_string(),
            "xFilesFactor" => xff,
            "archives" => archives_repr(&header.archives),
            "fileSize" => file_size.to_string(),
            _ => {
                println!(
                    "Unknown field \"{field}\". Valid fields are {}",
                    INFO_FIELDS.join(",")
                );
                return 1;
            }
        };
        println!("{value}");
        return 0;
    }
    if a.json {
        println!("{}", info_json(&header, file_size));
        return 0;
    }
    let mut out = format!(
        "aggregationMethod: {}\nmaxRetention: {}\nxFilesFactor: {}\nfileSize: {}\n\n",
        header.aggregation_method.name(),
        header.max_retention,
        xff,
        file_size
    );
    for (i, archive) in header.archives.iter().enumerate() {
        out.push_str(&format!("Archive {i}\n"));
        for (k, v) in archive_fields(archive) {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
    }
    print!("{out}");
    0
}

// ---------------------------------------------------------------- dump

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn dump(a: DumpArgs) -> i32 {
    let [path_s] = a.args.as_slice() else {
        eprintln!(
            "Usage: carbide whisper dump [options] path\n\ncarbide whisper dump: error: require one input file name"
        );
        return 2;
    };
    let path = Path::new(path_s);
    if !path.exists() {
        return fail(format!("File \"{path_s}\" does not exist!"));
    }
    let map = match std::fs::read(path) {
        Ok(m) => m,
        Err(e) => return fail(python_io_message(path, &e)),
    };
    if map.is_empty() {
        return fail("cannot mmap an empty file");
    }
    // whisper-dump.py decodes the header itself: no range checks, unknown methods read as
    // average.
    let Some(meta) = map.get(..whisper::METADATA_SIZE) else {
        return fail("Unable to unpack header");
    };
    let method =
        AggregationMethod::from_code(be_u32(&meta[0..4])).unwrap_or(AggregationMethod::Average);
    let max_retention = be_u32(&meta[4..8]);
    let xff = f32::from_bits(be_u32(&meta[8..12]));
    let count = be_u32(&meta[12..16]) as usize;
    let mut archives = Vec::new();
    for i in 0..count {
        let at = whisper::METADATA_SIZE + i * whisper::ARCHIVE_INFO_SIZE;
        let Some(rec) = map.get(at..at + whisper::ARCHIVE_INFO_SIZE) else {
            return fail(format!("Unable to read archive {i} metadata"));
        };
        archives.push(ArchiveInfo::new(
            be_u32(&rec[0..4]),
            be_u32(&rec[4..8]),
            be_u32(&rec[8..12]),
        ));
    }

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !a.raw {
        let _ = write!(
            out,
            "Meta data:\n  aggregation method: {}\n  max retention: {}\n  xFilesFactor: {}\n\n",
            method.name(),
            max_retention,
            printf_g(f64::from(xff), 6)
        );
        for (i, ar) in archives.iter().enumerate() {
            let _ = write!(
                out,
                "Archive {i} info:\n  offset: {}\n  seconds per point: {}\n  points: {}\n  retention: {}\n  size: {}\n\n",
                ar.offset, ar.seconds_per_point, ar.points, ar.retention, ar.size
            );
        }
    }
    for (i, ar) in archives.iter().enumerate() {
        if !a.raw {
            let _ = writeln!(out, "Archive {i} data:");
        }
        let mut offset = ar.offset as usize;
        for point in 0..ar.points {
            let Some(rec) = map.get(offset..offset + whisper::POINT_SIZE) else {
                let _ = out.flush();
                return fail("unpack requires a buffer of 12 bytes");
            };
            let ts = be_u32(&rec[0..4]);
            let value = f64::from_be_bytes([
                rec[4], rec[5], rec[6], rec[7], rec[8], rec[9], rec[10], rec[11],
            ]);
            if a.raw {
                let _ = writeln!(out, "{ts}:{}", printf_g(value, 35));
            } else {
                let time = if a.pretty {
                    pretty_time(i64::from(ts), a.time_format.as_deref())
                } else {
                    ts.to_string()
                };
                let _ = writeln!(out, "{point}: {time}, {:>10}", printf_g(value, 35));
            }
            offset += whisper::POINT_SIZE;
        }
    }
    0
}

// ---------------------------------------------------------------- resize

fn resize(a: ResizeArgs) -> i32 {
    if a.args.len() < 2 {
        print_help("resize");
        return 1;
    }
    let path_s = &a.args[0];
    let path = Path::new(path_s);
    if !path.exists() {
        eprint!("[ERROR] File '{path_s}' does not exist!\n\n");
        print_help("resize");
        return 1;
    }
    if let Err(e) = whisper::info(path) {
        return fail(match e {
            WhisperError::Io { .. } => "'NoneType' object is not subscriptable".to_string(),
            e => py_err(&e),
        });
    }
    let mut archives = Vec::new();
    for def in &a.args[1..] {
        match parse_retention_def(def) {
            Ok(x) => archives.push(x),
            Err(m) => return fail(m),
        }
    }
    let opts = ResizeOptions {
        x_files_factor: a.x_files_factor,
        aggregation_method: a.aggregation_method.clone(),
        new_file: a.newfile.as_ref().map(Into::into),
        no_backup: a.nobackup,
        aggregate: a.aggregate,
        write: write_options(),
    };
    let _ = a.force;
    let now = now_or_clock(a.now);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut print_event = |ev: ResizeEvent<'_>| {
        let _ = match ev {
            ResizeEvent::Retrieving => writeln!(out, "Retrieving all data from the archives"),
            ResizeEvent::RemovingTemporary(p) => {
                writeln!(
                    out,
                    "Removing previous temporary database file: {}",
                    p.display()
                )
            }
            ResizeEvent::Creating(p) => {
                writeln!(out, "Creating new whisper database: {}", p.display())
            }
            ResizeEvent::Created(p, n) => writeln!(out, "Created: {} ({n} bytes)", p.display()),
            ResizeEvent::MigratingWithAggregation => {
                writeln!(out, "Migrating data with aggregation...")
            }
            ResizeEvent::OldTimestamps(ts) => {
                let items: Vec<String> = ts.iter().map(i64::to_string).collect();
                writeln!(out, "oldtimestamps: [{}]", items.join(", "))
            }
            ResizeEvent::Window { from, until, step } => {
                let range = if step == 1 {
                    format!("range({from}, {until})")
                } else {
                    format!("range({from}, {until}, {step})")
                };
                writeln!(
                    out,
                    "({from},{until},{step})\ntimepoints_to_update: {range}"
                )
            }
            ResizeEvent::MigratingWithoutAggregation => {
                writeln!(out, "Migrating data without aggregation...")
            }
            ResizeEvent::RenamingOld(p) => {
                writeln!(out, "Renaming old database to: {}", p.display())
            }
            ResizeEvent::RenamingNew(p) => {
                writeln!(out, "Renaming new database to: {}", p.display())
            }
            ResizeEvent::RestoringBackup => writeln!(out, "\nOperation failed, restoring backup"),
            ResizeEvent::UnlinkingBackup(p) => writeln!(out, "Unlinking backup: {}", p.display()),
        };
    };
    let result = whisper::resize(path, &archives, &opts, now, &mut print_event);
    let _ = out.flush();
    match result {
        Ok(_) => 0,
        Err(e) => fail(py_err(&e)),
    }
}

// ---------------------------------------------------------------- set-aggregation-method, set-xfilesfactor

fn missing_file(name: &str, path_s: &str) -> i32 {
    eprint!("[ERROR] File '{path_s}' does not exist!\n\n");
    print_help(name);
    1
}

fn set_aggregation_method(a: SetAggregationMethodArgs) -> i32 {
    if a.args.len() < 2 {
        print_help("set-aggregation-method");
        return 1;
    }
    let path_s = &a.args[0];
    let path = Path::new(path_s);
    let method_s = &a.args[1];
    let xff_s = if a.args.len() == 3 {
        Some(&a.args[2])
    } else {
        None
    };
    // whisper.py opens the file and reads its header before it looks at the arguments.
    match whisper::info(path) {
        Ok(_) => {}
        Err(WhisperError::Io { .. }) => return missing_file("set-aggregation-method", path_s),
        Err(e) => return fail(py_err(&e)),
    }
    let Some(method) = AggregationMethod::from_name(method_s) else {
        return fail(format!("Unrecognized aggregation method: {method_s}"));
    };
    let xff = match xff_s {
        None => None,
        Some(s) => match python::number::parse_float(s) {
            Some(x) => {
                if let Some(m) = xff_range_error(x) {
                    return fail(m);
                }
                Some(x)
            }
            None => return fail(format!("Invalid xFilesFactor {s}, not a float")),
        },
    };
    match whisper::set_aggregation_method(path, method, xff, write_options()) {
        Ok(old) => {
            println!("Updated aggregation method: {path_s} ({old} -> {method_s})");
            0
        }
        Err(WhisperError::Io { .. }) => missing_file("set-aggregation-method", path_s),
        Err(e) => fail(py_err(&e)),
    }
}

fn set_x_files_factor(a: SetXFilesFactorArgs) -> i32 {
    let path = Path::new(&a.path);
    match whisper::info(path) {
        Ok(_) => {}
        Err(WhisperError::Io { .. }) => return missing_file("set-xfilesfactor", &a.path),
        Err(e) => return fail(py_err(&e)),
    }
    if let Some(m) = xff_range_error(a.xff) {
        return fail(m);
    }
    match whisper::set_x_files_factor(path, a.xff, write_options()) {
        Ok(old) => {
            println!(
                "Updated xFilesFactor: {} ({} -> {})",
                a.path,
                float_repr(f64::from(old)),
                float_repr(a.xff)
            );
            0
        }
        Err(WhisperError::Io { .. }) => missing_file("set-xfilesfactor", &a.path),
        Err(e) => fail(py_err(&e)),
    }
}

// ---------------------------------------------------------------- merge, fill, diff

fn merge(a: MergeArgs) -> i32 {
    if a.args.len() < 2 {
        print_help("merge");
        return 1;
    }
    for f in &a.args[..2] {
        if !Path::new(f).exists() {
            return fail(format!("File \"{f}\" does not exist!"));
        }
    }
    let now = now_or_clock(a.now);
    match whisper::merge(
        Path::new(&a.args[0]),
        Path::new(&a.args[1]),
        a.from,
        a.until,
        Some(now),
    ) {
        Ok(()) => 0,
        Err(e) => fail(py_err(&e)),
    }
}

fn fill(a: FillArgs) -> i32 {
    let [src, dst] = a.args.as_slice() else {
        print_help("fill");
        return 1;
    };
    let now = now_or_clock(a.now);
    let opts = WriteOptions {
        lock: a.lock,
        ..write_options()
    };
    match whisper::fill(Path::new(src), Path::new(dst), now, opts) {
        Ok(()) => 0,
        Err(e) => fail(py_err(&e)),
    }
}

fn opt_float_str(v: Option<f64>) -> String {
    v.map_or_else(|| "None".to_string(), float_repr)
}

fn opt_float_json(v: Option<f64>) -> Json {
    v.map_or(Json::Null, Json::Float)
}

fn diff_text(diffs: &[ArchiveDiff], pretty: bool, headers: bool, summary: bool) -> String {
    let mut out = String::new();
    if summary {
        if headers {
            out.push_str(&if pretty {
                format!("{:>7} {:>9} {:>9}\n", "archive", "total", "differing")
            } else {
                "archive total differing\n".to_string()
            });
        }
        for d in diffs {
            out.push_str(&if pretty {
                format!("{:>7} {:>9} {:>9}\n", d.index, d.total, d.points.len())
            } else {
                format!("{} {} {}\n", d.index, d.total, d.points.len())
            });
        }
        return out;
    }
    let header = |out: &mut String, first: &str| {
        out.push_str(&if pretty {
            format!(
                "{:>7} {:>11} {:>13} {:>13}\n",
                first, "timestamp", "value_a", "value_b"
            )
        } else {
            format!("{first} timestamp value_a value_b\n")
        });
    };
    if headers {
        header(&mut out, "archive");
    }
    for d in diffs {
        if pretty {
            out.push_str(&format!(
                "Archive {} ({} of {} datapoints differ)\n",
                d.index,
                d.points.len(),
                d.total
            ));
            header(&mut out, "");
        }
        for &(ts, va, vb) in &d.points {
            let (va, vb) = (opt_float_str(va), opt_float_str(vb));
            out.push_str(&if pretty {
                format!("{:>7} {:>11} {:>13} {:>13}\n", "", ts, va, vb)
            } else {
                format!("{} {} {} {}\n", d.index, ts, va, vb)
            });
        }
    }
    out
}

fn diff_json(diffs: &[ArchiveDiff], path_a: &str, path_b: &str, summary: bool) -> String {
    let archives = diffs
        .iter()
        .map(|d| {
            // Keys sorted, as json.dumps(sort_keys=True) has them.
            let mut fields = vec![("archive".to_string(), Json::Int(d.index as i64))];
            if !summary {
                let points = d
                    .points
                    .iter()
                    .map(|&(ts, va, vb)| {
                        Json::Object(vec![
                            ("timestamp".into(), Json::Int(ts)),
                            ("value_a".into(), opt_float_json(va)),
                            ("value_b".into(), opt_float_json(vb)),
                        ])
                    })
                    .collect();
                fields.push(("datapoint".into(), Json::List(points)));
            }
            fields.push(("points".into(), Json::Int(d.points.len() as i64)));
            fields.push(("total".into(), Json::Int(d.total as i64)));
            Json::Object(fields)
        })
        .collect();
    Json::Object(vec![
        ("archives".into(), Json::List(archives)),
        ("path_a".into(), Json::Str(path_a.into())),
        ("path_b".into(), Json::Str(path_b.into())),
    ])
    .dumps(2, ",", " : ")
}

fn diff(a: DiffArgs) -> i32 {
    let [path_a, path_b] = a.args.as_slice() else {
        print_help("diff");
        return 1;
    };
    let now = now_or_clock(a.now);
    let until = a.until.filter(|&u| u != 0);
    let diffs = match whisper::diff(
        Path::new(path_a),
        Path::new(path_b),
        a.ignore_empty,
        until,
        Some(now),
    ) {
        Ok(d) => d,
        Err(e) => return fail(py_err(&e)),
    };
    let text = if a.json {
        format!("{}\n", diff_json(&diffs, path_a, path_b, a.summary))
    } else {
        diff_text(&diffs, !a.columns, !a.no_headers, a.summary)
    };
    print!("{text}");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_format_like_the_script() {
        assert_eq!(byte_format(1756.0), "1.715KB");
        assert_eq!(byte_format(100.0), "100.000bytes");
        assert_eq!(byte_format(4096.0 * 1000.0 * 1000.0), "3.815GB");
    }

    #[test]
    fn diff_text_layout() {
        let d = vec![ArchiveDiff {
            index: 0,
            points: vec![(60, Some(1.0), None)],
            total: 2,
        }];
        assert_eq!(
            diff_text(&d, true, true, false),
            concat!(
                "archive   timestamp       value_a       value_b\n",
                "Archive 0 (1 of 2 datapoints differ)\n",
                "          timestamp       value_a       value_b\n",
                "                 60           1.0          None\n",
            )
        );
        assert_eq!(diff_text(&d, false, false, false), "0 60 1.0 None\n");
        assert_eq!(
            diff_text(&d, true, true, true),
            "archive     total differing\n      0         2         1\n"
        );
    }
}
