//! The supervisor's probes, each on a worker thread of the pool: readiness of
//! restarted services (adaptive, from a few ms up to the interval) and liveness of
//! healthy ones (every interval). A probe takes as long as its own timeout allows; the
//! loop only starts probes and reads their reports.

use std::time::{Duration, Instant};

use super::wakes::has_liveness;
use super::{Event, Phase, Supervisor};
use crate::os::wake;
use crate::poll;
use crate::probe::{ProbeError, Prober};

/// How early a liveness probe may run, so that probes due within a moment of each
/// other run together: their reports then come back in one burst and wake the loop
/// once, where each probe's own rhythm would wake it once per service. A twentieth of
/// the pause, at most 50 ms (5% early at the default second).
fn liveness_slack(prober: &Prober) -> Duration {
    prober
        .health()
        .liveness_interval()
        .checked_div(20)
        .unwrap_or_default()
        .min(Duration::from_millis(50))
}

/// What a probe thread sends back: its result, and the prober (which remembers how far
/// it read the log).
pub(super) struct ProbeReport {
    service: String,
    generation: u64,
    result: Result<(), ProbeError>,
    prober: Prober,
}

impl Supervisor<'_> {
    /// Starts the probes that are due; a service without health check is healthy as
    /// soon as it is watched starting.
    pub(super) fn probe_due(&mut self) {
        let now = Instant::now();
        let queued: Vec<String> = self
            .watched
            .keys()
            .filter(|name| self.healthy_queued(name))
            .cloned()
            .collect();
        for (name, w) in &mut self.watched {
            if w.probing {
                continue;
            }
            let Some(prober) = w.prober.as_ref() else {
                if let Phase::Starting { since, .. } = w.phase
                    && !queued.contains(name)
                {
                    self.pending.push(Event::Healthy {
                        service: name.clone(),
                        took: since.elapsed(),
                    });
                }
                continue;
            };
            let due = match w.phase {
                Phase::Starting { next_probe, .. } => next_probe <= now,
                // A log line, once seen, stays seen: log probes have no liveness.
                Phase::Healthy { next_probe, .. } | Phase::Unhealthy { next_probe, .. } => {
                    next_probe <= poll::later(now, liveness_slack(prober)) && has_liveness(prober)
                }
                Phase::Waiting { .. } | Phase::Held { .. } | Phase::Done => false,
            };
            if !due {
                continue;
            }
            let Some(mut prober) = w.prober.take() else {
                continue;
            };
            w.probing = true;
            // A starting service's report is news at once; liveness reports wake the
            // loop when the pool has run out of work, so that fifty services probed
            // each second wake it once, not fifty times.
            let urgent = matches!(w.phase, Phase::Starting { .. });
            let (service, generation, tx) = (name.clone(), w.generation, self.reports.0.clone());
            self.pool.run(Box::new(move || {
                let result = prober.probe();
                let _ = tx.send(ProbeReport {
                    service,
                    generation,
                    result,
                    prober,
                });
                if urgent {
                    wake::wake();
                }
            }));
        }
    }

    /// Turns the reports that are in into events: healthy, timed out at start-up,
    /// failing liveness, recovered.
    pub(super) fn collect_reports(&mut self) {
        let now = Instant::now();
        while let Ok(report) = self.reports.1.try_recv() {
            let Some(w) = self.watched.get_mut(&report.service) else {
                continue;
            };
            if w.generation != report.generation {
                continue;
            }
            w.probing = false;
            let health = report.prober.health().clone();
            w.prober = Some(report.prober);
            let name = report.service;
            let was_unhealthy = matches!(w.phase, Phase::Unhealthy { .. });
            match (&mut w.phase, report.result) {
                (Phase::Starting { since, .. }, Ok(())) => self.pending.push(Event::Healthy {
                    service: name,
                    took: since.elapsed(),
                }),
                (Phase::Starting { deadline, .. }, Err(error)) if deadline.is_some_and(|d| d <= now) => {
                    self.pending.push(Event::StartTimedOut {
                        service: name,
                        error: error.to_string(),
                    });
                }
                (Phase::Starting { next_probe, pause, .. }, Err(_)) => {
                    *next_probe = poll::later(now, *pause);
                    *pause = pause.saturating_mul(2).min(health.interval);
                }
                (Phase::Healthy { failures, next_probe } | Phase::Unhealthy { failures, next_probe }, result) => {
                    // A healthy service is probed at its (possibly slower) liveness
                    // pace; one that failed a probe at `interval`, to see it recover.
                    let pause = match &result {
                        Ok(()) => health.liveness_interval(),
                        Err(_) => health.interval,
                    };
                    *next_probe = poll::later(now, pause);
                    match result {
                        Ok(()) => {
                            *failures = 0;
                            if was_unhealthy {
                                self.pending.push(Event::Recovered { service: name });
                            }
                        }
                        Err(error) => {
                            *failures = failures.saturating_add(1);
                            if *failures >= health.retries && !was_unhealthy {
                                self.pending.push(Event::LivenessFailed {
                                    service: name,
                                    error: error.to_string(),
                                });
                            }
                        }
                    }
                }
                (Phase::Waiting { .. } | Phase::Held { .. } | Phase::Done, _) => {}
            }
        }
    }
}
