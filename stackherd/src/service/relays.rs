//! The log relays this process started, with the services' output they read, kept so
//! that a supervisor can give those services a new relay when theirs dies (killed, out
//! of memory). The reading side of each service's pipe or terminal is held here as well
//! as in the relay: while it is held, a service whose relay died writes on (no SIGPIPE
//! for a pipe without a reader, no hang-up for a terminal without a master side) and a
//! new relay reads on where the old one stopped. It is let go of once the service's
//! instance has ended; only the lines the dead relay held are lost.
//!
//! Process-wide, as the relays are: a start's spawning workers keep what they start,
//! and the supervisor of the same process takes it when a relay ends.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;

use crate::os::ServiceProcess;
use crate::os::caught_up::caught_up;
use crate::os::spawn::{self, RelayInput};
use crate::poll::{self, Backoff};

/// One service's output as its relay reads it.
pub struct Kept {
    pub service: String,
    input: OwnedFd,
    log: PathBuf,
    max_size: u64,
    keep: u32,
}

impl Kept {
    pub fn new(service: &str, input: OwnedFd, log: PathBuf, max_size: u64, keep: u32) -> Kept {
        Kept {
            service: service.to_string(),
            input,
            log,
            max_size,
            keep,
        }
    }
}

/// What each live relay of this process reads, by the relay's PID.
static KEPT: Mutex<BTreeMap<i32, Vec<Kept>>> = Mutex::new(BTreeMap::new());

fn kept() -> std::sync::MutexGuard<'static, BTreeMap<i32, Vec<Kept>>> {
    KEPT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a relay for `inputs` and keeps them under it; its identity.
pub fn start(inputs: Vec<Kept>) -> Result<ServiceProcess, Errno> {
    let relayed: Vec<RelayInput<'_>> = inputs
        .iter()
        .map(|k| RelayInput {
            log: &k.log,
            max_size: k.max_size,
            keep: k.keep,
            input: &k.input,
        })
        .collect();
    // Held across the spawn: a relay that ends at once is reaped by the supervisor's
    // thread, which must find what it read.
    let mut kept = kept();
    let pid = spawn::relay(&relayed)?;
    // Our child, not reaped yet: its PID is its own until we reap it.
    let relay = ServiceProcess::of_unreaped_child(pid);
    drop(relayed);
    kept.insert(pid, inputs);
    relay.ok_or(Errno::ESRCH)
}

/// What the relay `pid` read, once it has ended; `None` for a process that is not one
/// of this process's relays.
pub fn ended(pid: i32) -> Option<Vec<Kept>> {
    kept().remove(&pid)
}

/// Lets go of a service's output: its instance has ended (its relay writes what is
/// left and ends by itself).
pub fn release(service: &str) {
    for inputs in kept().values_mut() {
        inputs.retain(|k| k.service != service);
    }
}

/// Waits, at most `wait`, until every relay of this process has written to the logs
/// what its services printed so far. The wait may run out (a relay starved of CPU, a
/// service that never stops talking); the logs then lag a little, as they did. A start waits for this before it reports,
/// so that `start-bg && grep ready .xtask/logs/api.log` finds what the API printed
/// before its port opened. Only an unfinished line (a prompt) may still be held back.
pub fn wait_written(wait: Duration) {
    let _ = poll::wait_until(poll::after(wait), Backoff::fast(), || {
        kept()
            .iter()
            .all(|(relay, inputs)| {
                let fds: Vec<BorrowedFd<'_>> = inputs.iter().map(|k| k.input.as_fd()).collect();
                caught_up(*relay, &fds)
            })
            .then_some(())
    });
}
