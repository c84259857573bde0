//! Starting services: dependency order, concurrent launches, health waits, rollback.
//!
//! Each service starts as soon as all its dependencies are healthy; independent
//! services start and are probed concurrently (one waiting thread each). If one fails,
//! everything this invocation started is stopped again and the failure is explained
//! with the last probe error and the service's last log lines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Context;
use crate::config::Service;
use crate::error::{Error, Result, exit};
use crate::health::{self, Progress, StartFailure};
use crate::logs;
use crate::preflight;
use crate::registry::{Entry, HealthState, Lock, Record, now_ms};
use crate::spawn;
use crate::stop::{self, Scope};
use crate::ui;

/// A service quiet for this long is explained: what it waits for and its latest news.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// How many log lines a failure shows.
const FAILURE_LOG_LINES: usize = 20;

/// `start-bg [SERVICE...]`: start the services and their dependencies, return once all
/// are healthy.
pub fn start_bg(ctx: &Context, names: &[String]) -> Result<()> {
    let wanted = ctx.select(names)?;
    let graph = ctx.config.graph();
    let selection = graph.with_dependencies(&wanted);
    let lock = ctx.registry.lock("start-bg")?;

    let mut to_start = Vec::new();
    for name in &selection {
        match ctx.registry.entry(name) {
            Some(Entry::Record(record)) if record.process().is_alive() => {
                ctx.ui
                    .ok(format!("{name} is already running (pid {}), left alone", record.pid));
            }
            Some(stale) => {
                ctx.ui.warn(format!("removing the stale record of {name}"));
                ctx.registry.remove(stale.service(), &lock)?;
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

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // The handler only records the signal; the start loop decides what to do.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));

    let started = Instant::now();
    let mut launch = Launch::new(ctx, &lock, &interrupted);
    match launch.run(&to_start) {
        Ok(()) => {
            ctx.ui.result(format!(
                "{} service(s) healthy in {}",
                to_start.len(),
                ui::duration(started.elapsed())
            ));
            Ok(())
        }
        Err(failure) => {
            let ours = launch.started.clone();
            drop(launch);
            ctx.ui
                .info(format!("stopping what this run started: {}", ours.join(", ")));
            let rollback = stop::stop_services(ctx, &Scope::Services(ours), stop::Options::default(), &lock);
            if let Err(err) = rollback {
                ui::error(&err);
            }
            Err(failure)
        }
    }
}

/// One run of launches: what started, what is healthy, who is still waited for.
struct Launch<'a> {
    ctx: &'a Context,
    lock: &'a Lock,
    interrupted: &'a Arc<AtomicBool>,
    /// Tells the waiting threads to give up.
    abort: Arc<AtomicBool>,
    /// Services this invocation spawned, in spawn order.
    started: Vec<String>,
    records: BTreeMap<String, Record>,
    waiting: BTreeMap<String, Waiting>,
}

struct Waiting {
    since: Instant,
    reported: Instant,
    progress: Arc<Mutex<Progress>>,
    thread: thread::JoinHandle<()>,
}

type Outcome = (String, std::result::Result<Duration, StartFailure>);

impl<'a> Launch<'a> {
    fn new(ctx: &'a Context, lock: &'a Lock, interrupted: &'a Arc<AtomicBool>) -> Self {
        Launch {
            ctx,
            lock,
            interrupted,
            abort: Arc::new(AtomicBool::new(false)),
            started: Vec::new(),
            records: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }

    /// Starts `to_start` in dependency order; a dependency outside `to_start` is
    /// already running.
    fn run(&mut self, to_start: &[String]) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Outcome>();
        let mut pending: Vec<String> = to_start.to_vec();
        let mut healthy: BTreeSet<String> = BTreeSet::new();
        loop {
            let mut ready = Vec::new();
            for name in &pending {
                if self
                    .service(name)?
                    .depends_on
                    .iter()
                    .all(|d| healthy.contains(d) || !to_start.contains(d))
                {
                    ready.push(name.clone());
                }
            }
            for name in ready {
                pending.retain(|n| n != &name);
                self.spawn(&name, tx.clone())?;
            }
            if self.waiting.is_empty() {
                return Ok(());
            }
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok((name, outcome)) => {
                    let waiting = self.waiting.remove(&name);
                    if let Some(w) = waiting {
                        let _ = w.thread.join();
                    }
                    self.settle(&name, outcome)?;
                    healthy.insert(name);
                }
                Err(RecvTimeoutError::Timeout) => self.report_slow(),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::failure("internal error: lost the health waiters"));
                }
            }
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(Error::with_code(
                    exit::INTERRUPTED,
                    "interrupted before every service was healthy",
                ));
            }
        }
    }

    fn service(&self, name: &str) -> Result<&'a Service> {
        self.ctx
            .config
            .service(name)
            .ok_or_else(|| Error::failure(format!("no service `{name}` in services.toml")))
    }

    /// Spawns one service, writes its record, and starts the thread that waits for it.
    fn spawn(&mut self, name: &str, tx: mpsc::Sender<Outcome>) -> Result<()> {
        let ctx = self.ctx;
        let service = self.service(name)?;
        let log = ctx.registry.open_log(name)?;
        let spawned = spawn::spawn(service, &ctx.config.root, log)?;
        self.started.push(name.to_string());
        let record = Record {
            service: name.to_string(),
            pid: spawned.process.pid,
            pgid: spawned.process.pgid().unwrap_or(spawned.process.pid),
            start_time: spawned.process.start_time,
            command: service.command.to_string(),
            started_at_ms: now_ms(),
            restarts: 0,
            health: HealthState::Starting,
            healthy_after_ms: None,
            log: ctx.registry.log_path(name),
            ports: service.ports.clone(),
        };
        ctx.registry.write(&record, self.lock)?;
        self.records.insert(name.to_string(), record);
        ctx.ui.info(format!(
            "started {name} (pid {}){}",
            spawned.process.pid,
            match &service.health {
                Some(h) => format!(", waiting for {}", h.probe),
                None => String::new(),
            }
        ));

        let progress = Arc::new(Mutex::new(Progress::default()));
        let (service, root, abort) = (service.clone(), ctx.config.root.clone(), Arc::clone(&self.abort));
        let shared = Arc::clone(&progress);
        let mut child = spawned.child;
        let thread = thread::spawn(move || {
            let outcome = health::await_healthy(&service, &root, &mut child, &shared, &|| abort.load(Ordering::SeqCst));
            let _ = tx.send((service.name.clone(), outcome));
        });
        let now = Instant::now();
        self.waiting.insert(
            name.to_string(),
            Waiting {
                since: now,
                reported: now,
                progress,
                thread,
            },
        );
        Ok(())
    }

    /// Records a service's outcome: healthy, or the explained failure.
    fn settle(&mut self, name: &str, outcome: std::result::Result<Duration, StartFailure>) -> Result<()> {
        let ctx = self.ctx;
        let Some(record) = self.records.get_mut(name) else {
            return Ok(());
        };
        match outcome {
            Ok(took) => {
                record.health = HealthState::Healthy;
                record.healthy_after_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
                ctx.registry.write(record, self.lock)?;
                ctx.ui
                    .ok(format!("{name}  pid {}  healthy in {}", record.pid, ui::duration(took)));
                Ok(())
            }
            Err(failure) => {
                let message = match &failure {
                    StartFailure::Exited(status) => format!("service `{name}` exited during startup ({status})"),
                    StartFailure::Unhealthy { waited, last_error } => format!(
                        "service `{name}` did not become healthy within {}: {last_error}",
                        ui::duration(*waited)
                    ),
                    StartFailure::Interrupted => format!("start of `{name}` interrupted"),
                };
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
                let code = if matches!(failure, StartFailure::Interrupted) {
                    exit::INTERRUPTED
                } else {
                    exit::FAILURE
                };
                Err(Error::with_code(
                    code,
                    format!("{message}; see `cargo xtask logs {name}`"),
                ))
            }
        }
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

impl Drop for Launch<'_> {
    /// Waiting threads give up and are joined, so none outlives the launch.
    fn drop(&mut self) {
        self.abort.store(true, Ordering::SeqCst);
        for (_, waiting) in std::mem::take(&mut self.waiting) {
            let _ = waiting.thread.join();
        }
    }
}
