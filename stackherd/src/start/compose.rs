//! The compose project's readiness: after `up -d`, its services are waited for as
//! `docker compose up --wait` waits (healthy, or running when they have no
//! healthcheck), so that a dependent never starts against a database that still
//! answers nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::docker::{self, ComposeState};
use crate::error::{Error, Interrupted, Result};
use crate::os::interrupts::Interrupts;
use crate::poll::{self, Backoff};
use crate::service::Context;
use crate::ui;

/// How long the compose services may take to become ready.
const COMPOSE_WAIT: Duration = Duration::from_secs(300);

/// Waits until every compose service is ready; fails at once when one exits or turns
/// unhealthy, and names it.
pub(super) fn await_ready(ctx: &Context, interrupts: Interrupts) -> Result<()> {
    let started = Instant::now();
    let deadline = poll::after(COMPOSE_WAIT);
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(500));
    let mut ready: BTreeSet<String> = BTreeSet::new();
    loop {
        let states = docker::compose_states(&ctx.config);
        for (name, state) in &states {
            if state.is_ready() && ready.insert(name.clone()) {
                let how = if *state == ComposeState::Healthy {
                    "healthy"
                } else {
                    "running"
                };
                ctx.ui.ok(format!(
                    "compose service {name} {how} after {}",
                    ui::duration(started.elapsed())
                ));
            }
        }
        if let Some((name, why)) = states
            .iter()
            .find_map(|(name, state)| failure(state).map(|why| (name, why)))
        {
            return Err(Error::Docker {
                what: format!("compose service `{name}` did not become ready"),
                source: why.into(),
            });
        }
        if states.iter().all(|(_, state)| state.is_ready()) {
            return Ok(());
        }
        if interrupts.any() {
            return Err(Error::Interrupted(Interrupted::ComposeStart));
        }
        if !backoff.pause(deadline) {
            let waiting: Vec<&str> = states
                .iter()
                .filter(|(_, s)| !s.is_ready())
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(Error::Docker {
                what: format!("compose services not ready after {}", ui::duration(COMPOSE_WAIT)),
                source: format!("still waiting for {}", waiting.join(", ")).into(),
            });
        }
    }
}

/// Why a compose service will not become ready, if it will not.
fn failure(state: &ComposeState) -> Option<String> {
    match state {
        ComposeState::Exited(status) => Some(format!("its container ended ({status})")),
        ComposeState::Unhealthy => Some("its healthcheck fails (`docker compose ps` shows it)".to_string()),
        _ => None,
    }
}
