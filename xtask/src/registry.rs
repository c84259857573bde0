//! The state directory: the lock, PID files, per-service records and log paths.
//!
//! Only this module writes under the state directory (services write their own logs
//! through file descriptors opened here). Every write is atomic: a temporary file is
//! written and renamed over the old one, so a crash of xtask at any instant leaves
//! either the old record or the new one, never half of one.
//!
//! There is no fsync. It would only guard against a crash of the operating system, and
//! after one every service is gone anyway: each record is then stale and is recognised
//! as such by its PID and start time, torn or not. Measured, the fsyncs cost 1 to 2 ms
//! each, eight per started service, and made starts and stops ten times slower.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, exit};
use crate::poll::{self, Backoff};
use crate::process::ServiceProcess;

/// How long a command waits for another one to release the lock before naming it.
const LOCK_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// What `run/<service>.json` holds about one started service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub service: String,
    pub pid: i32,
    pub pgid: i32,
    /// Clock ticks since boot; with `pid`, the process identity.
    pub start_time: u64,
    pub command: String,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub restarts: u32,
    pub state: ServiceState,
    /// How long the service took to become healthy, once it did.
    pub healthy_after_ms: Option<u64>,
    /// How its main process last ended, when someone saw it end ("exit code 1").
    pub last_exit: Option<String>,
    pub log: PathBuf,
    pub ports: Vec<u16>,
    /// The container's name, for a container service; `pid` is then the host PID of
    /// its main process, which Docker, not xtask, signals.
    #[serde(default)]
    pub container: Option<String>,
}

/// Where a service is in its life, as the last command or supervisor left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Started, not yet healthy.
    Starting,
    Healthy,
    /// Was healthy; its liveness probe now fails (restart policy `no`).
    Unhealthy,
    /// Exited; the supervisor starts it again after a backoff.
    Restarting,
    /// A one-shot job that exited 0; never restarted.
    Completed,
    /// Exited and will not be restarted (policy, or `max_restarts` reached).
    Failed,
    /// A `stop` is taking it down: no supervisor may restart it.
    Stopping,
}

/// Who supervises the project's services: the detached monitor of `start-bg`, or a
/// foreground `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorRecord {
    pub pid: i32,
    pub start_time: u64,
    pub foreground: bool,
    pub started_at_ms: u64,
}

/// One file found in `run/`.
#[derive(Debug, Clone)]
pub enum Entry {
    Record(Record),
    /// A record or PID file that cannot be trusted: it is reported, treated as stale
    /// and never used to signal anything.
    Corrupt {
        service: String,
        path: PathBuf,
        reason: String,
    },
}

/// The exclusive lock on the state directory, released on drop.
#[derive(Debug)]
pub struct Lock {
    file: Flock<File>,
}

impl Lock {
    /// The descriptor, for handing the lock to a child process.
    pub fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }

    /// Keeps the lock held by whoever shares its descriptor (a child it was handed to):
    /// dropping it would unlock the shared open file description.
    pub fn hand_over(self) {
        std::mem::forget(self);
    }
}

impl Registry {
    pub fn new(dir: &Path) -> Registry {
        Registry { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{service}.log"))
    }

    fn record_path(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.json"))
    }

    fn pid_path(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.pid"))
    }

    /// Creates the directories and takes the exclusive lock, waiting up to a few seconds
    /// for another xtask command to finish. `command` is shown to whoever waits on us.
    pub fn lock(&self, command: &str) -> Result<Lock, Error> {
        let path = self.dir.join("lock");
        let mut file = Some(self.open_lock_file()?);
        let deadline = Instant::now() + LOCK_WAIT;
        let locked = poll::wait_until(
            deadline,
            Backoff::new(Duration::from_millis(5), Duration::from_millis(100)),
            || {
                let (lock, back) = try_flock(file.take()?);
                file = back;
                lock
            },
        );
        let Some(lock) = locked else {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another xtask command".to_string()
            } else {
                format!("`{holder}`")
            };
            return Err(Error::with_code(
                exit::LOCKED,
                format!(
                    "{who} holds the lock on {} and did not release it within {}s; wait for it to finish, or stop it",
                    path.display(),
                    LOCK_WAIT.as_secs()
                ),
            ));
        };
        Ok(announce(lock, command))
    }

    /// Takes over a lock that the parent process holds and handed down as an open file
    /// descriptor (a `flock` belongs to the open file description, which parent and
    /// child now share, so there is no moment without it). The descriptor is closed on
    /// exec again, so that no service inherits the lock.
    pub fn adopt_lock(&self, fd: i32, command: &str) -> Result<Lock, Error> {
        use std::os::fd::FromRawFd;
        let valid = nix::fcntl::fcntl(
            // SAFETY: only borrowed for the duration of this call, to test the descriptor.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        if valid.is_err() {
            return self.lock(command);
        }
        // SAFETY: start-bg passed this descriptor for us alone; nothing else in this
        // process owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        match try_flock(file) {
            (Some(lock), _) => Ok(announce(lock, command)),
            (None, _) => self.lock(command),
        }
    }

    /// The lock if it is free right now: supervisors act only while holding it, and
    /// never wait for it, so that a long `stop` cannot stall their reaping.
    pub fn try_lock(&self, command: &str) -> Result<Option<Lock>, Error> {
        let (lock, _) = try_flock(self.open_lock_file()?);
        Ok(lock.map(|l| announce(l, command)))
    }

    fn open_lock_file(&self) -> Result<File, Error> {
        for dir in [self.run_dir(), self.dir.join("logs")] {
            fs::create_dir_all(&dir).map_err(|err| state_error(&dir, &err))?;
        }
        let path = self.dir.join("lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| state_error(&path, &err))
    }

    fn monitor_path(&self) -> PathBuf {
        self.dir.join("monitor.json")
    }

    /// The recorded supervisor, if any (alive or not).
    pub fn monitor(&self) -> Option<MonitorRecord> {
        serde_json::from_slice(&fs::read(self.monitor_path()).ok()?).ok()
    }

    pub fn write_monitor(&self, record: &MonitorRecord, _lock: &Lock) -> Result<(), Error> {
        let json =
            serde_json::to_vec_pretty(record).map_err(|err| Error::failure(format!("cannot encode record: {err}")))?;
        let path = self.monitor_path();
        write_atomically(&path, &json).map_err(|err| state_error(&path, &err))
    }

    /// Removes the supervisor record if it still names `pid`.
    pub fn remove_monitor(&self, pid: i32, _lock: &Lock) {
        if self.monitor().is_some_and(|m| m.pid == pid) {
            let _ = fs::remove_file(self.monitor_path());
        }
    }

    /// The modification time of `run/`, which changes whenever a record is created,
    /// replaced or removed: supervisors re-read records only when it moves.
    pub fn run_dir_stamp(&self) -> Option<std::time::SystemTime> {
        fs::metadata(self.run_dir()).and_then(|m| m.modified()).ok()
    }

    /// Opens a service's log file for appending; the service writes to it directly.
    pub fn open_log(&self, service: &str) -> Result<File, Error> {
        let path = self.log_path(service);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|err| state_error(&path, &err))
    }

    /// Writes the record and the PID file atomically. The caller holds the lock.
    pub fn write(&self, record: &Record, _lock: &Lock) -> Result<(), Error> {
        let json =
            serde_json::to_vec_pretty(record).map_err(|err| Error::failure(format!("cannot encode record: {err}")))?;
        let path = self.record_path(&record.service);
        write_atomically(&path, &json).map_err(|err| state_error(&path, &err))?;
        let pid_path = self.pid_path(&record.service);
        let pid_text = format!("{}\n", record.pid);
        // Most writes change the state, not the PID: leave an identical PID file alone.
        if fs::read(&pid_path).is_ok_and(|old| old == pid_text.as_bytes()) {
            return Ok(());
        }
        write_atomically(&pid_path, pid_text.as_bytes()).map_err(|err| state_error(&pid_path, &err))
    }

    /// Removes a service's record and PID file; missing files are fine.
    pub fn remove(&self, service: &str, _lock: &Lock) -> Result<(), Error> {
        for path in [self.record_path(service), self.pid_path(service)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(state_error(&path, &err)),
            }
        }
        Ok(())
    }

    /// Removes temporary files whose writer died before renaming them (a crash in the
    /// middle of an atomic write). Returns how many.
    pub fn remove_abandoned_writes(&self, _lock: &Lock) -> usize {
        let Ok(dir) = fs::read_dir(self.run_dir()) else {
            return 0;
        };
        let mut removed = 0;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((_, writer)) = name.rsplit_once(".tmp") else {
                continue;
            };
            let alive = writer.parse::<i32>().ok().and_then(ServiceProcess::of).is_some();
            if !alive && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Every record and every untrustworthy file in `run/`, sorted by service name.
    pub fn entries(&self) -> Vec<Entry> {
        let Ok(dir) = fs::read_dir(self.run_dir()) else {
            return Vec::new();
        };
        let mut services: Vec<String> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")
                    .or_else(|| name.strip_suffix(".pid"))
                    .map(str::to_string)
            })
            .collect();
        services.sort();
        services.dedup();
        services.into_iter().filter_map(|s| self.entry(&s)).collect()
    }

    /// The record of one service, `None` when it has neither record nor PID file.
    pub fn entry(&self, service: &str) -> Option<Entry> {
        let json_path = self.record_path(service);
        let pid_path = self.pid_path(service);
        let corrupt = |path: &Path, reason: String| Entry::Corrupt {
            service: service.to_string(),
            path: path.to_path_buf(),
            reason,
        };
        let record = match fs::read(&json_path) {
            Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                Ok(record) if record.service == service => Some(record),
                Ok(record) => return Some(corrupt(&json_path, format!("it names service `{}`", record.service))),
                Err(err) => return Some(corrupt(&json_path, format!("it is not a valid record ({err})"))),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Some(corrupt(&json_path, format!("it cannot be read ({err})"))),
        };
        let pid_text = match File::open(&pid_path) {
            Ok(mut f) => {
                let mut text = String::new();
                f.read_to_string(&mut text).ok().map(|_| text)
            }
            Err(_) => None,
        };
        match (record, pid_text) {
            (None, None) => None,
            (None, Some(text)) => Some(corrupt(
                &pid_path,
                format!(
                    "a PID file (`{}`) without a record: nothing proves which process it meant",
                    text.trim()
                ),
            )),
            (Some(record), Some(text)) if text.trim().parse::<i32>() != Ok(record.pid) => Some(corrupt(
                &pid_path,
                format!(
                    "the PID file holds `{}`, but the record says pid {}",
                    text.trim(),
                    record.pid
                ),
            )),
            (Some(record), _) => Some(Entry::Record(record)),
        }
    }
}

impl Record {
    pub fn process(&self) -> ServiceProcess {
        ServiceProcess {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}

impl Entry {
    pub fn service(&self) -> &str {
        match self {
            Entry::Record(record) => &record.service,
            Entry::Corrupt { service, .. } => service,
        }
    }
}

/// One non-blocking flock attempt; gives the file back when the lock is taken elsewhere.
fn try_flock(file: File) -> (Option<Flock<File>>, Option<File>) {
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => (Some(lock), None),
        Err((file, _)) => (None, Some(file)),
    }
}

/// Writes who holds the lock into the lock file, for the message of whoever waits next.
fn announce(mut lock: Flock<File>, command: &str) -> Lock {
    let holder = format!("pid {}: xtask {command}\n", std::process::id());
    let _ = lock.set_len(0).and_then(|()| lock.write_all(holder.as_bytes()));
    Lock { file: lock }
}

fn state_error(path: &Path, err: &io::Error) -> Error {
    Error::with_code(
        exit::STATE,
        format!(
            "cannot write the state directory at {}: {err}; check its permissions or set `state_dir` in [project]",
            path.display()
        ),
    )
}

/// Writes a temporary file and swaps it into place. An existing file is exchanged with
/// the temporary one (`renameat2(RENAME_EXCHANGE)`) and the old content then unlinked,
/// rather than replaced by a plain rename: on ext4, a rename over an existing file
/// starts writeback of the new one (`auto_da_alloc`), and the next replacement or
/// removal of that file waits for the disk. Measured with 50 services, that made a
/// `stop` spend 20 to 30 ms marking records and as much again removing them. A crash
/// between the exchange and the unlink leaves the old content under the temporary
/// name, which `remove_abandoned_writes` collects.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    let exchanged = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &tmp,
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    );
    match exchanged {
        Ok(()) => fs::remove_file(&tmp),
        // ENOENT: nothing to exchange with yet (a first write). EINVAL: a file system
        // without exchange (some network file systems); a plain rename is as atomic.
        Err(_) => fs::rename(&tmp, path),
    }
}

/// Milliseconds since the Unix epoch, for records.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
