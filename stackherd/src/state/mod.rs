//! The state directory: the lock, per-service records, PID files, log files; and the
//! private runtime directory outside it, shared by the user's checkouts.
//!
//! It is private to its user (directories 0700, files 0600, see `private`): records and
//! logs hold secrets. Its files are opened without following symbolic links and read
//! only as far as they should go (see `regular`).
//!
//! Only this layer writes under the state directory (services write their own logs
//! through file descriptors opened here). Every write is atomic: a temporary file is
//! written and swapped in, so a crash of xtask at any instant leaves either the old
//! record or the new one, never half of one.
//!
//! There is no fsync. It would only guard against a crash of the operating system, and
//! after one every service is gone anyway: each record is then stale and is recognised
//! as such by its PID and start time, torn or not. Measured, the fsyncs cost 1 to 2 ms
//! each, eight per started service, and made starts and stops ten times slower.

mod atomic;
pub mod chosen_ports;
mod compose_cache;
pub mod fault;
mod handover;
mod lock;
mod log_chain;
mod log_reader;
pub mod log_times;
pub mod log_writer;
pub mod logs;
mod private;
mod record;
mod regular;
pub mod repo_files;
pub mod reservations;
mod runtime_dir;

use std::path::{Path, PathBuf};

pub use lock::{Lock, Unrecorded};
pub use record::{BuildNote, Entry, MonitorRecord, RECORD_VERSION, Record, RelayNote, ServiceState};
pub(crate) use regular::{read_project_file, read_small_text};

pub use lock::LockHolder;

/// The state directory of one project.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    /// This process's start time, written with the lock so that a later command can
    /// prove which process holds it.
    start_time: Option<u64>,
}

impl Registry {
    pub fn new(dir: &Path) -> Registry {
        Registry {
            dir: dir.to_path_buf(),
            start_time: None,
        }
    }

    /// The same, naming this process's start time in the lock it takes.
    pub fn with_start_time(self, start_time: Option<u64>) -> Registry {
        Registry { start_time, ..self }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the records are.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// Where the services' logs are.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.logs_dir().join(format!("{service}.log"))
    }

    /// The monitor's event log, apart from the services' logs (a service may be named
    /// `monitor`).
    pub fn monitor_log_path(&self) -> PathBuf {
        self.dir.join("monitor.log")
    }

    fn record_path(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.json"))
    }

    fn pid_path(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.pid"))
    }
    /// A problem when the state directory (or, before it exists, its nearest existing
    /// ancestor) cannot be written.
    pub fn unwritable(&self) -> Option<String> {
        use nix::unistd::{AccessFlags, access};
        let existing = self.dir.ancestors().find(|p| p.exists())?;
        let ok = existing.is_dir() && access(existing, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
        (!ok).then(|| {
            format!(
                "the state directory {} cannot be written ({} is not writable); fix its permissions or set `state_dir` in [project]",
                self.dir.display(),
                existing.display()
            )
        })
    }

    /// The lock file, which commands that change state hold a `flock` on.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    fn monitor_path(&self) -> PathBuf {
        self.dir.join("monitor.json")
    }
}

/// Milliseconds since the Unix epoch, for records.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
