//! Ctrl+C, SIGTERM and SIGHUP sent to xtask itself. The handler only counts them; the
//! command that is running decides what a first and a second one mean.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();
/// Counts `wake` calls: news from another thread of xtask (a probe's report).
static NEWS: AtomicUsize = AtomicUsize::new(0);
/// Wakes `Interrupts::pause` early when a signal arrives.
static WAKE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

/// Counts the termination signals received since `install`.
#[derive(Debug, Clone, Copy)]
pub struct Interrupts;

impl Interrupts {
    /// Installs the counting handler once per process. Without it (the handler could
    /// not be installed) the signals keep their default action: xtask ends at once and
    /// the services, which run in sessions of their own, are unaffected.
    pub fn install() -> Interrupts {
        INSTALLED.get_or_init(|| {
            ctrlc::set_handler(|| {
                COUNT.fetch_add(1, Ordering::SeqCst);
                WAKE.1.notify_all();
            })
            .is_ok()
        });
        Interrupts
    }

    pub fn count(&self) -> usize {
        COUNT.load(Ordering::SeqCst)
    }

    pub fn any(&self) -> bool {
        self.count() > 0
    }

    /// Counts as one more signal: a terminal UI's quit key (raw mode turns Ctrl+C into a
    /// key) stands for the Ctrl+C that ends a foreground start, so that a real one
    /// afterwards is the second, which forces the stop.
    pub fn raise(&self) {
        COUNT.fetch_add(1, Ordering::SeqCst);
        WAKE.1.notify_all();
    }

    /// Sleeps for `duration`, or less if a signal or news (`wake`) arrives meanwhile (a
    /// plain sleep would be resumed after the handler and notice the signal only at its
    /// end).
    pub fn pause(&self, duration: Duration) {
        let before = (self.count(), NEWS.load(Ordering::SeqCst));
        let Ok(guard) = WAKE.0.lock() else { return };
        let _ = WAKE.1.wait_timeout_while(guard, duration, |_| {
            (COUNT.load(Ordering::SeqCst), NEWS.load(Ordering::SeqCst)) == before
        });
    }
}

/// Ends a `pause` early: another thread has news for the one that pauses.
pub fn wake() {
    NEWS.fetch_add(1, Ordering::SeqCst);
    // Taking the lock orders this after a pauser's check of NEWS and before its wait.
    drop(WAKE.0.lock());
    WAKE.1.notify_all();
}
