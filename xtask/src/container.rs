//! Docker: container services, the compose file, and phase 4 of stop.
//!
//! Everything goes through the `docker` CLI (and `docker compose` or `docker-compose`,
//! whichever exists), run to completion with xshell. Containers, the project network
//! and named volumes carry labels naming the project root (the same canonical path as
//! the cookie) and the service, so phase 4 finds exactly this project's, and nothing of
//! another checkout.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;
use xshell::{Shell, cmd};

use crate::Context;
use crate::config::{CommandLine, Container, Service};
use crate::process::{COOKIE_PROJECT, COOKIE_SERVICE, ServiceProcess};
use crate::supervise::Exit;

pub const LABEL_PROJECT: &str = "xtask.project";
pub const LABEL_SERVICE: &str = "xtask.service";

/// What `docker inspect` says of a container.
#[derive(Debug, Clone)]
pub struct State {
    pub id: String,
    pub status: String,
    pub pid: i32,
    pub exit_code: i32,
}

/// Runs `docker ARGS...` to completion; stdout, or stderr as the error.
fn docker(args: &[String]) -> Result<String, String> {
    let sh = Shell::new().map_err(|err| err.to_string())?;
    let output = cmd!(sh, "docker {args...}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|err| err.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.trim().lines().last().unwrap_or("docker failed").to_string())
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `Ok` when a Docker engine answers.
pub fn engine() -> Result<(), String> {
    docker(&strings(&["version", "--format", "{{.Server.Version}}"]))
        .map(|_| ())
        .map_err(|err| format!("no Docker engine answers ({err}); start it, or remove the container services"))
}

/// True when the project uses Docker at all.
pub fn configured(ctx: &Context) -> bool {
    ctx.config.project.compose_file.is_some() || ctx.config.services.iter().any(|s| s.container.is_some())
}

/// A name for Docker objects: the project's name and a short hash of its root (two
/// checkouts of one project differ), lowercase, as Docker and Compose require.
pub fn project_key(ctx: &Context) -> String {
    let name: String = ctx
        .config
        .project
        .name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "xtask-{name}-{:08x}",
        fnv1a(ctx.config.root.to_string_lossy().as_bytes()) as u32
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn container_name(ctx: &Context, service: &str) -> String {
    format!("{}-{}", project_key(ctx), service.to_ascii_lowercase())
}

fn labels(ctx: &Context, service: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--label".to_string(),
        format!("{LABEL_PROJECT}={}", ctx.config.root.display()),
    ];
    if let Some(service) = service {
        args.extend(["--label".to_string(), format!("{LABEL_SERVICE}={service}")]);
    }
    args
}

/// Starts a container service: the project network and named volumes first (labelled),
/// a leftover container of the same name removed, then `docker run -d`. Returns its
/// name and the host identity of its main process.
pub fn run(ctx: &Context, service: &Service, container: &Container) -> Result<(String, ServiceProcess), String> {
    let network = project_key(ctx);
    if docker(&strings(&["network", "inspect", &network])).is_err() {
        let mut args = strings(&["network", "create"]);
        args.extend(labels(ctx, None));
        args.push(network.clone());
        docker(&args)?;
    }
    for volume in &container.volumes {
        let Some((name, _)) = volume.split_once(':') else {
            continue;
        };
        if !name.contains('/') && docker(&strings(&["volume", "inspect", name])).is_err() {
            let mut args = strings(&["volume", "create"]);
            args.extend(labels(ctx, None));
            args.push(name.to_string());
            docker(&args)?;
        }
    }
    let name = container_name(ctx, &service.name);
    remove_if_ours(ctx, &name);
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
    args.extend(labels(ctx, Some(&service.name)));
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
    docker(&args).map_err(|err| format!("docker run {}: {err}", container.image))?;
    let state = inspect(&name).ok_or_else(|| format!("container {name} vanished right after it started"))?;
    let process = ServiceProcess::of(state.pid)
        .ok_or_else(|| format!("container {name} exited at once (exit code {})", state.exit_code))?;
    Ok((name, process))
}

/// A container of that name left by an earlier run of this project is removed; one of
/// anybody else is left alone (and `docker run` will then say the name is taken).
fn remove_if_ours(ctx: &Context, name: &str) {
    let format = format!("{{{{index .Config.Labels \"{LABEL_PROJECT}\"}}}}");
    if docker(&strings(&["inspect", "-f", &format, name]))
        .is_ok_and(|root| root == ctx.config.root.display().to_string())
    {
        let _ = docker(&strings(&["rm", "-f", name]));
    }
}

pub fn inspect(name: &str) -> Option<State> {
    let format = "{{.Id}} {{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}";
    let out = docker(&strings(&["inspect", "-f", format, name])).ok()?;
    let mut fields = out.split_whitespace();
    Some(State {
        id: fields.next()?.chars().take(12).collect(),
        status: fields.next()?.to_string(),
        pid: fields.next()?.parse().ok()?,
        exit_code: fields.next()?.parse().ok()?,
    })
}

/// How a container's main process ended.
pub fn exit_of(name: &str) -> Exit {
    inspect(name).map_or(Exit::Unknown, |s| Exit::Code(s.exit_code))
}

/// Copies the container's output into the service's log file, so that `status`, the
/// foreground stream and failure tails read containers as they read processes. The
/// follower carries the service's cookie; it ends when the container does.
pub fn follow_logs(ctx: &Context, service: &str, name: &str, log: File) -> Result<std::process::Child, String> {
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new("docker");
    command
        .args(["logs", "-f", name])
        .env(COOKIE_PROJECT, &ctx.config.root)
        .env(COOKIE_SERVICE, service)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    command.spawn().map_err(|e| format!("docker logs: {e}"))
}

/// A `container_command` health probe: `docker exec`, bounded by `timeout`.
pub fn exec_probe(name: &str, command: &CommandLine, timeout: Duration) -> Result<(), String> {
    let mut args = vec!["exec".to_string(), name.to_string()];
    match command {
        CommandLine::Shell(line) => args.extend(["sh".to_string(), "-c".to_string(), line.clone()]),
        CommandLine::Exec(words) => args.extend(words.iter().cloned()),
    }
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("docker exec: {e}"))?;
    match child.wait_timeout(timeout) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("`{command}` in the container failed ({status})")),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("`{command}` in the container did not finish in time"))
        }
    }
}

/// Stops a container (its stop signal, then SIGKILL after `timeout`) and removes it.
pub fn stop_and_remove(name: &str, timeout: Duration) -> Result<(), String> {
    let seconds = timeout.as_secs().max(1).to_string();
    let _ = docker(&strings(&["stop", "-t", &seconds, name]));
    docker(&strings(&["rm", "-f", name])).map(|_| ())
}

/// This project's containers (of `services`, or all): (name, service).
fn labelled_containers(ctx: &Context) -> Vec<(String, String)> {
    let filter = format!("label={LABEL_PROJECT}={}", ctx.config.root.display());
    let format = format!("{{{{.Names}}}} {{{{.Label \"{LABEL_SERVICE}\"}}}}");
    docker(&strings(&["ps", "-a", "--filter", &filter, "--format", &format]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(n, s)| (n.to_string(), s.to_string())))
        .collect()
}

fn labelled(ctx: &Context, kind: &str) -> Vec<String> {
    let filter = format!("label={LABEL_PROJECT}={}", ctx.config.root.display());
    docker(&strings(&[kind, "ls", "-q", "--filter", &filter]))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Phase 4: this project's containers (only those of `services` when given) stopped
/// and removed; for the whole project also its network, its volumes and the compose
/// project (whose volumes only with `volumes`). Returns what was done, one line each.
pub fn remove_project(ctx: &Context, services: Option<&[String]>, volumes: bool) -> Vec<String> {
    let mut done = Vec::new();
    for (name, service) in labelled_containers(ctx) {
        if services.is_some_and(|s| !s.contains(&service)) {
            continue;
        }
        let timeout = ctx
            .config
            .service(&service)
            .map_or(ctx.config.project.stop_timeout, |s| s.stop_timeout);
        match stop_and_remove(&name, timeout) {
            Ok(()) => done.push(format!("removed container {name}")),
            Err(err) => done.push(format!("could not remove container {name}: {err}")),
        }
    }
    if services.is_some() {
        return done;
    }
    if let Some(file) = &ctx.config.project.compose_file {
        match compose(ctx, file, &down_args(volumes)) {
            Ok(()) => done.push(format!("compose project {} down", project_key(ctx))),
            Err(err) => done.push(format!("compose down failed: {err}")),
        }
    }
    for network in labelled(ctx, "network") {
        if docker(&strings(&["network", "rm", &network])).is_ok() {
            done.push(format!("removed network {network}"));
        }
    }
    for volume in labelled(ctx, "volume") {
        if docker(&strings(&["volume", "rm", &volume])).is_ok() {
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
pub fn compose_up(ctx: &Context) -> Result<(), String> {
    match &ctx.config.project.compose_file {
        Some(file) => compose(ctx, file, &strings(&["up", "-d"])),
        None => Ok(()),
    }
}

/// Runs the compose tool: the `docker compose` plugin when it answers, else
/// `docker-compose`.
fn compose(ctx: &Context, file: &std::path::Path, args: &[String]) -> Result<(), String> {
    let sh = Shell::new().map_err(|err| err.to_string())?;
    let project = project_key(ctx);
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
    .map_err(|err| format!("cannot run the compose tool: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string())
    }
}

/// The services a compose file declares: the keys of its top-level `services:` block
/// (a two-space or four-space indented YAML mapping, as compose files are written).
pub fn compose_services(text: &str) -> Vec<String> {
    let mut in_services = false;
    let mut indent = None;
    let mut names = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let depth = line.len() - line.trim_start().len();
        if depth == 0 {
            in_services = line.trim_end() == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        let level = *indent.get_or_insert(depth);
        if depth == level
            && let Some(name) = line.trim().strip_suffix(':')
        {
            names.push(name.trim_matches(|c| c == '"' || c == '\'').to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_services_are_the_keys_of_the_services_block() {
        let text = "version: '3'\nservices:\n  redis:\n    image: redis\n    ports:\n      - 6379:6379\n  \"db\":\n    image: pg\nvolumes:\n  data:\n";
        assert_eq!(compose_services(text), vec!["redis".to_string(), "db".to_string()]);
    }
}
