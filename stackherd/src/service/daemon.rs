//! Programs that fork into the background (`redis-server --daemonize yes`, `pg_ctl
//! start`, nginx by default): the process xtask started exits 0 while the service runs
//! on in processes it forked. As systemd's `Type=forking` does, the service's main
//! process is then the one its `pid_file` names, or else the oldest process it owns.

use std::path::{Path, PathBuf};

use crate::config::Service;
use crate::os::cgroup::Cgroup;
use crate::os::process::{children_of, with_descendants};
use crate::os::{ServiceProcess, scan, spawn};
use crate::service::Context;
use crate::state::{Entry, Record, Registry};

/// What it takes to find a service's processes after its first process exited.
#[derive(Debug, Clone)]
pub struct DaemonSearch {
    root: PathBuf,
    service: String,
    pid_file: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    /// The process xtask started, which exited.
    started: ServiceProcess,
    /// The descendants of the process xtask started, as `look` saw them while it ran:
    /// what proves a daemon the service's once its cookie is erased and its parent gone.
    seen: Vec<ServiceProcess>,
    /// Children this process had before the service was spawned: never its daemon.
    before: Vec<ServiceProcess>,
    registry: Registry,
}

impl DaemonSearch {
    pub fn new(ctx: &Context, service: &Service, cgroup: Option<Cgroup>, started: ServiceProcess) -> DaemonSearch {
        DaemonSearch {
            root: ctx.config.root.clone(),
            service: service.name.clone(),
            pid_file: service.pid_file.clone(),
            cgroup,
            started,
            seen: Vec::new(),
            before: Vec::new(),
            registry: ctx.registry.clone(),
        }
    }

    /// Notes the children this process had before the service was spawned, which
    /// the search then never takes for the service's daemon.
    pub fn spawned_after(mut self, before: Vec<ServiceProcess>) -> DaemonSearch {
        self.before = before;
        self
    }

    /// The service's main process now: the process its `pid_file` names when the
    /// service owns it, else the oldest process it owns; `None` when it owns none.
    pub fn main(&self) -> Option<ServiceProcess> {
        let owned = self.owned();
        let named = self
            .pid_file
            .as_deref()
            .and_then(pid_in)
            .and_then(|pid| owned.iter().find(|p| p.pid == pid).copied());
        named.or_else(|| owned.iter().min_by_key(|p| (p.start_time, p.pid)).copied())
    }

    /// Notes the descendants of the process xtask started, which still runs; true when
    /// one of them left its session (setsid): it is forking a daemon away, and, as with
    /// a `pid_file`, a probe should wait for it to exit (`pg_ctl start` exits once its
    /// server answers).
    pub fn look(&mut self) -> bool {
        let Some(session) = self.started.session() else {
            return false;
        };
        let mut away = false;
        for process in with_descendants(&[self.started]) {
            if process == self.started {
                continue;
            }
            away |= process.session().is_some_and(|s| s != session);
            if !self.seen.contains(&process) {
                self.seen.push(process);
            }
        }
        away
    }

    pub fn has_pid_file(&self) -> bool {
        self.pid_file.is_some()
    }

    /// The PID the service's `pid_file` holds now.
    pub fn pid_file_pid(&self) -> Option<i32> {
        self.pid_file.as_deref().and_then(pid_in)
    }

    /// The live processes the service owns besides the one that exited, with their
    /// descendants. In its cgroup: every member. Without one: the orphans re-parented to
    /// this process (a subreaper) since the service started, which no other service's
    /// record or cookie claims, and the holders of its own cookie.
    pub fn owned(&self) -> Vec<ServiceProcess> {
        if let Some(cgroup) = &self.cgroup {
            return cgroup.members().into_iter().filter_map(ServiceProcess::of).collect();
        }
        // Seen under the process xtask started: proven, nothing else needs guessing.
        let seen: Vec<ServiceProcess> = self.seen.iter().copied().filter(ServiceProcess::is_alive).collect();
        if !seen.is_empty() {
            let holders = self.cookie_holders();
            return with_descendants(&seen.into_iter().chain(holders).collect::<Vec<_>>());
        }
        // Another service's main process, or one its record lists, is not ours.
        let claimed: Vec<i32> = self
            .registry
            .entries()
            .iter()
            .flat_map(|e| match e {
                Entry::Record(r) if r.service != self.service => std::iter::once(r.pid)
                    .chain(r.tree.iter().map(|(pid, _)| *pid))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let me = std::process::id() as i32;
        let orphans: Vec<ServiceProcess> = children_of(me)
            .into_iter()
            .filter(|c| {
                c.start_time >= self.started.start_time
                    && !self.before.contains(c)
                    && !claimed.contains(&c.pid)
                    && !spawn::is_relay(c.pid)
            })
            .filter(|c| match scan::cookie_service(c.pid, &self.root) {
                None => true,
                Some(service) => service.as_deref() == Some(self.service.as_str()),
            })
            .collect();
        let roots: Vec<ServiceProcess> = orphans.into_iter().chain(self.cookie_holders()).collect();
        with_descendants(&roots)
    }

    /// The live processes that carry this service's cookie.
    fn cookie_holders(&self) -> Vec<ServiceProcess> {
        scan::cookie_holders(&self.root)
            .into_iter()
            .filter(|p| p.service.as_deref() == Some(self.service.as_str()))
            .map(|p| p.process)
            .collect()
    }
}

/// Makes `main` the record's main process. Without a cgroup, the record also lists the
/// processes under it: the cookie may be gone from their environment, and only the
/// record then says they are the service's.
pub fn record_main(record: &mut Record, main: ServiceProcess) {
    record.pid = main.pid;
    record.start_time = main.start_time;
    record.pgid = main.pgid().unwrap_or(main.pid);
    if record.cgroup.is_none() {
        record.tree = with_descendants(&[main])
            .iter()
            .filter(|p| **p != main)
            .map(|p| (p.pid, p.start_time))
            .collect();
    }
}

/// The most of a PID file read: PostgreSQL's, the longest known, holds a few lines.
const PID_FILE_MAX: u64 = 64 * 1024;

/// The PID a PID file holds on its first line (PostgreSQL's `postmaster.pid` has more).
/// It is read as the user who may be root, often from a directory another user can
/// write (`/tmp`, the data directory of a server that runs as `postgres`): a link, a
/// FIFO or a huge file there names no PID.
fn pid_in(path: &Path) -> Option<i32> {
    let text = crate::state::read_small_text(path, PID_FILE_MAX).ok()?;
    text.lines().next()?.trim().parse().ok().filter(|pid| *pid > 0)
}
