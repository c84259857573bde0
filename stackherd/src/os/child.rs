//! The one way to run a child that is not a service: a probe command, a stop command, a
//! build step, `run`'s CMD, a `docker logs` follower or `docker exec`.
//!
//! The child leads a process group of its own, so that whatever it starts (a shell's
//! pipeline, the compilers of a build) is stopped with it. Waits are bounded (the
//! child's grace period); past the bound the whole group is killed, and the leader is
//! always reaped. The group is
//! signalled only while its leader is not yet reaped, so its id cannot have been
//! reused.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::process::ServiceProcess;
use super::signal::{self, Group, KillTarget, Watch, signal};
use crate::poll::{self, Backoff};

/// The children that a `Child` waits for itself, by PID. A supervisor reaps every other
/// ended child with waitpid(-1); it leaves these alone (see `subreaper::reap_ended`),
/// and it holds this lock while it reaps, so that a child just spawned is on the list
/// before it can be reaped.
pub(super) static WAITED_BY_THEIR_OWNER: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// How long a wait sleeps at most before it looks at its deadline and `interrupted`.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Where the child's process group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// A group of its own (the default).
    Own,
    /// The terminal's foreground group, as a shell runs a foreground job: it gets the
    /// terminal's Ctrl+C and may read the terminal. Only the child itself is signalled.
    Terminal,
}

/// A running child.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    group: Option<Group>,
    /// Its pidfd, once a wait opened it: readable when it ends. (A pidfd, not a SIGCHLD
    /// handler: a process-wide handler would take the signal from whoever else waits.)
    end: Option<OwnedFd>,
}

/// How a bounded wait ended.
#[derive(Debug)]
pub enum Waited {
    Exited(ExitStatus),
    /// The deadline passed; the group was stopped and the leader reaped.
    TimedOut,
    /// `interrupted` said so; the group was stopped and the leader reaped.
    Interrupted,
}

impl Child {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: Command) -> io::Result<Child> {
        Child::spawn_in(command, Grouping::Own)
    }

    pub fn spawn_in(mut command: Command, grouping: Grouping) -> io::Result<Child> {
        if grouping == Grouping::Own {
            command.process_group(0);
        }
        let inner = {
            let mut owned = WAITED_BY_THEIR_OWNER
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let inner = command.spawn()?;
            owned.insert(inner.id() as i32);
            inner
        };
        let group = match grouping {
            Grouping::Own => Group::led_by_child(inner.id()),
            Grouping::Terminal => None,
        };
        Ok(Child {
            inner,
            group,
            end: None,
        })
    }

    /// Its identity while it is not reaped (its PID is its own until then).
    pub fn process(&self) -> Option<ServiceProcess> {
        i32::try_from(self.inner.id())
            .ok()
            .and_then(ServiceProcess::of_unreaped_child)
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.inner.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.inner.stderr.take()
    }

    /// Waits up to `timeout` for the leader to end (reaping it), woken by its pidfd, or
    /// by polling where the kernel has none.
    pub fn wait_for(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = poll::after(timeout);
        let mut backoff = Backoff::fast();
        if self.end.is_none() {
            // Not reaped yet, so its PID is still its own: the pidfd is this child's.
            let child = i32::try_from(self.inner.id())
                .ok()
                .and_then(ServiceProcess::of_unreaped_child);
            if let Some(Watch::Fd(fd)) = child.as_ref().map(signal::watch) {
                self.end = Some(fd);
            }
        }
        loop {
            if let Some(status) = self.inner.try_wait()? {
                self.forget();
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match &self.end {
                Some(fd) => signal::wait_for_end(fd, deadline),
                None => {
                    backoff.pause(deadline);
                }
            }
        }
    }

    /// Waits for the leader until `deadline` (none: no bound) or until `interrupted`
    /// turns true; then stops the group at once (SIGKILL) and reaps the leader.
    pub fn wait_until(&mut self, deadline: Option<Instant>, interrupted: &dyn Fn() -> bool) -> io::Result<Waited> {
        loop {
            let slice = deadline.map_or(WAIT_SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            if let Some(status) = self.wait_for(slice)? {
                return Ok(Waited::Exited(status));
            }
            let late = deadline.is_some_and(|d| Instant::now() >= d);
            if late || interrupted() {
                self.end();
                return Ok(if late { Waited::TimedOut } else { Waited::Interrupted });
            }
        }
    }

    /// Sends `sig` to the child's group (to the child alone when it shares the
    /// terminal's group).
    pub fn signal(&self, sig: Signal) {
        let target = match (self.group, self.leader()) {
            (Some(group), _) => Some(KillTarget::Group(group)),
            (None, Some(leader)) => Some(KillTarget::Process(leader)),
            (None, None) => None,
        };
        if let Some(target) = target {
            let _ = signal(target, sig);
        }
    }

    /// Ends the child: SIGKILL to its whole group (to the child alone in the
    /// terminal's group), then reaps the leader. Its grace period was the bounded wait
    /// that came before.
    pub fn end(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.inner.try_wait() {
            self.forget();
            return Some(status);
        }
        // The leader is not reaped yet (at most a zombie): the group id is still ours.
        self.signal(Signal::SIGKILL);
        let status = self.inner.wait().ok();
        self.forget();
        status
    }

    /// Takes the child off the list of those waited for by their owner: it is reaped,
    /// or its owner no longer waits for it.
    fn forget(&self) {
        let mut owned = WAITED_BY_THEIR_OWNER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        owned.remove(&(self.inner.id() as i32));
    }

    fn leader(&self) -> Option<ServiceProcess> {
        i32::try_from(self.inner.id()).ok().and_then(ServiceProcess::of)
    }
}

/// What a child printed, and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How a bounded run with its output ended.
#[derive(Debug)]
pub enum Ran {
    Done(Output),
    /// Past its bound: its group was killed and its leader reaped.
    TimedOut,
    /// A Ctrl+C (or SIGTERM, SIGHUP) counted while it ran: its group was killed too.
    Interrupted,
}

/// How long the output of an ended child is waited for: a process it started in its
/// group may hold its pipes open; that group is then killed.
const OUTPUT_AFTER_END: Duration = Duration::from_secs(1);

/// What is kept of each of a child's streams: a listing or an error's last line, never
/// megabytes. The rest is read and dropped, so that the child never blocks on a pipe.
const OUTPUT_KEPT: usize = 1 << 20;

/// Runs `command` (stdin from /dev/null) to its end within `timeout`, capturing its
/// output: what `Command::output` does, bounded, and given up when a termination signal
/// is counted meanwhile (`Interrupts`). If xtask dies first (a Ctrl+C where nothing
/// counts it), the child is killed with it (`PR_SET_PDEATHSIG`).
pub fn output_within(mut command: Command, timeout: Duration) -> io::Result<Ran> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let parent = nix::unistd::getpid();
    // SAFETY: runs in the forked child before exec and makes only prctl(2) and
    // getppid(2) calls, which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died before the prctl: then nothing would come.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other("xtask ended"));
            }
            Ok(())
        });
    }
    let interrupts_before = super::interrupts::counted();
    let interrupted = move || super::interrupts::counted() > interrupts_before;
    let mut child = Child::spawn(command)?;
    // Read while it runs, on threads: a child that fills one pipe while we wait on
    // the other would otherwise never end.
    let stdout = child.take_stdout().map(read_on_a_thread);
    let stderr = child.take_stderr().map(read_on_a_thread);
    let deadline = poll::after(timeout);
    match child.wait_ended(deadline, &interrupted) {
        Ended::Yes => {}
        Ended::Late => {
            child.end();
            return Ok(Ran::TimedOut);
        }
        Ended::Interrupted => {
            child.end();
            return Ok(Ran::Interrupted);
        }
    }
    // Ended, not reaped yet: its group id is still its own, so what it left holding
    // its pipes can be killed.
    let after = poll::after(OUTPUT_AFTER_END);
    let mut out = collect(stdout.as_ref(), after);
    let mut err = collect(stderr.as_ref(), after);
    if (stdout.is_some() && out.is_none()) || (stderr.is_some() && err.is_none()) {
        child.signal(Signal::SIGKILL);
        let again = poll::after(OUTPUT_AFTER_END);
        out = out.or_else(|| collect(stdout.as_ref(), again));
        err = err.or_else(|| collect(stderr.as_ref(), again));
    }
    let (stdout, stderr) = (out, err);
    let Some(status) = child.end() else {
        return Err(io::Error::other("the child could not be reaped"));
    };
    Ok(Ran::Done(Output {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    }))
}

/// A reader's bytes once it has them all, waiting until `until`; `None` meanwhile (the
/// reader is kept, to be asked again).
fn collect(reader: Option<&mpsc::Receiver<Vec<u8>>>, until: Instant) -> Option<Vec<u8>> {
    reader?
        .recv_timeout(until.saturating_duration_since(Instant::now()))
        .ok()
}

/// Reads `pipe` to its end on a thread of its own, keeping the first `OUTPUT_KEPT`
/// bytes; they arrive on the channel.
fn read_on_a_thread(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    let room = OUTPUT_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(buffer.get(..n.min(room)).unwrap_or_default());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = sender.send(kept);
    });
    receiver
}

/// Whether a leader ended (unreaped) before its deadline.
enum Ended {
    Yes,
    Late,
    Interrupted,
}

impl Child {
    /// Waits until the leader has ended, leaving it unreaped (its group id stays its
    /// own), until `deadline` or until `interrupted` turns true.
    fn wait_ended(&mut self, deadline: Instant, interrupted: &dyn Fn() -> bool) -> Ended {
        let Ok(pid) = i32::try_from(self.inner.id()) else {
            return Ended::Yes;
        };
        if self.end.is_none()
            && let Some(Watch::Fd(fd)) = ServiceProcess::of_unreaped_child(pid).as_ref().map(signal::watch)
        {
            self.end = Some(fd);
        }
        let mut backoff = Backoff::fast();
        loop {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
                Ok(WaitStatus::StillAlive) => {}
                // Ended (or already reaped, which `end` then reports).
                _ => return Ended::Yes,
            }
            if interrupted() {
                return Ended::Interrupted;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ended::Late;
            }
            let slice = deadline.min(now.checked_add(WAIT_SLICE).unwrap_or(deadline));
            match &self.end {
                Some(fd) => signal::wait_for_end(fd, slice),
                None => {
                    backoff.pause(slice);
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.forget();
    }
}
