//! The threads that run the supervisor's probes. A worker that finished a probe waits
//! for the next; a probe that finds every worker busy (a slow probe runs out its
//! timeout) gets a new one, so no probe waits for another. Fifty services probed each
//! second cost fifty wake-ups of a waiting worker, not fifty thread starts.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

/// Idle workers kept beyond this many end: a burst of probes (fifty services adopted at
/// once) does not leave fifty threads behind.
const MAX_IDLE: usize = 16;

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
        if waiting_worker {
            self.shared.ready.notify_one();
            return;
        }
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

/// Takes jobs until the pool is gone or enough other workers are idle.
fn work(shared: &Shared) {
    let mut queue = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            drop(queue);
            job();
            queue = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        if queue.closed || queue.idle >= MAX_IDLE {
            return;
        }
        queue.idle += 1;
        queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
        queue.idle -= 1;
    }
}
