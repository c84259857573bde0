//! One container service: `docker run` with labels, what Docker says of it, its logs
//! copied into the service's log file, `docker exec` probes, stop and removal.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{
    ANSWER, CHANGE, DockerError, LABEL_PROJECT, PULL_OR_BUILD, container_name, docker, docker_within, labels,
    project_key, strings,
};
use crate::config::{CommandLine, Config, Container, Service};
use crate::os::child::{Child, Waited};
use crate::os::{Exit, ServiceProcess, cookie};
use crate::poll::{self, Backoff};

/// How long Docker gets to record the exit of a container whose process has ended.
const EXIT_RECORDED: Duration = Duration::from_secs(3);

/// What `docker inspect` says of a container.
#[derive(Debug, Clone)]
pub struct State {
    pub id: String,
    pub status: String,
    pub pid: i32,
    pub exit_code: i32,
}

/// Starts a container service: the project network and named volumes first (labelled),
/// a leftover container of the same name removed, then `docker run -d`. Returns its
/// name and the host identity of its main process.
pub fn run(config: &Config, service: &Service, container: &Container) -> Result<(String, ServiceProcess), DockerError> {
    let network = project_key(config);
    if docker(&strings(&["network", "inspect", &network])).is_err() {
        let mut args = strings(&["network", "create"]);
        args.extend(labels(config, None));
        args.push(network.clone());
        docker(&args)?;
    }
    for volume in &container.volumes {
        let Some((name, _)) = volume.split_once(':') else {
            continue;
        };
        if !name.contains('/') && docker(&strings(&["volume", "inspect", name])).is_err() {
            let mut args = strings(&["volume", "create"]);
            args.extend(labels(config, None));
            args.push(name.to_string());
            docker(&args)?;
        }
    }
    let name = container_name(config, &service.name);
    remove_if_ours(config, &name);
    let mut args = strings(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &network,
        "--network-alias",
        &service.name,
    ]);
    args.extend(labels(config, Some(&service.name)));
    args.extend(["--stop-signal".to_string(), service.stop_signal.as_str().to_string()]);
    for (host, inside) in &container.ports {
        args.extend(["-p".to_string(), format!("127.0.0.1:{host}:{inside}")]);
    }
    for (key, value) in &service.env {
        args.extend(["-e".to_string(), format!("{key}={value}")]);
    }
    for volume in &container.volumes {
        args.extend(["-v".to_string(), volume.clone()]);
    }
    args.push(container.image.clone());
    args.extend(container.args.iter().cloned());
    // `docker run` pulls an image it does not have: that is allowed its time.
    docker_within(&args, PULL_OR_BUILD)?;
    let state = inspect(&name).ok_or_else(|| DockerError::Vanished {
        container: name.clone(),
    })?;
    let process = ServiceProcess::of(state.pid).ok_or_else(|| DockerError::ExitedAtOnce {
        container: name.clone(),
        code: state.exit_code,
    })?;
    Ok((name, process))
}

/// A container of that name left by an earlier run of this project is removed; one of
/// anybody else is left alone (and `docker run` will then say the name is taken).
fn remove_if_ours(config: &Config, name: &str) {
    let format = format!("{{{{index .Config.Labels \"{LABEL_PROJECT}\"}}}}");
    if docker_within(&strings(&["inspect", "-f", &format, name]), ANSWER)
        .is_ok_and(|root| root == config.root.display().to_string())
    {
        let _ = docker(&strings(&["rm", "-f", name]));
    }
}

/// Whether `image` is present locally: `docker run` would otherwise try a registry,
/// which a project that builds its images locally does not have.
pub fn image_present(image: &str) -> bool {
    docker_within(&strings(&["image", "inspect", "--format", "{{.Id}}", image]), ANSWER).is_ok()
}

pub fn inspect(name: &str) -> Option<State> {
    let format = "{{.Id}} {{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}";
    let out = docker_within(&strings(&["inspect", "-f", format, name]), ANSWER).ok()?;
    let mut fields = out.split_whitespace();
    Some(State {
        id: fields.next()?.chars().take(12).collect(),
        status: fields.next()?.to_string(),
        pid: fields.next()?.parse().ok()?,
        exit_code: fields.next()?.parse().ok()?,
    })
}

/// How a container's main process ended. Its process is gone a moment before Docker
/// records the exit (until then it says `running`, exit code 0, which would read as a
/// success): Docker is asked until it says `exited` or `dead`, for a few seconds at most.
pub fn exit_of(name: &str) -> Exit {
    let deadline = poll::after(EXIT_RECORDED);
    let recorded = poll::wait_until(
        deadline,
        Backoff::new(Duration::from_millis(5), Duration::from_millis(100)),
        || {
            match inspect(name) {
                Some(state) if matches!(state.status.as_str(), "exited" | "dead") => Some(Exit::Code(state.exit_code)),
                Some(_) => None,
                // Removed (`--rm`, or by a stop): nobody can tell any more.
                None => Some(Exit::Unknown),
            }
        },
    );
    recorded.unwrap_or(Exit::Unknown)
}
/// Copies the container's output into the service's log file, so that `status`, the
/// foreground stream and failure tails read containers as they read processes. The
/// follower carries the service's cookie; it ends when the container does.
pub fn follow_logs(config: &Config, service: &str, name: &str, log: File) -> Result<Child, DockerError> {
    let not_run = |why: String| DockerError::NotRun {
        command: "docker logs".to_string(),
        why,
    };
    let err = log.try_clone().map_err(|e| not_run(e.to_string()))?;
    let mut command = Command::new("docker");
    command
        .args(["logs", "-f", name])
        .envs(cookie::vars(&config.root, service))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    Child::spawn(command).map_err(|e| not_run(e.to_string()))
}

/// A `container_command` health probe: `docker exec`, bounded by `timeout`.
pub fn exec_probe(name: &str, command: &CommandLine, timeout: Duration) -> Result<(), DockerError> {
    let mut args = vec!["exec".to_string(), name.to_string()];
    match command {
        CommandLine::Shell(line) => args.extend(["sh".to_string(), "-c".to_string(), line.clone()]),
        CommandLine::Exec(words) => args.extend(words.iter().cloned()),
    }
    let what = format!("`{command}` in the container");
    let mut docker = Command::new("docker");
    docker
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Child::spawn(docker).map_err(|e| DockerError::NotRun {
        command: "docker exec".to_string(),
        why: e.to_string(),
    })?;
    match child.wait_until(poll::deadline_after(timeout), &|| false) {
        Ok(Waited::Exited(status)) if status.success() => Ok(()),
        Ok(Waited::Exited(status)) => Err(DockerError::Failed {
            command: what,
            stderr: format!("failed ({status})"),
        }),
        _ => Err(DockerError::TimedOut {
            command: what,
            after: timeout,
        }),
    }
}

/// Starts `docker stop` of a container (its stop signal, then SIGKILL after `timeout`)
/// without waiting for it: phase 1 stops a level's containers together, and waits for
/// their log copiers, which end once Docker has stopped their containers, so the
/// containers' last lines reach their logs.
pub fn begin_stop(name: &str, timeout: Duration) -> Result<Child, DockerError> {
    let mut command = Command::new("docker");
    command
        .args(["stop", "-t", &timeout.as_secs().max(1).to_string(), name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Child::spawn(command).map_err(|e| DockerError::NotRun {
        command: "docker stop".to_string(),
        why: e.to_string(),
    })
}

/// Stops a container (its stop signal, then SIGKILL after `timeout`) and removes it.
pub fn stop_and_remove(name: &str, timeout: Duration) -> Result<(), DockerError> {
    let seconds = timeout.as_secs().max(1).to_string();
    let _ = docker_within(
        &strings(&["stop", "-t", &seconds, name]),
        CHANGE.saturating_add(timeout),
    );
    docker(&strings(&["rm", "-f", name])).map(|_| ())
}
