//! Bringing the supervisor's watch list in line with the records: forgetting what a
//! command stopped, adopting what another one started.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{EndSeen, Event, FIRST_PAUSE, Phase, Supervisor, Watched, event_service};
use crate::os::ServiceProcess;
use crate::os::process::parent_of;
use crate::probe::{ProbeSite, Prober};
use crate::service::status;
use crate::service::status::{Health, Status};
use crate::service::{owner, relays};
use crate::state::{Entry, Record, ServiceState};

impl Supervisor<'_> {
    /// Brings the watch list in line with the records: services whose record is gone
    /// (stopped by a command) are forgotten, services started by someone else are
    /// adopted. Cheap when nothing changed: `run/`'s mtime is compared first (when it
    /// can tell: see `run_dir_stamp`).
    pub(super) fn sync(&mut self, force: bool) {
        let stamp = self.ctx.registry.run_dir_stamp();
        if !force && stamp.is_some() && stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        let mut records: BTreeMap<String, Record> = BTreeMap::new();
        let mut stopping = BTreeSet::new();
        for entry in self.ctx.registry.entries() {
            if let Entry::Record(record) = entry
                && self.scope.contains(&record.service)
            {
                if record.state == ServiceState::Stopping {
                    stopping.insert(record.service);
                } else {
                    records.insert(record.service.clone(), record);
                }
            }
        }
        let gone: Vec<String> = self
            .watched
            .keys()
            .filter(|n| !records.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            // A stop removes a record once the service's processes are gone: a record
            // gone while they run was lost (`.xtask` deleted), and the service is ours.
            let running = self
                .watched
                .get(&name)
                .is_some_and(|w| w.record.is_some() && w.process.is_some_and(|p| p.is_alive()));
            if running && !stopping.contains(&name) {
                if !self
                    .pending
                    .iter()
                    .any(|e| matches!(e, Event::RecordLost { service } if *service == name))
                {
                    self.pending.push(Event::RecordLost { service: name });
                }
                continue;
            }
            self.watched.remove(&name);
            relays::release(&name);
            self.pending.retain(|e| event_service(e) != name);
            self.event(&name, "stopped by another command");
        }
        for (name, record) in records {
            let known = self.watched.get(&name).is_some_and(|w| match w.process {
                Some(p) => p.pid == record.pid,
                None => !matches!(
                    record.state,
                    ServiceState::Starting | ServiceState::Healthy | ServiceState::Unhealthy
                ),
            });
            if !known {
                self.adopt(name, &record);
            }
        }
    }

    /// Starts watching a service as its record describes it. A record that says it
    /// runs, but whose process is gone, is an exit nobody saw (the service died between
    /// a start and this supervisor's first look): it is watched as running, so that the
    /// exit is reported and the restart policy decides, as for any exit.
    fn adopt(&mut self, name: String, record: &Record) {
        let process = ServiceProcess::recorded(record);
        let now = Instant::now();
        let watching = Phase::Healthy {
            failures: 0,
            next_probe: now,
        };
        let (phase, running) = match status::status(Some(&Entry::Record(record.clone())), true) {
            Status::Completed | Status::Failed => (Phase::Done, false),
            Status::Running(Health::Starting) => (
                Phase::Starting {
                    since: now,
                    deadline: None,
                    next_probe: now,
                    pause: FIRST_PAUSE,
                },
                true,
            ),
            Status::Running(_) => (watching, true),
            // The process is gone: an unseen exit, reported once it is noticed.
            Status::Exited | Status::Stale(_) => (watching, true),
            _ => (Phase::Waiting { due: now }, false),
        };
        // Our own child, even a zombie: then `reap` reports its real exit status.
        let own = running && parent_of(process.pid) == Some(std::process::id() as i32);
        let end = (running && !own).then(|| EndSeen::of(&process));
        let site = ProbeSite {
            root: self.ctx.config.root.clone(),
            log: record.log.clone(),
            log_offset: 0,
            container: record.container.clone(),
            owner: record
                .container
                .is_none()
                .then(|| owner::of_record(self.ctx.config.root.clone(), self.ctx.registry.clone(), name.clone())),
        };
        let service = self.ctx.config.service(&name);
        let prober = service.and_then(|s| s.health.as_ref().map(|h| Prober::new(s, h, site.clone())));
        let earlier = self.watched.get(&name);
        let generation = earlier.map_or(0, |w| w.generation.wrapping_add(1));
        let building = earlier.is_some_and(|w| w.building);
        self.watched.insert(
            name,
            Watched {
                process: running.then_some(process),
                own,
                end,
                phase,
                site,
                restarts: record.restarts,
                prober,
                probing: false,
                generation,
                building,
                build_again: false,
                record: Some(record.clone()),
            },
        );
    }
}
