//! How a supervisor begins: under the lock, end an earlier detached monitor, record
//! this process as the supervisor, and start; and how it leaves its record behind.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::lifecycle::prepare::{self, Prepare};
use crate::lifecycle::{Context, monitor, start, state};
use crate::os::interrupts::Interrupts;
use crate::poll::{self, Backoff};

/// How a supervisor begins: a foreground `start` cleans up and builds itself; the
/// monitor's client did that already, and hands over the lock it holds.
pub enum Handover {
    Foreground(Prepare),
    Monitor { lock_fd: Option<i32> },
}

/// Under the lock: end an earlier detached monitor, record this process as the
/// supervisor, and start.
pub fn take_over_and_start(ctx: &Context, wanted: &[String], interrupts: Interrupts, handover: Handover) -> Result<()> {
    let (foreground, lock) = match handover {
        Handover::Foreground(_) => (true, ctx.registry.lock("start")?),
        Handover::Monitor { lock_fd: Some(fd) } => (false, ctx.registry.adopt_lock(fd, "start-bg (monitor)")?),
        Handover::Monitor { lock_fd: None } => (false, ctx.registry.lock("start-bg (monitor)")?),
    };
    if let Some(previous) = monitor::live_monitor(ctx)
        && previous.foreground
        && previous.pid != std::process::id() as i32
    {
        return Err(Error::Monitor(format!(
            "a foreground `cargo xtask start` (pid {}) supervises this project; start services with `cargo xtask start-bg`, which it adopts, or stop it first",
            previous.pid
        )));
    }
    if let Some(pid) = monitor::stop_monitor(ctx, &lock) {
        ctx.ui.info(format!("took over from the previous monitor (pid {pid})"));
    }
    if let Handover::Foreground(switches) = handover {
        prepare::prepare(ctx, wanted, switches, &lock, interrupts)?;
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
/// another stays for them rather than leave them unsupervised.
pub fn left_to_supervise(ctx: &Context) -> bool {
    ctx.registry.entries().iter().any(|entry| {
        let status = state::status(Some(entry), true);
        status.is_alive() || status == state::Status::Restarting
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
