//! How the supervisor sees a service end: its own children by reaping them when
//! SIGCHLD says one ended, other processes (services adopted from an earlier
//! supervisor, daemons that forked away, containers) through their pidfds, which the
//! loop's sleep waits on with everything else.

use std::os::fd::OwnedFd;

use super::{Event, Supervisor};
use crate::docker;
use crate::os::signal::{self, Watch};
use crate::os::{Exit, ServiceProcess, subreaper};
use crate::service::relays;

/// How the end of a watched process that is not our child is seen (our children's
/// ends come with SIGCHLD).
pub(super) enum EndSeen {
    /// Its pidfd, polled with the loop's other descriptors.
    Fd(OwnedFd),
    /// It had ended before it was watched.
    Gone,
    /// No pidfds here: /proc is looked at, every second.
    Look,
}

impl EndSeen {
    pub(super) fn of(process: &ServiceProcess) -> EndSeen {
        match signal::watch(process) {
            Watch::Fd(fd) => EndSeen::Fd(fd),
            Watch::Ended => EndSeen::Gone,
            Watch::Unsupported => EndSeen::Look,
        }
    }
}

impl Supervisor<'_> {
    /// Reaps every child that ended: service main processes (their exit is an event)
    /// and orphaned grandchildren re-parented to us (nothing to do but reap).
    pub(super) fn reap(&mut self) {
        let (ended, left) = subreaper::reap_ended();
        self.reap_again = left;
        for (pid, exit) in ended {
            self.saw_exit(pid, exit);
        }
    }

    fn saw_exit(&mut self, pid: i32, exit: Exit) {
        if let Some(read) = relays::ended(pid) {
            return self.relay_ended(pid, exit, read);
        }
        let found = self
            .watched
            .iter()
            .find(|(_, w)| w.own && w.process.is_some_and(|p| p.pid == pid));
        if let Some((service, _)) = found {
            self.pending.push(Event::Ended {
                service: service.clone(),
                pid,
                exit,
            });
        }
    }

    /// Adopted services are not our children: their end shows as their pidfd turning
    /// readable, or as their identity disappearing from /proc.
    pub(super) fn check_adopted(&mut self) {
        for (service, w) in &self.watched {
            let Some(process) = self.end_awaited(w) else {
                continue;
            };
            let ended = || match &w.end {
                Some(EndSeen::Fd(fd)) => signal::has_ended(fd),
                Some(EndSeen::Gone) => true,
                Some(EndSeen::Look) | None => !process.is_alive(),
            };
            if ended() {
                let exit = w.site.container.as_deref().map_or(Exit::Unknown, docker::exit_of);
                self.pending.push(Event::Ended {
                    service: service.clone(),
                    pid: process.pid,
                    exit,
                });
            }
        }
    }

    pub(super) fn ended_pending(&self, pid: i32) -> bool {
        self.pending
            .iter()
            .any(|e| matches!(e, Event::Ended { pid: ended, .. } if *ended == pid))
    }
}
