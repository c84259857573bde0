//! The supervisor's record (`monitor.json`): who supervises the project, whether it
//! lives, and ending a detached monitor.

use std::time::Duration;

use crate::os::process::command_line;
use crate::os::subreaper;
use crate::os::{ProcessInfo, ServiceProcess, cookie, scan};
use crate::service::Context;
use crate::service::processes::terminate;
use crate::state::{Lock, MonitorRecord, now_ms};
use crate::ui;

/// Orphaned descendants are re-parented to the nearest subreaper ancestor instead of
/// init, so that the supervisor reaps them. Failure only costs that: it is reported.
pub fn become_subreaper() {
    if let Err(err) = subreaper::become_subreaper() {
        ui::error(format!(
            "cannot become a child subreaper ({err}); orphaned grandchildren will not be reaped here"
        ));
    }
}

/// The record a supervisor leaves so that `status` and `stop` can find it.
pub fn monitor_record(foreground: bool) -> Option<MonitorRecord> {
    let me = ServiceProcess::of(std::process::id() as i32)?;
    Some(MonitorRecord {
        pid: me.pid,
        start_time: me.start_time,
        foreground,
        started_at_ms: now_ms(),
    })
}

/// Ends a detached monitor (never a foreground `start`, which is somebody's terminal):
/// SIGTERM, and SIGKILL if it lingers. The caller holds the lock, so the monitor is
/// not in the middle of anything.
pub fn stop_monitor(ctx: &Context, lock: &Lock) -> Option<i32> {
    let record = ctx.registry.monitor()?;
    let process = ServiceProcess {
        pid: record.pid,
        start_time: record.start_time,
    };
    if record.foreground || process.pid == std::process::id() as i32 {
        return None;
    }
    ctx.registry.remove_monitor(record.pid, lock);
    // monitor.json is only a file: the process it names is signalled only when it is
    // this project's monitor, proven by its cookie as well as its PID and start time.
    if !process.is_alive() || !scan::carries_cookie(process.pid, &ctx.config.root, cookie::MONITOR_SERVICE) {
        return None;
    }
    let holder = ProcessInfo {
        process,
        pgid: record.pid,
        service: Some(cookie::MONITOR_SERVICE.to_string()),
        command: command_line(record.pid),
    };
    let _ = terminate(&[holder], Duration::from_secs(2));
    Some(record.pid)
}

/// The live supervisor, if any. A detached monitor must also carry the project's
/// monitor cookie; a foreground `start` (somebody's terminal, never signalled) is known
/// by its PID and start time.
pub fn live_monitor(ctx: &Context) -> Option<MonitorRecord> {
    ctx.registry.monitor().filter(|m| {
        let alive = ServiceProcess {
            pid: m.pid,
            start_time: m.start_time,
        }
        .is_alive();
        alive && (m.foreground || scan::carries_cookie(m.pid, &ctx.config.root, cookie::MONITOR_SERVICE))
    })
}
