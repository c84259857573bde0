//! Probes (port, http, command) and the adaptive wait for a starting service.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::config::{Health, Probe, Service};
use crate::poll::Backoff;
use crate::process::{COOKIE_PROJECT, COOKIE_SERVICE};
use crate::spawn;
use crate::supervise::Exit;

/// The first pause between probes of a starting service; pauses double up to its interval.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// Where a probe looks: the project root (command probes run there) and the part of
/// the service's log written since it started (log probes read it).
#[derive(Debug, Clone)]
pub struct ProbeSite {
    pub root: PathBuf,
    pub log: PathBuf,
    pub log_offset: u64,
    /// The container of a container service.
    pub container: Option<String>,
}

/// How the waiter sees the main process end: our child's status, or a container's
/// disappearance and exit code.
pub fn exit_watch(spawned: crate::spawn::Spawned) -> Box<dyn FnMut() -> Option<Exit> + Send> {
    match (spawned.child, spawned.container) {
        (Some(mut child), _) => Box::new(move || child.try_wait()),
        (None, container) => {
            let process = spawned.process;
            Box::new(move || {
                if process.is_alive() {
                    None
                } else {
                    Some(container.as_deref().map_or(Exit::Unknown, crate::container::exit_of))
                }
            })
        }
    }
}

/// How a start ended well.
#[derive(Debug, Clone, Copy)]
pub enum Started {
    Healthy(Duration),
    /// A one-shot job exited 0.
    Completed(Duration),
}

/// Why a starting service did not become healthy.
#[derive(Debug, Clone)]
pub enum StartFailure {
    /// The service's main process exited.
    Exited(Exit),
    /// Probes kept failing until the startup deadline.
    Unhealthy { waited: Duration, last_error: String },
    /// The user interrupted the start.
    Interrupted,
}

/// What a waiting service is doing, shared with the thread that reports progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub last_error: Option<String>,
}

/// How much of a log a log probe reads, from the end.
const LOG_WINDOW: u64 = 1024 * 1024;

/// Runs one probe. `Err` carries what went wrong, for the user.
pub fn probe(service: &Service, health: &Health, site: &ProbeSite) -> Result<(), String> {
    match &health.probe {
        Probe::Port(port) => probe_port(*port, health.timeout),
        Probe::Http(url) => probe_http(url, health.timeout),
        Probe::Command(line) => probe_command(service, line, health.timeout, &site.root),
        Probe::Log(re) => probe_log(re, site),
        Probe::ContainerCommand(line) => match &site.container {
            Some(name) => crate::container::exec_probe(name, line, health.timeout),
            None => Err("`container_command` needs a container service".to_string()),
        },
    }
}

fn probe_log(re: &regex::Regex, site: &ProbeSite) -> Result<(), String> {
    let mut file = File::open(&site.log).map_err(|err| format!("{}: {err}", site.log.display()))?;
    let len = file.metadata().map_or(0, |m| m.len());
    let start = site.log_offset.max(len.saturating_sub(LOG_WINDOW)).min(len);
    file.seek(SeekFrom::Start(start)).map_err(|err| err.to_string())?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|err| err.to_string())?;
    let text = String::from_utf8_lossy(&bytes);
    if text.lines().any(|line| re.is_match(line)) {
        Ok(())
    } else {
        Err(format!("no log line matches /{re}/ yet"))
    }
}

fn probe_port(port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Ok(()),
        // Many dev servers listen on ::1 only ("localhost" resolved to IPv6).
        Err(err) => TcpStream::connect_timeout(&SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)), timeout)
            .map(|_| ())
            .map_err(|_| format!("127.0.0.1:{port}: {err}")),
    }
}

fn probe_http(url: &str, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(url).call() {
        Ok(response) if response.status().as_u16() < 400 => Ok(()),
        Ok(response) => Err(format!("GET {url}: HTTP {}", response.status())),
        Err(err) => Err(format!("GET {url}: {err}")),
    }
}

/// Runs the command with the service's environment and cookie (so that a hung probe
/// left behind by a killed manager is still found by `cleanup`), killing it at timeout.
fn probe_command(
    service: &Service,
    line: &crate::config::CommandLine,
    timeout: Duration,
    root: &Path,
) -> Result<(), String> {
    let mut child = spawn::command_for(line, root)
        .current_dir(root)
        .envs(service.env.iter().map(|(k, v)| (k, v)))
        .env(COOKIE_PROJECT, root)
        .env(COOKIE_SERVICE, &service.name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("`{line}`: {err}"))?;
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{line}` did not finish within {}",
                humantime::format_duration(timeout)
            ));
        }
        Err(err) => return Err(format!("`{line}`: {err}")),
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    Err(format!("`{line}` failed ({status}){last}"))
}

/// Waits until `service` passes its probe, polling a few ms apart at first and backing
/// off to its `interval`, until `start_period + retries * interval` has passed. A `job`
/// (a dependency that others need `completed`) is waited for until it exits instead:
/// exit 0 completes it. Fails at once if the main process exits (a job: with another
/// code) or `interrupted` turns true.
pub fn await_healthy(
    service: &Service,
    site: &ProbeSite,
    exited: &mut dyn FnMut() -> Option<Exit>,
    job: bool,
    progress: &Arc<Mutex<Progress>>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Started, StartFailure> {
    let started = Instant::now();
    let health = service.health.as_ref().filter(|_| !job);
    let deadline = service.health.as_ref().map(|h| started + h.startup_deadline());
    let max_pause = service
        .health
        .as_ref()
        .map_or(Duration::from_millis(100), |h| h.interval);
    let mut backoff = Backoff::new(FIRST_PAUSE, max_pause);
    loop {
        if let Some(exit) = exited() {
            return if job && exit == Exit::Code(0) {
                Ok(Started::Completed(started.elapsed()))
            } else {
                Err(StartFailure::Exited(exit))
            };
        }
        if interrupted() {
            return Err(StartFailure::Interrupted);
        }
        let last_error = match health {
            None if !job => return Ok(Started::Healthy(started.elapsed())),
            None => "still running".to_string(),
            Some(health) => match probe(service, health, site) {
                Ok(()) => return Ok(Started::Healthy(started.elapsed())),
                Err(err) => err,
            },
        };
        if let Ok(mut p) = progress.lock() {
            p.last_error = Some(last_error.clone());
        }
        if !backoff.pause(deadline.unwrap_or_else(|| Instant::now() + max_pause)) && deadline.is_some() {
            return Err(StartFailure::Unhealthy {
                waited: started.elapsed(),
                last_error,
            });
        }
    }
}
