//! A supervisor's take-down of one service (phases 1 and 2, quietly, leaving its
//! record alone, under the supervisor's lock): what it does before restarting an
//! unhealthy service.

use std::collections::BTreeMap;

use nix::sys::signal::Signal;

use super::Options;
use super::graceful::{begin_graceful, reap, wait_for_level};
use crate::docker;
use crate::os::ProcessInfo;
use crate::poll::{self, Backoff};
use crate::service::Context;
use crate::service::processes::{KILL_WAIT, find_processes, records_in, send};
use crate::state::Lock;

/// Phases 1 and 2 for one service, quietly, leaving its record alone: what a
/// supervisor does before restarting an unhealthy service. Returns the survivors.
pub fn take_down(ctx: &Context, service: &str, lock: &Lock) -> Vec<ProcessInfo> {
    if let Some(config) = ctx.config.service(service).filter(|s| s.container.is_some()) {
        let _ = docker::stop_and_remove(&docker::container_name(&ctx.config, service), config.stop_timeout);
    }
    let names = [service.to_string()];
    let records = records_in(&ctx.registry.entry(service).into_iter().collect::<Vec<_>>());
    let record = records.get(service);
    let found = find_processes(ctx, &names, &records);
    let Some(procs) = found.get(service).filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    let (_, deadline, child) = begin_graceful(ctx, service, procs, record, Options::default(), lock);
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
    let _ = send(&left, record, Signal::SIGKILL);
    poll::wait_until(poll::after(KILL_WAIT), Backoff::fast(), || {
        find_processes(ctx, &names, &records)
            .values()
            .all(Vec::is_empty)
            .then_some(())
    });
    find_processes(ctx, &names, &records).into_values().flatten().collect()
}
