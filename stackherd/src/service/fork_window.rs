//! Without cgroups, a daemon that forks away and whose first process exits at once
//! (`redis-server --daemonize yes`, nginx) is re-parented to us with nothing that names
//! its service: its title rewrite erased the cookie, `setsid` left the service's group
//! and session, and its parent is gone. When two services of a level did that at the
//! same moment, nobody could tell whose daemon is whose. So, in that mode, a service
//! holds the fork window from its spawn until its first process has exited and its
//! daemon is found, it is healthy, or it ran `QUIET` without forking away: the next
//! service of the level is spawned only then. Services that do not fork away pass
//! through as soon as they are healthy (at once without a health check).
//!
//! The window also notes the children this process (a subreaper) had when it was
//! taken: they were re-parented before the service existed, so none of them is its
//! daemon, even when the previous holder's record does not name its daemon yet and
//! both were forked in the same clock tick (start times count 10 ms ticks).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::os::ServiceProcess;
use crate::os::interrupts::Interrupts;
use crate::os::process::children_of;

/// How long a service that runs on without forking away holds the window.
pub const QUIET: Duration = Duration::from_secs(1);
/// The longest a spawn waits for the window: a holder always lets go sooner (its
/// health waiter ends with its start-up budget), this only keeps a bug from hanging.
const MAX_WAIT: Duration = Duration::from_secs(120);

static TAKEN: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

/// The window, held: dropped, it lets the next service spawn.
#[derive(Debug)]
pub struct Held {
    /// This process's children when the window was taken: not the next service's.
    pub before: Vec<ServiceProcess>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut taken) = TAKEN.lock() {
            *taken = false;
        }
        FREED.notify_one();
    }
}

/// How often a spawn waiting for the window looks whether the start was interrupted.
const INTERRUPT_CHECK: Duration = Duration::from_millis(50);

/// The start was interrupted (Ctrl+C, or a `stop` preempting it) while a spawn waited
/// for the window: nothing more is spawned.
#[derive(Debug)]
pub struct Interrupted;

/// Waits for the window and takes it; `None` with cgroups, where membership proves
/// ownership and nothing needs to wait. A `stop` never waits out a start, so the wait
/// ends when the start is interrupted: the holder may be a service that keeps a
/// `setsid` child and is not healthy for its whole start-up budget.
pub fn enter() -> Result<Option<Held>, Interrupted> {
    if crate::os::cgroup::base().is_some() {
        return Ok(None);
    }
    take(Interrupts::install())
}

fn take(interrupts: Interrupts) -> Result<Option<Held>, Interrupted> {
    let deadline = crate::poll::after(MAX_WAIT);
    let Ok(mut taken) = TAKEN.lock() else {
        return Ok(None);
    };
    while *taken {
        if interrupts.any() {
            return Err(Interrupted);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let Ok((again, _)) = FREED.wait_timeout(taken, left.min(INTERRUPT_CHECK)) else {
            return Ok(None);
        };
        taken = again;
    }
    *taken = true;
    Ok(Some(Held {
        before: children_of(std::process::id() as i32),
    }))
}
