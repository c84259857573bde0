//! The child subreaper: orphaned descendants of a service are re-parented to the
//! supervisor instead of init, and reaped here, so no zombie appears under it.

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};

use super::child::WAITED_BY_THEIR_OWNER;
use super::exit::Exit;
use super::process::{ServiceProcess, children_of};

/// Marks this process a child subreaper. Failure only costs the reaping of orphans:
/// the caller reports it.
pub fn become_subreaper() -> Result<(), nix::errno::Errno> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Reaps every child that has ended, without waiting: service main processes (whose
/// exits matter) and re-parented orphans (nothing to do but reap). Children that
/// another thread waits for itself (a probe command) are left to it: each ended child
/// is looked at first (`WNOWAIT`) and reaped only when it is not one of those. Only a
/// supervisor calls this, from its single loop thread. The flag says that an ended
/// child was left to its owner, and that others may have ended behind it: the caller
/// reaps again soon (waitid shows one ended child at a time, always the same one).
pub fn reap_ended() -> (Vec<(i32, Exit)>, bool) {
    let owned = WAITED_BY_THEIR_OWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut ended = Vec::new();
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) | Err(_) => return (ended, false),
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => return (ended, false),
            },
        };
        // Its owner reaps it in a moment; what ended after it waits for the next call.
        if owned.contains(&pid.as_raw()) {
            return (ended, true);
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                super::spawn::reaped(pid.as_raw());
                ended.extend(Exit::of(status));
            }
            Err(_) => return (ended, false),
        }
    }
}

/// How the child `pid` of this process ended, reaping it; `None` while it runs or when
/// it is not a child of ours (a `run` without a monitor is its services' parent, and
/// nothing else reaps them).
pub fn reap_child(pid: i32) -> Option<Exit> {
    let status = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).ok()?;
    let (_, exit) = Exit::of(status)?;
    super::spawn::reaped(pid);
    Some(exit)
}

/// How the child `pid` of this process ended, without reaping it (`WNOWAIT`): the
/// supervisor that reaps it later still reads the same exit. `None` while it runs or
/// when it is not a child of ours.
pub fn peek_child_exit(pid: i32) -> Option<Exit> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let status = waitid(Id::Pid(nix::unistd::Pid::from_raw(pid)), flags).ok()?;
    Exit::of(status).map(|(_, exit)| exit)
}

/// The live children of this process other than the helpers it waits for itself
/// (probe commands, log followers) and the log relays: the services it started and the orphans of
/// theirs that were re-parented to it.
pub fn adopted_children() -> Vec<ServiceProcess> {
    let helpers = WAITED_BY_THEIR_OWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    children_of(std::process::id() as i32)
        .into_iter()
        .filter(|c| !helpers.contains(&c.pid) && !super::spawn::is_relay(c.pid))
        .collect()
}
