//! Build steps: run before services start, in dependency order, independent ones
//! concurrently, their output prefixed with the service's name.
//!
//! Identical steps (same command, directory and declared environment, as when several
//! services come from one crate) run once. A step's environment is what the user wrote
//! (env files, `env`, the build's own `env`), never what xtask adds per service (`PORT`,
//! the cookie), or every service with a port would build again. A build carries the
//! cookie of the first service that shares it, so that one orphaned by a killed xtask
//! is found by `cleanup`.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Build, CommandLine};
use crate::error::{Error, Interrupted, Result};
use crate::os::child::{Child, Waited};
use crate::os::interrupts::Interrupts;
use crate::os::{cookie, program};
use crate::poll;
use crate::service::Context;
use crate::ui;

/// How many lines of a failed build's output are shown.
const FAILURE_LINES: usize = 20;

/// One build to run, for one or more services.
struct Step<'c> {
    label: String,
    build: &'c Build,
    timeout: Option<Duration>,
}

/// How one step ended.
struct Outcome {
    label: String,
    result: std::result::Result<Duration, BuildFailure>,
    tail: Vec<String>,
}

/// Why a build step failed.
#[derive(Debug)]
enum BuildFailure {
    NotRun {
        command: CommandLine,
        io: std::io::Error,
    },
    Failed(ExitStatus),
    TimedOut(Duration),
    Interrupted,
    /// Waiting for it failed.
    Lost(std::io::Error),
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildFailure::NotRun { command, io } => write!(f, "`{command}` could not run: {io}"),
            BuildFailure::Failed(status) => write!(f, "{status}"),
            BuildFailure::TimedOut(limit) => {
                write!(f, "did not finish within its build_timeout of {}", ui::duration(*limit))
            }
            BuildFailure::Interrupted => f.write_str("interrupted"),
            BuildFailure::Lost(io) => write!(f, "cannot wait for it: {io}"),
        }
    }
}

/// A build after a change of a service's watched files, run on a thread of its own.
pub struct Rebuild {
    pub service: String,
    pub build: Build,
    pub timeout: Option<Duration>,
    pub root: std::path::PathBuf,
    /// The service's log: the compiler's output goes there, between the service's own
    /// lines, so that the foreground stream and `logs` show it.
    pub log: std::fs::File,
}

impl Rebuild {
    /// Runs the build; how long it took, or why it failed.
    pub fn run(self, interrupts: Interrupts) -> std::result::Result<Duration, String> {
        let started = Instant::now();
        let mut command = program::command_for(&self.build.command, &self.build.cwd);
        let (out, err) = match (self.log.try_clone(), self.log.try_clone()) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(io), _) | (_, Err(io)) => return Err(format!("cannot open the log: {io}")),
        };
        command
            .current_dir(&self.build.cwd)
            .envs(self.build.env.iter().map(|(k, v)| (k, v)))
            .envs(cookie::vars(&self.root, &self.service))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = Child::spawn(command).map_err(|io| {
            BuildFailure::NotRun {
                command: self.build.command.clone(),
                io,
            }
            .to_string()
        })?;
        wait(&mut child, self.timeout, interrupts).map_err(|why| why.to_string())?;
        Ok(started.elapsed())
    }
}

/// Runs the build steps of `services` (those without one are skipped), dependencies'
/// builds first. Fails on the first level with a failed build, showing its output's
/// tail.
pub fn run(ctx: &Context, services: &[String], interrupts: Interrupts) -> Result<()> {
    let with_build: Vec<String> = services
        .iter()
        .filter(|s| ctx.config.service(s).is_some_and(|s| s.build.is_some()))
        .cloned()
        .collect();
    if with_build.is_empty() {
        return Ok(());
    }
    let width = with_build.iter().map(String::len).max().unwrap_or(0);
    let mut done: Vec<&Build> = Vec::new();
    for level in ctx.config.graph().levels(&with_build) {
        let steps = steps_of(ctx, &level, &mut done);
        let outcomes = run_level(ctx, steps, width, interrupts);
        let mut failed = Vec::new();
        for outcome in outcomes {
            match outcome.result {
                Ok(took) => ctx.ui.ok(format!("built {} in {}", outcome.label, ui::duration(took))),
                Err(why) => {
                    ctx.ui.fail(format!("build of {} failed: {why}", outcome.label));
                    ctx.ui.quote(&outcome.tail);
                    failed.push(outcome.label);
                }
            }
        }
        if interrupts.any() {
            return Err(Error::Interrupted(Interrupted::Build));
        }
        if !failed.is_empty() {
            return Err(Error::BuildFailed { services: failed });
        }
    }
    Ok(())
}

/// The level's builds, identical ones merged, skipping those already run.
fn steps_of<'c>(ctx: &'c Context, level: &[String], done: &mut Vec<&'c Build>) -> Vec<Step<'c>> {
    let mut steps: Vec<Step<'c>> = Vec::new();
    for name in level {
        let Some(service) = ctx.config.service(name) else {
            continue;
        };
        let Some(build) = &service.build else { continue };
        if done.contains(&build) {
            continue;
        }
        match steps.iter_mut().find(|s| s.build == build) {
            Some(step) => step.label = format!("{}, {name}", step.label),
            None => steps.push(Step {
                label: name.clone(),
                build,
                timeout: service.build_timeout,
            }),
        }
    }
    done.extend(steps.iter().map(|s| s.build));
    steps
}

fn run_level(ctx: &Context, steps: Vec<Step<'_>>, width: usize, interrupts: Interrupts) -> Vec<Outcome> {
    thread::scope(|scope| {
        let handles: Vec<_> = steps
            .into_iter()
            .enumerate()
            .map(|(index, step)| scope.spawn(move || run_step(ctx, &step, index, width, interrupts)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

fn run_step(ctx: &Context, step: &Step<'_>, index: usize, width: usize, interrupts: Interrupts) -> Outcome {
    let started = Instant::now();
    let first = step.label.split(", ").next().unwrap_or(&step.label).to_string();
    ctx.ui.info(format!("building {}: {}", step.label, step.build.command));
    let mut command = program::command_for(&step.build.command, &step.build.cwd);
    command
        .current_dir(&step.build.cwd)
        .envs(step.build.env.iter().map(|(k, v)| (k, v)))
        .envs(cookie::vars(&ctx.config.root, &first))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A group of its own, so that a timeout kills the compilers it started too (they
    // hold its output pipes open).
    let mut child = match Child::spawn(command) {
        Ok(child) => child,
        Err(io) => {
            return Outcome {
                label: step.label.clone(),
                result: Err(BuildFailure::NotRun {
                    command: step.build.command.clone(),
                    io,
                }),
                tail: Vec::new(),
            };
        }
    };
    let tail = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child
            .take_stdout()
            .map(|out| echo(ctx, out, index, &first, width, &tail)),
        child
            .take_stderr()
            .map(|err| echo(ctx, err, index, &first, width, &tail)),
    ];
    let result = wait(&mut child, step.timeout, interrupts);
    for reader in readers.into_iter().flatten() {
        let _ = reader.join();
    }
    let tail = tail.lock().map(|t| t.clone()).unwrap_or_default();
    Outcome {
        label: step.label.clone(),
        result: result.map(|()| started.elapsed()),
        tail,
    }
}

/// Prints each line of a build's output prefixed (unless quiet) and keeps the last ones.
fn echo(
    ctx: &Context,
    pipe: impl std::io::Read + Send + 'static,
    index: usize,
    name: &str,
    width: usize,
    tail: &Arc<Mutex<Vec<String>>>,
) -> thread::JoinHandle<()> {
    let (quiet, name, tail) = (ctx.ui.quiet, name.to_string(), Arc::clone(tail));
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(std::result::Result::ok) {
            if !quiet {
                ui::stream_line(index, &name, width, '|', &line);
            }
            if let Ok(mut t) = tail.lock() {
                t.push(line);
                let excess = t.len().saturating_sub(FAILURE_LINES);
                t.drain(..excess);
            }
        }
    })
}

/// Waits for the build, killing its whole group at its timeout or on Ctrl+C.
fn wait(child: &mut Child, timeout: Option<Duration>, interrupts: Interrupts) -> std::result::Result<(), BuildFailure> {
    let deadline = timeout.and_then(poll::deadline_after);
    match child.wait_until(deadline, &|| interrupts.any()) {
        Ok(Waited::Exited(status)) if status.success() => Ok(()),
        Ok(Waited::Exited(status)) => Err(BuildFailure::Failed(status)),
        Ok(Waited::TimedOut) => Err(BuildFailure::TimedOut(timeout.unwrap_or_default())),
        Ok(Waited::Interrupted) => Err(BuildFailure::Interrupted),
        Err(io) => Err(BuildFailure::Lost(io)),
    }
}
