//! `run [SERVICE...] -- CMD`: the pre-test hook. Start what is not running, run CMD in
//! the foreground, then stop what this run started, whatever happened; exit with CMD's
//! code. A service that fails for good while CMD runs ends CMD and the run with exit 1
//! (unless `--no-abort`): a test suite must not go green over a dead stack.

use std::io::IsTerminal;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Result, exit};
use crate::orchestrate::prepare;
use crate::orchestrate::prepare::Prepare;
use crate::os::child::{Child, Grouping};
use crate::os::interrupts::Interrupts;
use crate::os::subreaper;
use crate::service::status;
use crate::service::status::Status;
use crate::service::{Context, monitor};
use crate::start;
use crate::state::{Entry, logs};
use crate::stop;
use crate::stop::Scope;
use crate::ui;

/// The exit code of a command that could not be found, as shells use it.
const NOT_FOUND: u8 = 127;
/// How often the wait for CMD looks for interrupts to pass on.
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// The exit code of a command that could not be executed.
const NOT_EXECUTABLE: u8 = 126;
/// How long CMD has to end after SIGTERM when a service failed, before SIGKILL.
const COMMAND_GRACE: Duration = Duration::from_secs(5);
/// The log lines shown of a service that failed while CMD ran.
const FAILURE_LOG_LINES: usize = 10;

pub fn run(ctx: &Context, names: &[String], command: &[String], switches: Prepare, abort: bool) -> Result<u8> {
    let wanted = ctx.select_active(names)?;
    let interrupts = Interrupts::install();
    let ours = {
        let lock = ctx.registry.lock("run")?;
        prepare::prepare(ctx, &wanted, switches, &lock, interrupts)?;
        let ours = prepare::plan(ctx, &wanted);
        start::run(ctx, &wanted, &lock, interrupts)?;
        ours
    };
    let code = run_command(ctx, command, interrupts, &wanted, abort);
    let teardown = if ours.is_empty() {
        ctx.ui.info("the services were running before; they keep running");
        Ok(())
    } else {
        ctx.registry.lock("run (stopping)").and_then(|lock| {
            // This process started them: what they left re-parented to it is theirs.
            let options = stop::Options {
                adopted_are_ours: true,
                ..stop::Options::default()
            };
            stop::stop_services(ctx, &Scope::Services(ours), options, &lock)
        })
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
fn run_command(ctx: &Context, command: &[String], interrupts: Interrupts, watched: &[String], abort: bool) -> u8 {
    let Some((program, args)) = command.split_first() else {
        return exit::USAGE;
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(std::env::current_dir().unwrap_or_else(|_| ctx.config.root.clone()));
    // Where each service listens, ports chosen at start (`auto`) included.
    cmd.envs(crate::service::auto_ports::port_variables(&ctx.config, &ctx.registry));
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
    let mut reported: Vec<String> = Vec::new();
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
        if let Some(failed) = failed_service(ctx, watched, &reported) {
            report_failure(ctx, &failed, command, abort);
            if abort {
                end_command(&mut child);
                return exit::FAILURE;
            }
            // `--no-abort`: said once, and CMD goes on.
            reported.push(failed);
        }
    };
    exit_code(status)
}

/// The first of `services` that has failed for good: it ended and nothing will start
/// it again (its policy does not restart it, its supervisor gave up, or no supervisor
/// runs to restart it).
fn failed_service(ctx: &Context, services: &[String], reported: &[String]) -> Option<String> {
    let supervised = monitor::live_monitor(ctx).is_some();
    services.iter().filter(|s| !reported.contains(s)).find_map(|service| {
        let entry = ctx.registry.entry(service);
        matches!(
            status::status(entry.as_ref(), supervised),
            Status::Failed | Status::Exited
        )
        .then(|| service.clone())
    })
}

/// Names the failed service, how it ended, and the end of its log. Without a monitor
/// this `run` started the service and is its parent: how it ended is read from its
/// exit status, which nobody else reaps.
fn report_failure(ctx: &Context, service: &str, command: &[String], abort: bool) {
    let ended = match ctx.registry.entry(service) {
        Some(Entry::Record(record)) => record
            .last_exit
            .or_else(|| subreaper::reap_child(record.pid).map(|exit| exit.to_string()))
            .unwrap_or_else(|| "its process is gone".to_string()),
        _ => "its record is gone".to_string(),
    };
    let what = format!("service `{service}` failed while `{}` ran ({ended})", command.join(" "));
    if abort {
        ui::error(format!(
            "{what}; stopping it and the services (`run --no-abort` would let it finish)"
        ));
    } else {
        ctx.ui.warn(format!("{what}; letting it finish (`--no-abort`)"));
    }
    ctx.ui
        .quote(&logs::tail_of_run(&ctx.registry.log_path(service), FAILURE_LOG_LINES));
}

/// SIGTERM to CMD (its group), then SIGKILL when it has not ended after the grace.
fn end_command(child: &mut Child) {
    child.signal(Signal::SIGTERM);
    if !matches!(child.wait_for(COMMAND_GRACE), Ok(Some(_))) {
        child.signal(Signal::SIGKILL);
        let _ = child.wait_for(COMMAND_GRACE);
    }
}
fn exit_code(status: Option<ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else { return exit::FAILURE };
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILURE),
        (None, Some(signal)) => u8::try_from(signal.saturating_add(128)).unwrap_or(exit::FAILURE),
        _ => exit::FAILURE,
    }
}
