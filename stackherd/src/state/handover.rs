//! `--lock-fd`: the lock that `start-bg` hands to its monitor as an open descriptor,
//! so that it is never free between the two. The number comes from a command line,
//! which anyone can write: the descriptor is adopted only when it is this project's
//! lock file and holds the lock on it.

use std::fs::File;
use std::os::fd::{BorrowedFd, FromRawFd};
use std::os::unix::fs::MetadataExt;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use super::Registry;
use super::lock::{Lock, announce, try_flock};
use crate::error::{Error, Result};

impl Registry {
    /// Takes over a lock that the parent process holds and handed down as an open file
    /// descriptor (a `flock` belongs to the open file description, which parent and
    /// child now share, so there is no moment without it). The descriptor is closed on
    /// exec again, so that no service inherits the lock. Anything else under that
    /// number is refused, never adopted: a standard stream, another file, or the lock
    /// file opened anew without the lock (adopting that would take a lock nobody
    /// handed over, as if the start before had been made under it).
    pub fn adopt_lock(&self, fd: i32, command: &str) -> Result<Lock> {
        let refuse = |why: String| Error::LockFd { fd, why };
        self.check_handed(fd).map_err(refuse)?;
        // SAFETY: `check_handed` proved `fd` open; it is only borrowed for this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|err| refuse(format!("it cannot be closed on exec ({err})")))?;
        // SAFETY: start-bg passed this descriptor for us alone, and nothing else in this
        // process opened or owns it: it is ours to close.
        let file = unsafe { File::from_raw_fd(fd) };
        // A flock taken again through the description that holds it succeeds at once.
        match try_flock(file) {
            (Some(lock), _) => Ok(announce(lock, command, self.start_time)),
            (None, _) => Err(refuse(format!(
                "it does not hold the lock on {}",
                self.lock_path().display()
            ))),
        }
    }

    /// Why `fd` is not a descriptor of this project's lock file that holds the lock.
    fn check_handed(&self, fd: i32) -> std::result::Result<(), String> {
        if (0..=2).contains(&fd) {
            return Err("descriptors 0, 1 and 2 are standard input, output and error, never the lock".to_string());
        }
        if fd < 0 {
            return Err("it is no descriptor".to_string());
        }
        // SAFETY: only borrowed for the fstat; a number that is no open descriptor
        // gives EBADF, nothing worse.
        let handed = nix::sys::stat::fstat(unsafe { BorrowedFd::borrow_raw(fd) })
            .map_err(|err| format!("it is not an open descriptor ({err})"))?;
        let path = self.lock_path();
        // The path's own entry, not what a symbolic link there points to.
        let lock = std::fs::symlink_metadata(&path).map_err(|err| format!("{}: {err}", path.display()))?;
        let same = lock.file_type().is_file() && lock.dev() == handed.st_dev && lock.ino() == handed.st_ino;
        if !same {
            return Err(format!("it is not the lock file {}", path.display()));
        }
        if !holds_exclusive_flock(fd)? {
            return Err(format!("it does not hold the lock on {}", path.display()));
        }
        Ok(())
    }
}

/// Whether the open file description behind `fd` holds an exclusive `flock`. The kernel
/// lists in `/proc/self/fdinfo/FD` the locks taken through that very description
/// (`lock:\t1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF`), so another description
/// of the same file, or a lock held by someone else, does not count. A `flock` attempt
/// could not tell: it would take a free lock rather than say that it was not held.
fn holds_exclusive_flock(fd: i32) -> std::result::Result<bool, String> {
    let path = format!("/proc/self/fdinfo/{fd}");
    let info = std::fs::read_to_string(&path).map_err(|err| format!("{path} cannot be read ({err})"))?;
    Ok(info.lines().filter_map(|l| l.strip_prefix("lock:")).any(|lock| {
        let words: Vec<&str> = lock.split_whitespace().collect();
        !words.contains(&"->") && words.contains(&"FLOCK") && words.contains(&"WRITE")
    }))
}
