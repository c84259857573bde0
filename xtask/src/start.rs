//! Starting services: dependency conditions, concurrent launches, health waits, rollback.
//!
//! Each service starts as soon as its dependencies meet their conditions (`started`,
//! `healthy`, `completed`) and its `startup_delay` has passed; independent services start
//! and are probed concurrently (one waiting thread each). If one fails for good,
//! everything this invocation started is stopped again and the failure is explained
//! with the last probe error and the service's last log lines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Context;
use crate::config::{Condition, Service};
use crate::error::{Error, Result, exit};
use crate::fault;
use crate::health::{self, ProbeSite, Progress, StartFailure, Started};
use crate::logs;
use crate::preflight;
use crate::registry::{Entry, Lock, Record, ServiceState};
use crate::signals::Interrupts;
use crate::spawn::{self, Spawned};
use crate::stop::{self, Scope};
use crate::supervise::{self, Decision};
use crate::ui;

/// A service quiet for this long is explained: what it waits for and its latest news.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// How many log lines a failure shows.
const FAILURE_LOG_LINES: usize = 20;
/// How often the launch loop looks at interrupts and delayed starts.
const TICK: Duration = Duration::from_millis(100);

/// What happens before a start.
#[derive(Debug, Clone, Copy)]
pub struct Prepare {
    /// Run the build steps of the services about to start.
    pub build: bool,
    /// Stop leftovers of earlier runs and remove stale records.
    pub cleanup: bool,
}

/// Cleanup of leftovers, then the builds of what is about to start; both before any
/// preflight check, because a build may produce the programs that preflight looks for.
pub fn prepare(ctx: &Context, wanted: &[String], prepare: Prepare, lock: &Lock, interrupts: Interrupts) -> Result<()> {
    if prepare.cleanup {
        stop::sweep_leftovers(ctx, lock, true)?;
    }
    if prepare.build {
        crate::build::run(ctx, &plan(ctx, wanted), interrupts)?;
    }
    Ok(())
}

/// The services a start of `wanted` would start: the selection without what runs or
/// completed.
pub fn plan(ctx: &Context, wanted: &[String]) -> Vec<String> {
    ctx.config
        .graph()
        .with_dependencies(wanted)
        .into_iter()
        .filter(|name| !is_up(ctx, name))
        .collect()
}

fn is_up(ctx: &Context, name: &str) -> bool {
    match ctx.registry.entry(name) {
        Some(Entry::Record(record)) => record.state == ServiceState::Completed || record.process().is_alive(),
        _ => false,
    }
}

/// Starts `wanted` and their dependencies: preflight, dependency-ordered launch, and on
/// failure a rollback of what this call started. Services already running are left
/// alone. The caller holds the lock.
pub fn run(ctx: &Context, wanted: &[String], lock: &Lock, interrupts: Interrupts) -> Result<()> {
    let selection = ctx.config.graph().with_dependencies(wanted);
    let mut done: BTreeMap<String, Status> = BTreeMap::new();
    let mut to_start = Vec::new();
    for name in &selection {
        match ctx.registry.entry(name) {
            Some(Entry::Record(record)) if record.state == ServiceState::Completed => {
                ctx.ui.ok(format!("{name} completed earlier, left alone"));
                done.insert(name.clone(), Status::Completed);
            }
            Some(Entry::Record(record)) if record.process().is_alive() => {
                ctx.ui
                    .ok(format!("{name} is already running (pid {}), left alone", record.pid));
                done.insert(name.clone(), Status::Healthy);
            }
            Some(stale) => {
                ctx.ui.warn(format!("removing the stale record of {name}"));
                ctx.registry.remove(stale.service(), lock)?;
                to_start.push(name.clone());
            }
            None => to_start.push(name.clone()),
        }
    }
    if to_start.is_empty() {
        ctx.ui
            .result(format!("all {} services already running", selection.len()));
        return Ok(());
    }
    preflight::before_start(ctx, &to_start)?;
    if ctx.config.project.compose_file.is_some() {
        crate::container::compose_up(ctx).map_err(|err| Error::failure(format!("docker compose up failed: {err}")))?;
        ctx.ui
            .ok(format!("compose project {} up", crate::container::project_key(ctx)));
        for name in &ctx.config.project.compose_services {
            done.insert(name.clone(), Status::Healthy);
        }
    }

    let started = Instant::now();
    let mut launch = Launch::new(ctx, lock, interrupts, done);
    match launch.run(&to_start) {
        Ok(()) => {
            ctx.ui.result(format!(
                "{} service(s) up in {}",
                to_start.len(),
                ui::duration(started.elapsed())
            ));
            Ok(())
        }
        Err(failure) => {
            let ours = launch.started.clone();
            drop(launch);
            if !ours.is_empty() {
                ctx.ui
                    .info(format!("stopping what this run started: {}", ours.join(", ")));
                let rollback = stop::stop_services(ctx, &Scope::Services(ours), stop::Options::default(), lock);
                if let Err(err) = rollback {
                    ui::error(&err);
                }
            }
            Err(failure)
        }
    }
}

/// Where one service of the launch is.
#[derive(Debug, Clone)]
enum Status {
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
struct Launch<'a> {
    ctx: &'a Context,
    lock: &'a Lock,
    interrupts: Interrupts,
    /// Tells the waiting threads to give up.
    abort: Arc<AtomicBool>,
    /// Services this invocation spawned, in spawn order.
    started: Vec<String>,
    status: BTreeMap<String, Status>,
    records: BTreeMap<String, Record>,
    /// Services settled in memory whose record is not written yet.
    unsaved: BTreeSet<String>,
    waiting: BTreeMap<String, Waiting>,
}

struct Waiting {
    since: Instant,
    reported: Instant,
    progress: Arc<Mutex<Progress>>,
    thread: thread::JoinHandle<()>,
}

type Outcome = (String, std::result::Result<Started, StartFailure>);

impl<'a> Launch<'a> {
    fn new(ctx: &'a Context, lock: &'a Lock, interrupts: Interrupts, done: BTreeMap<String, Status>) -> Self {
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
            self.status.insert(name.clone(), Status::Pending);
        }
        loop {
            self.schedule(to_start)?;
            let now = Instant::now();
            let due: Vec<&String> = to_start
                .iter()
                .filter(|name| matches!(self.status.get(*name), Some(Status::Due(at)) if *at <= now))
                .collect();
            self.spawn_all(&due, &tx)?;
            self.save_settled()?;
            if to_start
                .iter()
                .all(|n| matches!(self.status.get(n), Some(Status::Healthy | Status::Completed)))
            {
                return Ok(());
            }
            match rx.recv_timeout(self.next_wake().saturating_duration_since(Instant::now()).min(TICK)) {
                Ok(first) => {
                    // Every outcome that is in, so that a level completed at once
                    // starts the next at once.
                    for (name, outcome) in std::iter::once(first).chain(rx.try_iter()) {
                        if let Some(w) = self.waiting.remove(&name) {
                            let _ = w.thread.join();
                        }
                        self.settle(&name, outcome)?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.report_slow(),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::failure("internal error: lost the health waiters"));
                }
            }
            if self.interrupts.any() {
                return Err(Error::with_code(
                    exit::INTERRUPTED,
                    "interrupted before every service was up",
                ));
            }
        }
    }

    /// Marks pending services whose dependencies are met as due (after their startup
    /// delay).
    fn schedule(&mut self, to_start: &[String]) -> Result<()> {
        for name in to_start {
            if !matches!(self.status.get(name), Some(Status::Pending)) {
                continue;
            }
            let service = self.service(name)?;
            let met = service.depends_on.iter().all(|dep| {
                let status = self.status.get(&dep.service);
                match dep.condition {
                    Condition::Started => matches!(status, Some(Status::Waiting | Status::Healthy | Status::Completed)),
                    Condition::Healthy => matches!(status, Some(Status::Healthy | Status::Completed)),
                    Condition::Completed => matches!(status, Some(Status::Completed)),
                }
            });
            if met {
                if !service.startup_delay.is_zero() {
                    self.ctx
                        .ui
                        .info(format!("{name} starts in {}", ui::duration(service.startup_delay)));
                }
                self.status
                    .insert(name.clone(), Status::Due(Instant::now() + service.startup_delay));
            }
        }
        Ok(())
    }

    fn next_wake(&self) -> Instant {
        self.status
            .values()
            .filter_map(|s| match s {
                Status::Due(at) => Some(*at),
                _ => None,
            })
            .min()
            .unwrap_or_else(|| Instant::now() + TICK)
    }

    fn service(&self, name: &str) -> Result<&'a Service> {
        self.ctx
            .config
            .service(name)
            .ok_or_else(|| Error::failure(format!("no service `{name}` in services.toml")))
    }

    /// Spawns the services that are due and writes their records, on as many threads
    /// as there are cores, then tracks each. What did spawn is tracked even when another
    /// failed, so that the rollback stops it.
    fn spawn_all(&mut self, names: &[&String], tx: &mpsc::Sender<Outcome>) -> Result<()> {
        let services: Vec<&'a Service> = names.iter().map(|n| self.service(n)).collect::<Result<_>>()?;
        let ctx = self.ctx;
        // Containers one at a time: `docker run` creates the project's network and
        // volumes on first use, and two at once race for them.
        let workers = if services.iter().any(|s| s.container.is_some()) {
            services.len().min(1)
        } else {
            thread::available_parallelism()
                .map_or(1, usize::from)
                .min(services.len())
        };
        let (lock, abort) = (self.lock, &self.abort);
        let restarts: Vec<u32> = services
            .iter()
            .map(|s| self.records.get(&s.name).map_or(0, |r| r.restarts))
            .collect();
        let jobs: Vec<(&Service, u32)> = services.iter().copied().zip(restarts).collect();
        let spawned: Vec<Result<Launched>> = match workers {
            0 => Vec::new(),
            1 => jobs
                .iter()
                .map(|(s, r)| spawn_one(ctx, lock, s, *r, abort, tx))
                .collect(),
            _ => thread::scope(|scope| {
                let chunks: Vec<_> = jobs
                    .chunks(jobs.len().div_ceil(workers))
                    .map(|chunk| {
                        let worker = scope.spawn(move || {
                            chunk
                                .iter()
                                .map(|(s, r)| spawn_one(ctx, lock, s, *r, abort, tx))
                                .collect::<Vec<_>>()
                        });
                        (chunk.len(), worker)
                    })
                    .collect();
                chunks
                    .into_iter()
                    .flat_map(|(len, worker)| {
                        worker.join().unwrap_or_else(|_| {
                            (0..len)
                                .map(|_| Err(Error::failure("internal error: a spawning thread panicked")))
                                .collect()
                        })
                    })
                    .collect()
            }),
        };
        let mut first_error = None;
        for (service, result) in services.iter().zip(spawned) {
            if let Err(err) = result.and_then(|launched| self.track(service, launched)) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// After its spawn: notes the service as started by this run, with its record and
    /// the thread that waits for it.
    fn track(&mut self, service: &'a Service, launched: Launched) -> Result<()> {
        let ctx = self.ctx;
        let name = service.name.as_str();
        if !self.started.iter().any(|s| s == name) {
            self.started.push(name.to_string());
        }
        let (record, waiting) = launched.tracked?;
        self.records.insert(name.to_string(), record);
        ctx.ui.info(format!(
            "started {name} (pid {}){}",
            launched.pid,
            match &service.health {
                _ if supervise::is_job(ctx, name) => ", waiting for it to complete".to_string(),
                Some(h) => format!(", waiting for {}", h.probe),
                None => String::new(),
            }
        ));
        self.status.insert(name.to_string(), Status::Waiting);
        self.waiting.insert(name.to_string(), waiting);
        Ok(())
    }

    /// Records a service's outcome: healthy, completed, a restart its policy asks for,
    /// or the explained failure.
    fn settle(&mut self, name: &str, outcome: std::result::Result<Started, StartFailure>) -> Result<()> {
        let ctx = self.ctx;
        let service = self.service(name)?;
        let Some(record) = self.records.get_mut(name) else {
            return Ok(());
        };
        let (state, took, status) = match outcome {
            Ok(Started::Healthy(took)) => (ServiceState::Healthy, took, Status::Healthy),
            Ok(Started::Completed(took)) => (ServiceState::Completed, took, Status::Completed),
            Err(StartFailure::Exited(exit)) => {
                // An exit during startup is a failed start unless the policy restarts it.
                let decision = supervise::decide(service, &exit, record.restarts, supervise::is_job(ctx, name));
                if let Decision::Restart { delay, attempt } = decision {
                    record.restarts = attempt;
                    record.state = ServiceState::Restarting;
                    record.last_exit = Some(exit.to_string());
                    ctx.registry.write(record, self.lock)?;
                    ctx.ui.warn(format!(
                        "{name} exited during startup ({exit}); restarting in {} (attempt {attempt} of {})",
                        ui::duration(delay),
                        service.max_restarts
                    ));
                    self.status
                        .insert(name.to_string(), Status::Due(Instant::now() + delay));
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
                    exit::FAILURE,
                ));
            }
            Err(StartFailure::Unhealthy { waited, last_error }) => {
                let message = format!(
                    "service `{name}` did not become healthy within {}: {last_error}",
                    ui::duration(waited)
                );
                return Err(self.fail(name, message, exit::FAILURE));
            }
            Err(StartFailure::Interrupted) => {
                return Err(self.fail(name, format!("start of `{name}` interrupted"), exit::INTERRUPTED));
            }
        };
        record.state = state;
        record.healthy_after_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        self.unsaved.insert(name.to_string());
        let what = if status_is_completed(&status) {
            "completed"
        } else {
            "healthy"
        };
        ctx.ui
            .ok(format!("{name}  pid {}  {what} in {}", record.pid, ui::duration(took)));
        self.status.insert(name.to_string(), status);
        Ok(())
    }

    /// Writes the records of the services settled since the last call. This runs after
    /// the services that were waiting for them are spawned: each write costs a fraction
    /// of a millisecond, and a level of ten services waited for ten of them before.
    fn save_settled(&mut self) -> Result<()> {
        for name in std::mem::take(&mut self.unsaved) {
            if let Some(record) = self.records.get(&name) {
                self.ctx.registry.write(record, self.lock)?;
                fault::point(self.ctx, fault::AFTER_HEALTHY);
            }
        }
        Ok(())
    }

    /// Explains a failed start: the message, the last probe error and the log's tail.
    fn fail(&self, name: &str, message: String, code: u8) -> Error {
        let ctx = self.ctx;
        ctx.ui.fail(&message);
        let log = ctx.registry.log_path(name);
        let tail = logs::tail(&log, FAILURE_LOG_LINES);
        if tail.is_empty() {
            ctx.ui.info(format!("its log {} is empty", log.display()));
        } else {
            ctx.ui
                .info(format!("last {} line(s) of {}:", tail.len(), log.display()));
            ctx.ui.quote(&tail);
        }
        Error::with_code(code, format!("{message}; see `cargo xtask logs {name}`"))
    }

    /// Says what each long-waiting service waits for, with the latest probe error and
    /// log line, so that nobody stares at a silent terminal.
    fn report_slow(&mut self) {
        let now = Instant::now();
        for (name, waiting) in &mut self.waiting {
            if now - waiting.reported < REPORT_EVERY {
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
            let last_line = logs::tail(&self.ctx.registry.log_path(name), 1).pop();
            let mut message = format!("waiting for {name} ({})", ui::duration(now - waiting.since));
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

/// What a spawning worker did for one service that it spawned.
struct Launched {
    pid: i32,
    /// Its record, written, and the thread that waits for it to become healthy; or why
    /// the record could not be written.
    tracked: Result<(Record, Waiting)>,
}

/// Opens the service's log, spawns it, writes its record and starts the thread that
/// waits for it. Runs on the spawning workers, several at once; fails only when
/// nothing was spawned.
fn spawn_one(
    ctx: &Context,
    lock: &Lock,
    service: &Service,
    restarts: u32,
    abort: &Arc<AtomicBool>,
    tx: &mpsc::Sender<Outcome>,
) -> Result<Launched> {
    let log_offset = std::fs::metadata(ctx.registry.log_path(&service.name)).map_or(0, |m| m.len());
    let log = ctx.registry.open_log(&service.name)?;
    let spawned = spawn::start(ctx, service, log)?;
    let pid = spawned.process.pid;
    fault::point(ctx, fault::AFTER_SPAWN);
    let mut record = supervise::fresh_record(ctx, service, &spawned.process, restarts);
    record.container = spawned.container.clone();
    if let Err(err) = ctx.registry.write(&record, lock) {
        return Ok(Launched { pid, tracked: Err(err) });
    }
    fault::point(ctx, fault::AFTER_RECORD);
    let waiting = wait_for_healthy(ctx, service, spawned, log_offset, abort, tx.clone());
    Ok(Launched {
        pid,
        tracked: Ok((record, waiting)),
    })
}

/// Starts the thread that waits for a spawned service to become healthy (or complete)
/// and sends the outcome.
fn wait_for_healthy(
    ctx: &Context,
    service: &Service,
    spawned: Spawned,
    log_offset: u64,
    abort: &Arc<AtomicBool>,
    tx: mpsc::Sender<Outcome>,
) -> Waiting {
    let progress = Arc::new(Mutex::new(Progress::default()));
    let site = ProbeSite {
        root: ctx.config.root.clone(),
        log: ctx.registry.log_path(&service.name),
        log_offset,
        container: spawned.container.clone(),
    };
    let (service, abort, job) = (
        service.clone(),
        Arc::clone(abort),
        supervise::is_job(ctx, &service.name),
    );
    let shared = Arc::clone(&progress);
    let mut exited = health::exit_watch(spawned);
    let thread = thread::spawn(move || {
        let outcome = health::await_healthy(&service, &site, &mut *exited, job, &shared, &|| {
            abort.load(Ordering::SeqCst)
        });
        let _ = tx.send((service.name.clone(), outcome));
    });
    let now = Instant::now();
    Waiting {
        since: now,
        reported: now,
        progress,
        thread,
    }
}

fn status_is_completed(status: &Status) -> bool {
    matches!(status, Status::Completed)
}

impl Drop for Launch<'_> {
    /// Waiting threads give up and are joined, so none outlives the launch.
    fn drop(&mut self) {
        self.abort.store(true, Ordering::SeqCst);
        for (_, waiting) in std::mem::take(&mut self.waiting) {
            let _ = waiting.thread.join();
        }
    }
}

/// True when `wanted` and their dependencies all run (or, for jobs, completed).
pub fn all_up(ctx: &Context, wanted: &[String]) -> bool {
    ctx.config
        .graph()
        .with_dependencies(wanted)
        .iter()
        .all(|name| match ctx.registry.entry(name) {
            Some(Entry::Record(record)) => record.state == ServiceState::Completed || record.process().is_alive(),
            _ => false,
        })
}

/// The names of services a supervisor should watch after a start of `wanted`.
pub fn selection(ctx: &Context, wanted: &[String]) -> BTreeSet<String> {
    ctx.config.graph().with_dependencies(wanted).into_iter().collect()
}
