//! Health checks: one probe of a service (port, http, command, log line, container
//! command), and the adaptive wait for a starting service to become healthy.

mod command;
mod log;
mod net;
mod wait;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{CommandLine, Health, Probe, Service};
use crate::docker::{self, DockerError};
use crate::state::logs::LogReader;

pub use wait::{Main, Progress, StartFailure, Started, await_healthy};

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

/// Why a probe failed, for the user.
#[derive(Debug)]
pub enum ProbeError {
    Connect {
        addr: String,
        io: std::io::Error,
    },
    HttpStatus {
        url: String,
        status: u16,
    },
    Http {
        url: String,
        why: String,
    },
    CommandNotRun {
        command: CommandLine,
        io: std::io::Error,
    },
    CommandTimedOut {
        command: CommandLine,
        timeout: Duration,
    },
    CommandFailed {
        command: CommandLine,
        status: std::process::ExitStatus,
        last_line: Option<String>,
    },
    LogUnreadable {
        path: PathBuf,
        io: std::io::Error,
    },
    NoLogLine {
        pattern: String,
    },
    NoContainer,
    Container(DockerError),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Connect { addr, io } => write!(f, "{addr}: {io}"),
            ProbeError::HttpStatus { url, status } => write!(f, "GET {url}: HTTP {status}"),
            ProbeError::Http { url, why } => write!(f, "GET {url}: {why}"),
            ProbeError::CommandNotRun { command, io } => write!(f, "`{command}`: {io}"),
            ProbeError::CommandTimedOut { command, timeout } => write!(
                f,
                "`{command}` did not finish within {}",
                humantime::format_duration(*timeout)
            ),
            ProbeError::CommandFailed {
                command,
                status,
                last_line,
            } => {
                write!(f, "`{command}` failed ({status})")?;
                match last_line {
                    Some(line) => write!(f, ": {line}"),
                    None => Ok(()),
                }
            }
            ProbeError::LogUnreadable { path, io } => write!(f, "{}: {io}", path.display()),
            ProbeError::NoLogLine { pattern } => write!(f, "no log line matches /{pattern}/ yet"),
            ProbeError::NoContainer => f.write_str("`container_command` needs a container service"),
            ProbeError::Container(err) => write!(f, "{err}"),
        }
    }
}

/// The probe of one service, with what it remembers between runs (how far it has read
/// the log, and whether the line was seen: a log line, once seen, stays seen).
#[derive(Debug, Clone)]
pub struct Prober {
    service: Service,
    health: Health,
    site: ProbeSite,
    log: Option<LogReader>,
    seen: bool,
}

impl Prober {
    pub fn new(service: &Service, health: &Health, site: ProbeSite) -> Prober {
        let log = matches!(health.probe, Probe::Log(_)).then(|| log::reader(&site));
        Prober {
            service: service.clone(),
            health: health.clone(),
            site,
            log,
            seen: false,
        }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Runs the probe once, bounded by the health check's `timeout`.
    pub fn probe(&mut self) -> Result<(), ProbeError> {
        let timeout = self.health.timeout;
        match &self.health.probe {
            Probe::Port(port) => net::probe_port(*port, timeout),
            Probe::Http(url) => net::probe_http(url, timeout),
            Probe::Command(line) => command::probe_command(&self.service, line, timeout, &self.site.root),
            Probe::Log(re) => {
                if !self.seen {
                    let reader = self.log.get_or_insert_with(|| log::reader(&self.site));
                    log::probe_log(re, reader)?;
                    self.seen = true;
                }
                Ok(())
            }
            Probe::ContainerCommand(line) => match &self.site.container {
                Some(name) => docker::exec_probe(name, line, timeout).map_err(ProbeError::Container),
                None => Err(ProbeError::NoContainer),
            },
        }
    }
}
