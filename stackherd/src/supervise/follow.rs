//! Dependents that restart with their dependency: `restart = true` on a `depends_on`
//! entry (whatever restarts the dependency) and `restart_with = true` (a rebuild after
//! a change). They are taken down before the dependency and started again once it is
//! healthy.

use std::collections::BTreeSet;

use super::{Phase, Supervisor};
use crate::error::Result;
use crate::state::{Lock, ServiceState};

/// Why a dependency restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// Its watched files changed and it was rebuilt: `restart_with` follows too.
    Rebuild,
    /// It ended and its policy restarts it.
    Restart,
}

impl Supervisor<'_> {
    /// Takes down the dependents that restart with `name` and holds them until the one
    /// they wait for is healthy again.
    pub(super) fn hold_dependents(&mut self, name: &str, cause: Cause, lock: &Lock) -> Result<()> {
        for (dependent, until) in self.restarted_with(name, cause).into_iter().rev() {
            // Held already, or ended: nothing runs to take down.
            if self
                .watched
                .get(&dependent)
                .is_none_or(|w| matches!(w.phase, Phase::Held { .. } | Phase::Done))
            {
                continue;
            }
            self.take_down(&dependent, lock);
            if let Some(w) = self.watched.get_mut(&dependent) {
                w.phase = Phase::Held { until: until.clone() };
            }
            self.update(&dependent, lock, |r| r.state = ServiceState::Restarting)?;
            let why = match cause {
                Cause::Rebuild => "restart_with, or restart on the dependency",
                Cause::Restart => "restart on the dependency",
            };
            self.event(&dependent, format!("restarts once {until} is healthy ({why})"));
        }
        Ok(())
    }

    /// Starts the dependents that waited for `name` to be healthy again.
    pub(super) fn release_held(&mut self, name: &str, lock: &Lock) -> Result<()> {
        let held = self.held_for(name);
        for dependent in held {
            self.failed.remove(&dependent);
            self.respawn(&dependent, lock)?;
        }
        Ok(())
    }

    /// `name` ended for good: the dependents held for it will not be started again.
    pub(super) fn fail_held(&mut self, name: &str, lock: &Lock) -> Result<()> {
        let held = self.held_for(name);
        for dependent in held {
            if let Some(w) = self.watched.get_mut(&dependent) {
                w.phase = Phase::Done;
            }
            let why = format!("its dependency {name} failed for good");
            self.update(&dependent, lock, |r| r.state = ServiceState::Failed)?;
            self.event(&dependent, format!("not started again: {why}"));
            self.failed.insert(dependent.clone(), why);
            // Those held for it in turn (the graph has no cycles).
            self.fail_held(&dependent, lock)?;
        }
        Ok(())
    }

    /// The services held until `name` is healthy again.
    fn held_for(&self, name: &str) -> Vec<String> {
        self.watched
            .iter()
            .filter(|(_, w)| matches!(&w.phase, Phase::Held { until } if until == name))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The supervised services that restart with `name` for `cause`, directly or
    /// through each other, in start order, each with the one it waits for: a
    /// dependency restarted with it, or `name`.
    fn restarted_with(&self, name: &str, cause: Cause) -> Vec<(String, String)> {
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut frontier = vec![name.to_string()];
        while let Some(current) = frontier.pop() {
            for service in &self.ctx.config.services {
                let follows = self.watched.contains_key(&service.name)
                    && service.depends_on.iter().any(|d| {
                        d.service == current && (d.restart || (cause == Cause::Rebuild && service.restart_with))
                    });
                if follows && found.insert(service.name.clone()) {
                    frontier.push(service.name.clone());
                }
            }
        }
        let order: Vec<String> = found.iter().cloned().collect();
        let waits_for = |dependent: &str| {
            let service = self.ctx.config.service(dependent);
            let restarted = service.and_then(|s| s.dependency_names().find(|d| found.contains(*d)));
            restarted.unwrap_or(name).to_string()
        };
        self.ctx
            .config
            .graph()
            .levels(&order)
            .into_iter()
            .flatten()
            .map(|dependent| {
                let until = waits_for(&dependent);
                (dependent, until)
            })
            .collect()
    }
}
