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

/// How long the output of an ended child is waited for: a grandchild outside its
/// group may hold its pipes open, and is not waited for beyond this.
const OUTPUT_AFTER_END: Duration = Duration::from_secs(1);

/// Runs `command` (stdin from /dev/null) to its end within `timeout`, capturing its
/// output: what `Command::output` does, bounded. `None` when it took longer: its group
/// was killed and its leader reaped.
pub fn output_within(mut command: Command, timeout: Duration) -> io::Result<Option<Output>> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Child::spawn(command)?;
    // Read while it runs, on threads: a child that fills one pipe while we wait on
    // the other would otherwise never end.
    let stdout = child.take_stdout().map(read_on_a_thread);
    let stderr = child.take_stderr().map(read_on_a_thread);
    let status = match child.wait_until(poll::deadline_after(timeout), &|| false)? {
        Waited::Exited(status) => status,
        Waited::TimedOut | Waited::Interrupted => return Ok(None),
    };
    let deadline = poll::after(OUTPUT_AFTER_END);
    let collect = |reader: Option<mpsc::Receiver<Vec<u8>>>| {
        reader
            .and_then(|r| r.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok())
            .unwrap_or_default()
    };
    Ok(Some(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }))
}

/// Reads `pipe` to its end on a thread of its own; the bytes arrive on the channel.
fn read_on_a_thread(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

impl Drop for Child {
    fn drop(&mut self) {
        self.forget();
    }
}
