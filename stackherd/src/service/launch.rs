//! Launching one service of either kind: a process spawned in a session of its own, or
//! a container whose output a `docker logs -f` follower copies into the log file; its
//! first record; and how its end is seen.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Service;
use crate::docker;
use crate::error::{Error, Result};
use crate::os::cgroup::Cgroup;
use crate::os::pty;
use crate::os::spawn::{self, ServiceChild};
use crate::os::{Exit, ServiceProcess};
use crate::probe::Main;
use crate::service::Context;
use crate::service::daemon::DaemonSearch;
use crate::service::fork_window;
use crate::service::relays;
use crate::service::relays::Kept;
use crate::state::{RECORD_VERSION, Record, ServiceState, now_ms};

/// A service just started by this invocation.
#[derive(Debug)]
pub struct Spawned {
    /// The main process, when it is our child (not for containers).
    pub child: Option<ServiceChild>,
    pub process: ServiceProcess,
    /// The container's name, for a container service.
    pub container: Option<String>,
    /// The cgroup it runs in, when the cgroup layer is on.
    pub cgroup: Option<Cgroup>,
    /// The relay that writes its log, when one does.
    pub relay: Option<ServiceProcess>,
}

/// Where a process service writes: the writing side of its pipe or terminal, and the
/// relay that reads the other side into its log.
pub struct Output {
    pub file: File,
    pub relay: ServiceProcess,
}

/// Starts `service`, its output appended to `log`: into `output` when a relay for
/// several services was started already (`relay_outputs`), else through a relay of its
/// own, or, when no relay can start, directly.
pub fn start(ctx: &Context, service: &Service, log: File, output: Option<Output>) -> Result<Spawned> {
    let Some(container) = &service.container else {
        let cgroup = Cgroup::for_service(&ctx.config.root, &service.name);
        let relayed = match output {
            Some(output) => Ok(output),
            None => relay_outputs(ctx, &[service])
                .pop()
                .unwrap_or(Err(nix::errno::Errno::EINVAL)),
        };
        let (output, relay) = match relayed {
            Ok(output) => (output.file, Some(output.relay)),
            Err(errno) => {
                ctx.ui.warn(format!(
                    "{}: cannot start its log relay ({}); it writes to its log directly, without times or rotation",
                    service.name,
                    errno.desc().to_lowercase()
                ));
                (log, None)
            }
        };
        let (child, process, cgroup) = spawn::spawn(service, &ctx.config.root, &output, cgroup.as_ref())?;
        return Ok(Spawned {
            child: Some(child),
            process,
            container: None,
            cgroup,
            relay,
        });
    };
    let docker_failed = |err: docker::DockerError| Error::Docker {
        what: format!("cannot start container service `{}`", service.name),
        source: Box::new(err),
    };
    let (name, process) = match docker::run(&ctx.config, service, container) {
        Ok(started) => started,
        // A one-shot job (a migration) may be done before its process could be seen.
        // Its log copier stands for it: a child of ours, it ends once the job's output
        // is in the log, and the exit the start reads is the container's.
        Err(docker::DockerError::ExitedAtOnce {
            container: name,
            code: 0,
        }) if ctx.config.is_job(&service.name) => {
            let follower = docker::follow_logs(&ctx.config, &service.name, &name, log).map_err(docker_failed)?;
            let process = follower
                .process()
                .ok_or(Error::Internal("a log copier without a PID"))?;
            return Ok(Spawned {
                child: None,
                process,
                container: Some(name),
                cgroup: None,
                relay: None,
            });
        }
        Err(err) => return Err(docker_failed(err)),
    };
    // The follower is reaped by a supervisor or, once xtask exits, by init.
    let _follower = docker::follow_logs(&ctx.config, &service.name, &name, log);
    Ok(Spawned {
        child: None,
        process,
        container: Some(name),
        cgroup: None,
        relay: None,
    })
}

/// The stdout and stderr of process services started together: a pipe each, or with
/// `tty` a terminal, whose other sides one new relay reads into their logs. The reading
/// sides are kept (`relays`), so that a supervisor can hand them to a new relay.
pub fn relay_outputs(ctx: &Context, services: &[&Service]) -> Vec<std::result::Result<Output, nix::errno::Errno>> {
    let opened: Vec<std::result::Result<(OwnedFd, File), nix::errno::Errno>> = services
        .iter()
        .map(|service| {
            if service.tty {
                let pty = pty::open()?;
                Ok((pty.master, pty.slave))
            } else {
                let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                Ok((read, File::from(write)))
            }
        })
        .collect();
    let mut inputs = Vec::new();
    let mut writers = Vec::new();
    for (service, opened) in services.iter().zip(opened) {
        match opened {
            Ok((read, write)) => {
                let (max_size, keep) = service.log_rotation.limits().unwrap_or((0, 0));
                let log = ctx.registry.log_path(&service.name);
                inputs.push(Kept::new(&service.name, read, log, max_size, keep));
                writers.push(Ok(write));
            }
            Err(errno) => writers.push(Err(errno)),
        }
    }
    let relay = if inputs.is_empty() {
        Err(nix::errno::Errno::EINVAL)
    } else {
        relays::start(inputs)
    };
    writers
        .into_iter()
        .map(|writer| match (&relay, writer) {
            (Ok(relay), Ok(file)) => Ok(Output { file, relay: *relay }),
            (Err(errno), _) => Err(*errno),
            (_, Err(errno)) => Err(errno),
        })
        .collect()
}

/// How the waiter sees the main process: our child's status, or a container's
/// disappearance and exit code. When `daemon` is given and our child exits 0 while the
/// service owns other processes, it has forked into the background: the watch follows
/// its new main process instead, and tells `main` which one that is. With a
/// `pid_file` that does not name our child, the child's exit is awaited before a probe
/// counts (systemd's `Type=forking`): a daemon's listener answers before the process
/// that forked it has exited.
pub fn exit_watch(
    spawned: Spawned,
    daemon: Option<DaemonSearch>,
    main: Arc<Mutex<Option<ServiceProcess>>>,
    window: Option<fork_window::Held>,
) -> Box<dyn FnMut() -> Main + Send> {
    let started = spawned.process;
    match (spawned.child, spawned.container) {
        (Some(mut child), _) => {
            let (mut daemon, mut window) = (daemon, window);
            let spawned_at = Instant::now();
            let mut away_since: Option<Instant> = None;
            let mut following: Option<ServiceProcess> = None;
            let mut named: Option<i32> = None;
            Box::new(move || {
                let now_named = daemon.as_ref().and_then(DaemonSearch::pid_file_pid);
                match following {
                    // A PID file written after we found the daemon may name another.
                    Some(process) if process.is_alive() && now_named == named => return Main::Running,
                    Some(_) => named = now_named,
                    None => match child.try_wait() {
                        None => {
                            let away = daemon.as_mut().is_some_and(DaemonSearch::look);
                            let forking = forking(&daemon, now_named, started.pid, away, &mut away_since);
                            // Running on, not forking away: the next service may spawn.
                            if !away && spawned_at.elapsed() >= fork_window::QUIET {
                                drop(window.take());
                            }
                            return if forking { Main::Forking } else { Main::Running };
                        }
                        Some(Exit::Code(0)) if daemon.is_some() => named = now_named,
                        Some(exit) => return Main::Ended(exit),
                    },
                }
                let found = daemon.as_ref().and_then(DaemonSearch::main);
                // Its daemon is found (or it has none): the next service may spawn.
                drop(window.take());
                match found {
                    Some(process) => {
                        following = Some(process);
                        if let Ok(mut main) = main.lock() {
                            *main = Some(process);
                        }
                        Main::Running
                    }
                    // Its daemon is gone too: how it ended nobody saw.
                    None if following.is_some() => Main::Ended(Exit::Unknown),
                    None => Main::Ended(Exit::Code(0)),
                }
            })
        }
        (None, container) => Box::new(move || {
            if started.is_alive() {
                Main::Running
            } else {
                Main::Ended(container.as_deref().map_or(Exit::Unknown, docker::exit_of))
            }
        }),
    }
}

/// Whether a probe waits for the first process to exit (systemd's `Type=forking`):
/// with a `pid_file` that does not name it; or, for at most `FORK_WAIT`, while a
/// process it forked has left its session (`pg_ctl start`, whose server answers
/// before `pg_ctl` exits). The bound keeps a service that runs a `setsid` helper
/// for good from never counting as healthy.
fn forking(
    daemon: &Option<DaemonSearch>,
    named: Option<i32>,
    started: i32,
    away: bool,
    away_since: &mut Option<Instant>,
) -> bool {
    let Some(daemon) = daemon else {
        return false;
    };
    if daemon.has_pid_file() && named != Some(started) {
        return true;
    }
    if !away {
        return false;
    }
    away_since.get_or_insert_with(Instant::now).elapsed() < FORK_WAIT
}

/// How long a probe waits for a process that forked a daemon away to exit.
const FORK_WAIT: Duration = Duration::from_secs(10);

/// The record of a service just spawned.
pub fn fresh_record(ctx: &Context, service: &Service, spawned: &Spawned, restarts: u32) -> Record {
    let process = &spawned.process;
    let fingerprint = service.fingerprint();
    Record {
        version: RECORD_VERSION,
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
        cgroup: spawned.cgroup.as_ref().map(|c| c.path().to_path_buf()),
        tree: Vec::new(),
        last_build: None,
        relay: spawned.relay.map(|r| (r.pid, r.start_time)),
        relay_lost: None,
        config_hash: Some(fingerprint.config),
        env_hash: Some(fingerprint.env),
    }
}
