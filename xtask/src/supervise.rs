//! Supervision after start, shared by the foreground `start` and the detached monitor of
//! `start-bg`: restart policies with exponential backoff, liveness probes, reaping.
//!
//! The supervisor marks itself a child subreaper, so that grandchildren orphaned by a
//! service are re-parented to it and reaped here: no zombie ever appears under it. It
//! acts (restarts, writes records) only while holding the state lock and after
//! re-reading the service's record under it; `stop` holds that lock for its whole run
//! and removes the records before it lets go, so a supervisor never restarts a service
//! that is being stopped. Services started by someone else (another command, an
//! earlier monitor) are adopted: their exit is seen by polling their identity, without
//! an exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::Context;
use crate::config::{Condition, RestartPolicy, Service};
use crate::error::{Result, exit};
use crate::health::{self, ProbeSite};
use crate::logs::Follower;
use crate::process::{self, ServiceProcess};
use crate::registry::{Entry, Lock, MonitorRecord, Record, ServiceState, now_ms};
use crate::signals::Interrupts;
use crate::spawn;
use crate::stop::{self, Scope};
use crate::ui;

/// The longest pause between two restarts, however often a service failed.
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// The first pause between probes of a restarted service.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// How a service's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// It was not our child, so only its disappearance was seen.
    Unknown,
    /// It was taken down because it did not become or stay healthy.
    Unhealthy,
}

/// What to do about an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay`; this is restart number `attempt`.
    Restart { delay: Duration, attempt: u32 },
    /// A one-shot job finished with exit code 0.
    Complete,
    /// Not restarted: its policy says so (`no`, or `on-failure` after a clean exit).
    Leave,
    /// Not restarted any more: `max_restarts` reached.
    GiveUp,
}

/// The restart decision for `service` after `exit`, having been restarted `restarts`
/// times already. Pure: the table tests below pin it.
pub fn decide(service: &Service, exit: &Exit, restarts: u32, job: bool) -> Decision {
    let clean = *exit == Exit::Code(0);
    if job && clean {
        return Decision::Complete;
    }
    let wants_restart = match service.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure => !clean,
        RestartPolicy::Always => true,
    };
    if !wants_restart {
        Decision::Leave
    } else if restarts >= service.max_restarts {
        Decision::GiveUp
    } else {
        Decision::Restart {
            delay: backoff(service.restart_delay, restarts),
            attempt: restarts + 1,
        }
    }
}

/// `restart_delay`, doubled for each restart already made, capped.
pub fn backoff(first: Duration, restarts: u32) -> Duration {
    let factor = 2u32.saturating_pow(restarts.min(16));
    first.saturating_mul(factor).min(MAX_RESTART_DELAY.max(first))
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            _ => Exit::Unknown,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(n) => match Signal::try_from(*n) {
                Ok(signal) => write!(f, "killed by {}", signal.as_str()),
                Err(_) => write!(f, "killed by signal {n}"),
            },
            Exit::Unknown => f.write_str("exit status unknown"),
            Exit::Unhealthy => f.write_str("taken down as unhealthy"),
        }
    }
}

/// The record of a service just spawned.
pub fn fresh_record(ctx: &Context, service: &Service, process: &ServiceProcess, restarts: u32) -> Record {
    Record {
        service: service.name.clone(),
        pid: process.pid,
        pgid: process.pgid().unwrap_or(process.pid),
        start_time: process.start_time,
        command: service.command.to_string(),
        started_at_ms: now_ms(),
        restarts,
        state: ServiceState::Starting,
        healthy_after_ms: None,
        last_exit: None,
        log: ctx.registry.log_path(&service.name),
        ports: service.ports.clone(),
        container: None,
    }
}

/// A foreground `start` prints logs and events; the monitor writes events to its log.
pub enum Mode {
    Foreground(Follower),
    Monitor,
}

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
}

struct Watched {
    process: Option<ServiceProcess>,
    /// Our child: its exit status comes from waitpid.
    own: bool,
    phase: Phase,
    site: ProbeSite,
    restarts: u32,
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
    /// Completed or failed: nothing more to do.
    Done,
}

#[derive(Debug, Clone)]
enum Event {
    Exited { service: String, pid: i32, exit: Exit },
    Healthy { service: String, took: Duration },
    StartTimedOut { service: String, error: String },
    LivenessFailed { service: String, error: String },
    Recovered { service: String },
    RestartDue { service: String },
}

impl<'a> Supervisor<'a> {
    pub fn new(ctx: &'a Context, mode: Mode, scope: BTreeSet<String>, interrupts: Interrupts) -> Self {
        Supervisor {
            ctx,
            mode,
            interrupts,
            scope,
            watched: BTreeMap::new(),
            pending: Vec::new(),
            stamp: None,
            failed: BTreeMap::new(),
        }
    }

    /// Supervises until interrupted or until nothing is left to watch. Returns the exit
    /// code: non-zero when a service failed for good.
    pub fn run(mut self) -> Result<u8> {
        become_subreaper();
        self.sync(true);
        let tick = match self.mode {
            Mode::Foreground(_) => Duration::from_millis(50),
            Mode::Monitor => Duration::from_millis(100),
        };
        loop {
            if self.interrupts.any() {
                // Services a stop just ended are our children: reap them before leaving.
                self.reap();
                return self.finish_interrupted();
            }
            self.reap();
            self.check_adopted();
            self.probe_due();
            self.restarts_due();
            if !self.pending.is_empty() {
                self.act();
            } else {
                self.sync(false);
            }
            self.follow_logs();
            if self.watched.values().all(|w| matches!(w.phase, Phase::Done)) {
                return Ok(self.finish_quietly());
            }
            let next = self.next_wake().min(Instant::now() + tick);
            self.interrupts.pause(next.saturating_duration_since(Instant::now()));
        }
    }

    /// Reaps every child that ended: service main processes (their exit is an event)
    /// and orphaned grandchildren re-parented to us (nothing to do but reap).
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.saw_exit(pid.as_raw(), Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, signal, _)) => self.saw_exit(pid.as_raw(), Exit::Signal(signal as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn saw_exit(&mut self, pid: i32, exit: Exit) {
        let found = self
            .watched
            .iter()
            .find(|(_, w)| w.own && w.process.is_some_and(|p| p.pid == pid));
        if let Some((service, _)) = found {
            self.pending.push(Event::Exited {
                service: service.clone(),
                pid,
                exit,
            });
        }
    }

    /// Adopted services are not our children: their end shows as their identity
    /// disappearing.
    fn check_adopted(&mut self) {
        for (service, w) in &self.watched {
            let Some(process) = w.process.filter(|_| !w.own) else {
                continue;
            };
            let live = matches!(
                w.phase,
                Phase::Starting { .. } | Phase::Healthy { .. } | Phase::Unhealthy { .. }
            );
            let already = self
                .pending
                .iter()
                .any(|e| matches!(e, Event::Exited { pid, .. } if *pid == process.pid));
            if live && !already && !process.is_alive() {
                let exit = w
                    .site
                    .container
                    .as_deref()
                    .map_or(Exit::Unknown, crate::container::exit_of);
                self.pending.push(Event::Exited {
                    service: service.clone(),
                    pid: process.pid,
                    exit,
                });
            }
        }
    }

    /// Runs the probes that are due: readiness of restarted services (adaptive, from a
    /// few ms up to the interval) and liveness of healthy ones (every interval).
    fn probe_due(&mut self) {
        let now = Instant::now();
        let mut events = Vec::new();
        for (name, w) in &mut self.watched {
            let Some(service) = self.ctx.config.service(name) else {
                continue;
            };
            let Some(health) = &service.health else {
                if let Phase::Starting { since, .. } = w.phase {
                    events.push(Event::Healthy {
                        service: name.clone(),
                        took: since.elapsed(),
                    });
                }
                continue;
            };
            match &mut w.phase {
                Phase::Starting {
                    since,
                    deadline,
                    next_probe,
                    pause,
                } if *next_probe <= now => match health::probe(service, health, &w.site) {
                    Ok(()) => events.push(Event::Healthy {
                        service: name.clone(),
                        took: since.elapsed(),
                    }),
                    Err(error) if deadline.is_some_and(|d| d <= now) => events.push(Event::StartTimedOut {
                        service: name.clone(),
                        error,
                    }),
                    Err(_) => {
                        *next_probe = now + *pause;
                        *pause = (*pause * 2).min(health.interval);
                    }
                },
                // A log line, once seen, stays seen: log probes have no liveness.
                Phase::Healthy { failures, next_probe } | Phase::Unhealthy { failures, next_probe }
                    if *next_probe <= now && !matches!(health.probe, crate::config::Probe::Log(_)) =>
                {
                    *next_probe = now + health.interval;
                    let was_unhealthy = matches!(w.phase, Phase::Unhealthy { .. });
                    let result = health::probe(service, health, &w.site);
                    let (Phase::Healthy { failures, .. } | Phase::Unhealthy { failures, .. }) = &mut w.phase else {
                        continue;
                    };
                    match result {
                        Ok(()) => {
                            *failures = 0;
                            if was_unhealthy {
                                events.push(Event::Recovered { service: name.clone() });
                            }
                        }
                        Err(error) => {
                            *failures += 1;
                            if *failures >= health.retries && !was_unhealthy {
                                events.push(Event::LivenessFailed {
                                    service: name.clone(),
                                    error,
                                });
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        self.pending.extend(events);
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

    /// Applies pending events under the lock; if another command holds it, they wait
    /// for the next tick (that command may be a `stop` that makes them moot).
    fn act(&mut self) {
        let lock = match self.ctx.registry.try_lock(self.lock_name()) {
            Ok(Some(lock)) => lock,
            Ok(None) => return,
            Err(err) => {
                self.ctx.ui.warn(format!("cannot take the state lock: {err}"));
                return;
            }
        };
        self.sync(true);
        for event in std::mem::take(&mut self.pending) {
            if let Err(err) = self.apply(event, &lock) {
                self.ctx.ui.warn(err.message);
            }
        }
    }

    fn apply(&mut self, event: Event, lock: &Lock) -> Result<()> {
        match event {
            Event::Exited { service, pid, exit } => {
                if self
                    .watched
                    .get(&service)
                    .and_then(|w| w.process)
                    .is_some_and(|p| p.pid == pid)
                {
                    self.on_exit(&service, exit, lock)?;
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
                }
            }
            Event::StartTimedOut { service, error } => {
                if self
                    .watched
                    .get(&service)
                    .is_some_and(|w| matches!(w.phase, Phase::Starting { .. }))
                {
                    self.event(&service, format!("did not become healthy: {error}"));
                    self.take_down(&service);
                    self.on_exit(&service, Exit::Unhealthy, lock)?;
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
        }
        Ok(())
    }

    fn on_liveness_failure(&mut self, name: &str, error: &str, lock: &Lock) -> Result<()> {
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
                    next_probe: Instant::now() + service_interval(service),
                };
            }
            self.update(name, lock, |r| r.state = ServiceState::Unhealthy)?;
            self.event(name, format!("unhealthy: {error} (restart = \"no\": left running)"));
            return Ok(());
        }
        self.event(name, format!("unhealthy: {error}; taking it down"));
        self.take_down(name);
        self.on_exit(name, Exit::Unhealthy, lock)
    }

    /// Decides what an exit means and records it: a restart after a backoff, a
    /// completed job, or the end.
    fn on_exit(&mut self, name: &str, exit: Exit, lock: &Lock) -> Result<()> {
        let Some(service) = self.ctx.config.service(name) else {
            return Ok(());
        };
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(());
        };
        w.process = None;
        let decision = decide(service, &exit, w.restarts, is_job(self.ctx, name));
        let (state, phase, message) = match decision {
            Decision::Restart { delay, attempt } => {
                w.restarts = attempt;
                (
                    ServiceState::Restarting,
                    Phase::Waiting {
                        due: Instant::now() + delay,
                    },
                    format!(
                        "exited ({exit}); restarting in {} (attempt {attempt} of {})",
                        ui::duration(delay),
                        service.max_restarts
                    ),
                )
            }
            Decision::Complete => (ServiceState::Completed, Phase::Done, "completed".to_string()),
            Decision::Leave => {
                if exit != Exit::Code(0) {
                    self.failed.insert(name.to_string(), format!("exited ({exit})"));
                }
                (
                    ServiceState::Failed,
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
        w.phase = phase;
        self.update(name, lock, |r| {
            r.state = state;
            r.restarts = restarts;
            r.last_exit = Some(exit.to_string());
        })?;
        self.event(name, message);
        Ok(())
    }

    /// Starts a service again after its backoff.
    fn respawn(&mut self, name: &str, lock: &Lock) -> Result<()> {
        let ctx = self.ctx;
        let Some(service) = ctx.config.service(name) else {
            return Ok(());
        };
        let log_offset = std::fs::metadata(ctx.registry.log_path(name)).map_or(0, |m| m.len());
        let spawned = ctx
            .registry
            .open_log(name)
            .and_then(|log| spawn::start(ctx, service, log));
        let spawned = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                self.event(name, format!("cannot start: {}", err.message));
                return self.on_exit(name, Exit::Unknown, lock);
            }
        };
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(());
        };
        let mut record = fresh_record(ctx, service, &spawned.process, w.restarts);
        record.container = spawned.container.clone();
        ctx.registry.write(&record, lock)?;
        let now = Instant::now();
        w.process = Some(spawned.process);
        w.own = spawned.child.is_some();
        w.site.log_offset = log_offset;
        w.site.container = spawned.container.clone();
        w.phase = Phase::Starting {
            since: now,
            deadline: service.health.as_ref().map(|h| now + h.startup_deadline()),
            next_probe: now,
            pause: FIRST_PAUSE,
        };
        self.event(name, format!("started (pid {})", spawned.process.pid));
        Ok(())
    }

    /// Stops one service's processes (its stop command or signal, the grace period,
    /// then SIGKILL) without touching its record.
    fn take_down(&mut self, name: &str) {
        if let Some(w) = self.watched.get_mut(name) {
            w.process = None;
        }
        let survivors = stop::take_down(self.ctx, name);
        if !survivors.is_empty() {
            self.event(name, format!("{} process(es) survived SIGKILL", survivors.len()));
        }
    }

    fn update(&self, name: &str, lock: &Lock, change: impl FnOnce(&mut Record)) -> Result<()> {
        if let Some(Entry::Record(mut record)) = self.ctx.registry.entry(name) {
            change(&mut record);
            self.ctx.registry.write(&record, lock)?;
        }
        Ok(())
    }

    /// Brings the watch list in line with the records: services whose record is gone
    /// (stopped by a command) are forgotten, services started by someone else are
    /// adopted. Cheap when nothing changed: `run/`'s mtime is compared first.
    fn sync(&mut self, force: bool) {
        let stamp = self.ctx.registry.run_dir_stamp();
        if !force && stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        let me = std::process::id() as i32;
        let mut records: BTreeMap<String, Record> = BTreeMap::new();
        for entry in self.ctx.registry.entries() {
            if let Entry::Record(record) = entry
                && self.scope.contains(&record.service)
                && record.state != ServiceState::Stopping
            {
                records.insert(record.service.clone(), record);
            }
        }
        let gone: Vec<String> = self
            .watched
            .keys()
            .filter(|n| !records.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.watched.remove(&name);
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
            if known {
                continue;
            }
            let process = record.process();
            let alive = process.is_alive();
            // A record says it runs, but its process is gone: an exit nobody saw (the
            // service died between a start and this supervisor's first look). It is
            // watched as running, so that the exit is reported and the restart policy
            // decides, as for any exit.
            let unseen_exit = !alive
                && matches!(
                    record.state,
                    ServiceState::Starting | ServiceState::Healthy | ServiceState::Unhealthy
                );
            let phase = match record.state {
                ServiceState::Completed | ServiceState::Failed => Phase::Done,
                _ if !alive && !unseen_exit => Phase::Waiting { due: Instant::now() },
                ServiceState::Starting => Phase::Starting {
                    since: Instant::now(),
                    deadline: None,
                    next_probe: Instant::now(),
                    pause: FIRST_PAUSE,
                },
                _ => Phase::Healthy {
                    failures: 0,
                    next_probe: Instant::now(),
                },
            };
            let restarts = record.restarts;
            let alive_process = (alive || unseen_exit).then_some(process);
            // Our own child, even a zombie: then `reap` reports its real exit status.
            let own = (alive || unseen_exit) && process::parent_of(process.pid) == Some(me);
            let site = ProbeSite {
                root: self.ctx.config.root.clone(),
                log: record.log.clone(),
                log_offset: 0,
                container: record.container.clone(),
            };
            self.watched.insert(
                name,
                Watched {
                    process: alive_process,
                    own,
                    phase,
                    site,
                    restarts,
                },
            );
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(1);
        self.watched
            .values()
            .map(|w| match w.phase {
                Phase::Starting { next_probe, .. }
                | Phase::Healthy { next_probe, .. }
                | Phase::Unhealthy { next_probe, .. } => next_probe,
                Phase::Waiting { due } => due,
                Phase::Done => far,
            })
            .min()
            .unwrap_or(far)
    }

    fn follow_logs(&mut self) {
        if let Mode::Foreground(follower) = &mut self.mode {
            follower.print_new();
        }
    }

    /// A lifecycle event, prefixed with the service's name.
    fn event(&self, service: &str, text: impl fmt::Display) {
        match &self.mode {
            Mode::Foreground(follower) => follower.event(service, text),
            Mode::Monitor => self.ctx.ui.result(format!("{} {service}: {text}", ui::timestamp())),
        }
    }

    fn lock_name(&self) -> &'static str {
        match self.mode {
            Mode::Foreground(_) => "start (supervising)",
            Mode::Monitor => "monitor",
        }
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
                let lock = self.ctx.registry.lock("start (stopping)")?;
                let names: Vec<String> = self.scope.iter().cloned().collect();
                let options = stop::Options {
                    interrupts: Some(self.interrupts),
                    ..stop::Options::default()
                };
                stop::stop_services(self.ctx, &Scope::Services(names), options, &lock)?;
                Ok(self.failure_code())
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
        Event::Exited { service, .. }
        | Event::Healthy { service, .. }
        | Event::StartTimedOut { service, .. }
        | Event::LivenessFailed { service, .. }
        | Event::Recovered { service }
        | Event::RestartDue { service } => service,
    }
}

fn service_interval(service: &Service) -> Duration {
    service.health.as_ref().map_or(Duration::from_secs(1), |h| h.interval)
}

fn policy_name(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    }
}

/// A dependency that some service needs `completed`: a one-shot job.
pub fn is_job(ctx: &Context, name: &str) -> bool {
    ctx.config.services.iter().any(|s| {
        s.depends_on
            .iter()
            .any(|d| d.service == name && d.condition == Condition::Completed)
    })
}

/// Orphaned descendants are re-parented to the nearest subreaper ancestor instead of
/// init, so that the supervisor reaps them. Failure only costs that: it is reported.
pub fn become_subreaper() {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        ui::error(format!(
            "cannot become a child subreaper ({err}); orphaned grandchildren will not be reaped here"
        ));
    }
}

/// The record a supervisor leaves so that `status` and `stop` can find it.
pub fn monitor_record(foreground: bool) -> Option<MonitorRecord> {
    let me = ServiceProcess::of(std::process::id() as i32)?;
    Some(MonitorRecord {
        pid: me.pid,
        start_time: me.start_time,
        foreground,
        started_at_ms: now_ms(),
    })
}

/// Ends a detached monitor (never a foreground `start`, which is somebody's terminal):
/// SIGTERM, and SIGKILL if it lingers. The caller holds the lock, so the monitor is
/// not in the middle of anything.
pub fn stop_monitor(ctx: &Context, lock: &Lock) -> Option<i32> {
    let record = ctx.registry.monitor()?;
    let process = ServiceProcess {
        pid: record.pid,
        start_time: record.start_time,
    };
    if record.foreground || process.pid == std::process::id() as i32 {
        return None;
    }
    ctx.registry.remove_monitor(record.pid, lock);
    if !process.is_alive() {
        return None;
    }
    let holder = process::ProcessInfo {
        process,
        pgid: record.pid,
        service: Some(process::MONITOR_SERVICE.to_string()),
        command: process::command_line(record.pid),
    };
    let _ = stop::terminate(&[holder], Duration::from_secs(2));
    Some(record.pid)
}

/// The live supervisor, if any.
pub fn live_monitor(ctx: &Context) -> Option<MonitorRecord> {
    ctx.registry.monitor().filter(|m| {
        ServiceProcess {
            pid: m.pid,
            start_time: m.start_time,
        }
        .is_alive()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CommandLine;

    fn service(restart: RestartPolicy, max_restarts: u32) -> Service {
        Service {
            name: "s".into(),
            command: CommandLine::Shell("true".into()),
            cwd: "/".into(),
            env: vec![],
            ports: vec![],
            depends_on: vec![],
            health: None,
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(1),
            stop_command: None,
            restart,
            max_restarts,
            restart_delay: Duration::from_secs(1),
            startup_delay: Duration::ZERO,
            build: None,
            build_timeout: None,
            container: None,
        }
    }

    #[test]
    fn restart_decisions() {
        use Decision::*;
        use RestartPolicy::*;
        let s = |n| Duration::from_secs(n);
        let rows: &[(RestartPolicy, Exit, u32, bool, Decision)] = &[
            (No, Exit::Code(1), 0, false, Leave),
            (No, Exit::Code(0), 0, false, Leave),
            (OnFailure, Exit::Code(0), 0, false, Leave),
            (
                OnFailure,
                Exit::Code(2),
                0,
                false,
                Restart {
                    delay: s(1),
                    attempt: 1,
                },
            ),
            (
                OnFailure,
                Exit::Signal(9),
                1,
                false,
                Restart {
                    delay: s(2),
                    attempt: 2,
                },
            ),
            (
                OnFailure,
                Exit::Unknown,
                2,
                false,
                Restart {
                    delay: s(4),
                    attempt: 3,
                },
            ),
            (OnFailure, Exit::Code(1), 3, false, GiveUp),
            (
                Always,
                Exit::Code(0),
                0,
                false,
                Restart {
                    delay: s(1),
                    attempt: 1,
                },
            ),
            (
                Always,
                Exit::Unhealthy,
                2,
                false,
                Restart {
                    delay: s(4),
                    attempt: 3,
                },
            ),
            (Always, Exit::Code(0), 0, true, Complete),
            (No, Exit::Code(0), 0, true, Complete),
            (
                OnFailure,
                Exit::Code(3),
                0,
                true,
                Restart {
                    delay: s(1),
                    attempt: 1,
                },
            ),
        ];
        for (policy, exit, restarts, job, expected) in rows {
            let got = decide(&service(*policy, 3), exit, *restarts, *job);
            assert_eq!(
                got, *expected,
                "{policy:?} after {exit} with {restarts} restarts (job: {job})"
            );
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(100), 0), ms(100));
        assert_eq!(backoff(ms(100), 3), ms(800));
        assert_eq!(backoff(ms(100), 20), MAX_RESTART_DELAY);
        assert_eq!(backoff(Duration::from_secs(60), 2), Duration::from_secs(60));
    }
}
