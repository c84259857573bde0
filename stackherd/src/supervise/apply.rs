//! What the supervisor does with an event, under the lock: mark healthy, take down an
//! unhealthy service, decide and record an exit, respawn after the backoff.

use std::time::{Duration, Instant};

use super::follow::Cause;
use super::{EndSeen, Event, FIRST_PAUSE, Phase, Supervisor, service_interval};
use crate::config::RestartPolicy;
use crate::error::Result;
use crate::os::Exit;
use crate::os::cgroup::Cgroup;
use crate::poll;
use crate::probe::Prober;
use crate::service::daemon;
use crate::service::daemon::DaemonSearch;
use crate::service::restart_policy::{Decision, End, attempt_text, decide, policy_name, restarts_in_window, succeeded};
use crate::service::{launch, monitor, owner, relays};
use crate::state::{Entry, Lock, Record, ServiceState, logs, now_ms};
use crate::stop;
use crate::ui;
use nix::libc;

/// The start-up of a service without a health check, for telling a daemon's fork from
/// an exit.
const DAEMON_BUDGET: Duration = Duration::from_secs(30);

impl Supervisor<'_> {
    pub(super) fn apply(&mut self, event: Event, lock: &Lock) -> Result<()> {
        match event {
            Event::Ended { service, pid, exit } => {
                if self
                    .watched
                    .get(&service)
                    .and_then(|w| w.process)
                    .is_some_and(|p| p.pid == pid)
                {
                    if exit == Exit::Code(0) && self.follow_daemon(&service, lock)? {
                        return Ok(());
                    }
                    if matches!(exit, Exit::Signal(sig) if sig == libc::SIGPIPE || sig == libc::SIGHUP)
                        && self.relay_gone(&service)
                    {
                        self.event(
                            &service,
                            "its log relay had died, so nothing read its output any more; that ended it",
                        );
                    }
                    // What the ended instance left behind (nginx workers whose master
                    // died) would hold its ports against the next one: systemd's
                    // KillMode=control-group.
                    self.take_down(&service, lock);
                    self.on_exit(&service, End::Exited(exit), lock)?;
                }
            }
            Event::Healthy { service, took } => {
                if let Some(w) = self
                    .watched
                    .get_mut(&service)
                    .filter(|w| matches!(w.phase, Phase::Starting { .. }))
                {
                    w.phase = Phase::Healthy {
                        failures: 0,
                        next_probe: Instant::now(),
                    };
                    self.update(&service, lock, |r| {
                        r.state = ServiceState::Healthy;
                        r.healthy_after_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
                    })?;
                    self.event(&service, format!("healthy after {}", ui::duration(took)));
                    self.release_held(&service, lock)?;
                }
            }
            Event::StartTimedOut { service, error } => {
                if self
                    .watched
                    .get(&service)
                    .is_some_and(|w| matches!(w.phase, Phase::Starting { .. }))
                {
                    self.event(&service, format!("did not become healthy: {error}"));
                    self.take_down(&service, lock);
                    self.on_exit(&service, End::TakenDown, lock)?;
                }
            }
            Event::LivenessFailed { service, error } => self.on_liveness_failure(&service, &error, lock)?,
            Event::Recovered { service } => {
                if let Some(w) = self.watched.get_mut(&service) {
                    w.phase = Phase::Healthy {
                        failures: 0,
                        next_probe: Instant::now(),
                    };
                    self.update(&service, lock, |r| r.state = ServiceState::Healthy)?;
                    self.event(&service, "healthy again");
                }
            }
            Event::RestartDue { service } => {
                if self
                    .watched
                    .get(&service)
                    .is_some_and(|w| matches!(w.phase, Phase::Waiting { .. }))
                {
                    self.respawn(&service, lock)?;
                }
            }
            Event::TreeChanged { service, tree } => self.update(&service, lock, |r| r.tree = tree)?,
            Event::Rebuilt { service, result } => self.on_rebuilt(&service, result, lock)?,
            Event::RelayReplaced { service, relay } => self.on_relay_replaced(&service, relay, lock)?,
            Event::RecordLost { service } => self.on_record_lost(&service, lock)?,
        }
        Ok(())
    }

    /// A service whose process exited 0 during its start-up (its health check's
    /// start-up budget from the spawn: a daemon's listener may answer before the parent
    /// that forked it exits), and which owns other processes, forked into the
    /// background: its main process is now the one `DaemonSearch` finds, watched by
    /// identity. Returns false when it did not.
    fn follow_daemon(&mut self, name: &str, lock: &Lock) -> Result<bool> {
        let (Some(service), Some(Entry::Record(record))) =
            (self.ctx.config.service(name), self.ctx.registry.entry(name))
        else {
            return Ok(false);
        };
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(false);
        };
        let budget = service.health.as_ref().map_or(DAEMON_BUDGET, |h| h.startup_deadline());
        let age = Duration::from_millis(now_ms().saturating_sub(record.started_at_ms));
        let Some(exited) = w
            .process
            .filter(|_| age <= budget && w.site.container.is_none() && !self.ctx.config.is_job(name))
        else {
            return Ok(false);
        };
        let cgroup = record
            .cgroup
            .as_deref()
            .and_then(|path| Cgroup::recorded(path, &self.ctx.config.root, name));
        let Some(main) = DaemonSearch::new(self.ctx, service, cgroup, exited).main() else {
            return Ok(false);
        };
        w.process = Some(main);
        w.own = false;
        w.end = Some(EndSeen::of(&main));
        self.update(name, lock, |r| daemon::record_main(r, main))?;
        self.event(
            name,
            format!("forked into the background; its main process is pid {}", main.pid),
        );
        Ok(true)
    }

    pub(super) fn on_liveness_failure(&mut self, name: &str, error: &str, lock: &Lock) -> Result<()> {
        let Some(service) = self.ctx.config.service(name) else {
            return Ok(());
        };
        if !self
            .watched
            .get(name)
            .is_some_and(|w| matches!(w.phase, Phase::Healthy { .. }))
        {
            return Ok(());
        }
        if service.restart == RestartPolicy::No {
            if let Some(w) = self.watched.get_mut(name) {
                w.phase = Phase::Unhealthy {
                    failures: 0,
                    next_probe: poll::after(service_interval(service)),
                };
            }
            self.update(name, lock, |r| r.state = ServiceState::Unhealthy)?;
            self.event(name, format!("unhealthy: {error} (restart = \"no\": left running)"));
            return Ok(());
        }
        self.event(name, format!("unhealthy: {error}; taking it down"));
        self.take_down(name, lock);
        self.on_exit(name, End::TakenDown, lock)
    }

    /// Decides what an exit means and records it: a restart after a backoff, a
    /// completed job, or the end.
    pub(super) fn on_exit(&mut self, name: &str, exit: End, lock: &Lock) -> Result<()> {
        let Some(service) = self.ctx.config.service(name) else {
            return Ok(());
        };
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(());
        };
        w.process = None;
        w.end = None;
        relays::release(name);
        let up_for = match self.ctx.registry.entry(name) {
            Some(Entry::Record(record)) => Duration::from_millis(now_ms().saturating_sub(record.started_at_ms)),
            _ => Duration::ZERO,
        };
        w.restarts = restarts_in_window(service, w.restarts, up_for);
        let decision = decide(service, &exit, w.restarts, self.ctx.config.is_job(name));
        let (state, phase, message) = match decision {
            Decision::Restart { delay, attempt } => {
                w.restarts = attempt;
                (
                    ServiceState::Restarting,
                    Phase::Waiting {
                        due: poll::after(delay),
                    },
                    format!(
                        "exited ({exit}); restarting in {} ({})",
                        ui::duration(delay),
                        attempt_text(service, attempt)
                    ),
                )
            }
            Decision::Complete => (ServiceState::Completed, Phase::Done, "completed".to_string()),
            Decision::Leave => {
                // An exit with a success code that is not restarted ended well.
                let state = if succeeded(service, &exit) {
                    ServiceState::Completed
                } else {
                    self.failed.insert(name.to_string(), format!("exited ({exit})"));
                    ServiceState::Failed
                };
                (
                    state,
                    Phase::Done,
                    format!(
                        "exited ({exit}); not restarted (restart = \"{}\")",
                        policy_name(service.restart)
                    ),
                )
            }
            Decision::GiveUp => {
                let why = format!("gave up after {} restart(s); last: {exit}", w.restarts);
                self.failed.insert(name.to_string(), why.clone());
                (ServiceState::Failed, Phase::Done, format!("exited ({exit}); {why}"))
            }
        };
        let restarts = w.restarts;
        let restarting = matches!(phase, Phase::Waiting { .. });
        w.phase = phase;
        self.update(name, lock, |r| {
            r.state = state;
            r.restarts = restarts;
            r.last_exit = Some(exit.to_string());
        })?;
        self.event(name, message);
        if restarting {
            self.hold_dependents(name, Cause::Restart, lock)?;
        } else if self.failed.contains_key(name) {
            self.fail_held(name, lock)?;
        }
        Ok(())
    }

    /// Starts a service again after its backoff.
    pub(super) fn respawn(&mut self, name: &str, lock: &Lock) -> Result<()> {
        let ctx = self.ctx;
        let Some(service) = ctx.config.service(name) else {
            return Ok(());
        };
        let log = ctx.registry.open_log_for_start(name);
        let log_offset = logs::len(&ctx.registry.log_path(name));
        let spawned = log.and_then(|log| launch::start(ctx, service, log, None));
        let spawned = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                self.event(name, format!("cannot start: {err}"));
                return self.on_exit(name, End::Exited(Exit::Unknown), lock);
            }
        };
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(());
        };
        let record = launch::fresh_record(ctx, service, &spawned, w.restarts);
        ctx.registry.write(&record, lock)?;
        w.record = Some(record);
        let now = Instant::now();
        w.process = Some(spawned.process);
        w.own = spawned.child.is_some();
        w.end = (!w.own).then(|| EndSeen::of(&spawned.process));
        w.site.log_offset = log_offset;
        w.site.container = spawned.container.clone();
        w.site.owner = spawned
            .container
            .is_none()
            .then(|| owner::of_record(ctx.config.root.clone(), ctx.registry.clone(), name.to_string()));
        w.generation = w.generation.wrapping_add(1);
        w.probing = false;
        w.prober = service.health.as_ref().map(|h| Prober::new(service, h, w.site.clone()));
        w.phase = Phase::Starting {
            since: now,
            deadline: service.health.as_ref().map(|h| poll::later(now, h.startup_deadline())),
            next_probe: now,
            pause: FIRST_PAUSE,
        };
        self.event(name, format!("started (pid {})", spawned.process.pid));
        Ok(())
    }

    /// Stops one service's processes (its stop command or signal, the grace period,
    /// then SIGKILL) without touching its record.
    pub(super) fn take_down(&mut self, name: &str, lock: &Lock) {
        if let Some(w) = self.watched.get_mut(name) {
            w.process = None;
            w.end = None;
        }
        relays::release(name);
        let survivors = stop::take_down(self.ctx, name, lock);
        if !survivors.is_empty() {
            self.event(name, format!("{} process(es) survived SIGKILL", survivors.len()));
        }
    }

    /// The record of a running service was removed, not by a stop: written again, as
    /// this instance's record with its state and restarts as they are now, and the
    /// supervisor's own with it, so that `status` and `stop` know them again.
    fn on_record_lost(&mut self, name: &str, lock: &Lock) -> Result<()> {
        let Some(w) = self.watched.get(name) else {
            return Ok(());
        };
        let (Some(mut record), Some(process)) = (w.record.clone(), w.process) else {
            return Ok(());
        };
        if self.ctx.registry.entry(name).is_some() || !process.is_alive() {
            return Ok(());
        }
        // The main process may be a daemon found since (`follow_daemon`).
        if record.pid != process.pid {
            daemon::record_main(&mut record, process);
        }
        record.restarts = w.restarts;
        record.state = match w.phase {
            Phase::Healthy { .. } => ServiceState::Healthy,
            Phase::Unhealthy { .. } => ServiceState::Unhealthy,
            _ => ServiceState::Starting,
        };
        self.ctx.registry.write(&record, lock)?;
        if self.ctx.registry.monitor().is_none()
            && let Some(me) = monitor::monitor_record(matches!(self.mode, super::Mode::Foreground(_)))
        {
            self.ctx.registry.write_monitor(&me, lock)?;
        }
        self.event(name, "its record was removed while it runs; written again");
        Ok(())
    }

    pub(super) fn update(&self, name: &str, lock: &Lock, change: impl FnOnce(&mut Record)) -> Result<()> {
        if let Some(Entry::Record(mut record)) = self.ctx.registry.entry(name) {
            change(&mut record);
            self.ctx.registry.write(&record, lock)?;
        }
        Ok(())
    }
}
