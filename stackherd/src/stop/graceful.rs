//! Phase 1: each level's stop signal or `stop_command`, waiting for the level to exit
//! before the next, explaining a service that takes long.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::sys::signal::Signal;

use super::{EXPLAIN_AFTER, Options, SLOW_AFTER, WAKE_EVERY, stop_settings};
use crate::docker;
use crate::os::child::Child;
use crate::os::interrupts::Interrupts;
use crate::os::signal::wait_for_an_end;
use crate::os::{ProcessInfo, ServiceProcess, cookie, program};
use crate::poll;
use crate::poll::Backoff;
use crate::service::Context;
use crate::service::processes::{KILL_WAIT, Records, describe, send, send_and_wake, still_alive, thaw};
use crate::state::{Lock, RECORD_VERSION, Record, ServiceState};
use crate::ui;

/// Phase 1: each level's stop signal, waiting for the level to exit before the next.
/// Each level signals the processes of `running` that are still alive, and the groups
/// those still prove ours.
pub(super) fn signal_gracefully(
    ctx: &Context,
    levels: &[Vec<String>],
    running: &BTreeMap<String, Vec<ProcessInfo>>,
    records: &Records,
    options: Options,
    lock: &Lock,
) {
    let started = Instant::now();
    if options.force {
        ctx.ui.phase(1, "graceful stop", "skipped (--force)", started.elapsed());
        return;
    }
    let mut signalled = Vec::new();
    let mut timed_out = Vec::new();
    let mut stop_commands = Vec::new();
    for level in levels {
        let mut deadlines = BTreeMap::new();
        for service in level {
            let procs = still_alive(running.get(service).map_or(&[], Vec::as_slice));
            if procs.is_empty() {
                continue;
            }
            let (how, deadline, child) = begin_graceful(ctx, service, &procs, records.get(service), options, lock);
            signalled.push(format!("{service} ({how})"));
            deadlines.insert(service.clone(), (deadline, procs));
            stop_commands.extend(child);
        }
        let mut mark = |service: &str| mark_stopping(ctx, service, records, lock);
        timed_out.extend(wait_for_level(ctx, deadlines, options.interrupts, &mut mark));
    }
    reap(stop_commands);
    let detail = match (signalled.is_empty(), timed_out.is_empty()) {
        (true, _) => "nothing running".to_string(),
        (false, true) => format!("{}; all exited", signalled.join(", ")),
        (false, false) => format!(
            "{}; still running after the grace period: {}",
            signalled.join(", "),
            timed_out.join(", ")
        ),
    };
    ctx.ui.phase(1, "graceful stop", detail, started.elapsed());
}

/// Waits until every service of a level is gone or past its deadline; calls `slow` for
/// a service still alive after `SLOW_AFTER`, and names the processes of one still alive
/// a second in, so a hanging stop explains itself. Returns the services that outlived
/// their grace period. Only the processes found when the level was signalled are
/// watched (a cheap identity check each, no /proc scan): anything forked meanwhile is
/// left to phases 2 and 3.
pub(super) fn wait_for_level(
    ctx: &Context,
    mut waiting: BTreeMap<String, (Instant, Vec<ProcessInfo>)>,
    interrupts: Option<Interrupts>,
    slow: &mut dyn FnMut(&str),
) -> Vec<String> {
    let level_start = Instant::now();
    let mut marked = BTreeSet::new();
    let mut explained = BTreeSet::new();
    let mut timed_out = Vec::new();
    let mut backoff = Backoff::fast();
    while !waiting.is_empty() {
        if interrupts.is_some_and(|i| i.count() >= 2) {
            // Each level still waiting meets the second Ctrl+C: it is said once.
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                ctx.ui.warn("interrupted again: forcing");
            }
            timed_out.extend(waiting.into_keys());
            break;
        }
        let now = Instant::now();
        waiting.retain(|service, (deadline, procs)| {
            procs.retain(|p| p.process.is_alive());
            if procs.is_empty() {
                return false;
            }
            if now >= *deadline {
                // Past its grace period it is slow, however late this turn came.
                if marked.insert(service.clone()) {
                    slow(service);
                }
                timed_out.push(service.clone());
                return false;
            }
            if now.saturating_duration_since(level_start) >= SLOW_AFTER && marked.insert(service.clone()) {
                slow(service);
            }
            if now.saturating_duration_since(level_start) >= EXPLAIN_AFTER && explained.insert(service.clone()) {
                ctx.ui.warn(format!(
                    "{service} is still running after {}; kept alive by:",
                    ui::duration(now.saturating_duration_since(level_start))
                ));
                ctx.ui.quote(&describe(procs));
            }
            true
        });
        let Some(deadline) = waiting.values().map(|(deadline, _)| *deadline).min() else {
            break;
        };
        // Woken by the first exit; at least every WAKE_EVERY, to notice a second
        // Ctrl+C and to explain a slow service on time.
        let next = deadline.min(poll::after(WAKE_EVERY));
        let procs: Vec<ServiceProcess> = waiting
            .values()
            .flat_map(|(_, p)| p.iter().map(|p| p.process))
            .collect();
        if !wait_for_an_end(&procs, next) {
            backoff.pause(next);
        }
    }
    timed_out
}

/// Starts the graceful stop of one service: its `stop_command` if it has one (run with
/// the service's cookie, so that waiting for the service waits for it too), else its
/// stop signal. A paused service is woken either way, or it could only wait for
/// SIGKILL: a frozen cgroup of its is thawed, and its processes continued (SIGCONT)
/// right after the stop signal, or before the stop command, whose own signal must find
/// them running. Returns what was done, the deadline, and the stop command's process.
pub(super) fn begin_graceful(
    ctx: &Context,
    service: &str,
    procs: &[ProcessInfo],
    record: Option<&Record>,
    options: Options,
    lock: &Lock,
) -> (String, Instant, Option<Child>) {
    let (signal, timeout) = stop_settings(ctx, service, options);
    let deadline = poll::after(timeout);
    let thawed = thaw(&ctx.config.root, service, record);
    let how = |what: &str| {
        if thawed {
            format!("{what}, cgroup thawed")
        } else {
            what.to_string()
        }
    };
    // A container's only process of ours is its log copier: Docker stops the
    // container, and the copier, which ends with it, is waited for (with time for
    // Docker's own SIGKILL) so that the container's last lines reach its log.
    if let Some(name) = record.and_then(|r| r.container.as_deref())
        && let Ok(child) = docker::begin_stop(name, timeout)
    {
        return ("docker stop".to_string(), poll::later(deadline, KILL_WAIT), Some(child));
    }
    let stop_command = ctx
        .config
        .service(service)
        .and_then(|config| Some((config, config.stop_command.as_ref()?)));
    let Some((config, line)) = stop_command else {
        let _ = send_and_wake(procs, record, signal);
        return (how(signal.as_str()), deadline, None);
    };
    let _ = send(procs, record, Signal::SIGCONT);
    let main_pid = record.map(|r| r.pid.to_string()).unwrap_or_default();
    // Where the log cannot be written the command still runs: stopping matters more
    // than its output.
    let (stdout, stderr) = match ctx.registry.open_stop_output(service, lock) {
        Some(log) => match log.try_clone() {
            Ok(err) => (Stdio::from(log), Stdio::from(err)),
            Err(_) => (Stdio::from(log), Stdio::null()),
        },
        None => (Stdio::null(), Stdio::null()),
    };
    let mut command = program::command_for(line, &config.cwd);
    command
        .current_dir(&config.cwd)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .envs(cookie::vars(&ctx.config.root, service))
        .env("XTASK_PID", main_pid)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child = Child::spawn(command).ok();
    match child {
        Some(child) => (how("stop_command"), deadline, Some(child)),
        None => {
            ctx.ui.warn(format!(
                "{service}: cannot run `stop_command` `{line}`; sending {} instead",
                signal.as_str()
            ));
            let _ = send_and_wake(procs, record, signal);
            (how(signal.as_str()), deadline, None)
        }
    }
}

/// Ends stop commands that are still running and reaps them; most have exited with
/// their service by now.
pub(super) fn reap(children: Vec<Child>) {
    for mut child in children {
        child.end();
    }
}

/// Records say "stopping" once a stop takes a while or fails, so that `status` shows
/// it and a supervisor stops watching the service. (A supervisor cannot act on the
/// exits anyway while the stop holds the lock, and finds the records gone after it.)
pub(super) fn mark_stopping(ctx: &Context, service: &str, records: &Records, lock: &Lock) {
    if let Some(record) = records.get(service) {
        let record = Record {
            version: RECORD_VERSION,
            state: ServiceState::Stopping,
            ..record.clone()
        };
        let _ = ctx.registry.write(&record, lock);
    }
}
