//! The project as a whole: its compose project up and down, and phase 4 of stop (every
//! labelled container, the network and the volumes).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{
    ANSWER, CHANGE, DockerError, LABEL_PROJECT, LABEL_SERVICE, PULL_OR_BUILD, docker, docker_within, project_key,
    run_within, stop_and_remove, strings,
};
use crate::config::Config;

/// This project's containers (of `services`, or all): (name, service).
fn labelled_containers(config: &Config) -> Result<Vec<(String, String)>, DockerError> {
    let filter = format!("label={LABEL_PROJECT}={}", config.root.display());
    let format = format!("{{{{.Names}}}} {{{{.Label \"{LABEL_SERVICE}\"}}}}");
    let listed = docker_within(
        &strings(&["ps", "-a", "--filter", &filter, "--format", &format]),
        ANSWER,
    )?;
    Ok(listed
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(n, s)| (n.to_string(), s.to_string())))
        .collect())
}

fn labelled(config: &Config, kind: &str) -> Vec<String> {
    let filter = format!("label={LABEL_PROJECT}={}", config.root.display());
    docker_within(&strings(&[kind, "ls", "-q", "--filter", &filter]), ANSWER)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The compose project's objects of `kind` (`volume`, `network`), by the label the
/// compose tool gives them.
fn compose_labelled(config: &Config, kind: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={}", project_key(config));
    docker_within(&strings(&[kind, "ls", "-q", "--filter", &filter]), ANSWER)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What phase 4 did, one line each, and why containers may still run.
pub struct Removed {
    pub lines: Vec<String>,
    pub failed: Option<String>,
}

/// Phase 4: this project's containers (only those of `services` when given) stopped
/// and removed; for the whole project also its network and the compose project. Named
/// volumes hold data (a database's): as `docker compose down` does, they are kept
/// unless `volumes` asks for them. Returns what was done, one line each, and why
/// containers may still run.
pub fn remove_project(config: &Config, services: Option<&[String]>, volumes: bool) -> Removed {
    let mut done = Vec::new();
    let mut failed = None;
    // A listing that failed is no "none running": the containers may run on.
    let containers = labelled_containers(config).unwrap_or_else(|err| {
        done.push(format!("could not list the project's containers: {err}"));
        failed = Some(format!("the project's containers could not be listed: {err}"));
        Vec::new()
    });
    for (name, service) in containers {
        if services.is_some_and(|s| !s.contains(&service)) {
            continue;
        }
        let timeout = config
            .service(&service)
            .map_or(config.project.stop_timeout, |s| s.stop_timeout);
        match stop_and_remove(&name, timeout) {
            Ok(()) => done.push(format!("removed container {name}")),
            Err(err) => {
                done.push(format!("could not remove container {name}: {err}"));
                failed = Some(format!("container {name} could not be removed: {err}"));
            }
        }
    }
    if services.is_some() {
        return Removed { lines: done, failed };
    }
    if let Some(file) = &config.project.compose_file {
        // Its volumes carry the compose tool's labels, not ours: named before `down`,
        // so that those it keeps are listed as kept, as ours are.
        let compose_volumes = compose_labelled(config, "volume");
        let bound = CHANGE.saturating_add(config.services.iter().map(|s| s.stop_timeout).max().unwrap_or_default());
        match compose(config, file, &down_args(volumes), bound) {
            Ok(()) => done.push(format!("compose project {} down", project_key(config))),
            Err(err) => {
                done.push(format!("compose down failed: {err}"));
                failed = Some(format!("compose down failed: {err}"));
            }
        }
        let left = compose_labelled(config, "volume");
        for volume in compose_volumes {
            if left.contains(&volume) {
                done.push(format!("kept volume {volume} (`stop --volumes` removes it)"));
            } else {
                done.push(format!("removed volume {volume}"));
            }
        }
    }
    for network in labelled(config, "network") {
        if docker(&strings(&["network", "rm", &network])).is_ok() {
            done.push(format!("removed network {network}"));
        }
    }
    for volume in labelled(config, "volume") {
        if !volumes {
            done.push(format!("kept volume {volume} (`stop --volumes` removes it)"));
        } else if docker(&strings(&["volume", "rm", &volume])).is_ok() {
            done.push(format!("removed volume {volume}"));
        }
    }
    Removed { lines: done, failed }
}

fn down_args(volumes: bool) -> Vec<String> {
    let mut args = strings(&["down", "--remove-orphans"]);
    if volumes {
        args.push("--volumes".to_string());
    }
    args
}

/// `up -d` of the compose file under the project's compose name.
pub fn compose_up(config: &Config) -> Result<(), DockerError> {
    match &config.project.compose_file {
        Some(file) => compose(config, file, &strings(&["up", "-d"]), PULL_OR_BUILD),
        None => Ok(()),
    }
}

/// The services a compose file declares, as the compose tool reads it
/// (`config --services`: anchors, flow mappings, profiles and all); `None` when the
/// tool cannot run.
pub fn compose_service_names(file: &Path) -> Option<Vec<String>> {
    let out = compose_tool(None, file, &strings(&["config", "--services"]), ANSWER).ok()?;
    Some(
        out.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// How a compose service is doing, as `docker ps` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeState {
    /// Running, and its healthcheck passes.
    Healthy,
    /// Running, without a healthcheck.
    Running,
    /// Running; its healthcheck has not passed yet.
    Starting,
    Unhealthy,
    /// Its container ended ("Exited (1) 2 seconds ago").
    Exited(String),
    /// No container of it exists.
    Missing,
}

impl ComposeState {
    /// Ready for its dependents: healthy, or running without a healthcheck (as
    /// `docker compose up --wait` waits).
    pub fn is_ready(&self) -> bool {
        matches!(self, ComposeState::Healthy | ComposeState::Running)
    }

    fn of_status(status: &str) -> ComposeState {
        if status.contains("(healthy)") {
            ComposeState::Healthy
        } else if status.contains("(unhealthy)") {
            ComposeState::Unhealthy
        } else if status.contains("health: starting") {
            ComposeState::Starting
        } else if status.starts_with("Up") {
            ComposeState::Running
        } else {
            ComposeState::Exited(status.to_string())
        }
    }
}

/// The state of each of the compose project's services (those it names).
pub fn compose_states(config: &Config) -> Vec<(String, ComposeState)> {
    let filter = format!("label=com.docker.compose.project={}", project_key(config));
    let format = "{{.Label \"com.docker.compose.service\"}}\t{{.Status}}";
    let listed =
        docker_within(&strings(&["ps", "-a", "--filter", &filter, "--format", format]), ANSWER).unwrap_or_default();
    config
        .project
        .compose_services
        .iter()
        .map(|service| {
            let state = listed
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .find(|(name, _)| name == service)
                .map_or(ComposeState::Missing, |(_, status)| ComposeState::of_status(status));
            (service.clone(), state)
        })
        .collect()
}

/// Whether the `docker compose` plugin answers (else `docker-compose` is the tool);
/// asked once per process.
fn plugin() -> bool {
    static PLUGIN: OnceLock<bool> = OnceLock::new();
    *PLUGIN.get_or_init(|| {
        let mut command = Command::new("docker");
        command.args(["compose", "version"]);
        run_within(command, "docker compose version", ANSWER).is_ok()
    })
}

/// The compose tool: the `docker compose` plugin when it answers, else `docker-compose`.
fn compose_command() -> Command {
    if plugin() {
        let mut docker = Command::new("docker");
        docker.arg("compose");
        docker
    } else {
        Command::new("docker-compose")
    }
}

/// The compose tool's `logs` of one compose service, without the tool's prefix, for
/// the caller to stream; `None` without a compose file.
pub fn compose_logs(config: &Config, service: &str, lines: usize, follow: bool, timestamps: bool) -> Option<Command> {
    let file = config.project.compose_file.as_ref()?;
    let mut command = compose_command();
    command.args(["-p", &project_key(config), "-f"]).arg(file).args([
        "logs",
        "--no-log-prefix",
        "--tail",
        &lines.to_string(),
    ]);
    if follow {
        command.arg("-f");
    }
    if timestamps {
        command.arg("--timestamps");
    }
    command.arg(service);
    Some(command)
}

/// Runs the compose tool within `bound`.
fn compose(config: &Config, file: &Path, args: &[String], bound: Duration) -> Result<(), DockerError> {
    compose_tool(Some(&project_key(config)), file, args, bound).map(|_| ())
}

/// The compose tool's output, under project name `project` when given, within `bound`.
fn compose_tool(project: Option<&str>, file: &Path, args: &[String], bound: Duration) -> Result<String, DockerError> {
    let mut command = compose_command();
    if let Some(project) = project {
        command.args(["-p", project]);
    }
    command.arg("-f").arg(file).args(args);
    let name = format!("compose {}", args.first().map_or("", String::as_str));
    run_within(command, &name, bound)
}
