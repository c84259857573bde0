//! Live processes of the project that no record names, as `status` shows them: what
//! `cleanup` would stop (a job a service queued with `at`, a service whose record was
//! lost), except what a command holding the lock is starting right now (its builds
//! and services run before their records are written) and what the live monitor runs
//! for itself (a `docker exec` probe inherits its cookie): those are not leftovers.

use crate::os::process::with_descendants;
use crate::os::{ProcessInfo, ServiceProcess, cookie, flocks};
use crate::service::{Context, monitor};
use crate::state::Entry;
use crate::stop::{leftovers_among, live_services};

/// The leftovers among `holders` (the project's cookie holders, scanned once by the
/// caller), of the named services only when some are named.
pub fn strays(ctx: &Context, names: &[String], holders: &[ProcessInfo], entries: &[Entry]) -> Vec<ProcessInfo> {
    let mut found = leftovers_among(ctx, holders, &live_services(entries));
    if !names.is_empty() {
        found.retain(|p| p.service.as_ref().is_some_and(|s| names.contains(s)));
    }
    if found.is_empty() {
        return found;
    }
    let starting = starting_now(ctx);
    found.retain(|p| !starting.contains(&p.process));
    if found
        .iter()
        .any(|p| p.service.as_deref() == Some(cookie::MONITOR_SERVICE))
    {
        let helpers = monitor_helpers(ctx);
        found.retain(|p| p.service.as_deref() != Some(cookie::MONITOR_SERVICE) || !helpers.contains(&p.process));
    }
    // A probe the monitor ran may have ended between the scan and the look at the
    // monitor's descendants: what has ended is nobody's leftover.
    found.retain(|p| p.process.is_alive());
    found
}

/// The live monitor and its descendants: those that carry its cookie (`@monitor`) are
/// its own children (probe commands, `docker` calls), not a service's.
fn monitor_helpers(ctx: &Context) -> Vec<ServiceProcess> {
    monitor::live_monitor(ctx)
        .map(|m| {
            with_descendants(&[ServiceProcess {
                pid: m.pid,
                start_time: m.start_time,
            }])
        })
        .unwrap_or_default()
}

/// The command that holds the lock now and its descendants: proven by the PID and
/// start time it wrote into the lock file, and only while `/proc/locks` shows the
/// lock held (a command that held it once, such as the monitor, is no start).
fn starting_now(ctx: &Context) -> Vec<ServiceProcess> {
    let Some(holder) = ctx.registry.lock_holder() else {
        return Vec::new();
    };
    let Some(start_time) = holder.start_time else {
        return Vec::new();
    };
    let process = ServiceProcess {
        pid: holder.pid,
        start_time,
    };
    if !process.is_alive() || !flocks::exclusively_locked(&ctx.registry.lock_path()) {
        return Vec::new();
    }
    with_descendants(&[process])
}
