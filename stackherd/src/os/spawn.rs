//! Launching one long-lived service: its own session, the cookie, logs to a file; and
//! its main process while it is our child.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::libc;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::cgroup::Cgroup;
use super::clone_into::{self, Failure};
use super::exit::Exit;
use super::posix_spawn::{self, FileActions, SessionAttributes};
use super::process::ServiceProcess;
use super::signal::{self, Watch};
use super::{cookie, program};
use crate::config::Service;
use crate::error::Error;

/// Starts `service` as the leader of a new session, with stdout and stderr appended to
/// `log` and the project cookie in its environment.
///
/// This uses `posix_spawn` with `POSIX_SPAWN_SETSID` rather than std's `Command`: a
/// `Command` with a `pre_exec(setsid)` hook must `fork` the whole multithreaded xtask,
/// copying its page tables, and forks cannot run in parallel. Measured on 50 services,
/// spawning took 1 ms per service that way and about 0.6 ms with `posix_spawn`, which
/// also lets the services of a level be spawned from several threads at once.
pub fn spawn(
    service: &Service,
    project_root: &Path,
    log: &File,
    cgroup: Option<&Cgroup>,
) -> Result<(ServiceChild, ServiceProcess, Option<Cgroup>), Error> {
    let failed = |why: String| Error::SpawnFailed {
        service: service.name.clone(),
        command: service.command.to_string(),
        why,
    };
    let env = environment(service, project_root);
    let (program, args) = program::argv(&service.command);
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
    let program = program::find(&program, &service.cwd, path).ok_or_else(|| failed("program not found".into()))?;
    let prepared = Prepared::new(&program, &args, &env, &service.cwd)
        .map_err(|_| failed("a NUL byte in its command, env or cwd".into()))?;
    let exec = clone_into::Exec {
        program: &prepared.program,
        args: &prepared.args,
        env: &prepared.env,
        cwd: &prepared.cwd,
        log: log.as_raw_fd(),
    };
    // A cgroup that cannot be created (a full hierarchy, a kernel without clone3)
    // leaves the service to the weaker layers, as with `XTASK_CGROUP=0`.
    let opened = cgroup.and_then(|cgroup| cgroup.prepare().ok().map(|fd| (cgroup, fd)));
    let (pid, cgroup) = match opened {
        Some((cgroup, fd)) => match clone_into::spawn(&exec, &fd) {
            Ok(spawned) => (Ok(spawned), Some(cgroup.clone())),
            Err(Failure::Exec(errno)) => (Err(errno), None),
            Err(Failure::Clone) => (spawn_in_session(&exec).map(|pid| (pid, None)), None),
        },
        None => (spawn_in_session(&exec).map(|pid| (pid, None)), None),
    };
    let (pid, pidfd) = pid.map_err(|errno| failed(errno.desc().to_lowercase()))?;
    let mut child = ServiceChild {
        pid,
        exit: None,
        end: pidfd,
    };
    let Some(process) = ServiceProcess::of_unreaped_child(pid) else {
        // Gone before we could read its start time: the failure reports how it ended.
        let exit = child.wait();
        return Err(failed(format!("it exited immediately ({exit})")));
    };
    if child.end.is_none()
        && let Watch::Fd(fd) = signal::watch(&process)
    {
        // Not reaped, so the PID is still its own: the pidfd is this child's.
        child.end = Some(fd);
    }
    Ok((child, process, cgroup))
}

/// A command's strings as C strings, built before any spawn.
struct Prepared {
    program: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
}

impl Prepared {
    fn new(program: &Path, args: &[String], env: &[(OsString, OsString)], cwd: &Path) -> Result<Prepared, Errno> {
        let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| Errno::EINVAL);
        Ok(Prepared {
            program: c(program.as_os_str().as_bytes())?,
            args: args.iter().map(|a| c(a.as_bytes())).collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
                .collect::<Result<_, _>>()?,
            cwd: c(cwd.as_os_str().as_bytes())?,
        })
    }
}

/// A service's main process while it is our child, waited for by PID.
#[derive(Debug)]
pub struct ServiceChild {
    pid: i32,
    exit: Option<Exit>,
    /// Its pidfd: readable once it has ended.
    end: Option<OwnedFd>,
}

impl ServiceChild {
    /// A descriptor that turns readable when the child ends, for a waiter to sleep on.
    pub fn end_watch(&self) -> Option<OwnedFd> {
        self.end.as_ref().and_then(|fd| fd.try_clone().ok())
    }

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
                Ok(status) => Exit::of(status).map(|(_, exit)| exit),
                // Reaped elsewhere (a supervisor's waitpid(-1)): the status is gone.
                Err(Errno::ECHILD) => Some(Exit::Unknown),
                Err(_) => None,
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
        .chain(cookie::vars(project_root, &service.name));
    for (key, value) in own {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    env
}

/// to `log`, every signal at its default action and none blocked, as systemd starts a
/// service (without the reset SIGPIPE would stay ignored, as Rust sets it). glibc
/// still hands over its two internal real-time signals (32, 33) ignored, as it does
/// for every `posix_spawn`, std's `Command` included; programs that use them install
/// their own handlers.
fn spawn_in_session(exec: &clone_into::Exec) -> Result<i32, Errno> {
    let attr = SessionAttributes::new()?;
    let mut actions = FileActions::new()?;
    actions.open(0, c"/dev/null", libc::O_RDONLY)?;
    actions.dup2(exec.log, 1)?;
    actions.dup2(exec.log, 2)?;
    actions.chdir(exec.cwd)?;
    posix_spawn::spawn(exec.program, &actions, &attr, exec.args, exec.env)
}

/// The log relays this process started and has not reaped: children of ours that are
/// neither services nor their orphans.
static RELAYS: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The hidden subcommand of a log relay, recognised before the command line is parsed.
pub const RELAY_SUBCOMMAND: &str = "__relay";

/// One service's output for a relay: its log, the rotation (`max_size` 0: none), and
/// the reading side of its pipe or terminal.
pub struct RelayInput<'a> {
    pub log: &'a Path,
    pub max_size: u64,
    pub keep: u32,
    pub input: &'a OwnedFd,
}

/// Starts this program again as the log relay of `inputs`, in a session of its own,
/// working in `/`, without the cookie: it is no process of the services', and it ends
/// when the last process that holds their output does.
pub fn relay(inputs: &[RelayInput<'_>]) -> Result<i32, Errno> {
    let attr = SessionAttributes::new()?;
    let mut actions = FileActions::new()?;
    actions.open(0, c"/dev/null", libc::O_RDONLY)?;
    actions.open(1, c"/dev/null", libc::O_WRONLY)?;
    actions.dup2(1, 2)?;
    // Above every descriptor handed over, so that no dup2 overwrites one still to come.
    let base = inputs.iter().map(|i| i.input.as_raw_fd()).max().unwrap_or(2).max(2);
    let c = |text: String| CString::new(text).map_err(|_| Errno::EINVAL);
    let mut args = vec![c"xtask".to_owned(), c(RELAY_SUBCOMMAND.to_string())?];
    for (n, input) in (1..).zip(inputs) {
        let target = base.checked_add(n).ok_or(Errno::EMFILE)?;
        actions.dup2(input.input.as_raw_fd(), target)?;
        args.push(CString::new(input.log.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?);
        args.push(c(input.max_size.to_string())?);
        args.push(c(input.keep.to_string())?);
        args.push(c(target.to_string())?);
    }
    actions.chdir(c"/")?;
    let env: [CString; 0] = [];
    let pid = posix_spawn::spawn(c"/proc/self/exe", &actions, &attr, &args, &env)?;
    RELAYS.lock().unwrap_or_else(|p| p.into_inner()).insert(pid);
    Ok(pid)
}

/// Whether `pid` is a log relay this process started.
pub fn is_relay(pid: i32) -> bool {
    RELAYS.lock().unwrap_or_else(|p| p.into_inner()).contains(&pid)
}

/// A child was reaped: if it was a relay, its PID may now be anyone's.
pub fn reaped(pid: i32) {
    RELAYS.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
}

/// Spawns `command` (the detached monitor) as the leader of a new session, keeping the
/// descriptor `inherit_fd` open across the exec.
pub fn detached(command: &mut std::process::Command, inherit_fd: i32) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec and only calls setsid(2) and
    // fcntl(2), which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::fcntl(inherit_fd, nix::libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Points this process's stdout and stderr at `file` (the monitor, once its start-up
/// report is done, writes its events to its log).
pub fn redirect_stdio(file: &File) {
    let _ = nix::unistd::dup2_stdout(file);
    let _ = nix::unistd::dup2_stderr(file);
}
