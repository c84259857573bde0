//! Launching one service of either kind: a process spawned in a session of its own, or
//! a container whose output a `docker logs -f` follower copies into the log file; its
//! first record; and how its end is seen.

use std::fs::File;

use crate::config::Service;
use crate::docker;
use crate::error::{Error, Result};
use crate::lifecycle::Context;
use crate::os::spawn::{self, ServiceChild};
use crate::os::{Exit, ServiceProcess};
use crate::state::{Record, ServiceState, now_ms};

/// A service just started by this invocation.
#[derive(Debug)]
pub struct Spawned {
    /// The main process, when it is our child (not for containers).
    pub child: Option<ServiceChild>,
    pub process: ServiceProcess,
    /// The container's name, for a container service.
    pub container: Option<String>,
}

/// Starts `service`, its output appended to `log`.
pub fn start(ctx: &Context, service: &Service, log: File) -> Result<Spawned> {
    let Some(container) = &service.container else {
        let (child, process) = spawn::spawn(service, &ctx.config.root, &log)?;
        return Ok(Spawned {
            child: Some(child),
            process,
            container: None,
        });
    };
    let docker_failed = |err: docker::DockerError| Error::Docker {
        what: format!("cannot start container service `{}`", service.name),
        why: err.to_string(),
    };
    let (name, process) = docker::run(&ctx.config, service, container).map_err(docker_failed)?;
    // The follower is reaped by a supervisor or, once xtask exits, by init.
    let _follower = docker::follow_logs(&ctx.config, &service.name, &name, log);
    Ok(Spawned {
        child: None,
        process,
        container: Some(name),
    })
}

/// How the waiter sees the main process end: our child's status, or a container's
/// disappearance and exit code.
pub fn exit_watch(spawned: Spawned) -> Box<dyn FnMut() -> Option<Exit> + Send> {
    match (spawned.child, spawned.container) {
        (Some(mut child), _) => Box::new(move || child.try_wait()),
        (None, container) => {
            let process = spawned.process;
            Box::new(move || {
                if process.is_alive() {
                    None
                } else {
                    Some(container.as_deref().map_or(Exit::Unknown, docker::exit_of))
                }
            })
        }
    }
}

/// The record of a service just spawned.
pub fn fresh_record(ctx: &Context, service: &Service, spawned: &Spawned, restarts: u32) -> Record {
    let process = &spawned.process;
    Record {
        service: service.name.clone(),
        pid: process.pid,
        pgid: process.pgid().unwrap_or(process.pid),
        start_time: process.start_time,
        command: service.command.to_string(),
        started_at_ms: now_ms(),
        restarts,
        state: ServiceState::Starting,
        healthy_after_ms: None,
        last_exit: None,
        log: ctx.registry.log_path(&service.name),
        ports: service.ports.clone(),
        container: spawned.container.clone(),
    }
}
