//! Records: what `run/<service>.json` holds about one started service, its plain PID
//! file for scripts, and the supervisor's `monitor.json`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::{temporary_writer, write_atomically};
use super::private::untrusted;
use super::regular::{SMALL_FILE_MAX, read_small, read_small_text};
use super::{Lock, Registry, Unrecorded};
use crate::config::valid_service_name;
use crate::error::{Error, Result};

/// The format of the records this build writes. Version 1 had no `version` field (a
/// record without one is read as 1). A field added later is ignored by an older build;
/// a record of a newer version stops every command that would act on it, rather than
/// being taken for garbage and its service for a leftover.
pub const RECORD_VERSION: u32 = 2;
/// How old `run/`'s modification time must be to tell, by itself, that nothing changed.
const STAMP_SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

/// What `run/<service>.json` holds about one started service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record format (`RECORD_VERSION` when written by this build).
    #[serde(default = "first_version")]
    pub version: u32,
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
    /// The service's cgroup, when it runs in one: every process in it is the service's.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The service's other processes as the supervisor last saw them (PID and start
    /// time): how its daemons and orphans are known where there is no cgroup, and after
    /// their titles erased the cookie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tree: Vec<(i32, u64)>,
    /// How the last build after a change of its watched files went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_build: Option<BuildNote>,
    /// The log relay that writes its output (PID and start time), when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<(i32, u64)>,
    /// When its relay died while it ran, and whether a supervisor gave it a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_lost: Option<RelayNote>,
    /// The hash of the config it was started with (command, cwd, ports, ...), and of
    /// the environment it declares: `status` compares them with the config as it reads
    /// now. A record of an older xtask has neither, and is never taken as changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_hash: Option<String>,
}

/// A log relay that died under a running service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayNote {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// A new relay writes its log; otherwise its output is lost until it restarts.
    pub restored: bool,
}

/// The result of a rebuild after a change (`watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildNote {
    pub ok: bool,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

fn first_version() -> u32 {
    1
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
#[expect(
    clippy::large_enum_variant,
    reason = "entries are read a service at a time, a few hundred at most: a box per record would cost an allocation each and save nothing measurable"
)]
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
impl Registry {
    /// The recorded supervisor, if any (alive or not).
    pub fn monitor(&self) -> Option<MonitorRecord> {
        if !self.trusted() {
            return None;
        }
        serde_json::from_slice(&read_small(&self.monitor_path(), SMALL_FILE_MAX).ok()?).ok()
    }

    pub fn write_monitor(&self, record: &MonitorRecord, _lock: &Lock) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|err| Error::state(self.dir(), io::Error::other(err)))?;
        let path = self.monitor_path();
        if !self.trusted() {
            return Err(Error::state(&path, untrusted(self.dir())));
        }
        write_atomically(&path, &json).map_err(|err| Error::state(&path, err))
    }

    /// Removes the supervisor record if it still names `pid`.
    pub fn remove_monitor(&self, pid: i32, lock: &Lock) {
        // `monitor()` reads nothing in a state directory that is not trusted.
        if self.monitor().is_some_and(|m| m.pid == pid) {
            let path = self.monitor_path();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => lock.note(Unrecorded::Monitor, &Error::state(&path, err)),
            }
        }
    }

    /// The modification time of `run/`, which changes whenever a record is created,
    /// replaced or removed: supervisors re-read records only when it moves. `None`
    /// when it cannot tell: `run/` is missing (removed with `.xtask` while the stack
    /// runs: missing, then made again by a write, then removed again reads the same),
    /// or it changed less than a second ago, when another change in the same clock
    /// tick (file times move in ticks of a few ms) would leave the time as it is.
    pub fn run_dir_stamp(&self) -> Option<std::time::SystemTime> {
        let modified = fs::metadata(self.run_dir()).and_then(|m| m.modified()).ok()?;
        let age = std::time::SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        (age >= STAMP_SETTLED).then_some(modified)
    }

    /// Writes the record and the PID file atomically. The caller holds the lock; a
    /// failure is also noted on it.
    pub fn write(&self, record: &Record, lock: &Lock) -> Result<()> {
        self.write_record(record)
            .inspect_err(|err| lock.note(Unrecorded::Record(record.service.clone()), err))
    }

    fn write_record(&self, record: &Record) -> Result<()> {
        // A record read in an older format is written back in this one.
        let record = &Record {
            version: RECORD_VERSION,
            ..record.clone()
        };
        let json = serde_json::to_vec_pretty(record).map_err(|err| Error::state(self.dir(), io::Error::other(err)))?;
        let path = self.record_path(&record.service);
        if !self.trusted() {
            return Err(Error::state(&path, untrusted(self.dir())));
        }
        write_atomically(&path, &json).map_err(|err| Error::state(&path, err))?;
        let pid_path = self.pid_path(&record.service);
        let pid_text = format!("{}\n", record.pid);
        // Most writes change the state, not the PID: leave an identical PID file alone.
        if read_small(&pid_path, SMALL_FILE_MAX).is_ok_and(|old| old == pid_text.as_bytes()) {
            return Ok(());
        }
        write_atomically(&pid_path, pid_text.as_bytes()).map_err(|err| Error::state(&pid_path, err))
    }

    /// Removes a service's record and PID file; missing files are fine. A failure is
    /// also noted on the lock.
    pub fn remove(&self, service: &str, lock: &Lock) -> Result<()> {
        // A name that is no service name (`../x`) names no file of ours.
        if !valid_service_name(service) {
            return Ok(());
        }
        if !self.trusted() {
            let err = Error::state(self.run_dir(), untrusted(self.dir()));
            lock.note(Unrecorded::Removal(service.to_string()), &err);
            return Err(err);
        }
        for path in [self.record_path(service), self.pid_path(service)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    let err = Error::state(&path, err);
                    lock.note(Unrecorded::Removal(service.to_string()), &err);
                    return Err(err);
                }
            }
        }
        lock.forget_record(service);
        Ok(())
    }

    /// Removes the temporary files of atomic writes whose writer died before renaming
    /// them (a crash in the middle of one), and no other file. Returns how many.
    pub fn remove_abandoned_writes(&self, lock: &Lock, writer_alive: impl Fn(i32) -> bool) -> usize {
        if !self.trusted() {
            return 0;
        }
        let Ok(dir) = fs::read_dir(self.run_dir()) else {
            return 0;
        };
        let mut removed = 0usize;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(writer) = temporary_writer(&name) else {
                continue;
            };
            if writer_alive(writer) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => removed = removed.saturating_add(1),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => lock.note(Unrecorded::Temporary, &Error::state(entry.path(), err)),
            }
        }
        removed
    }

    /// The first record written by a newer xtask than this one (its path and version):
    /// this build cannot know what such a record means, so it must not act on it.
    pub fn newer_record(&self) -> Option<(PathBuf, u32)> {
        #[derive(Deserialize)]
        struct Version {
            #[serde(default = "first_version")]
            version: u32,
        }
        let dir = fs::read_dir(self.run_dir()).ok()?;
        let mut paths: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths.into_iter().find_map(|path| {
            let bytes = read_small(&path, SMALL_FILE_MAX).ok()?;
            let version = serde_json::from_slice::<Version>(&bytes).ok()?.version;
            (version > RECORD_VERSION).then_some((path, version))
        })
    }

    /// Every record and every untrustworthy file in `run/`, sorted by service name.
    pub fn entries(&self) -> Vec<Entry> {
        if !self.trusted() {
            return Vec::new();
        }
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
        services.into_iter().filter_map(|s| self.read_entry(&s)).collect()
    }

    /// The record of one service, `None` when it has neither record nor PID file.
    pub fn entry(&self, service: &str) -> Option<Entry> {
        if !self.trusted() {
            return None;
        }
        self.read_entry(service)
    }

    /// `entry` where the state directory is known to be trusted (`entries` looked once
    /// for all of them).
    fn read_entry(&self, service: &str) -> Option<Entry> {
        if !valid_service_name(service) {
            return None;
        }
        let json_path = self.record_path(service);
        let pid_path = self.pid_path(service);
        let corrupt = |path: &Path, reason: String| Entry::Corrupt {
            service: service.to_string(),
            path: path.to_path_buf(),
            reason,
        };
        // Read without following a link, waiting on a FIFO or reading past a size: a
        // file planted here is reported as untrustworthy, never taken for a record.
        let record = match read_small(&json_path, SMALL_FILE_MAX) {
            Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                Ok(record) if record.service == service => Some(record),
                Ok(record) => return Some(corrupt(&json_path, format!("it names service `{}`", record.service))),
                Err(err) => return Some(corrupt(&json_path, format!("it is not a valid record ({err})"))),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Some(corrupt(&json_path, format!("it cannot be read ({err})"))),
        };
        let pid_text = read_small_text(&pid_path, SMALL_FILE_MAX).ok();
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

impl Entry {
    pub fn service(&self) -> &str {
        match self {
            Entry::Record(record) => &record.service,
            Entry::Corrupt { service, .. } => service,
        }
    }
}
