//! When the supervisor's loop runs: it sleeps until the earliest real deadline (a
//! probe, a restart's backoff, the end of a watch's quiet period, a retry of the lock,
//! the tree refresh where one is needed) or until something happens (a child or a
//! watched process ends, a thread reports, a record or a followed log changes, a
//! signal). A service with no probe costs nothing while it runs, and no deadline that
//! has passed is ever slept towards: that would be a busy loop.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::trees::REFRESH;
use super::{EndSeen, Event, Mode, Phase, Supervisor, Watched};
use crate::config::Probe;
use crate::os::wake::{self, DirEvents, DirWatch};
use crate::os::{ServiceProcess, cgroup};
use crate::poll;
use crate::probe::Prober;

/// The first pause before the lock is tried again. It doubles up to `LOCK_HELD_MAX`
/// while another command holds the lock (it lets go soon, and what waits for it is a
/// restart or a record), and up to `LOCK_BROKEN_MAX` while the lock cannot be taken at
/// all (a read-only or missing state directory: that lasts).
const LOCK_RETRY_FIRST: Duration = Duration::from_millis(5);
const LOCK_HELD_MAX: Duration = Duration::from_millis(100);
const LOCK_BROKEN_MAX: Duration = Duration::from_secs(5);
/// How often /proc is looked at when the kernel cannot tell of an end (no pidfds).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often a detached monitor looks at the records' directory for changes made by
/// other commands (a `start-bg --no-monitor` whose services it adopts): a stat. It is
/// not told of them by inotify: closing an inotify descriptor waits for the kernel's
/// grace period (15 ms here), which every `stop` would wait out for the monitor to end.
const RECORDS_EVERY: Duration = Duration::from_secs(1);
/// How often a foreground start reads records and logs when inotify cannot tell it.
const READ_EVERY: Duration = Duration::from_millis(250);
/// How soon to reap again an ended child that was left to the thread that waits for it.
const REAP_AGAIN: Duration = Duration::from_millis(10);

impl Supervisor<'_> {
    /// A foreground start asks to be told of changes to the records (other commands
    /// starting and stopping services), of the lock being let go of, and of its logs
    /// growing, which it prints as they come.
    pub(super) fn watch_state_dir(&mut self) {
        if matches!(self.mode, Mode::Foreground(_)) {
            self.state_watch = self.new_state_watch();
        }
    }

    fn new_state_watch(&self) -> Option<DirWatch> {
        let registry = &self.ctx.registry;
        let (run, logs) = (registry.run_dir(), registry.logs_dir());
        DirWatch::new(&[
            (run.as_path(), DirEvents::Changes),
            (logs.as_path(), DirEvents::Changes),
            (registry.dir(), DirEvents::Closes),
        ])
    }

    /// Whether the records changed, or the lock was let go of, since the last call
    /// (a log that grew is read by the follower anyway); `None` when nothing tells: the
    /// records' stamp is then looked at. A directory that was removed and made again
    /// is watched again.
    pub(super) fn state_changed(&mut self) -> Option<bool> {
        if !matches!(self.mode, Mode::Foreground(_)) {
            return None;
        }
        if self.state_watch.as_ref().is_none_or(|w| !w.is_watching()) {
            self.state_watch = self.new_state_watch();
            // Whatever happened while nothing watched is looked at once.
            return self.state_watch.as_ref().map(|_| true);
        }
        let changed = self.state_watch.as_mut()?.changed();
        // In the order of `new_state_watch`: records, logs, the lock.
        Some(matches!(changed.as_slice(), [true, _, _] | [_, _, true]))
    }

    /// The lock could not be taken: try again after a pause that doubles each time.
    /// `problem` is what went wrong when the lock cannot be had at all.
    pub(super) fn retry_lock(&mut self, problem: Option<String>) {
        let max = if problem.is_some() {
            LOCK_BROKEN_MAX
        } else {
            LOCK_HELD_MAX
        };
        let pause = self
            .lock_retry
            .map_or(LOCK_RETRY_FIRST, |(_, last)| last.saturating_mul(2).min(max));
        self.lock_retry = Some((poll::after(pause), pause));
        if problem.is_some() {
            self.report_trouble(problem);
        }
    }

    /// Reports a problem when there was none, and once that it is over: a state
    /// directory that cannot be written fails writes of every kind, each with its own
    /// words, and all of them are that one problem.
    pub(super) fn report_trouble(&mut self, now: Option<String>) {
        if now.is_some() == self.trouble.is_some() {
            return;
        }
        match &now {
            Some(problem) => self.ctx.ui.warn(format!("{problem}; retrying, this is reported once")),
            None => self.ctx.ui.info("the state directory can be written again"),
        }
        self.trouble = now;
    }

    /// Sleeps until the next deadline or until something happens.
    pub(super) fn sleep(&mut self) {
        let next = self.next_wake();
        let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
        fds.extend(self.state_watch.as_ref().map(DirWatch::fd));
        for w in self.watched.values() {
            if let (Some(EndSeen::Fd(fd)), Some(_)) = (&w.end, self.end_awaited(w)) {
                fds.push(fd.as_fd());
            }
        }
        wake::sleep(next, &fds);
    }

    /// The earliest real deadline; `None` when only an event can bring work.
    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut at = |when: Instant| next = Some(next.map_or(when, |n| n.min(when)));
        for (name, w) in &self.watched {
            // A probe that runs reports through the pool, which wakes us.
            if !w.probing {
                match w.phase {
                    Phase::Starting { next_probe, .. } if w.prober.is_some() => at(next_probe),
                    // Healthy once watched starting (no health check): that is now.
                    Phase::Starting { .. } if !self.healthy_queued(name) => at(now),
                    Phase::Healthy { next_probe, .. } | Phase::Unhealthy { next_probe, .. }
                        if w.prober.as_ref().is_some_and(has_liveness) =>
                    {
                        at(next_probe);
                    }
                    Phase::Waiting { due } if !self.restart_queued(name) => at(due),
                    _ => {}
                }
            }
            match (&w.end, self.end_awaited(w)) {
                (Some(EndSeen::Gone), Some(_)) => at(now),
                (Some(EndSeen::Look) | None, Some(_)) => at(poll::later(now, LOOK_EVERY)),
                _ => {}
            }
        }
        if !self.pending.is_empty() {
            at(self.lock_retry.map_or(now, |(when, _)| when));
        }
        for quiet in self.quiet.values() {
            at(quiet.until);
        }
        if self.needs_trees() {
            at(self.trees_read.map_or(now, |read| poll::later(read, REFRESH)));
        }
        if self.reap_again {
            at(poll::later(now, REAP_AGAIN));
        }
        match (&self.mode, &self.state_watch) {
            (Mode::Monitor, _) => at(poll::later(now, RECORDS_EVERY)),
            (Mode::Foreground(_), None) => at(poll::later(now, READ_EVERY)),
            (Mode::Foreground(follower), Some(_)) => {
                if let Some(due) = follower.unfinished_due() {
                    at(due);
                }
            }
        }
        next
    }

    /// The process whose end `check_adopted` would report (not our child, in a phase
    /// that runs, its end not queued yet): only it is waited for, or a descriptor that
    /// stays readable, or a deadline nothing acts on, would be slept towards for ever.
    pub(super) fn end_awaited(&self, w: &Watched) -> Option<ServiceProcess> {
        let live = matches!(
            w.phase,
            Phase::Starting { .. } | Phase::Healthy { .. } | Phase::Unhealthy { .. }
        );
        w.process.filter(|p| live && !w.own && !self.ended_pending(p.pid))
    }

    pub(super) fn healthy_queued(&self, name: &str) -> bool {
        self.pending
            .iter()
            .any(|e| matches!(e, Event::Healthy { service, .. } if service == name))
    }

    pub(super) fn restart_queued(&self, name: &str) -> bool {
        self.pending
            .iter()
            .any(|e| matches!(e, Event::RestartDue { service } if service == name))
    }

    /// Without cgroups the processes of running services are read into their records
    /// every `REFRESH`; with them, or with nothing running, never.
    pub(super) fn needs_trees(&self) -> bool {
        cgroup::base().is_none()
            && self
                .watched
                .values()
                .any(|w| w.process.is_some() && w.site.container.is_none())
    }
}

/// Whether a probe is repeated once healthy: a log line, once seen, stays seen.
pub(super) fn has_liveness(prober: &Prober) -> bool {
    !matches!(prober.health().probe, Probe::Log(_))
}
