//! Docker: container services, the compose file, and phase 4 of stop.
//!
//! Everything goes through the `docker` CLI (and `docker compose` or `docker-compose`,
//! whichever exists), run to completion with xshell. Containers, the project network
//! and named volumes carry labels naming the project root (the same canonical path as
//! the cookie) and the service, so phase 4 finds exactly this project's, and nothing of
//! another checkout.

mod container;
mod project;

use std::fmt;

use xshell::{Shell, cmd};

use crate::config::{Config, fnv1a};

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
    /// A bounded call (`docker exec` of a probe) did not finish in time.
    TimedOut { command: String },
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
            DockerError::TimedOut { command } => write!(f, "{command} did not finish in time"),
        }
    }
}

impl std::error::Error for DockerError {}

/// Runs `docker ARGS...` to completion; its stdout.
fn docker(args: &[String]) -> Result<String, DockerError> {
    let command = || format!("docker {}", args.first().map_or("", String::as_str));
    let not_run = |why: String| DockerError::NotRun {
        command: command(),
        why,
    };
    let sh = Shell::new().map_err(|err| not_run(err.to_string()))?;
    let output = cmd!(sh, "docker {args...}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|err| not_run(err.to_string()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(DockerError::Failed {
            command: command(),
            stderr: stderr.trim().lines().last().unwrap_or("docker failed").to_string(),
        })
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
/// `Ok` when a Docker engine answers.
pub fn engine() -> Result<(), DockerError> {
    docker(&strings(&["version", "--format", "{{.Server.Version}}"]))
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
