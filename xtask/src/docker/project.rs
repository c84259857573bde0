//! The project as a whole: its compose project up and down, and phase 4 of stop (every
//! labelled container, the network and the volumes).

use std::path::Path;

use xshell::{Shell, cmd};

use super::{DockerError, LABEL_PROJECT, LABEL_SERVICE, docker, project_key, stop_and_remove, strings};
use crate::config::Config;

/// This project's containers (of `services`, or all): (name, service).
fn labelled_containers(config: &Config) -> Vec<(String, String)> {
    let filter = format!("label={LABEL_PROJECT}={}", config.root.display());
    let format = format!("{{{{.Names}}}} {{{{.Label \"{LABEL_SERVICE}\"}}}}");
    docker(&strings(&["ps", "-a", "--filter", &filter, "--format", &format]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(n, s)| (n.to_string(), s.to_string())))
        .collect()
}

fn labelled(config: &Config, kind: &str) -> Vec<String> {
    let filter = format!("label={LABEL_PROJECT}={}", config.root.display());
    docker(&strings(&[kind, "ls", "-q", "--filter", &filter]))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Phase 4: this project's containers (only those of `services` when given) stopped
/// and removed; for the whole project also its network and the compose project. Named
/// volumes hold data (a database's): as `docker compose down` does, they are kept
/// unless `volumes` asks for them. Returns what was done, one line each.
pub fn remove_project(config: &Config, services: Option<&[String]>, volumes: bool) -> Vec<String> {
    let mut done = Vec::new();
    for (name, service) in labelled_containers(config) {
        if services.is_some_and(|s| !s.contains(&service)) {
            continue;
        }
        let timeout = config
            .service(&service)
            .map_or(config.project.stop_timeout, |s| s.stop_timeout);
        match stop_and_remove(&name, timeout) {
            Ok(()) => done.push(format!("removed container {name}")),
            Err(err) => done.push(format!("could not remove container {name}: {err}")),
        }
    }
    if services.is_some() {
        return done;
    }
    if let Some(file) = &config.project.compose_file {
        match compose(config, file, &down_args(volumes)) {
            Ok(()) => done.push(format!("compose project {} down", project_key(config))),
            Err(err) => done.push(format!("compose down failed: {err}")),
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
    done
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
        Some(file) => compose(config, file, &strings(&["up", "-d"])),
        None => Ok(()),
    }
}

/// Runs the compose tool: the `docker compose` plugin when it answers, else
/// `docker-compose`.
fn compose(config: &Config, file: &Path, args: &[String]) -> Result<(), DockerError> {
    let not_run = |why: String| DockerError::NotRun {
        command: "the compose tool".to_string(),
        why,
    };
    let sh = Shell::new().map_err(|err| not_run(err.to_string()))?;
    let project = project_key(config);
    let file = file.display().to_string();
    let plugin = cmd!(sh, "docker compose version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    let output = if plugin {
        cmd!(sh, "docker compose -p {project} -f {file} {args...}")
            .quiet()
            .ignore_status()
            .output()
    } else {
        cmd!(sh, "docker-compose -p {project} -f {file} {args...}")
            .quiet()
            .ignore_status()
            .output()
    }
    .map_err(|err| not_run(err.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DockerError::Failed {
            command: format!("compose {}", args.first().map_or("", String::as_str)),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("failed")
                .to_string(),
        })
    }
}
