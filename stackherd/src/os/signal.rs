//! The one place that sends signals, and the waits for processes to end.
//!
//! A signal reaches only a process proven ours: its start time is re-read through a
//! pidfd opened first, so that a PID reused between the check and the signal cannot
//! receive it. A process group is signalled only when it is built from a process proven
//! ours (`Group::of`) or from a child xtask itself made a group leader.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::process::{ServiceProcess, self_and_ancestors};
use crate::poll::Backoff;

/// Whom a signal goes to. No raw negative PID exists outside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    Process(ServiceProcess),
    Group(Group),
}

/// A process group that a process proven ours belongs to. Its field is private: a
/// group cannot be made from an arbitrary number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pgid: i32,
}

impl Group {
    /// The group of `process` as it is now, while that very process runs.
    pub fn of(process: &ServiceProcess) -> Option<Group> {
        process.pgid().filter(|pgid| *pgid > 1).map(|pgid| Group { pgid })
    }

    /// The group a child leads because xtask created it so (`process_group(0)`).
    pub(super) fn led_by_child(pid: u32) -> Option<Group> {
        i32::try_from(pid)
            .ok()
            .filter(|pgid| *pgid > 1)
            .map(|pgid| Group { pgid })
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }
}

/// Sends `sig`. Returns `Ok(false)` when nothing was sent: nobody was left to receive
/// it (`ESRCH`), the process's start time no longer matches (its PID was reused, so it
/// is not ours and is left alone), or the target is this process, one of its ancestors
/// or a group one of them is in (a service's script that runs `xtask stop` carries the
/// cookie; stopping must not end the stop).
pub fn signal(target: KillTarget, sig: Signal) -> Result<bool, Errno> {
    let result = match target {
        KillTarget::Process(process) if self_and_ancestors().contains(&process.pid) => return Ok(false),
        KillTarget::Process(process) => return signal_process(&process, sig),
        KillTarget::Group(group) if own_groups().contains(&group.pgid) => return Ok(false),
        KillTarget::Group(group) => signal::killpg(Pid::from_raw(group.pgid), sig),
    };
    match result {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Sends `sig`, then SIGCONT to the same target, as systemd does after a stop signal. A
/// stopped process (SIGSTOP, Ctrl+Z, a debugger that let go of it) keeps a caught
/// signal pending and runs its handler only once continued: without SIGCONT a paused
/// service would wait out its whole grace period and die by SIGKILL, its shutdown code
/// never run. `sig` goes first, so that the continued process handles it before it runs
/// anything else. SIGCONT does nothing to a process that is not stopped, unless it
/// catches SIGCONT (a shell, an editor), which then only redraws or re-checks its
/// terminal. SIGKILL needs no SIGCONT: it ends a stopped process as it is. Returns
/// what `signal` returns for `sig`.
pub fn signal_and_continue(target: KillTarget, sig: Signal) -> Result<bool, Errno> {
    let sent = signal(target, sig)?;
    if sent && !matches!(sig, Signal::SIGCONT | Signal::SIGKILL) {
        let _ = signal(target, Signal::SIGCONT);
    }
    Ok(sent)
}

/// The process groups of this process and its ancestors.
fn own_groups() -> &'static [i32] {
    static GROUPS: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    GROUPS.get_or_init(|| {
        self_and_ancestors()
            .iter()
            .filter_map(|pid| ServiceProcess::of(*pid).and_then(|p| p.pgid()))
            .collect()
    })
}

/// Through a pidfd where the kernel has them (Linux 5.3 and later): the descriptor pins
/// the process that has the PID when it is opened, so the start-time check after the
/// open proves the very process the signal then reaches. Without pidfds, kill(2) right
/// after the check; the window is then microseconds.
fn signal_process(process: &ServiceProcess, sig: Signal) -> Result<bool, Errno> {
    let Some(pid) = rustix::process::Pid::from_raw(process.pid) else {
        return Ok(false);
    };
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty());
    if !process.is_alive() {
        return Ok(false);
    }
    let sent = match (&fd, rustix::process::Signal::from_named_raw(sig as i32)) {
        (Ok(fd), Some(rsig)) => {
            rustix::process::pidfd_send_signal(fd, rsig).map_err(|e| Errno::from_raw(e.raw_os_error()))
        }
        _ => signal::kill(Pid::from_raw(process.pid), sig),
    };
    match sent {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Sleeps until one of `procs` ends or `until` passes (or a signal interrupts the
/// sleep), woken by the kernel through pidfds (Linux 5.3 and later) instead of rereading
/// /proc on a timer: a stop then sees each exit the moment it happens. Returns false at
/// once when the processes cannot be watched that way; the caller polls instead.
pub fn wait_for_an_end(procs: &[ServiceProcess], until: Instant) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    let mut fds = Vec::with_capacity(procs.len());
    for process in procs {
        match watch(process) {
            Watch::Fd(fd) => fds.push(fd),
            Watch::Ended => return true,
            Watch::Unsupported => return false,
        }
    }
    let mut pollfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
        .collect();
    // Rounded up: a timeout rounded down to 0 ms would spin until the deadline.
    let wait = until.saturating_duration_since(Instant::now());
    let millis = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
    let _ = poll(&mut pollfds, PollTimeout::from(millis));
    true
}

/// Waits until every one of `procs` has ended or `deadline` passes; returns those still
/// alive. Woken by each exit where the kernel can say so (pidfds), by polling otherwise.
pub fn wait_for_exits(procs: &[ServiceProcess], deadline: Instant) -> Vec<ServiceProcess> {
    let mut alive: Vec<ServiceProcess> = procs.to_vec();
    let mut backoff = Backoff::fast();
    loop {
        alive.retain(ServiceProcess::is_alive);
        let now = Instant::now();
        if alive.is_empty() || now >= deadline {
            return alive;
        }
        let next = deadline.min(crate::poll::later(now, Duration::from_millis(50)));
        if !wait_for_an_end(&alive, next) {
            backoff.pause(next);
        }
    }
}

/// Processes watched for their end through pidfds held open: whether any has ended is
/// one poll(2), where reading each one's /proc entry is an open, a read and a close.
/// Where pidfds are not available the processes are looked up in /proc instead.
// Only the terminal UI uses it (the `tui` feature).
#[cfg_attr(not(feature = "tui"), allow(dead_code))]
pub struct EndWatch {
    fds: Vec<OwnedFd>,
    unwatched: Vec<ServiceProcess>,
    ended: bool,
}

#[cfg_attr(not(feature = "tui"), allow(dead_code))]
impl EndWatch {
    pub fn new(procs: &[ServiceProcess]) -> EndWatch {
        let mut watch_all = EndWatch {
            fds: Vec::new(),
            unwatched: Vec::new(),
            ended: false,
        };
        for process in procs {
            match watch(process) {
                Watch::Fd(fd) => watch_all.fds.push(fd),
                Watch::Ended => watch_all.ended = true,
                Watch::Unsupported => watch_all.unwatched.push(*process),
            }
        }
        watch_all
    }

    /// True once any of the processes has ended.
    pub fn any_ended(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if self.ended || self.unwatched.iter().any(|p| !p.is_alive()) {
            return true;
        }
        let mut pollfds: Vec<PollFd> = self
            .fds
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        !pollfds.is_empty() && poll(&mut pollfds, PollTimeout::ZERO).is_ok_and(|ready| ready > 0)
    }
}

/// How the end of one process can be waited for.
pub enum Watch {
    /// Its pidfd: readable once it has ended.
    Fd(OwnedFd),
    /// It has ended already (or its PID is somebody else's now).
    Ended,
    /// No pidfds here: look at /proc instead.
    Unsupported,
}

/// A pidfd of `process`, proven to be that very process: a loop that waits for several
/// things at once polls it with the others.
pub fn watch(process: &ServiceProcess) -> Watch {
    let Some(pid) = rustix::process::Pid::from_raw(process.pid) else {
        return Watch::Ended;
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Watch::Ended,
        Err(_) => return Watch::Unsupported,
    };
    // The descriptor pins whichever process has the PID now: it is the one we mean only
    // if its start time still matches, checked after opening it.
    if process.is_alive() {
        Watch::Fd(fd)
    } else {
        Watch::Ended
    }
}

/// Whether the process behind a pidfd from `watch` has ended, without waiting.
pub fn has_ended(fd: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut pollfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut pollfd, PollTimeout::ZERO).is_ok_and(|ready| ready > 0)
}

/// Sleeps until the process behind a pidfd from `watch` ends or `until` passes (or a
/// signal interrupts the sleep).
pub fn wait_for_end(fd: &OwnedFd, until: Instant) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut pollfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    // Rounded up: a timeout rounded down to 0 ms would spin until the deadline.
    let wait = until
        .saturating_duration_since(Instant::now())
        .as_micros()
        .div_ceil(1000);
    let _ = poll(&mut pollfd, PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX));
}

/// Makes this process deaf to the signals that end a process by default and that a
/// stop or a terminal sends (a log relay: it ends when its input does, so that it
/// never loses the last lines of a service being stopped).
pub fn ignore_termination_signals() {
    use nix::sys::signal::SigHandler;
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPIPE,
        Signal::SIGALRM,
        Signal::SIGWINCH,
    ] {
        // SAFETY: SIG_IGN installs no handler: nothing runs in signal context.
        let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_start_time_is_not_signalled() {
        let me = ServiceProcess::of(std::process::id() as i32).expect("own stat");
        assert!(me.is_alive());
        let forged = ServiceProcess {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!forged.is_alive());
        assert!(forged.is_reused());
        assert_eq!(signal(KillTarget::Process(forged), Signal::SIGTERM), Ok(false));
    }
}
