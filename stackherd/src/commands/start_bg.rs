//! `start-bg [SERVICE...]`: start in the background and return once everything is
//! healthy.
//!
//! `start-bg` does not start services itself: it launches a monitor process (the
//! hidden `__monitor` subcommand, in a session of its own, with the project cookie)
//! that starts them, so that the monitor is their parent and sees their exit statuses.
//! The monitor writes its start-up progress to a pipe that `start-bg` relays to the
//! terminal and ends it with a line carrying the exit code. Killing the monitor (even
//! with SIGKILL) leaves the services running; the next `start-bg` starts a new monitor
//! that adopts them.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::monitor::{DONE, STAYS, SUBCOMMAND};
use crate::error::{Error, MonitorTrouble, Result, exit};
use crate::orchestrate::prepare;
use crate::orchestrate::prepare::Prepare;
use crate::os::interrupts::Interrupts;
use crate::os::signal::{KillTarget, signal};
use crate::os::{ServiceProcess, cookie, spawn};
use crate::poll::{self, Backoff};
use crate::service::{Context, monitor};
use crate::start;
use crate::state::Lock;

/// `start-bg [SERVICE...]`: with a monitor unless `no_monitor`, or when a foreground
/// `start` already supervises the project (it adopts what is started here).
pub fn run(ctx: &Context, names: &[String], no_monitor: bool, switches: Prepare) -> Result<u8> {
    let wanted = ctx.select_active(names)?;
    let interrupts = Interrupts::install();
    let lock = ctx.registry.lock("start-bg")?;
    let supervisor = monitor::live_monitor(ctx);
    let foreground = supervisor.as_ref().is_some_and(|m| m.foreground);
    // With everything up and supervised there is nothing to start: replacing the
    // monitor would only lose the exit statuses of its children.
    let all_up = supervisor.is_some() && prepare::all_up(ctx, &wanted);
    if no_monitor || foreground || all_up {
        prepare::prepare(ctx, &wanted, switches, &lock, interrupts)?;
        return start::run(ctx, &wanted, &lock, interrupts).map(|()| exit::OK);
    }
    // The monitor cleans up and builds itself, its file watch on: an edit made during
    // the build then rebuilds once the stack is up.
    spawn_and_relay(ctx, &wanted, lock, switches)
}

/// Launches the monitor and relays its start-up output (errors included); Ctrl+C is
/// passed on to it, so that it stops what it started. Returns the start's exit code.
fn spawn_and_relay(ctx: &Context, wanted: &[String], lock: Lock, switches: Prepare) -> Result<u8> {
    let interrupts = Interrupts::install();
    // A lock taken to write always has its file; only a stop's may lack one.
    let lock_fd = lock
        .raw_fd()
        .ok_or(Error::Internal("the start's lock has no lock file"))?;
    let mut command = ctx
        .xtask_command()
        .map_err(|err| Error::io("cannot find the xtask binary", err))?;
    let (reader, writer) = std::io::pipe().map_err(|err| Error::io("cannot create a pipe", err))?;
    let writer_err = writer
        .try_clone()
        .map_err(|err| Error::io("cannot create a pipe", err))?;
    command
        .args(ctx.ui.quiet.then_some("--quiet"))
        .arg(SUBCOMMAND)
        .arg("--lock-fd")
        .arg(lock_fd.to_string())
        .args((!switches.build).then_some("--no-build"))
        .args((!switches.cleanup).then_some("--no-cleanup"))
        .arg(format!("--began-ms={}", began_ms()))
        .args(wanted)
        .envs(cookie::vars(&ctx.config.root, cookie::MONITOR_SERVICE))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err);
    // The monitor must not share our terminal's session, and it inherits the lock's
    // descriptor so that the lock is never free between us and it: another command
    // could slip in and kill a monitor that is not recorded yet.
    let mut child = spawn::detached(&mut command, lock_fd).map_err(|err| Error::io("cannot start the monitor", err))?;
    drop(command);
    lock.hand_over();
    let monitor = ServiceProcess::of(child.id() as i32);

    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(std::result::Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut forwarded = false;
    let (code, stays) = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => match line.strip_prefix(DONE) {
                Some(done) => {
                    let (code, stays) = match done.strip_suffix(STAYS) {
                        Some(code) => (code, true),
                        None => (done, false),
                    };
                    break (code.trim().parse::<u8>().unwrap_or(exit::FAILURE), stays);
                }
                None => ctx.ui.result(line),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    _ => "it closed its output".to_string(),
                };
                return Err(Error::Monitor(MonitorTrouble::EndedEarly {
                    status,
                    log: ctx.registry.monitor_log_path(),
                }));
            }
        }
        if interrupts.any() && !forwarded {
            forwarded = true;
            if let Some(monitor) = monitor {
                let _ = signal(KillTarget::Process(monitor), Signal::SIGINT);
            }
        }
    };
    if !stays {
        // A monitor whose start failed exits right after saying so: wait for it, so
        // that nothing of the project runs once start-bg has returned.
        let deadline = poll::after(Duration::from_secs(5));
        poll::wait_until(deadline, Backoff::fast(), || child.try_wait().ok().flatten());
    }
    // After a successful start the monitor lives on; it is not ours to wait for.
    drop(child);
    Ok(code)
}

/// When this command began, for the monitor, whose report of the start counts from it.
fn began_ms() -> u128 {
    poll::began()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}
