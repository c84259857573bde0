//! The error every command returns, and the exit codes it maps to: one enum whose
//! variants carry what went wrong, with the exit code derived from the variant.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::ui::hint;

/// Exit codes, documented in docs/reference.md ("Exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    /// A command failed: a service did not start, something survived a stop, a check failed.
    /// For `status`: some services are not running, or a record is stale.
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// `status`: no service is running.
    pub const NOT_RUNNING: u8 = 3;
    /// The state directory cannot be created or written.
    pub const STATE: u8 = 73;
    /// Another xtask command holds the state lock.
    pub const LOCKED: u8 = 75;
    /// services.toml is missing or invalid.
    pub const CONFIG: u8 = 78;
    /// Interrupted by Ctrl+C (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug)]
pub enum Error {
    /// services.toml is missing or invalid: every problem, located.
    Config(ConfigError),
    /// Names on the command line that are not services, each with a hint.
    UnknownServices(Vec<String>),
    /// An environment switch with a value that is not one.
    BadSwitch { var: String, value: String },
    /// Another command holds the state lock and did not let go in time.
    Locked {
        lock: PathBuf,
        holder: Option<String>,
        waited: Duration,
    },
    /// The state directory cannot be written.
    State { path: PathBuf, io: io::Error },
    /// `--lock-fd` named a descriptor that does not hold this project's lock.
    LockFd { fd: i32, why: String },
    /// A record was written by a newer xtask, in a format this one does not know.
    NewerRecord { path: PathBuf, version: u32, known: u32 },
    /// Something xtask needs from the system failed (a pipe, its own binary, a file).
    Io { what: String, io: io::Error },
    /// A service's process could not be started.
    SpawnFailed {
        service: String,
        command: String,
        why: String,
    },
    /// A container, the compose project or the Docker engine failed.
    Docker {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Preflight found problems; nothing was started.
    NotReady(Vec<String>),
    /// A service did not start; the tail of its log was shown.
    StartFailed {
        service: String,
        reason: String,
        log_tail: Vec<String>,
    },
    /// Build steps failed; nothing was started.
    BuildFailed { services: Vec<String> },
    /// Processes of the project that a stop or cleanup could not end.
    Survivors { during: Survived, processes: Vec<Survivor> },
    /// Declared ports still held after a stop, by processes that are not the project's.
    PortsHeld(Vec<String>),
    /// Phase 4 could not make sure the project's containers are gone.
    ContainersMayRun { why: String, root: PathBuf },
    /// The detached monitor could not take over or ended early.
    Monitor(MonitorTrouble),
    /// A service has no log file yet.
    NoLog { service: String, path: PathBuf },
    /// The user interrupted the command (Ctrl+C, SIGTERM).
    Interrupted(Interrupted),
    /// A service to start depends on one that its profile or `disabled` keeps out.
    Inactive(Vec<String>),
    /// The terminal UI was asked for where there is no terminal.
    NoTerminal { why: String },
    /// A bug: a thread panicked, a channel closed.
    Internal(&'static str),
    /// The binary does not pass the hidden commands (monitor, relays) on to the
    /// library: `answer` is what it said when asked.
    Unwired { binary: PathBuf, answer: String },
    /// The terminal UI was asked of a build without it (the `tui` feature off).
    NoTui,
    /// `init` was pointed at a directory without a Cargo.toml.
    NotAWorkspace { root: PathBuf },
    /// `import` could not read the file as its format.
    ImportFailed { file: PathBuf, why: String },
    /// `import` would have written over an existing file.
    WouldOverwrite { path: PathBuf },
}

/// A process that outlived the signals sent to it.
#[derive(Debug, Clone)]
pub struct Survivor {
    pub pid: i32,
    pub service: Option<String>,
    pub command: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The exit code this error ends the command with.
    pub fn code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Unwired { .. } | Error::ImportFailed { .. } => exit::CONFIG,
            Error::UnknownServices(_)
            | Error::BadSwitch { .. }
            | Error::NoTerminal { .. }
            | Error::NoTui
            | Error::NotAWorkspace { .. }
            | Error::WouldOverwrite { .. }
            | Error::Inactive(_)
            | Error::LockFd { .. } => exit::USAGE,
            Error::Locked { .. } => exit::LOCKED,
            Error::State { .. } | Error::NewerRecord { .. } => exit::STATE,
            Error::Interrupted(_) => exit::INTERRUPTED,
            Error::Io { .. }
            | Error::SpawnFailed { .. }
            | Error::Docker { .. }
            | Error::NotReady(_)
            | Error::StartFailed { .. }
            | Error::BuildFailed { .. }
            | Error::Survivors { .. }
            | Error::PortsHeld(_)
            | Error::ContainersMayRun { .. }
            | Error::Monitor(_)
            | Error::NoLog { .. }
            | Error::Internal(_) => exit::FAILURE,
        }
    }

    pub fn state(path: impl Into<PathBuf>, io: io::Error) -> Error {
        Error::State { path: path.into(), io }
    }

    pub fn io(what: impl Into<String>, io: io::Error) -> Error {
        Error::Io { what: what.into(), io }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Error {
        Error::Config(err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(err) => write!(f, "{err}"),
            Error::UnknownServices(problems) => f.write_str(&problems.join("\n")),
            Error::BadSwitch { var, value } => {
                write!(f, "{var}={value} is not a switch; set it to 1 or 0 (or unset it)")
            }
            Error::Locked { lock, holder, waited } => {
                let who = holder
                    .as_ref()
                    .map_or_else(|| "another xtask command".to_string(), |h| format!("`{h}`"));
                write!(
                    f,
                    "{who} holds the lock on {} and did not release it within {}s; wait for it to finish, or stop it",
                    lock.display(),
                    waited.as_secs()
                )
            }
            Error::State { path, io } => write!(
                f,
                "cannot write the state directory at {}: {io}; check its permissions or set `state_dir` in [project]",
                path.display()
            ),
            Error::LockFd { fd, why } => write!(
                f,
                "--lock-fd {fd} refused: {why}; the option is for the monitor that `start-bg` starts, which hands it the lock it holds"
            ),
            Error::NewerRecord { path, version, known } => write!(
                f,
                "{} was written by a newer xtask (record format {version}; this one reads formats up to {known}): use that xtask (its `stop` too), or update this checkout; nothing was touched",
                path.display(),
            ),
            Error::Io { what, io } => write!(f, "{what}: {io}"),
            Error::NotAWorkspace { .. }
            | Error::ImportFailed { .. }
            | Error::WouldOverwrite { .. }
            | Error::NoTui
            | Error::Unwired { .. } => f.write_str(&self.adoption_text()),
            Error::Inactive(problems) => write!(f, "cannot start: {}", problems.join("\n  ")),
            Error::NoTerminal { why } => write!(
                f,
                "the UI needs a terminal ({why}); `{}` and `{}` work without one",
                hint::command("status"),
                hint::command("logs -f")
            ),
            Error::SpawnFailed { service, command, why } => write!(
                f,
                "cannot start service `{service}`: `{command}`: {why}; check `command` and `cwd` in services.toml"
            ),
            Error::Docker { what, source } => write!(f, "{what}: {source}"),
            Error::NotReady(problems) => write!(f, "cannot start: {}", problems.join("\n  ")),
            Error::StartFailed { service, reason, .. } => {
                write!(f, "{reason}; see `{}`", hint::command(&format!("logs {service}")))
            }
            Error::BuildFailed { services } => write!(
                f,
                "the build of {} failed; nothing was started (fix it, or skip builds with --no-build)",
                services.join(", ")
            ),
            Error::Survivors { during, processes } => f.write_str(&survivors(*during, processes)),
            Error::PortsHeld(ports) => write!(
                f,
                "{}; the next start would fail on them: stop those processes or change the ports in services.toml",
                ports.join("; ")
            ),
            Error::ContainersMayRun { why, root } => write!(
                f,
                "the project's containers may still run ({why}); once Docker answers, stop again, or look with `docker ps --filter label=xtask.project={}`",
                root.display()
            ),
            Error::Monitor(trouble) => write!(f, "{trouble}"),
            Error::NoLog { service, path } => write!(
                f,
                "service `{service}` has no log yet ({} does not exist); start it with `{}`",
                path.display(),
                hint::command(&format!("start-bg {service}"))
            ),
            Error::Interrupted(during) => write!(f, "{during}"),
            Error::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl Error {
    /// The messages of adopting the tool: `init`, `import`, the build's features and
    /// the team's `main`.
    fn adoption_text(&self) -> String {
        match self {
            Error::NotAWorkspace { root } => format!(
                "{} has no Cargo.toml: `init` wires a Rust workspace (give the path of its root); nothing was changed",
                root.display()
            ),
            Error::ImportFailed { file, why } => {
                format!("cannot import {}: {why}; nothing was written", file.display())
            }
            Error::WouldOverwrite { path } => format!(
                "{} exists: nothing was written; give another path with `-o`, or `-o -` to print it",
                path.display()
            ),
            Error::NoTui => format!(
                "this build has no terminal UI: stackherd's `tui` feature is off in your xtask's Cargo.toml; `{}` and `{}` work without it",
                hint::command("status"),
                hint::command("logs -f")
            ),
            Error::Unwired { binary, answer } => unwired(binary, answer),
            _ => String::new(),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(err) => Some(err),
            Error::State { io, .. } | Error::Io { io, .. } => Some(io),
            Error::Docker { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// What a Ctrl+C (or SIGTERM, SIGHUP) interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// A start, before every service was up.
    Start,
    /// The start of one service.
    StartOf(String),
    /// The compose project's start.
    ComposeStart,
    /// The builds before a start.
    Build,
    /// Choosing the ports of `port = "auto"`.
    ChoosingPorts,
    /// A restart, after its stop: these are down.
    Restart { stopped: Vec<String> },
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interrupted::Start => f.write_str("interrupted before every service was up"),
            Interrupted::StartOf(service) => write!(f, "start of `{service}` interrupted"),
            Interrupted::ComposeStart => f.write_str("interrupted while the compose services started"),
            Interrupted::Build => f.write_str("interrupted during the build; nothing was started"),
            Interrupted::ChoosingPorts => f.write_str("interrupted while choosing ports; nothing was started"),
            Interrupted::Restart { stopped } => {
                write!(f, "interrupted: {} stopped, not started again", stopped.join(", "))
            }
        }
    }
}

/// What went wrong with the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorTrouble {
    /// The detached monitor ended before the start it ran was done.
    EndedEarly { status: String, log: PathBuf },
    /// A foreground `start` supervises the project: no monitor takes over from it.
    ForegroundSupervises { pid: i32 },
}

impl fmt::Display for MonitorTrouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorTrouble::EndedEarly { status, log } => write!(
                f,
                "the monitor ended before the start was done ({status}); see {}",
                log.display()
            ),
            MonitorTrouble::ForegroundSupervises { pid } => write!(
                f,
                "a foreground `{}` (pid {pid}) supervises this project; start services with `{}`, which it adopts, or stop it first",
                hint::command("start"),
                hint::command("start-bg")
            ),
        }
    }
}

/// Which stop left processes alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survived {
    /// A `stop`'s five phases.
    Stop,
    /// `cleanup`'s SIGKILL of leftovers.
    Cleanup,
}

fn survivors(during: Survived, processes: &[Survivor]) -> String {
    match during {
        Survived::Stop => format!(
            "{} process(es) survived the stop:\n{}\nthey may be stuck in the kernel (state D) or owned by another user; look at them with `ps -o pid,stat,user,cmd -p PID`",
            processes.len(),
            processes
                .iter()
                .map(|p| format!(
                    "  pid {} ({}): {}",
                    p.pid,
                    p.service.as_deref().unwrap_or("?"),
                    p.command
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Survived::Cleanup => format!(
            "{} leftover process(es) survived SIGKILL: {}",
            processes.len(),
            processes
                .iter()
                .map(|p| format!("pid {}: {}", p.pid, p.command))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

fn unwired(binary: &std::path::Path, answer: &str) -> String {
    format!(
        "{} does not pass stackherd's hidden commands on (asked `__reexec-check`, it answered {answer}); \
         nothing was started: without them no service could be supervised or logged. \
         Flatten `stackherd::Options` into your parser's top level and `stackherd::Command` into your subcommands, \
         and hand both to `stackherd::run` \
         (see the stackherd crate's documentation: \"Adopting it\")",
        binary.display()
    )
}
