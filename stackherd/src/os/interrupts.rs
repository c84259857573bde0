//! Ctrl+C, SIGTERM and SIGHUP sent to xtask itself. The handler only counts them; the
//! command that is running decides what a first and a second one mean.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::wake;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

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
                wake::wake();
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
    // Only the terminal UI uses it (the `tui` feature).
    #[cfg_attr(not(feature = "tui"), allow(dead_code))]
    pub fn raise(&self) {
        COUNT.fetch_add(1, Ordering::SeqCst);
        wake::wake();
    }
}

/// The termination signals counted so far in this process (0 where no handler counts
/// them): a bounded child compares it with the count at its start.
pub fn counted() -> usize {
    COUNT.load(Ordering::SeqCst)
}
