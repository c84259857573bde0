//! The machine-wide reservations of ports handed out for `port = "auto"`: a port is
//! found free by binding it (the kernel hands out a free ephemeral port for port 0),
//! but between that bind being let go and the service binding the port, another start
//! could be handed the same one. A file per port, kept for a minute in the private
//! runtime directory shared by every checkout of the user, closes that gap for xtask's
//! own starts.
//!
//! Where the reservations cannot be used (the directory is not a private one of ours,
//! its lock stays held), a port is still chosen by a bind, only unreserved: the caller
//! says so once.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::futimens;
use nix::sys::time::TimeSpec;

pub use super::runtime_dir::Unusable;
use super::runtime_dir::{self, RuntimeDir};
use crate::poll::{self, Backoff};

/// How long a port handed out stays reserved: time enough for its service to bind it.
const RESERVED_FOR: Duration = Duration::from_secs(60);
/// How long an expired reservation is kept before it is removed.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(600);
/// The longest wait for another start handing out ports (it holds the lock for
/// microseconds; one that holds it longer is stuck, or not a start of ours).
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How many ports are tried before giving up (each already reserved by another start).
const ATTEMPTS: usize = 64;
/// The directory's name, under `$XDG_RUNTIME_DIR` (else with the uid, under the
/// temporary directory).
const DIR_NAME: &str = "xtask-ports";
/// The file whose flock makes one start at a time hand out ports.
const LOCK_FILE: &str = "lock";

/// Why no port was reserved.
#[derive(Debug)]
pub enum NotReserved {
    /// The reservations cannot be used: a port is to be chosen without them.
    Unusable(Unusable),
    /// The command was interrupted (a stop preempts the start) while it waited.
    Interrupted,
}

/// The reservations of this user, open.
#[derive(Debug)]
pub struct Reservations {
    dir: RuntimeDir,
}

impl Reservations {
    /// The reservations in the runtime directory shared by the user's checkouts, if it
    /// is a private directory of ours.
    pub fn open() -> Result<Reservations, Unusable> {
        RuntimeDir::open(&RuntimeDir::path_of(DIR_NAME)).map(|dir| Reservations { dir })
    }

    /// A free TCP port, reserved for a minute: no other start of xtask (of any project
    /// of this user) is handed it meanwhile. `interrupted` is asked while waiting for
    /// another start to finish handing out its ports.
    pub fn reserve(&self, interrupted: &dyn Fn() -> bool) -> Result<u16, NotReserved> {
        let lock = self.lock(interrupted)?;
        let port = self.pick();
        drop(lock);
        port.map_err(NotReserved::Unusable)
    }

    /// One start at a time hands out ports: the check of a reservation and its writing
    /// must not interleave with another's. Waited for a bounded time, never blocking,
    /// so that a stuck holder cannot hang a start (nor keep a stop from preempting it).
    fn lock(&self, interrupted: &dyn Fn() -> bool) -> Result<Flock<File>, NotReserved> {
        let mut file = Some(self.dir.open_file(LOCK_FILE).map_err(NotReserved::Unusable)?);
        // `Some(None)`: interrupted, no longer waited for.
        let locked = poll::wait_until(poll::after(LOCK_WAIT), Backoff::fast(), || {
            if interrupted() {
                return Some(None);
            }
            match Flock::lock(file.take()?, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => Some(Some(locked)),
                Err((back, _)) => {
                    file = Some(back);
                    None
                }
            }
        });
        match locked {
            Some(Some(locked)) => Ok(locked),
            Some(None) => Err(NotReserved::Interrupted),
            None => Err(NotReserved::Unusable(Unusable {
                path: self.dir.path().join(LOCK_FILE),
                why: format!(
                    "stayed locked for {}s (another start is stuck handing out ports)",
                    LOCK_WAIT.as_secs()
                ),
            })),
        }
    }

    /// A free port that no fresh reservation names, reserved; under the lock.
    fn pick(&self) -> Result<u16, Unusable> {
        let now = SystemTime::now();
        for _ in 0..ATTEMPTS {
            let port = unreserved_free_port().map_err(|err| Unusable {
                path: self.dir.path().to_path_buf(),
                why: format!("cannot be used: no free port to bind ({err})"),
            })?;
            let name = port.to_string();
            // Anything but an expired reservation of ours keeps the port from being handed
            // out: a fresh one, and whatever else has the name.
            let taken = self
                .dir
                .stat(OsStr::new(&name))
                .is_some_and(|stat| !runtime_dir::is_regular(&stat) || !expired(&stat, now, RESERVED_FOR));
            if taken {
                continue;
            }
            let file = self.dir.open_file(&name)?;
            // A reservation that expired is renewed: its time is what counts.
            futimens(&file, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW).map_err(|errno| Unusable {
                path: self.dir.path().join(&name),
                why: format!("cannot be renewed: {}", errno.desc().to_lowercase()),
            })?;
            self.forget_old(now);
            return Ok(port);
        }
        Err(Unusable {
            path: self.dir.path().to_path_buf(),
            why: format!("holds reservations of {ATTEMPTS} free ports in a row"),
        })
    }

    /// Removes reservations long expired, so that the directory does not grow: only
    /// entries named for a port, and only regular files of ours (`RuntimeDir::remove`).
    fn forget_old(&self, now: SystemTime) {
        for name in self.dir.names() {
            let is_port = name.to_str().is_some_and(|n| n.parse::<u16>().is_ok());
            let old = self
                .dir
                .stat(&name)
                .is_some_and(|stat| expired(&stat, now, FORGOTTEN_AFTER));
            if is_port && old {
                self.dir.remove(&name);
            }
        }
    }
}

/// A free TCP port from the kernel, not reserved: the port a bind to port 0 got,
/// handed over once the bind is let go.
pub fn unreserved_free_port() -> io::Result<u16> {
    TcpListener::bind(("127.0.0.1", 0))?.local_addr().map(|a| a.port())
}

fn expired(stat: &nix::sys::stat::FileStat, now: SystemTime, after: Duration) -> bool {
    now.duration_since(runtime_dir::modified(stat)).unwrap_or_default() > after
}
