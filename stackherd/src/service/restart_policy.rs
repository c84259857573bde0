//! The supervisor's pure decisions: whether an ended service restarts, and after how
//! long. Table tests pin them; no process is needed.

use std::fmt;
use std::time::Duration;

use crate::config::{RestartPolicy, Service};
use crate::os::Exit;

/// The longest pause between two restarts, however often a service failed.
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// How a supervised service ended: its main process exited, or the supervisor took it
/// down because it did not become or stay healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(Exit),
    TakenDown,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Exited(exit) => write!(f, "{exit}"),
            End::TakenDown => f.write_str("taken down as unhealthy"),
        }
    }
}

/// What to do about an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay`; this is restart number `attempt`.
    Restart { delay: Duration, attempt: u32 },
    /// A one-shot job finished with exit code 0.
    Complete,
    /// Not restarted: its policy says so (`no`, or `on-failure` after a clean exit).
    Leave,
    /// Not restarted any more: `max_restarts` reached.
    GiveUp,
}

/// The restart decision for `service` after `end`, having been restarted `restarts`
/// times already. Pure: the table tests below pin it.
pub fn decide(service: &Service, end: &End, restarts: u32, job: bool) -> Decision {
    let clean = succeeded(service, end);
    if job && clean {
        return Decision::Complete;
    }
    let wants_restart = match service.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure => !clean,
        RestartPolicy::Always => true,
    };
    if !wants_restart {
        Decision::Leave
    } else if service.max_restarts.is_some_and(|max| restarts >= max) {
        Decision::GiveUp
    } else {
        Decision::Restart {
            delay: backoff(service.restart_delay, restarts),
            attempt: restarts.saturating_add(1),
        }
    }
}

/// True when `end` is an exit with one of the service's `success_exit_codes`.
pub fn succeeded(service: &Service, end: &End) -> bool {
    matches!(end, End::Exited(Exit::Code(code)) if service.success_exit_codes.contains(code))
}

/// The restarts that count for the next decision: none once the instance that ended
/// had stayed up for the service's `restart_window`, so that a crash after a day of
/// service is a first failure, not the sixth of the morning.
pub fn restarts_in_window(service: &Service, restarts: u32, up_for: Duration) -> u32 {
    if up_for >= service.restart_window { 0 } else { restarts }
}

/// "attempt 3 of 5", or "attempt 3" with `max_restarts = "unlimited"`.
pub fn attempt_text(service: &Service, attempt: u32) -> String {
    match service.max_restarts {
        Some(max) => format!("attempt {attempt} of {max}"),
        None => format!("attempt {attempt}"),
    }
}

/// `restart_delay`, doubled for each restart already made, capped.
pub fn backoff(first: Duration, restarts: u32) -> Duration {
    let factor = 2u32.saturating_pow(restarts.min(16));
    first.saturating_mul(factor).min(MAX_RESTART_DELAY.max(first))
}

pub fn policy_name(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(restart: RestartPolicy, max_restarts: u32) -> Service {
        Service {
            max_restarts: Some(max_restarts),
            ..any_service(restart)
        }
    }

    fn any_service(restart: RestartPolicy) -> Service {
        Service {
            restart,
            ..Service::for_test("s")
        }
    }

    #[test]
    fn restart_decisions() {
        use Decision::*;
        use RestartPolicy::*;
        let s = |n| Duration::from_secs(n);
        let rows: &[(RestartPolicy, End, u32, bool, Decision)] = &[
            (No, End::Exited(Exit::Code(1)), 0, false, Leave),
            (No, End::Exited(Exit::Code(0)), 0, false, Leave),
            (OnFailure, End::Exited(Exit::Code(0)), 0, false, Leave),
            (
                OnFailure,
                End::Exited(Exit::Code(2)),
                0,
                false,
                Restart {
                    delay: s(1),
                    attempt: 1,
                },
            ),
            (
                OnFailure,
                End::Exited(Exit::Signal(9)),
                1,
                false,
                Restart {
                    delay: s(2),
                    attempt: 2,
                },
            ),
            (
                OnFailure,
                End::Exited(Exit::Unknown),
                2,
                false,
                Restart {
                    delay: s(4),
                    attempt: 3,
                },
            ),
            (OnFailure, End::Exited(Exit::Code(1)), 3, false, GiveUp),
            (
                Always,
                End::Exited(Exit::Code(0)),
                0,
                false,
                Restart {
                    delay: s(1),
                    attempt: 1,
                },
            ),
            (
                Always,
                End::TakenDown,
                2,
                false,
                Restart {
                    delay: s(4),
                    attempt: 3,
                },
            ),
            (Always, End::Exited(Exit::Code(0)), 0, true, Complete),
            (No, End::Exited(Exit::Code(0)), 0, true, Complete),
            (
                OnFailure,
                End::Exited(Exit::Code(3)),
                0,
                true,
                Restart {
                    delay: s(1),
                    attempt: 1,
                },
            ),
        ];
        for (policy, exit, restarts, job, expected) in rows {
            let got = decide(&service(*policy, 3), exit, *restarts, *job);
            assert_eq!(
                got, *expected,
                "{policy:?} after {exit} with {restarts} restarts (job: {job})"
            );
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(100), 0), ms(100));
        assert_eq!(backoff(ms(100), 3), ms(800));
        assert_eq!(backoff(ms(100), 20), MAX_RESTART_DELAY);
        assert_eq!(backoff(Duration::from_secs(60), 2), Duration::from_secs(60));
    }

    #[test]
    fn success_codes_unlimited_restarts_and_the_window() {
        let mut s = any_service(RestartPolicy::OnFailure);
        s.success_exit_codes = vec![0, 143];
        assert_eq!(decide(&s, &End::Exited(Exit::Code(143)), 0, false), Decision::Leave);
        assert_eq!(decide(&s, &End::Exited(Exit::Code(143)), 0, true), Decision::Complete);
        assert!(matches!(
            decide(&s, &End::Exited(Exit::Code(1)), 1_000_000, false),
            Decision::Restart { attempt: 1_000_001, .. }
        ));
        assert_eq!(attempt_text(&s, 7), "attempt 7");
        s.max_restarts = Some(5);
        assert_eq!(attempt_text(&s, 2), "attempt 2 of 5");
        assert_eq!(restarts_in_window(&s, 4, Duration::from_secs(59)), 4);
        assert_eq!(restarts_in_window(&s, 4, Duration::from_secs(60)), 0);
    }
}
