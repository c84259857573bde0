//! The spawning workers: the services due at once are spawned, their records written
//! and their health waiters started by one worker per core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::{Launch, Outcome, Step, Waiting};
use crate::config::Service;
use crate::error::{Error, Interrupted, Result};
use crate::os::spawn::ServiceChild;
use crate::probe::{self, ProbeSite, Prober, Progress};
use crate::service::Context;
use crate::service::daemon::DaemonSearch;
use crate::service::fork_window;
use crate::service::launch;
use crate::service::launch::{Output, Spawned};
use crate::service::owner;
use crate::state::{Lock, Record, fault, logs};

impl<'a> Launch<'a> {
    /// Spawns the services that are due and writes their records, on as many threads
    /// as there are cores, then tracks each. What did spawn is tracked even when another
    /// failed, so that the rollback stops it.
    pub(super) fn spawn_all(&mut self, names: &[&String], tx: &mpsc::Sender<Outcome>) -> Result<()> {
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
        // One relay for the process services due at once.
        let processes: Vec<&Service> = services.iter().copied().filter(|s| s.container.is_none()).collect();
        let mut outputs = launch::relay_outputs(ctx, &processes).into_iter();
        let jobs: Vec<(&Service, u32, Option<Output>)> = services
            .iter()
            .copied()
            .zip(restarts)
            .map(|(s, r)| {
                let output = if s.container.is_none() {
                    outputs.next().and_then(|o| o.ok())
                } else {
                    None
                };
                (s, r, output)
            })
            .collect();
        let spawned: Vec<Result<Launched>> = match workers {
            0 => Vec::new(),
            1 => jobs
                .into_iter()
                .map(|(s, r, o)| spawn_one(ctx, lock, s, r, o, abort, tx))
                .collect(),
            _ => thread::scope(|scope| {
                let size = jobs.len().div_ceil(workers);
                let mut jobs = jobs.into_iter();
                let chunks: Vec<_> = std::iter::from_fn(|| {
                    let chunk: Vec<_> = jobs.by_ref().take(size).collect();
                    (!chunk.is_empty()).then_some(chunk)
                })
                .map(|chunk| {
                    let len = chunk.len();
                    let worker = scope.spawn(move || {
                        chunk
                            .into_iter()
                            .map(|(s, r, o)| spawn_one(ctx, lock, s, r, o, abort, tx))
                            .collect::<Vec<_>>()
                    });
                    (len, worker)
                })
                .collect();
                chunks
                    .into_iter()
                    .flat_map(|(len, worker)| {
                        worker.join().unwrap_or_else(|_| {
                            (0..len)
                                .map(|_| Err(Error::Internal("a spawning thread panicked")))
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
    pub(super) fn track(&mut self, service: &'a Service, launched: Launched) -> Result<()> {
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
                _ if ctx.config.is_job(name) => ", waiting for it to complete".to_string(),
                Some(h) => format!(", waiting for {}", h.probe),
                None => String::new(),
            }
        ));
        self.status.insert(name.to_string(), Step::Waiting);
        self.waiting.insert(name.to_string(), waiting);
        Ok(())
    }
}

/// What a spawning worker did for one service that it spawned.
pub(super) struct Launched {
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
    output: Option<Output>,
    abort: &Arc<AtomicBool>,
    tx: &mpsc::Sender<Outcome>,
) -> Result<Launched> {
    let log = ctx.registry.open_log_for_start(&service.name)?;
    let log_offset = logs::len(&ctx.registry.log_path(&service.name));
    // Jobs are never followed to a daemon; containers are not our processes.
    let forks = service.container.is_none() && !ctx.config.is_job(&service.name);
    let window = match forks.then(fork_window::enter) {
        Some(Err(fork_window::Interrupted)) => {
            return Err(Error::Interrupted(Interrupted::Start));
        }
        Some(Ok(window)) => window,
        None => None,
    };
    let spawned = launch::start(ctx, service, log, output)?;
    let pid = spawned.process.pid;
    fault::point(&ctx.registry, fault::AFTER_SPAWN);
    let record = launch::fresh_record(ctx, service, &spawned, restarts);
    if let Err(err) = ctx.registry.write(&record, lock) {
        return Ok(Launched { pid, tracked: Err(err) });
    }
    fault::point(&ctx.registry, fault::AFTER_RECORD);
    let waiting = wait_for_healthy(ctx, service, spawned, window, log_offset, abort, tx.clone());
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
    window: Option<fork_window::Held>,
    log_offset: u64,
    abort: &Arc<AtomicBool>,
    tx: mpsc::Sender<Outcome>,
) -> Waiting {
    let progress = Arc::new(Mutex::new(Progress::default()));
    let main = Arc::new(Mutex::new(None));
    let owner = spawned
        .container
        .is_none()
        .then(|| owner::of_start(spawned.cgroup.clone(), Arc::clone(&main), spawned.process));
    let site = ProbeSite {
        root: ctx.config.root.clone(),
        log: ctx.registry.log_path(&service.name),
        log_offset,
        container: spawned.container.clone(),
        owner,
    };
    let prober = service.health.as_ref().map(|h| Prober::new(service, h, site));
    let (name, abort, job) = (
        service.name.clone(),
        Arc::clone(abort),
        ctx.config.is_job(&service.name),
    );
    let shared = Arc::clone(&progress);
    let daemon = (!job && spawned.container.is_none())
        .then(|| DaemonSearch::new(ctx, service, spawned.cgroup.clone(), spawned.process))
        .map(|search| search.spawned_after(window.as_ref().map(|w| w.before.clone()).unwrap_or_default()));
    // A pidfd of our child wakes the waiter the moment it ends (a job done, a crash).
    let ended = spawned.child.as_ref().and_then(ServiceChild::end_watch);
    let mut exited = launch::exit_watch(spawned, daemon, Arc::clone(&main), window);
    let thread = thread::spawn(move || {
        let interrupted = || abort.load(Ordering::SeqCst);
        let outcome = probe::await_healthy(prober, &mut *exited, ended, job, &shared, &interrupted);
        let _ = tx.send((name, outcome));
    });
    let now = Instant::now();
    Waiting {
        since: now,
        reported: now,
        progress,
        main,
        thread,
    }
}
