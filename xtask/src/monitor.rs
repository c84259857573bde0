//! The detached monitor of `start-bg`, the foreground `start`, and `restart`.
//!
//! `start-bg` does not start services itself: it launches a monitor process (a hidden
//! subcommand, in a session of its own, with the project cookie) that starts them, so
//! that the monitor is their parent and sees their exit statuses. The monitor writes
//! its start-up progress to a pipe that `start-bg` relays to the terminal, ends that
//! with a line carrying the exit code, points its output at `logs/monitor.log`, and
//! supervises. Killing the monitor (even with SIGKILL) leaves the services running;
//! the next `start-bg` starts a new monitor that adopts them.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Context;
use crate::error::{Error, Result, exit};
use crate::logs::Follower;
use crate::process::{COOKIE_PROJECT, COOKIE_SERVICE, MONITOR_SERVICE};
use crate::registry::Lock;
use crate::signals::Interrupts;
use crate::start::{self, Prepare};
use crate::stop::{self, Scope};
use crate::supervise::{self, Mode, Supervisor};
use crate::ui;

/// The hidden subcommand that runs the monitor.
pub const SUBCOMMAND: &str = "__monitor";
/// Starts the monitor's last line on the pipe; the exit code of the start follows.
const DONE: &str = "\u{1e}xtask-start-exit=";

/// `start-bg [SERVICE...]`: with a monitor unless `no_monitor`, or when a foreground
/// `start` already supervises the project (it adopts what is started here).
pub fn start_bg(ctx: &Context, names: &[String], no_monitor: bool, prepare: Prepare) -> Result<u8> {
    let wanted = ctx.select(names)?;
    let interrupts = Interrupts::install();
    let lock = ctx.registry.lock("start-bg")?;
    start::prepare(ctx, &wanted, prepare, &lock, interrupts)?;
    let supervisor = supervise::live_monitor(ctx);
    let foreground = supervisor.as_ref().is_some_and(|m| m.foreground);
    // With everything up and supervised there is nothing to start: replacing the
    // monitor would only lose the exit statuses of its children.
    let all_up = supervisor.is_some() && start::all_up(ctx, &wanted);
    if no_monitor || foreground || all_up {
        return start::run(ctx, &wanted, &lock, interrupts).map(|()| exit::OK);
    }
    spawn_and_relay(ctx, &wanted, lock)
}

/// Launches the monitor and relays its start-up output (errors included); Ctrl+C is
/// passed on to it, so that it stops what it started. Returns the start's exit code.
fn spawn_and_relay(ctx: &Context, wanted: &[String], lock: Lock) -> Result<u8> {
    let interrupts = Interrupts::install();
    let exe = std::env::current_exe().map_err(|err| Error::failure(format!("cannot find the xtask binary: {err}")))?;
    let (reader, writer) = std::io::pipe().map_err(|err| Error::failure(format!("cannot create a pipe: {err}")))?;
    let writer_err = writer
        .try_clone()
        .map_err(|err| Error::failure(format!("cannot create a pipe: {err}")))?;
    let mut command = Command::new(exe);
    command
        .arg("--config")
        .arg(&ctx.config.path)
        .args(ctx.ui.quiet.then_some("--quiet"))
        .arg(SUBCOMMAND)
        .arg("--lock-fd")
        .arg(lock.raw_fd().to_string())
        .args(wanted)
        .current_dir(&ctx.config.root)
        .env(COOKIE_PROJECT, &ctx.config.root)
        .env(COOKIE_SERVICE, MONITOR_SERVICE)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err);
    let lock_fd = lock.raw_fd();
    // SAFETY: runs in the forked child before exec and only calls setsid(2) and
    // fcntl(2), which are async-signal-safe. The monitor must not share our terminal's
    // session, and it inherits the lock's descriptor so that the lock is never free
    // between us and it: another command could slip in and kill a monitor that is not
    // recorded yet.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::fcntl(lock_fd, nix::libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|err| Error::failure(format!("cannot start the monitor: {err}")))?;
    drop(command);
    lock.hand_over();
    let monitor = crate::process::ServiceProcess::of(child.id() as i32);

    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(std::result::Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut forwarded = false;
    let code = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => match line.strip_prefix(DONE) {
                Some(code) => break code.trim().parse::<u8>().unwrap_or(exit::FAILURE),
                None => ctx.ui.result(line),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    _ => "it closed its output".to_string(),
                };
                return Err(Error::failure(format!(
                    "the monitor ended before the start was done ({status}); see {}",
                    ctx.registry.log_path("monitor").display()
                )));
            }
        }
        if interrupts.any() && !forwarded {
            forwarded = true;
            if let Some(monitor) = monitor {
                let _ = crate::process::signal(crate::process::KillTarget::Process(monitor), Signal::SIGINT);
            }
        }
    };
    if code != exit::OK {
        // A monitor whose start failed exits right after saying so: wait for it, so
        // that nothing of the project runs once start-bg has returned.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        crate::poll::wait_until(deadline, crate::poll::Backoff::fast(), || {
            child.try_wait().ok().flatten()
        });
    }
    // After a successful start the monitor lives on; it is not ours to wait for.
    drop(child);
    Ok(code)
}

/// The monitor process: takes over from an earlier monitor, starts `wanted`, reports
/// on the pipe, then supervises until nothing is left or it is signalled.
pub fn run(ctx: &Context, wanted: &[String], lock_fd: Option<i32>) -> Result<u8> {
    let interrupts = Interrupts::install();
    supervise::become_subreaper();
    let started = take_over_and_start(ctx, wanted, interrupts, Handover::Monitor { lock_fd });
    let code = match &started {
        Ok(()) => exit::OK,
        Err(err) => {
            ui::error(err);
            err.code
        }
    };
    ctx.ui.protocol_line(&format!("{DONE}{code}"));
    redirect_output(ctx);
    if started.is_err() {
        forget_self(ctx);
        return Ok(code);
    }
    ctx.ui.result(format!(
        "{} monitor: supervising (pid {})",
        ui::timestamp(),
        std::process::id()
    ));
    crate::fault::pause(ctx, crate::fault::BEFORE_SUPERVISING);
    let scope = ctx.config.services.iter().map(|s| s.name.clone()).collect();
    let result = Supervisor::new(ctx, Mode::Monitor, scope, interrupts).run();
    forget_self(ctx);
    result
}

/// `start [SERVICE...]`: start in the foreground, then supervise with the logs in one
/// stream until Ctrl+C, which stops what it supervises.
pub fn start_foreground(ctx: &Context, names: &[String], prepare: Prepare) -> Result<u8> {
    let wanted = ctx.select(names)?;
    let interrupts = Interrupts::install();
    supervise::become_subreaper();
    let scope = start::selection(ctx, &wanted);
    let follower = Follower::new(ctx, &scope.iter().cloned().collect::<Vec<_>>());
    take_over_and_start(ctx, &wanted, interrupts, Handover::Foreground(prepare))?;
    ctx.ui.info("supervising; Ctrl+C stops everything");
    let result = Supervisor::new(ctx, Mode::Foreground(follower), scope, interrupts).run();
    forget_self(ctx);
    result
}

/// How a supervisor begins: a foreground `start` cleans up and builds itself; the
/// monitor's client did that already, and hands over the lock it holds.
enum Handover {
    Foreground(Prepare),
    Monitor { lock_fd: Option<i32> },
}

/// Under the lock: end an earlier detached monitor, record this process as the
/// supervisor, and start.
fn take_over_and_start(ctx: &Context, wanted: &[String], interrupts: Interrupts, handover: Handover) -> Result<()> {
    let (foreground, lock) = match handover {
        Handover::Foreground(_) => (true, ctx.registry.lock("start")?),
        Handover::Monitor { lock_fd: Some(fd) } => (false, ctx.registry.adopt_lock(fd, "start-bg (monitor)")?),
        Handover::Monitor { lock_fd: None } => (false, ctx.registry.lock("start-bg (monitor)")?),
    };
    if let Some(previous) = supervise::live_monitor(ctx)
        && previous.foreground
        && previous.pid != std::process::id() as i32
    {
        return Err(Error::failure(format!(
            "a foreground `cargo xtask start` (pid {}) supervises this project; start services with `cargo xtask start-bg`, which it adopts, or stop it first",
            previous.pid
        )));
    }
    if let Some(pid) = supervise::stop_monitor(ctx, &lock) {
        ctx.ui.info(format!("took over from the previous monitor (pid {pid})"));
    }
    if let Handover::Foreground(prepare) = handover {
        start::prepare(ctx, wanted, prepare, &lock, interrupts)?;
    }
    if let Some(record) = supervise::monitor_record(foreground) {
        ctx.registry.write_monitor(&record, &lock)?;
    }
    let result = start::run(ctx, wanted, &lock, interrupts);
    if result.is_err() {
        ctx.registry.remove_monitor(std::process::id() as i32, &lock);
    }
    result
}

/// `restart [SERVICE...]`: stop those services and their dependents, then start them
/// again as `start-bg` does; the others keep running.
pub fn restart(ctx: &Context, names: &[String], no_monitor: bool, prepare: Prepare) -> Result<u8> {
    let selected = ctx.select(names)?;
    let affected = ctx.config.graph().with_dependents(&selected);
    {
        let lock = ctx.registry.lock("restart")?;
        stop::stop_services(ctx, &Scope::Services(affected.clone()), stop::Options::default(), &lock)?;
    }
    start_bg(ctx, &affected, no_monitor, prepare)
}

/// After start-up the pipe to `start-bg` is closed: from now on the monitor writes its
/// events to `logs/monitor.log`.
fn redirect_output(ctx: &Context) {
    let Ok(log) = ctx.registry.open_log("monitor") else {
        return;
    };
    let _ = nix::unistd::dup2_stdout(&log);
    let _ = nix::unistd::dup2_stderr(&log);
}

/// Removes this process's supervisor record, unless a `stop` does it meanwhile (it
/// removes the record before it signals us, while holding the lock we would wait for).
fn forget_self(ctx: &Context) {
    let me = std::process::id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    crate::poll::wait_until(deadline, crate::poll::Backoff::fast(), || {
        if ctx.registry.monitor().is_none_or(|m| m.pid != me) {
            return Some(());
        }
        let lock = ctx.registry.try_lock("monitor (exiting)").ok().flatten()?;
        ctx.registry.remove_monitor(me, &lock);
        Some(())
    });
}
