//! Operating-system facts about processes: identity, the cookie scan, who listens on a
//! port, resource usage, and the one function that sends signals.
//!
//! Everything Linux-specific (`/proc/PID/stat` field 22, `/proc/*/environ`,
//! `/proc/net/tcp`) stays behind this small interface.

use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use procfs::process::{FDTarget, Process};
use serde::{Deserialize, Serialize};

/// Environment variable naming the canonical project root; inherited by every
/// descendant of a service, it is how `stop` and `cleanup` find leftovers.
pub const COOKIE_PROJECT: &str = "XTASK_PROJECT";
/// Environment variable naming the service a process belongs to.
pub const COOKIE_SERVICE: &str = "XTASK_SERVICE";

/// The `XTASK_SERVICE` of the detached monitor: not a valid service name, so it cannot
/// clash with one.
pub const MONITOR_SERVICE: &str = "@monitor";

/// A process identified by PID *and* start time, because PIDs are reused: a PID whose
/// start time differs from the recorded one belongs to somebody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProcess {
    pub pid: i32,
    /// Clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
}

/// What one process looks like right now.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub process: ServiceProcess,
    pub pgid: i32,
    /// The `XTASK_SERVICE` of a cookie holder.
    pub service: Option<String>,
    pub command: String,
}

/// Whom a signal goes to. A group is only ever built from a process proven ours, so no
/// raw negative PID exists outside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    Process(ServiceProcess),
    /// The process group of a process that carries this project's cookie or matches
    /// its record, or that xtask just made a group leader (a build step).
    GroupOf {
        pgid: i32,
    },
}

/// A process that holds a listening TCP socket.
#[derive(Debug, Clone)]
pub struct PortHolder {
    pub pid: i32,
    pub command: String,
    /// The service named by its cookie, when it carries this project's cookie.
    pub service: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub uptime: Duration,
    /// Average share of one core over the process's life, as `ps` shows it.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

impl ServiceProcess {
    /// The identity of a live (not zombie) process, or `None` if there is none.
    pub fn of(pid: i32) -> Option<ServiceProcess> {
        let stat = Process::new(pid).ok()?.stat().ok()?;
        if is_dead_state(stat.state) {
            return None;
        }
        Some(ServiceProcess {
            pid,
            start_time: stat.starttime,
        })
    }

    /// True while this very process (same PID and start time) runs. A zombie counts as
    /// gone: it holds no resources but its PID, and it is not ours to reap here.
    pub fn is_alive(&self) -> bool {
        ServiceProcess::of(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }

    /// True when the PID now belongs to another process than the recorded one.
    pub fn is_reused(&self) -> bool {
        ServiceProcess::of(self.pid).is_some_and(|now| now.start_time != self.start_time)
    }

    pub fn pgid(&self) -> Option<i32> {
        let stat = Process::new(self.pid).ok()?.stat().ok()?;
        (stat.starttime == self.start_time).then_some(stat.pgrp)
    }
}

/// A zombie (`Z`) or dead (`X`) entry still has a /proc directory but is not running.
fn is_dead_state(state: char) -> bool {
    matches!(state, 'Z' | 'X')
}

/// The parent PID of a live process.
pub fn parent_of(pid: i32) -> Option<i32> {
    Process::new(pid).ok()?.stat().ok().map(|s| s.ppid)
}

/// The command line of `pid`, for humans; empty when it cannot be read.
pub fn command_line(pid: i32) -> String {
    let Ok(process) = Process::new(pid) else {
        return String::new();
    };
    match process.cmdline() {
        Ok(args) if !args.is_empty() => args.join(" "),
        _ => process.stat().map(|s| format!("[{}]", s.comm)).unwrap_or_default(),
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
    let me = std::process::id() as i32;
    let mut wanted = format!("{COOKIE_PROJECT}=").into_bytes();
    wanted.extend_from_slice(project_root.as_os_str().as_encoded_bytes());
    let service_prefix = format!("{COOKIE_SERVICE}=").into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let mut vars = environ.split(|b| *b == 0);
        if !vars.clone().any(|v| v == wanted.as_slice()) {
            continue;
        }
        let service = vars
            .find_map(|v| v.strip_prefix(service_prefix.as_slice()))
            .map(|s| String::from_utf8_lossy(s).into_owned());
        let Ok(stat) = Process::new(pid).and_then(|p| p.stat()) else {
            continue;
        };
        if is_dead_state(stat.state) {
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
    let me = std::process::id() as i32;
    let mut spared = vec![me];
    let mut pid = me;
    while let Some(parent) = parent_of(pid).filter(|p| *p > 1) {
        spared.push(parent);
        pid = parent;
    }
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
        if is_dead_state(stat.state) {
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

/// The socket inodes listening on TCP `port`, on any address, IPv4 or IPv6.
fn listening_inodes(port: u16) -> Vec<u64> {
    let v4 = procfs::net::tcp().unwrap_or_default();
    let v6 = procfs::net::tcp6().unwrap_or_default();
    v4.into_iter()
        .chain(v6)
        .filter(|entry| entry.state == procfs::net::TcpState::Listen && entry.local_address.port() == port)
        .map(|entry| entry.inode)
        .collect()
}

/// Every TCP port some socket listens on, IPv4 or IPv6. One read of the socket tables
/// serves all the ports a command checks: the tables hold every TIME_WAIT connection
/// too, and parsing them once per port was measured at several ms each.
pub fn listening_ports() -> std::collections::BTreeSet<u16> {
    let v4 = procfs::net::tcp().unwrap_or_default();
    let v6 = procfs::net::tcp6().unwrap_or_default();
    v4.into_iter()
        .chain(v6)
        .filter(|entry| entry.state == procfs::net::TcpState::Listen)
        .map(|entry| entry.local_address.port())
        .collect()
}

/// The processes that hold a listening socket on `port`, as far as /proc lets us see
/// (another user's file descriptors are hidden from a non-root caller).
pub fn port_holders(port: u16, project_root: &Path) -> Vec<PortHolder> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for process in all.flatten() {
        let Ok(fds) = process.fd() else { continue };
        let holds = fds
            .flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(inode) if inodes.contains(&inode)));
        if holds {
            let service = process.environ().ok().and_then(|env| {
                let ours = env.get(std::ffi::OsStr::new(COOKIE_PROJECT)).map(|v| v.as_os_str())
                    == Some(project_root.as_os_str());
                ours.then(|| {
                    env.get(std::ffi::OsStr::new(COOKIE_SERVICE))
                        .map(|s| s.to_string_lossy().into_owned())
                })
                .flatten()
            });
            holders.push(PortHolder {
                pid: process.pid,
                command: command_line(process.pid),
                service,
            });
        }
    }
    holders
}

/// Sends `sig`. Returns `Ok(false)` when there was nobody left to receive it (`ESRCH`,
/// or a process whose start time no longer matches: its PID was reused, so it is not
/// ours and is left alone).
pub fn signal(target: KillTarget, sig: Signal) -> Result<bool, Errno> {
    let result = match target {
        KillTarget::Process(process) => {
            // Re-read the start time right before signalling: the only thing that makes
            // a PID ours. The window between this read and kill(2) is microseconds.
            if !process.is_alive() {
                return Ok(false);
            }
            signal::kill(Pid::from_raw(process.pid), sig)
        }
        KillTarget::GroupOf { pgid } => {
            if pgid <= 1 {
                return Ok(false);
            }
            signal::killpg(Pid::from_raw(pgid), sig)
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Live members of each of the process groups `pgids`, in one pass over /proc: a stop
/// asks for the groups of all its services at once.
pub fn group_members(pgids: &std::collections::BTreeSet<i32>) -> std::collections::BTreeMap<i32, Vec<ServiceProcess>> {
    let mut members: std::collections::BTreeMap<i32, Vec<ServiceProcess>> = Default::default();
    if pgids.is_empty() {
        return members;
    }
    let Ok(all) = procfs::process::all_processes() else {
        return members;
    };
    for stat in all.flatten().filter_map(|p| p.stat().ok()) {
        if pgids.contains(&stat.pgrp) && !is_dead_state(stat.state) {
            members.entry(stat.pgrp).or_default().push(ServiceProcess {
                pid: stat.pid,
                start_time: stat.starttime,
            });
        }
    }
    members
}

pub fn usage(process: &ServiceProcess) -> Option<Usage> {
    let stat = Process::new(process.pid).ok()?.stat().ok()?;
    if stat.starttime != process.start_time {
        return None;
    }
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().ok()? as f64;
    let started = boot + stat.starttime as f64 / ticks;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let uptime = (now - started).max(0.0);
    let cpu = (stat.utime + stat.stime) as f64 / ticks;
    Some(Usage {
        uptime: Duration::from_secs_f64(uptime),
        cpu_percent: if uptime > 0.0 { 100.0 * cpu / uptime } else { 0.0 },
        rss_bytes: stat.rss * procfs::page_size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_identity_is_alive_and_a_changed_start_time_is_not() {
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
