//! create's options: sparse and fallocate files hold the same bytes as whisper.py's default
//! zero-filled file (whisper.py's own file is the reference), and write locking really takes
//! an exclusive flock for as long as the handle is open.

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;

use carbide::whisper::{self, AggregationMethod, CreateOptions, WhisperFile, WriteOptions};

fn python_create(path: &std::path::Path, archives: &str, xff: f64, method: &str) {
    let script = format!(
        "import whisper; whisper.create({:?}, {archives}, xFilesFactor={xff}, aggregationMethod={method:?})",
        path.to_str().expect("utf-8 path")
    );
    let out = Command::new(common::python())
        .arg("-c")
        .arg(script)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn default_sparse_and_fallocate_files_equal_whisper_py() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("py.wsp");
    python_create(
        &reference,
        "[(10, 8640), (60, 43200), (600, 52560)]",
        0.1,
        "absmin",
    );
    let expected = std::fs::read(&reference).expect("read reference");
    for (name, sparse, fallocate) in [
        ("plain", false, false),
        ("sparse", true, false),
        ("fallocate", false, true),
    ] {
        let path = dir.path().join(format!("{name}.wsp"));
        let opts = CreateOptions {
            x_files_factor: 0.1,
            aggregation_method: AggregationMethod::AbsMin,
            sparse,
            fallocate,
            write: WriteOptions {
                lock: true,
                autoflush: true,
            },
        };
        // Unsorted on purpose: create sorts archives by precision as whisper.py does.
        whisper::create(&path, &[(600, 52560), (10, 8640), (60, 43200)], &opts).expect("create");
        assert!(
            std::fs::read(&path).expect("read") == expected,
            "{name}: bytes differ from whisper.py's"
        );
    }
}

#[test]
fn create_refuses_an_existing_file_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.wsp");
    std::fs::write(&path, b"keep").expect("write");
    let err = whisper::create(&path, &[(60, 10)], &CreateOptions::default()).expect_err("exists");
    assert_eq!(
        err.to_string(),
        format!("File {} already exists!", path.display())
    );
    assert_eq!(std::fs::read(&path).expect("read"), b"keep");
}

#[test]
fn locked_writes_hold_an_exclusive_flock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("l.wsp");
    whisper::create(&path, &[(60, 10)], &CreateOptions::default()).expect("create");
    let try_lock = || {
        let f = std::fs::File::open(&path).expect("open");
        // SAFETY: plain flock on a descriptor we own.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    };
    {
        let _held = WhisperFile::open_with(
            &path,
            true,
            WriteOptions {
                lock: true,
                autoflush: false,
            },
        )
        .expect("open locked");
        assert!(
            !try_lock(),
            "a second exclusive flock succeeded while the file was locked"
        );
    }
    assert!(try_lock(), "the lock outlived the handle");
    let _unlocked = WhisperFile::open_with(&path, true, WriteOptions::default()).expect("open");
    assert!(try_lock(), "an unlocked open took a lock");
}
