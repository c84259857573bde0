//! `cleanup`, and the sweep of leftovers before a start: processes with the project's
//! cookie whose service has no live record (what a crashed manager or an earlier run
//! left behind), processes matching `orphan_patterns`, and stale records.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::error::{Error, Result, Survived};
use crate::os::cgroup::{self, Cgroup};
use crate::os::process::command_line;
use crate::os::{ProcessInfo, ServiceProcess, scan};
use crate::poll;
use crate::service::processes::{KILL_WAIT, terminate};
use crate::service::status::status;
use crate::service::{Context, monitor, preempt};
use crate::state::{Entry, Lock};

/// `cleanup [--dry-run]`: phases 3 and 5 for leftovers only. A leftover is a process
/// with the project cookie whose service has no live record: what a crashed manager or
/// an earlier run left behind. Services that run under a live record are not touched.
pub fn cleanup(ctx: &Context, dry_run: bool) -> Result<()> {
    if !dry_run {
        let lock = preempt::lock_over_a_start(ctx, "cleanup", false)?;
        return sweep_leftovers(ctx, &lock, false);
    }
    let entries = ctx.registry.entries();
    let leftovers = leftovers_and_matches(ctx, &entries);
    let stale = stale_entries(ctx, &entries);
    for p in &leftovers {
        ctx.ui.info(format!(
            "would stop pid {} ({}): {}",
            p.process.pid,
            leftover_label(ctx, p),
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
    for matched in scan::pattern_matches(&ctx.config.root, &ctx.config.project.orphan_patterns) {
        if !found.iter().any(|f| f.process == matched.process) {
            found.push(matched);
        }
    }
    found
}

fn leftover_label(ctx: &Context, p: &ProcessInfo) -> String {
    let patterns = &ctx.config.project.orphan_patterns;
    match &p.service {
        Some(service) => format!("of {service}"),
        None if patterns.iter().any(|re| re.is_match(&p.command)) => "matches orphan_patterns".to_string(),
        // Its cookie names no valid service (`XTASK_SERVICE=../x`): it is this
        // project's all the same.
        None => "of a service it does not name".to_string(),
    }
}

/// Stops `found`, listing each, then looks again, until no leftover is left: a
/// leftover caught in the middle of a double fork leaves its grandchild behind, which
/// the next look finds (without cgroups nothing else holds it). Returns how many were
/// stopped, and those that survived SIGKILL.
fn stop_leftovers(ctx: &Context, mut found: Vec<ProcessInfo>) -> (usize, Vec<ProcessInfo>) {
    let deadline = poll::after(KILL_WAIT);
    let mut seen: Vec<ServiceProcess> = Vec::new();
    let mut survivors = Vec::new();
    while !found.is_empty() {
        for p in &found {
            ctx.ui.warn(format!(
                "leftover ({}): pid {}: {}",
                leftover_label(ctx, p),
                p.process.pid,
                p.command
            ));
        }
        seen.extend(found.iter().map(|p| p.process));
        survivors.extend(terminate(&found, ctx.config.project.stop_timeout));
        if Instant::now() >= deadline {
            break;
        }
        found = leftovers_and_matches(ctx, &ctx.registry.entries())
            .into_iter()
            .filter(|p| !seen.contains(&p.process))
            .collect();
    }
    (seen.len(), survivors)
}

/// Phases 3 and 5 of `cleanup`: stops leftovers (listing each) and removes stale
/// records. Before a start (`before_start`) it says nothing when there is nothing.
pub fn sweep_leftovers(ctx: &Context, lock: &Lock, before_start: bool) -> Result<()> {
    let started = Instant::now();
    let entries = ctx.registry.entries();
    let leftovers = leftovers_and_matches(ctx, &entries);
    let stale = stale_entries(ctx, &entries);
    if before_start && leftovers.is_empty() && stale.is_empty() {
        return Ok(());
    }
    // A frozen cgroup's processes would ignore SIGTERM until SIGKILL (see `Cgroup::thaw`).
    for (_, cgroup) in abandoned_cgroups(ctx, &live_services(&entries)) {
        cgroup.thaw();
    }
    let (stopped, survivors) = stop_leftovers(ctx, leftovers);
    let stopped = format!(
        "stopped {} leftover process(es)",
        stopped.saturating_sub(survivors.len())
    );
    ctx.ui.phase(3, "orphan sweep", stopped, started.elapsed());

    let started = Instant::now();
    // What cannot be removed (a read-only state directory) is noted on the lock and
    // reported once below: the leftovers are stopped all the same.
    let removed_stale = stale
        .iter()
        .filter(|entry| ctx.registry.remove(entry.service(), lock).is_ok())
        .count();
    let temporary = ctx
        .registry
        .remove_abandoned_writes(lock, |pid| ServiceProcess::of(pid).is_some());
    for (_, cgroup) in abandoned_cgroups(ctx, &live_services(&ctx.registry.entries())) {
        cgroup.remove();
    }
    let mut removed = format!("removed {removed_stale} stale record(s)");
    if temporary > 0 {
        removed.push_str(&format!(" and {temporary} temporary file(s) of interrupted writes"));
    }
    if removed_stale < stale.len() {
        removed.push_str(&format!(
            "; {} could not be removed",
            stale.len().saturating_sub(removed_stale)
        ));
    }
    ctx.ui.phase(5, "verify", removed, started.elapsed());
    super::unrecorded::report(ctx, lock);
    if survivors.is_empty() {
        Ok(())
    } else {
        Err(Error::Survivors {
            during: Survived::Cleanup,
            processes: survivors.iter().map(ProcessInfo::survivor).collect(),
        })
    }
}

/// The services whose record names a process that is still alive.
pub fn live_services(entries: &[Entry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) if ServiceProcess::recorded(r).is_alive() => Some(r.service.clone()),
            _ => None,
        })
        .collect()
}

/// Processes with this project's cookie, or in a cgroup of its, whose service has no
/// live record.
pub fn leftovers(ctx: &Context, live: &BTreeSet<String>) -> Vec<ProcessInfo> {
    leftovers_among(ctx, &scan::cookie_holders(&ctx.config.root), live)
}

/// `leftovers`, with the cookie holders already scanned.
pub fn leftovers_among(ctx: &Context, holders: &[ProcessInfo], live: &BTreeSet<String>) -> Vec<ProcessInfo> {
    let monitor = monitor::live_monitor(ctx).map(|m| m.pid);
    let mut found: Vec<ProcessInfo> = holders
        .iter()
        .filter(|p| !p.service.as_ref().is_some_and(|s| live.contains(s)))
        .filter(|p| Some(p.process.pid) != monitor)
        .cloned()
        .collect();
    for (service, cgroup) in abandoned_cgroups(ctx, live) {
        for process in cgroup.members().into_iter().filter_map(ServiceProcess::of) {
            if !found.iter().any(|f| f.process == process) {
                found.push(ProcessInfo {
                    process,
                    pgid: process.pgid().unwrap_or(process.pid),
                    service: Some(service.clone()),
                    command: command_line(process.pid),
                });
            }
        }
    }
    found
}

/// The project's cgroups (under this process's base) of services without a live record.
fn abandoned_cgroups(ctx: &Context, live: &BTreeSet<String>) -> Vec<(String, Cgroup)> {
    cgroup::project(&ctx.config.root)
        .map(|project| Cgroup::under(&project))
        .unwrap_or_default()
        .into_iter()
        .filter(|(service, _)| !live.contains(service))
        .collect()
}

/// The entries that describe nothing any more: corrupt, or naming a process that is
/// gone although the record says it runs.
pub fn stale_entries<'e>(ctx: &Context, entries: &'e [Entry]) -> Vec<&'e Entry> {
    let supervised = monitor::live_monitor(ctx).is_some();
    entries
        .iter()
        .filter(|e| status(Some(e), supervised).is_stale())
        .collect()
}
