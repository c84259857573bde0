//! Phases 2 to 5: force kill, the orphan sweep, containers, verification.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::graceful::mark_stopping;
use super::{Options, Scope};
use crate::docker;
use crate::error::Result;
use crate::os::process::{command_line, with_descendants};
use crate::os::signal::{self, KillTarget, Watch, signal, wait_for_exits};
use crate::os::{ProcessInfo, ServiceProcess, port_holders, scan, subreaper};
use crate::poll::{self, Backoff};
use crate::service::Context;
use crate::service::processes::{KILL_WAIT, Records, cgroups, processes_of, send, still_alive, terminate, thaw};
use crate::state::Lock;
use crate::ui;

/// Phase 2: SIGKILL whatever of `running` survived phase 1, and the groups it proves
/// ours. Processes that were not there when the stop began are phase 3's.
/// `skipped_graceful`: phase 1 did not run (`--force`), so nothing woke what was paused.
pub(super) fn force_kill(
    ctx: &Context,
    running: &BTreeMap<String, Vec<ProcessInfo>>,
    records: &Records,
    skipped_graceful: bool,
) {
    let started = Instant::now();
    let mut killed = Vec::new();
    let mut refused = Vec::new();
    let mut dying = Vec::new();
    for (service, procs) in running {
        // A paused relay (and a frozen cgroup, which SIGKILL does not wait for) is
        // woken here when the graceful stop, which wakes them, was skipped.
        if skipped_graceful {
            thaw(&ctx.config.root, service, records.get(service));
        }
        let procs = still_alive(procs);
        if procs.is_empty() {
            continue;
        }
        let failed = send(&procs, records.get(service), Signal::SIGKILL);
        for (p, errno) in &failed {
            refused.push(format!("pid {} of {service} ({})", p.process.pid, errno.desc()));
        }
        let procs: Vec<ProcessInfo> = procs
            .into_iter()
            .filter(|p| !failed.iter().any(|(f, _)| f.process == p.process))
            .collect();
        // The cgroup also takes what the service forked since the stop began.
        for cgroup in cgroups(&ctx.config.root, service, records.get(service)) {
            cgroup.kill_all();
        }
        if !procs.is_empty() {
            killed.push(format!(
                "{service} ({})",
                procs
                    .iter()
                    .map(|p| p.process.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        dying.extend(procs.iter().map(|p| p.process));
    }
    wait_for_exits(&dying, poll::after(KILL_WAIT));
    let mut detail = if killed.is_empty() && refused.is_empty() {
        "nothing left to kill".to_string()
    } else if killed.is_empty() {
        "no SIGKILL sent".to_string()
    } else {
        format!("SIGKILL to {}", killed.join(", "))
    };
    if !refused.is_empty() {
        detail.push_str(&format!("; could not kill {}", refused.join(", ")));
    }
    ctx.ui.phase(2, "force kill", detail, started.elapsed());
}

/// Phase 3: the cookie scan for anything of the scope still alive (double-forked
/// daemons, re-parented grandchildren, processes started while we were stopping).
pub(super) fn sweep_orphans(ctx: &Context, scope: &Scope, levels: &[Vec<String>], adopted_are_ours: bool) {
    let started = Instant::now();
    let adopted = if adopted_are_ours { sweep_adopted(ctx) } else { 0 };
    let mut swept: Vec<ProcessInfo> = Vec::new();
    poll::wait_until(poll::after(KILL_WAIT), Backoff::fast(), || {
        let orphans = orphans_in(scan::cookie_holders(&ctx.config.root), scope, levels);
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
                let _ = signal(KillTarget::Process(orphan.process), Signal::SIGKILL);
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
    let detail = match (swept.len().saturating_add(adopted), matched) {
        (0, 0) => "none found".to_string(),
        (n, 0) => format!("killed {n}"),
        (n, m) => format!("killed {n} by cookie, stopped {m} matching orphan_patterns"),
    };
    ctx.ui.phase(3, "orphan sweep", detail, started.elapsed());
}

/// This process's children left after phase 2, with their descendants: orphans of the
/// services it started (see `Options::adopted_are_ours`), killed and waited for.
/// Returns how many.
fn sweep_adopted(ctx: &Context) -> usize {
    let orphans = with_descendants(&subreaper::adopted_children());
    for orphan in &orphans {
        ctx.ui.warn(format!(
            "orphan re-parented to xtask: pid {}: {}",
            orphan.pid,
            command_line(orphan.pid)
        ));
        let _ = signal(KillTarget::Process(*orphan), Signal::SIGKILL);
    }
    wait_for_exits(&orphans, poll::after(KILL_WAIT));
    orphans.len()
}

/// Processes that lost the cookie but match `orphan_patterns`: listed, then stopped
/// (SIGTERM, the project's grace period, SIGKILL). Returns how many were found.
fn sweep_patterns(ctx: &Context) -> usize {
    let matched = scan::pattern_matches(&ctx.config.root, &ctx.config.project.orphan_patterns);
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
/// the project's network, volumes and compose project), each printed. Returns why some
/// may still run: an engine that did not answer, a container that could not be
/// removed. (No engine at all runs no container: nothing to say then.)
pub(super) fn remove_containers(ctx: &Context, scope: &Scope, services: &[String], options: Options) -> Option<String> {
    let started = Instant::now();
    if !docker::configured(&ctx.config) {
        ctx.ui.phase(4, "containers", "none configured", Duration::ZERO);
        return None;
    }
    if let Err(err) = docker::engine() {
        ctx.ui.warn(format!("phase 4 could not run: {err}"));
        ctx.ui
            .phase(4, "containers", "could not run: no Docker engine", started.elapsed());
        return err.engine_hung().then(|| err.innermost().to_string());
    }
    let only = match scope {
        Scope::Project => None,
        Scope::Services(_) => Some(services),
    };
    let done = docker::remove_project(&ctx.config, only, options.volumes);
    for line in &done.lines {
        ctx.ui.info(line);
    }
    let detail = if done.lines.is_empty() {
        "none running".to_string()
    } else {
        format!("{} action(s)", done.lines.len())
    };
    ctx.ui.phase(4, "containers", detail, started.elapsed());
    done.failed
}

/// `stop --containers`: phase 4 alone; the records of the container services go too.
pub(super) fn stop_containers_only(
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
        let _ = ctx.registry.remove(&service.name, lock);
    }
    super::unrecorded::report(ctx, lock);
    ctx.ui.done("containers stopped; processes keep running");
    Ok(())
}

/// Phase 5: nothing of the scope alive, declared ports free, records removed.
/// Returns the survivors, and a sentence for each declared port still held.
pub(super) fn verify(
    ctx: &Context,
    scope: &Scope,
    levels: &[Vec<String>],
    records: &Records,
    lock: &Lock,
) -> (Vec<ProcessInfo>, Vec<String>) {
    let started = Instant::now();
    let all: Vec<String> = levels.iter().flatten().cloned().collect();
    // A relay serves a level's services together: only a stop of the whole project
    // knows that none of its services runs on.
    let relays = match scope {
        Scope::Project => await_relays(records, &all),
        Scope::Services(_) => Vec::new(),
    };
    for pid in relays {
        ctx.ui.warn(format!(
            "the log relay (pid {pid}) still writes after {}: a process outside the project holds its services' output",
            ui::duration(RELAYS_END)
        ));
    }
    let mut not_removed = 0usize;
    // One cookie scan serves both the services' processes and the orphans.
    let holders = scan::cookie_holders(&ctx.config.root);
    let mut survivors: Vec<ProcessInfo> = processes_of(&ctx.config.root, &all, &holders, records)
        .into_values()
        .flatten()
        .collect();
    for orphan in orphans_in(holders, scope, levels) {
        if !survivors.iter().any(|s| s.process == orphan.process) {
            survivors.push(orphan);
        }
    }
    let mut held = Vec::new();
    for service in &all {
        if survivors.iter().any(|p| p.service.as_deref() == Some(service)) {
            // The record stays, saying that a stop could not end the service.
            mark_stopping(ctx, service, records, lock);
            continue;
        }
        // A record that cannot be removed (a read-only state directory) is noted on the
        // lock, and reported once with everything else the stop could not record.
        if ctx.registry.remove(service, lock).is_err() {
            not_removed = not_removed.saturating_add(1);
        }
        for cgroup in cgroups(&ctx.config.root, service, records.get(service)) {
            cgroup.remove();
        }
    }
    // The ports the stopped instances were started with, as their records keep them
    // (a port an environment variable set at their start); the config's for a service
    // that had no record.
    let declared: Vec<(&str, Vec<u16>)> = all
        .iter()
        .filter_map(|name| match records.get(name) {
            Some(record) => Some((name.as_str(), record.ports.clone())),
            None => ctx.config.service(name).map(|s| (name.as_str(), s.ports.clone())),
        })
        .collect();
    let listening = port_holders::busy_ports(declared.iter().flat_map(|(_, ports)| ports.iter().copied()));
    for (name, service_ports) in &declared {
        for &port in service_ports {
            if listening.contains(&port) {
                let holders = port_holders::port_holders(port, &ctx.config.root);
                let who = holders
                    .iter()
                    .map(|h| format!("pid {} ({})", h.pid, h.command))
                    .collect::<Vec<_>>()
                    .join(", ");
                held.push(format!(
                    "port {port} of {name} is still held by {}, which is not part of this project",
                    if who.is_empty() {
                        "an unknown process".to_string()
                    } else {
                        who
                    }
                ));
            }
        }
    }
    let detail = match (survivors.len(), held.len()) {
        (0, 0) if not_removed > 0 => {
            format!("no process of this project alive; {not_removed} record(s) could not be removed")
        }
        (0, 0) => "no process of this project alive, records removed".to_string(),
        (0, n) => format!("no process of this project alive, but {n} declared port(s) still held"),
        (n, _) => format!("{n} process(es) still alive"),
    };
    ctx.ui.phase(5, "verify", detail, started.elapsed());
    (survivors, held)
}

/// How long a stop waits for the log relays of what it stopped to write the last
/// lines and end: their input ended with the last of their services' processes.
const RELAYS_END: Duration = Duration::from_secs(2);

/// Waits, `RELAYS_END` at most, for the log relays of `services` to end (a relay ends
/// once every process holding its services' output has, which phases 1 to 3 saw to),
/// so that "no process of this project is left" holds when the stop says it. Returns
/// the relays still writing: their input is held by something no stop can name.
fn await_relays(records: &Records, services: &[String]) -> Vec<i32> {
    let deadline = poll::after(RELAYS_END);
    let relays: BTreeSet<(i32, u64)> = services.iter().filter_map(|s| records.get(s)?.relay).collect();
    relays
        .into_iter()
        .filter_map(|(pid, start_time)| {
            let relay = ServiceProcess { pid, start_time };
            if let Watch::Fd(fd) = signal::watch(&relay) {
                signal::wait_for_end(&fd, deadline);
            }
            relay.is_alive().then_some(pid)
        })
        .collect()
}
