//! Stopping in five phases (graceful, force, orphans, containers, verify), in reverse
//! dependency order; and `cleanup` of leftovers.
//!
//! A service's processes are whatever can be proven ours (see `processes`); nothing
//! else is ever signalled. Waiting is by polling against deadlines and through pidfds:
//! a service that exits in 5 ms costs 5 ms. A stop never needs to write: where the
//! state directory cannot be written, it stops everything all the same and says once
//! what it could not record (`unrecorded`).

mod cleanup;
mod graceful;
mod phases;
pub mod strays;
mod take_down;
mod unrecorded;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, Result, Survived};
use crate::os::interrupts::Interrupts;
use crate::os::{ProcessInfo, cookie, scan};
use crate::service::processes::{processes_of, records_in};
use crate::service::{Context, monitor, status};
use crate::state::{Entry, Lock, fault};
use crate::ui;

pub use cleanup::{cleanup, leftovers, leftovers_among, live_services, stale_entries, sweep_leftovers};
pub use take_down::take_down;

/// After this long in its grace period, a service still alive is named with its processes.
const EXPLAIN_AFTER: Duration = Duration::from_secs(1);
/// After this long in its grace period, a service's record says "stopping" (for
/// `status`). Most services are gone by then, and rewriting the records of a stop that
/// ends in milliseconds was measured at a fifth of its time.
const SLOW_AFTER: Duration = Duration::from_millis(100);
/// The longest a wait for exits sleeps before looking at interrupts and deadlines.
const WAKE_EVERY: Duration = Duration::from_millis(50);

/// The records of a stop, by service, read once: nothing else writes them while the
/// stop holds the lock.

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
    /// This process started every service it has children of (`run`, a supervisor, a
    /// start's rollback), and the stop covers them all: its children left after phase 2
    /// are orphans of theirs re-parented to it (a subreaper), which no record or cookie
    /// may name yet (a `setsid` grandchild with a cleared environment, before the
    /// supervisor's next look at the trees): phase 3 ends them too.
    pub adopted_are_ours: bool,
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
    let holders = scan::cookie_holders(&ctx.config.root);
    let services = services_in(ctx, scope, &entries, &holders);
    let all: Vec<String> = services.iter().flatten().cloned().collect();
    if options.containers_only {
        return phases::stop_containers_only(ctx, scope, &all, options, lock);
    }
    let running = processes_of(&ctx.config.root, &all, &holders, &records);
    let names_running: Vec<&str> = all
        .iter()
        .filter(|s| running.get(*s).is_some_and(|p| !p.is_empty()))
        .map(String::as_str)
        .collect();
    if !names_running.is_empty() {
        ctx.ui.info(format!("stopping {}", names_running.join(", ")));
    }

    graceful::signal_gracefully(ctx, &services, &running, &records, options, lock);
    fault::point(&ctx.registry, fault::AFTER_PHASE_1);
    phases::force_kill(ctx, &running, &records, options.force);
    fault::point(&ctx.registry, fault::AFTER_PHASE_2);
    // Whatever of the project this stop leaves to a supervisor (a stop of the whole
    // project leaves nothing: the records are not read again for it).
    let others = match scope {
        Scope::Project => Vec::new(),
        Scope::Services(_) => others_supervised(ctx, &all),
    };
    if others.is_empty() {
        // The monitor goes last: it cannot restart anything while we hold the lock, and
        // as the services' parent it reaps them as they exit. A stop that leaves it
        // nothing to supervise ends it too, rather than leave it to notice.
        if let Some(pid) = monitor::stop_monitor(ctx, lock) {
            ctx.ui.info(format!("stopped the monitor (pid {pid})"));
        }
    }
    phases::sweep_orphans(ctx, scope, &services, options.adopted_are_ours);
    let containers_left = phases::remove_containers(ctx, scope, &all, options);
    let (survivors, held) = phases::verify(ctx, scope, &services, &records, lock);
    unrecorded::report(ctx, lock);

    if let Some(why) = containers_left {
        Err(Error::ContainersMayRun {
            why,
            root: ctx.config.root.clone(),
        })
    } else if !survivors.is_empty() {
        Err(Error::Survivors {
            during: Survived::Stop,
            processes: survivors.iter().map(ProcessInfo::survivor).collect(),
        })
    } else if !held.is_empty() {
        Err(Error::PortsHeld(held))
    } else {
        let what = if names_running.is_empty() {
            "nothing was running".to_string()
        } else {
            format!("stopped {}", names_running.join(", "))
        };
        let rest = match scope {
            Scope::Project => "no process of this project is left".to_string(),
            Scope::Services(_) => still_running_besides(&others),
        };
        ctx.ui
            .done(format!("{what} in {}; {rest}", ui::duration(started.elapsed())));
        Ok(())
    }
}

/// The services besides `stopped` that run, or that a supervisor is about to restart.
fn others_supervised(ctx: &Context, stopped: &[String]) -> Vec<String> {
    let supervised = monitor::live_monitor(ctx).is_some();
    ctx.registry
        .entries()
        .iter()
        .filter(|e| !stopped.iter().any(|s| s == e.service()))
        .filter(|e| {
            let status = status::status(Some(e), supervised);
            status.is_alive() || status == status::Status::Restarting
        })
        .map(|e| e.service().to_string())
        .collect()
}

/// After a stop of some services: none of their processes is left, and what else of
/// the project still runs (a scoped stop must not sound like a full one).
fn still_running_besides(others: &[String]) -> String {
    if others.is_empty() {
        "none of their processes is left, and nothing else of this project runs".to_string()
    } else {
        format!("none of their processes is left; still running: {}", others.join(", "))
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
                    .filter(|s| s != cookie::MONITOR_SERVICE),
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

fn stop_settings(ctx: &Context, service: &str, options: Options) -> (Signal, Duration) {
    let (signal, timeout) = ctx
        .config
        .service(service)
        .map_or((Signal::SIGTERM, ctx.config.project.stop_timeout), |s| {
            (s.stop_signal, s.stop_timeout)
        });
    (signal, options.timeout.unwrap_or(timeout))
}
