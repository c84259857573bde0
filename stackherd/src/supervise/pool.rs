//! The threads that run the supervisor's probes. A worker that finished a probe waits
//! for the next; a probe that finds every worker busy (a slow probe runs out its
//! timeout) gets a new one, up to `MAX_WORKERS`; beyond that it waits in the queue for
//! the first worker free. Probes fall due together (the services adopted at once keep
//! one rhythm), so a few workers take a second's fifty probes in a burst, with no
//! thread started or ended. The loop is woken when the pool has run out of work: one
//! wake for a burst of reports.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::os::wake;

type Job = Box<dyn FnOnce() + Send>;

/// The most workers: probes that run out their timeout hold up others only when this
/// many do at once. Measured with 50 services probed each second, sixteen workers cost
/// the monitor 0.8 MB more memory than four, and no less CPU.
const MAX_WORKERS: usize = 4;

pub(super) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<Queue>,
    /// Signalled once per job, so that exactly one idle worker wakes for it.
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    workers: usize,
    closed: bool,
}

impl Pool {
    pub(super) fn new() -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(Queue::default()),
                ready: Condvar::new(),
            }),
        }
    }

    /// Runs `job` on an idle worker, or on a new one when none is idle; on this thread
    /// when no thread can be started (the probe then holds up the loop, as it did
    /// before there were workers, rather than being lost).
    pub(super) fn run(&self, job: Job) {
        let mut queue = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting_worker = queue.idle > queue.jobs.len();
        queue.jobs.push_back(job);
        if waiting_worker || queue.workers >= MAX_WORKERS {
            self.shared.ready.notify_one();
            return;
        }
        queue.workers = queue.workers.saturating_add(1);
        drop(queue);
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("probe".to_string())
            .spawn(move || work(&shared));
        if started.is_err() {
            // This thread is the only one that adds jobs: the last one is this job,
            // unless a worker has taken it meanwhile.
            let job = self
                .shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .jobs
                .pop_back();
            if let Some(job) = job {
                job();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut queue = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        queue.closed = true;
        self.shared.ready.notify_all();
    }
}

/// Takes jobs until the pool is gone.
fn work(shared: &Shared) {
    let mut queue = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            drop(queue);
            job();
            queue = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            // Idle workers wait; every other one runs a job, this one excepted.
            let busy = queue.workers.saturating_sub(queue.idle).saturating_sub(1);
            if queue.jobs.is_empty() && busy == 0 {
                wake::wake();
            }
            continue;
        }
        if queue.closed {
            return;
        }
        queue.idle = queue.idle.saturating_add(1);
        queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
        queue.idle = queue.idle.saturating_sub(1);
    }
}
