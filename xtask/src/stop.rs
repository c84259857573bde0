//! Stopping in five phases (graceful, force, orphans, containers, verify), and `cleanup`.
//!
//! A service's processes are whatever can be proven ours: its recorded leader (PID and
//! start time match), its process group when a proven process leads or belongs to it,
//! and every process carrying the project cookie with its name. Nothing else is ever
//! signalled. Waiting is by polling against deadlines: a service that exits in 5 ms
//! costs 5 ms.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::Context;
use crate::container;
use crate::error::{Error, Result};
use crate::fault;
use crate::poll::{self, Backoff};
use crate::process::{self, KillTarget, ProcessInfo, ServiceProcess};
use crate::registry::{Entry, Lock, Record, ServiceState};
use crate::signals::Interrupts;
use crate::spawn;
use crate::supervise;
use crate::ui;

/// After this long in its grace period, a service still alive is named with its processes.
const EXPLAIN_AFTER: Duration = Duration::from_secs(1);
/// After this long in its grace period, a service's record says "stopping" (for
/// `status`). Most services are gone by then, and rewriting the records of a stop that
/// ends in milliseconds was measured at a fifth of its time.
const SLOW_AFTER: Duration = Duration::from_millis(100);
/// How long SIGKILLed processes get to disappear before they count as survivors.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The longest a wait for exits sleeps before looking at interrupts and deadlines.
const WAKE_EVERY: Duration = Duration::from_millis(50);

/// The records of a stop, by service, read once: nothing else writes them while the
/// stop holds the lock.
type Records = BTreeMap<String, Record>;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Skip the grace period.
    pub force: bool,
    /// Overrides every service's `stop_timeout`.
    pub timeout: Option<Duration>,
    /// A second interrupt (Ctrl+C) cuts the grace period short.
    pub interrupts: Option<Interrupts>,
    /// Phase 4 also removes the compose project's volumes.
    pub volumes: bool,
    /// Phase 4 alone: containers stop, processes keep running.
    pub containers_only: bool,
}

/// `stop [SERVICE...]`: the named services and their dependents, or the whole project.
pub fn run(ctx: &Context, names: &[String], options: Options) -> Result<()> {
    let lock = ctx.registry.lock("stop")?;
    let scope = if names.is_empty() {
        Scope::Project
    } else {
        let selected = ctx.select(names)?;
        Scope::Services(ctx.config.graph().with_dependents(&selected))
    };
    stop_services(ctx, &scope, options, &lock)
}

/// Which processes a stop is about.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everything carrying this project's cookie, and every record.
    Project,
    /// These services only.
    Services(Vec<String>),
}

/// Runs the five phases; the caller holds the lock.
pub fn stop_services(ctx: &Context, scope: &Scope, options: Options, lock: &Lock) -> Result<()> {
    let started = Instant::now();
    // One read of the records and one cookie scan serve phases 1 and 2: nothing else
    // writes records while we hold the lock, and rescanning /proc for every level was
    // measured as most of a stop. What appears meanwhile is left to phases 3 and 5.
    let entries = ctx.registry.entries();
    let records = records_in(&entries);
    let holders = process::cookie_holders(&ctx.config.root);
    let services = services_in(ctx, scope, &entries, &holders);
    let all: Vec<String> = services.iter().flatten().cloned().collect();
    if options.containers_only {
        return stop_containers_only(ctx, scope, &all, options, lock);
    }
    let running = processes_of(&all, &holders, &records);
    let names_running: Vec<&str> = all
        .iter()
        .filter(|s| running.get(*s).is_some_and(|p| !p.is_empty()))
        .map(String::as_str)
        .collect();
    if !names_running.is_empty() {
        ctx.ui.info(format!("stopping {}", names_running.join(", ")));
    }

    signal_gracefully(ctx, &services, &running, &records, options, lock);
    fault::point(ctx, fault::AFTER_PHASE_1);
    force_kill(ctx, &running, &records);
    fault::point(ctx, fault::AFTER_PHASE_2);
    if matches!(scope, Scope::Project) {
        // The monitor goes last: it cannot restart anything while we hold the lock, and
        // as the services' parent it reaps them as they exit.
        if let Some(pid) = supervise::stop_monitor(ctx, lock) {
            ctx.ui.info(format!("stopped the monitor (pid {pid})"));
        }
    }
    sweep_orphans(ctx, scope, &services);
    remove_containers(ctx, scope, &all, options);
    let survivors = verify(ctx, scope, &services, &records, lock);

    if survivors.is_empty() {
        let what = if names_running.is_empty() {
            "nothing was running".to_string()
        } else {
            format!("stopped {}", names_running.join(", "))
        };
        ctx.ui.done(format!(
            "{what} in {}; no process of this project is left",
            ui::duration(started.elapsed())
        ));
        Ok(())
    } else {
        Err(Error::failure(format!(
            "{} process(es) survived the stop:\n{}\nthey may be stuck in the kernel (state D) or owned by another user; look at them with `ps -o pid,stat,user,cmd -p PID`",
            survivors.len(),
            survivors
                .iter()
                .map(|p| format!(
                    "  pid {} ({}): {}",
                    p.process.pid,
                    p.service.as_deref().unwrap_or("?"),
                    p.command
                ))
                .collect::<Vec<_>>()
                .join("\n")
        )))
    }
}

/// The services a scope names, ordered for stopping: dependents before their
/// dependencies (reverse start levels); unknown names (old records) first.
fn services_in(ctx: &Context, scope: &Scope, entries: &[Entry], holders: &[ProcessInfo]) -> Vec<Vec<String>> {
    let graph = ctx.config.graph();
    let declared: Vec<String> = ctx.config.services.iter().map(|s| s.name.clone()).collect();
    let named: Vec<String> = match scope {
        Scope::Services(names) => names.clone(),
        Scope::Project => {
            let mut all: BTreeSet<String> = entries.iter().map(|e| e.service().to_string()).collect();
            all.extend(
                holders
                    .iter()
                    .filter_map(|p| p.service.clone())
                    .filter(|s| s != process::MONITOR_SERVICE),
            );
            let mut names = declared.clone();
            names.extend(all.into_iter().filter(|n| !declared.contains(n)));
            names
        }
    };
    let (known, unknown): (Vec<String>, Vec<String>) = named.into_iter().partition(|n| declared.contains(n));
    let mut levels = graph.levels(&known);
    levels.reverse();
    if !unknown.is_empty() {
        levels.insert(0, unknown);
    }
    levels
}

/// Phase 1: each level's stop signal, waiting for the level to exit before the next.
/// Each level signals the processes of `running` that are still alive, and the groups
/// those still prove ours.
fn signal_gracefully(
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
            let (how, deadline, child) = begin_graceful(ctx, service, &procs, records.get(service), options);
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
fn wait_for_level(
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
            ctx.ui.warn("interrupted again: forcing");
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
                timed_out.push(service.clone());
                return false;
            }
            if now - level_start >= SLOW_AFTER && marked.insert(service.clone()) {
                slow(service);
            }
            if now - level_start >= EXPLAIN_AFTER && explained.insert(service.clone()) {
                ctx.ui.warn(format!(
                    "{service} is still running after {}; kept alive by:",
                    ui::duration(now - level_start)
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
        let next = deadline.min(Instant::now() + WAKE_EVERY);
        let procs: Vec<ServiceProcess> = waiting
            .values()
            .flat_map(|(_, p)| p.iter().map(|p| p.process))
            .collect();
        if !process::wait_for_an_end(&procs, next) {
            backoff.pause(next);
        }
    }
    timed_out
}

/// Starts the graceful stop of one service: its `stop_command` if it has one (run with
/// the service's cookie, so that waiting for the service waits for it too), else its
/// stop signal. Returns what was done, the deadline, and the stop command's process.
fn begin_graceful(
    ctx: &Context,
    service: &str,
    procs: &[ProcessInfo],
    record: Option<&Record>,
    options: Options,
) -> (String, Instant, Option<std::process::Child>) {
    let (signal, timeout) = stop_settings(ctx, service, options);
    let deadline = Instant::now() + timeout;
    let Some(config) = ctx.config.service(service) else {
        send(procs, record, signal);
        return (signal.as_str().to_string(), deadline, None);
    };
    let Some(line) = &config.stop_command else {
        send(procs, record, signal);
        return (signal.as_str().to_string(), deadline, None);
    };
    let main_pid = record.map(|r| r.pid.to_string()).unwrap_or_default();
    let child = ctx.registry.open_log(service).ok().and_then(|log| {
        let err = log.try_clone().ok()?;
        spawn::command_for(line, &config.cwd)
            .current_dir(&config.cwd)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .env(process::COOKIE_PROJECT, &ctx.config.root)
            .env(process::COOKIE_SERVICE, service)
            .env("XTASK_PID", main_pid)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .ok()
    });
    match child {
        Some(child) => ("stop_command".to_string(), deadline, Some(child)),
        None => {
            ctx.ui.warn(format!(
                "{service}: cannot run `stop_command` `{line}`; sending {} instead",
                signal.as_str()
            ));
            send(procs, record, signal);
            (signal.as_str().to_string(), deadline, None)
        }
    }
}

/// Reaps stop commands; by now they have exited or been killed with their service.
fn reap(children: Vec<std::process::Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Records say "stopping" once a stop takes a while or fails, so that `status` shows
/// it and a supervisor stops watching the service. (A supervisor cannot act on the
/// exits anyway while the stop holds the lock, and finds the records gone after it.)
fn mark_stopping(ctx: &Context, service: &str, records: &Records, lock: &Lock) {
    if let Some(record) = records.get(service) {
        let record = Record {
            state: ServiceState::Stopping,
            ..record.clone()
        };
        let _ = ctx.registry.write(&record, lock);
    }
}

/// Phases 1 and 2 for one service, quietly, leaving its record alone: what a
/// supervisor does before restarting an unhealthy service. Returns the survivors.
pub fn take_down(ctx: &Context, service: &str) -> Vec<ProcessInfo> {
    if let Some(config) = ctx.config.service(service).filter(|s| s.container.is_some()) {
        let _ = container::stop_and_remove(&container::container_name(ctx, service), config.stop_timeout);
    }
    let names = [service.to_string()];
    let records = records_in(&ctx.registry.entry(service).into_iter().collect::<Vec<_>>());
    let record = records.get(service);
    let found = find_processes(ctx, &names, &records);
    let Some(procs) = found.get(service).filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    let (_, deadline, child) = begin_graceful(ctx, service, procs, record, Options::default());
    wait_for_level(
        ctx,
        BTreeMap::from([(service.to_string(), (deadline, procs.clone()))]),
        None,
        &mut |_| {},
    );
    reap(child.into_iter().collect());
    let left: Vec<ProcessInfo> = find_processes(ctx, &names, &records).into_values().flatten().collect();
    if left.is_empty() {
        return left;
    }
    send(&left, record, Signal::SIGKILL);
    poll::wait_until(Instant::now() + KILL_WAIT, Backoff::fast(), || {
        find_processes(ctx, &names, &records)
            .values()
            .all(Vec::is_empty)
            .then_some(())
    });
    find_processes(ctx, &names, &records).into_values().flatten().collect()
}

/// Phase 2: SIGKILL whatever of `running` survived phase 1, and the groups it proves
/// ours. Processes that were not there when the stop began are phase 3's.
fn force_kill(ctx: &Context, running: &BTreeMap<String, Vec<ProcessInfo>>, records: &Records) {
    let started = Instant::now();
    let mut killed = Vec::new();
    let mut dying = Vec::new();
    for (service, procs) in running {
        let procs = still_alive(procs);
        if procs.is_empty() {
            continue;
        }
        send(&procs, records.get(service), Signal::SIGKILL);
        killed.push(format!(
            "{service} ({})",
            procs
                .iter()
                .map(|p| p.process.pid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        dying.extend(procs.iter().map(|p| p.process));
    }
    poll::wait_for_exits(&dying, Instant::now() + KILL_WAIT);
    let detail = if killed.is_empty() {
        "nothing left to kill".to_string()
    } else {
        format!("SIGKILL to {}", killed.join(", "))
    };
    ctx.ui.phase(2, "force kill", detail, started.elapsed());
}

/// Phase 3: the cookie scan for anything of the scope still alive (double-forked
/// daemons, re-parented grandchildren, processes started while we were stopping).
fn sweep_orphans(ctx: &Context, scope: &Scope, levels: &[Vec<String>]) {
    let started = Instant::now();
    let mut swept: Vec<ProcessInfo> = Vec::new();
    poll::wait_until(Instant::now() + KILL_WAIT, Backoff::fast(), || {
        let orphans = orphans_in(process::cookie_holders(&ctx.config.root), scope, levels);
        if orphans.is_empty() {
            return Some(());
        }
        for orphan in orphans {
            if !swept.iter().any(|s| s.process == orphan.process) {
                ctx.ui.warn(format!(
                    "orphan of {}: pid {}: {}",
                    orphan.service.as_deref().unwrap_or("?"),
                    orphan.process.pid,
                    orphan.command
                ));
                let _ = process::signal(KillTarget::Process(orphan.process), Signal::SIGKILL);
                swept.push(orphan);
            }
        }
        None
    });
    let matched = if matches!(scope, Scope::Project) {
        sweep_patterns(ctx)
    } else {
        0
    };
    let detail = match (swept.len(), matched) {
        (0, 0) => "none found".to_string(),
        (n, 0) => format!("killed {n}"),
        (n, m) => format!("killed {n} by cookie, stopped {m} matching orphan_patterns"),
    };
    ctx.ui.phase(3, "orphan sweep", detail, started.elapsed());
}

/// Processes that lost the cookie but match `orphan_patterns`: listed, then stopped
/// (SIGTERM, the project's grace period, SIGKILL). Returns how many were found.
fn sweep_patterns(ctx: &Context) -> usize {
    let matched = process::pattern_matches(&ctx.config.root, &ctx.config.project.orphan_patterns);
    for p in &matched {
        ctx.ui
            .warn(format!("matches orphan_patterns: pid {}: {}", p.process.pid, p.command));
    }
    let survivors = terminate(&matched, ctx.config.project.stop_timeout);
    for p in &survivors {
        ctx.ui
            .warn(format!("survived SIGKILL: pid {}: {}", p.process.pid, p.command));
    }
    matched.len()
}

/// The cookie holders that belong to the scope.
fn orphans_in(holders: Vec<ProcessInfo>, scope: &Scope, levels: &[Vec<String>]) -> Vec<ProcessInfo> {
    match scope {
        Scope::Project => holders,
        Scope::Services(_) => holders
            .into_iter()
            .filter(|p| {
                p.service
                    .as_ref()
                    .is_some_and(|s| levels.iter().flatten().any(|n| n == s))
            })
            .collect(),
    }
}

/// Phase 4: this project's containers by label (of the scope's services, or all with
/// the project's network, volumes and compose project), each printed.
fn remove_containers(ctx: &Context, scope: &Scope, services: &[String], options: Options) {
    let started = Instant::now();
    if !container::configured(ctx) {
        ctx.ui.phase(4, "containers", "none configured", Duration::ZERO);
        return;
    }
    if let Err(err) = container::engine() {
        ctx.ui.warn(format!("phase 4 could not run: {err}"));
        ctx.ui
            .phase(4, "containers", "could not run: no Docker engine", started.elapsed());
        return;
    }
    let only = match scope {
        Scope::Project => None,
        Scope::Services(_) => Some(services),
    };
    let done = container::remove_project(ctx, only, options.volumes);
    for line in &done {
        ctx.ui.info(line);
    }
    let detail = if done.is_empty() {
        "none running".to_string()
    } else {
        format!("{} action(s)", done.len())
    };
    ctx.ui.phase(4, "containers", detail, started.elapsed());
}

/// `stop --containers`: phase 4 alone; the records of the container services go too.
fn stop_containers_only(
    ctx: &Context,
    scope: &Scope,
    services: &[String],
    options: Options,
    lock: &Lock,
) -> Result<()> {
    remove_containers(ctx, scope, services, options);
    for service in ctx
        .config
        .services
        .iter()
        .filter(|s| s.container.is_some() && services.contains(&s.name))
    {
        ctx.registry.remove(&service.name, lock)?;
    }
    ctx.ui.done("containers stopped; processes keep running");
    Ok(())
}

/// Phase 5: nothing of the scope alive, declared ports free, records removed.
/// Returns the survivors.
fn verify(ctx: &Context, scope: &Scope, levels: &[Vec<String>], records: &Records, lock: &Lock) -> Vec<ProcessInfo> {
    let started = Instant::now();
    let all: Vec<String> = levels.iter().flatten().cloned().collect();
    // One cookie scan serves both the services' processes and the orphans.
    let holders = process::cookie_holders(&ctx.config.root);
    let mut survivors: Vec<ProcessInfo> = processes_of(&all, &holders, records).into_values().flatten().collect();
    for orphan in orphans_in(holders, scope, levels) {
        if !survivors.iter().any(|s| s.process == orphan.process) {
            survivors.push(orphan);
        }
    }
    let mut notes = Vec::new();
    for service in &all {
        if survivors.iter().any(|p| p.service.as_deref() == Some(service)) {
            // The record stays, saying that a stop could not end the service.
            mark_stopping(ctx, service, records, lock);
            continue;
        }
        if let Err(err) = ctx.registry.remove(service, lock) {
            notes.push(err.message);
        }
    }
    let listening = process::busy_ports(
        all.iter()
            .filter_map(|n| ctx.config.service(n))
            .flat_map(|s| s.ports.iter().copied()),
    );
    for service in all.iter().filter_map(|n| ctx.config.service(n)) {
        for &port in &service.ports {
            if listening.contains(&port) {
                let holders = process::port_holders(port, &ctx.config.root);
                let who = holders
                    .iter()
                    .map(|h| format!("pid {} ({})", h.pid, h.command))
                    .collect::<Vec<_>>()
                    .join(", ");
                notes.push(format!(
                    "port {port} of {} is still held by {}, which is not part of this project",
                    service.name,
                    if who.is_empty() {
                        "an unknown process".to_string()
                    } else {
                        who
                    }
                ));
            }
        }
    }
    for note in &notes {
        ctx.ui.warn(note);
    }
    let detail = if survivors.is_empty() {
        "no process of this project alive, records removed".to_string()
    } else {
        format!("{} process(es) still alive", survivors.len())
    };
    ctx.ui.phase(5, "verify", detail, started.elapsed());
    survivors
}

/// `cleanup [--dry-run]`: phases 3 and 5 for leftovers only. A leftover is a process
/// with the project cookie whose service has no live record: what a crashed manager or
/// an earlier run left behind. Services that run under a live record are not touched.
pub fn cleanup(ctx: &Context, dry_run: bool) -> Result<()> {
    if !dry_run {
        let lock = ctx.registry.lock("cleanup")?;
        return sweep_leftovers(ctx, &lock, false);
    }
    let entries = ctx.registry.entries();
    let leftovers = leftovers_and_matches(ctx, &entries);
    let stale: Vec<&Entry> = entries.iter().filter(|e| is_stale(ctx, e)).collect();
    for p in &leftovers {
        ctx.ui.info(format!(
            "would stop pid {} ({}): {}",
            p.process.pid,
            leftover_label(p),
            p.command
        ));
    }
    for entry in &stale {
        ctx.ui
            .info(format!("would remove the stale record of {}", entry.service()));
    }
    ctx.ui.result(format!(
        "dry run: {} leftover process(es), {} stale record(s); nothing changed",
        leftovers.len(),
        stale.len()
    ));
    Ok(())
}

/// Leftovers by cookie, and processes that lost it but match `orphan_patterns`.
fn leftovers_and_matches(ctx: &Context, entries: &[Entry]) -> Vec<ProcessInfo> {
    let mut found = leftovers(ctx, &live_services(entries));
    for matched in process::pattern_matches(&ctx.config.root, &ctx.config.project.orphan_patterns) {
        if !found.iter().any(|f| f.process == matched.process) {
            found.push(matched);
        }
    }
    found
}

fn leftover_label(p: &ProcessInfo) -> String {
    match &p.service {
        Some(service) => format!("of {service}"),
        None => "matches orphan_patterns".to_string(),
    }
}

/// Phases 3 and 5 of `cleanup`: stops leftovers (listing each) and removes stale
/// records. Before a start (`before_start`) it says nothing when there is nothing.
pub fn sweep_leftovers(ctx: &Context, lock: &Lock, before_start: bool) -> Result<()> {
    let started = Instant::now();
    let entries = ctx.registry.entries();
    let leftovers = leftovers_and_matches(ctx, &entries);
    let stale: Vec<&Entry> = entries.iter().filter(|e| is_stale(ctx, e)).collect();
    if before_start && leftovers.is_empty() && stale.is_empty() {
        return Ok(());
    }
    for p in &leftovers {
        ctx.ui.warn(format!(
            "leftover ({}): pid {}: {}",
            leftover_label(p),
            p.process.pid,
            p.command
        ));
    }
    let survivors = terminate(&leftovers, ctx.config.project.stop_timeout);
    let stopped = format!("stopped {} leftover process(es)", leftovers.len() - survivors.len());
    ctx.ui.phase(3, "orphan sweep", stopped, started.elapsed());

    let started = Instant::now();
    for entry in &stale {
        ctx.registry.remove(entry.service(), lock)?;
    }
    ctx.registry.remove_abandoned_writes(lock);
    ctx.ui.phase(
        5,
        "verify",
        format!("removed {} stale record(s)", stale.len()),
        started.elapsed(),
    );
    if survivors.is_empty() {
        Ok(())
    } else {
        Err(Error::failure(format!(
            "{} leftover process(es) survived SIGKILL: {}",
            survivors.len(),
            describe(&survivors).join("; ")
        )))
    }
}

/// A record that no longer describes anything: corrupt, or naming a process that is
/// gone although the record says it runs. Completed jobs and failed services are
/// history, not stale; a restart is pending only while a supervisor lives.
pub fn is_stale(ctx: &Context, entry: &Entry) -> bool {
    match entry {
        Entry::Corrupt { .. } => true,
        Entry::Record(record) => match record.state {
            ServiceState::Completed | ServiceState::Failed => false,
            ServiceState::Restarting => supervise::live_monitor(ctx).is_none(),
            _ => !record.process().is_alive(),
        },
    }
}

/// The services whose record names a process that is still alive.
pub fn live_services(entries: &[Entry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) if r.process().is_alive() => Some(r.service.clone()),
            _ => None,
        })
        .collect()
}

/// Processes with this project's cookie whose service has no live record.
pub fn leftovers(ctx: &Context, live: &BTreeSet<String>) -> Vec<ProcessInfo> {
    let monitor = supervise::live_monitor(ctx).map(|m| m.pid);
    process::cookie_holders(&ctx.config.root)
        .into_iter()
        .filter(|p| !p.service.as_ref().is_some_and(|s| live.contains(s)))
        .filter(|p| Some(p.process.pid) != monitor)
        .collect()
}

/// SIGTERM, wait up to `grace`, SIGKILL, wait: for processes proven ours. Returns the
/// ones still alive after all that.
pub fn terminate(procs: &[ProcessInfo], grace: Duration) -> Vec<ProcessInfo> {
    let alive = |procs: &[ProcessInfo]| -> Vec<ProcessInfo> {
        procs.iter().filter(|p| p.process.is_alive()).cloned().collect()
    };
    for (signal, wait) in [(Signal::SIGTERM, grace), (Signal::SIGKILL, KILL_WAIT)] {
        let targets = alive(procs);
        for p in &targets {
            let _ = process::signal(KillTarget::Process(p.process), signal);
        }
        let targets: Vec<ServiceProcess> = targets.iter().map(|p| p.process).collect();
        if poll::wait_for_exits(&targets, Instant::now() + wait).is_empty() {
            return Vec::new();
        }
    }
    alive(procs)
}

/// The live processes of each named service: cookie holders with its name, its
/// recorded leader if the identity still matches, and members of its group when the
/// group is proven ours.
fn find_processes(ctx: &Context, services: &[String], records: &Records) -> BTreeMap<String, Vec<ProcessInfo>> {
    processes_of(services, &process::cookie_holders(&ctx.config.root), records)
}

/// `find_processes` with the cookie holders already scanned.
fn processes_of(services: &[String], holders: &[ProcessInfo], records: &Records) -> BTreeMap<String, Vec<ProcessInfo>> {
    let mut found: BTreeMap<String, Vec<ProcessInfo>> = BTreeMap::new();
    let mut groups: BTreeMap<String, i32> = BTreeMap::new();
    for service in services {
        let procs: Vec<ProcessInfo> = holders
            .iter()
            .filter(|p| p.service.as_deref() == Some(service))
            .cloned()
            .collect();
        if let Some(record) = records.get(service) {
            // A container's processes are Docker's to signal (phase 4), never ours.
            // The cookie scan has just seen the recorded process when it holds the
            // cookie: no need to read its /proc entry again.
            let group_proven = record.container.is_none()
                && (procs
                    .iter()
                    .any(|p| p.pgid == record.pgid || p.process == record.process())
                    || record.process().is_alive());
            if group_proven {
                groups.insert(service.clone(), record.pgid);
            }
        }
        found.insert(service.clone(), procs);
    }
    let members = process::group_members(&groups.values().copied().collect());
    for (service, pgid) in groups {
        let procs = found.entry(service.clone()).or_default();
        for member in members.get(&pgid).into_iter().flatten() {
            if !procs.iter().any(|p| p.process == *member) {
                procs.push(info(*member, pgid, &service));
            }
        }
    }
    found
}

/// The records among `entries`, by service.
fn records_in(entries: &[Entry]) -> Records {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) => Some((r.service.clone(), r.clone())),
            Entry::Corrupt { .. } => None,
        })
        .collect()
}

/// Those of `procs` still alive, with their process group as it is now.
fn still_alive(procs: &[ProcessInfo]) -> Vec<ProcessInfo> {
    procs
        .iter()
        .filter_map(|p| p.process.pgid().map(|pgid| ProcessInfo { pgid, ..p.clone() }))
        .collect()
}

fn info(process: ServiceProcess, pgid: i32, service: &str) -> ProcessInfo {
    ProcessInfo {
        process,
        pgid,
        service: Some(service.to_string()),
        command: process::command_line(process.pid),
    }
}

/// Sends `signal` to a service's processes: once to its recorded group when one of
/// `procs` proves it ours, then to each process outside it (double-forked daemons in
/// sessions of their own).
fn send(procs: &[ProcessInfo], record: Option<&Record>, signal: Signal) {
    let groups: BTreeSet<i32> = match record {
        Some(record) if procs.iter().any(|p| p.pgid == record.pgid) => BTreeSet::from([record.pgid]),
        _ => BTreeSet::new(),
    };
    for pgid in &groups {
        let _ = process::signal(KillTarget::GroupOf { pgid: *pgid }, signal);
    }
    for p in procs.iter().filter(|p| !groups.contains(&p.pgid)) {
        let _ = process::signal(KillTarget::Process(p.process), signal);
    }
}

fn stop_settings(ctx: &Context, service: &str, options: Options) -> (Signal, Duration) {
    let (signal, timeout) = ctx
        .config
        .service(service)
        .map_or((Signal::SIGTERM, ctx.config.project.stop_timeout), |s| {
            (s.stop_signal, s.stop_timeout)
        });
    (signal, options.timeout.unwrap_or(timeout))
}

fn describe(procs: &[ProcessInfo]) -> Vec<String> {
    procs
        .iter()
        .map(|p| format!("pid {}: {}", p.process.pid, p.command))
        .collect()
}
