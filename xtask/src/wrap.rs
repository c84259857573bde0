//! `run [SERVICE...] -- CMD`: the pre-test hook. Start what is not running, run CMD in
//! the foreground, then stop what this run started, whatever happened; exit with CMD's
//! code.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::Context;
use crate::error::{Result, exit};
use crate::process::{KillTarget, ServiceProcess};
use crate::signals::Interrupts;
use crate::start::{self, Prepare};
use crate::stop::{self, Scope};

/// The exit code of a command that could not be found, as shells use it.
const NOT_FOUND: u8 = 127;
/// The exit code of a command that could not be executed.
const NOT_EXECUTABLE: u8 = 126;

pub fn run(ctx: &Context, names: &[String], command: &[String], prepare: Prepare) -> Result<u8> {
    let wanted = ctx.select(names)?;
    let interrupts = Interrupts::install();
    let ours = {
        let lock = ctx.registry.lock("run")?;
        start::prepare(ctx, &wanted, prepare, &lock, interrupts)?;
        let ours = start::plan(ctx, &wanted);
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
            crate::ui::error(&err);
            Ok(code)
        }
    }
}

/// Runs CMD with the project's environment (its env_file under the manager's own
/// variables) and returns its exit code, 128+N for a signal. Ctrl+C and SIGTERM to
/// xtask are passed on to it.
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
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            let (code, what) = match err.kind() {
                std::io::ErrorKind::NotFound => (NOT_FOUND, "not found"),
                _ => (NOT_EXECUTABLE, "cannot be run"),
            };
            crate::ui::error(format!("`{program}` {what} ({err}); stopping the services"));
            return code;
        }
    };
    let target = ServiceProcess::of(child.id() as i32);
    let mut forwarded = 0;
    let status: Option<ExitStatus> = loop {
        match child.wait_timeout(Duration::from_millis(50)) {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        // In a terminal CMD got Ctrl+C itself; from a CI runner's SIGTERM it did not.
        if interrupts.count() > forwarded {
            forwarded = interrupts.count();
            if let Some(target) = target {
                let _ = crate::process::signal(KillTarget::Process(target), nix::sys::signal::Signal::SIGTERM);
            }
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
