//! Finding a project's processes in /proc: by the cookie in their environment, by the
//! user's `orphan_patterns`, and by process group.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::cookie::MONITOR_SERVICE;
use super::cookie::{COOKIE_PROJECT, COOKIE_SERVICE};
use super::process::{ServiceProcess, all_pids, command_line, environ_of, has_ended, self_and_ancestors, stat_of};
use crate::config::valid_service_name;
use crate::error::Survivor;

/// What one process looks like right now.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub process: ServiceProcess,
    pub pgid: i32,
    /// The `XTASK_SERVICE` of a cookie holder.
    pub service: Option<String>,
    pub command: String,
}

impl ProcessInfo {
    /// This process, as an error names it when it outlived the signals sent to it.
    pub fn survivor(&self) -> Survivor {
        Survivor {
            pid: self.process.pid,
            service: self.service.clone(),
            command: self.command.clone(),
        }
    }
}

/// Every live process whose environment carries this project's cookie, except the
/// calling process itself. Processes whose environment we may not read are skipped:
/// they belong to other users and are never ours.
///
/// This reads `/proc/PID/environ` as raw bytes rather than through procfs, whose
/// `environ()` builds a map per process: the scan runs several times in every stop,
/// and with 5,000 processes on the machine the map alone cost about 100 ms.
pub fn cookie_holders(project_root: &Path) -> Vec<ProcessInfo> {
    let family = self_and_ancestors();
    let mut wanted = format!("{COOKIE_PROJECT}=").into_bytes();
    wanted.extend_from_slice(project_root.as_os_str().as_encoded_bytes());
    let service_prefix = format!("{COOKIE_SERVICE}=").into_bytes();
    let mut found = Vec::new();
    let mut environ = Vec::with_capacity(16 * 1024);
    for pid in all_pids() {
        if family.contains(&pid) || !environ_of(pid, &mut environ) {
            continue;
        }
        let mut vars = environ.split(|b| *b == 0);
        if !vars.clone().any(|v| v == wanted.as_slice()) {
            continue;
        }
        let service = vars
            .find_map(|v| v.strip_prefix(service_prefix.as_slice()))
            .and_then(service_name);
        let Some(stat) = stat_of(pid) else {
            continue;
        };
        if has_ended(stat.pid, stat.state) {
            continue;
        }
        found.push(ProcessInfo {
            process: ServiceProcess {
                pid,
                start_time: stat.starttime,
            },
            pgid: stat.pgrp,
            service,
            command: command_line(pid),
        });
    }
    found
}

/// Processes that lost the cookie but match one of `patterns` (a regex on the command
/// line): only this user's, only those working inside the project, never xtask itself
/// or its ancestors (the shell, make, cargo that run it).
pub fn pattern_matches(project_root: &Path, patterns: &[regex::Regex]) -> Vec<ProcessInfo> {
    if patterns.is_empty() {
        return Vec::new();
    }
    let spared = self_and_ancestors();
    let uid = nix::unistd::geteuid().as_raw();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for process in all.flatten() {
        if spared.contains(&process.pid) || process.uid().ok() != Some(uid) {
            continue;
        }
        if !process.cwd().is_ok_and(|cwd| cwd.starts_with(project_root)) {
            continue;
        }
        // Processes with the cookie are the cookie scan's business.
        let has_cookie = process
            .environ()
            .is_ok_and(|env| env.contains_key(std::ffi::OsStr::new(COOKIE_PROJECT)));
        if has_cookie {
            continue;
        }
        let command = command_line(process.pid);
        if !patterns.iter().any(|re| re.is_match(&command)) {
            continue;
        }
        let Ok(stat) = process.stat() else { continue };
        if has_ended(stat.pid, stat.state) {
            continue;
        }
        found.push(ProcessInfo {
            process: ServiceProcess {
                pid: process.pid,
                start_time: stat.starttime,
            },
            pgid: stat.pgrp,
            service: None,
            command,
        });
    }
    found
}

/// Live members of each of the process groups `pgids`, in one pass over /proc: a stop
/// asks for the groups of all its services at once.
pub fn group_members(pgids: &BTreeSet<i32>) -> BTreeMap<i32, Vec<ServiceProcess>> {
    let mut members: BTreeMap<i32, Vec<ServiceProcess>> = Default::default();
    if pgids.is_empty() {
        return members;
    }
    for stat in all_pids().into_iter().filter_map(stat_of) {
        if pgids.contains(&stat.pgrp) && !has_ended(stat.pid, stat.state) {
            members.entry(stat.pgrp).or_default().push(ServiceProcess {
                pid: stat.pid,
                start_time: stat.starttime,
            });
        }
    }
    members
}

/// The value of a process's `XTASK_SERVICE`, when it names a service at all: another
/// process chose it, and names build paths in the state directory.
pub fn service_name(value: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(value).ok()?;
    (valid_service_name(name) || name == MONITOR_SERVICE).then(|| name.to_string())
}

/// True when `pid` carries this project's cookie with the service `service`: how a
/// record naming a process of xtask's own (the monitor) is proven, beyond its PID and
/// start time.
pub fn carries_cookie(pid: i32, project_root: &Path, service: &str) -> bool {
    cookie_service(pid, project_root).flatten().as_deref() == Some(service)
}

/// The service named by `pid`'s cookie: `None` when it carries no cookie of this
/// project (never had one, or a rewritten title erased it), `Some(None)` when the
/// cookie names no valid service.
pub fn cookie_service(pid: i32, project_root: &Path) -> Option<Option<String>> {
    let mut environ = Vec::new();
    if !environ_of(pid, &mut environ) {
        return None;
    }
    let project = [
        COOKIE_PROJECT.as_bytes(),
        b"=",
        project_root.as_os_str().as_encoded_bytes(),
    ]
    .concat();
    let service_prefix = format!("{COOKIE_SERVICE}=").into_bytes();
    let mut vars = environ.split(|b| *b == 0);
    if !vars.clone().any(|v| v == project.as_slice()) {
        return None;
    }
    Some(
        vars.find_map(|v| v.strip_prefix(service_prefix.as_slice()))
            .and_then(service_name),
    )
}
