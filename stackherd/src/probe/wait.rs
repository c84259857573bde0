//! The adaptive wait for a starting service: probes a few ms apart at first, backing
//! off to the health check's interval, until it passes, the process exits, or the
//! startup deadline passes.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Prober;
use crate::os::Exit;
use crate::poll;
use crate::poll::Backoff;

/// The first pause between probes of a starting service; pauses double up to its interval.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The pause while a job or a service without health check is watched for its exit.
const WATCH_PAUSE: Duration = Duration::from_millis(100);

/// How a start ended well.
#[derive(Debug, Clone, Copy)]
pub enum Started {
    Healthy(Duration),
    /// A one-shot job exited 0.
    Completed(Duration),
}

/// Why a starting service did not become healthy.
#[derive(Debug, Clone)]
pub enum StartFailure {
    /// The service's main process exited.
    Exited(Exit),
    /// Probes kept failing until the startup deadline.
    Unhealthy { waited: Duration, last_error: String },
    /// The user interrupted the start.
    Interrupted,
}

/// What the waiter sees of a starting service's main process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Main {
    Running,
    /// Forking into the background: its PID file names another process and the one
    /// we started has not exited yet. A probe does not count until it has.
    Forking,
    Ended(Exit),
}

/// What a waiting service is doing, shared with the thread that reports progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub last_error: Option<String>,
}

/// Waits until the service passes its probe (`prober`; none: healthy once started),
/// until `start_period + retries * interval` has passed. A `job` (a dependency that
/// others need `completed`) is waited for until it exits instead: exit 0 completes it.
/// Fails at once if the main process exits (a job: with another code) or `interrupted`
/// turns true.
pub fn await_healthy(
    mut prober: Option<Prober>,
    main: &mut dyn FnMut() -> Main,
    mut ended: Option<OwnedFd>,
    job: bool,
    progress: &Arc<Mutex<Progress>>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Started, StartFailure> {
    let started = Instant::now();
    let deadline = prober
        .as_ref()
        .map(|p| poll::later(started, p.health().startup_deadline()));
    let max_pause = prober.as_ref().map_or(WATCH_PAUSE, |p| p.health().interval);
    let mut backoff = Backoff::new(FIRST_PAUSE, max_pause);
    loop {
        let forking = match main() {
            Main::Ended(exit) if job && exit == Exit::Code(0) => return Ok(Started::Completed(started.elapsed())),
            Main::Ended(exit) => return Err(StartFailure::Exited(exit)),
            Main::Forking => true,
            Main::Running => false,
        };
        if interrupted() {
            return Err(StartFailure::Interrupted);
        }
        // The first process ended and yet `main` runs on: it forked into the background
        // and a daemon is followed now. Its pidfd would stay readable: waking on it
        // would spin.
        if ended.as_ref().is_some_and(|fd| poll::readable(fd.as_fd())) {
            ended = None;
        }
        let last_error = match prober.as_mut().filter(|_| !job) {
            None if !job && !forking => return Ok(Started::Healthy(started.elapsed())),
            None if !job => "forking into the background".to_string(),
            None => "still running".to_string(),
            Some(_) if forking => "forking into the background".to_string(),
            Some(prober) => match prober.probe() {
                Ok(()) => return Ok(Started::Healthy(started.elapsed())),
                Err(err) => err.to_string(),
            },
        };
        if let Ok(mut p) = progress.lock() {
            p.last_error = Some(last_error.clone());
        }
        let until = deadline.unwrap_or_else(|| poll::after(max_pause));
        if !backoff.pause_or_readable(until, ended.as_ref().map(AsFd::as_fd)) && deadline.is_some() {
            return Err(StartFailure::Unhealthy {
                waited: started.elapsed(),
                last_error,
            });
        }
    }
}
