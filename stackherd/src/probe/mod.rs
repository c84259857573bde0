//! Health checks: one probe of a service (port, http, command, log line, container
//! command), and the adaptive wait for a starting service to become healthy.

mod command;
mod log;
mod net;
mod wait;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{CommandLine, Health, Probe, Service};
use crate::docker::{self, DockerError};
use crate::os::port_holders::{self, Answerer, PortHolder};
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
    /// Whose listener makes a `port` or `http` check pass; none for a container.
    pub owner: Option<Owner>,
}

/// The processes a service owns now (their PIDs), asked when its port answers: a
/// `port` or `http` check passes only when one of them holds the listening socket.
#[derive(Clone)]
pub struct Owner(Arc<dyn Fn() -> Vec<i32> + Send + Sync>);

impl Owner {
    pub fn new(owned: impl Fn() -> Vec<i32> + Send + Sync + 'static) -> Owner {
        Owner(Arc::new(owned))
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Owner")
    }
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
    /// The port answered, but from a process the service does not own.
    Stranger {
        port: u16,
        holder: PortHolder,
        service: String,
    },
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
            ProbeError::Stranger { port, holder, service } => {
                write!(f, "port {port} answered by pid {} ({})", holder.pid, holder.command)?;
                match &holder.service {
                    Some(other) if other != service => write!(f, ", of service `{other}`")?,
                    _ => {}
                }
                write!(f, ", not part of {service}")
            }
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
    /// The listener last proven the service's (its socket inode): while it still
    /// listens, a liveness probe needs no lookup of who owns it.
    verified: Option<u64>,
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
            verified: None,
        }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Runs the probe once, bounded by the health check's `timeout`.
    pub fn probe(&mut self) -> Result<(), ProbeError> {
        let timeout = self.health.timeout;
        match &self.health.probe {
            Probe::Port(port) => {
                let port = *port;
                net::probe_port(port, timeout)?;
                self.answered_by_owner(port)
            }
            Probe::Http(url) => {
                net::probe_http(url, timeout)?;
                match net::loopback_port(url) {
                    Some(port) => self.answered_by_owner(port),
                    None => Ok(()),
                }
            }
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

impl Prober {
    /// Passes when the service owns what listens on `port`, or when nobody that this
    /// process can see does (a port Docker forwards, another user's hidden process).
    fn answered_by_owner(&mut self, port: u16) -> Result<(), ProbeError> {
        let Some(owner) = &self.site.owner else {
            return Ok(());
        };
        let inodes = port_holders::listening_inodes(port);
        if self.verified.is_some_and(|inode| inodes.contains(&inode)) {
            return Ok(());
        }
        match port_holders::answerer(&inodes, &(owner.0)(), &self.site.root) {
            Answerer::Owned(inode) => {
                self.verified = Some(inode);
                Ok(())
            }
            Answerer::Unknown => Ok(()),
            Answerer::Stranger(holder) => Err(ProbeError::Stranger {
                port,
                holder,
                service: self.service.name.clone(),
            }),
        }
    }
}
