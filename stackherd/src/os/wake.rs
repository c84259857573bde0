//! Sleeping until something happens, for a supervisor that must cost nothing while its
//! stack is idle: news from its own threads (a probe's report, a build, a file change),
//! a termination signal, a child's end (SIGCHLD), another process's end (a pidfd), or a
//! change in one of its directories (inotify). Each of them makes a descriptor
//! readable, so one poll(2) waits for all of them and for the next deadline together;
//! nothing wakes on a timer that was not asked for.
//!
//! The news arrives on a pipe of this process (the self-pipe technique): a thread or a
//! signal handler writes a byte, the sleeper drains them. A byte written before the
//! sleep begins ends it at once, so no wake is ever lost between a check and a sleep.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// Without the pipe (no descriptor was left to make it), a sleep is cut to this, so that
/// news is still seen, late.
const WITHOUT_PIPE: Duration = Duration::from_millis(50);

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

fn pipe() -> Option<&'static Pipe> {
    static PIPE: OnceLock<Option<Pipe>> = OnceLock::new();
    PIPE.get_or_init(|| {
        // Non-blocking on both ends: a writer never waits (a full pipe means a wake is
        // pending already), and draining stops when it is empty.
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
        Some(Pipe { read, write })
    })
    .as_ref()
}

/// Ends the current or next `sleep` of this process. Safe from any thread.
pub fn wake() {
    if let Some(pipe) = pipe() {
        let _ = nix::unistd::write(&pipe.write, &[1]);
    }
}

/// Makes the end of any child of this process (SIGCHLD) end a `sleep`, so that a
/// supervisor reaps its services and their re-parented orphans as they end, without
/// looking on a timer. The handler writes to the pipe and does nothing else; it is
/// installed once and chains to any handler installed before it.
pub fn on_child_exit() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let Some(write) = pipe().and_then(|p| p.write.try_clone().ok()) else {
            return false;
        };
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, write).is_ok()
    })
}

/// Sleeps until `until` (without one, until woken), until `wake` is called or a child
/// ends, or until one of `fds` is readable (a pidfd whose process ended, an inotify
/// descriptor with events). Returns at once when a wake came before the call.
pub fn sleep(until: Option<Instant>, fds: &[BorrowedFd<'_>]) {
    let pipe = pipe();
    let wait = until.map(|u| u.saturating_duration_since(Instant::now()));
    let wait = match (pipe, wait) {
        (None, None) => Some(WITHOUT_PIPE),
        (None, Some(wait)) => Some(wait.min(WITHOUT_PIPE)),
        (Some(_), wait) => wait,
    };
    let timeout = match wait {
        None => PollTimeout::NONE,
        // Rounded up: a wait rounded down to 0 ms would spin until its deadline.
        Some(wait) => PollTimeout::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(PollTimeout::MAX),
    };
    let mut pollfds: Vec<PollFd<'_>> = pipe
        .map(|p| PollFd::new(p.read.as_fd(), PollFlags::POLLIN))
        .into_iter()
        .chain(fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)))
        .collect();
    let _ = poll(&mut pollfds, timeout);
    drain();
}

/// Empties the pipe: the wakes it held are being answered now.
fn drain() {
    let Some(pipe) = pipe() else { return };
    let mut buffer = [0u8; 64];
    while matches!(nix::unistd::read(&pipe.read, &mut buffer), Ok(n) if n > 0) {}
}

/// Changes in a few directories (files created, written, renamed or removed in them),
/// as a descriptor that a `sleep` waits on: a supervisor learns that another command
/// wrote or removed a record, let go of the lock, or that a log grew, the moment it
/// happens.
pub struct DirWatch {
    inotify: Inotify,
    /// The watch of each directory, in the order given.
    watches: Vec<WatchDescriptor>,
    /// A watched directory was removed or moved away, which ended its watch.
    lost: bool,
}

/// What a `DirWatch` is told of in one directory.
#[derive(Debug, Clone, Copy)]
pub enum DirEvents {
    /// Every change to what the directory holds.
    Changes,
    /// Only a file written and closed in it (a lock file its holder lets go of).
    Closes,
}

impl DirWatch {
    /// Watches `dirs`. `None` when one of them cannot be watched (it does not exist),
    /// or the kernel gives no inotify descriptor (the limit on instances reached): the
    /// caller then looks on a timer instead, and tries again later.
    pub fn new(dirs: &[(&Path, DirEvents)]) -> Option<DirWatch> {
        // Looked at first: an instance made for nothing costs its close, which waits
        // for the kernel's grace period (15 ms here).
        if !dirs.iter().all(|(dir, _)| dir.is_dir()) {
            return None;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let changes = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        let mut watches = Vec::with_capacity(dirs.len());
        for (dir, events) in dirs {
            let mask = match events {
                DirEvents::Changes => changes,
                DirEvents::Closes => AddWatchFlags::IN_CLOSE_WRITE,
            };
            watches.push(inotify.add_watch(*dir, mask).ok()?);
        }
        Some(DirWatch {
            inotify,
            watches,
            lost: false,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Reads the events that are in; for each directory, in the order given, whether
    /// something happened in it.
    pub fn changed(&mut self) -> Vec<bool> {
        let mut changed = vec![false; self.watches.len()];
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                self.lost |= event.mask.contains(AddWatchFlags::IN_IGNORED);
                if let Some(n) = self.watches.iter().position(|w| *w == event.wd)
                    && let Some(slot) = changed.get_mut(n)
                {
                    *slot = true;
                }
            }
        }
        changed
    }

    /// False once a watched directory was removed or moved away: the caller makes a
    /// new watch when the directory is back.
    pub fn is_watching(&self) -> bool {
        !self.lost
    }
}
