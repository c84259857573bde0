//! Launching one long-lived service: its own session, the cookie, logs to a file.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::Context;
use crate::config::{CommandLine, Service};
use crate::error::Error;
use crate::process::{COOKIE_PROJECT, COOKIE_SERVICE, ServiceProcess};

/// A service just started by this invocation.
#[derive(Debug)]
pub struct Spawned {
    /// The main process, when it is our child (not for containers).
    pub child: Option<Child>,
    pub process: ServiceProcess,
    /// The container's name, for a container service.
    pub container: Option<String>,
}

/// Starts a service of either kind: a process, or a container whose output a
/// `docker logs -f` follower copies into the log file.
pub fn start(ctx: &Context, service: &Service, log: File) -> Result<Spawned, Error> {
    let Some(container) = &service.container else {
        return spawn(service, &ctx.config.root, log);
    };
    let (name, process) = crate::container::run(ctx, service, container)
        .map_err(|err| Error::failure(format!("cannot start container service `{}`: {err}", service.name)))?;
    // The follower is reaped by a supervisor or, once xtask exits, by init.
    let _follower = crate::container::follow_logs(ctx, &service.name, &name, log);
    Ok(Spawned {
        child: None,
        process,
        container: Some(name),
    })
}

/// Starts `service` as the leader of a new session, with stdout and stderr appended to
/// `log` and the project cookie in its environment.
pub fn spawn(service: &Service, project_root: &Path, log: File) -> Result<Spawned, Error> {
    let mut command = command_for(&service.command, &service.cwd);
    command
        .current_dir(&service.cwd)
        .envs(service.env.iter().map(|(k, v)| (k, v)))
        .env(COOKIE_PROJECT, project_root)
        .env(COOKIE_SERVICE, &service.name)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|err| Error::failure(format!("cannot share the log file: {err}")))?,
        )
        .stderr(log);
    // SAFETY: the closure runs in the forked child before exec and calls only setsid(2),
    // which is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    let mut child = command.spawn().map_err(|err| {
        Error::failure(format!(
            "cannot start service `{}`: `{}`: {err}; check `command` and `cwd` in services.toml",
            service.name, service.command
        ))
    })?;
    let pid = child.id() as i32;
    let Some(process) = ServiceProcess::of(pid) else {
        // Gone before we could read its start time: reap it so the failure reports
        // the real exit status.
        let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        return Err(Error::failure(format!(
            "service `{}` exited immediately ({status})",
            service.name
        )));
    };
    Ok(Spawned {
        child: Some(child),
        process,
        container: None,
    })
}

/// The std `Command` for a command line: strings through `sh -c`, arrays directly. A
/// program path with a slash is taken relative to the service's `cwd`.
pub fn command_for(line: &CommandLine, cwd: &Path) -> Command {
    match line {
        CommandLine::Shell(script) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(script);
            command
        }
        CommandLine::Exec(words) => {
            let program = resolve_program(&words[0], cwd);
            let mut command = Command::new(program);
            command.args(&words[1..]);
            command
        }
    }
}

fn resolve_program(program: &str, cwd: &Path) -> PathBuf {
    if program.contains('/') {
        cwd.join(program)
    } else {
        PathBuf::from(program)
    }
}
