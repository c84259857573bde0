//! How a supervisor begins: under the lock, end an earlier detached monitor, record
//! this process as the supervisor, and start; and how it leaves its record behind.

use std::time::Duration;

use crate::error::{Error, MonitorTrouble, Result};
use crate::orchestrate::prepare;
use crate::orchestrate::prepare::Prepare;
use crate::os::interrupts::Interrupts;
use crate::poll::{self, Backoff};
use crate::service::{Context, monitor, status};
use crate::start;

/// How a supervisor begins: a foreground `start` takes the lock; the monitor is handed
/// the lock its client holds. Both clean up and build themselves, once their file
/// watch is on, so that an edit made during the build is not lost.
pub enum Handover {
    Foreground(Prepare),
    Monitor { lock_fd: Option<i32>, prepare: Prepare },
}

/// Under the lock: end an earlier detached monitor, record this process as the
/// supervisor, and start.
pub fn take_over_and_start(ctx: &Context, wanted: &[String], interrupts: Interrupts, handover: Handover) -> Result<()> {
    let (foreground, lock, switches) = match handover {
        Handover::Foreground(switches) => (true, ctx.registry.lock("start")?, switches),
        Handover::Monitor {
            lock_fd: Some(fd),
            prepare,
        } => (false, ctx.registry.adopt_lock(fd, "start-bg (monitor)")?, prepare),
        Handover::Monitor { lock_fd: None, prepare } => (false, ctx.registry.lock("start-bg (monitor)")?, prepare),
    };
    if let Some(previous) = monitor::live_monitor(ctx)
        && previous.foreground
        && previous.pid != std::process::id() as i32
    {
        return Err(Error::Monitor(MonitorTrouble::ForegroundSupervises {
            pid: previous.pid,
        }));
    }
    // Before the take-over: a build that fails leaves the earlier monitor in charge
    // (it cannot act meanwhile: the lock is ours).
    prepare::prepare(ctx, wanted, switches, &lock, interrupts)?;
    if let Some(pid) = monitor::stop_monitor(ctx, &lock) {
        ctx.ui.info(format!("took over from the previous monitor (pid {pid})"));
    }
    if let Some(record) = monitor::monitor_record(foreground) {
        ctx.registry.write_monitor(&record, &lock)?;
    }
    let result = start::run(ctx, wanted, &lock, interrupts);
    // A failed start of a monitor that took over still leaves it the services that ran
    // before (it decides); a foreground start that failed ends.
    if result.is_err() && foreground {
        ctx.registry.remove_monitor(std::process::id() as i32, &lock);
    }
    result
}

/// Whether services of the project run, or wait for a restart, with nobody but this
/// process to supervise them: after a failed start, a monitor that took over from
/// another stays for them rather than leave them unsupervised (one that failed before
/// it took over leaves them to the earlier monitor).
pub fn left_to_supervise(ctx: &Context) -> bool {
    let me = std::process::id() as i32;
    if monitor::live_monitor(ctx).is_some_and(|m| m.pid != me) {
        return false;
    }
    ctx.registry.entries().iter().any(|entry| {
        let status = status::status(Some(entry), true);
        status.is_alive() || status == status::Status::Restarting
    })
}

/// Removes this process's supervisor record, unless a `stop` does it meanwhile (it
/// removes the record before it signals us, while holding the lock we would wait for).
/// Where the state directory cannot be written there is nothing to wait for: the record
/// stays, naming a process that is gone, and the stop that signalled us is not kept
/// waiting for our exit.
pub fn forget_self(ctx: &Context) {
    let me = std::process::id() as i32;
    let deadline = poll::after(Duration::from_secs(5));
    poll::wait_until(deadline, Backoff::fast(), || {
        if ctx.registry.monitor().is_none_or(|m| m.pid != me) {
            return Some(());
        }
        match ctx.registry.try_lock("monitor (exiting)") {
            Ok(Some(lock)) => ctx.registry.remove_monitor(me, &lock),
            Ok(None) => return None,
            Err(_) => {}
        }
        Some(())
    });
}
