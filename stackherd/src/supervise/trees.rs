//! Where no cgroup holds a service, its process tree is kept in its record: the
//! descendants of its main process, and the orphans re-parented to this supervisor (a
//! subreaper) that no cookie or group names. `stop` then finds them after they erased
//! their cookie, left the service's group, and outlived this supervisor.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{Event, Supervisor};
use crate::os::process::with_descendants;
use crate::os::{ServiceProcess, cgroup, scan, subreaper};
use crate::service::processes::{Records, records_in};
use crate::state::Record;

/// How often the trees are read: a few syscalls per process of each service, which at
/// 4 Hz cost the idle monitor of 50 services 0.8% of a core. An orphan stays our child
/// for as long as we live; the period only bounds what a SIGKILL of the supervisor
/// can make it miss.
pub(super) const REFRESH: Duration = Duration::from_secs(1);

impl Supervisor<'_> {
    /// Reads each process service's tree and queues a record update where it changed.
    pub(super) fn refresh_trees(&mut self) {
        if cgroup::base().is_some() || self.trees_read.is_some_and(|at| at.elapsed() < REFRESH) {
            return;
        }
        self.trees_read = Some(Instant::now());
        let records = self.records_for_trees();
        let mut trees: BTreeMap<String, Vec<ServiceProcess>> = BTreeMap::new();
        for (name, w) in &self.watched {
            let (Some(main), Some(record)) = (w.process, records.get(name).filter(|r| tracked(r))) else {
                continue;
            };
            let mut roots = recorded_tree(record);
            roots.push(main);
            // The main process is in the record already.
            let tree = with_descendants(&roots).into_iter().filter(|p| *p != main).collect();
            trees.insert(name.clone(), tree);
        }
        let mains = self.watched.values().filter_map(|w| w.process).map(|p| p.pid);
        let known: BTreeSet<i32> = trees.values().flatten().map(|p| p.pid).chain(mains).collect();
        for orphan in subreaper::adopted_children() {
            if known.contains(&orphan.pid) {
                continue;
            }
            let Some(service) = self.owner_of_orphan(orphan, &records) else {
                continue;
            };
            if let Some(tree) = trees.get_mut(&service) {
                tree.extend(with_descendants(&[orphan]));
            }
        }
        for (service, tree) in trees {
            let mut now: Vec<(i32, u64)> = tree.iter().map(|p| (p.pid, p.start_time)).collect();
            now.sort_unstable();
            now.dedup();
            let mut recorded = records.get(&service).map(|r| r.tree.clone()).unwrap_or_default();
            recorded.sort_unstable();
            let queued = self
                .pending
                .iter()
                .any(|e| matches!(e, Event::TreeChanged { service: s, .. } if *s == service));
            if now != recorded && !queued {
                self.pending.push(Event::TreeChanged { service, tree: now });
            }
        }
    }

    /// The records, read again only when the run directory changed since the last read.
    fn records_for_trees(&mut self) -> Records {
        let stamp = self.ctx.registry.run_dir_stamp();
        match &self.tree_records {
            Some((read_at, records)) if stamp.is_some() && *read_at == stamp => records.clone(),
            _ => {
                let records = records_in(&self.ctx.registry.entries());
                self.tree_records = Some((stamp, records.clone()));
                records
            }
        }
    }

    /// The service an orphan re-parented to us belongs to: the one its cookie names
    /// (recorded all the same: a program that rewrites its title erases the cookie
    /// later); else the one whose process group it is in; else, when it cleared both,
    /// the service started last before it: the only guess left, right whenever one
    /// service starts at a time.
    fn owner_of_orphan(&self, orphan: ServiceProcess, records: &Records) -> Option<String> {
        let candidates = records
            .values()
            .filter(|r| tracked(r) && self.watched.get(&r.service).is_some_and(|w| w.process.is_some()));
        match scan::cookie_service(orphan.pid, &self.ctx.config.root) {
            Some(Some(service)) => {
                return candidates
                    .clone()
                    .find(|r| r.service == service)
                    .map(|r| r.service.clone());
            }
            Some(None) => return None,
            None => {}
        }
        let pgid = orphan.pgid()?;
        if let Some(record) = candidates.clone().find(|r| r.pgid == pgid) {
            return Some(record.service.clone());
        }
        candidates
            .filter(|r| r.start_time <= orphan.start_time)
            .max_by_key(|r| r.start_time)
            .map(|r| r.service.clone())
    }
}

/// A process service outside any cgroup: its tree is ours to keep.
fn tracked(record: &Record) -> bool {
    record.container.is_none() && record.cgroup.is_none()
}

fn recorded_tree(record: &Record) -> Vec<ServiceProcess> {
    record
        .tree
        .iter()
        .map(|&(pid, start_time)| ServiceProcess { pid, start_time })
        .collect()
}
