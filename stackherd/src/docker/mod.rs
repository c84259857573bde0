//! Docker: container services, the compose file, and phase 4 of stop.
//!
//! Everything goes through the `docker` CLI (and `docker compose` or `docker-compose`,
//! whichever exists), each call a child of the one runner (`os::child`): its own
//! process group, and a bound after which the group is killed, so that an engine that
//! hangs makes a command fail, never wait forever. Containers, the project network
//! and named volumes carry labels naming the project root (the same canonical path as
//! the cookie) and the service, so phase 4 finds exactly this project's, and nothing of
//! another checkout.

mod container;
mod project;

use std::fmt;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Config, fnv1a};
use crate::os::child::{self, Ran};

pub use container::{
    State, begin_stop, exec_probe, exit_of, follow_logs, image_present, inspect, run, stop_and_remove,
};
pub use project::{ComposeState, compose_logs, compose_service_names, compose_states, compose_up, remove_project};

pub const LABEL_PROJECT: &str = "xtask.project";
pub const LABEL_SERVICE: &str = "xtask.service";

/// Why a docker or compose call failed.
#[derive(Debug)]
pub enum DockerError {
    /// The command could not be run at all.
    NotRun { command: String, why: String },
    /// It ran and failed: the last line of its error output.
    Failed { command: String, stderr: String },
    /// No engine answers `docker version`.
    NoEngine(Box<DockerError>),
    /// The container was gone right after `docker run`.
    Vanished { container: String },
    /// The container's main process ended at once.
    ExitedAtOnce { container: String, code: i32 },
    /// A bounded call did not finish within `after`: its process group was killed.
    TimedOut { command: String, after: Duration },
    /// A Ctrl+C (or SIGTERM, SIGHUP) came while it ran: its process group was killed.
    Interrupted { command: String },
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::NotRun { command, why } => write!(f, "cannot run {command}: {why}"),
            DockerError::Failed { command, stderr } => write!(f, "{command}: {stderr}"),
            DockerError::NoEngine(err) => {
                write!(
                    f,
                    "no Docker engine answers ({err}); start it, or remove the container services"
                )
            }
            DockerError::Vanished { container } => write!(f, "container {container} vanished right after it started"),
            DockerError::ExitedAtOnce { container, code } => {
                write!(f, "container {container} exited at once (exit code {code})")
            }
            DockerError::Interrupted { command } => write!(f, "`{command}` was interrupted"),
            DockerError::TimedOut { command, after } => {
                write!(f, "{command} did not answer within {}s and was killed", after.as_secs())
            }
        }
    }
}

impl std::error::Error for DockerError {}

impl DockerError {
    /// What went wrong, without the advice `NoEngine` wraps it in.
    pub fn innermost(&self) -> &DockerError {
        match self {
            DockerError::NoEngine(inner) => inner.innermost(),
            other => other,
        }
    }

    /// Whether the engine hung (a call timed out or was given up), rather than being
    /// absent: an absent engine runs no container, a hung one may.
    pub fn engine_hung(&self) -> bool {
        match self {
            DockerError::NoEngine(inner) => inner.engine_hung(),
            DockerError::TimedOut { .. } | DockerError::Interrupted { .. } => true,
            _ => false,
        }
    }
}

/// How long a question to the engine (`version`, `inspect`, `ps`, `ls`) may take: a
/// healthy engine answers in well under a second.
const ANSWER: Duration = Duration::from_secs(10);
/// How long a change (`create`, `rm`) may take, beyond a stop's own timeout: a
/// healthy engine takes a second or two.
const CHANGE: Duration = Duration::from_secs(20);

/// How long a call that may pull or build images first (`run`, `compose up`) may take.
const PULL_OR_BUILD: Duration = Duration::from_secs(15 * 60);

/// Runs `docker ARGS...` to completion within `CHANGE`; its stdout.
fn docker(args: &[String]) -> Result<String, DockerError> {
    docker_within(args, CHANGE)
}

/// Runs `docker ARGS...` to completion within `bound`; its stdout.
fn docker_within(args: &[String], bound: Duration) -> Result<String, DockerError> {
    let mut command = Command::new("docker");
    command.args(args);
    let name = format!("docker {}", args.first().map_or("", String::as_str));
    run_within(command, &name, bound).map(|out| out.trim().to_string())
}

/// How long after a call timed out the next calls fail at once: a `status` of ten
/// containers would otherwise wait ten bounds for an engine that hangs, and a
/// supervisor would hold the lock through each of them.
const HUNG_FOR: Duration = Duration::from_secs(30);

/// The call that last timed out: when, its name and its bound.
static LAST_HUNG: Mutex<Option<(Instant, String, Duration)>> = Mutex::new(None);

/// The call of this process that outlived its bound lately, if one did (its name and
/// bound): what Docker said since then is no answer.
pub fn hung_recently() -> Option<(String, Duration)> {
    let hung = LAST_HUNG.lock().unwrap_or_else(|p| p.into_inner());
    hung.as_ref()
        .filter(|(at, _, _)| at.elapsed() < HUNG_FOR)
        .map(|(_, name, after)| (name.clone(), *after))
}

/// The longest error line kept from the tool's output.
const ERROR_LINE: usize = 300;

/// Runs a docker or compose `command` (called `name` in errors) within `bound`; its
/// stdout, or the last line of its error output.
fn run_within(command: Command, name: &str, bound: Duration) -> Result<String, DockerError> {
    if let Some((hung, after)) = hung_recently() {
        // Not asked: the engine did not answer a moment ago.
        return Err(DockerError::TimedOut {
            command: format!("`{name}` not run: `{hung}`"),
            after,
        });
    }
    let ran = child::output_within(command, bound).map_err(|err| DockerError::NotRun {
        command: name.to_string(),
        why: err.to_string(),
    })?;
    let output = match ran {
        Ran::Done(output) => output,
        Ran::TimedOut => {
            *LAST_HUNG.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), name.to_string(), bound));
            return Err(DockerError::TimedOut {
                command: format!("`{name}`"),
                after: bound,
            });
        }
        Ran::Interrupted => {
            return Err(DockerError::Interrupted {
                command: name.to_string(),
            });
        }
    };
    *LAST_HUNG.lock().unwrap_or_else(|p| p.into_inner()) = None;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.trim().lines().last().unwrap_or("failed");
        Err(DockerError::Failed {
            command: name.to_string(),
            stderr: crate::ui::text::clipped(last, ERROR_LINE),
        })
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
/// `Ok` when a Docker engine answers.
pub fn engine() -> Result<(), DockerError> {
    docker_within(&strings(&["version", "--format", "{{.Server.Version}}"]), ANSWER)
        .map(|_| ())
        .map_err(|err| DockerError::NoEngine(Box::new(err)))
}

/// True when the project uses Docker at all.
pub fn configured(config: &Config) -> bool {
    config.project.compose_file.is_some() || config.services.iter().any(|s| s.container.is_some())
}

/// A name for Docker objects: the project's name and a short hash of its root (two
/// checkouts of one project differ), lowercase, as Docker and Compose require.
pub fn project_key(config: &Config) -> String {
    let name: String = config
        .project
        .name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "xtask-{name}-{:08x}",
        fnv1a(config.root.to_string_lossy().as_bytes()) as u32
    )
}

pub fn container_name(config: &Config, service: &str) -> String {
    format!("{}-{}", project_key(config), service.to_ascii_lowercase())
}

fn labels(config: &Config, service: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--label".to_string(),
        format!("{LABEL_PROJECT}={}", config.root.display()),
    ];
    if let Some(service) = service {
        args.extend(["--label".to_string(), format!("{LABEL_SERVICE}={service}")]);
    }
    args
}
