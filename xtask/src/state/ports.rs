//! Ports chosen for services with `port = "auto"`: recorded in the state directory
//! (`ports.json`), so that every command sees the same port and a restart keeps it; and
//! reserved machine-wide for a minute while they are handed out, so that two projects
//! (two CI jobs of one repository on one runner) starting at the same moment never get
//! the same one.
//!
//! A port is found free by binding it: the kernel hands out a free ephemeral port for
//! port 0. Between that bind being let go and the service binding the port, another
//! process could be handed the same one: a reservation file per port, in a directory
//! shared by every checkout of the user, closes that gap for xtask's own starts.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use super::atomic::write_atomically;
use super::regular::{SMALL_FILE_MAX, read_small};
use super::{Lock, Registry};
use crate::error::{Error, Result};

/// How long a port handed out stays reserved: time enough for its service to bind it.
const RESERVED_FOR: Duration = Duration::from_secs(60);
/// The longest wait for another start handing out ports.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How many ports are tried before giving up (each already reserved by another start).
const ATTEMPTS: usize = 64;

impl Registry {
    fn ports_path(dir: &Path) -> PathBuf {
        dir.join("ports.json")
    }

    /// The ports chosen so far in the state directory `dir`, by service.
    pub fn chosen_ports_in(dir: &Path) -> BTreeMap<String, u16> {
        read_small(&Self::ports_path(dir), SMALL_FILE_MAX)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn chosen_ports(&self) -> BTreeMap<String, u16> {
        Self::chosen_ports_in(self.dir())
    }

    pub fn write_chosen_ports(&self, ports: &BTreeMap<String, u16>, _lock: &Lock) -> Result<()> {
        let path = Self::ports_path(self.dir());
        let json = serde_json::to_vec_pretty(ports).map_err(|err| Error::state(&path, io::Error::other(err)))?;
        write_atomically(&path, &json).map_err(|err| Error::state(&path, err))
    }
}

/// A free TCP port, reserved machine-wide for a minute: no other start of xtask (of
/// any project of this user) is handed it meanwhile.
pub fn reserve_free_port() -> io::Result<u16> {
    let dir = reservations_dir();
    fs::create_dir_all(&dir)?;
    // One start at a time hands out ports: the check of a reservation and its writing
    // must not interleave with another's. Held for microseconds; waited for a bounded
    // time, so that a stuck holder cannot hang a start.
    let mut file = Some(File::create(dir.join("lock"))?);
    let locked =
        crate::poll::wait_until(
            crate::poll::after(LOCK_WAIT),
            crate::poll::Backoff::fast(),
            || match Flock::lock(file.take()?, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => Some(locked),
                Err((back, _)) => {
                    file = Some(back);
                    None
                }
            },
        );
    let Some(locked) = locked else {
        return Err(io::Error::other(format!(
            "another start held {} for {}s",
            dir.join("lock").display(),
            LOCK_WAIT.as_secs()
        )));
    };
    let port = pick(&dir);
    drop(locked);
    port
}

fn pick(dir: &Path) -> io::Result<u16> {
    let now = SystemTime::now();
    for _ in 0..ATTEMPTS {
        let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        let reservation = dir.join(port.to_string());
        let fresh = fs::metadata(&reservation)
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).unwrap_or_default() < RESERVED_FOR);
        if fresh {
            continue;
        }
        File::create(&reservation)?;
        forget_old(dir, now);
        return Ok(port);
    }
    Err(io::Error::other(format!(
        "{ATTEMPTS} free ports in a row were reserved by other starts"
    )))
}

/// Removes reservations long expired, so that the directory does not grow.
fn forget_old(dir: &Path, now: SystemTime) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let expired = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).unwrap_or_default() > RESERVED_FOR.saturating_mul(10));
        if expired && entry.file_name() != "lock" {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Shared by every project of this user: `$XDG_RUNTIME_DIR/xtask-ports`, else a
/// per-user directory under the temporary directory.
fn reservations_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("xtask-ports"),
        None => std::env::temp_dir().join(format!("xtask-ports-{}", nix::unistd::getuid())),
    }
}
