//! `run [SERVICE...] -- CMD`: the pre-test hook. Start what is not running, run CMD in
//! the foreground, then stop what this run started, whatever happened; exit with CMD's
//! code.

use std::io::IsTerminal;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Result, exit};
use crate::lifecycle::prepare::{self, Prepare};
use crate::lifecycle::stop::{self, Scope};
use crate::lifecycle::{Context, start};
use crate::os::child::{Child, Grouping};
use crate::os::interrupts::Interrupts;
use crate::ui;

/// The exit code of a command that could not be found, as shells use it.
const NOT_FOUND: u8 = 127;
/// How often the wait for CMD looks for interrupts to pass on.
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// The exit code of a command that could not be executed.
const NOT_EXECUTABLE: u8 = 126;

pub fn run(ctx: &Context, names: &[String], command: &[String], switches: Prepare) -> Result<u8> {
    let wanted = ctx.select(names)?;
    let interrupts = Interrupts::install();
    let ours = {
        let lock = ctx.registry.lock("run")?;
        prepare::prepare(ctx, &wanted, switches, &lock, interrupts)?;
        let ours = prepare::plan(ctx, &wanted);
        start::run(ctx, &wanted, &lock, interrupts)?;
        ours
    };
    let code = run_command(ctx, command, interrupts);
    let teardown = if ours.is_empty() {
        ctx.ui.info("the services were running before; they keep running");
        Ok(())
    } else {
        ctx.registry
            .lock("run (stopping)")
            .and_then(|lock| stop::stop_services(ctx, &Scope::Services(ours), stop::Options::default(), &lock))
    };
    match (code, teardown) {
        (code, Ok(())) => Ok(code),
        (exit::OK, Err(err)) => Err(err),
        (code, Err(err)) => {
            ui::error(&err);
            Ok(code)
        }
    }
}

/// Runs CMD with the project's environment (its env_file under the manager's own
/// variables) and returns its exit code, 128+N for a signal. Outside a terminal CMD
/// leads a process group of its own, and Ctrl+C or SIGTERM to xtask are passed on to
/// that group; in a terminal it stays in the terminal's foreground group, as a shell
/// runs a foreground job, so that it gets Ctrl+C itself and may read the terminal.
fn run_command(ctx: &Context, command: &[String], interrupts: Interrupts) -> u8 {
    let Some((program, args)) = command.split_first() else {
        return exit::USAGE;
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(std::env::current_dir().unwrap_or_else(|_| ctx.config.root.clone()));
    for (key, value) in &ctx.config.project.env {
        if std::env::var_os(key).is_none() {
            cmd.env(key, value);
        }
    }
    let grouping = if std::io::stdin().is_terminal() {
        Grouping::Terminal
    } else {
        Grouping::Own
    };
    let mut child = match Child::spawn_in(cmd, grouping) {
        Ok(child) => child,
        Err(err) => {
            let (code, what) = match err.kind() {
                std::io::ErrorKind::NotFound => (NOT_FOUND, "not found"),
                _ => (NOT_EXECUTABLE, "cannot be run"),
            };
            ui::error(format!("`{program}` {what} ({err}); stopping the services"));
            return code;
        }
    };
    let mut forwarded = 0;
    let status: Option<ExitStatus> = loop {
        match child.wait_for(WAIT_SLICE) {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        // In a terminal CMD got Ctrl+C itself; from a CI runner's SIGTERM it did not.
        if interrupts.count() > forwarded {
            forwarded = interrupts.count();
            child.signal(Signal::SIGTERM);
        }
    };
    exit_code(status)
}
fn exit_code(status: Option<ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else { return exit::FAILURE };
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILURE),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(exit::FAILURE),
        _ => exit::FAILURE,
    }
}
