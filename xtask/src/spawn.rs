//! Launching one long-lived service: its own session, the cookie, logs to a file.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::Context;
use crate::config::{CommandLine, Service};
use crate::error::Error;
use crate::process::{COOKIE_PROJECT, COOKIE_SERVICE, ServiceProcess};
use crate::supervise::Exit;

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
///
/// This uses `posix_spawn` with `POSIX_SPAWN_SETSID` rather than std's `Command`: a
/// `Command` with a `pre_exec(setsid)` hook must `fork` the whole multithreaded xtask,
/// copying its page tables, and forks cannot run in parallel. Measured on 50 services,
/// spawning took 1 ms per service that way and about 0.6 ms with `posix_spawn`, which
/// also lets the services of a level be spawned from several threads at once.
pub fn spawn(service: &Service, project_root: &Path, log: File) -> Result<Spawned, Error> {
    let failed = |why: String| {
        Error::failure(format!(
            "cannot start service `{}`: `{}`: {why}; check `command` and `cwd` in services.toml",
            service.name, service.command
        ))
    };
    let env = environment(service, project_root);
    let (program, args) = argv(&service.command);
    let program = find_program(&program, &service.cwd, &env).ok_or_else(|| failed("program not found".into()))?;
    let pid = spawn_in_session(&program, &args, &env, &service.cwd, &log)
        .map_err(|errno| failed(errno.desc().to_lowercase()))?;
    let mut child = Child { pid, exit: None };
    let Some(process) = ServiceProcess::of(pid) else {
        // Gone before we could read its start time: the failure reports how it ended.
        let exit = child.wait();
        return Err(Error::failure(format!(
            "service `{}` exited immediately ({exit})",
            service.name
        )));
    };
    Ok(Spawned {
        child: Some(child),
        process,
        container: None,
    })
}

/// A service's main process while it is our child, waited for by PID.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    exit: Option<Exit>,
}

impl Child {
    /// How it ended, once it has (reaping it); `None` while it runs.
    pub fn try_wait(&mut self) -> Option<Exit> {
        self.wait_with(Some(WaitPidFlag::WNOHANG))
    }

    /// Blocks until it ends.
    fn wait(&mut self) -> Exit {
        self.wait_with(None).unwrap_or(Exit::Unknown)
    }

    fn wait_with(&mut self, flags: Option<WaitPidFlag>) -> Option<Exit> {
        if self.exit.is_none() {
            self.exit = match waitpid(Pid::from_raw(self.pid), flags) {
                Ok(WaitStatus::Exited(_, code)) => Some(Exit::Code(code)),
                Ok(WaitStatus::Signaled(_, signal, _)) => Some(Exit::Signal(signal as i32)),
                // Reaped elsewhere (a supervisor's waitpid(-1)): the status is gone.
                Err(Errno::ECHILD) => Some(Exit::Unknown),
                _ => None,
            };
        }
        self.exit
    }
}

/// xtask's environment, then the service's `env`, then the cookie, as `KEY=value`.
fn environment(service: &Service, project_root: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let own = service
        .env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .chain([
            (COOKIE_PROJECT.into(), project_root.as_os_str().to_owned()),
            (COOKIE_SERVICE.into(), OsString::from(&service.name)),
        ]);
    for (key, value) in own {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    env
}

/// The program and the whole argument vector (program name first).
fn argv(line: &CommandLine) -> (String, Vec<String>) {
    match line {
        CommandLine::Shell(script) => ("sh".into(), vec!["sh".into(), "-c".into(), script.clone()]),
        CommandLine::Exec(words) => (words[0].clone(), words.clone()),
    }
}

/// A program path with a slash is relative to `cwd`; a bare name is looked up on the
/// `PATH` the service will have, as std's `Command` does.
fn find_program(program: &str, cwd: &Path, env: &[(OsString, OsString)]) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(resolve_program(program, cwd));
    }
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone())?;
    std::env::split_paths(&path)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok() && candidate.is_file())
}

/// `posix_spawn` in a new session, in `cwd`, stdin from /dev/null, stdout and stderr
/// to `log`, every signal at its default action and none blocked, as systemd starts a
/// service (without the reset SIGPIPE would stay ignored, as Rust sets it). glibc
/// still hands over its two internal real-time signals (32, 33) ignored, as it does
/// for every `posix_spawn`, std's `Command` included; programs that use them install
/// their own handlers.
fn spawn_in_session(
    program: &Path,
    args: &[String],
    env: &[(OsString, OsString)],
    cwd: &Path,
    log: &File,
) -> Result<i32, Errno> {
    let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| Errno::EINVAL);
    let args: Vec<CString> = args.iter().map(|a| c(a.as_bytes())).collect::<Result<_, _>>()?;
    let env: Vec<CString> = env
        .iter()
        .map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    let cwd = c(cwd.as_os_str().as_bytes())?;

    let mut attr = PosixSpawnAttr::init()?;
    let setsid = PosixSpawnFlags::from_bits_retain(i32::from(nix::libc::POSIX_SPAWN_SETSID));
    attr.set_flags(setsid | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK)?;
    attr.set_sigdefault(&SigSet::all())?;
    attr.set_sigmask(&SigSet::empty())?;

    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_open(0, "/dev/null", OFlag::O_RDONLY, Mode::empty())?;
    actions.add_dup2(log.as_raw_fd(), 1)?;
    actions.add_dup2(log.as_raw_fd(), 2)?;
    // SAFETY: `PosixSpawnFileActions` is `repr(transparent)` over the libc type, so the
    // pointer is to an initialised `posix_spawn_file_actions_t`; `cwd` outlives the
    // call, which copies it. (glibc 2.29 and later; nix does not wrap it.)
    let added = unsafe {
        nix::libc::posix_spawn_file_actions_addchdir_np(
            std::ptr::from_mut(&mut actions).cast::<nix::libc::posix_spawn_file_actions_t>(),
            cwd.as_ptr(),
        )
    };
    if added != 0 {
        return Err(Errno::from_raw(added));
    }
    posix_spawn(program, &actions, &attr, &args, &env).map(Pid::as_raw)
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
