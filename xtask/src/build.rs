//! Build steps: run before services start, in dependency order, independent ones
//! concurrently, their output prefixed with the service's name.
//!
//! Identical steps (same command, directory and environment, as when several services
//! come from one crate) run once. A build carries the service's cookie, so that one
//! orphaned by a killed xtask is found by `cleanup`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use wait_timeout::ChildExt;

use crate::Context;
use crate::config::Build;
use crate::error::{Error, Result, exit};
use crate::process::{self, COOKIE_PROJECT, COOKIE_SERVICE, KillTarget};
use crate::signals::Interrupts;
use crate::spawn;
use crate::ui;

/// How many lines of a failed build's output are shown.
const FAILURE_LINES: usize = 20;
/// How often a running build is checked for its timeout and for Ctrl+C.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// One build to run, for one or more services.
struct Step<'c> {
    label: String,
    build: &'c Build,
    timeout: Option<Duration>,
}

/// How one step ended.
struct Outcome {
    label: String,
    result: std::result::Result<Duration, String>,
    tail: Vec<String>,
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
            return Err(Error::with_code(
                exit::INTERRUPTED,
                "interrupted during the build; nothing was started",
            ));
        }
        if !failed.is_empty() {
            return Err(Error::failure(format!(
                "the build of {} failed; nothing was started (fix it, or skip builds with --no-build)",
                failed.join(", ")
            )));
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
    let child = spawn::command_for(&step.build.command, &step.build.cwd)
        .current_dir(&step.build.cwd)
        .envs(step.build.env.iter().map(|(k, v)| (k, v)))
        .env(COOKIE_PROJECT, &ctx.config.root)
        .env(COOKIE_SERVICE, &first)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so that a timeout kills the compilers it started too
        // (they hold its output pipes open).
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            let why = format!("`{}` could not run: {err}", step.build.command);
            return Outcome {
                label: step.label.clone(),
                result: Err(why),
                tail: Vec::new(),
            };
        }
    };
    let tail = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| echo(ctx, out, index, &first, width, &tail)),
        child
            .stderr
            .take()
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

/// Waits for the build, killing it at its timeout or on Ctrl+C.
fn wait(child: &mut Child, timeout: Option<Duration>, interrupts: Interrupts) -> std::result::Result<(), String> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match child.wait_timeout(WAIT_SLICE) {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{status}")),
            Ok(None) => {}
            Err(err) => return Err(err.to_string()),
        }
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        if late || interrupts.any() {
            let group = KillTarget::GroupOf {
                pgid: child.id() as i32,
            };
            let _ = process::signal(group, Signal::SIGKILL);
            let _ = child.wait();
            return Err(match timeout {
                Some(t) if late => format!("did not finish within its build_timeout of {}", ui::duration(t)),
                _ => "interrupted".to_string(),
            });
        }
    }
}
