//! A full disk under `carbide serve`: the data directory is a 1 MiB tmpfs that fills after two
//! whisper files. The server must keep accepting and answering, count the failed writes, and
//! once the tmpfs is grown, write every accepted point without any hand-work.
//! Mounting needs root, which CI and the development machines have.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::server::{whisper_py_points, Server};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_disk_loses_nothing_and_recovers_by_itself() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test mounts a tmpfs and must run as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // The default schema makes 436,396-byte files: two fit in 1 MiB, the third does not.
    let disk = Tmpfs::mount(&dir.path().join("disk"), "1m");
    let server = Server::start(&disk.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let t = now - now % 60 - 180;

    let mut tcp = TcpStream::connect(("127.0.0.1", server.line)).expect("connect");
    let mut lines = String::new();
    for m in 0..8 {
        for k in 0..3 {
            lines.push_str(&format!("full.m{m} {} {}\n", m * 10 + k, t + k * 60));
        }
    }
    tcp.write_all(lines.as_bytes()).expect("send");
    server.wait_received(24);
    wait_for("the writers to hit the full disk", 20, || {
        server.stats()["persist"]["errors"].as_u64() > Some(0)
    });

    // Still serving: another point is accepted while the disk is full.
    tcp.write_all(format!("full.late 99 {t}\n").as_bytes())
        .expect("send");
    server.wait_received(25);
    assert!(server.stats()["persist"]["committed_points"].as_u64() < Some(25));

    disk.resize("64m");
    wait_for("every point to be written once there is room", 30, || {
        server.stats()["persist"]["committed_points"].as_u64() >= Some(25)
    });
    drop(tcp);
    let data = server.data.clone();
    server.stop();

    for m in 0..8 {
        let want: Vec<(i64, f64)> = (0..3).map(|k| (t + k * 60, (m * 10 + k) as f64)).collect();
        assert_eq!(
            whisper_py_points(&data, &format!("full.m{m}"), 3600),
            want,
            "full.m{m}"
        );
    }
    assert_eq!(whisper_py_points(&data, "full.late", 3600), vec![(t, 99.0)]);
}
