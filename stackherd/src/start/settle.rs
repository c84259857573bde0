//! Settling a start: a service's outcome recorded (healthy, completed, restarted or
//! failed with its log tail), and the report on services that take long.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{FAILURE_LOG_LINES, Launch, REPORT_EVERY, Step};
use crate::error::{Error, Interrupted, Result};
use crate::os::cgroup::Cgroup;
use crate::os::{Exit, ServiceProcess, subreaper};
use crate::poll;
use crate::probe::{StartFailure, Started};
use crate::service::daemon;
use crate::service::daemon::DaemonSearch;
use crate::service::restart_policy::{Decision, End, attempt_text, decide};
use crate::state::{ServiceState, fault, log_writer, logs};
use crate::ui;

/// How long a failed start waits for the relay of a service that ended to write its
/// last lines (it ends then; a daemon that kept its output keeps it running).
const RELAY_DRAIN: Duration = Duration::from_millis(500);

impl Launch<'_> {
    /// Records a service's outcome: healthy, completed, a restart its policy asks for,
    /// or the explained failure.
    pub(super) fn settle(&mut self, name: &str, outcome: std::result::Result<Started, StartFailure>) -> Result<()> {
        let ctx = self.ctx;
        let service = self.service(name)?;
        let Some(record) = self.records.get_mut(name) else {
            return Ok(());
        };
        let (state, took, status) = match outcome {
            Ok(Started::Healthy(took)) => (ServiceState::Healthy, took, Step::Healthy),
            Ok(Started::Completed(took)) => (ServiceState::Completed, took, Step::Completed),
            Err(StartFailure::Exited(exit)) => {
                // An exit during startup is a failed start unless the policy restarts it.
                let decision = decide(service, &End::Exited(exit), record.restarts, ctx.config.is_job(name));
                if let Decision::Restart { delay, attempt } = decision {
                    record.restarts = attempt;
                    record.state = ServiceState::Restarting;
                    record.last_exit = Some(exit.to_string());
                    ctx.registry.write(record, self.lock)?;
                    ctx.ui.warn(format!(
                        "{name} exited during startup ({exit}); restarting in {} ({})",
                        ui::duration(delay),
                        attempt_text(service, attempt)
                    ));
                    self.status.insert(name.to_string(), Step::Due(poll::after(delay)));
                    return Ok(());
                }
                let gave_up = if record.restarts > 0 {
                    format!(", gave up after {} restart(s)", record.restarts)
                } else {
                    String::new()
                };
                return Err(self.fail(
                    name,
                    format!("service `{name}` exited during startup ({exit}){gave_up}"),
                ));
            }
            Err(StartFailure::Unhealthy { waited, last_error }) => {
                let message = format!(
                    "service `{name}` did not become healthy within {}: {last_error}",
                    ui::duration(waited)
                );
                return Err(self.fail(name, message));
            }
            Err(StartFailure::Interrupted) => {
                self.fail(name, format!("start of `{name}` interrupted"));
                return Err(Error::Interrupted(Interrupted::StartOf(name.to_string())));
            }
        };
        record.state = state;
        record.healthy_after_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        self.unsaved.insert(name.to_string());
        let what = if matches!(status, Step::Completed) {
            "completed"
        } else {
            "healthy"
        };
        ctx.ui
            .ok(format!("{name}  pid {}  {what} in {}", record.pid, ui::duration(took)));
        self.status.insert(name.to_string(), status);
        Ok(())
    }

    /// When the service forked into the background, its record names its new main
    /// process (and, without a cgroup, the processes it owns), written at once: a
    /// rollback must find them.
    pub(super) fn follow_daemon(&mut self, name: &str, main: &Mutex<Option<ServiceProcess>>) -> Result<()> {
        let Some(main) = main.lock().ok().and_then(|m| *m) else {
            return Ok(());
        };
        let Some(record) = self.records.get_mut(name) else {
            return Ok(());
        };
        if record.pid == main.pid {
            return Ok(());
        }
        self.ctx.ui.info(format!(
            "{name} forked into the background; its main process is pid {}",
            main.pid
        ));
        daemon::record_main(record, main);
        self.ctx.registry.write(record, self.lock)
    }

    /// Services whose first process exited 0 after their health check passed: nginx
    /// answers on its port from the process that then forks the master away and exits.
    /// Their daemon is recorded before the start reports, so that a `status` right
    /// after shows it running, not an exit beside leftovers. (One still running now is
    /// followed by its supervisor when it exits, as any daemon.)
    pub(super) fn follow_late_forks(&mut self) -> Result<()> {
        let exited: Vec<(String, ServiceProcess)> = self
            .records
            .iter()
            .filter(|(name, r)| {
                r.state == ServiceState::Healthy && r.container.is_none() && !self.ctx.config.is_job(name)
            })
            .map(|(name, r)| (name.clone(), ServiceProcess::recorded(r)))
            .filter(|(_, first)| subreaper::peek_child_exit(first.pid) == Some(Exit::Code(0)))
            .collect();
        let alone = exited.len() == 1;
        for (name, first) in exited {
            let service = self.service(&name)?;
            let cgroup = self
                .records
                .get(&name)
                .and_then(|r| r.cgroup.as_deref())
                .and_then(|path| Cgroup::recorded(path, &self.ctx.config.root, &name));
            // Without a cgroup, two daemons re-parented to us since are told apart by
            // nothing: their supervisor follows each as its first process is reaped.
            if cgroup.is_none() && !alone {
                continue;
            }
            if let Some(main) = DaemonSearch::new(self.ctx, service, cgroup, first).main() {
                self.follow_daemon(&name, &Mutex::new(Some(main)))?;
            }
        }
        Ok(())
    }

    /// Writes the records of the services settled since the last call. This runs after
    /// the services that were waiting for them are spawned: each write costs a fraction
    /// of a millisecond, and a level of ten services waited for ten of them before.
    pub(super) fn save_settled(&mut self) -> Result<()> {
        for name in std::mem::take(&mut self.unsaved) {
            if let Some(record) = self.records.get(&name) {
                self.ctx.registry.write(record, self.lock)?;
                fault::point(&self.ctx.registry, fault::AFTER_HEALTHY);
            }
        }
        Ok(())
    }

    /// Explains a failed start: the message, the last probe error and the log's tail.
    fn fail(&self, name: &str, message: String) -> Error {
        let ctx = self.ctx;
        ctx.ui.fail(&message);
        let log = ctx.registry.log_path(name);
        if let Some(record) = self.records.get(name)
            && !ServiceProcess::recorded(record).is_alive()
        {
            // Its relay marks the end of its output once the last words are written.
            let deadline = poll::after(RELAY_DRAIN);
            let mut backoff = poll::Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
            while !log_writer::ended_since(&log, record.started_at_ms) && Instant::now() < deadline {
                backoff.pause(deadline);
            }
        }
        let tail = logs::tail_of_run(&log, FAILURE_LOG_LINES);
        if tail.is_empty() {
            ctx.ui.info(format!("it wrote nothing to its log {}", log.display()));
        } else {
            ctx.ui
                .info(format!("last {} line(s) of {}:", tail.len(), log.display()));
            ctx.ui.quote(&tail);
        }
        Error::StartFailed {
            service: name.to_string(),
            reason: message,
            log_tail: tail,
        }
    }

    /// Says what each long-waiting service waits for, with the latest probe error and
    /// log line, so that nobody stares at a silent terminal.
    pub(super) fn report_slow(&mut self) {
        let now = Instant::now();
        for (name, waiting) in &mut self.waiting {
            if now.saturating_duration_since(waiting.reported) < REPORT_EVERY {
                continue;
            }
            waiting.reported = now;
            let probe = self
                .ctx
                .config
                .service(name)
                .and_then(|s| s.health.as_ref())
                .map(|h| h.probe.to_string());
            let error = waiting.progress.lock().ok().and_then(|p| p.last_error.clone());
            let last_line = logs::tail_of_run(&self.ctx.registry.log_path(name), 1).pop();
            let mut message = format!(
                "waiting for {name} ({})",
                ui::duration(now.saturating_duration_since(waiting.since))
            );
            if let Some(probe) = probe {
                message.push_str(&format!(": {probe}"));
            }
            if let Some(error) = error {
                message.push_str(&format!("; last error: {error}"));
            }
            self.ctx.ui.info(message);
            if let Some(line) = last_line {
                self.ctx.ui.quote(&[line]);
            }
        }
    }
}
