//! The state directory: the lock, PID files, per-service records and log paths.
//!
//! Only this module writes under the state directory (services write their own logs
//! through file descriptors opened here). Every write is atomic: a temporary file is
//! written, fsynced and renamed over the old one, then the directory is fsynced, so a
//! crash leaves either the old record or the new one, never half of one.

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
    pub health: HealthState,
    /// How long the service took to become healthy, once it did.
    pub healthy_after_ms: Option<u64>,
    pub log: PathBuf,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Starting,
    Healthy,
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
    _file: Flock<File>,
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
        for dir in [self.run_dir(), self.dir.join("logs")] {
            fs::create_dir_all(&dir).map_err(|err| state_error(&dir, &err))?;
        }
        let path = self.dir.join("lock");
        let mut file = Some(
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|err| state_error(&path, &err))?,
        );
        let deadline = Instant::now() + LOCK_WAIT;
        let locked = poll::wait_until(
            deadline,
            Backoff::new(Duration::from_millis(5), Duration::from_millis(100)),
            || {
                let f = file.take()?;
                match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                    Ok(lock) => Some(lock),
                    Err((f, _)) => {
                        file = Some(f);
                        None
                    }
                }
            },
        );
        let Some(mut lock) = locked else {
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
        // Say who holds the lock, for the message of whoever waits next.
        let holder = format!("pid {}: xtask {command}\n", std::process::id());
        let _ = lock.set_len(0).and_then(|()| lock.write_all(holder.as_bytes()));
        Ok(Lock { _file: lock })
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
        write_atomically(&pid_path, format!("{}\n", record.pid).as_bytes()).map_err(|err| state_error(&pid_path, &err))
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

fn state_error(path: &Path, err: &io::Error) -> Error {
    Error::with_code(
        exit::STATE,
        format!(
            "cannot write the state directory at {}: {err}; check its permissions or set `state_dir` in [project]",
            path.display()
        ),
    )
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Milliseconds since the Unix epoch, for records.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
