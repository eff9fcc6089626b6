//! The file operations the writer thread performs, behind a trait so that tests can make
//! them fail.
//!
//! Only the write path goes through [`WalFs`]: a full or failing disk is a condition the
//! writer must live through, so it has to be reproducible without a real full disk.
//! Replay and segment deletion use `std::fs` directly; their failures are reported, not
//! survived. [`FaultyFs`] is public (not `cfg(test)`) so that integration tests and the
//! later server tests can use it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

/// Creates segment files and makes their directory entries durable.
pub trait WalFs: Send + Sync + 'static {
    /// Creates (or truncates) the file at `path` for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// fsyncs the directory, so that a newly created segment survives a power loss.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open segment file.
pub trait WalFile: Send {
    /// Writes all of `buf` at `offset`. On error, any prefix of `buf` may have landed.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync: the data and the size needed to read it back.
    fn sync_data(&mut self) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl WalFs for StdFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

struct StdFile(File);

impl WalFile for StdFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

/// Test hook: wraps another [`WalFs`] and fails its writes, syncs or file creation on
/// command. Clones share the same switches, so a test keeps one clone to flip them while
/// the WAL owns another.
#[derive(Clone)]
pub struct FaultyFs {
    inner: Arc<dyn WalFs>,
    state: Arc<FaultState>,
}

struct FaultState {
    /// errno returned by every write, create and sync while non-zero.
    fail_errno: AtomicI32,
    /// Bytes that may still be written before writes hit "disk full"; `u64::MAX` is
    /// unlimited. A write crossing the limit lands partially, like a real ENOSPC.
    budget: AtomicU64,
    /// errno returned by `sync_data` while non-zero (EIO: the fsync-failure case).
    sync_errno: AtomicI32,
    injected: AtomicU64,
    syncs: AtomicU64,
}

impl FaultyFs {
    pub fn new(inner: Arc<dyn WalFs>) -> FaultyFs {
        FaultyFs {
            inner,
            state: Arc::new(FaultState {
                fail_errno: AtomicI32::new(0),
                budget: AtomicU64::new(u64::MAX),
                sync_errno: AtomicI32::new(0),
                injected: AtomicU64::new(0),
                syncs: AtomicU64::new(0),
            }),
        }
    }

    /// Every write, create and sync fails with `errno` (e.g. `libc::ENOSPC`, `libc::EIO`).
    pub fn fail_all(&self, errno: i32) {
        self.state.fail_errno.store(errno, Ordering::SeqCst);
    }

    /// After `bytes` more bytes, writes fail with ENOSPC, landing partially.
    pub fn set_space(&self, bytes: u64) {
        self.state.budget.store(bytes, Ordering::SeqCst);
    }

    /// `sync_data` fails with `errno` while it is non-zero.
    pub fn fail_syncs(&self, errno: i32) {
        self.state.sync_errno.store(errno, Ordering::SeqCst);
    }

    /// Ends every injected fault: space returns.
    pub fn heal(&self) {
        self.state.fail_errno.store(0, Ordering::SeqCst);
        self.state.sync_errno.store(0, Ordering::SeqCst);
        self.state.budget.store(u64::MAX, Ordering::SeqCst);
    }

    /// How many operations failed because of an injected fault.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// How many `sync_data` calls succeeded.
    pub fn syncs(&self) -> u64 {
        self.state.syncs.load(Ordering::SeqCst)
    }

    fn check(&self) -> io::Result<()> {
        match self.state.fail_errno.load(Ordering::SeqCst) {
            0 => Ok(()),
            errno => {
                self.state.injected.fetch_add(1, Ordering::SeqCst);
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

impl WalFs for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        self.check()?;
        let inner = self.inner.create(path)?;
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            inner,
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.sync_dir(dir)
    }
}

struct FaultyFile {
    fs: FaultyFs,
    inner: Box<dyn WalFile>,
}

impl WalFile for FaultyFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.fs.check()?;
        let state = &self.fs.state;
        let budget = state.budget.load(Ordering::SeqCst);
        if budget != u64::MAX && (buf.len() as u64) > budget {
            let n = budget as usize;
            self.inner.write_all_at(&buf[..n], offset)?;
            state.budget.store(0, Ordering::SeqCst);
            state.injected.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write_all_at(buf, offset)?;
        if budget != u64::MAX {
            state.budget.fetch_sub(buf.len() as u64, Ordering::SeqCst);
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.check()?;
        match self.fs.state.sync_errno.load(Ordering::SeqCst) {
            0 => {}
            errno => {
                self.fs.state.injected.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        self.inner.sync_data()?;
        self.fs.state.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        // Truncation frees space, so a full disk does not refuse it; only a hard failure
        // (fail_all) does.
        self.fs.check()?;
        self.inner.set_len(len)
    }
}
