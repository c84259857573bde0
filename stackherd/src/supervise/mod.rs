//! Supervision after start, shared by the foreground `start` and the detached monitor of
//! `start-bg`: restart policies with exponential backoff, liveness probes, reaping.
//!
//! The supervisor marks itself a child subreaper, so that grandchildren orphaned by a
//! service are re-parented to it and reaped here: no zombie ever appears under it. It
//! acts (restarts, writes records) only while holding the state lock and after
//! re-reading the service's record under it; `stop` holds that lock for its whole run
//! and removes the records before it lets go, so a supervisor never restarts a service
//! that is being stopped. Services started by someone else (another command, an
//! earlier monitor) are adopted: their exit is seen through their pidfds, without an
//! exit status. Probes run on threads of their own and report back, so a slow probe
//! never holds up reaping, the other services or Ctrl+C. Between events the loop
//! sleeps until its earliest real deadline (`wakes`): idle, it costs nothing.

mod apply;
mod ends;
mod follow;
mod mode;
mod pool;
mod probes;
mod rebuild;
mod relay;
mod sync;
mod trees;
mod wakes;
mod watch;
mod watch_rules;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;

pub use mode::{Follower, Mode};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Service;
use crate::error::{Result, exit};
use crate::os::interrupts::Interrupts;
use crate::os::wake::{self, DirWatch};
use crate::os::{Exit, ServiceProcess};
use crate::probe::{ProbeSite, Prober};
use crate::service::processes::Records;
use crate::service::{Context, monitor};
use crate::state::log_writer;
use crate::state::{Entry, Record};
use crate::stop;
use crate::stop::Scope;
use crate::ui;

use ends::EndSeen;
use probes::ProbeReport;
use rebuild::BuildReport;

/// The first pause between probes of a restarted service.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The supervision loop over the services of a project.
pub struct Supervisor<'a> {
    ctx: &'a Context,
    mode: Mode,
    interrupts: Interrupts,
    /// The services this supervisor cares for; the monitor cares for all.
    scope: BTreeSet<String>,
    watched: BTreeMap<String, Watched>,
    /// Things seen that still need the lock to be acted on.
    pending: Vec<Event>,
    stamp: Option<SystemTime>,
    /// Services that ended for good with a failure, and why.
    failed: BTreeMap<String, String>,
    /// Where probe threads report.
    reports: (mpsc::Sender<ProbeReport>, mpsc::Receiver<ProbeReport>),
    pool: pool::Pool,
    /// Stop everything and exit 1 once a service has failed for good (foreground).
    abort_on_failure: bool,
    /// When the services' process trees were last read (without cgroups).
    trees_read: Option<Instant>,
    /// The records as last read for the trees, with the run directory's stamp then.
    tree_records: Option<(Option<SystemTime>, Records)>,
    /// The files of the services with `watch`.
    watcher: Option<watch::Watcher>,
    /// Services whose watched files changed, until their quiet period ends.
    quiet: BTreeMap<String, Quiet>,
    /// Where build threads report.
    builds: (mpsc::Sender<BuildReport>, mpsc::Receiver<BuildReport>),
    /// Wakes a foreground start's loop when a record changes, the lock is let go of or
    /// a log grows.
    state_watch: Option<DirWatch>,
    /// When to try for the lock again, and how long the last wait was.
    lock_retry: Option<(Instant, Duration)>,
    /// The last problem reported (the lock, a write), so that a lasting one is told once.
    trouble: Option<String>,
    /// An ended child was left to the thread that waits for it: reap again soon.
    reap_again: bool,
}

/// A burst of changes to a service's watched files: it is built once they stop.
struct Quiet {
    /// The first change of the burst, and when the build is due.
    since: Instant,
    until: Instant,
    /// The last path that changed (an editor's or `sed -i`'s save ends with the rename
    /// of its temporary file to the file edited), and whether others did.
    last: PathBuf,
    more: bool,
}

struct Watched {
    process: Option<ServiceProcess>,
    /// Our child: its exit status comes from waitpid.
    own: bool,
    /// How the end of a process that is not our child is seen.
    end: Option<EndSeen>,
    phase: Phase,
    site: ProbeSite,
    restarts: u32,
    /// The service's probe, while no probe thread has it; `None` without a health check
    /// or while a probe runs.
    prober: Option<Prober>,
    /// A probe is running on a thread of its own.
    probing: bool,
    /// Counts the starts and adoptions, so that a probe report about an earlier
    /// instance of the service is recognised and dropped.
    generation: u64,
    /// A build after a change of its watched files runs.
    building: bool,
    /// Its files changed while it was building.
    build_again: bool,
    /// Its record when this instance was started or adopted: written again if the
    /// record is removed while it runs (`.xtask` deleted by hand or by `git clean`).
    record: Option<Record>,
}

enum Phase {
    Starting {
        since: Instant,
        deadline: Option<Instant>,
        next_probe: Instant,
        pause: Duration,
    },
    Healthy {
        failures: u32,
        next_probe: Instant,
    },
    Unhealthy {
        failures: u32,
        next_probe: Instant,
    },
    Waiting {
        due: Instant,
    },
    /// Taken down to be started again once `until` is healthy (`restart_with`).
    Held {
        until: String,
    },
    /// Completed or failed: nothing more to do.
    Done,
}

#[derive(Debug, Clone)]
enum Event {
    Ended {
        service: String,
        pid: i32,
        exit: Exit,
    },
    Healthy {
        service: String,
        took: Duration,
    },
    StartTimedOut {
        service: String,
        error: String,
    },
    LivenessFailed {
        service: String,
        error: String,
    },
    Recovered {
        service: String,
    },
    RestartDue {
        service: String,
    },
    /// The processes of a service outside any cgroup, as read now.
    TreeChanged {
        service: String,
        tree: Vec<(i32, u64)>,
    },
    /// Its watched files changed and its build ended (`None`: it has no build).
    Rebuilt {
        service: String,
        result: std::result::Result<Option<Duration>, String>,
    },
    /// Its log relay died; the new one, when one could start.
    RelayReplaced {
        service: String,
        relay: Option<ServiceProcess>,
    },
    /// Its record is gone while it runs: nobody stopped it.
    RecordLost {
        service: String,
    },
}

impl<'a> Supervisor<'a> {
    /// A supervisor of `scope`. It watches the files of the services with `watch` from
    /// now on: created before the start, it sees the edits made while it runs.
    pub fn new(ctx: &'a Context, mode: Mode, scope: BTreeSet<String>, interrupts: Interrupts) -> Self {
        let mut supervisor = Supervisor {
            ctx,
            mode,
            interrupts,
            scope,
            watched: BTreeMap::new(),
            pending: Vec::new(),
            stamp: None,
            failed: BTreeMap::new(),
            reports: mpsc::channel(),
            pool: pool::Pool::new(),
            trees_read: None,
            tree_records: None,
            abort_on_failure: false,
            watcher: None,
            quiet: BTreeMap::new(),
            builds: mpsc::channel(),
            state_watch: None,
            lock_retry: None,
            trouble: None,
            reap_again: false,
        };
        supervisor.start_watching();
        supervisor
    }

    /// A foreground start that stops everything and exits 1 once a service has failed
    /// for good (`start --abort-on-failure`), as `docker compose up --abort-on-container-failure` does.
    pub fn abort_on_failure(mut self, abort: bool) -> Self {
        self.abort_on_failure = abort && matches!(self.mode, Mode::Foreground(_));
        self
    }

    /// Takes in the records of what the start just wrote, before the start says it is
    /// done: a `rm -rf .xtask` right after `start-bg` returns is then a lost record,
    /// written again, and not an empty watch list, on which the monitor would end and
    /// leave the services running unsupervised and unrecorded.
    pub fn take_in_the_start(&mut self) {
        self.sync(true);
    }

    /// Supervises until interrupted or until nothing is left to watch. Returns the exit
    /// code: non-zero when a service failed for good.
    pub fn run(mut self) -> Result<u8> {
        monitor::become_subreaper();
        if !wake::on_child_exit() {
            self.ctx
                .ui
                .warn("cannot be told when a child ends (SIGCHLD); ends are noticed within a second");
        }
        self.watch_state_dir();
        self.sync(true);
        loop {
            if self.interrupts.any() {
                // Services a stop just ended are our children: reap them before leaving.
                self.reap();
                return self.finish_interrupted();
            }
            self.reap();
            self.check_adopted();
            self.watch_changes();
            self.collect_builds();
            self.collect_reports();
            self.probe_due();
            self.restarts_due();
            self.refresh_trees();
            let state_changed = self.state_changed();
            if self.pending.is_empty() {
                match state_changed {
                    Some(true) => self.sync(true),
                    Some(false) => {}
                    // Not told of changes: the run directory's stamp is looked at.
                    None => self.sync(false),
                }
            } else if state_changed == Some(true) || self.lock_retry.is_none_or(|(at, _)| at <= Instant::now()) {
                // A change in the state directory may be the lock let go of.
                self.act();
            }
            self.follow_logs();
            if self.abort_on_failure && !self.failed.is_empty() {
                return self.finish_failed();
            }
            if self.watched.values().all(|w| matches!(w.phase, Phase::Done)) {
                return Ok(self.finish_quietly());
            }
            self.sleep();
        }
    }

    fn restarts_due(&mut self) {
        let now = Instant::now();
        for (name, w) in &self.watched {
            if let Phase::Waiting { due } = w.phase {
                let queued = self
                    .pending
                    .iter()
                    .any(|e| matches!(e, Event::RestartDue { service } if service == name));
                if due <= now && !queued {
                    self.pending.push(Event::RestartDue { service: name.clone() });
                }
            }
        }
    }

    /// Applies pending events under the lock. If another command holds it, they wait
    /// (that command may be a `stop` that makes them moot), and so does a lock that
    /// cannot be taken at all (a read-only state directory): both are tried again
    /// after a pause that doubles, and a problem is reported once.
    fn act(&mut self) {
        let lock = match self.ctx.registry.try_lock(self.lock_name()) {
            Ok(Some(lock)) => lock,
            Ok(None) => return self.retry_lock(None),
            Err(err) => return self.retry_lock(Some(format!("cannot take the state lock: {err}"))),
        };
        self.lock_retry = None;
        self.sync(true);
        let mut trouble = None;
        for event in std::mem::take(&mut self.pending) {
            if let Err(err) = self.apply(event, &lock) {
                trouble = Some(err.to_string());
            }
        }
        self.report_trouble(trouble);
    }

    /// Watches the files of the supervised services that have `watch`.
    fn start_watching(&mut self) {
        let services: Vec<&Service> = self
            .scope
            .iter()
            .filter_map(|name| self.ctx.config.service(name))
            .filter(|s| s.watch.is_some())
            .collect();
        if services.is_empty() {
            return;
        }
        let (watcher, warnings) =
            watch::Watcher::new(&services, &self.ctx.config.root, &self.ctx.config.project.state_dir);
        for warning in warnings {
            self.ctx.ui.warn(warning);
        }
        self.watcher = watcher;
    }

    fn follow_logs(&mut self) {
        if let Mode::Foreground(follower) = &mut self.mode {
            follower.print_new();
        }
    }

    /// A lifecycle event, prefixed with the service's name.
    fn event(&self, service: &str, text: impl fmt::Display) {
        let line = format!("{} {service}: {text}", ui::timestamp());
        match &self.mode {
            Mode::Foreground(follower) => {
                follower.event(service, text);
                self.ctx.registry.append_event(&line);
            }
            // The monitor's output is its event log.
            Mode::Monitor => self.ctx.ui.result(line),
        }
    }

    fn lock_name(&self) -> &'static str {
        match self.mode {
            Mode::Foreground(_) => "start (supervising)",
            Mode::Monitor => "monitor",
        }
    }

    /// A service failed for good under `--abort-on-failure`: name it, stop everything
    /// this start supervises, exit 1.
    fn finish_failed(mut self) -> Result<u8> {
        self.follow_logs();
        let names: Vec<&String> = self.failed.keys().collect();
        self.ctx.ui.warn(format!(
            "{} failed for good; stopping everything (--abort-on-failure)",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ));
        self.stop_everything()
    }

    /// A foreground start's end: the five-phase stop of what it supervises; exits 1
    /// when a service failed for good.
    fn stop_everything(&mut self) -> Result<u8> {
        let lock = self.ctx.registry.lock("start (stopping)")?;
        // The logs whose relay still copies a running service's output: the stop's
        // last lines will come through them.
        let open: Vec<(PathBuf, u64)> = self
            .scope
            .iter()
            .filter_map(|name| match self.ctx.registry.entry(name) {
                Some(Entry::Record(r))
                    if r.container.is_none() && !log_writer::ended_since(&r.log, r.started_at_ms) =>
                {
                    Some((r.log, r.started_at_ms))
                }
                _ => None,
            })
            .collect();
        let scope: Vec<String> = self.scope.iter().cloned().collect();
        // Every service this supervisor started or restarted is in its scope.
        let options = stop::Options {
            interrupts: Some(self.interrupts),
            adopted_are_ours: true,
            ..stop::Options::default()
        };
        let stopped = stop::stop_services(self.ctx, &Scope::Services(scope), options, &lock);
        // The services' last words (`got SIGTERM`, `bye`), written while they stopped,
        // end the stream: its reader sees why each one ended.
        if let Mode::Foreground(follower) = &mut self.mode {
            follower.drain(&open);
        }
        stopped?;
        Ok(self.failure_code())
    }

    /// The first Ctrl+C (or SIGTERM, SIGHUP): a foreground start stops what it
    /// supervises in five phases (a second one forces it); the monitor just ends and
    /// leaves the services running.
    fn finish_interrupted(mut self) -> Result<u8> {
        match &self.mode {
            Mode::Monitor => {
                self.ctx.ui.result(format!(
                    "{} monitor: signalled, exiting; services keep running",
                    ui::timestamp()
                ));
                Ok(exit::OK)
            }
            Mode::Foreground(_) => {
                self.follow_logs();
                self.ctx.ui.warn("stopping (Ctrl+C again to force)");
                self.stop_everything()
            }
        }
    }

    /// Everything ended by itself (completed, failed, or stopped by another command).
    fn finish_quietly(&mut self) -> u8 {
        self.follow_logs();
        if matches!(self.mode, Mode::Foreground(_)) {
            self.ctx.ui.info("nothing left to supervise");
        }
        self.failure_code()
    }

    fn failure_code(&self) -> u8 {
        if self.failed.is_empty() {
            return exit::OK;
        }
        for (service, why) in &self.failed {
            ui::error(format!("service `{service}` failed for good: {why}"));
        }
        exit::FAILURE
    }
}

fn event_service(event: &Event) -> &str {
    match event {
        Event::Ended { service, .. }
        | Event::Healthy { service, .. }
        | Event::StartTimedOut { service, .. }
        | Event::LivenessFailed { service, .. }
        | Event::Recovered { service }
        | Event::RestartDue { service }
        | Event::TreeChanged { service, .. }
        | Event::Rebuilt { service, .. }
        | Event::RelayReplaced { service, .. }
        | Event::RecordLost { service } => service,
    }
}

fn service_interval(service: &Service) -> Duration {
    service.health.as_ref().map_or(Duration::from_secs(1), |h| h.interval)
}
