//! Probes (port, http, command) and the adaptive wait for a starting service.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::config::{Health, Probe, Service};
use crate::poll::Backoff;
use crate::process::{COOKIE_PROJECT, COOKIE_SERVICE};
use crate::spawn;

/// The first pause between probes of a starting service; pauses double up to its interval.
const FIRST_PAUSE: Duration = Duration::from_millis(5);

/// Why a starting service did not become healthy.
#[derive(Debug, Clone)]
pub enum StartFailure {
    /// The service's main process exited (its status as text).
    Exited(String),
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

/// Runs one probe. `Err` carries what went wrong, for the user.
pub fn probe(service: &Service, health: &Health, project_root: &Path) -> Result<(), String> {
    match &health.probe {
        Probe::Port(port) => probe_port(*port, health.timeout),
        Probe::Http(url) => probe_http(url, health.timeout),
        Probe::Command(line) => probe_command(service, line, health.timeout, project_root),
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
/// off to its `interval`, until `start_period + retries * interval` has passed. Fails
/// at once if the service's main process exits or `interrupted` turns true.
pub fn await_healthy(
    service: &Service,
    project_root: &Path,
    child: &mut Child,
    progress: &Arc<Mutex<Progress>>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Duration, StartFailure> {
    let started = Instant::now();
    let Some(health) = &service.health else {
        return match child.try_wait() {
            Ok(Some(status)) => Err(StartFailure::Exited(status.to_string())),
            _ => Ok(started.elapsed()),
        };
    };
    let deadline = started + health.startup_deadline();
    let mut backoff = Backoff::new(FIRST_PAUSE, health.interval);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartFailure::Exited(status.to_string()));
        }
        if interrupted() {
            return Err(StartFailure::Interrupted);
        }
        match probe(service, health, project_root) {
            Ok(()) => return Ok(started.elapsed()),
            Err(err) => {
                if let Ok(mut p) = progress.lock() {
                    p.last_error = Some(err.clone());
                }
                if !backoff.pause(deadline) {
                    return Err(StartFailure::Unhealthy {
                        waited: started.elapsed(),
                        last_error: err,
                    });
                }
            }
        }
    }
}
