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
use procfs::process::FDTarget;
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
        let stat = stat_of(pid)?;
        if has_ended(stat.pid, stat.state) {
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

    /// The process group of this very process while it runs (not a zombie).
    pub fn pgid(&self) -> Option<i32> {
        let stat = stat_of(self.pid)?;
        (stat.starttime == self.start_time && !has_ended(stat.pid, stat.state)).then_some(stat.pgrp)
    }
}

/// A zombie (`Z`) or dead (`X`) entry still has a /proc directory but is not running,
/// unless threads other than its first are still there: /proc shows the state of the
/// first thread, which turns zombie as soon as it ends, while a killed process's other
/// threads may still be closing its files (its listening sockets among them), and a
/// process whose main thread exited runs on in the others.
fn has_ended(pid: i32, state: char) -> bool {
    matches!(state, 'Z' | 'X')
        && std::fs::read_dir(format!("/proc/{pid}/task")).map_or(true, |threads| threads.count() <= 1)
}

/// The parent PID of a live process.
pub fn parent_of(pid: i32) -> Option<i32> {
    stat_of(pid).map(|s| s.ppid)
}

/// The command line of `pid`, for humans; empty when it cannot be read.
pub fn command_line(pid: i32) -> String {
    let mut bytes = Vec::new();
    if read_proc(pid, "cmdline", &mut bytes).is_ok() && !bytes.is_empty() {
        let args: Vec<String> = bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        return args.join(" ");
    }
    stat_of(pid).map(|s| format!("[{}]", s.comm)).unwrap_or_default()
}

/// `/proc/PID/stat`, parsed by procfs.
fn stat_of(pid: i32) -> Option<procfs::process::Stat> {
    use procfs::FromRead;

    let mut bytes = Vec::new();
    read_proc(pid, "stat", &mut bytes).ok()?;
    procfs::process::Stat::from_read(bytes.as_slice()).ok()
}

/// Reads `/proc/PID/NAME` into `buf` with plain reads. The scans do this thousands of
/// times, and `fs::read` (and procfs's `Process`) add a directory open, a stat and a
/// seek per file that /proc answers no faster than the read itself.
fn read_proc(pid: i32, name: &str, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;

    buf.clear();
    let mut file = std::fs::File::open(format!("/proc/{pid}/{name}"))?;
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// The environment of `pid` into `buf`. When its first thread has ended, /proc answers
/// "no such process" for it although the others run on (see `has_ended`): theirs is
/// read instead. Other failures (another user's process) are final.
fn environ_of(pid: i32, buf: &mut Vec<u8>) -> bool {
    match read_proc(pid, "environ", buf) {
        Ok(()) => return true,
        Err(err) if err.raw_os_error() == Some(Errno::ESRCH as i32) => {}
        Err(_) => return false,
    }
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .filter(|tid| *tid != pid)
        .any(|tid| read_proc(pid, &format!("task/{tid}/environ"), buf).is_ok() && !buf.is_empty())
}

/// The numeric entries of /proc: every process's PID.
fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .collect()
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
    let mut found = Vec::new();
    let mut environ = Vec::with_capacity(16 * 1024);
    for pid in all_pids() {
        if pid == me || !environ_of(pid, &mut environ) {
            continue;
        }
        let mut vars = environ.split(|b| *b == 0);
        if !vars.clone().any(|v| v == wanted.as_slice()) {
            continue;
        }
        let service = vars
            .find_map(|v| v.strip_prefix(service_prefix.as_slice()))
            .map(|s| String::from_utf8_lossy(s).into_owned());
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
fn listening_ports() -> std::collections::BTreeSet<u16> {
    let v4 = procfs::net::tcp().unwrap_or_default();
    let v6 = procfs::net::tcp6().unwrap_or_default();
    v4.into_iter()
        .chain(v6)
        .filter(|entry| entry.state == procfs::net::TcpState::Listen)
        .map(|entry| entry.local_address.port())
        .collect()
}

/// The ports among `ports` that some socket listens on, on any address, IPv4 or IPv6.
/// A port to whose IPv4 and IPv6 wildcard addresses a bind (never a listen) succeeds
/// has no listener; only the others are looked up in the socket tables. Reading those
/// tables costs milliseconds on a machine with much memory (the kernel walks its whole
/// connection hash), a bind microseconds.
pub fn busy_ports(ports: impl IntoIterator<Item = u16>) -> std::collections::BTreeSet<u16> {
    let doubtful: Vec<u16> = ports.into_iter().filter(|p| !bind_proves_free(*p)).collect();
    if doubtful.is_empty() {
        return std::collections::BTreeSet::new();
    }
    let listening = listening_ports();
    doubtful.into_iter().filter(|p| listening.contains(p)).collect()
}

/// True when binds to `port` on the IPv4 and the IPv6 wildcard address both succeed,
/// with `SO_REUSEADDR` as a listening service sets it: then nothing listens on it. A
/// failed bind (in use, privileged, no IPv6) proves nothing either way.
fn bind_proves_free(port: u16) -> bool {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrLike};
    use nix::sys::socket::{bind, setsockopt, socket, sockopt};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    let v4 = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let v6 = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    let attempts: [(AddressFamily, &dyn SockaddrLike); 2] = [(AddressFamily::Inet, &v4), (AddressFamily::Inet6, &v6)];
    attempts.into_iter().all(|(family, address)| {
        socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .is_ok_and(|fd| setsockopt(&fd, sockopt::ReuseAddr, &true).is_ok() && bind(fd.as_raw_fd(), address).is_ok())
    })
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

/// Sleeps until one of `procs` ends or `until` passes (or a signal interrupts the
/// sleep), woken by the kernel through pidfds (Linux 5.3 and later) instead of rereading
/// /proc on a timer: a stop then sees each exit the moment it happens. Returns false at
/// once when the processes cannot be watched that way; the caller polls instead.
pub fn wait_for_an_end(procs: &[ServiceProcess], until: std::time::Instant) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;

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
    let wait = until.saturating_duration_since(std::time::Instant::now());
    let millis = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
    let _ = poll(&mut pollfds, PollTimeout::from(millis));
    true
}

enum Watch {
    Fd(std::os::fd::OwnedFd),
    Ended,
    Unsupported,
}

fn watch(process: &ServiceProcess) -> Watch {
    use std::os::fd::FromRawFd;

    // SAFETY: pidfd_open(2) takes a PID and flags and returns a new descriptor or -1;
    // it touches no memory of ours.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, process.pid, 0) };
    if fd < 0 {
        return match Errno::last() {
            Errno::ESRCH => Watch::Ended,
            _ => Watch::Unsupported,
        };
    }
    let Ok(fd) = i32::try_from(fd) else {
        return Watch::Unsupported;
    };
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // The descriptor pins whichever process has the PID now: it is the one we mean only
    // if its start time still matches, checked after opening it.
    if process.is_alive() {
        Watch::Fd(fd)
    } else {
        Watch::Ended
    }
}

/// Live members of each of the process groups `pgids`, in one pass over /proc: a stop
/// asks for the groups of all its services at once.
pub fn group_members(pgids: &std::collections::BTreeSet<i32>) -> std::collections::BTreeMap<i32, Vec<ServiceProcess>> {
    let mut members: std::collections::BTreeMap<i32, Vec<ServiceProcess>> = Default::default();
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

pub fn usage(process: &ServiceProcess) -> Option<Usage> {
    let stat = stat_of(process.pid)?;
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
