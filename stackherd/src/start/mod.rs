//! Starting services: dependency conditions, concurrent launches, health waits, rollback.
//!
//! Each service starts as soon as its dependencies meet their conditions (`started`,
//! `healthy`, `completed`) and its `startup_delay` has passed; independent services start
//! and are probed concurrently (one waiting thread each). If one fails for good,
//! everything this invocation started is stopped again and the failure is explained
//! with the last probe error and the service's last log lines.

mod compose;
pub mod preflight;
mod settle;
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Condition, Service};
use crate::docker;
use crate::error::{Error, Interrupted, Result};
use crate::os::ServiceProcess;
use crate::os::interrupts::Interrupts;
use crate::poll;
use crate::probe::{Progress, StartFailure, Started};
use crate::service::status::{Status, status};
use crate::service::{Context, drift, monitor, relays};
use crate::state::{Lock, Record};
use crate::stop;
use crate::stop::Scope;
use crate::ui;

/// A service quiet for this long is explained: what it waits for and its latest news.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// How many log lines a failure shows.
const FAILURE_LOG_LINES: usize = 20;
/// How often the launch loop looks at interrupts and delayed starts.
const TICK: Duration = Duration::from_millis(100);
/// How long a start waits at most, before it reports, for the relays to write what the
/// services printed (they are usually done within a millisecond).
const LOGS_WRITTEN: Duration = Duration::from_secs(1);

/// Says that `name` runs already and is left alone; and, when it runs an older
/// config, that only a restart applies the new one.
fn say_left_running(ctx: &Context, name: &str, entry: Option<&crate::state::Entry>) {
    let record = match entry {
        Some(crate::state::Entry::Record(record)) => Some(record),
        _ => None,
    };
    let pid = record.map_or(0, |r| r.pid);
    // Left running either way: a start never restarts what runs, but it must not call
    // an instance of an older config fine.
    match record.and_then(|r| drift::changes(ctx, r)) {
        Some(changes) => ctx.ui.warn(format!(
            "{name} is already running (pid {pid}) and was not restarted: {}",
            drift::advice(name, changes)
        )),
        None => ctx.ui.ok(format!("{name} is already running (pid {pid}), left alone")),
    }
}

/// Starts `wanted` and their dependencies: preflight, dependency-ordered launch, and on
/// failure a rollback of what this call started. Services already running are left
/// alone. The caller holds the lock.
pub fn run(ctx: &Context, wanted: &[String], lock: &Lock, interrupts: Interrupts) -> Result<()> {
    // Orphans of a service that forks into the background come to us, where the daemon
    // search finds them.
    monitor::become_subreaper();
    let selection = ctx.config.graph().with_dependencies(wanted);
    let mut done: BTreeMap<String, Step> = BTreeMap::new();
    let mut to_start = Vec::new();
    for name in &selection {
        let entry = ctx.registry.entry(name);
        match status(entry.as_ref(), false) {
            Status::Stopped => to_start.push(name.clone()),
            Status::Completed => {
                ctx.ui.ok(format!("{name} completed earlier, left alone"));
                done.insert(name.clone(), Step::Completed);
            }
            found if found.is_alive() => {
                say_left_running(ctx, name, entry.as_ref());
                done.insert(name.clone(), Step::Healthy);
            }
            _ => {
                ctx.ui.warn(format!("removing the stale record of {name}"));
                ctx.registry.remove(name, lock)?;
                to_start.push(name.clone());
            }
        }
    }
    if to_start.is_empty() {
        ctx.ui
            .result(format!("all {} services already running", selection.len()));
        return Ok(());
    }
    preflight::before_start(ctx, &to_start)?;
    if ctx.config.project.compose_file.is_some() {
        docker::compose_up(&ctx.config).map_err(|err| Error::Docker {
            what: "docker compose up failed".to_string(),
            source: Box::new(err),
        })?;
        ctx.ui
            .ok(format!("compose project {} up", docker::project_key(&ctx.config)));
        compose::await_ready(ctx, interrupts)?;
        for name in &ctx.config.project.compose_services {
            done.insert(name.clone(), Step::Healthy);
        }
    }

    let mut launch = Launch::new(ctx, lock, interrupts, done);
    match launch.run(&to_start) {
        Ok(()) => {
            relays::wait_written(LOGS_WRITTEN);
            ctx.ui.result(format!(
                "{} service(s) up in {}",
                to_start.len(),
                // Wall-clock, from the command's beginning: config load, builds and the
                // compose project count, as the user waited for them.
                ui::duration(poll::since_began())
            ));
            Ok(())
        }
        Err(failure) => {
            let ours = launch.started.clone();
            drop(launch);
            if !ours.is_empty() {
                ctx.ui
                    .info(format!("stopping what this run started: {}", ours.join(", ")));
                // This process spawned them: what they left re-parented to it is theirs.
                let options = stop::Options {
                    adopted_are_ours: true,
                    ..stop::Options::default()
                };
                let rollback = stop::stop_services(ctx, &Scope::Services(ours), options, lock);
                if let Err(err) = rollback {
                    ui::error(&err);
                }
            }
            Err(failure)
        }
    }
}

/// Where one service of the launch is: the scheduler's view, with its timers (what
/// a service *is* comes from `status::status`).
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// Waiting for its dependencies.
    Pending,
    /// Dependencies met (or a restart is due); spawn at this time.
    Due(Instant),
    /// Spawned; a thread waits for it to become healthy (or complete).
    Waiting,
    Healthy,
    Completed,
}

/// One run of launches: what started, what is healthy, who is still waited for.
pub(super) struct Launch<'a> {
    ctx: &'a Context,
    lock: &'a Lock,
    interrupts: Interrupts,
    /// Tells the waiting threads to give up.
    abort: Arc<AtomicBool>,
    /// Services this invocation spawned, in spawn order.
    started: Vec<String>,
    status: BTreeMap<String, Step>,
    records: BTreeMap<String, Record>,
    /// Services settled in memory whose record is not written yet.
    unsaved: BTreeSet<String>,
    waiting: BTreeMap<String, Waiting>,
}

pub(super) struct Waiting {
    since: Instant,
    reported: Instant,
    progress: Arc<Mutex<Progress>>,
    /// The main process a service that forked into the background left running.
    main: Arc<Mutex<Option<ServiceProcess>>>,
    thread: thread::JoinHandle<()>,
}

pub(super) type Outcome = (String, std::result::Result<Started, StartFailure>);

impl<'a> Launch<'a> {
    fn new(ctx: &'a Context, lock: &'a Lock, interrupts: Interrupts, done: BTreeMap<String, Step>) -> Self {
        Launch {
            ctx,
            lock,
            interrupts,
            abort: Arc::new(AtomicBool::new(false)),
            started: Vec::new(),
            status: done,
            records: BTreeMap::new(),
            unsaved: BTreeSet::new(),
            waiting: BTreeMap::new(),
        }
    }

    /// Starts `to_start`; their dependencies outside it are already running.
    fn run(&mut self, to_start: &[String]) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Outcome>();
        for name in to_start {
            self.status.insert(name.clone(), Step::Pending);
        }
        loop {
            self.schedule(to_start)?;
            let now = Instant::now();
            let due: Vec<&String> = to_start
                .iter()
                .filter(|name| matches!(self.status.get(*name), Some(Step::Due(at)) if *at <= now))
                .collect();
            self.spawn_all(&due, &tx)?;
            self.save_settled()?;
            if to_start
                .iter()
                .all(|n| matches!(self.status.get(n), Some(Step::Healthy | Step::Completed)))
            {
                return self.follow_late_forks();
            }
            match rx.recv_timeout(self.next_wake().saturating_duration_since(Instant::now()).min(TICK)) {
                Ok(first) => {
                    // Every outcome that is in, so that a level completed at once
                    // starts the next at once.
                    for (name, outcome) in std::iter::once(first).chain(rx.try_iter()) {
                        if let Some(w) = self.waiting.remove(&name) {
                            let _ = w.thread.join();
                            self.follow_daemon(&name, &w.main)?;
                        }
                        self.settle(&name, outcome)?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.report_slow(),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Internal("lost the health waiters"));
                }
            }
            if self.interrupts.any() {
                return Err(Error::Interrupted(Interrupted::Start));
            }
        }
    }

    /// Marks pending services whose dependencies are met as due (after their startup
    /// delay).
    fn schedule(&mut self, to_start: &[String]) -> Result<()> {
        for name in to_start {
            if !matches!(self.status.get(name), Some(Step::Pending)) {
                continue;
            }
            let service = self.service(name)?;
            let met = service.depends_on.iter().all(|dep| {
                let status = self.status.get(&dep.service);
                match dep.condition {
                    Condition::Started => matches!(status, Some(Step::Waiting | Step::Healthy | Step::Completed)),
                    Condition::Healthy => matches!(status, Some(Step::Healthy | Step::Completed)),
                    Condition::Completed => matches!(status, Some(Step::Completed)),
                }
            });
            if met {
                if !service.startup_delay.is_zero() {
                    self.ctx
                        .ui
                        .info(format!("{name} starts in {}", ui::duration(service.startup_delay)));
                }
                self.status
                    .insert(name.clone(), Step::Due(poll::after(service.startup_delay)));
            }
        }
        Ok(())
    }

    fn next_wake(&self) -> Instant {
        self.status
            .values()
            .filter_map(|s| match s {
                Step::Due(at) => Some(*at),
                _ => None,
            })
            .min()
            .unwrap_or_else(|| poll::after(TICK))
    }

    pub(super) fn service(&self, name: &str) -> Result<&'a Service> {
        self.ctx
            .config
            .service(name)
            .ok_or_else(|| Error::UnknownServices(vec![format!("no service `{name}` in services.toml")]))
    }
}

impl Drop for Launch<'_> {
    /// Waiting threads give up and are joined, so none outlives the launch; the
    /// daemons they found are recorded, so that the rollback stops them.
    fn drop(&mut self) {
        self.abort.store(true, Ordering::SeqCst);
        for (name, waiting) in std::mem::take(&mut self.waiting) {
            let _ = waiting.thread.join();
            if let Err(err) = self.follow_daemon(&name, &waiting.main) {
                ui::error(&err);
            }
        }
    }
}
