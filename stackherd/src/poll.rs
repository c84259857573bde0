//! The one deadline-poll helper: wait for a condition by polling with a growing pause,
//! never by sleeping a fixed grace period.

use std::os::fd::BorrowedFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Pauses between polls: starts at `first` and doubles up to `max`, so a condition that
/// becomes true quickly is noticed within milliseconds and a slow one costs little CPU.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first.min(max),
            max,
        }
    }

    /// The pace for waiting on processes and sockets: 1 ms up to 50 ms.
    pub fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(50))
    }

    /// Sleeps for the next pause, cut short at `deadline`. False once the deadline passed.
    pub fn pause(&mut self, deadline: Instant) -> bool {
        self.pause_or_readable(deadline, None)
    }

    /// As `pause`, and woken early once `fd` is readable (a pidfd: its process ended).
    pub fn pause_or_readable(&mut self, deadline: Instant, fd: Option<BorrowedFd<'_>>) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let pause = self.next.min(deadline.saturating_duration_since(now));
        match fd {
            Some(fd) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                // Rounded up: a timeout rounded down to 0 ms would spin.
                let ms = pause.as_micros().div_ceil(1000);
                let _ = poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX));
            }
            None => std::thread::sleep(pause),
        }
        self.next = self.next.saturating_mul(2).min(self.max);
        true
    }
}

/// Whether `fd` is readable now (a pidfd: its process has ended).
pub fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// When the command began, by the wall clock: a monitor is told its `start-bg`'s, so
/// that what `start-bg` reports counts the config load, builds and compose start too.
static BEGAN: OnceLock<SystemTime> = OnceLock::new();

/// Sets when the command began; only the first call counts.
pub fn began_at(at: SystemTime) {
    let _ = BEGAN.set(at);
}

/// When the command began (now, on the first call when nobody said).
pub fn began() -> SystemTime {
    *BEGAN.get_or_init(SystemTime::now)
}

/// The wall-clock time since the command began.
pub fn since_began() -> Duration {
    SystemTime::now().duration_since(began()).unwrap_or_default()
}

/// `from` plus `wait`, for deadlines and due times. A wait too long for the clock
/// (none that the config allows comes near) ends a year on instead of overflowing.
pub fn later(from: Instant, wait: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    from.checked_add(wait)
        .or_else(|| from.checked_add(YEAR))
        .unwrap_or(from)
}

/// `Instant::now()` plus `wait` (see `later`).
pub fn after(wait: Duration) -> Instant {
    later(Instant::now(), wait)
}

/// The instant `after` from now; `None` when that is beyond what the clock can hold (a
/// duration a user wrote may be as large as they like): then there is no bound.
pub fn deadline_after(after: Duration) -> Option<Instant> {
    Instant::now().checked_add(after)
}

/// Polls `condition` until it yields a value or `deadline` passes; the condition is
/// always tried once more at the deadline so that a late success is not lost.
pub fn wait_until<T>(deadline: Instant, mut backoff: Backoff, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if !backoff.pause(deadline) {
            return condition();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        let got = wait_until(Instant::now() + Duration::from_secs(5), Backoff::fast(), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let start = Instant::now();
        let got: Option<()> = wait_until(start + Duration::from_millis(30), Backoff::fast(), || None);
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
