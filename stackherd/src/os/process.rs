//! Process identity and the facts /proc gives about one process: start time, state,
//! group, parent, command line, resource usage.
//!
//! Everything Linux-specific (`/proc/PID/stat` field 22, the thread list) stays in this
//! layer behind a small interface.

use std::time::Duration;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::state::Record;

/// A process identified by PID *and* start time, because PIDs are reused: a PID whose
/// start time differs from the recorded one belongs to somebody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProcess {
    pub pid: i32,
    /// Clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
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

    /// The identity of our own child, even when it has already exited: until we reap
    /// it, its PID cannot be reused, and a program that forks into the background
    /// exits at once.
    pub fn of_unreaped_child(pid: i32) -> Option<ServiceProcess> {
        stat_of(pid).map(|stat| ServiceProcess {
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

    /// The session of this very process while it runs: a daemon leaves its parent's
    /// session (setsid) as it forks away.
    pub fn session(&self) -> Option<i32> {
        let stat = stat_of(self.pid)?;
        (stat.starttime == self.start_time && !has_ended(stat.pid, stat.state)).then_some(stat.session)
    }
}

/// A zombie (`Z`) or dead (`X`) entry still has a /proc directory but is not running,
/// unless threads other than its first are still there: /proc shows the state of the
/// first thread, which turns zombie as soon as it ends, while a killed process's other
/// threads may still be closing its files (its listening sockets among them), and a
/// process whose main thread exited runs on in the others.
pub(super) fn has_ended(pid: i32, state: char) -> bool {
    matches!(state, 'Z' | 'X')
        && std::fs::read_dir(format!("/proc/{pid}/task")).map_or(true, |threads| threads.count() <= 1)
}
impl ServiceProcess {
    /// The identity a record names (not checked: see `is_alive`).
    pub fn recorded(record: &Record) -> ServiceProcess {
        ServiceProcess {
            pid: record.pid,
            start_time: record.start_time,
        }
    }
}

/// The parent PID of a live process.
pub fn parent_of(pid: i32) -> Option<i32> {
    stat_of(pid).map(|s| s.ppid)
}

/// The live children of `pid`, from `/proc/PID/task/*/children` (a child belongs to
/// the thread that forked it).
pub fn children_of(pid: i32) -> Vec<ServiceProcess> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    let mut children = Vec::new();
    for tid in threads
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
    {
        if read_proc(pid, &format!("task/{tid}/children"), &mut buf).is_ok() {
            let text = String::from_utf8_lossy(&buf);
            children.extend(
                text.split_whitespace()
                    .filter_map(|c| c.parse().ok())
                    .filter_map(ServiceProcess::of),
            );
        }
    }
    children
}

/// `roots` and all their live descendants, each once.
pub fn with_descendants(roots: &[ServiceProcess]) -> Vec<ServiceProcess> {
    let mut all: Vec<ServiceProcess> = Vec::new();
    let mut next: Vec<ServiceProcess> = roots.to_vec();
    while let Some(process) = next.pop() {
        if all.contains(&process) || !process.is_alive() {
            continue;
        }
        next.extend(children_of(process.pid));
        all.push(process);
    }
    all
}

/// The command line of `pid`, for humans, with control characters escaped (another
/// process chose it, and a terminal would obey escape codes in it); empty when it
/// cannot be read.
pub fn command_line(pid: i32) -> String {
    let mut bytes = Vec::new();
    if read_proc(pid, "cmdline", &mut bytes).is_ok() && !bytes.is_empty() {
        let args: Vec<String> = bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        return printable(&args.join(" "));
    }
    stat_of(pid)
        .map(|s| printable(&format!("[{}]", s.comm)))
        .unwrap_or_default()
}

/// True when `pid` runs the same program file as this process (`/proc/PID/exe`).
pub fn runs_this_program(pid: i32) -> bool {
    match (
        std::fs::read_link(format!("/proc/{pid}/exe")),
        std::fs::read_link("/proc/self/exe"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    }
}

/// `text` with every control character escaped (`\e]52;…`), so that it prints as data.
pub fn printable(text: &str) -> String {
    crate::ui::text::escaped(text)
}

/// This process and its ancestors (the shell, make, cargo that run it). They are never
/// signalled, nor counted among a project's processes, even when they carry its cookie
/// (a service's own script that runs `cargo xtask stop`).
pub fn self_and_ancestors() -> &'static [i32] {
    static FAMILY: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    FAMILY.get_or_init(|| {
        let mut pid = std::process::id() as i32;
        let mut family = vec![pid];
        while let Some(parent) = parent_of(pid).filter(|p| *p > 1 && !family.contains(p)) {
            family.push(parent);
            pid = parent;
        }
        family
    })
}

/// `/proc/PID/stat`, parsed by procfs.
pub(super) fn stat_of(pid: i32) -> Option<procfs::process::Stat> {
    use procfs::FromRead;

    let mut bytes = Vec::new();
    read_proc(pid, "stat", &mut bytes).ok()?;
    procfs::process::Stat::from_read(bytes.as_slice()).ok()
}

/// Reads `/proc/PID/NAME` into `buf` with plain reads. The scans do this thousands of
/// times, and `fs::read` (and procfs's `Process`) add a directory open, a stat and a
/// seek per file that /proc answers no faster than the read itself.
pub(super) fn read_proc(pid: i32, name: &str, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;

    buf.clear();
    let mut file = std::fs::File::open(format!("/proc/{pid}/{name}"))?;
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// The environment of `pid` into `buf`. When its first thread has ended, /proc answers
/// "no such process" for it although the others run on (see `has_ended`): theirs is
/// read instead. Other failures (another user's process) are final.
pub(super) fn environ_of(pid: i32, buf: &mut Vec<u8>) -> bool {
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
pub(super) fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .collect()
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
    let cpu = stat.utime.saturating_add(stat.stime) as f64 / ticks;
    Some(Usage {
        uptime: Duration::from_secs_f64(uptime),
        cpu_percent: if uptime > 0.0 { 100.0 * cpu / uptime } else { 0.0 },
        rss_bytes: stat.rss.saturating_mul(procfs::page_size()),
    })
}
