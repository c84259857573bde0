//! The exclusive lock on the state directory: commands that change state hold it for
//! their whole run.

use std::fs::{File, OpenOptions};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::Registry;
use crate::error::{Error, Result};
use crate::poll::{self, Backoff};

/// How long a command waits for another one to release the lock before naming it.
const LOCK_WAIT: Duration = Duration::from_secs(3);

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
    /// Creates the directories and takes the exclusive lock, waiting up to a few seconds
    /// for another xtask command to finish. `command` is shown to whoever waits on us.
    pub fn lock(&self, command: &str) -> Result<Lock> {
        let path = self.dir.join("lock");
        let mut file = Some(self.open_lock_file()?);
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
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.lines().next().unwrap_or("").trim().to_string();
            return Err(Error::Locked {
                lock: path,
                holder: (!holder.is_empty()).then_some(holder),
                waited: LOCK_WAIT,
            });
        };
        Ok(announce(lock, command, self.start_time))
    }

    /// Takes over a lock that the parent process holds and handed down as an open file
    /// descriptor (a `flock` belongs to the open file description, which parent and
    /// child now share, so there is no moment without it). The descriptor is closed on
    /// exec again, so that no service inherits the lock.
    pub fn adopt_lock(&self, fd: i32, command: &str) -> Result<Lock> {
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
            (Some(lock), _) => Ok(announce(lock, command, self.start_time)),
            (None, _) => self.lock(command),
        }
    }

    /// Who holds the lock, when the lock file says so (it may be stale: prove it).
    pub fn lock_holder(&self) -> Option<LockHolder> {
        LockHolder::parse(&std::fs::read_to_string(self.dir.join("lock")).ok()?)
    }

    /// The lock if it is free right now: supervisors act only while holding it, and
    /// never wait for it, so that a long `stop` cannot stall their reaping.
    pub fn try_lock(&self, command: &str) -> Result<Option<Lock>> {
        let (lock, _) = try_flock(self.open_lock_file()?);
        Ok(lock.map(|l| announce(l, command, self.start_time)))
    }

    fn open_lock_file(&self) -> Result<File> {
        for dir in [self.run_dir(), self.dir.join("logs")] {
            std::fs::create_dir_all(&dir).map_err(|err| Error::state(&dir, err))?;
        }
        let path = self.dir.join("lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| Error::state(&path, err))
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
/// Written at the file's start: the descriptor may be shared with the process that
/// handed the lock over, whose writes moved the offset.
fn announce(lock: Flock<File>, command: &str, start_time: Option<u64>) -> Lock {
    use std::os::unix::fs::FileExt;
    let mut holder = format!("pid {}: xtask {command}\n", std::process::id());
    if let Some(start_time) = start_time {
        holder.push_str(&format!("start_time {start_time}\n"));
    }
    let _ = lock.set_len(0).and_then(|()| lock.write_all_at(holder.as_bytes(), 0));
    Lock { file: lock }
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
