//! Which live processes belong to a service, and the grace-then-kill of processes
//! proven ours.
//!
//! A service's processes are: cookie holders with its name, its recorded leader if the
//! identity (PID and start time) still matches, and the members of its recorded
//! process group when a process proven ours belongs to that group.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::os::cgroup::Cgroup;
use crate::os::process::{command_line, self_and_ancestors, with_descendants};
use crate::os::signal::{Group, KillTarget, signal, signal_and_continue, wait_for_exits};
use crate::os::{ProcessInfo, ServiceProcess, scan};
use crate::poll;
use crate::service::Context;
use crate::state::{Entry, Record};

/// How long SIGKILLed processes get to disappear before they count as survivors.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// The records of a stop, by service, read once: nothing else writes them while the
/// stop holds the lock.
pub type Records = BTreeMap<String, Record>;

/// SIGTERM (each process then continued, should it be stopped), `grace` to exit, then
/// SIGKILL and a last wait; returns the ones still alive after all that.
pub fn terminate(procs: &[ProcessInfo], grace: Duration) -> Vec<ProcessInfo> {
    let alive = |procs: &[ProcessInfo]| -> Vec<ProcessInfo> {
        procs.iter().filter(|p| p.process.is_alive()).cloned().collect()
    };
    for (sig, wait) in [(Signal::SIGTERM, grace), (Signal::SIGKILL, KILL_WAIT)] {
        let targets = alive(procs);
        for p in &targets {
            let _ = signal_and_continue(KillTarget::Process(p.process), sig);
        }
        let targets: Vec<ServiceProcess> = targets.iter().map(|p| p.process).collect();
        if wait_for_exits(&targets, poll::after(wait)).is_empty() {
            return Vec::new();
        }
    }
    alive(procs)
}

/// The live processes of each named service: cookie holders with its name, its
/// recorded leader if the identity still matches, and members of its group when the
/// group is proven ours.
pub fn find_processes(ctx: &Context, services: &[String], records: &Records) -> BTreeMap<String, Vec<ProcessInfo>> {
    let root = &ctx.config.root;
    processes_of(root, services, &scan::cookie_holders(root), records)
}

/// `find_processes` with the cookie holders already scanned. The layers, strongest
/// first: the service's cgroup, the process tree its record lists, the cookie, the
/// recorded group.
pub fn processes_of(
    root: &Path,
    services: &[String],
    holders: &[ProcessInfo],
    records: &Records,
) -> BTreeMap<String, Vec<ProcessInfo>> {
    let mut found: BTreeMap<String, Vec<ProcessInfo>> = BTreeMap::new();
    let mut groups: BTreeMap<String, i32> = BTreeMap::new();
    for service in services {
        let mut procs: Vec<ProcessInfo> = holders
            .iter()
            .filter(|p| p.service.as_deref() == Some(service))
            .cloned()
            .collect();
        for process in owned(root, service, records.get(service)) {
            if !procs.iter().any(|p| p.process == process)
                && let Some(pgid) = process.pgid()
            {
                procs.push(info(process, pgid, service));
            }
        }
        if let Some(record) = records.get(service) {
            // A container's processes are Docker's to signal (phase 4), never ours. The
            // recorded group is the service's only while a process proven ours is in it
            // now: a cookie holder of the service the scan just saw, or the recorded
            // leader itself (PID, start time and group all matching).
            let group_proven = record.container.is_none()
                && (procs.iter().any(|p| p.pgid == record.pgid)
                    || ServiceProcess::recorded(record).pgid() == Some(record.pgid));
            if group_proven {
                groups.insert(service.clone(), record.pgid);
            }
        }
        found.insert(service.clone(), procs);
    }
    let members = scan::group_members(&groups.values().copied().collect());
    for (service, pgid) in groups {
        let procs = found.entry(service.clone()).or_default();
        for member in members.get(&pgid).into_iter().flatten() {
            if !procs.iter().any(|p| p.process == *member) {
                procs.push(info(*member, pgid, &service));
            }
        }
    }
    found
}

/// The cgroups of `service`: the one its record names, and the one it would have
/// under this process's base (a record lost, or written without one).
pub fn cgroups(root: &Path, service: &str, record: Option<&Record>) -> Vec<Cgroup> {
    let recorded = record
        .and_then(|r| r.cgroup.as_deref())
        .and_then(|path| Cgroup::recorded(path, root, service));
    let mut cgroups: Vec<Cgroup> = recorded.into_iter().collect();
    if let Some(own) = Cgroup::for_service(root, service).filter(|c| !cgroups.contains(c)) {
        cgroups.push(own);
    }
    cgroups
}

/// The live processes a record and the cgroups prove the service's, beyond the cookie:
/// the members of its cgroups; without one, its recorded main process and tree whose
/// identity (PID and start time) still matches, with their descendants now (a
/// grandchild that cleared its environment and left the group is still below them).
pub fn owned(root: &Path, service: &str, record: Option<&Record>) -> Vec<ServiceProcess> {
    let members: Vec<ServiceProcess> = cgroups(root, service, record)
        .into_iter()
        .flat_map(|c| c.members())
        .filter_map(ServiceProcess::of)
        .collect();
    let mut tree: Vec<ServiceProcess> = record
        .into_iter()
        .flat_map(|r| r.tree.iter())
        .map(|&(pid, start_time)| ServiceProcess { pid, start_time })
        .collect();
    // A container's processes are Docker's; a cgroup holds every descendant already.
    let tree = match record {
        Some(r) if r.container.is_none() && r.cgroup.is_none() => {
            tree.push(ServiceProcess::recorded(r));
            with_descendants(&tree)
        }
        _ => tree.into_iter().filter(ServiceProcess::is_alive).collect(),
    };
    let mut owned: Vec<ServiceProcess> = Vec::new();
    for process in members.into_iter().chain(tree) {
        if !owned.contains(&process) && !self_and_ancestors().contains(&process.pid) {
            owned.push(process);
        }
    }
    owned
}

/// The records among `entries`, by service.
pub fn records_in(entries: &[Entry]) -> Records {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) => Some((r.service.clone(), r.clone())),
            Entry::Corrupt { .. } => None,
        })
        .collect()
}

/// Those of `procs` still alive, with their process group as it is now.
pub fn still_alive(procs: &[ProcessInfo]) -> Vec<ProcessInfo> {
    procs
        .iter()
        .filter_map(|p| p.process.pgid().map(|pgid| ProcessInfo { pgid, ..p.clone() }))
        .collect()
}

fn info(process: ServiceProcess, pgid: i32, service: &str) -> ProcessInfo {
    ProcessInfo {
        process,
        pgid,
        service: Some(service.to_string()),
        command: command_line(process.pid),
    }
}

/// Sends `sig` to a service's processes: once to its recorded group when one of
/// `procs` proves it ours, then to each process outside it (double-forked daemons in
/// sessions of their own). Returns the processes the signal could not reach, with why
/// (EPERM: another user's), for the caller to report rather than claim.
pub fn send(procs: &[ProcessInfo], record: Option<&Record>, sig: Signal) -> Vec<(ProcessInfo, Errno)> {
    send_with(procs, record, sig, signal)
}

/// `send`, each target then continued (SIGCONT), so that a paused service handles its
/// stop signal at once (see `signal_and_continue`): every graceful stop sends this way.
pub fn send_and_wake(procs: &[ProcessInfo], record: Option<&Record>, sig: Signal) -> Vec<(ProcessInfo, Errno)> {
    send_with(procs, record, sig, signal_and_continue)
}

/// Thaws the service's frozen cgroups (`cgroup.freeze`); true when one was frozen. Its
/// log relay is continued too: a paused relay would hold the service's last lines (and
/// block its writes) past the stop, and write them into the next run's log.
pub fn thaw(root: &Path, service: &str, record: Option<&Record>) -> bool {
    let mut thawed = false;
    for cgroup in cgroups(root, service, record) {
        thawed |= cgroup.thaw();
    }
    if let Some((pid, start_time)) = record.and_then(|r| r.relay) {
        // Proven by its start time before the signal, as every process is.
        let _ = signal(KillTarget::Process(ServiceProcess { pid, start_time }), Signal::SIGCONT);
    }
    thawed
}

fn send_with(
    procs: &[ProcessInfo],
    record: Option<&Record>,
    sig: Signal,
    signal: fn(KillTarget, Signal) -> Result<bool, Errno>,
) -> Vec<(ProcessInfo, Errno)> {
    let group = record.and_then(|record| {
        procs
            .iter()
            .filter(|p| p.pgid == record.pgid)
            .find_map(|p| Group::of(&p.process))
            .filter(|group| group.pgid() == record.pgid)
    });
    // A group that could not be signalled (it holds the caller's own shell) leaves its
    // members to be signalled one by one.
    let reached = group.filter(|group| signal(KillTarget::Group(*group), sig) == Ok(true));
    let pgid = reached.map(|g| g.pgid());
    let mut failed = Vec::new();
    for p in procs.iter().filter(|p| Some(p.pgid) != pgid) {
        if let Err(errno) = signal(KillTarget::Process(p.process), sig) {
            failed.push((p.clone(), errno));
        }
    }
    failed
}

pub fn describe(procs: &[ProcessInfo]) -> Vec<String> {
    procs
        .iter()
        .map(|p| format!("pid {}: {}", p.process.pid, p.command))
        .collect()
}
