//! The exclusive lock on the state directory: commands that change state hold it for
//! their whole run. A stop takes it even where nothing can be written (`lock_to_stop`),
//! and what it then cannot write is noted on the lock, for one report at its end.

use std::fs::{File, OpenOptions};
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::Registry;
use super::regular::{open_private, open_regular, read_small_text};
use crate::error::{Error, Result};
use crate::poll::{self, Backoff};

/// How long a command waits for another one to release the lock before naming it.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// The most of the lock file read for its holder's line: a few dozen bytes are written.
const HOLDER_MAX: u64 = 4096;

/// The exclusive lock on the state directory, released on drop. Every write under it
/// that fails is noted on it (`unrecorded`): a command that goes on without the write,
/// as a stop does, says once at its end what it could not record.
#[derive(Debug)]
pub struct Lock {
    /// `None` only for a stop in a state directory that has no lock file and cannot get
    /// one (see `lock_to_stop`).
    file: Option<Flock<File>>,
    unrecorded: Mutex<Vec<(Unrecorded, String)>>,
}

/// What a command holding the lock could not write into the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrecorded {
    /// The lock file does not exist and could not be created: the lock was not held.
    LockFile,
    /// A service's record (and PID file) was not written: it keeps its old state.
    Record(String),
    /// A service's record (and PID file) was not removed.
    Removal(String),
    /// The supervisor's record (`monitor.json`) was not removed.
    Monitor,
    /// Temporary files of interrupted writes were not removed.
    Temporary,
    /// What a service's stop command printed went nowhere: its log could not be opened.
    StopOutput(String),
}

impl Lock {
    pub(super) fn new(file: Option<Flock<File>>) -> Lock {
        Lock {
            file,
            unrecorded: Mutex::new(Vec::new()),
        }
    }

    /// The descriptor, for handing the lock to a child process; `None` for a stop's lock
    /// without a lock file, which is never handed over.
    pub fn raw_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        self.file.as_ref().map(|file| file.as_raw_fd())
    }

    /// Keeps the lock held by whoever shares its descriptor (a child it was handed to):
    /// dropping it would unlock the shared open file description.
    pub fn hand_over(self) {
        std::mem::forget(self);
    }

    /// Notes that `what` could not be written, and why.
    pub(super) fn note(&self, what: Unrecorded, err: &Error) {
        let why = match err {
            Error::State { io, .. } => describe(io),
            other => other.to_string(),
        };
        self.unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((what, why));
    }

    /// Forgets that a service's record could not be written, once the record is gone:
    /// what it failed to say no longer matters.
    pub(super) fn forget_record(&self, service: &str) {
        self.unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(what, _)| *what != Unrecorded::Record(service.to_string()));
    }

    /// Everything noted so far, in order, each with why it could not be written.
    pub fn unrecorded(&self) -> Vec<(Unrecorded, String)> {
        self.unrecorded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// An OS error as a lowercase fragment: `read-only file system`, `no space left on
/// device`.
fn describe(io: &io::Error) -> String {
    let text = io.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Who may take the lock: a command that will write, or a stop that must work where
/// nothing can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Write,
    Stop,
}

impl Registry {
    /// Creates the directories and takes the exclusive lock, waiting up to a few seconds
    /// for another xtask command to finish. `command` is shown to whoever waits on us.
    pub fn lock(&self, command: &str) -> Result<Lock> {
        self.lock_with(command, Access::Write)
    }

    /// The lock for `stop` and `cleanup`, which must stop everything also when the state
    /// directory cannot be written (a file system remounted read-only after an error, a
    /// full disk): exactly when a user wants everything stopped. A flock needs no write
    /// access, so the lock file is then opened read-only, and the lock keeps its
    /// purpose: another command holding it is waited for, and while a stop holds it no
    /// supervisor acts. Without a lock file (and none can be created) there is nothing to
    /// flock, and nothing needs to be: nobody holds that lock, and nobody can take it
    /// until the directory can be written again, since every other taker opens the lock
    /// file for writing, creating it (supervisors too: they act only where they can
    /// record what they do). The stop then goes on without it, and says so.
    pub fn lock_to_stop(&self, command: &str) -> Result<Lock> {
        self.lock_with(command, Access::Stop)
    }

    fn lock_with(&self, command: &str, access: Access) -> Result<Lock> {
        let path = self.lock_path();
        let mut file = match self.open_lock_file(access)? {
            Opened::File(file) => Some(file),
            Opened::Missing(err) => return Ok(without_file(&err)),
        };
        let deadline = crate::poll::after(LOCK_WAIT);
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
            let holder = read_small_text(&path, HOLDER_MAX).unwrap_or_default();
            let holder = holder.lines().next().unwrap_or("").trim().to_string();
            return Err(Error::Locked {
                lock: path,
                holder: (!holder.is_empty()).then_some(holder),
                waited: LOCK_WAIT,
            });
        };
        Ok(announce(lock, command, self.start_time))
    }

    /// Who holds the lock, when the lock file says so (it may be stale: prove it).
    pub fn lock_holder(&self) -> Option<LockHolder> {
        LockHolder::parse(&read_small_text(&self.lock_path(), HOLDER_MAX).ok()?)
    }

    /// The lock if it is free right now: supervisors act only while holding it, and
    /// never wait for it, so that a long `stop` cannot stall their reaping. A lock file
    /// that cannot be opened for writing (a read-only state directory) is an error: a
    /// supervisor must not act where it cannot record what it does.
    pub fn try_lock(&self, command: &str) -> Result<Option<Lock>> {
        self.try_lock_with(command, Access::Write)
    }

    /// `try_lock` for a stop: see `lock_to_stop`.
    pub fn try_lock_to_stop(&self, command: &str) -> Result<Option<Lock>> {
        self.try_lock_with(command, Access::Stop)
    }

    fn try_lock_with(&self, command: &str, access: Access) -> Result<Option<Lock>> {
        match self.open_lock_file(access)? {
            Opened::File(file) => Ok(try_flock(file).0.map(|l| announce(l, command, self.start_time))),
            Opened::Missing(err) => Ok(Some(without_file(&err))),
        }
    }

    /// The lock file, created with the directories where it can be; for a stop, opened
    /// read-only where it cannot.
    fn open_lock_file(&self, access: Access) -> Result<Opened> {
        let path = self.lock_path();
        let writable = self.create_dirs().and_then(|()| {
            let mut options = OpenOptions::new();
            options.create(true).truncate(false).read(true).write(true);
            open_private(&path, &options).map_err(|err| Error::state(&path, err))
        });
        let err = match (writable, access) {
            (Ok(file), _) => return Ok(Opened::File(file)),
            (Err(err), Access::Write) => return Err(err),
            (Err(err), Access::Stop) => err,
        };
        // A symbolic link or a FIFO planted as the lock is no lock file either: every
        // taker refuses it, so nobody holds that lock while a stop goes on without it.
        let planted = path.symlink_metadata().is_ok_and(|m| !m.is_file());
        match open_regular(&path, OpenOptions::new().read(true)) {
            Ok(file) => Ok(Opened::File(file)),
            Err(_) if planted => Ok(Opened::Missing(err)),
            Err(missing) if matches!(missing.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                Ok(Opened::Missing(err))
            }
            Err(_) => Err(err),
        }
    }
}

enum Opened {
    File(File),
    /// No lock file (none, or something planted in its place), and none could be
    /// created (why).
    Missing(Error),
}

/// A stop's lock where there is no lock file to take it on, noted as such.
fn without_file(err: &Error) -> Lock {
    let lock = Lock::new(None);
    lock.note(Unrecorded::LockFile, err);
    lock
}

/// One non-blocking flock attempt; gives the file back when the lock is taken elsewhere.
pub(super) fn try_flock(file: File) -> (Option<Flock<File>>, Option<File>) {
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => (Some(lock), None),
        Err((file, _)) => (None, Some(file)),
    }
}

/// Writes who holds the lock into the lock file, for the message of whoever waits next.
/// Written at the file's start: the descriptor may be shared with the process that
/// handed the lock over, whose writes moved the offset.
pub(super) fn announce(lock: Flock<File>, command: &str, start_time: Option<u64>) -> Lock {
    use std::os::unix::fs::FileExt;
    let mut holder = format!("pid {}: xtask {command}\n", std::process::id());
    if let Some(start_time) = start_time {
        holder.push_str(&format!("start_time {start_time}\n"));
    }
    // A lock file opened read-only (a stop where nothing can be written) keeps the
    // previous holder's line: a waiter may name that one instead.
    let _ = lock.set_len(0).and_then(|()| lock.write_all_at(holder.as_bytes(), 0));
    Lock::new(Some(lock))
}

/// Who holds the lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: i32,
    /// Clock ticks since boot, when the holder wrote it.
    pub start_time: Option<u64>,
    /// The xtask command it runs (`start-bg (monitor)`).
    pub command: String,
}

impl LockHolder {
    fn parse(text: &str) -> Option<LockHolder> {
        let mut lines = text.lines();
        let (pid, command) = lines.next()?.strip_prefix("pid ")?.split_once(": xtask ")?;
        let start_time = lines.find_map(|l| l.strip_prefix("start_time ")?.trim().parse().ok());
        Some(LockHolder {
            pid: pid.trim().parse().ok()?,
            start_time,
            command: command.trim().to_string(),
        })
    }
}
