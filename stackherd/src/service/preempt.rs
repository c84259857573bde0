//! Stop wins over start: `stop` and `cleanup` never wait out a start in progress, in
//! any of its phases (choosing ports, cleaning up, building, starting). They ask the
//! start that holds the lock to abandon (SIGTERM, which every start treats as
//! Ctrl+C: it rolls back what it began and lets go of the lock); `stop --force` kills
//! it when it has not let go within a second. The holder is signalled only when it is
//! proven an xtask process of this project: the PID and start time it wrote into the
//! lock file match, and it runs this very program or carries the project's monitor
//! cookie.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::Result;
use crate::os::process::runs_this_program;
use crate::os::signal::{KillTarget, signal, signal_and_continue};
use crate::os::{ServiceProcess, cookie, scan};
use crate::poll;
use crate::poll::Backoff;
use crate::service::Context;
use crate::service::auto_ports::CHOOSING_PORTS;
use crate::service::processes::KILL_WAIT;
use crate::state::{Lock, LockHolder};

/// How long an asked start gets to let go of the lock before `--force` kills it.
const ABANDON_WAIT: Duration = Duration::from_secs(1);
/// The longest a plain stop waits for an asked start's rollback, whatever the stop
/// timeouts say.
const MAX_PATIENCE: Duration = Duration::from_secs(600);

/// The lock for `command` (a stop: see `Registry::lock_to_stop`), taken over from a start
/// in progress if one holds it.
pub fn lock_over_a_start(ctx: &Context, command: &str, force: bool) -> Result<Lock> {
    if let Some(lock) = ctx.registry.try_lock_to_stop(command)? {
        return Ok(lock);
    }
    let Some((holder, process)) = ctx.registry.lock_holder().and_then(|h| starting(ctx, h)) else {
        return ctx.registry.lock_to_stop(command);
    };
    ctx.ui.info(format!(
        "`xtask {}` (pid {}) is starting services: asking it to abandon and roll back",
        holder.command, holder.pid
    ));
    // Continued as well: a start stopped by Ctrl+Z in its terminal would otherwise hold
    // the lock, deaf to the request, until SIGKILL.
    let _ = signal_and_continue(KillTarget::Process(process), Signal::SIGTERM);
    // A rollback stops gracefully what the start began: give it the longest grace
    // period there is, unless forced.
    let patience = if force {
        ABANDON_WAIT
    } else {
        let longest = ctx.config.services.iter().map(|s| s.stop_timeout).max();
        longest
            .unwrap_or(ctx.config.project.stop_timeout)
            .saturating_add(KILL_WAIT)
            .min(MAX_PATIENCE)
    };
    if let Some(lock) = wait_for_lock(ctx, command, patience)? {
        return Ok(lock);
    }
    if force && process.is_alive() {
        ctx.ui.warn(format!(
            "pid {} did not let go within {}s: killing it",
            holder.pid,
            ABANDON_WAIT.as_secs()
        ));
        let _ = signal(KillTarget::Process(process), Signal::SIGKILL);
        if let Some(lock) = wait_for_lock(ctx, command, KILL_WAIT)? {
            return Ok(lock);
        }
    }
    ctx.registry.lock_to_stop(command)
}

/// The holder, when it is a start of this project proven by its identity.
fn starting(ctx: &Context, holder: LockHolder) -> Option<(LockHolder, ServiceProcess)> {
    // A start in any phase: choosing ports (`run (choosing ports)`), cleaning up and
    // building, starting. Never one that is stopping (`run (stopping)`).
    let command = holder
        .command
        .strip_suffix(CHOOSING_PORTS)
        .unwrap_or(&holder.command)
        .trim_end();
    let is_start = command.starts_with("start-bg") || ["start", "run", "restart"].contains(&command);
    let process = ServiceProcess {
        pid: holder.pid,
        start_time: holder.start_time?,
    };
    let proven = process.is_alive()
        && (runs_this_program(process.pid)
            || scan::carries_cookie(process.pid, &ctx.config.root, cookie::MONITOR_SERVICE));
    (is_start && proven).then_some((holder, process))
}

/// Polls for the lock until `patience` runs out.
fn wait_for_lock(ctx: &Context, command: &str, patience: Duration) -> Result<Option<Lock>> {
    let deadline = poll::after(patience);
    let mut backoff = Backoff::fast();
    loop {
        if let Some(lock) = ctx.registry.try_lock_to_stop(command)? {
            return Ok(Some(lock));
        }
        if !backoff.pause(deadline) {
            return Ok(None);
        }
    }
}
