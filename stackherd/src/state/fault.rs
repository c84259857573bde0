//! Fault points for the fault-matrix tests: with `XTASK_FAULT=<point>` set, xtask stops
//! at that point of its work (leaving `<state_dir>/fault-<point>` behind to say so) and
//! waits to be killed, so that a test can SIGKILL it exactly there; at a pause point it
//! waits instead until the test removes that file, so that the test can change the
//! world in between. Unset, a point costs one comparison.

use std::sync::OnceLock;
use std::time::Duration;

use super::Registry;
use super::atomic::write_atomically;
use crate::poll::{self, Backoff};

/// The points: where a crash could leave the most confusing state behind.
pub const AFTER_SPAWN: &str = "start-after-spawn";
pub const AFTER_RECORD: &str = "start-after-record";
pub const AFTER_HEALTHY: &str = "start-after-healthy";
pub const AFTER_PHASE_1: &str = "stop-after-phase-1";
pub const AFTER_PHASE_2: &str = "stop-after-phase-2";
/// A pause point: the monitor has reported the start and not yet looked at the services.
pub const BEFORE_SUPERVISING: &str = "monitor-before-supervising";

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT.get_or_init(|| std::env::var("XTASK_FAULT").ok()).as_deref()
}

/// Blocks forever if `point` is the armed one.
pub fn point(registry: &Registry, point: &str) {
    if armed() != Some(point) {
        return;
    }
    let _ = write_atomically(
        &registry.dir().join(format!("fault-{point}")),
        std::process::id().to_string().as_bytes(),
    );
    loop {
        // Waiting to be killed is this hook's whole purpose: nothing to poll for.
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Waits while `point` is the armed one and its file exists (at most a minute).
pub fn pause(registry: &Registry, point: &str) {
    if armed() != Some(point) {
        return;
    }
    let file = registry.dir().join(format!("fault-{point}"));
    if write_atomically(&file, std::process::id().to_string().as_bytes()).is_err() {
        return;
    }
    let deadline = crate::poll::after(Duration::from_secs(60));
    poll::wait_until(deadline, Backoff::fast(), || (!file.exists()).then_some(()));
}
